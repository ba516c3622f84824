//! `tcpbench matrix SCENARIOS.toml`: named scenarios run one after another, compared in one
//! table with the scenarios as columns.
//!
//! A scenario is a set of `tcpbench run` flags written as TOML keys without their dashes
//! (`close = "rst"`, `server-backlog = 5`, `reuseaddr = true`, `sysctl = { "net.ipv4.tcp_tw_reuse" = "0" }`),
//! on top of the file's `[defaults]`. Each scenario is parsed by the same code as the command
//! line, so every flag works and every error is the flag's own, placed at its file and line.

mod render;
mod scenario;

use std::path::Path;

use serde::{Deserialize, Serialize};

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
}

/// The whole matrix, as `--json` writes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Matrix {
    pub schema: String,
    pub file: String,
    pub scenarios: Vec<Outcome>,
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
    };
    let n = scenarios.len();
    for (i, s) in scenarios.into_iter().enumerate() {
        eprintln!(
            "tcpbench matrix: [{}/{n}] {}: tcpbench run {}",
            i + 1,
            s.name,
            s.args.join(" ")
        );
        let report = crate::run_repeated(&s.config, repeat, quiet, |_, _| {})?;
        let interrupted = report.interrupted;
        m.scenarios.push(Outcome {
            name: s.name,
            args: s.args,
            report,
        });
        if interrupted {
            eprintln!("tcpbench matrix: interrupted; reporting the scenarios run so far");
            break;
        }
    }
    Ok(m)
}
