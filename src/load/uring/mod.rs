//! The io_uring engine (`--engine uring`): each load thread drives all of its connections
//! from one ring of its own, in closed loop. The cycle is the tokio engine's (`conn.rs`:
//! scratch, decoder, close kinds, failure kinds; `worker.rs`: slot claims, bounds, the
//! recorder, the error budget, the stop and its grace); only how it waits differs.
//!
//! One io_uring_enter submits what every connection queued since the last and waits for
//! the next completions: no epoll registration per socket, no wake-up per connection.
//! Each completion's instant is read as it is reaped (one vDSO clock read per completion),
//! so the phases stay µs-exact. Sockets are still made (and their options set) by one
//! socket() call per connection, `conn::open`, shared with the tokio engine.

mod probe;
mod slot;

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::squeue::Entry;
use io_uring::{IoUring, opcode, types};

pub use probe::{support, unsupported};
use slot::{Ended, Slot, State, Submit};

use super::conn::{self, Scratch};
use super::worker::{self, STOP_GRACE, Shared};
use crate::config::RunConfig;
use crate::stats::Recorder;

/// What every slot of a ring reads.
pub(super) struct Ctx<'a> {
    cfg: &'a RunConfig,
    /// The target, as connect() takes it; the kernel copies it when the entry is submitted.
    addr: socket2::SockAddr,
    shared: &'a Shared,
}

impl Ctx<'_> {
    fn stopping(&self) -> bool {
        self.shared.stopper.stopping()
    }
}

/// The ring's submission queue, as slots fill it between two io_uring_enter calls.
struct Queue<'a>(&'a mut IoUring);

impl Submit for Queue<'_> {
    fn chain(&mut self, chain: &[Entry]) {
        loop {
            let mut sq = self.0.submission();
            if sq.capacity() - sq.len() >= chain.len() {
                // SAFETY: every buffer, address and timespec an entry points to lives in a
                // slot (or the Ctx), which outlives the ring's use of it: the slots are
                // dropped only after the ring's last completion (see `quiesce`).
                unsafe { sq.push_multiple(chain) }.expect("room was checked");
                return;
            }
            drop(sq);
            // Full: hand what is queued to the kernel first; a chain is never split.
            if self.0.submit().is_err() {
                std::thread::yield_now();
            }
        }
    }
}

/// Runs `workers` connection slots on one ring and returns what they measured. A ring that
/// cannot be set up here (locked-memory limit) leaves the thread to the tokio engine.
pub fn run_thread(shared: &Arc<Shared>, workers: usize, index: usize) -> Recorder {
    let entries = (workers * 2).clamp(64, 16384).next_power_of_two() as u32;
    let mut ring = match probe::ring(entries) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tcpbench: load thread {index}: no io_uring ({e}); it runs on tokio");
            return worker::run_thread(shared, workers, index, None);
        }
    };
    worker::pin(shared, index);
    let ctx = Ctx {
        cfg: &shared.cfg,
        addr: shared.target.into(),
        shared,
    };
    let mut slots: Vec<Slot> = (0..workers)
        .map(|i| Slot::new(i, Scratch::new(&shared.cfg, shared.protocol.clone())))
        .collect();
    let mut rec = Recorder::default();
    let progress = &shared.progress[index];
    // Each thread starts its round-robin over source addresses at a different place.
    let turn = Cell::new(index);
    let mut cqes: Vec<(u64, i32)> = Vec::with_capacity(entries as usize * 2);
    let tick = types::Timespec::from(slot::TICK);
    let mut cut_at: Option<Instant> = None;
    let end = |rec: &mut Recorder, scratch: &Scratch, ended: Ended| {
        worker::record(rec, progress, scratch, ended.start, None, ended.outcome);
        shared.settle(ended.outcome);
    };
    loop {
        let mut q = Queue(&mut ring);
        let mut waiting = false;
        for slot in &mut slots {
            if slot.state == State::Idle
                && let Some(ended) = start(&ctx, slot, &turn, &mut q)
            {
                end(&mut rec, &slot.scratch, ended);
            }
            waiting |= slot.pending() > 0;
        }
        if !waiting {
            if slots.iter().all(|s| s.state == State::Done) {
                break;
            }
            // Every idle slot failed before any operation (EMFILE, EADDRNOTAVAIL): again.
            continue;
        }
        let args = types::SubmitArgs::new().timespec(&tick);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => {
                eprintln!("tcpbench: load thread {index}: io_uring_enter failed: {e}; stopping");
                shared.stopper.stop();
                break;
            }
        }
        cqes.clear();
        cqes.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        let mut q = Queue(&mut ring);
        for &(data, res) in &cqes {
            // Each completion's own instant: a phase edge is when its completion was read.
            let now = Instant::now();
            let Some((i, op)) = slot::decode(data) else {
                continue;
            };
            let slot = &mut slots[i];
            if let Some(ended) = slot.complete(&ctx, op, res, now, &mut q) {
                end(&mut rec, &slot.scratch, ended);
                // The next connection goes out with the next io_uring_enter.
                if let Some(ended) = start(&ctx, slot, &turn, &mut q) {
                    end(&mut rec, &slot.scratch, ended);
                }
            }
        }
        if ctx.stopping() {
            let now = Instant::now();
            match cut_at {
                None => {
                    // Connections in flight get a grace period; those holding end now.
                    cut_at = Some(now + STOP_GRACE);
                    slots.iter_mut().for_each(|s| s.wake(&mut q));
                }
                Some(at) if now >= at => break,
                Some(_) => {}
            }
        }
    }
    for slot in &slots {
        worker::record_cut(&mut rec, &slot.scratch);
    }
    quiesce(&mut ring, &slots);
    drop(ring);
    rec
}

/// Starts the next connection on `slot`, or marks it done when a bound is reached or the
/// run stops; a socket that cannot be made ends the connection at once.
fn start(ctx: &Ctx<'_>, slot: &mut Slot, turn: &Cell<usize>, q: &mut Queue<'_>) -> Option<Ended> {
    let Some(start) = ctx.shared.start_closed() else {
        slot.state = State::Done;
        return None;
    };
    let source = worker::next_source(&ctx.cfg.socket.bind, turn);
    slot.scratch.start(start);
    match conn::open(
        ctx.shared.target,
        ctx.cfg,
        source,
        ctx.shared.ports.as_ref(),
    ) {
        Ok(sock) => {
            slot.start(ctx, start, sock, q);
            None
        }
        Err(f) => Some(slot.failed_at_once(start, f)),
    }
}

/// Cancels whatever is still in flight and waits (a second at most) for the kernel to be
/// done with the slots' buffers before they are dropped.
fn quiesce(ring: &mut IoUring, slots: &[Slot]) {
    let mut left: u32 = slots.iter().map(Slot::pending).sum();
    if left == 0 {
        return;
    }
    let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
        .build()
        .user_data(u64::MAX);
    Queue(ring).chain(&[cancel]);
    let until = Instant::now() + Duration::from_secs(1);
    let tick = types::Timespec::from(slot::TICK);
    while left > 0 && Instant::now() < until {
        let args = types::SubmitArgs::new().timespec(&tick);
        let _ = ring.submitter().submit_with_args(1, &args);
        for c in ring.completion() {
            if c.user_data() != u64::MAX {
                left = left.saturating_sub(1);
            }
        }
    }
}
