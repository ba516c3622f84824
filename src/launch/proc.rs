//! What the kernel says about a server process: whether something LISTENs on an address
//! (/proc/thread-self/net/tcp{,6}, the calling thread's namespace), whether a process has
//! exited. Elsewhere than Linux: a connect that succeeds, and "not known to have exited".

use std::net::{IpAddr, SocketAddr};

/// Whether a socket LISTENs on `addr` (or on the wildcard address of its port) in this
/// thread's network namespace.
pub fn listening(addr: SocketAddr) -> bool {
    #[cfg(target_os = "linux")]
    {
        if let Some(found) = listening_proc(addr) {
            return found;
        }
    }
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(100)).is_ok()
}

/// The LISTEN check from /proc; `None` when the tables cannot be read.
#[cfg(target_os = "linux")]
fn listening_proc(addr: SocketAddr) -> Option<bool> {
    let port = format!("{:04X}", addr.port());
    let mut wanted = vec![
        (false, hex(addr.ip())),
        (false, hex(unspecified(addr.ip()))),
    ];
    if let IpAddr::V4(v4) = addr.ip() {
        // An IPv6 socket takes IPv4 too unless it is v6only: `[::]:P`, `[::ffff:a.b.c.d]:P`.
        wanted.push((true, hex(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))));
        wanted.push((true, hex(IpAddr::V6(v4.to_ipv6_mapped()))));
    }
    let mut readable = false;
    for v6 in [false, true] {
        let table = if v6 { "tcp6" } else { "tcp" };
        let Ok(text) = std::fs::read_to_string(format!("/proc/thread-self/net/{table}")) else {
            continue;
        };
        readable = true;
        let hit = text.lines().skip(1).any(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() > 3
                && f[3] == "0A"
                && f[1].rsplit_once(':').is_some_and(|(ip, p)| {
                    p == port && wanted.iter().any(|(w6, w)| *w6 == v6 && w == ip)
                })
        });
        if hit {
            return Some(true);
        }
    }
    readable.then_some(false)
}

#[cfg(target_os = "linux")]
fn unspecified(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

/// An address as /proc/net/tcp{,6} prints it: each 32-bit word of the network-order bytes
/// as a host-order hex number.
#[cfg(target_os = "linux")]
fn hex(ip: IpAddr) -> String {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    bytes
        .chunks(4)
        .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
        .collect()
}

/// Whether process `pid` has exited: a zombie not yet reaped, or gone. Polled without
/// reaping, so the PID (and the process group named by it) stays ours until we reap it.
#[cfg(target_os = "linux")]
pub fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name's closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// Without /proc: not known to have exited (the waits are bounded by their timeouts).
#[cfg(not(target_os = "linux"))]
pub fn exited(_pid: u32) -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_as_proc_net_tcp_does() {
        if cfg!(target_endian = "little") {
            assert_eq!(hex("127.0.0.1".parse().unwrap()), "0100007F");
            assert_eq!(
                hex("::1".parse().unwrap()),
                "00000000000000000000000001000000"
            );
        }
    }

    #[test]
    fn a_listener_is_seen_and_a_closed_port_is_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(listening(addr));
        drop(l);
        assert!(!listening(addr));
        assert!(!exited(std::process::id()));
    }
}
