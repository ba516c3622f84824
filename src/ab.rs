//! `tcpbench ab`: two sides measured in one job, interleaved, and judged by the compare
//! statistics — the only comparison that survives a runner that is 2.4x slower today.
//!
//! Each side is a tcpbench binary (the baseline's build and the candidate's, or one build
//! twice) and the run flags it adds to the common ones. Every run is a child process
//! `BIN run --quiet --json FILE FLAGS…`, so each has a fresh embedded server (and, with
//! `--isolate` among the flags, a fresh network namespace), and a side's binary may be any
//! build that writes `tcpbench.report.v1`. Rounds alternate the order, A B, B A, A B, …, so
//! that a drift of the machine over the job falls on both sides alike.
//!
//! A side may be a real server instead (`--baseline-server CMD`, [`crate::launch`]): each of
//! its runs starts a fresh server, runs the child with `--target` its address, then stops
//! it. With `--isolate` among the flags, ab makes the run's fresh namespace itself (on a
//! thread of its own, with the `--sysctl` values set there), starts the server in it and
//! runs the child in it without `--isolate`, so the run and its server share the namespace
//! and nothing else does.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::compare::{self, Comparison, Options, threshold::Threshold};
use crate::config::UsageError;
use crate::launch::{ServerRun, ServerSpec};
use crate::report::Report;

/// The schema of `ab --json`.
pub const SCHEMA: &str = "tcpbench.ab.v1";

/// One side of an A/B: a name, the binary, and its own flags after the common ones.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Side {
    pub name: String,
    pub bin: PathBuf,
    pub args: Vec<String>,
    /// The real server each of its runs starts and loads; `None`: the embedded one.
    #[serde(skip)]
    pub server: Option<ServerSpec>,
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
    /// With a server: how each run's start of it went, in the order of `runs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerRun>,
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
    for side in &plan.sides {
        check_flags(side, &plan.common)?;
        if side.server.is_some() {
            served_flags(side, &plan.common)?;
        }
    }
    let dir = RunsDir::new()?;
    let mut runs: [Vec<Report>; 2] = [Vec::new(), Vec::new()];
    let mut servers: [Vec<ServerRun>; 2] = [Vec::new(), Vec::new()];
    let mut interrupted = false;
    'rounds: for round in 0..plan.rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let side = &plan.sides[i];
            let out = dir.0.join(format!("{}-{round}.json", i));
            let (r, server) = run_side(side, &plan.common, &out)
                .with_context(|| format!("{} run {}", side.name, round + 1))?;
            servers[i].extend(server);
            progress(i, round, &r);
            let stop = r.interrupted || r.aborted.is_some();
            interrupted |= r.interrupted;
            runs[i].push(r);
            if stop {
                break 'rounds;
            }
        }
    }
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
    let [sa, sb] = servers;
    Ok(Ab {
        schema: SCHEMA.into(),
        rounds: plan.rounds,
        common: plan.common.clone(),
        sides: vec![
            SideRuns {
                side: plan.sides[0].clone(),
                runs: a,
                servers: sa,
            },
            SideRuns {
                side: plan.sides[1].clone(),
                runs: b,
                servers: sb,
            },
        ],
        comparison,
        interrupted,
    })
}

/// Flags ab sets on every child itself.
const AB_OWNS: [&str; 3] = ["--json", "--quiet", "-q"];

/// Checks a side's flags as its runs will take them, before any run: one line naming the
/// side and the flag (exit 2), never a round of failed children.
fn check_flags(side: &Side, common: &[String]) -> Result<(), UsageError> {
    let all: Vec<String> = common.iter().chain(&side.args).cloned().collect();
    if let Some(w) = all.iter().find(|w| {
        AB_OWNS
            .iter()
            .any(|f| w == f || w.starts_with(&format!("{f}=")))
    }) {
        return Err(UsageError(format!(
            "{w} among the run flags: ab gives every run its own --json and --quiet; use `ab --json PATH` for the whole A/B"
        )));
    }
    if side.server.is_none() {
        crate::cli::resolve::from_flags(&all)
            .map_err(|e| UsageError(format!("the {} runs' flags: {}", side.name, e.0)))?;
    }
    Ok(())
}

/// A server side's run flags: the common and the side's own, and what ab does for them
/// itself: whether to make a fresh namespace, and the sysctls to set there.
struct ServedFlags {
    /// The flags for the child, without `--isolate` and `--sysctl`.
    flags: Vec<String>,
    /// The side's whole configuration: its `isolate` and `sysctls` are ab's to apply.
    cfg: crate::config::RunConfig,
}

/// Checks a server side's flags as `run --target` would take them, before any run.
fn served_flags(side: &Side, common: &[String]) -> Result<ServedFlags, UsageError> {
    let all: Vec<String> = common.iter().chain(&side.args).cloned().collect();
    let blame = |e: UsageError| {
        UsageError(format!(
            "--{}-server: its runs load the server (run --target): {}",
            side.name, e.0
        ))
    };
    // The namespace settings, read as the flags stand (ab applies them itself).
    let cfg = crate::cli::resolve::from_flags(&all).map_err(blame)?;
    let mut flags = Vec::new();
    let mut words = all.into_iter();
    while let Some(w) = words.next() {
        match w.as_str() {
            "--isolate" => {}
            "--sysctl" => {
                words.next();
            }
            _ if w.starts_with("--sysctl=") => {}
            _ => flags.push(w),
        }
    }
    // The child's own flags, as `run --target` takes them.
    let mut checked = flags.clone();
    checked.extend(["--target".into(), "127.0.0.1:1".into()]);
    crate::cli::resolve::from_flags(&checked).map_err(blame)?;
    Ok(ServedFlags { flags, cfg })
}

/// One run of a side: with a server, on a thread of its own (its namespace, under
/// `--isolate`), the server started before the child and stopped after it.
fn run_side(
    side: &Side,
    common: &[String],
    out: &Path,
) -> anyhow::Result<(Report, Option<ServerRun>)> {
    let Some(spec) = &side.server else {
        return Ok((run_one(&side.bin, common, &side.args, out)?, None));
    };
    let served = served_flags(side, common)?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if served.cfg.isolate {
                    crate::isolate(&served.cfg.sysctls)?;
                }
                let server = spec.start(&mut || false).inspect_err(|e| {
                    for line in e.run().map(|r| r.tail.as_slice()).unwrap_or_default() {
                        eprintln!("  | {line}");
                    }
                })?;
                let target = ["--target".to_string(), server.addr().to_string()];
                let report = run_one(&side.bin, &served.flags, &target, out);
                let run = server.stop();
                if run.failed {
                    eprintln!("tcpbench ab: {} server {}", side.name, run.exit);
                }
                Ok((report?, Some(run)))
            })
            .join()
            .unwrap_or_else(|_| bail!("the {} run's thread panicked", side.name))
    })
}

/// One run, as a child process `BIN run --quiet --json OUT FLAGS… MORE…`; its report read
/// back. A child that exits 0 or 1 (some connections failed) or 130 (interrupted) has
/// written its report.
fn run_one(bin: &Path, flags: &[String], more: &[String], out: &Path) -> anyhow::Result<Report> {
    let status = Command::new(bin)
        .arg("run")
        .arg("--quiet")
        .arg("--json")
        .arg(out)
        .args(flags)
        .args(more)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    match status.code() {
        Some(0 | 1 | 130) => {}
        Some(2) => {
            return Err(UsageError(format!(
                "`{} run {} {}` refused its flags (its error is above)",
                bin.display(),
                flags.join(" "),
                more.join(" ")
            ))
            .into());
        }
        _ => bail!(
            "`{} run {} {}` exited with {status}: its error is above",
            bin.display(),
            flags.join(" "),
            more.join(" ")
        ),
    }
    crate::report::json::read(out).map_err(|e| {
        UsageError(format!(
            "{} wrote no tcpbench report ({e:#}); give a tcpbench binary",
            bin.display()
        ))
        .into()
    })
}

/// Side `name`'s server from its `--NAME-server CMD` (split as the side's flags are) and
/// the shared `--server-*` options of `args`.
pub fn server_spec(
    args: &crate::cli::AbArgs,
    name: &str,
    command: Option<&str>,
) -> Result<Option<ServerSpec>, UsageError> {
    let Some(command) = command else {
        return Ok(None);
    };
    let flag = format!("--{name}-server");
    let words = split_args(command)
        .map_err(|e| UsageError(format!("{flag}: {e}; quote the command as one string")))?;
    let spec = ServerSpec {
        ready: args.server_ready.clone(),
        ready_timeout: args.server_ready_timeout,
        stop: args.server_stop,
        ..ServerSpec::new(words)
    };
    spec.check()
        .map_err(|e| UsageError(format!("{flag}: {e}")))?;
    Ok(Some(spec))
}

/// A private folder for the runs' reports, removed when the A/B ends, however it ends.
struct RunsDir(PathBuf);

impl RunsDir {
    fn new() -> anyhow::Result<RunsDir> {
        let base = std::env::temp_dir().join(format!("tcpbench-ab-{}", std::process::id()));
        std::fs::create_dir_all(&base)
            .with_context(|| format!("cannot create {}", base.display()))?;
        Ok(RunsDir(base))
    }
}

impl Drop for RunsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
