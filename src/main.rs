//! `tcpbench`: parse the command line, run, print, exit with a status that tells.
//!
//! Exit status: 0 every connection succeeded; 1 some failed (the report is still written);
//! 2 bad usage; 130 interrupted.

use std::process::ExitCode;

use clap::Parser;
use tcpbench::cli::{Cli, Command};
use tcpbench::config::{RunConfig, ServerConfig, UsageError};
use tcpbench::report;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    let result = match cli.command {
        None => run(&cli.run),
        Some(Command::Run(args)) => run(&args),
        Some(Command::Serve(args)) => serve(&args),
        Some(Command::Rebind(args)) => rebind(&args),
        Some(Command::Compare(args)) => compare(&args),
        Some(Command::Matrix(args)) => matrix(&args),
        Some(Command::Merge(args)) => merge(&args),
        Some(Command::Trace(args)) => trace(&args),
        Some(Command::Ab(args)) => ab(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let usage = e.downcast_ref::<UsageError>().is_some();
            eprintln!("tcpbench: error: {}", one_line(&e));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn run(args: &tcpbench::cli::RunArgs) -> anyhow::Result<u8> {
    let cfg = RunConfig::from_args(args)?;
    let report = tcpbench::run_repeated(&cfg, args.repeat, args.out.quiet, |i, r| {
        if args.repeat > 1 {
            eprintln!(
                "tcpbench: run {}/{}: {:.0} conn/s, connect p99 {:.1} µs, {} failed",
                i + 1,
                args.repeat,
                r.rate_cps,
                r.latency.connect.p99_us,
                r.totals.failed
            );
        }
    })?;
    print!("{}", report::text::render(&report));
    if let Some(path) = &args.out.json {
        report::json::write(&report, path)?;
    }
    if let Some(path) = &args.out.markdown {
        write_file(path, &report::markdown::render(&report))?;
    }
    // One connection of the same configuration, traced after the run.
    let traced = if args.trace {
        let opts = tcpbench::trace::TraceOptions::default();
        match tcpbench::trace::trace(&cfg, &opts) {
            Ok(mut t) => t.pop(),
            Err(e) => {
                eprintln!("tcpbench: --trace: {e}");
                None
            }
        }
    } else {
        None
    };
    if let Some(t) = &traced {
        println!("\n{}", tcpbench::trace::render_text(t));
    }
    if let Some(path) = &args.out.html {
        let svg = traced.as_ref().map(tcpbench::trace::render_svg);
        write_file(path, &html_page("tcpbench run", &report, svg.as_deref()))?;
    }
    if let Some(dir) = &args.hgrm {
        report::hgrm::write_all(&report, dir)?;
    }
    Ok(if report.interrupted {
        tcpbench::load::control::EXIT_INTERRUPTED as u8
    } else {
        report.exit_code() as u8
    })
}

fn serve(args: &tcpbench::cli::ServeArgs) -> anyhow::Result<u8> {
    let cfg = ServerConfig::from_serve_args(args)?;
    let totals = tcpbench::serve(&cfg, args.duration, |addr| {
        eprintln!(
            "tcpbench serve: listening on {addr} (close {}, backlog {})",
            cfg.close, cfg.backlog
        );
    })?;
    println!(
        "accepted {} connections, echoed {} B in / {} B out, {} resets, {} idle timeouts, {} over the byte cap, {} accept errors",
        totals.accepted,
        totals.bytes_in,
        totals.bytes_out,
        totals.resets,
        totals.idle_timeouts,
        totals.over_limit,
        totals.accept_errors
    );
    Ok(0)
}

fn rebind(args: &tcpbench::cli::RebindArgs) -> anyhow::Result<u8> {
    let attempts = tcpbench::rebind::check(args.conns)?;
    print!("{}", tcpbench::rebind::render(&attempts));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&attempts)?;
        report::json::write_atomic(path, text.as_bytes())?;
    }
    Ok(0)
}

fn compare(args: &tcpbench::cli::CompareArgs) -> anyhow::Result<u8> {
    use tcpbench::cli::Format;
    use tcpbench::compare as cmp;
    let (base, cand) = (read_report(&args.baseline)?, read_report(&args.candidate)?);
    let (bn, cn) = (
        args.baseline.display().to_string(),
        args.candidate.display().to_string(),
    );
    let thresholds = cmp::with_defaults(args.fail_if.clone(), !args.no_default_thresholds);
    let opts = cmp::Options {
        allow_config_change: args.allow_config_change,
        normalize: args.normalize,
    };
    let c = cmp::compare_with((&bn, &base), (&cn, &cand), &thresholds, opts)?;
    match args.format {
        Format::Text => print!("{}", cmp::render_text(&c)),
        Format::Markdown => print!("{}", cmp::render_markdown(&c)),
        Format::Json => println!("{}", cmp::render_json(&c)),
    }
    if let Some(path) = &args.html {
        let series = [
            report::html::Series {
                label: "baseline",
                report: &base,
            },
            report::html::Series {
                label: "candidate",
                report: &cand,
            },
        ];
        let page = report::html::render("tcpbench compare", &cmp::render_html_table(&c), &series);
        write_file(path, &page)?;
    }
    Ok(c.exit_code() as u8)
}

fn matrix(args: &tcpbench::cli::MatrixArgs) -> anyhow::Result<u8> {
    use tcpbench::cli::Format;
    use tcpbench::matrix;
    let common = matrix::Common {
        isolate: args.isolate,
        target: args.target.clone(),
        allow_remote: args.allow_remote,
    };
    let scenarios = matrix::load(&args.file, &common)?;
    let m = matrix::run(&args.file, scenarios, args.repeat, args.out.quiet)?;
    match args.format {
        Format::Text => print!("{}", matrix::render_text(&m)),
        Format::Markdown => print!("{}", matrix::render_markdown(&m)),
        Format::Json => println!("{}", matrix::render_json(&m)),
    }
    if let Some(path) = &args.out.json {
        write_file(path, &matrix::render_json(&m))?;
    }
    if let Some(path) = &args.out.markdown {
        write_file(path, &matrix::render_markdown(&m))?;
    }
    if let Some(path) = &args.out.html {
        let series: Vec<report::html::Series> = m
            .scenarios
            .iter()
            .map(|s| report::html::Series {
                label: &s.name,
                report: &s.report,
            })
            .collect();
        let title = format!("tcpbench matrix {}", m.file);
        write_file(
            path,
            &report::html::render(&title, &matrix::render_html_table(&m), &series),
        )?;
    }
    Ok(m.exit_code())
}

fn merge(args: &tcpbench::cli::MergeArgs) -> anyhow::Result<u8> {
    use tcpbench::cli::Format;
    let reports = args
        .reports
        .iter()
        .map(|p| read_report(p))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = args
        .reports
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    if !args.force
        && let Some(why) = report::merge::agents_problem(&names, &reports)
    {
        return Err(UsageError(format!("{why}; or add --force")).into());
    }
    let merged = report::Report::merge_agents(&reports);
    match args.format {
        Format::Text => print!("{}", report::text::render(&merged)),
        Format::Markdown => print!("{}", report::markdown::render(&merged)),
        Format::Json => println!("{}", report::json::render(&merged)),
    }
    if let Some(path) = &args.output {
        report::json::write(&merged, path)?;
    }
    if let Some(path) = &args.markdown {
        write_file(path, &report::markdown::render(&merged))?;
    }
    if let Some(path) = &args.html {
        write_file(path, &html_page("tcpbench merge", &merged, None))?;
    }
    Ok(if merged.interrupted {
        tcpbench::load::control::EXIT_INTERRUPTED as u8
    } else {
        merged.exit_code() as u8
    })
}

fn ab(args: &tcpbench::cli::AbArgs) -> anyhow::Result<u8> {
    use tcpbench::ab;
    use tcpbench::cli::Format;
    use tcpbench::compare as cmp;
    let this = std::env::current_exe()?;
    let side = |name: &str,
                bin: &Option<std::path::PathBuf>,
                flags: &str,
                server: &Option<String>| {
        let server = ab::server_spec(args, name, server.as_deref())?;
        ab::split_args(flags)
            .map(|args| ab::Side {
                name: name.to_string(),
                bin: bin.clone().unwrap_or_else(|| this.clone()),
                args,
                server,
            })
            .map_err(|e| UsageError(format!("--{name}-args: {e}; quote the flags as one string")))
    };
    let plan = ab::Plan {
        sides: [
            side(
                "baseline",
                &args.baseline_bin,
                &args.baseline_args,
                &args.baseline_server,
            )?,
            side(
                "candidate",
                &args.candidate_bin,
                &args.candidate_args,
                &args.candidate_server,
            )?,
        ],
        common: args.common.clone(),
        rounds: args.rounds,
        thresholds: cmp::with_defaults(args.fail_if.clone(), !args.no_default_thresholds),
        options: cmp::Options::default(),
    };
    let result = ab::run(&plan, |i, round, r| {
        eprintln!(
            "tcpbench ab: round {}/{} {}: {:.0} conn/s, connect p50 {:.1} µs, {} failed",
            round + 1,
            plan.rounds,
            plan.sides[i].name,
            r.rate_cps,
            r.latency.connect.p50_us,
            r.totals.failed
        );
    })?;
    let c = &result.comparison;
    match args.format {
        Format::Text => print!("{}", cmp::render_text(c)),
        Format::Markdown => print!("{}", cmp::render_markdown(c)),
        Format::Json => println!("{}", cmp::render_json(c)),
    }
    if let Some(path) = &args.json {
        write_file(path, &serde_json::to_string_pretty(&result)?)?;
    }
    if let Some(path) = &args.html {
        let merged: Vec<report::Report> = result
            .sides
            .iter()
            .map(|s| report::Report::merge_runs(&s.runs))
            .collect();
        let series = [
            report::html::Series {
                label: "baseline",
                report: &merged[0],
            },
            report::html::Series {
                label: "candidate",
                report: &merged[1],
            },
        ];
        let page = report::html::render("tcpbench ab", &cmp::render_html_table(c), &series);
        write_file(path, &page)?;
    }
    Ok(result.exit_code() as u8)
}

fn trace(args: &tcpbench::cli::TraceArgs) -> anyhow::Result<u8> {
    use tcpbench::trace;
    let cfg = tcpbench::cli::run_config(&args.run_flags())?;
    if args.isolate {
        tcpbench::observe::netns::enter_fresh().map_err(|e| {
            UsageError(format!(
                "--isolate cannot create a network namespace ({e}); run as root or drop --isolate"
            ))
        })?;
    }
    let opts = trace::TraceOptions {
        conns: args.conns,
        wait_time_wait: args.wait_time_wait,
        ..Default::default()
    };
    let traces = trace::trace(&cfg, &opts).map_err(trace_error)?;
    for t in &traces {
        println!("{}", trace::render_text(t));
    }
    if let Some(path) = &args.json {
        write_file(path, &serde_json::to_string_pretty(&traces)?)?;
    }
    if let (Some(path), Some(first)) = (&args.svg, traces.first()) {
        write_file(path, &trace::render_svg(first))?;
    }
    Ok(0)
}

/// Errors of the user's making (permissions, a remote target) are usage errors: exit 2.
fn trace_error(e: tcpbench::trace::TraceError) -> anyhow::Error {
    use tcpbench::trace::TraceError;
    match e {
        TraceError::NotPermitted(_) | TraceError::NotLoopback(_) | TraceError::Usage(_) => {
            UsageError(e.to_string()).into()
        }
        e => e.into(),
    }
}

/// A run's (or a merge's) HTML page: its text summary, a traced connection's ladder when
/// there is one, then its charts.
fn html_page(title: &str, r: &report::Report, ladder: Option<&str>) -> String {
    let summary = report::table::escape(&report::text::render(r));
    let ladder = ladder
        .map(|svg| format!("<h2>One connection, traced</h2>\n<figure>{svg}</figure>\n"))
        .unwrap_or_default();
    report::html::render(
        title,
        &format!("<pre>{summary}</pre>\n{ladder}"),
        &[report::html::Series {
            label: "run",
            report: r,
        }],
    )
}

/// A report file for compare and merge: any problem with it is bad input (exit 2).
fn read_report(path: &std::path::Path) -> Result<report::Report, UsageError> {
    report::json::read(path).map_err(|e| {
        UsageError(format!(
            "{e:#}; give a report written by `tcpbench run --json` or `tcpbench merge -o`"
        ))
    })
}

/// Writes a rendered report atomically.
fn write_file(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    report::json::write_atomic(path, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// An error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Help and version print as clap prints them; a usage error becomes one line, exit 2.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "tcpbench: error: {}; see tcpbench --help",
        tcpbench::cli::one_line(&e)
    );
    ExitCode::from(2)
}
