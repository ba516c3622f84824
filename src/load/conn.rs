//! One connection's life: socket → handshake → K echoes → close, timed at the phase edges.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::time::timeout;

use super::error::{ErrorKind, Failure, Phase};
use crate::config::{CloseMode, PortStrategy, RunConfig};
use crate::sockopt::Local;

/// Binds tried before an explicit-port connection gives up (ports held by listeners).
const PORT_TRIES: u32 = 16;

/// The explicit ports of `--port-strategy explicit`, handed out in turn to all threads.
pub struct PortCycle {
    lo: u16,
    len: u32,
    next: AtomicU32,
}

impl PortCycle {
    pub fn new(ports: PortStrategy) -> Option<PortCycle> {
        match ports {
            PortStrategy::Explicit { lo, hi } => Some(PortCycle {
                lo,
                len: u32::from(hi - lo) + 1,
                next: AtomicU32::new(0),
            }),
            PortStrategy::Kernel | PortStrategy::BindNoPort => None,
        }
    }

    fn next(&self) -> u16 {
        self.lo + (self.next.fetch_add(1, Relaxed) % self.len) as u16
    }
}
use crate::{netio, sockopt};

/// A worker's reusable buffers and per-connection tallies; allocated once per worker.
pub struct Scratch {
    /// The request payload: a pattern, so a wrong echo is detected byte for byte.
    request: Vec<u8>,
    /// Where echoes and the server's last bytes are read into.
    buf: Vec<u8>,
    /// Round trips of the current connection, in ns; committed only if it succeeds.
    pub echo_ns: Vec<u64>,
    /// Bytes written and read by the current connection.
    pub sent: u64,
    pub received: u64,
}

impl Scratch {
    pub fn new(cfg: &RunConfig) -> Self {
        Scratch {
            request: (0..cfg.payload).map(|i| b'a' + (i % 26) as u8).collect(),
            buf: vec![0; cfg.payload.max(4096)],
            echo_ns: Vec::with_capacity(cfg.requests.min(1024) as usize),
            sent: 0,
            received: 0,
        }
    }
}

/// The instants at which a successful connection crossed its phase edges.
#[derive(Copy, Clone, Debug)]
pub struct Cycle {
    /// connect() called (after socket() and its options).
    pub connect: Instant,
    /// The handshake completed.
    pub established: Instant,
    /// The close sequence began.
    pub close: Instant,
    /// The close sequence ended: EOF seen, close() returned.
    pub end: Instant,
}

fn ns(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_nanos() as u64
}

impl Cycle {
    pub fn connect_ns(&self) -> u64 {
        ns(self.connect, self.established)
    }
    pub fn close_ns(&self) -> u64 {
        ns(self.close, self.end)
    }
    pub fn total_ns(&self, start: Instant) -> u64 {
        ns(start, self.end)
    }
}

/// Runs one connection against `target`, from `source` and a port of `ports` when given.
/// `Scratch::echo_ns`, `sent` and `received` describe it afterwards, whether it succeeded
/// or not.
pub async fn run(
    cfg: &RunConfig,
    target: SocketAddr,
    source: Option<IpAddr>,
    ports: Option<&PortCycle>,
    s: &mut Scratch,
) -> Result<Cycle, Failure> {
    s.echo_ns.clear();
    s.sent = 0;
    s.received = 0;
    let opts = &cfg.socket;
    let (connect, stream) = handshake(target, cfg, source, ports).await?;
    let established = Instant::now();

    let mut edge = established;
    for _ in 0..cfg.requests {
        echo_once(&stream, s, opts.io_timeout).await?;
        let now = Instant::now();
        s.echo_ns.push(ns(edge, now));
        edge = now;
    }

    if let Some(hold) = cfg.hold {
        tokio::time::sleep(hold).await;
    }
    let close = Instant::now();
    finish(stream, cfg, s).await?;
    Ok(Cycle {
        connect,
        established,
        close,
        end: Instant::now(),
    })
}

/// socket(), connect(): returns when connect() was called, and the established stream.
///
/// On loopback a non-blocking connect() usually completes the handshake before it returns
/// EINPROGRESS; one getpeername() tells, and saves a trip through epoll_wait.
async fn handshake(
    target: SocketAddr,
    cfg: &RunConfig,
    source: Option<IpAddr>,
    ports: Option<&PortCycle>,
) -> Result<(Instant, TcpStream), Failure> {
    let fail = |e: io::Error| Failure::from_io(Phase::Connect, &e);
    let mut tries = 1;
    let sock = loop {
        let local = Local {
            ip: source,
            port: ports.map(PortCycle::next),
        };
        match sockopt::client_socket(&target, &cfg.socket, local) {
            Err(e)
                if local.port.is_some()
                    && e.raw_os_error() == Some(libc::EADDRINUSE)
                    && tries < PORT_TRIES =>
            {
                tries += 1
            }
            r => break r.map_err(fail)?,
        }
    };
    let connect = Instant::now();
    let done = match sock.connect(&target.into()) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => netio::connected(&sock),
        Err(e) => return Err(fail(e)),
    };
    let stream = TcpStream::from_std(sock.into()).map_err(fail)?;
    if !done {
        match timeout(cfg.socket.connect_timeout, stream.writable()).await {
            Ok(ready) => ready.map_err(fail)?,
            Err(_) => return Err(Failure::new(Phase::Connect, ErrorKind::ConnectTimeout)),
        }
        if let Some(e) = stream.take_error().map_err(fail)? {
            return Err(fail(e));
        }
    }
    Ok((connect, stream))
}

/// Writes the request and reads back exactly as many bytes, which must match.
async fn echo_once(
    stream: &TcpStream,
    s: &mut Scratch,
    io_timeout: Duration,
) -> Result<(), Failure> {
    let fail = |e: io::Error| Failure::from_io(Phase::Echo, &e);
    let len = s.request.len();
    within(io_timeout, Phase::Echo, netio::send_all(stream, &s.request))
        .await?
        .map_err(fail)?;
    s.sent += len as u64;
    let buf = &mut s.buf[..len];
    let mut got = 0;
    while got < len {
        let n = within(
            io_timeout,
            Phase::Echo,
            netio::recv(stream, &mut buf[got..]),
        )
        .await?
        .map_err(fail)?;
        if n == 0 {
            s.received += got as u64;
            return Err(Failure::new(Phase::Echo, ErrorKind::ShortEcho));
        }
        got += n;
    }
    s.received += len as u64;
    if buf != &s.request[..] {
        return Err(Failure::new(Phase::Echo, ErrorKind::EchoMismatch));
    }
    Ok(())
}

/// The close sequence of the configured mode.
async fn finish(stream: TcpStream, cfg: &RunConfig, s: &mut Scratch) -> Result<(), Failure> {
    let fail = |e: io::Error| Failure::from_io(Phase::Close, &e);
    match cfg.socket.close {
        CloseMode::Rst => {
            sockopt::set_abortive(&stream).map_err(fail)?;
            drop(stream);
            Ok(())
        }
        CloseMode::ClientNowait => close(stream, cfg).await,
        CloseMode::Server => {
            drain(&stream, cfg, s).await?;
            close(stream, cfg).await
        }
        CloseMode::Client => {
            socket2::SockRef::from(&stream)
                .shutdown(std::net::Shutdown::Write)
                .map_err(fail)?;
            // What comes before the server's FIN is its farewell.
            let tail = drain(&stream, cfg, s).await?;
            close(stream, cfg).await?;
            match cfg.expect_farewell.map(|n| n as u64) {
                Some(want) if tail < want => Err(Failure::new(Phase::Close, ErrorKind::ShortEcho)),
                Some(want) if tail > want => {
                    Err(Failure::new(Phase::Close, ErrorKind::EchoMismatch))
                }
                _ => Ok(()),
            }
        }
    }
}

/// Reads to the peer's FIN; returns how many bytes came before it.
async fn drain(stream: &TcpStream, cfg: &RunConfig, s: &mut Scratch) -> Result<u64, Failure> {
    let mut tail = 0u64;
    loop {
        let n = within(
            cfg.socket.io_timeout,
            Phase::Close,
            netio::recv(stream, &mut s.buf),
        )
        .await?
        .map_err(|e| Failure::from_io(Phase::Close, &e))?;
        if n == 0 {
            s.received += tail;
            return Ok(tail);
        }
        tail += n as u64;
    }
}

/// close(): off the runtime thread when SO_LINGER can make it block.
async fn close(stream: TcpStream, cfg: &RunConfig) -> Result<(), Failure> {
    if sockopt::close_blocks(cfg.socket.linger) {
        sockopt::close_lingering(stream)
            .await
            .map_err(|e| Failure::from_io(Phase::Close, &e))
    } else {
        drop(stream);
        Ok(())
    }
}

/// Awaits `fut` for at most `limit`; running out is a timeout of `phase`.
async fn within<T>(
    limit: Duration,
    phase: Phase,
    fut: impl Future<Output = T>,
) -> Result<T, Failure> {
    timeout(limit, fut).await.map_err(|_| {
        let kind = match phase {
            Phase::Connect => ErrorKind::ConnectTimeout,
            Phase::Echo | Phase::Close => ErrorKind::IoTimeout,
        };
        Failure::new(phase, kind)
    })
}
