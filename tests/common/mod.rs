//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

use clap::Parser;
use tcpbench::cli::{Cli, Command};
use tcpbench::config::RunConfig;

/// Load tests take this lock so only one churns connections at a time on the 2 cores.
pub fn heavy() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A run configuration from command-line flags, as the binary would build it.
pub fn config(flags: &[&str]) -> RunConfig {
    let argv = ["tcpbench", "run", "--quiet"].iter().chain(flags);
    let Some(Command::Run(args)) = Cli::try_parse_from(argv).expect("flags parse").command else {
        unreachable!("run was given")
    };
    RunConfig::from_args(&args).expect("flags are valid")
}

/// The tcpbench binary under test.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_tcpbench"))
}
