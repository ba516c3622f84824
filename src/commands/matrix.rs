//! `tcpbench matrix SCENARIOS.toml`: the scenarios one after another, compared in one table.

use crate::cli::MatrixArgs;
use crate::matrix;

pub fn matrix(args: &MatrixArgs) -> anyhow::Result<u8> {
    let common = matrix::Common {
        isolate: args.isolate,
        target: args.target.clone(),
        allow_remote: args.allow_remote,
    };
    let scenarios = matrix::load(&args.file, &common)?;
    let outputs = super::outputs(super::summary(args.format), &args.out)?.input(&args.file)?;
    let m = matrix::run(&args.file, scenarios, args.repeat, args.out.quiet)?;
    let written = outputs.write(&m);
    Ok(super::status(
        &written,
        m.interrupted,
        i32::from(m.exit_code()),
    ))
}
