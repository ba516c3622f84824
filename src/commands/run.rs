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
    let mut cfg = RunConfig::from_args(args)?;
    probe_target(&mut cfg);
    let outputs = super::outputs(Format::Text, &args.out)?.folder(
        "--hgrm",
        Format::Hgrm,
        args.hgrm.as_deref(),
    )?;
    let report = crate::run_repeated(&cfg, args.repeat, args.out.quiet, |i, r| {
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

/// A `--target` name with several addresses: the run loads the first that answers a probe
/// (see [`crate::load::probe`]). When none answers the resolver's first stays, and the
/// report's warning names every address tried.
pub(super) fn probe_target(cfg: &mut RunConfig) {
    let Some(name) = &cfg.target_name else { return };
    if name.resolved.len() < 2 {
        return;
    }
    if let Some(addr) = crate::load::probe::first_answering(&name.resolved) {
        cfg.target = crate::config::Target::External(addr);
    }
}
