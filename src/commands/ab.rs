//! `tcpbench ab`: two sides run interleaved in this job, judged on intervals; exit 1 when a
//! threshold's whole interval is past it.

use std::path::PathBuf;

use crate::ab;
use crate::cli::AbArgs;
use crate::compare as cmp;
use crate::config::UsageError;
use crate::output::{Format, Outputs};

pub fn ab(args: &AbArgs) -> anyhow::Result<u8> {
    let outputs = Outputs::new(super::summary(args.format))
        .file("--json", Format::Json, args.json.as_deref())?
        .file("--html", Format::Html, args.html.as_deref())?;
    let outputs = [&args.baseline_bin, &args.candidate_bin]
        .into_iter()
        .flatten()
        .try_fold(outputs, |o, bin| o.input(bin))?;
    let this = std::env::current_exe()?;
    let side = |name: &str, bin: &Option<PathBuf>, flags: &str, server: &Option<String>| {
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
    let written = outputs.write(&result);
    Ok(super::status(
        &written,
        result.interrupted,
        result.comparison.exit_code(),
    ))
}
