//! `tcpbench merge REPORT…`: the reports of agents that ran side by side, as one.

use crate::cli::MergeArgs;
use crate::config::UsageError;
use crate::output::{Format, RunOutcome};
use crate::report::{self, Report};

pub fn merge(args: &MergeArgs) -> anyhow::Result<u8> {
    let outputs = crate::output::Outputs::new(super::summary(args.format))
        .file("--output", Format::Json, args.output.as_deref())?
        .file("--markdown", Format::Markdown, args.markdown.as_deref())?
        .file("--html", Format::Html, args.html.as_deref())?;
    let outputs = args.reports.iter().try_fold(outputs, |o, p| o.input(p))?;
    let reports = args
        .reports
        .iter()
        .map(|p| super::read_report(p))
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
    let merged = Report::merge_agents(&reports);
    let written = outputs.write(&RunOutcome {
        title: "tcpbench merge",
        report: &merged,
        traced: None,
    });
    Ok(super::status(
        &written,
        merged.interrupted,
        merged.exit_code(),
    ))
}
