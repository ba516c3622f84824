//! `tcpbench trace`: one connection (or a few) captured and drawn as a ladder.

use crate::cli::TraceArgs;
use crate::config::UsageError;
use crate::output::{Format, Outputs};
use crate::trace::{self, TraceError};

pub fn trace(args: &TraceArgs) -> anyhow::Result<u8> {
    let mut cfg = crate::config::RunConfig::for_trace(args)?;
    if let Some(addr) = crate::load::probe::answering(&cfg) {
        cfg.target = crate::config::Target::External(addr);
    }
    let outputs = Outputs::new(Format::Text)
        .file("--json", Format::Json, args.json.as_deref())?
        .file("--svg", Format::Svg, args.svg.as_deref())?;
    if args.isolate {
        crate::isolate(&cfg.sysctls)?;
    }
    let opts = trace::TraceOptions {
        conns: args.conns,
        wait_time_wait: args.wait_time_wait,
        ..Default::default()
    };
    let traces = trace::trace(&cfg, &opts).map_err(trace_error)?;
    let written = outputs.write(&traces);
    Ok(super::status(&written, false, 0))
}

/// Errors of the user's making (permissions, a remote target) are usage errors: exit 2.
fn trace_error(e: TraceError) -> anyhow::Error {
    match e {
        TraceError::NotPermitted(_) | TraceError::NotLoopback(_) | TraceError::Usage(_) => {
            UsageError(e.to_string()).into()
        }
        e => e.into(),
    }
}
