//! Latency over time (`--hlog`): each thread's histograms of the current interval (a
//! [`Window`], swapped out at every interval's end), and a run's finished intervals (an
//! [`IntervalLog`]), merged over the threads and kept compressed until the log is written.
//!
//! A window holds one histogram per series ([`TAGS`]): the six [`Metric`]s, then the open
//! loop's start lag and its two from-schedule latencies. Values are nanoseconds, with the
//! bounds of every other histogram ([`new_histogram`]), so intervals add up to the run's.

use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};

use super::{Metric, new_histogram};

/// How many series a window has.
pub const SERIES: usize = 9;

/// Each series' tag in the log, by index: `Metric as usize` for the six metrics, then
/// [`START_LAG`] and [`FROM_SCHEDULE`]. They match the report's keys: `latency.<tag>`, and
/// `latency_from_schedule.connect` / `.total` for the last two.
pub const TAGS: [&str; SERIES] = [
    "connect",
    "handshake_rtt",
    "echo",
    "close",
    "total",
    "failed",
    "start_lag",
    "connect_from_schedule",
    "total_from_schedule",
];

/// The series of the open loop's start lag.
pub const START_LAG: usize = 6;
/// The series of connect and total measured from the scheduled start (open loop).
pub const FROM_SCHEDULE: [usize; 2] = [7, 8];

/// One thread's histograms of one interval, one per series. About 2.4 MB (nine histograms
/// of 1 ns to 1 h at 3 digits), so threads swap boxes rather than copy them.
#[derive(Clone, Debug)]
pub struct Window {
    hist: [Histogram<u64>; SERIES],
}

impl Default for Window {
    fn default() -> Self {
        Window {
            hist: std::array::from_fn(|_| new_histogram()),
        }
    }
}

impl Window {
    #[inline]
    pub fn record(&mut self, series: usize, ns: u64) {
        self.hist[series].saturating_record(ns.max(1));
    }

    /// Whether nothing was recorded in any series.
    pub fn is_empty(&self) -> bool {
        self.hist.iter().all(Histogram::is_empty)
    }

    /// Adds another thread's window of the same interval.
    pub fn add(&mut self, other: &Window) {
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            a.add(b).expect("histograms share bounds");
        }
    }

    /// Empties every series, for the window to be used again.
    pub fn reset(&mut self) {
        for h in &mut self.hist {
            h.reset();
        }
    }

    pub fn histogram(&self, series: usize) -> &Histogram<u64> {
        &self.hist[series]
    }

    /// The window as one finished interval: each non-empty series compressed.
    pub fn finish(&self, start: Duration, length: Duration) -> Interval {
        Interval {
            start,
            length,
            counts: std::array::from_fn(|i| self.hist[i].len()),
            encoded: std::array::from_fn(|i| {
                let h = &self.hist[i];
                (!h.is_empty()).then(|| encode(h))
            }),
        }
    }
}

/// The series a metric is recorded in.
pub fn series(m: Metric) -> usize {
    m as usize
}

/// One finished interval of a run, merged over its threads.
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    /// Since the run's start (the log's base time).
    pub start: Duration,
    pub length: Duration,
    /// Each series' count of values in this interval.
    pub counts: [u64; SERIES],
    /// Each series' histogram in HdrHistogram's compressed V2 encoding; `None` when empty.
    pub encoded: [Option<Vec<u8>>; SERIES],
}

impl Interval {
    /// Series `i`'s histogram (empty when nothing was recorded in it).
    pub fn histogram(&self, i: usize) -> Histogram<u64> {
        match &self.encoded[i] {
            Some(bytes) => Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .expect("an interval decodes what it encoded"),
            None => new_histogram(),
        }
    }
}

fn encode(h: &Histogram<u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serializing into memory does not fail");
    bytes
}

/// A run's latency over time: its intervals in order, each series' histogram of each.
#[derive(Clone, Debug, PartialEq)]
pub struct IntervalLog {
    /// When the first interval began: the log's start and base time.
    pub started_at: SystemTime,
    /// `--hlog-interval`: every interval's length but the last's, which ends with the run.
    pub interval: Duration,
    /// By start, back to back from 0.
    pub intervals: Vec<Interval>,
    /// The command line, for the log's header (set by the command that writes it).
    pub command: Option<String>,
}

impl IntervalLog {
    /// A log with no interval yet (a run stopped before its load began).
    pub fn empty(started_at: SystemTime, interval: Duration) -> IntervalLog {
        IntervalLog {
            started_at,
            interval,
            intervals: Vec::new(),
            command: None,
        }
    }

    /// Each series' count over every interval: what the report's histograms hold.
    pub fn totals(&self) -> [u64; SERIES] {
        let mut t = [0; SERIES];
        for iv in &self.intervals {
            for (a, b) in t.iter_mut().zip(iv.counts) {
                *a += b;
            }
        }
        t
    }

    /// Adds the intervals of a later run (`--repeat`), placed after this log's start by as
    /// much as that run started after it, so the runs lie on one time axis.
    pub fn append(&mut self, later: IntervalLog) {
        let offset = later
            .started_at
            .duration_since(self.started_at)
            .unwrap_or_default();
        self.intervals
            .extend(later.intervals.into_iter().map(|mut iv| {
                iv.start += offset;
                iv
            }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_finishes_into_an_interval_that_decodes() {
        let mut w = Window::default();
        assert!(w.is_empty());
        for v in 1..=100u64 {
            w.record(series(Metric::Connect), v * 1000);
        }
        w.record(START_LAG, 0);
        let iv = w.finish(Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(iv.counts[series(Metric::Connect)], 100);
        assert_eq!(iv.counts[START_LAG], 1);
        assert!(iv.encoded[series(Metric::Echo)].is_none());
        let h = iv.histogram(series(Metric::Connect));
        assert_eq!(h.len(), 100);
        assert_eq!(h.max(), w.histogram(0).max());
        assert!(iv.histogram(series(Metric::Echo)).is_empty());
        w.reset();
        assert!(w.is_empty());
    }

    #[test]
    fn appended_runs_follow_on_one_axis() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let iv = |s: u64| Window::default().finish(Duration::from_secs(s), Duration::from_secs(1));
        let mut a = IntervalLog::empty(t0, Duration::from_secs(1));
        a.intervals = vec![iv(0), iv(1)];
        let mut b = IntervalLog::empty(t0 + Duration::from_secs(5), Duration::from_secs(1));
        b.intervals = vec![iv(0)];
        a.append(b);
        let starts: Vec<u64> = a.intervals.iter().map(|i| i.start.as_secs()).collect();
        assert_eq!(starts, [0, 1, 5]);
    }
}
