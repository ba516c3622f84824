//! `tcpbench [run]`: the load, then its report in every format asked for; with `--trace`,
//! one connection made the same way is traced after the run.

use crate::cli::RunArgs;
use crate::config::RunConfig;
use crate::output::{Format, RunOutcome};

pub fn run(args: &RunArgs) -> anyhow::Result<u8> {
    crate::cli::resolve::isolated_target(
        args.isolate,
        args.target.as_ref().map(|t| t.name.as_str()),
    )?;
    let cfg = RunConfig::from_args(args)?;
    let outputs = super::outputs(Format::Text, &args.out)?
        .folder("--hgrm", Format::Hgrm, args.hgrm.as_deref())?
        .file("--hlog", Format::Hlog, args.hlog.as_deref())?;
    let mut report = crate::run_repeated(&cfg, args.repeat, args.out.quiet, |i, r| {
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
    if let Some(log) = report.intervals.as_mut() {
        log.command = Some(command_line());
    }
    let traced = if args.trace {
        let opts = crate::trace::TraceOptions::default();
        match crate::trace::trace(&cfg, &opts) {
            Ok(mut t) => t.pop(),
            Err(e) => {
                eprintln!("tcpbench: --trace: {e}");
                None
            }
        }
    } else {
        None
    };
    let written = outputs.write(&RunOutcome {
        title: "tcpbench run",
        report: &report,
        traced: traced.as_ref(),
    });
    Ok(super::status(
        &written,
        report.interrupted,
        report.exit_code(),
    ))
}

/// This process's command line, as the interval log's header names it: the arguments, each
/// quoted when it holds a space or a quote.
fn command_line() -> String {
    std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .enumerate()
        .map(|(i, a)| {
            let a = if i == 0 {
                std::path::Path::new(&a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or(a)
            } else {
                a
            };
            if a.is_empty() || a.contains([' ', '\'', '"', '\n']) {
                format!("'{}'", a.replace('\'', "'\\''").replace('\n', " "))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
