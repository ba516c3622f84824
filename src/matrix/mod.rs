//! `tcpbench matrix SCENARIOS.toml`: named scenarios run one after another, compared in one
//! table with the scenarios as columns.
//!
//! A scenario is a set of `tcpbench run` flags written as TOML keys without their dashes
//! (`close = "rst"`, `server-backlog = 5`, `reuseaddr = true`, `sysctl = { "net.ipv4.tcp_tw_reuse" = "0" }`),
//! on top of the file's `[defaults]`. Each scenario is parsed by the same code as the command
//! line, so every flag works and every error is the flag's own, placed at its file and line.
//!
//! A scenario (or `[defaults]`) with `server.command` starts that real server for each of its
//! runs, in the run's namespace under `--isolate`, loads it instead of the embedded server,
//! and stops it after ([`crate::launch`]). A server that does not listen fails its scenario
//! (with the server's output tail) and the matrix goes on with the next.

mod render;
mod scenario;
mod server;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::launch::{LaunchError, Running, ServerRun, ServerSpec};
use crate::load::control::{EXIT_INTERRUPTED, Signals};
use crate::report::Report;
pub use render::{render_html_table, render_json, render_markdown, render_text, table};
pub use scenario::{Common, Scenario, load, parse};

/// The schema of `matrix --json`.
pub const SCHEMA: &str = "tcpbench.matrix.v1";

/// One scenario's outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    pub name: String,
    pub args: Vec<String>,
    pub report: Report,
    /// The real server it started, when it had `server.command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Served>,
}

/// A scenario's real server: the command as written and how each start of it went.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Served {
    /// `server.command`, placeholders unfilled.
    pub command: Vec<String>,
    /// `server.ready`.
    pub ready: String,
    /// One per run of the scenario (`--repeat N`: N), in order.
    pub runs: Vec<ServerRun>,
}

impl Served {
    fn new(spec: &ServerSpec, runs: Vec<ServerRun>) -> Served {
        Served {
            command: spec.command.clone(),
            ready: spec.ready.clone(),
            runs,
        }
    }

    /// A start that did not listen, or a server that did not last its run.
    pub fn failed(&self) -> bool {
        self.runs.iter().any(|r| r.failed)
    }
}

/// A scenario that could not run: its server did not start.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failed {
    pub name: String,
    pub args: Vec<String>,
    pub server: Served,
    /// Why, in one line.
    pub error: String,
}

/// The whole matrix, as `--json` writes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Matrix {
    pub schema: String,
    pub file: String,
    /// The scenarios that ran, in order.
    pub scenarios: Vec<Outcome>,
    /// The scenarios whose server did not start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Failed>,
    /// Ctrl-C ended the matrix: the scenarios after the interrupted one did not run.
    #[serde(default)]
    pub interrupted: bool,
}

impl Matrix {
    /// 130 interrupted; 1 a scenario failed (its server did not start or did not last its
    /// run) or some connections failed; 0 otherwise.
    pub fn exit_code(&self) -> u8 {
        let failed = !self.failed.is_empty()
            || self.scenarios.iter().any(|s| {
                s.report.totals.failed > 0 || s.server.as_ref().is_some_and(Served::failed)
            });
        if self.interrupted {
            EXIT_INTERRUPTED as u8
        } else {
            u8::from(failed)
        }
    }
}

/// Runs `scenarios` of `file` one after another, each `repeat` times; an interrupted
/// scenario ends the matrix with the scenarios run so far.
pub fn run(
    file: &Path,
    scenarios: Vec<Scenario>,
    repeat: u32,
    quiet: bool,
) -> anyhow::Result<Matrix> {
    let mut m = Matrix {
        schema: SCHEMA.into(),
        file: file.display().to_string(),
        scenarios: Vec::new(),
        failed: Vec::new(),
        interrupted: false,
    };
    let mut ctrl_c = CtrlC::new()?;
    let n = scenarios.len();
    for (i, s) in scenarios.into_iter().enumerate() {
        if ctrl_c.seen() {
            m.interrupted = true;
            break;
        }
        eprintln!(
            "tcpbench matrix: [{}/{n}] {}: tcpbench run {}",
            i + 1,
            s.name,
            s.args.join(" ")
        );
        let (report, server) = match &s.server {
            None => (
                crate::run_repeated(&s.config, repeat, quiet, |_, _| {})?,
                None,
            ),
            Some(spec) => match run_served(&s.config, spec, repeat, quiet, &mut ctrl_c) {
                Ok((report, runs)) => (report, Some(Served::new(spec, runs))),
                Err(Unserved::Other(e)) => return Err(e),
                Err(Unserved::Launch(e, runs)) => {
                    eprintln!("tcpbench matrix: {}: {e}", s.name);
                    for line in runs.last().map(|r| r.tail.as_slice()).unwrap_or_default() {
                        eprintln!("  | {line}");
                    }
                    m.interrupted = matches!(e, LaunchError::Interrupted(_));
                    m.failed.push(Failed {
                        name: s.name,
                        args: s.args,
                        server: Served::new(spec, runs),
                        error: e.to_string(),
                    });
                    if m.interrupted {
                        break;
                    }
                    continue;
                }
            },
        };
        if let Some(bad) = server
            .as_ref()
            .and_then(|s| s.runs.iter().find(|r| r.failed))
        {
            eprintln!("tcpbench matrix: {}: server {}", s.name, bad.exit);
        }
        let interrupted = report.interrupted;
        m.scenarios.push(Outcome {
            name: s.name,
            args: s.args,
            report,
            server,
        });
        if interrupted {
            m.interrupted = true;
            eprintln!("tcpbench matrix: interrupted; reporting the scenarios run so far");
            break;
        }
    }
    Ok(m)
}

/// Why a scenario with a server did not give a report.
enum Unserved {
    /// Its server did not start; the starts so far, the failed one last.
    Launch(LaunchError, Vec<ServerRun>),
    /// Anything else: it ends the matrix, as for a scenario without a server.
    Other(anyhow::Error),
}

/// Runs `cfg` `repeat` times, each against a fresh start of `spec` in the run's namespace
/// (started after `--isolate` moved this thread, stopped after the run), merged as
/// [`crate::run_repeated`] merges; returns each start's outcome too.
fn run_served(
    cfg: &RunConfig,
    spec: &ServerSpec,
    repeat: u32,
    quiet: bool,
    ctrl_c: &mut CtrlC,
) -> Result<(Report, Vec<ServerRun>), Unserved> {
    let later = RunConfig {
        start_at: None,
        ..cfg.clone()
    };
    let mut reports = Vec::new();
    let mut runs = Vec::new();
    for i in 0..repeat.max(1) {
        let mut server: Option<Running> = None;
        let result = crate::run_with(if i == 0 { cfg } else { &later }, quiet, || {
            let running = spec.start(&mut || ctrl_c.seen())?;
            let addr = running.addr();
            server = Some(running);
            Ok(Some(addr))
        });
        if let Some(s) = server.take() {
            runs.push(s.stop());
        }
        match result {
            Ok(r) => {
                let stop = r.interrupted || r.aborted.is_some();
                reports.push(r);
                if stop {
                    break;
                }
            }
            Err(e) => {
                return Err(match e.downcast::<LaunchError>() {
                    Ok(e) => {
                        runs.extend(e.run().cloned());
                        Unserved::Launch(e, runs)
                    }
                    Err(e) => Unserved::Other(e),
                });
            }
        }
    }
    Ok((Report::merge_runs(&reports), runs))
}

/// Ctrl-C outside a run: asked between scenarios and while a server starts. (A run handles
/// its own Ctrl-C; this sees that one too, so the matrix stops after the run it ended.)
struct CtrlC {
    rt: tokio::runtime::Runtime,
    /// SIGINT and SIGTERM, caught from the matrix's start to its end.
    signals: Signals,
    seen: bool,
}

impl CtrlC {
    fn new() -> std::io::Result<CtrlC> {
        let (rt, signals) = crate::load::control::signal_runtime()?;
        Ok(CtrlC {
            rt,
            signals,
            seen: false,
        })
    }

    /// Whether a signal has come since the matrix started; waits at most a millisecond
    /// (the runtime must park once for its driver to read a pending signal).
    fn seen(&mut self) -> bool {
        if !self.seen {
            let signals = &mut self.signals;
            self.seen = self.rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_millis(1), signals.recv())
                    .await
                    .is_ok()
            });
        }
        self.seen
    }
}
