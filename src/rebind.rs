//! `tcpbench rebind`: what SO_REUSEADDR really does when a server restarts while its
//! connections sit in TIME_WAIT.
//!
//! For each of the four combinations (old listener with or without SO_REUSEADDR × new socket
//! with or without), a server that closes first serves a few connections (so the kernel puts
//! their server ends in TIME_WAIT, which sock_diag confirms), stops, and a new socket tries to
//! bind the same address. On Linux accepted sockets inherit the listener's flag, and the bind
//! succeeds only when both set it (FreeBSD needs only the new one).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ServerClose, ServerConfig};
use crate::failure::errno_name;
use crate::observe::sockdiag::{Counter, Side, TIME_WAIT};
use crate::server::EchoServer;

/// One combination's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The address both servers listened on and the new socket bound (127.0.0.1 or `[::1]`).
    #[serde(default = "v4_loopback")]
    pub addr: SocketAddr,
    pub old_reuseaddr: bool,
    pub new_reuseaddr: bool,
    /// Server-side TIME_WAIT sockets on the port when the new bind was tried.
    pub time_wait: u32,
    /// `None`: the bind succeeded; else the errno's name.
    pub error: Option<String>,
}

fn v4_loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Runs the four combinations with `conns` connections each, on 127.0.0.1 or (`ipv6`) `[::1]`.
pub fn check(conns: u32, ipv6: bool) -> anyhow::Result<Vec<Attempt>> {
    let ip = match ipv6 {
        true => IpAddr::V6(Ipv6Addr::LOCALHOST),
        false => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let mut out = Vec::new();
    for old in [false, true] {
        for new in [false, true] {
            out.push(attempt(ip, old, new, conns)?);
        }
    }
    Ok(out)
}

fn attempt(ip: IpAddr, old: bool, new: bool, conns: u32) -> anyhow::Result<Attempt> {
    let server = EchoServer::start(ServerConfig {
        listen: SocketAddr::new(ip, 0),
        reuseaddr: old,
        close: ServerClose::First,
        close_after: Some(1),
        ..ServerConfig::default()
    })?;
    let addr = server.local_addr();
    for _ in 0..conns {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"x")?;
        // The echo, then the server's FIN: the server closed first.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)?;
    }
    server.stop();
    let time_wait = Counter::new(addr).count(Side::Server)?[TIME_WAIT];
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    sock.set_reuse_address(new)?;
    let error = sock
        .bind(&addr.into())
        .err()
        .map(|e| e.raw_os_error().map_or(e.to_string(), errno_name));
    Ok(Attempt {
        addr,
        old_reuseaddr: old,
        new_reuseaddr: new,
        time_wait,
        error,
    })
}

/// The 2×2 table as text.
pub fn render(attempts: &[Attempt]) -> String {
    let yn = |b: bool| if b { "SO_REUSEADDR" } else { "no SO_REUSEADDR" };
    let on = attempts
        .first()
        .map(|a| format!(" on {}", a.addr.ip()))
        .unwrap_or_default();
    let mut s = format!("rebind{on} after a server-first close, server-side TIME_WAIT present:\n");
    s.push_str(&format!(
        "  {:<18} {:<18} {:>10}  {}\n",
        "old listener", "new socket", "TIME_WAIT", "bind()"
    ));
    for a in attempts {
        s.push_str(&format!(
            "  {:<18} {:<18} {:>10}  {}\n",
            yn(a.old_reuseaddr),
            yn(a.new_reuseaddr),
            a.time_wait,
            a.error.as_deref().unwrap_or("ok")
        ));
    }
    s.push_str("On Linux the accepted sockets inherit the listener's SO_REUSEADDR: a restart binds only\nwhen both the old listener and the new socket set it.\n");
    s
}
