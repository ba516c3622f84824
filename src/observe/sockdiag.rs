//! Counting TCP sockets by state through NETLINK_SOCK_DIAG (inet_diag), filtered by port in
//! the kernel, with /proc/net/tcp{,6} as the fallback where netlink is not available.
//!
//! A dump request with a non-zero `id.sport` or `id.dport` makes the kernel skip every other
//! socket while it walks its tables, so counting the sockets of one port costs one walk and
//! only that port's replies. The wire format is small and fixed (linux/inet_diag.h), so it is
//! written here rather than pulled in through a netlink framework.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

/// The TCP states the kernel numbers 1..=11 (include/net/tcp_states.h).
pub const STATES: [&str; 11] = [
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

/// Index of TIME_WAIT in [`Counts`].
pub const TIME_WAIT: usize = 5;

/// Sockets per state, indexed by kernel state number − 1.
pub type Counts = [u32; 11];

/// Which end of the run's connections to count.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Side {
    /// Sockets whose remote port is the target port: the client ends.
    Client,
    /// Sockets whose local port is the target port: the server ends (and its listener).
    Server,
}

/// Where counts come from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    SockDiag,
    Procfs,
}

/// A counter of the sockets of one address family and port.
pub struct Counter {
    /// The netlink socket; `None` when netlink is not available and /proc is read instead.
    netlink: Option<OwnedFd>,
    ipv6: bool,
    port: u16,
    buf: Vec<u8>,
    seq: u32,
}

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// struct inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid.
const REQ_LEN: usize = 56;
/// struct inet_diag_msg up to and including the socket id's ports: family, state, …
const MSG_STATE_OFFSET: usize = 1;

impl Counter {
    /// A counter for the sockets of `target`'s family and port.
    pub fn new(target: SocketAddr) -> Counter {
        Counter {
            netlink: open_netlink().ok(),
            ipv6: target.is_ipv6(),
            port: target.port(),
            buf: vec![0; 64 * 1024],
            seq: 0,
        }
    }

    pub fn source(&self) -> Source {
        if self.netlink.is_some() {
            Source::SockDiag
        } else {
            Source::Procfs
        }
    }

    /// Counts the sockets of `side` by state.
    pub fn count(&mut self, side: Side) -> io::Result<Counts> {
        if self.netlink.is_some() {
            self.dump(side)
        } else {
            procfs_count(self.ipv6, self.port, side)
        }
    }

    fn dump(&mut self, side: Side) -> io::Result<Counts> {
        let fd = self.netlink.as_ref().expect("netlink socket");
        self.seq = self.seq.wrapping_add(1);
        let family = if self.ipv6 {
            libc::AF_INET6
        } else {
            libc::AF_INET
        } as u8;
        let req = dump_request(
            family,
            ALL_STATES,
            self.port,
            side == Side::Server,
            self.seq,
        );
        let mut counts = Counts::default();
        dump(fd, &mut self.buf, &req, self.seq, |body| {
            if let Some(&state) = body.get(MSG_STATE_OFFSET)
                && (1..=11).contains(&state)
            {
                counts[state as usize - 1] += 1;
            }
        })?;
        Ok(counts)
    }
}

/// A NETLINK_SOCK_DIAG socket.
#[cfg(target_os = "linux")]
pub(crate) fn open_netlink() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// sock_diag is Linux's: elsewhere the sampler falls back to /proc, which says why it fails.
#[cfg(not(target_os = "linux"))]
pub(crate) fn open_netlink() -> io::Result<OwnedFd> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "sock_diag is Linux-only",
    ))
}

/// Every TCP state, as the bit mask of an inet_diag request.
pub(crate) const ALL_STATES: u32 = 0xfff;

/// A dump request for TCP sockets of `family` (AF_INET/AF_INET6) in `states` (a bit per
/// state number) whose local (`local`) or remote port is `port`.
pub(crate) fn dump_request(family: u8, states: u32, port: u16, local: bool, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDRLEN + REQ_LEN);
    m.extend_from_slice(&((NLMSG_HDRLEN + REQ_LEN) as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
    m.extend_from_slice(&states.to_ne_bytes());
    let (sport, dport) = if local { (port, 0) } else { (0, port) };
    m.extend_from_slice(&sport.to_be_bytes());
    m.extend_from_slice(&dport.to_be_bytes());
    m.resize(NLMSG_HDRLEN + REQ_LEN, 0); // addresses, interface, cookie: any
    m
}

/// Sends the dump request `req` (sequence number `seq`) on `fd` and calls `each` with the
/// body of every inet_diag_msg of the reply, until the dump is done; `buf` receives the
/// datagrams.
pub(crate) fn dump(
    fd: &OwnedFd,
    buf: &mut [u8],
    req: &[u8],
    seq: u32,
    mut each: impl FnMut(&[u8]),
) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: a valid fd and a buffer of the given length.
    if unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    loop {
        // SAFETY: a valid fd and a writable buffer of the given length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if parse_replies(&buf[..n as usize], seq, &mut each)? {
            return Ok(());
        }
    }
}

/// Calls `each` with every inet_diag_msg of one datagram of replies; true once the dump is
/// done.
fn parse_replies(mut data: &[u8], seq: u32, each: &mut impl FnMut(&[u8])) -> io::Result<bool> {
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(data[4..6].try_into().unwrap());
        let msg_seq = u32::from_ne_bytes(data[8..12].try_into().unwrap());
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(io::Error::other("malformed netlink reply"));
        }
        let body = &data[NLMSG_HDRLEN..len];
        if msg_seq == seq {
            match kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let errno = body
                        .get(0..4)
                        .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap()));
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                SOCK_DIAG_BY_FAMILY => each(body),
                _ => {}
            }
        }
        data = &data[((len + 3) & !3).min(data.len())..];
    }
    Ok(false)
}

/// The /proc/net/tcp{,6} fallback: the same counts, read from text.
fn procfs_count(ipv6: bool, port: u16, side: Side) -> io::Result<Counts> {
    let path = if ipv6 {
        "/proc/net/tcp6"
    } else {
        "/proc/net/tcp"
    };
    let text = std::fs::read_to_string(path)?;
    let mut counts = Counts::default();
    let port_of = |field: &str| {
        field
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let mine = match side {
            Side::Server => port_of(f[1]) == Some(port),
            Side::Client => port_of(f[2]) == Some(port),
        };
        if let (true, Ok(state)) = (mine, u8::from_str_radix(f[3], 16))
            && (1..=11).contains(&state)
        {
            counts[state as usize - 1] += 1;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn request_has_the_kernel_layout() {
        let r = dump_request(libc::AF_INET as u8, ALL_STATES, 8888, false, 7);
        assert_eq!(r.len(), 72);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 72);
        assert_eq!(r[16], libc::AF_INET as u8);
        assert_eq!(u32::from_ne_bytes(r[20..24].try_into().unwrap()), 0xfff);
        assert_eq!(&r[24..26], &0u16.to_be_bytes(), "sport any");
        assert_eq!(&r[26..28], &8888u16.to_be_bytes(), "dport = target");
        let local = dump_request(libc::AF_INET6 as u8, 1, 8888, true, 7);
        assert_eq!(local[16], libc::AF_INET6 as u8);
        assert_eq!(
            &local[24..28],
            &[0x22, 0xb8, 0, 0],
            "sport = target, dport any"
        );
    }

    /// Both sources see the same sockets of a listener of our own.
    #[test]
    fn netlink_and_procfs_agree_on_real_sockets() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut counter = Counter::new(addr);
        if counter.source() != Source::SockDiag {
            println!("SKIPPED: NETLINK_SOCK_DIAG is not available here");
            return;
        }
        let client = counter.count(Side::Client).unwrap();
        let server = counter.count(Side::Server).unwrap();
        assert_eq!(client[0], 3, "three established client ends: {client:?}");
        assert_eq!(server[9], 1, "one listener: {server:?}");
        assert_eq!(
            server[0], 3,
            "three established server ends, not yet accepted: {server:?}"
        );
        assert_eq!(
            procfs_count(false, addr.port(), Side::Client).unwrap(),
            client
        );
        assert_eq!(
            procfs_count(false, addr.port(), Side::Server).unwrap(),
            server
        );
        drop(clients);
    }
}
