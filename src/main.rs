//! `tcpbench`: parse the command line, dispatch to the command, exit with a status that tells.
//!
//! Exit status: 0 every connection succeeded; 1 some failed (the reports are still written;
//! `compare`: a threshold failed); 2 bad usage (one line naming the flag and the fix, before
//! anything runs, output paths included); 3 a report could not be written (the others were,
//! the summary was printed, and the JSON is kept in a fallback file named on stderr);
//! 130 interrupted. 3 wins over 130, which wins over 1.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tcpbench::cli::Cli;
use tcpbench::commands;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say(&format!("tcpbench: error: {}", one_line(&e)));
            ExitCode::from(commands::error_status(&e))
        }
    }
}

/// An error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Help and version print as clap prints them; a usage error becomes one line, exit 2.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    say(&format!(
        "tcpbench: error: {}; see tcpbench --help",
        tcpbench::cli::one_line(&e)
    ));
    ExitCode::from(commands::EXIT_USAGE)
}

/// One line on stderr; a closed stderr loses it, nothing else.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
