//! The probe of a `--target` name that resolved to several addresses: one plain connect to
//! each, in the resolver's order, until one answers. Each probe connection is closed at once
//! with an RST (SO_LINGER 0), so it leaves no TIME_WAIT, and it is never counted in the
//! run's figures (the server's own counters see one connection more per answered probe).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::config::RunConfig;

/// The address to load when `--target` was a name with several addresses: the first that
/// answers. `None` (the configured target stays) for one address, an address typed as
/// such, or when none answers (the report's warning then names every address tried).
pub fn answering(cfg: &RunConfig) -> Option<SocketAddr> {
    let name = cfg.target_name.as_ref()?;
    if name.resolved.len() < 2 {
        return None;
    }
    first_answering(&name.resolved)
}

/// How long one probe's connect may take: on this host a listener answers in microseconds.
pub const TIMEOUT: Duration = Duration::from_millis(300);

/// The first of `addrs` that accepts a connection within [`TIMEOUT`]; `None` when none does.
pub fn first_answering(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    addrs.iter().copied().find(|addr| {
        TcpStream::connect_timeout(addr, TIMEOUT).is_ok_and(|s| {
            // RST on close: no TIME_WAIT left behind by the probe.
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            true
        })
    })
}
