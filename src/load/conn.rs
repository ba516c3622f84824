//! One connection's life: socket → handshake → K echoes → close, timed at the phase edges.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

use super::error::{ErrorKind, Failure, Phase};
use crate::config::{CloseMode, RunConfig};
use crate::sockopt;

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

/// Runs one connection against `target`, from `source` when given. `Scratch::echo_ns`,
/// `sent` and `received` describe it afterwards, whether it succeeded or not.
pub async fn run(
    cfg: &RunConfig,
    target: SocketAddr,
    source: Option<IpAddr>,
    s: &mut Scratch,
) -> Result<Cycle, Failure> {
    s.echo_ns.clear();
    s.sent = 0;
    s.received = 0;
    let opts = &cfg.socket;

    let sock = sockopt::client_socket(&target, opts, source)
        .map_err(|e| Failure::from_io(Phase::Connect, &e))?;
    let connect = Instant::now();
    let socket = TcpSocket::from_std_stream(sock.into());
    let mut stream = match timeout(opts.connect_timeout, socket.connect(target)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(Failure::from_io(Phase::Connect, &e)),
        Err(_) => return Err(Failure::new(Phase::Connect, ErrorKind::ConnectTimeout)),
    };
    let established = Instant::now();

    let mut edge = established;
    for _ in 0..cfg.requests {
        echo_once(&mut stream, s, opts.io_timeout).await?;
        let now = Instant::now();
        s.echo_ns.push(ns(edge, now));
        edge = now;
    }

    let close = edge;
    finish(stream, cfg, s).await?;
    Ok(Cycle {
        connect,
        established,
        close,
        end: Instant::now(),
    })
}

/// Writes the request and reads back exactly as many bytes, which must match.
async fn echo_once(
    stream: &mut TcpStream,
    s: &mut Scratch,
    io_timeout: Duration,
) -> Result<(), Failure> {
    let fail = |e: io::Error| Failure::from_io(Phase::Echo, &e);
    let len = s.request.len();
    within(io_timeout, Phase::Echo, stream.write_all(&s.request))
        .await?
        .map_err(fail)?;
    s.sent += len as u64;
    let buf = &mut s.buf[..len];
    let mut got = 0;
    while got < len {
        let n = within(io_timeout, Phase::Echo, stream.read(&mut buf[got..]))
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
async fn finish(mut stream: TcpStream, cfg: &RunConfig, s: &mut Scratch) -> Result<(), Failure> {
    let io_timeout = cfg.socket.io_timeout;
    let fail = |e: io::Error| Failure::from_io(Phase::Close, &e);
    match cfg.socket.close {
        CloseMode::Rst => {
            sockopt::set_abortive(&stream).map_err(fail)?;
            drop(stream);
            return Ok(());
        }
        CloseMode::Client => {
            within(io_timeout, Phase::Close, stream.shutdown())
                .await?
                .map_err(fail)?;
        }
        CloseMode::Server => {}
    }
    // Read to the peer's FIN; in client mode these are the server's farewell bytes.
    let mut tail = 0u64;
    loop {
        let n = within(io_timeout, Phase::Close, stream.read(&mut s.buf))
            .await?
            .map_err(fail)?;
        if n == 0 {
            break;
        }
        tail += n as u64;
    }
    s.received += tail;
    if sockopt::close_blocks(cfg.socket.linger) {
        sockopt::close_lingering(stream).await.map_err(fail)?;
    } else {
        drop(stream);
    }
    match cfg.expect_farewell.map(|n| n as u64) {
        Some(want) if cfg.socket.close == CloseMode::Client && tail < want => {
            Err(Failure::new(Phase::Close, ErrorKind::ShortEcho))
        }
        Some(want) if cfg.socket.close == CloseMode::Client && tail > want => {
            Err(Failure::new(Phase::Close, ErrorKind::EchoMismatch))
        }
        _ => Ok(()),
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
