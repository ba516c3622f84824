//! The one worker loop, and the thread that runs a share of the workers on its own runtime.
//!
//! Closed and open loop, count and time bounds are values read by this loop, not copies of it.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::conn::{self, PortCycle, Scratch};
use super::control::{ErrorBudget, Stopper};
use super::intervals::Link;
use super::pacer::{Lateness, Pacer};
use super::proto::Protocol;
use crate::config::{Bounds, RunConfig};
use crate::failure::{ErrorKind, Failure};
use crate::stats::{Metric, Recorder};

/// How long connections in flight may go on after a stop (Ctrl-C, --max-errors) before
/// they are cut off and counted as `interrupted`.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// What all threads of one pool run share; read-mostly.
pub struct Shared {
    pub cfg: RunConfig,
    pub target: SocketAddr,
    pub bounds: Bounds,
    /// When the pool started: the origin of the open-loop schedule and of the duration bound.
    pub start: Instant,
    /// Set by the supervisor on Ctrl-C, or by the worker whose failure trips `budget`;
    /// workers start no new connection once it is set, and those asleep (until a scheduled
    /// start, or in a --hold) wake on its watch.
    pub stopper: Arc<Stopper>,
    /// The failure stop rule, counted by each worker as its failures happen.
    pub budget: ErrorBudget,
    /// Each thread's live counts, indexed by thread: the progress display, and the
    /// connections ended so far for a `--max-errors P%`.
    pub progress: Box<[Progress]>,
    /// What every worker's requests and responses are.
    pub protocol: Arc<Protocol>,
    /// The next connection slot to claim; slots are numbered from 0 across all threads.
    /// Every thread writes it once per connection, so it has a cache line of its own.
    pub next_slot: SlotCounter,
    /// Explicit local ports, when `--port-strategy explicit`.
    pub ports: Option<PortCycle>,
}

impl Shared {
    /// Connections ended so far over all threads (each thread's count is at most one
    /// connection behind).
    fn ended(&self) -> u64 {
        self.progress.iter().map(|p| p.done.load(Relaxed)).sum()
    }

    fn deadline(&self) -> Option<Instant> {
        // Durations are capped when parsed; a sum past Instant's range means "no deadline".
        self.bounds.duration.and_then(|d| self.start.checked_add(d))
    }

    /// Counts a connection's outcome against the error budget, stopping the run if it
    /// trips it; `true` when the connection failed.
    pub(super) fn settle(&self, outcome: Result<conn::Cycle, Failure>) -> bool {
        match outcome {
            Err(f) => {
                if self.budget.failed(f, || self.ended()) {
                    self.stopper.stop();
                }
                true
            }
            Ok(_) => {
                self.budget.succeeded();
                false
            }
        }
    }

    /// A connection's start in closed loop: the next slot claimed and the instant it
    /// starts, or `None` when a bound (count, deadline) is reached or the run is stopping.
    pub(super) fn start_closed(&self) -> Option<Instant> {
        self.claim()?;
        let start = Instant::now();
        match self.deadline() {
            Some(d) if start >= d => None,
            _ => Some(start),
        }
    }

    /// Claims the next slot, or `None` when a bound is reached or the run is stopping.
    fn claim(&self) -> Option<u64> {
        if self.stopper.stopping() {
            return None;
        }
        let slot = self.next_slot.0.fetch_add(1, Relaxed);
        match self.bounds.conns {
            Some(n) if slot >= n => None,
            _ => Some(slot),
        }
    }
}

/// The shared slot counter, alone on its cache line.
#[derive(Default)]
#[repr(align(64))]
pub struct SlotCounter(pub AtomicU64);

/// A thread's live counters for the progress display, on a cache line of their own.
#[derive(Default)]
#[repr(align(64))]
pub struct Progress {
    pub done: AtomicU64,
    pub failed: AtomicU64,
}

/// Runs `workers` workers on a fresh single-threaded runtime and returns what they measured.
///
/// Each worker holds its scratch's `RefCell` borrow across its awaits, for its whole life:
/// nothing else borrows a scratch until the LocalSet has dropped (or finished) its worker.
///
/// With `link` (`--hlog`), a task of this thread swaps the recorder's interval window out at
/// every `--hlog-interval` since the pool's start, and the last one goes out when the thread
/// ends, after the connections cut off by a stop are counted.
#[allow(clippy::await_holding_refcell_ref)]
pub fn run_thread(
    shared: &Arc<Shared>,
    workers: usize,
    index: usize,
    link: Option<Link>,
) -> Recorder {
    pin(shared, index);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let local = tokio::task::LocalSet::new();
    let recorder = Rc::new(RefCell::new(Recorder::default()));
    let link = link.map(Rc::new);
    if let Some(link) = &link {
        link.install(&mut recorder.borrow_mut());
    }
    // The interval the thread's window is in now.
    let interval_index = Rc::new(Cell::new(0u32));
    // Each thread starts its round-robin over source addresses at a different place.
    let source_turn = Rc::new(Cell::new(index));
    // How late this thread's timers wake it: its pacers arm that much early.
    let interval = shared
        .cfg
        .load
        .rate()
        .map(|r| Duration::from_secs_f64(shared.cfg.threads.max(1) as f64 / r));
    let lateness = Rc::new(Lateness::for_interval(interval));
    // Each worker's scratch outlives the worker: what a connection cut off after a stop
    // had done (its phase, its bytes) is read from it once the workers are dropped.
    let scratches: Vec<Rc<RefCell<Scratch>>> = (0..workers)
        .map(|_| {
            let s = Scratch::new(&shared.cfg, shared.protocol.clone());
            Rc::new(RefCell::new(s))
        })
        .collect();
    local.block_on(&rt, async {
        if let Some(link) = &link {
            let (rec, link, every) = (recorder.clone(), link.clone(), link.every);
            let (start, k) = (shared.start, interval_index.clone());
            tokio::task::spawn_local(async move {
                let mut tick = tokio::time::interval_at((start + every).into(), every);
                loop {
                    tick.tick().await;
                    link.rotate(&mut rec.borrow_mut(), k.get());
                    k.set(k.get() + 1);
                }
            });
        }
        let handles: Vec<_> = scratches
            .iter()
            .map(|scratch| {
                let (rec, turn) = (recorder.clone(), source_turn.clone());
                let (shared, scratch, late) = (shared.clone(), scratch.clone(), lateness.clone());
                tokio::task::spawn_local(async move {
                    let mut scratch = scratch.borrow_mut();
                    let thread = Thread {
                        rec: &rec,
                        turn: &turn,
                        late: &late,
                        index,
                    };
                    worker(&shared, thread, &mut scratch).await
                })
            })
            .collect();
        let all_done = async {
            for h in handles {
                h.await.expect("worker task does not panic");
            }
        };
        // Once stopped, connections in flight get a grace period to finish, then are cut.
        let mut stop = shared.stopper.subscribe();
        let cut = async {
            let _ = stop.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(STOP_GRACE).await;
        };
        tokio::select! {
            _ = all_done => {}
            _ = cut => {}
        }
    });
    // Dropping the LocalSet drops the workers still running, their sockets and their
    // borrows of the scratches.
    drop(local);
    let mut recorder = Rc::try_unwrap(recorder)
        .expect("workers are done")
        .into_inner();
    for scratch in &scratches {
        record_cut(&mut recorder, &scratch.borrow());
    }
    if let Some(link) = &link {
        link.close(&mut recorder, interval_index.get());
    }
    recorder
}

/// Counts the connection in flight in `s`, if any, as cut off after a stop (`interrupted`,
/// in the phase it was in), with what it had sent and read.
pub(super) fn record_cut(recorder: &mut Recorder, s: &Scratch) {
    let Some((phase, start)) = s.in_flight else {
        return;
    };
    recorder.attempted += 1;
    recorder.bytes_sent += s.sent;
    recorder.bytes_received += s.received;
    if phase != crate::failure::Phase::Connect {
        // Dropped with its socket: a close() that sent our FIN.
        recorder.closes.count(crate::stats::Close::ClientFirst);
    }
    let ns = start.elapsed().as_nanos() as u64;
    recorder.record_failure(Failure::new(phase, ErrorKind::Interrupted), ns);
}

/// Pins load thread `index` to its CPU when `--pin`; best effort: a CPU set that forbids it
/// leaves the thread where it is.
pub(super) fn pin(shared: &Shared, index: usize) {
    if shared.cfg.pin {
        let _ = crate::cpu::pin_current_thread(crate::cpu::for_index(index));
    }
}

/// What the workers of one thread share.
#[derive(Copy, Clone)]
struct Thread<'a> {
    rec: &'a RefCell<Recorder>,
    /// The thread's turn in the round-robin over source addresses.
    turn: &'a Cell<usize>,
    /// How late the thread's timers wake it, for its pacers.
    late: &'a Lateness,
    index: usize,
}

/// The worker loop: claim a slot, wait for its scheduled start (open loop), run one
/// connection, record it, and stop the run if its failure trips the error budget. Ends at
/// a bound or on stop.
async fn worker(shared: &Shared, thread: Thread<'_>, scratch: &mut Scratch) {
    let Thread {
        rec, turn, late, ..
    } = thread;
    let cfg = &shared.cfg;
    let progress = &shared.progress[thread.index];
    let mut stop = shared.stopper.subscribe();
    let interval = cfg.load.rate().map(|r| 1e9 / r);
    let mut pacer = interval.map(|_| Pacer::new());
    let deadline = shared.deadline();
    // A worker's first slot may be late because the pool was starting, not queueing.
    let mut first = true;
    while let Some(slot) = shared.claim() {
        let scheduled =
            interval.map(|i| shared.start + Duration::from_nanos((slot as f64 * i) as u64));
        if let (Some(s), Some(d)) = (scheduled, deadline)
            && s >= d
        {
            break;
        }
        let queued = !std::mem::take(&mut first) && scheduled.is_some_and(|s| Instant::now() > s);
        if let (Some(s), Some(p)) = (scheduled, pacer.as_mut())
            && !p.wait_until(s, late, &mut stop).await
        {
            break;
        }
        let start = Instant::now();
        if deadline.is_some_and(|d| start >= d) {
            break;
        }
        if let Some(s) = scheduled {
            rec.borrow_mut()
                .record_start(start.saturating_duration_since(s), queued);
        }
        let source = next_source(&cfg.socket.bind, turn);
        scratch.start(start);
        let outcome = conn::run(
            cfg,
            shared.target,
            source,
            shared.ports.as_ref(),
            &mut stop,
            scratch,
        )
        .await;
        scratch.in_flight = None;
        record(
            &mut rec.borrow_mut(),
            progress,
            scratch,
            start,
            scheduled,
            outcome,
        );
        if shared.settle(outcome) {
            // A failure can come back without ever waiting (EADDRNOTAVAIL, EMFILE): without
            // a yield this worker would loop on the thread and stall the other workers.
            tokio::task::yield_now().await;
        }
    }
}

/// Adds one connection's outcome to the thread's recorder and progress counters.
pub(super) fn record(
    r: &mut Recorder,
    progress: &Progress,
    scratch: &Scratch,
    start: Instant,
    scheduled: Option<Instant>,
    outcome: Result<conn::Cycle, Failure>,
) {
    r.attempted += 1;
    r.bytes_sent += scratch.sent;
    r.bytes_received += scratch.received;
    r.farewell_bytes += scratch.farewell;
    if let Some(close) = scratch.close {
        r.closes.count(close);
    }
    match outcome {
        Ok(c) => {
            r.succeeded += 1;
            r.record(Metric::Connect, c.connect_ns());
            if let Some(k) = c.handshake {
                // 0: the kernel took no sample (a retransmitted SYN without timestamps).
                if k.rtt_us > 0 {
                    r.record(Metric::HandshakeRtt, u64::from(k.rtt_us) * 1000);
                }
                r.syn_retransmitted += u64::from(k.retransmits > 0);
            }
            for &e in &scratch.echo_ns {
                r.record(Metric::Echo, e);
            }
            r.record(Metric::Close, c.close_ns());
            r.record(Metric::Total, c.total_ns(start));
            if let Some(s) = scheduled {
                let from = |t: Instant| t.saturating_duration_since(s).as_nanos() as u64;
                r.record_from_schedule(from(c.established), from(c.end));
            }
        }
        Err(f) => r.record_failure(f, start.elapsed().as_nanos() as u64),
    }
    progress.done.store(r.attempted, Relaxed);
    progress.failed.store(r.failed, Relaxed);
}

pub(super) fn next_source(bind: &[IpAddr], turn: &Cell<usize>) -> Option<IpAddr> {
    if bind.is_empty() {
        return None;
    }
    let i = turn.get();
    turn.set(i.wrapping_add(1));
    Some(bind[i % bind.len()])
}
