//! Per-worker recorders: one HdrHistogram per timed phase plus counters, merged once at the end.
//!
//! Values are recorded in nanoseconds (1 ns to 1 h, 3 significant digits), so a 15 µs
//! handshake keeps three digits. A recorder belongs to one runtime thread: no lock, no channel
//! and no allocation per connection. With `--hlog`, it also records into its thread's current
//! [`interval::Window`], which its thread swaps out at every interval's end.

pub mod interval;

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::hdr::Hdr;

/// Largest value a histogram tracks: one hour, in ns. Larger values saturate.
pub const HIGHEST_NS: u64 = 3_600 * 1_000_000_000;
/// Significant decimal digits kept.
pub const SIGFIG: u8 = 3;

/// A timed part of a connection's life.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Start of connect() to established: the handshake as the client sees it.
    Connect,
    /// The kernel's RTT sample of the handshake (TCP_INFO `tcpi_rtt` right after it): the
    /// SYN's transmission to the SYN+ACK's processing, on the wire's side of connect().
    HandshakeRtt,
    /// One request's round trip: write, then read the whole echo.
    Echo,
    /// Start of the close sequence to its end (EOF seen and close returned).
    Close,
    /// The whole lifetime: socket() to close returned.
    Total,
    /// Failed attempts only: socket() to the failure. Kept apart, so a timeout or a refusal
    /// never shows up in the figures of connections that worked.
    Failed,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::Connect,
        Metric::HandshakeRtt,
        Metric::Echo,
        Metric::Close,
        Metric::Total,
        Metric::Failed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Connect => "connect",
            Metric::HandshakeRtt => "handshake_rtt",
            Metric::Echo => "echo",
            Metric::Close => "close",
            Metric::Total => "total",
            Metric::Failed => "failed",
        }
    }
}

/// An empty histogram with the project's bounds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIG).expect("static histogram bounds are valid")
}

/// What one worker thread measured.
#[derive(Clone, Debug)]
pub struct Recorder {
    /// Indexed by `Metric as usize`; `Failed` holds the failed attempts, the others the
    /// successful connections only.
    pub latency: [Histogram<u64>; 6],
    /// Open loop only: connect and total measured from each connection's scheduled start.
    pub from_schedule: [Histogram<u64>; 2],
    /// Open loop only: each connection's start lag, its actual start minus its scheduled
    /// one (failed and cut-off connections too).
    pub start_lag: Histogram<u64>,
    /// Open loop only: connections whose scheduled start had passed when a worker took
    /// them, every worker being busy then (queueing; a worker's first is not counted).
    pub queued_starts: u64,
    pub attempted: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Of `bytes_received`, those after the client's FIN: the servers' farewells.
    pub farewell_bytes: u64,
    /// Successful connections whose SYN the kernel retransmitted (TCP_INFO).
    pub syn_retransmitted: u64,
    /// How the established connections ended, as observed.
    pub closes: Closes,
    pub errors: BTreeMap<Failure, u64>,
    /// With `--hlog` only: this interval's histograms, recorded beside the run's (the
    /// thread swaps the box at every interval's end; never merged here).
    pub window: Option<Box<interval::Window>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            latency: std::array::from_fn(|_| new_histogram()),
            from_schedule: std::array::from_fn(|_| new_histogram()),
            start_lag: new_histogram(),
            queued_starts: 0,
            attempted: 0,
            succeeded: 0,
            failed: 0,
            bytes_sent: 0,
            bytes_received: 0,
            farewell_bytes: 0,
            syn_retransmitted: 0,
            closes: Closes::default(),
            errors: BTreeMap::new(),
            window: None,
        }
    }
}

impl Recorder {
    #[inline]
    pub fn record(&mut self, metric: Metric, ns: u64) {
        self.latency[metric as usize].saturating_record(ns.max(1));
        if let Some(w) = self.window.as_deref_mut() {
            w.record(interval::series(metric), ns);
        }
    }

    /// Takes one open-loop start, `lag` after its scheduled instant; `queued` when no
    /// worker was free to take it in time.
    #[inline]
    pub fn record_start(&mut self, lag: std::time::Duration, queued: bool) {
        let ns = (lag.as_nanos() as u64).max(1);
        self.start_lag.saturating_record(ns);
        self.queued_starts += u64::from(queued);
        if let Some(w) = self.window.as_deref_mut() {
            w.record(interval::START_LAG, ns);
        }
    }

    /// Takes one open-loop connection's connect and total, measured from its scheduled start.
    #[inline]
    pub fn record_from_schedule(&mut self, connect_ns: u64, total_ns: u64) {
        for (i, ns) in [connect_ns, total_ns].into_iter().enumerate() {
            self.from_schedule[i].saturating_record(ns.max(1));
            if let Some(w) = self.window.as_deref_mut() {
                w.record(interval::FROM_SCHEDULE[i], ns);
            }
        }
    }

    /// Counts a failed attempt that lasted `ns` from socket() to the failure.
    pub fn record_failure(&mut self, failure: Failure, ns: u64) {
        self.failed += 1;
        self.record(Metric::Failed, ns);
        *self.errors.entry(failure).or_insert(0) += 1;
    }

    /// Adds another recorder's histograms and counters into this one.
    pub fn merge(&mut self, other: &Recorder) {
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            a.add(b).expect("histograms share bounds");
        }
        for (a, b) in self.from_schedule.iter_mut().zip(&other.from_schedule) {
            a.add(b).expect("histograms share bounds");
        }
        self.start_lag
            .add(&other.start_lag)
            .expect("histograms share bounds");
        self.queued_starts += other.queued_starts;
        self.attempted += other.attempted;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.farewell_bytes += other.farewell_bytes;
        self.syn_retransmitted += other.syn_retransmitted;
        self.closes.merge(&other.closes);
        for (f, n) in &other.errors {
            *self.errors.entry(*f).or_insert(0) += n;
        }
    }

    pub fn histogram(&self, m: Metric) -> &Histogram<u64> {
        &self.latency[m as usize]
    }
}

/// How one established connection ended, from what the client's own syscalls saw. The
/// side that sent the first FIN holds TIME_WAIT; an RST leaves none on either side.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Close {
    /// Our FIN went before any EOF was read: the client holds TIME_WAIT.
    ClientFirst,
    /// A read saw the server's FIN (EOF) before we sent ours: the server holds TIME_WAIT.
    ServerFirst,
    /// Our close sent an RST: SO_LINGER 0 (`--close rst`, `--linger 0`), or unread bytes
    /// left in the receive queue at close().
    RstSent,
    /// A read, write or shutdown met the server's RST (ECONNRESET, EPIPE).
    RstReceived,
}

/// The established connections by how they ended ([`Close`]), counted as they end, failed
/// ones included; connections that never got established are not in it.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Closes {
    pub client_first: u64,
    pub server_first: u64,
    pub rst_sent: u64,
    pub rst_received: u64,
}

impl Closes {
    pub fn count(&mut self, close: Close) {
        *match close {
            Close::ClientFirst => &mut self.client_first,
            Close::ServerFirst => &mut self.server_first,
            Close::RstSent => &mut self.rst_sent,
            Close::RstReceived => &mut self.rst_received,
        } += 1;
    }

    pub fn merge(&mut self, other: &Closes) {
        self.client_first += other.client_first;
        self.server_first += other.server_first;
        self.rst_sent += other.rst_sent;
        self.rst_received += other.rst_received;
    }

    pub fn total(&self) -> u64 {
        self.client_first + self.server_first + self.rst_sent + self.rst_received
    }
}

/// Connections ended by a moment of the run, counted since its start.
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Tick {
    /// Since the pool started.
    pub t_ms: f64,
    pub succeeded: u64,
    pub failed: u64,
}

/// One phase's distribution: percentiles for people, `hdr` for tools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PhaseStats {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// The histogram (values in ns), HdrHistogram compressed V2, base64.
    pub hdr: Hdr,
}

impl Default for PhaseStats {
    fn default() -> Self {
        PhaseStats::from_histogram(&crate::stats::new_histogram())
    }
}

impl PhaseStats {
    pub fn from_histogram(h: &Histogram<u64>) -> PhaseStats {
        let us = |ns: u64| ns as f64 / 1000.0;
        let q = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                us(h.value_at_quantile(q))
            }
        };
        PhaseStats {
            count: h.len(),
            min_us: if h.is_empty() { 0.0 } else { us(h.min()) },
            mean_us: h.mean() / 1000.0,
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if h.is_empty() { 0.0 } else { us(h.max()) },
            hdr: Hdr(h.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::{ErrorKind, Phase};

    #[test]
    fn merge_adds_histograms_not_percentiles() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for v in 1..=900u64 {
            a.record(Metric::Connect, v * 1000);
        }
        for _ in 0..100 {
            b.record(Metric::Connect, 1_000_000);
        }
        b.record_failure(Failure::new(Phase::Connect, ErrorKind::Refused), 5_000);
        a.merge(&b);
        let h = a.histogram(Metric::Connect);
        assert_eq!(h.len(), 1000);
        // The true p95 of all samples is the 1 ms plateau that only `b` had.
        assert!(h.value_at_quantile(0.95) >= 999_000);
        assert_eq!(a.failed, 1);
        assert_eq!(a.errors.values().sum::<u64>(), 1);
        // The failure's duration is in its own histogram, not among the successes.
        assert_eq!(a.histogram(Metric::Failed).len(), 1);
        assert_eq!(a.histogram(Metric::Connect).min(), 1000);
    }

    #[test]
    fn huge_values_saturate() {
        let mut r = Recorder::default();
        r.record(Metric::Total, u64::MAX);
        r.record(Metric::Total, 0);
        assert_eq!(r.histogram(Metric::Total).len(), 2);
    }
}
