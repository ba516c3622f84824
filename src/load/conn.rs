//! One connection's life: socket → handshake → K exchanges → close, timed at the phase edges.
//!
//! One cycle for every protocol: the run's [`Protocol`] writes each request and its
//! [`Decoder`] says when the response is complete (the echo protocol compares the bytes as
//! they arrive). The cycle also notes how the connection ended, as its syscalls saw it
//! ([`Close`]): who sent the first FIN, or an RST.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::time::timeout;

use super::proto::{Decoder, Progress, ProtoError, Protocol};
use crate::config::{CloseMode, PortStrategy, RunConfig};
use crate::failure::{ErrorKind, Failure, Phase};
use crate::sockopt::{HandshakeInfo, Local};
use crate::stats::Close;

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

/// Largest read buffer a worker keeps: echoes are compared chunk by chunk as they arrive.
const READ_BUF: usize = 64 * 1024;
/// The read buffer of the protocols other than echo: their decoders keep what they need.
const RESPONSE_BUF: usize = 16 * 1024;

/// Resolves to `true` once the run is told to stop (Ctrl-C); every worker holds a clone.
pub type StopSignal = tokio::sync::watch::Receiver<bool>;

/// A worker's reusable buffers and per-connection tallies; allocated once per worker.
pub struct Scratch {
    /// What a request and a response are, shared by all the workers of a run.
    protocol: Arc<Protocol>,
    /// This worker's response decoder, reset before each exchange.
    decoder: Decoder,
    /// The request being sent.
    request: Vec<u8>,
    /// Where responses and the server's last bytes are read into.
    buf: Vec<u8>,
    /// Round trips of the current connection, in ns; committed only if it succeeds.
    pub echo_ns: Vec<u64>,
    /// Bytes written and read by the current connection, partial ones included.
    pub sent: u64,
    pub received: u64,
    /// Of `received`, the bytes that came after our FIN and before the server's (`--close
    /// client` only): a half-close farewell.
    pub farewell: u64,
    /// Where the connection in flight is: its phase and when it started. The worker's
    /// thread reads it (and the bytes above) for a connection it cut off after a stop.
    pub in_flight: Option<(Phase, Instant)>,
    /// How the last connection ended, once it was established.
    pub close: Option<Close>,
    /// A read of the current connection saw the server's FIN before we sent ours.
    peer_fin: bool,
}

impl Scratch {
    pub fn new(cfg: &RunConfig, protocol: Arc<Protocol>) -> Self {
        let buf = match &*protocol {
            Protocol::Echo(e) => e.payload().len().clamp(4096, READ_BUF),
            _ => RESPONSE_BUF,
        };
        Scratch {
            decoder: protocol.decoder(cfg.max_response),
            protocol,
            request: Vec::new(),
            buf: vec![0; buf],
            echo_ns: Vec::with_capacity(cfg.requests.min(1024) as usize),
            sent: 0,
            received: 0,
            farewell: 0,
            in_flight: None,
            close: None,
            peer_fin: false,
        }
    }

    /// Marks a connection as in flight from `start`, in its connect phase.
    pub fn start(&mut self, start: Instant) {
        self.in_flight = Some((Phase::Connect, start));
    }

    /// Clears the tallies of the last connection, before the next one.
    pub(super) fn reset(&mut self) {
        self.echo_ns.clear();
        self.sent = 0;
        self.received = 0;
        self.farewell = 0;
        self.close = None;
        self.peer_fin = false;
    }

    /// Writes request `i` (the last one when `last`) and readies the decoder for its
    /// response; `by_server`: the server closes after it.
    pub(super) fn next_request(&mut self, i: u32, last: bool, by_server: bool) {
        self.request.clear();
        self.protocol
            .request(u64::from(i), last, by_server, &mut self.request);
        self.decoder.reset();
    }

    /// The request being sent.
    pub(super) fn request(&self) -> &[u8] {
        &self.request
    }

    /// Where a read goes.
    pub(super) fn buf_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Judges the `n` bytes just read into the buffer (0: the peer's FIN): `true` once
    /// the response is complete.
    pub(super) fn take(&mut self, n: usize) -> Result<bool, Failure> {
        let echo = matches!(*self.protocol, Protocol::Echo(_));
        let Scratch {
            decoder,
            buf,
            received,
            peer_fin,
            ..
        } = self;
        judge(decoder, &buf[..n], received, peer_fin, echo)
    }

    /// Whether the server ended the connection (its FIN, or a response that says it closes)
    /// before the last request: `closed_early`.
    pub(super) fn peer_ended(&self) -> bool {
        self.peer_fin || self.decoder.peer_closes()
    }

    /// `--close client`: whether the server's FIN must come before ours (its response said
    /// it closes, and the FIN has not been seen).
    pub(super) fn awaits_server_fin(&self, cfg: &RunConfig) -> bool {
        cfg.requests > 0 && self.decoder.peer_closes() && !self.peer_fin
    }

    /// Whether a read saw the server's FIN before we sent ours.
    pub(super) fn peer_fin(&self) -> bool {
        self.peer_fin
    }

    /// Notes the server's FIN.
    pub(super) fn saw_peer_fin(&mut self) {
        self.peer_fin = true;
    }

    /// Marks the connection in flight as being in `phase` (the worker marks its start).
    pub(super) fn enter(&mut self, phase: Phase) {
        if let Some((_, start)) = self.in_flight {
            self.in_flight = Some((phase, start));
        }
    }
}

/// The instants at which a successful connection crossed its phase edges.
#[derive(Copy, Clone, Debug)]
pub struct Cycle {
    /// connect() called (after socket() and its options).
    pub connect: Instant,
    /// The kernel reported the handshake complete: connect() returned 0, getpeername()
    /// succeeded after its EINPROGRESS, or the writable event came; before the socket was
    /// registered with the runtime.
    pub established: Instant,
    /// The close sequence began.
    pub close: Instant,
    /// The close sequence ended: EOF seen, close() returned.
    pub end: Instant,
    /// The kernel's view of the handshake (TCP_INFO), unless `--no-tcp-info`.
    pub handshake: Option<HandshakeInfo>,
}

pub(super) fn ns(from: Instant, to: Instant) -> u64 {
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
/// `Scratch::echo_ns`, `sent`, `received`, `farewell` and `close` describe it afterwards,
/// whether it succeeded or not. `stop` cuts a `--hold` short.
///
/// A target must send back exactly its responses: bytes beyond one, or queued when the
/// close starts, fail the connection as `extra_bytes`; only what comes after our FIN
/// (`--close client`) is a farewell.
pub async fn run(
    cfg: &RunConfig,
    target: SocketAddr,
    source: Option<IpAddr>,
    ports: Option<&PortCycle>,
    stop: &mut StopSignal,
    s: &mut Scratch,
) -> Result<Cycle, Failure> {
    s.reset();
    let Handshake {
        connect,
        established,
        mut info,
        stream,
    } = handshake(target, cfg, source, ports).await?;
    s.enter(Phase::Echo);
    // With a Fast Open cookie connect() returns before the SYN leaves: the handshake, and
    // the kernel's sample of it, happen in the first exchange (the SYN+ACK acks the request).
    let deferred = cfg.socket.fastopen && info.is_some_and(|k| k.rtt_us == 0);
    // The first echo is timed from here, once the socket is registered with the runtime:
    // that registration belongs to neither phase.
    let after_first = deferred.then_some(&mut info);
    let exchanged = match exchange(&stream, cfg, Instant::now(), stop, s, after_first).await {
        // With --close server, the close's own read sees whatever else comes.
        Ok(()) if cfg.socket.close != CloseMode::Server => nothing_queued(&stream, s),
        done => done,
    };
    if let Err(f) = exchanged {
        // Unread bytes make close() send an RST, whatever SO_LINGER says.
        let unread = netio::queued(&stream).is_ok_and(|n| n > 0);
        s.close = Some(observed(Some(&f), unread || aborts(cfg, false), s.peer_fin));
        // Even a failed connection closes the configured way: a lingering close must not
        // block this runtime thread.
        let _ = close(stream, cfg).await;
        return Err(f);
    }
    let close = Instant::now();
    s.enter(Phase::Close);
    let finished = finish(stream, cfg, s).await;
    s.close = Some(observed(
        finished.as_ref().err(),
        aborts(cfg, true),
        s.peer_fin,
    ));
    finished?;
    Ok(Cycle {
        connect,
        established,
        close,
        end: Instant::now(),
        handshake: info,
    })
}

/// How a connection ended, from what its syscalls saw: an RST met, or sent (`abortive`),
/// else whose FIN came first.
pub(super) fn observed(failure: Option<&Failure>, abortive: bool, peer_fin: bool) -> Close {
    if failure.is_some_and(|f| f.kind == ErrorKind::Reset) {
        Close::RstReceived
    } else if abortive {
        Close::RstSent
    } else if peer_fin {
        Close::ServerFirst
    } else {
        Close::ClientFirst
    }
}

/// Whether our close() sends an RST: SO_LINGER 0, or `--close rst` on the way that ends
/// in [`finish`] (`finished`).
pub(super) fn aborts(cfg: &RunConfig, finished: bool) -> bool {
    cfg.socket.linger == Some(Duration::ZERO) || (finished && cfg.socket.close == CloseMode::Rst)
}

/// The requests, each timed from the end of the one before, then the `--hold`. A server
/// that says it closes before the last request ends the connection as `closed_early`.
async fn exchange(
    stream: &TcpStream,
    cfg: &RunConfig,
    ready: Instant,
    stop: &mut StopSignal,
    s: &mut Scratch,
    mut after_first: Option<&mut Option<HandshakeInfo>>,
) -> Result<(), Failure> {
    let mut edge = ready;
    let by_server = cfg.socket.close == CloseMode::Server;
    for i in 0..cfg.requests {
        let last = i + 1 == cfg.requests;
        exchange_once(stream, s, i, last, by_server, cfg.socket.io_timeout).await?;
        let now = Instant::now();
        s.echo_ns.push(ns(edge, now));
        edge = now;
        // Before any later request's ACK adds a sample of its own to tcpi_rtt.
        if let Some(info) = after_first.take() {
            *info = sockopt::handshake_info(stream).ok();
        }
        if !last && s.peer_ended() {
            return Err(Failure::new(Phase::Echo, ErrorKind::ClosedEarly));
        }
    }
    if let Some(hold) = cfg.hold {
        tokio::select! {
            _ = tokio::time::sleep(hold) => {}
            _ = stop.wait_for(|stopping| *stopping) => {}
        }
    }
    Ok(())
}

/// A connection whose handshake completed, and when its edges were crossed.
struct Handshake {
    /// Just before connect() was called.
    connect: Instant,
    /// When the kernel said the connection is established: connect() returned 0, or the
    /// getpeername() right after its EINPROGRESS succeeded, or (the handshake still in
    /// flight) the writable event came. Taken before the socket is registered with the
    /// runtime, so our own bookkeeping (epoll_ctl, tokio's registration) is not in it.
    established: Instant,
    /// One TCP_INFO read after the edge (when configured); a failed read gives none. Under
    /// Fast Open with a cookie it holds no sample yet, and is read again after the first
    /// exchange.
    info: Option<HandshakeInfo>,
    stream: TcpStream,
}

/// socket(), connect(): the established stream, and when connect() was called and when
/// the kernel reported the connection established.
///
/// On loopback a non-blocking connect() usually completes the handshake before it returns
/// EINPROGRESS (the SYN, the server's SYN+ACK and our ACK are all processed in softirq
/// within the call); one getpeername() tells, and saves a trip through epoll_wait.
async fn handshake(
    target: SocketAddr,
    cfg: &RunConfig,
    source: Option<IpAddr>,
    ports: Option<&PortCycle>,
) -> Result<Handshake, Failure> {
    let fail = |e: io::Error| Failure::from_io(Phase::Connect, &e);
    let sock = open(target, cfg, source, ports)?;
    let connect = Instant::now();
    let done = match sock.connect(&target.into()) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => netio::connected(&sock),
        Err(e) => return Err(fail(e)),
    };
    // The edge, when the kernel already said so: before the registration below.
    let early = done.then(Instant::now);
    let stream = TcpStream::from_std(sock.into()).map_err(fail)?;
    let established = match early {
        Some(at) => at,
        None => {
            match timeout(cfg.socket.connect_timeout, stream.writable()).await {
                Ok(ready) => ready.map_err(fail)?,
                Err(_) => return Err(Failure::new(Phase::Connect, ErrorKind::ConnectTimeout)),
            }
            let at = Instant::now();
            if let Some(e) = stream.take_error().map_err(fail)? {
                return Err(fail(e));
            }
            at
        }
    };
    let info = match cfg.socket.tcp_info {
        true => sockopt::handshake_info(&stream).ok(),
        false => None,
    };
    Ok(Handshake {
        connect,
        established,
        info,
        stream,
    })
}

/// socket() with the configured options, bound to `source` and a port of `ports` when
/// given (a port held by a listener is skipped, up to [`PORT_TRIES`]): what both engines
/// connect.
pub(super) fn open(
    target: SocketAddr,
    cfg: &RunConfig,
    source: Option<IpAddr>,
    ports: Option<&PortCycle>,
) -> Result<socket2::Socket, Failure> {
    let mut tries = 1;
    loop {
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
            r => return r.map_err(|e| Failure::from_bind(&e)),
        }
    }
}

/// Exchange `i`: writes the request while reading the response (a request larger than
/// the socket buffers would otherwise deadlock against an echo), the decoder judging each
/// chunk as it arrives. The whole exchange has `io_timeout` to finish: a server that drips
/// its response a byte at a time, or never ends it, cannot keep a connection alive. Reads
/// take what the buffer holds, so bytes beyond the response are seen.
async fn exchange_once(
    stream: &TcpStream,
    s: &mut Scratch,
    i: u32,
    last: bool,
    by_server: bool,
    io_timeout: Duration,
) -> Result<(), Failure> {
    let fail = |e: io::Error| Failure::from_io(Phase::Echo, &e);
    s.next_request(i, last, by_server);
    let Scratch {
        protocol,
        decoder,
        request,
        buf,
        sent,
        received,
        peer_fin,
        ..
    } = s;
    let echo = matches!(**protocol, Protocol::Echo(_));
    let send = async { netio::send_all(stream, request, sent).await.map_err(fail) };
    let recv = async {
        loop {
            let n = netio::recv(stream, buf).await.map_err(fail)?;
            if judge(decoder, &buf[..n], received, peer_fin, echo)? {
                return Ok(());
            }
        }
    };
    within(io_timeout, Phase::Echo, async {
        tokio::try_join!(send, recv).map(|_| ())
    })
    .await?
}

/// Feeds one read's `chunk` (empty: the peer's FIN) to `decoder`, counting its bytes:
/// `true` once the response is complete. Bytes beyond the response fail as `extra_bytes`.
fn judge(
    decoder: &mut Decoder,
    chunk: &[u8],
    received: &mut u64,
    peer_fin: &mut bool,
    echo: bool,
) -> Result<bool, Failure> {
    let progress = if chunk.is_empty() {
        *peer_fin = true;
        decoder.eof()
    } else {
        *received += chunk.len() as u64;
        decoder.feed(chunk)
    };
    match progress.map_err(|e| proto_failure(&e, echo))? {
        Progress::NeedMore => Ok(false),
        Progress::Complete { extra: 0, .. } => Ok(true),
        Progress::Complete { .. } => Err(Failure::new(Phase::Echo, ErrorKind::ExtraBytes)),
    }
}

/// The failure a decoder's verdict is; the echo protocol keeps its own names for a short
/// and a wrong echo.
fn proto_failure(e: &ProtoError, echo: bool) -> Failure {
    let kind = match e {
        ProtoError::HttpStatus(status) => return Failure::http_status(Phase::Echo, *status),
        ProtoError::Protocol(_) => ErrorKind::ProtocolError,
        ProtoError::TooLarge { .. } => ErrorKind::ResponseTooLarge,
        ProtoError::RespError(_) => ErrorKind::RespError,
        ProtoError::Closed if echo => ErrorKind::ShortEcho,
        ProtoError::Closed => ErrorKind::ShortResponse,
        ProtoError::Mismatch if echo => ErrorKind::EchoMismatch,
        ProtoError::Mismatch => ErrorKind::ResponseMismatch,
    };
    Failure::new(Phase::Echo, kind)
}

/// Fails the connection as `extra_bytes` when anything is queued unread as the close
/// starts: the target sent more than its responses; those bytes count as received. A FIN
/// already queued means the server closed first. One recv(MSG_PEEK) when nothing is there.
fn nothing_queued(stream: &TcpStream, s: &mut Scratch) -> Result<(), Failure> {
    let fail = |e: io::Error| Failure::from_io(Phase::Echo, &e);
    match netio::pending(stream).map_err(fail)? {
        netio::Pending::Nothing => Ok(()),
        netio::Pending::Fin => {
            s.peer_fin = true;
            Ok(())
        }
        netio::Pending::Data => {
            s.received += netio::queued(stream).map_err(fail)? as u64;
            Err(Failure::new(Phase::Echo, ErrorKind::ExtraBytes))
        }
    }
}

/// The close sequence of the configured mode; every path ends in [`close`].
async fn finish(stream: TcpStream, cfg: &RunConfig, s: &mut Scratch) -> Result<(), Failure> {
    let outcome = match cfg.socket.close {
        CloseMode::Rst => {
            // SO_LINGER 0: the close below sends an RST and never blocks.
            sockopt::set_abortive(&stream).map_err(|e| Failure::from_io(Phase::Close, &e))
        }
        CloseMode::ClientNowait => Ok(()),
        // The server closes first, right after its response: anything before its FIN is
        // extra.
        CloseMode::Server => server_fin(&stream, cfg, s).await,
        // The server said it closes after its response: wait for its FIN before ours.
        CloseMode::Client => match client_fin(&stream, cfg, s).await {
            Err(f) => Err(f),
            // What comes after our FIN and before the server's is its farewell.
            Ok(()) => drain(&stream, cfg, s)
                .await
                .and_then(|tail| farewell(cfg, s, tail)),
        },
    };
    let closed = close(stream, cfg).await;
    outcome.and(closed)
}

/// Notes the `tail` read after our FIN and before the server's as its farewell; one
/// other than `--server-farewell`'s fails as `farewell_mismatch`.
pub(super) fn farewell(cfg: &RunConfig, s: &mut Scratch, tail: u64) -> Result<(), Failure> {
    s.farewell = tail;
    match cfg.expect_farewell {
        Some(want) if tail != want as u64 => {
            Err(Failure::new(Phase::Close, ErrorKind::FarewellMismatch))
        }
        _ => Ok(()),
    }
}

/// Our FIN; when the server said it closes after its response, only once its FIN came.
async fn client_fin(stream: &TcpStream, cfg: &RunConfig, s: &mut Scratch) -> Result<(), Failure> {
    if s.awaits_server_fin(cfg) {
        server_fin(stream, cfg, s).await?;
    }
    shutdown_write(stream)
}

/// Reads to the server's FIN, which must come with no byte before it.
async fn server_fin(stream: &TcpStream, cfg: &RunConfig, s: &mut Scratch) -> Result<(), Failure> {
    let tail = drain(stream, cfg, s).await?;
    s.peer_fin = true;
    match tail {
        0 => Ok(()),
        _ => Err(Failure::new(Phase::Close, ErrorKind::ExtraBytes)),
    }
}

/// shutdown(SHUT_WR): our FIN. ENOTCONN means the peer reset the connection first; the
/// socket's pending error says how.
fn shutdown_write(stream: &TcpStream) -> Result<(), Failure> {
    let sock = socket2::SockRef::from(stream);
    shutdown_outcome(sock.shutdown(std::net::Shutdown::Write), sock)
}

/// What shutdown(SHUT_WR)'s result `r` on `sock` means for the connection; both engines'.
pub(super) fn shutdown_outcome(
    r: io::Result<()>,
    sock: socket2::SockRef<'_>,
) -> Result<(), Failure> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Err(match sock.take_error() {
            Ok(Some(pending)) => Failure::from_io(Phase::Close, &pending),
            _ => Failure {
                errno: Some(libc::ENOTCONN),
                ..Failure::new(Phase::Close, ErrorKind::Reset)
            },
        }),
        Err(e) => Err(Failure::from_io(Phase::Close, &e)),
    }
}

/// Reads to the peer's FIN, within one --io-timeout in all (a deadline, not a timer per
/// read); returns how many bytes came before it.
async fn drain(stream: &TcpStream, cfg: &RunConfig, s: &mut Scratch) -> Result<u64, Failure> {
    let read_all = async {
        let mut tail = 0u64;
        loop {
            match netio::recv(stream, &mut s.buf).await {
                Ok(0) => return Ok(tail),
                Ok(n) => {
                    tail += n as u64;
                    s.received += n as u64;
                }
                Err(e) => return Err(Failure::from_io(Phase::Close, &e)),
            }
        }
    };
    within(cfg.socket.io_timeout, Phase::Close, read_all).await?
}

/// close(): off the runtime thread when SO_LINGER can make it block.
async fn close(stream: TcpStream, cfg: &RunConfig) -> Result<(), Failure> {
    sockopt::close(stream, cfg.socket.linger)
        .await
        .map_err(|e| Failure::from_io(Phase::Close, &e))
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
