//! `tcpbench serve`: the embedded server (echo, HTTP or RESP) on its own until SIGINT/SIGTERM or `--duration`, then
//! its counters on one line.

use crate::cli::ServeArgs;
use crate::config::ServerConfig;

pub fn serve(args: &ServeArgs) -> anyhow::Result<u8> {
    let cfg = ServerConfig::from_serve_args(args)?;
    let totals = crate::serve(&cfg, args.duration, |addr| {
        eprintln!(
            "tcpbench serve: listening on {addr} ({}, close {}, backlog {})",
            cfg.protocol, cfg.close, cfg.backlog
        );
    })?;
    let line = format!(
        "accepted {} connections, {} {} B in / {} B out, {} resets, {} idle timeouts, {} over the byte cap, {} accept errors\n",
        totals.accepted,
        match cfg.protocol {
            crate::config::ServerProtocol::Echo => "echoed".to_string(),
            _ => format!("{} answers,", totals.answers),
        },
        totals.bytes_in,
        totals.bytes_out,
        totals.resets,
        totals.idle_timeouts,
        totals.over_limit,
        totals.accept_errors
    );
    crate::output::write::stdout(line.as_bytes())?;
    Ok(super::EXIT_OK)
}
