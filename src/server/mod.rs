//! The embedded server: `tcpbench serve`, and the server `run` embeds when no `--target` is
//! given. It echoes, or answers HTTP or RESP with the minimal responders of [`respond`].
//!
//! Each worker is an OS thread with its own single-threaded runtime, so the server never
//! competes with the load generator's runtimes for a scheduler. Workers share one listener, or
//! with SO_REUSEPORT each has its own on the same port.

mod conn;
pub mod respond;

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::ServerConfig;
use crate::sockopt;

/// How long a stopping server waits for connections still being served.
const GRACE: Duration = Duration::from_secs(1);

/// A connection is sampled for the accept wait when its client port's low bits under this
/// mask are all zero (1 in 16 ports; the kernel's even ports make it 1 in 8 connections):
/// the tracepoint's filter picks the same ones (`observe::accept_wait`).
pub const ACCEPT_SAMPLE_MASK: u16 = 15;
/// The most accepts a worker keeps for the accept wait.
const MAX_ACCEPT_SAMPLES: usize = 100_000;

/// A sampled accept: the client, and when accept() returned it to the server.
pub type AcceptSample = (SocketAddr, Instant);

/// A running echo server; [`EchoServer::stop`] ends it.
pub struct EchoServer {
    addr: SocketAddr,
    /// Sends `true` once to stop every worker's accept loop; workers watch it.
    shutdown: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    counters: Vec<Arc<Counters>>,
    /// Set by [`EchoServer::sample_accepts`]; read by every worker at each accept.
    sampling: Arc<AtomicBool>,
    /// Each worker's sampled accepts, handed over once when its accept loop ends.
    samples: Arc<Mutex<Vec<AcceptSample>>>,
}

/// One worker's counters, on a cache line of their own; written by that worker only.
#[derive(Default, Debug)]
#[repr(align(64))]
pub struct Counters {
    accepted: AtomicU64,
    active: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    resets: AtomicU64,
    /// HTTP responses and RESP replies written (not echo).
    answers: AtomicU64,
    idle_timeouts: AtomicU64,
    over_limit: AtomicU64,
    accept_errors: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// What the server saw, summed over its workers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerTotals {
    pub accepted: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Connections the peer reset (ECONNRESET/EPIPE seen by the server).
    pub resets: u64,
    /// HTTP responses and RESP replies written (`--protocol http|resp`); 0 for echo.
    #[serde(default)]
    pub answers: u64,
    pub idle_timeouts: u64,
    /// Connections closed for sending more than --max-payload.
    pub over_limit: u64,
    pub accept_errors: u64,
    /// How long connections waited in the accept queue: from the kernel's SYN_RECV ->
    /// ESTABLISHED (the tracepoint, µs) to accept() returning, for the sampled ones. None
    /// without root (tracefs) or with `--no-accept-wait`. Filled by `run`, not the server.
    #[serde(default)]
    pub accept_wait: Option<crate::stats::PhaseStats>,
}

/// What every connection of one worker shares.
struct Worker {
    cfg: Arc<ServerConfig>,
    counters: Arc<Counters>,
    /// Caps connections served at once, across workers (`--max-conns`).
    limit: Option<Arc<Semaphore>>,
    /// Read buffers reused across connections, so a connection allocates none.
    buffers: RefCell<Vec<Vec<u8>>>,
    /// Whether to sample accepts (the server's [`EchoServer::sample_accepts`]).
    sampling: Arc<AtomicBool>,
    /// This worker's sampled accepts; moved to the server's once, at the end.
    samples: RefCell<Vec<AcceptSample>>,
    /// The HTTP and RESP responders' buffers (requests not yet answered, answers to write),
    /// reused likewise.
    requests: RefCell<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl EchoServer {
    /// Binds and starts the workers; returns once the server accepts connections.
    pub fn start(cfg: ServerConfig) -> io::Result<EchoServer> {
        let first = sockopt::listener(&cfg)?;
        let addr = first
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an inet socket"))?;
        let mut listeners = Vec::with_capacity(cfg.workers);
        for _ in 1..cfg.workers {
            listeners.push(if cfg.reuseport {
                sockopt::listener(&ServerConfig {
                    listen: addr,
                    ..cfg.clone()
                })?
            } else {
                first.try_clone()?
            });
        }
        listeners.insert(0, first);
        if cfg.pin && cfg.reuseport && crate::cpu::steerable(cfg.workers) {
            sockopt::steer_by_cpu(&listeners[0])?;
        }

        let (shutdown, watcher) = watch::channel(false);
        let limit = cfg.max_conns.map(|n| Arc::new(Semaphore::new(n)));
        let cfg = Arc::new(cfg);
        let mut server = EchoServer {
            addr,
            shutdown,
            threads: Vec::new(),
            counters: Vec::new(),
            sampling: Arc::new(AtomicBool::new(false)),
            samples: Arc::new(Mutex::new(Vec::new())),
        };
        for (i, listener) in listeners.into_iter().enumerate() {
            let counters = Arc::new(Counters::default());
            server.counters.push(counters.clone());
            let (cfg, limit, watcher) = (cfg.clone(), limit.clone(), watcher.clone());
            let (sampling, samples) = (server.sampling.clone(), server.samples.clone());
            let (pin, batch) = (cfg.pin, cfg.batch);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let thread = std::thread::Builder::new()
                .name(format!("tcpbench-srv-{i}"))
                .spawn(move || {
                    if pin {
                        // Best effort: a CPU set that forbids it leaves the thread where it is.
                        let _ = crate::cpu::pin_current_thread(crate::cpu::for_index(i));
                    }
                    if batch {
                        // Best effort too: the default policy only costs the client's edges.
                        let _ = crate::cpu::batch_current_thread();
                    }
                    let local = tokio::task::LocalSet::new();
                    let worker = Rc::new(Worker {
                        cfg,
                        counters,
                        limit,
                        buffers: RefCell::new(Vec::new()),
                        sampling,
                        samples: RefCell::new(Vec::new()),
                        requests: RefCell::new(Vec::new()),
                    });
                    local.block_on(&rt, async {
                        match TcpListener::from_std(listener.into()) {
                            Ok(l) => accept_loop(l, worker.clone(), watcher).await,
                            Err(e) => eprintln!("tcpbench: server worker {i}: {e}"),
                        }
                    });
                    let mine = worker.samples.take();
                    if let Ok(mut all) = samples.lock() {
                        all.extend(mine);
                    }
                })?;
            server.threads.push(thread);
        }
        Ok(server)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters so far, summed over workers.
    pub fn totals(&self) -> ServerTotals {
        let sum =
            |f: fn(&Counters) -> &AtomicU64| self.counters.iter().map(|c| f(c).load(Relaxed)).sum();
        ServerTotals {
            accepted: sum(|c| &c.accepted),
            bytes_in: sum(|c| &c.bytes_in),
            bytes_out: sum(|c| &c.bytes_out),
            resets: sum(|c| &c.resets),
            answers: sum(|c| &c.answers),
            idle_timeouts: sum(|c| &c.idle_timeouts),
            over_limit: sum(|c| &c.over_limit),
            accept_errors: sum(|c| &c.accept_errors),
            accept_wait: None,
        }
    }

    /// From now on, note when accept() returned each connection whose client port has the
    /// low bits of [`ACCEPT_SAMPLE_MASK`] clear; [`EchoServer::stop_sampled`] hands them over.
    pub fn sample_accepts(&self) {
        self.sampling.store(true, Relaxed);
    }

    /// Stops accepting, gives connections in service a moment to finish, and joins the workers.
    pub fn stop(self) -> ServerTotals {
        self.stop_sampled().0
    }

    /// Stops as [`EchoServer::stop`] does, and returns the sampled accepts too.
    pub fn stop_sampled(mut self) -> (ServerTotals, Vec<AcceptSample>) {
        let _ = self.shutdown.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        (self.totals(), samples)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    worker: Rc<Worker>,
    mut shutdown: watch::Receiver<bool>,
) {
    // One future for the whole loop: a new `changed()` per connection costs a waiter's
    // registration and removal each time.
    let stopping = shutdown.changed();
    tokio::pin!(stopping);
    loop {
        let permit = match &worker.limit {
            None => None,
            Some(sem) => tokio::select! {
                biased;
                _ = &mut stopping => break,
                p = sem.clone().acquire_owned() => p.ok(),
            },
        };
        if let Some(delay) = worker.cfg.accept_delay {
            tokio::select! {
                biased;
                _ = &mut stopping => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        let accepted = tokio::select! {
            biased;
            _ = &mut stopping => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                if worker.sampling.load(Relaxed) && peer.port() & ACCEPT_SAMPLE_MASK == 0 {
                    let at = Instant::now();
                    let mut samples = worker.samples.borrow_mut();
                    if samples.len() < MAX_ACCEPT_SAMPLES {
                        samples.push((peer, at));
                    }
                }
                Counters::add(&worker.counters.accepted, 1);
                Counters::add(&worker.counters.active, 1);
                let worker = worker.clone();
                tokio::task::spawn_local(async move {
                    conn::serve(stream, &worker).await;
                    worker.counters.active.fetch_sub(1, Relaxed);
                    drop(permit);
                });
                // Let the new connection read its request before this loop asks for another.
                tokio::task::yield_now().await;
            }
            Err(e) => {
                Counters::add(&worker.counters.accept_errors, 1);
                // Out of descriptors: back off instead of spinning on a ready listener.
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    drop(listener);
    let until = Instant::now() + GRACE;
    while worker.counters.active.load(Relaxed) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
