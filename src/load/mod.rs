//! The load generator: a pool of threads, each running its share of the workers on the
//! run's engine: a single-threaded tokio runtime whose workers each run the one connection
//! loop (`worker.rs`), or one io_uring driving the same connection cycle (`uring/`).
//!
//! Data flows one way: workers record into their thread's [`Recorder`]; the threads' recorders
//! are merged once when the pool ends.

pub mod conn;
pub mod control;
mod intervals;
pub mod pacer;
pub mod probe;
pub mod proto;
pub mod uring;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Notify;

use crate::config::{Bounds, Engine, RunConfig};
use crate::stats::Recorder;
use crate::stats::interval::IntervalLog;
pub use control::Control;
use worker::{Progress, Shared};

/// What one pool run measured.
pub struct PoolResult {
    pub recorder: Recorder,
    /// From the pool's start to its last connection's end.
    pub elapsed: Duration,
    /// Connections ended, counted every 100 ms: the rate over time.
    pub timeline: Vec<crate::stats::Tick>,
    /// With `intervals`: the latency histograms of each interval since the pool's start.
    pub intervals: Option<IntervalLog>,
}

/// Decrements the running-thread count when dropped, and wakes the supervisor at zero.
struct Finished<'a> {
    remaining: &'a AtomicUsize,
    done: &'a Notify,
}

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }
}

/// Runs connections against `target` until `bounds` (or Ctrl-C, through `ctl`) stops them.
/// With `intervals` (the measured pool of a `--hlog` run), the latency of each interval of
/// that length is collected too.
pub fn run_pool(
    cfg: &RunConfig,
    target: SocketAddr,
    bounds: Bounds,
    ctl: &mut Control,
    label: &str,
    intervals: Option<Duration>,
) -> anyhow::Result<PoolResult> {
    let threads = cfg.threads.max(1);
    let concurrency = cfg.load.concurrency();
    // The pool's start, on the wall clock too (the interval log's base time); the windows
    // and spares are made before it.
    let (start, started_at) = (Instant::now(), std::time::SystemTime::now());
    let (mut collector, links) = match intervals {
        Some(every) => {
            let (c, links) = intervals::Collector::new(every, threads, started_at);
            (Some(c), links.into_iter().map(Some).collect())
        }
        None => (None, (0..threads).map(|_| None).collect::<Vec<_>>()),
    };
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        target,
        bounds,
        start,
        stopper: ctl.stopper(),
        budget: control::ErrorBudget::new(cfg.max_errors),
        progress: (0..threads).map(|_| Progress::default()).collect(),
        protocol: Arc::new(
            proto::Protocol::from_config(&cfg.protocol, cfg.payload, target)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        next_slot: worker::SlotCounter::default(),
        ports: conn::PortCycle::new(cfg.socket.ports),
    });
    // The last thread to finish wakes the supervisor; Notify keeps the permit if it is early.
    let remaining = AtomicUsize::new(threads);
    let done = Notify::new();

    let (recorders, timeline) = std::thread::scope(|scope| -> anyhow::Result<_> {
        let mut handles = Vec::with_capacity(threads);
        for (i, link) in links.into_iter().enumerate() {
            let workers = concurrency / threads + usize::from(i < concurrency % threads);
            let (shared, remaining, done) = (&shared, &remaining, &done);
            let handle = std::thread::Builder::new()
                .name(format!("tcpbench-load-{i}"))
                .spawn_scoped(scope, move || {
                    // Counts this thread out even if it panics, so the supervisor wakes.
                    let _finished = Finished { remaining, done };
                    match shared.cfg.engine {
                        Engine::Tokio => worker::run_thread(shared, workers, i, link),
                        Engine::Uring => uring::run_thread(shared, workers, i),
                    }
                });
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    ctl.stop_now();
                    return Err(e).context("cannot start a load thread");
                }
            }
        }
        let timeline = ctl.supervise(
            shared.start,
            &done,
            &shared.progress,
            bounds,
            label,
            &shared.budget,
            &mut || {
                if let Some(c) = collector.as_mut() {
                    c.drain();
                }
            },
        );
        let recorders: anyhow::Result<Vec<Recorder>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a load thread panicked; its figures are lost"))
            })
            .collect();
        Ok((recorders?, timeline))
    })?;
    let elapsed = shared.start.elapsed();
    let mut recorder = Recorder::default();
    for r in &recorders {
        recorder.merge(r);
    }
    Ok(PoolResult {
        recorder,
        elapsed,
        timeline,
        intervals: collector.map(|c| c.finish(elapsed)),
    })
}
