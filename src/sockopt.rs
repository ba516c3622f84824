//! Socket options, set in one place through socket2, with the kernel's caveats.
//!
//! - SO_LINGER with a non-zero time makes close() block the calling thread until the data is
//!   acknowledged or the time runs out, whatever O_NONBLOCK says. Such a close must never run
//!   on a runtime thread: see [`close`].
//! - SO_LINGER 0 makes close() send an RST and skip TIME_WAIT (an abortive close).
//! - tokio's own `TcpListener::bind` turns SO_REUSEADDR on silently; listeners are built here so
//!   the flag is what the user asked for.
//! - TCP_INFO right after the handshake holds the kernel's one RTT sample of it (`tcpi_rtt`,
//!   µs: the SYN's send to its SYN+ACK's processing) and the SYN's retransmissions
//!   (`tcpi_total_retrans`, no data having been sent yet): see [`handshake_info`].
//! - IP_BIND_ADDRESS_NO_PORT (Linux ≥ 4.2) lets a socket bound to a source address pick its
//!   port at connect() time, per 4-tuple, instead of at bind() time from a range shared by all.
//! - TCP_FASTOPEN_CONNECT (Linux ≥ 4.11) keeps connect() + write(): with a cached cookie,
//!   connect() returns 0 at once without sending anything and the first write() sends the
//!   SYN with the data; without one, the connect is an ordinary one whose SYN asks for a
//!   cookie. A socket that never writes never sends its SYN. Both sides need
//!   net.ipv4.tcp_fastopen (bit 1 client, bit 2 server; per network namespace).
//! - TCP_DEFER_ACCEPT makes the listener drop the handshake's bare final ACK
//!   (TCPDeferAcceptDrop) and queue the connection only when data or a FIN arrives; after
//!   about the given seconds (counted in SYN+ACK retransmits) the connection is accepted anyway.
//! - TCP_QUICKACK is not permanent: the kernel falls back to delayed ACKs on its own, so it
//!   is set again after each read.
//! - TCP_SYNCNT bounds the SYN retransmits of one connect(), overriding
//!   net.ipv4.tcp_syn_retries for that socket.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::config::{ClientSocket, PortStrategy, ServerConfig};

/// The local end a client socket binds before connect(); all `None`: the kernel picks.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct Local {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
}

/// A new non-blocking client socket with the configured options, bound as `local` says.
pub fn client_socket(target: &SocketAddr, opts: &ClientSocket, local: Local) -> io::Result<Socket> {
    let sock = Socket::new(
        Domain::for_address(*target),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    if opts.reuseaddr {
        sock.set_reuse_address(true)?;
    }
    if opts.nodelay {
        sock.set_tcp_nodelay(true)?;
    }
    if opts.linger.is_some() {
        sock.set_linger(opts.linger)?;
    }
    if opts.fastopen {
        set_int(&sock, libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT, 1)?;
    }
    if let Some(n) = opts.syn_retries {
        set_int(&sock, libc::IPPROTO_TCP, libc::TCP_SYNCNT, n.into())?;
    }
    let any = || match target {
        SocketAddr::V4(_) => IpAddr::from([0u8; 4]),
        SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
    };
    match (local.port, local.ip, opts.ports) {
        (Some(port), ip, _) => {
            // SO_REUSEADDR (on by default here) lets the bind take a port whose last
            // connection is still in TIME_WAIT.
            sock.bind(&SocketAddr::new(ip.unwrap_or_else(any), port).into())?;
        }
        (None, Some(ip), _) => {
            set_bind_address_no_port(&sock)?;
            sock.bind(&SocketAddr::new(ip, 0).into())?;
        }
        (None, None, PortStrategy::BindNoPort) => {
            set_bind_address_no_port(&sock)?;
            sock.bind(&SocketAddr::new(any(), 0).into())?;
        }
        (None, None, _) => {}
    }
    Ok(sock)
}

/// A listening, non-blocking socket for the echo server.
pub fn listener(cfg: &ServerConfig) -> io::Result<Socket> {
    let sock = Socket::new(
        Domain::for_address(cfg.listen),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    sock.set_reuse_address(cfg.reuseaddr)?;
    if cfg.reuseport {
        sock.set_reuse_port(true)?;
    }
    sock.bind(&cfg.listen.into())?;
    if let Some(qlen) = cfg.fastopen {
        let qlen = libc::c_int::try_from(qlen).unwrap_or(libc::c_int::MAX);
        set_int(&sock, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, qlen)?;
    }
    if let Some(d) = cfg.defer_accept {
        let secs = libc::c_int::try_from(d.as_secs()).unwrap_or(libc::c_int::MAX);
        set_int(&sock, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, secs)?;
    }
    sock.listen(i32::try_from(cfg.backlog).unwrap_or(i32::MAX))?;
    Ok(sock)
}

/// Options the server sets on each accepted socket.
pub fn accepted(stream: &tokio::net::TcpStream, cfg: &ServerConfig) -> io::Result<()> {
    let sock = SockRef::from(stream);
    if cfg.nodelay {
        sock.set_tcp_nodelay(true)?;
    }
    if cfg.linger.is_some() {
        sock.set_linger(cfg.linger)?;
    }
    Ok(())
}

/// TCP_QUICKACK on: the ACK for what was just read goes out at once. The kernel turns it
/// off again by itself, so the server sets it after every read.
pub fn quickack(stream: &tokio::net::TcpStream) -> io::Result<()> {
    let sock = SockRef::from(stream);
    set_int(&sock, libc::IPPROTO_TCP, libc::TCP_QUICKACK, 1)
}

/// SO_LINGER 0: the next close sends an RST and leaves no TIME_WAIT.
pub fn set_abortive(stream: &tokio::net::TcpStream) -> io::Result<()> {
    SockRef::from(stream).set_linger(Some(Duration::ZERO))
}

/// Closes a socket that was given SO_LINGER `linger`. A non-zero linger time makes close()
/// block until the peer acknowledged everything or the time ran out, so that close runs on
/// the blocking pool and the runtime thread goes on; any other close is a plain drop.
pub async fn close(stream: tokio::net::TcpStream, linger: Option<Duration>) -> io::Result<()> {
    if linger.is_none_or(|l| l.is_zero()) {
        drop(stream);
        return Ok(());
    }
    let std = stream.into_std()?;
    tokio::task::spawn_blocking(move || drop(std))
        .await
        .map_err(io::Error::other)
}

/// What the kernel knows of a handshake just completed.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HandshakeInfo {
    /// `tcpi_rtt`, µs. Right after the handshake this is its one RTT sample: from the SYN's
    /// transmission (the last one, if it was retransmitted and timestamps gave a sample) to
    /// the SYN+ACK's processing. 0: no sample (Karn's rule on a retransmitted SYN, no
    /// timestamps).
    pub rtt_us: u32,
    /// `tcpi_total_retrans`: segments retransmitted so far; before any data, the SYN's.
    pub retransmits: u32,
}

/// One getsockopt(TCP_INFO) on a connection whose handshake just completed.
#[cfg(target_os = "linux")]
pub fn handshake_info(sock: &impl std::os::fd::AsRawFd) -> io::Result<HandshakeInfo> {
    // SAFETY: tcp_info is plain data; zero is valid for every field.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid fd, and a tcp_info of the length given; the kernel writes at most
    // `len` bytes (fewer on an older kernel, and the zeroed rest reads as "none").
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(HandshakeInfo {
        rtt_us: info.tcpi_rtt,
        retransmits: info.tcpi_total_retrans,
    })
}

/// TCP_INFO is Linux's: elsewhere there is no kernel view of the handshake.
#[cfg(not(target_os = "linux"))]
pub fn handshake_info(_sock: &impl std::os::fd::AsRawFd) -> io::Result<HandshakeInfo> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "TCP_INFO is Linux-only",
    ))
}

fn set_bind_address_no_port(sock: &Socket) -> io::Result<()> {
    set_int(sock, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)
}

/// An option whose value is an int: IP_BIND_ADDRESS_NO_PORT and the TCP_* ones here.
fn set_int(sock: &Socket, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: every caller passes an option that takes an int.
    unsafe { setsockopt(sock, level, name, &v) }
}

/// setsockopt(2) for the options socket2 does not have.
///
/// # Safety
/// `T` must be the type the kernel expects for `level`/`name`, and any pointers inside it
/// must be valid for the call.
unsafe fn setsockopt<T>(
    sock: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: a valid fd, and a pointer to a `T` with its size; every caller passes the
    // type the option expects.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(sock),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// SO_ATTACH_REUSEPORT_CBPF (include/uapi/asm-generic/socket.h); libc has it for Android only.
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// Steers each new connection to the reuseport listener whose index is the CPU the SYN is
/// processed on (on loopback, the connecting thread's CPU): a two-instruction cBPF program,
/// `return cpu`. An index past the group falls back to the kernel's hash.
pub fn steer_by_cpu(listener: &Socket) -> io::Result<()> {
    let mut prog = [
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_A) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: the option takes a sock_fprog, and `fprog` points at `prog`, which outlives
    // the call.
    unsafe { setsockopt(listener, libc::SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog) }
}
