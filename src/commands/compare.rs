//! `tcpbench compare BASELINE CANDIDATE`: every figure side by side, judged against the
//! thresholds; exit 1 when one fails.

use crate::cli::CompareArgs;
use crate::compare as cmp;
use crate::output::{Compared, Format};

pub fn compare(args: &CompareArgs) -> anyhow::Result<u8> {
    let outputs = crate::output::Outputs::new(super::summary(args.format))
        .file("--html", Format::Html, args.html.as_deref())?
        .input(&args.baseline)?
        .input(&args.candidate)?;
    let base = super::read_report(&args.baseline)?;
    let cand = super::read_report(&args.candidate)?;
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
    let written = outputs.write(&Compared {
        title: "tcpbench compare",
        comparison: &c,
        baseline: &base,
        candidate: &cand,
    });
    Ok(super::status(&written, false, c.exit_code()))
}
