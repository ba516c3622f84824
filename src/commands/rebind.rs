//! `tcpbench rebind`: the SO_REUSEADDR restart table, printed and optionally as JSON.

use crate::cli::RebindArgs;
use crate::output::{Format, Outputs};

pub fn rebind(args: &RebindArgs) -> anyhow::Result<u8> {
    let outputs = Outputs::new(Format::Text).file("--json", Format::Json, args.json.as_deref())?;
    let attempts = crate::rebind::check(args.conns, args.ipv6)?;
    let written = outputs.write(&attempts);
    Ok(super::status(&written, false, 0))
}
