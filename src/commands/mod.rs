//! One file per subcommand. Each resolves its flags, checks its outputs (before any run),
//! runs, writes through [`crate::output`], and returns its exit status; [`dispatch`] picks
//! the file and [`status`] is the one place a status is decided.

pub mod ab;
pub mod compare;
pub mod matrix;
pub mod merge;
pub mod rebind;
pub mod run;
pub mod serve;
pub mod shell;
pub mod trace;

use std::path::Path;

use crate::cli::{self, Cli, Command};
use crate::config::UsageError;
use crate::output::{Format, Outputs, Written};
use crate::report::{self, Report};

/// Every connection succeeded (compare: no threshold failed).
pub const EXIT_OK: u8 = 0;
/// Some connections failed (compare: a threshold failed); the outputs were still written.
pub const EXIT_FAILED: u8 = 1;
/// Bad usage: one line naming the flag and the fix; nothing was run.
pub const EXIT_USAGE: u8 = 2;
/// An output could not be written; the others were, and the JSON is kept in a fallback file.
pub const EXIT_UNWRITTEN: u8 = 3;
/// Interrupted (Ctrl-C, SIGTERM): the outputs hold what was done until then.
pub const EXIT_INTERRUPTED: u8 = crate::load::control::EXIT_INTERRUPTED as u8;

/// Runs the command `cli` names (`run` when none) and returns its exit status.
pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        None => run::run(&cli.run),
        Some(Command::Run(args)) => run::run(&args),
        Some(Command::Serve(args)) => serve::serve(&args),
        Some(Command::Rebind(args)) => rebind::rebind(&args),
        Some(Command::Compare(args)) => compare::compare(&args),
        Some(Command::Matrix(args)) => matrix::matrix(&args),
        Some(Command::Merge(args)) => merge::merge(&args),
        Some(Command::Trace(args)) => trace::trace(&args),
        Some(Command::Ab(args)) => ab::ab(&args),
        Some(Command::Completions(args)) => shell::completions(&args),
        Some(Command::Man) => shell::man(),
    }
}

/// The exit status: an output not written comes first (a script must not take the files
/// for complete), then an interruption, then the result's own `code`.
pub fn status(written: &Written, interrupted: bool, code: i32) -> u8 {
    if !written.ok() {
        EXIT_UNWRITTEN
    } else if interrupted {
        EXIT_INTERRUPTED
    } else {
        u8::try_from(code).unwrap_or(EXIT_FAILED)
    }
}

/// The exit status of an error that ended a command: usage errors 2, the rest 1.
pub fn error_status(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    }
}

/// The summary that `--format` prints.
fn summary(format: cli::Format) -> Format {
    match format {
        cli::Format::Text => Format::Text,
        cli::Format::Markdown => Format::Markdown,
        cli::Format::Json => Format::Json,
    }
}

/// The shared `--json`, `--markdown` and `--html` flags, checked.
fn outputs(summary: Format, out: &cli::Outputs) -> Result<Outputs, UsageError> {
    Outputs::new(summary)
        .file("--json", Format::Json, out.json.as_deref())?
        .file("--markdown", Format::Markdown, out.markdown.as_deref())?
        .file("--html", Format::Html, out.html.as_deref())
}

/// A report file for compare and merge: any problem with it is bad input (exit 2).
fn read_report(path: &Path) -> Result<Report, UsageError> {
    report::json::read(path).map_err(|e| {
        UsageError(format!(
            "{e:#}; give a report written by `tcpbench run --json` or `tcpbench merge -o`"
        ))
    })
}
