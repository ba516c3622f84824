//! The sock_diag side of a trace (Linux only): the sockets of the traced port with their
//! 4-tuples, states and timers. It confirms TIME_WAIT and reads its timer (`idiag_expires`),
//! tells when a connection has settled, and, where tracefs is not available, polls the
//! states of both ends in a tight loop ([`Poller`]).
//!
//! The request and reply layouts are linux/inet_diag.h's, as in `observe::sockdiag`, which
//! counts sockets; here each socket's id and timer are read too. A dump with `id.sport` (or
//! `id.dport`) set makes the kernel skip every socket of other ports while it walks its
//! tables; timewait and request sockets are in the same tables and come with the rest.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::clock::mono_ns;
use super::model::tcp_state;
use crate::observe::sockdiag;

/// struct inet_diag_msg up to and including idiag_expires.
const MSG_LEN: usize = 56;
/// Every state but LISTEN (bit 10): the listener is not part of a connection.
const STATES: u32 = 0xfff & !(1 << tcp_state::LISTEN);

/// One socket as sock_diag lists it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiagSocket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The kernel's state number; a timewait socket reports its substate (TIME_WAIT, or
    /// FIN_WAIT2 for an orphan waiting for the peer's FIN).
    pub state: u8,
    /// Its pending timer, ms (for a timewait socket: until it is removed).
    pub expires_ms: u32,
}

/// A NETLINK_SOCK_DIAG socket for the dumps of one port.
pub struct Diag {
    fd: OwnedFd,
    families: Vec<u8>,
    port: u16,
    buf: Vec<u8>,
    seq: u32,
}

impl Diag {
    /// For the sockets of `target`'s port, of its family; with `dual_stack`, of IPv6 too for
    /// an IPv4 target (a dual-stack server's sockets are IPv6 with mapped addresses).
    pub fn open(target: SocketAddr, dual_stack: bool) -> io::Result<Diag> {
        let fd = sockdiag::open_netlink()?;
        let families = if target.is_ipv4() && dual_stack {
            vec![libc::AF_INET as u8, libc::AF_INET6 as u8]
        } else if target.is_ipv4() {
            vec![libc::AF_INET as u8]
        } else {
            vec![libc::AF_INET6 as u8]
        };
        Ok(Diag {
            fd,
            families,
            port: target.port(),
            buf: vec![0; 64 * 1024],
            seq: 0,
        })
    }

    /// Every non-listening TCP socket whose local or remote port is the target's.
    pub fn sockets(&mut self) -> io::Result<Vec<DiagSocket>> {
        let mut out = Vec::new();
        for family in self.families.clone() {
            for local in [true, false] {
                self.dump(family, local, &mut out)?;
            }
        }
        Ok(out)
    }

    /// The sockets of the 4-tuple `client`–`server`, as (client end, server end).
    pub fn tuple(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
    ) -> io::Result<(Option<DiagSocket>, Option<DiagSocket>)> {
        let all = self.sockets()?;
        let find = |l: SocketAddr, r: SocketAddr| {
            all.iter().find(|s| s.local == l && s.remote == r).copied()
        };
        Ok((find(client, server), find(server, client)))
    }

    fn dump(&mut self, family: u8, local: bool, out: &mut Vec<DiagSocket>) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let req = sockdiag::dump_request(family, STATES, self.port, local, self.seq);
        sockdiag::dump(&self.fd, &mut self.buf, &req, self.seq, |body| {
            out.extend(socket(body))
        })
    }
}

/// The address of an inet_diag_sockid field: 4 bytes for IPv4, 16 for IPv6.
fn address(family: u8, raw: &[u8]) -> IpAddr {
    if family == libc::AF_INET as u8 {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    } else {
        let b: [u8; 16] = raw[..16].try_into().expect("16 bytes");
        IpAddr::V6(Ipv6Addr::from(b)).to_canonical()
    }
}

/// One inet_diag_msg.
fn socket(body: &[u8]) -> Option<DiagSocket> {
    if body.len() < MSG_LEN {
        return None;
    }
    let family = body[0];
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    Some(DiagSocket {
        local: SocketAddr::new(address(family, &body[8..24]), port(4)),
        remote: SocketAddr::new(address(family, &body[24..40]), port(6)),
        state: body[1],
        expires_ms: u32::from_ne_bytes(body[52..56].try_into().expect("4 bytes")),
    })
}

/// A state a poll saw, or the disappearance of a socket (`state` CLOSE).
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub mono_ns: i64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub old: Option<u8>,
    pub state: u8,
}

/// Polls sock_diag for the target port's sockets as fast as it can, on a thread of its
/// own, recording each change of each 4-tuple's state. What lives shorter than one poll
/// (tens of µs: the handshake's states on loopback, often FIN_WAIT1 and LAST_ACK) is missed.
pub struct Poller {
    /// Set by [`Poller::stop`]; the polling thread checks it between polls.
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<Vec<Seen>>>,
}

impl Poller {
    /// Starts polling with `diag` (opened by the caller, so in the caller's namespace);
    /// returns once the first poll is done, so the connection that follows is watched from
    /// its start.
    pub fn start(mut diag: Diag) -> io::Result<Poller> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tcpbench-diag-poll".into())
            .spawn(move || {
                let mut seen: Vec<Seen> = Vec::new();
                let mut last: Vec<(SocketAddr, SocketAddr, u8)> = Vec::new();
                while !flag.load(Ordering::Relaxed) {
                    let now = diag.sockets()?;
                    let t = mono_ns();
                    for s in &now {
                        let prev = last.iter().find(|l| l.0 == s.local && l.1 == s.remote);
                        if prev.map(|p| p.2) != Some(s.state) {
                            seen.push(Seen {
                                mono_ns: t,
                                local: s.local,
                                remote: s.remote,
                                old: prev.map(|p| p.2),
                                state: s.state,
                            });
                        }
                    }
                    for l in &last {
                        if !now.iter().any(|s| s.local == l.0 && s.remote == l.1) {
                            seen.push(Seen {
                                mono_ns: t,
                                local: l.0,
                                remote: l.1,
                                old: Some(l.2),
                                state: tcp_state::CLOSE,
                            });
                        }
                    }
                    last = now.iter().map(|s| (s.local, s.remote, s.state)).collect();
                    let _ = ready_tx.send(());
                    std::thread::yield_now();
                }
                Ok(seen)
            })?;
        // An error ends the thread before it is ready: `stop` reports it.
        let _ = ready_rx.recv();
        Ok(Poller { stop, thread })
    }

    /// Stops polling and returns what it saw.
    pub fn stop(self) -> io::Result<Vec<Seen>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the sock_diag poller panicked")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_not_asked_for() {
        assert_eq!(STATES & (1 << 10), 0, "no LISTEN");
        assert_eq!(
            STATES & (1 << tcp_state::TIME_WAIT),
            1 << tcp_state::TIME_WAIT
        );
    }

    #[test]
    fn reads_a_timewait_socket() {
        let mut body = vec![0u8; 72];
        body[0] = libc::AF_INET as u8;
        body[1] = tcp_state::TIME_WAIT;
        body[4..6].copy_from_slice(&50000u16.to_be_bytes());
        body[6..8].copy_from_slice(&8080u16.to_be_bytes());
        body[8..12].copy_from_slice(&[127, 0, 0, 1]);
        body[24..28].copy_from_slice(&[127, 0, 0, 2]);
        body[52..56].copy_from_slice(&59_000u32.to_ne_bytes());
        let s = socket(&body).expect("a socket");
        assert_eq!(s.local, "127.0.0.1:50000".parse().unwrap());
        assert_eq!(s.remote, "127.0.0.2:8080".parse().unwrap());
        assert_eq!((s.state, s.expires_ms), (6, 59_000));
    }

    /// The kernel lists a real connection's ends by 4-tuple.
    #[test]
    fn finds_both_ends_of_a_real_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let c = std::net::TcpStream::connect(server).unwrap();
        let client = c.local_addr().unwrap();
        let Ok(mut diag) = Diag::open(server, false) else {
            println!("SKIPPED: NETLINK_SOCK_DIAG is not available here");
            return;
        };
        let (cs, ss) = diag.tuple(client, server).unwrap();
        assert_eq!(cs.map(|s| s.state), Some(tcp_state::ESTABLISHED));
        assert_eq!(ss.map(|s| s.state), Some(tcp_state::ESTABLISHED));
    }
}
