//! `tcpbench ab`: two sides measured in one job, interleaved, and judged by the compare
//! statistics — the only comparison that survives a runner that is 2.4x slower today.
//!
//! Each side is a tcpbench binary (the baseline's build and the candidate's, or one build
//! twice) and the run flags it adds to the common ones. Every run is a child process
//! `BIN run --quiet --json FILE FLAGS…`, so each has a fresh embedded server (and, with
//! `--isolate` among the flags, a fresh network namespace), and a side's binary may be any
//! build that writes `tcpbench.report.v1`. Rounds alternate the order, A B, B A, A B, …, so
//! that a drift of the machine over the job falls on both sides alike.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::compare::{self, Comparison, Options, threshold::Threshold};
use crate::report::Report;

/// The schema of `ab --json`.
pub const SCHEMA: &str = "tcpbench.ab.v1";

/// One side of an A/B: a name, the binary, and its own flags after the common ones.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Side {
    pub name: String,
    pub bin: PathBuf,
    pub args: Vec<String>,
}

/// What the A/B runs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub sides: [Side; 2],
    /// Flags both sides run with.
    pub common: Vec<String>,
    pub rounds: u32,
    pub thresholds: Vec<Threshold>,
    pub options: Options,
}

/// One side's runs, in the order they were made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SideRuns {
    #[serde(flatten)]
    pub side: Side,
    pub runs: Vec<Report>,
}

/// The whole A/B, as `--json` writes it: every run of every side, then the verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Ab {
    pub schema: String,
    pub rounds: u32,
    pub common: Vec<String>,
    pub sides: Vec<SideRuns>,
    pub comparison: Comparison,
    /// A run was interrupted (Ctrl-C): the verdict covers the rounds done until then.
    pub interrupted: bool,
}

/// Runs the plan: `rounds` rounds, sides alternating, then compares them. `progress` sees
/// each run as it ends (side index, round, report).
pub fn run(plan: &Plan, mut progress: impl FnMut(usize, u32, &Report)) -> anyhow::Result<Ab> {
    let dir = tempfile_dir()?;
    let mut runs: [Vec<Report>; 2] = [Vec::new(), Vec::new()];
    let mut interrupted = false;
    'rounds: for round in 0..plan.rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let side = &plan.sides[i];
            let out = dir.join(format!("{}-{round}.json", i));
            let r = run_one(side, &plan.common, &out)
                .with_context(|| format!("{} run {}", side.name, round + 1))?;
            progress(i, round, &r);
            let stop = r.interrupted || r.aborted.is_some();
            interrupted |= r.interrupted;
            runs[i].push(r);
            if stop {
                break 'rounds;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if runs.iter().any(Vec::is_empty) {
        bail!("a side has no run to compare");
    }
    let merged = [Report::merge_runs(&runs[0]), Report::merge_runs(&runs[1])];
    let options = Options {
        // Both sides share the common flags; their own flags are the point of the A/B.
        allow_config_change: true,
        ..plan.options
    };
    let mut comparison = compare::compare_with(
        (&plan.sides[0].name, &merged[0]),
        (&plan.sides[1].name, &merged[1]),
        &plan.thresholds,
        options,
    )?;
    // Both sides ran on this machine, interleaved: a calibration that moved between two of
    // their runs is the machine's load, which the interleaving already spreads over both.
    comparison.machines = None;
    let [a, b] = runs;
    Ok(Ab {
        schema: SCHEMA.into(),
        rounds: plan.rounds,
        common: plan.common.clone(),
        sides: vec![
            SideRuns {
                side: plan.sides[0].clone(),
                runs: a,
            },
            SideRuns {
                side: plan.sides[1].clone(),
                runs: b,
            },
        ],
        comparison,
        interrupted,
    })
}

/// One run of a side, as a child process; its report read back. A child that exits 0 or 1
/// (some connections failed) or 130 (interrupted) has written its report.
fn run_one(side: &Side, common: &[String], out: &Path) -> anyhow::Result<Report> {
    let status = Command::new(&side.bin)
        .arg("run")
        .arg("--quiet")
        .arg("--json")
        .arg(out)
        .args(common)
        .args(&side.args)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot start {}", side.bin.display()))?;
    match status.code() {
        Some(0 | 1 | 130) => {}
        _ => bail!(
            "`{} run {} {}` exited with {status}: its error is above",
            side.bin.display(),
            common.join(" "),
            side.args.join(" ")
        ),
    }
    crate::report::json::read(out)
}

/// A private folder for the runs' reports.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("tcpbench-ab-{}", std::process::id()));
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    Ok(base)
}

/// Splits a side's flags as a shell would for simple words: whitespace separates, single or
/// double quotes group. (No escapes, no expansions: a side's flags are tcpbench flags.)
pub fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for ch in s.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(ch);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("unclosed {q} in '{s}'"));
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_flags_split_like_a_shell() {
        assert_eq!(
            split_args("--close rst  --sysctl 'net.ipv4.tcp_tw_reuse=0'").unwrap(),
            ["--close", "rst", "--sysctl", "net.ipv4.tcp_tw_reuse=0"]
        );
        assert_eq!(split_args("").unwrap(), Vec::<String>::new());
        assert_eq!(split_args("a \"\" b").unwrap(), ["a", "", "b"]);
        assert!(split_args("--bind '127.0.0.2").is_err());
    }
}
