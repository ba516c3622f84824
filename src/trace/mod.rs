//! `tcpbench trace`: one connection (or a few, one after another) opened, used and closed
//! by `run`'s own connection code, with every segment of it captured on lo and the states
//! both ends pass through observed in the kernel — then drawn as the textbook's ladder and
//! checked against the textbook's claims.
//!
//! - [`capture`] (Linux): an AF_PACKET socket on lo with a BPF filter on the traced port,
//!   kernel timestamps, headers parsed with etherparse.
//! - [`crate::observe::tracefs`] (Linux): the tracepoint `sock:inet_sock_set_state` through a private
//!   tracefs instance; [`states`] (Linux): sock_diag for the 4-tuple — TIME_WAIT and its
//!   timer, and polling in a tight loop where tracefs is not available.
//! - [`build`] turns what was observed into a [`Trace`] ([`model`]), and [`checks`] gives
//!   the verdicts; [`render_text`] and [`render_svg`] draw it.
//!
//! Elsewhere than Linux, [`trace`] returns [`TraceError::Unsupported`]; the model, the
//! checks and the renderers work anywhere.

pub mod build;
pub mod checks;
mod ladder;
pub mod model;
mod svg;

#[cfg(target_os = "linux")]
pub mod capture;
#[cfg(target_os = "linux")]
pub mod clock;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
pub mod states;

use std::net::SocketAddr;

pub use ladder::render_text;
pub use model::{
    Check, Observed, Segment, Side, StateChange, StateSource, Teardown, TeardownKind, TimeWait,
    Trace,
};
pub use svg::render_svg;

use crate::config::RunConfig;

/// What to trace besides the run configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceOptions {
    /// Connections, one after another; several let the ISNs be compared.
    pub conns: u32,
    /// Wait until each TIME_WAIT socket is gone (up to 62 s) to measure how long it lasts;
    /// otherwise read the kernel's remaining timer once.
    pub wait_time_wait: bool,
    /// Poll sock_diag for the states even where the tracepoint is available: the fallback's
    /// view, to compare with the tracepoint's or to test it.
    pub poll_sock_diag: bool,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            conns: 1,
            wait_time_wait: false,
            poll_sock_diag: false,
        }
    }
}

/// Why a trace could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The capture needs privileges this process does not have (root or CAP_NET_RAW).
    #[error("{0}")]
    NotPermitted(String),
    /// The target is on another host: the capture only watches this host's loopback.
    #[error(
        "--target {0} is not on this host's loopback: the capture watches only lo; trace a \
         loopback target (127.0.0.1, ::1) or the embedded server"
    )]
    NotLoopback(SocketAddr),
    #[error("{0}")]
    Usage(String),
    #[error("packet capture: {0}")]
    Capture(String),
    #[error("sock_diag: {0}")]
    SockDiag(String),
    #[error("tracefs: {0}")]
    Tracefs(String),
    #[error("cannot start the embedded server: {0}")]
    Server(#[source] std::io::Error),
    #[error("cannot build the connection's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// No SYN of the connection reached the capture: it cannot be traced.
    #[error(
        "connection {conn}: the capture saw no SYN to {target} (is the target reached over lo \
         in this network namespace?)"
    )]
    NothingCaptured { conn: u32, target: SocketAddr },
    #[error("tracing needs Linux (AF_PACKET, sock_diag, tracefs)")]
    Unsupported,
}

/// Traces `opts.conns` connections made as `cfg` says, one after another, against the
/// embedded server (started here) or a loopback `--target`; one [`Trace`] per connection.
///
/// Runs in the caller's network namespace: run it in a fresh one
/// ([`crate::observe::netns::enter_fresh`]) for a loopback of its own. Needs root or
/// CAP_NET_RAW for the capture ([`TraceError::NotPermitted`] otherwise); tracefs (or
/// CAP_SYS_ADMIN to mount it privately) for the tracepoint, else the states are polled.
#[cfg(target_os = "linux")]
pub fn trace(cfg: &RunConfig, opts: &TraceOptions) -> Result<Vec<Trace>, TraceError> {
    run::trace(cfg, opts)
}

/// Tracing needs Linux: this stand-in says so.
#[cfg(not(target_os = "linux"))]
pub fn trace(_cfg: &RunConfig, _opts: &TraceOptions) -> Result<Vec<Trace>, TraceError> {
    Err(TraceError::Unsupported)
}
