//! `--hlog`'s collection: each load thread swaps its recorder's [`Window`] out at every
//! interval's end and sends it here; the supervisor, on its progress tick, merges the
//! threads' windows of each interval and compresses an interval once every thread is past it.
//!
//! Nothing of this is on the record path: a record goes into the thread's own window (no
//! lock, no atomic); the swap is two box moves on the thread, once an interval. The emptied
//! windows go back to their threads as spares, so a thread allocates (and zeroes 2.4 MB)
//! only when the supervisor has none back yet.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, SystemTime};

use crate::stats::Recorder;
use crate::stats::interval::{IntervalLog, Window};

/// One thread's window of one interval, sent when the thread swapped it out.
struct Rotation {
    thread: usize,
    /// The interval: 0 from the pool's start to its first `--hlog-interval`, and so on.
    index: u32,
    /// `None` when the thread recorded nothing in it (nothing was swapped).
    window: Option<Box<Window>>,
    /// The thread's last window: it ended, and sends no more.
    last: bool,
}

/// A load thread's end of the collection: owned by the thread, used by its rotation task
/// (every interval) and once more when the thread ends.
pub struct Link {
    thread: usize,
    /// `--hlog-interval`.
    pub every: Duration,
    /// To the supervisor's [`Collector`]; dropped with the thread.
    windows: Sender<Rotation>,
    /// Emptied windows from the collector, for the next swap; the collector stops sending
    /// when this end is dropped.
    spares: Receiver<Box<Window>>,
}

impl Link {
    /// Gives `rec` its first window, before any record.
    pub fn install(&self, rec: &mut Recorder) {
        rec.window = Some(Box::default());
    }

    /// Ends interval `index` for this thread: swaps `rec`'s window for a spare (a new one
    /// if none came back) and sends it. An empty window stays in place: only the interval's
    /// end is sent.
    pub fn rotate(&self, rec: &mut Recorder, index: u32) {
        self.send(rec, index, false);
    }

    /// Sends this thread's last window, interval `index`: the thread has ended.
    pub fn close(&self, rec: &mut Recorder, index: u32) {
        self.send(rec, index, true);
        rec.window = None;
    }

    fn send(&self, rec: &mut Recorder, index: u32, last: bool) {
        let window = match rec.window.as_deref() {
            Some(w) if !w.is_empty() => {
                let fresh = self.spares.try_recv().unwrap_or_default();
                rec.window.replace(fresh)
            }
            _ => None,
        };
        // The supervisor outlives the threads; if it is gone, so is the log.
        let _ = self.windows.send(Rotation {
            thread: self.thread,
            index,
            window,
            last,
        });
    }
}

/// The supervisor's end: the threads' windows by interval, merged as they come.
pub struct Collector {
    interval: Duration,
    windows: Receiver<Rotation>,
    /// Back to each thread, for its next swap.
    spares: Vec<Sender<Box<Window>>>,
    /// Per thread: the intervals it has sent, all below this.
    through: Vec<u32>,
    /// Per thread: it sent its last window.
    ended: Vec<bool>,
    /// Intervals some thread is not past yet, merged so far, each in the window of the
    /// thread that sent it first (which gets it back).
    pending: BTreeMap<u32, (usize, Box<Window>)>,
    /// The next interval to finish; every one below is in `log`.
    next: u32,
    /// The highest interval any thread sent.
    highest: Option<u32>,
    log: IntervalLog,
}

impl Collector {
    /// A collector for `threads` threads whose pool started at `started_at`, and each
    /// thread's link, by thread index.
    pub fn new(
        interval: Duration,
        threads: usize,
        started_at: SystemTime,
    ) -> (Collector, Vec<Link>) {
        let (tx, rx) = channel();
        let mut spares = Vec::with_capacity(threads);
        let links = (0..threads)
            .map(|thread| {
                let (spare_tx, spare_rx) = channel();
                // One spare each to begin with: the first swap allocates nothing either.
                let _ = spare_tx.send(Box::default());
                spares.push(spare_tx);
                Link {
                    thread,
                    every: interval,
                    windows: tx.clone(),
                    spares: spare_rx,
                }
            })
            .collect();
        let collector = Collector {
            interval,
            windows: rx,
            spares,
            through: vec![0; threads],
            ended: vec![false; threads],
            pending: BTreeMap::new(),
            next: 0,
            highest: None,
            log: IntervalLog::empty(started_at, interval),
        };
        (collector, links)
    }

    /// Takes every window sent so far, and finishes the intervals every thread is past.
    pub fn drain(&mut self) {
        while let Ok(r) = self.windows.try_recv() {
            self.take(r);
        }
        self.finish_ready(None);
    }

    /// The log, once every thread has ended: the last interval ends at `elapsed` since the
    /// pool's start.
    pub fn finish(mut self, elapsed: Duration) -> IntervalLog {
        while let Ok(r) = self.windows.try_recv() {
            self.take(r);
        }
        // A thread that panicked sent no last window; what it did send still counts.
        self.ended.fill(true);
        self.finish_ready(Some(elapsed));
        self.log
    }

    fn take(&mut self, r: Rotation) {
        self.through[r.thread] = self.through[r.thread].max(r.index + 1);
        self.ended[r.thread] |= r.last;
        self.highest = self.highest.max(Some(r.index));
        let Some(w) = r.window else {
            return;
        };
        match self.pending.get_mut(&r.index) {
            Some((_, merged)) => {
                merged.add(&w);
                self.give_back(r.thread, w);
            }
            None => {
                self.pending.insert(r.index, (r.thread, w));
            }
        }
    }

    /// Finishes interval after interval while every thread is past it (or ended). The
    /// highest one is the run's last only at the end (`end` given): it ends there.
    fn finish_ready(&mut self, end: Option<Duration>) {
        let Some(highest) = self.highest else {
            return;
        };
        while self.next <= highest {
            let k = self.next;
            let past = (0..self.through.len()).all(|t| self.ended[t] || self.through[t] > k);
            if !past {
                break;
            }
            let start = self.interval * k;
            let length = match end {
                Some(end) if k == highest => end.saturating_sub(start),
                _ => self.interval,
            };
            let interval = match self.pending.remove(&k) {
                Some((owner, w)) => {
                    let iv = w.finish(start, length);
                    self.give_back(owner, w);
                    iv
                }
                None => Window::default().finish(start, length),
            };
            self.log.intervals.push(interval);
            self.next += 1;
        }
    }

    /// Empties `w` and sends it back to `thread`, which sent it, unless that thread has
    /// ended: each thread gets back as many windows as it sent, so none piles up spares
    /// while another allocates.
    fn give_back(&mut self, thread: usize, mut w: Box<Window>) {
        if self.ended[thread] {
            return;
        }
        w.reset();
        // A thread that ended meanwhile dropped its end: the window is dropped too.
        let _ = self.spares[thread].send(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Metric;
    use crate::stats::interval::series;

    const I: Duration = Duration::from_millis(200);

    fn recorder(link: &Link) -> Recorder {
        let mut r = Recorder::default();
        link.install(&mut r);
        r
    }

    #[test]
    fn intervals_merge_over_threads_and_add_up_to_the_run() {
        let (mut c, links) = Collector::new(I, 2, SystemTime::UNIX_EPOCH);
        let mut links = links.into_iter();
        let (a, b) = (links.next().unwrap(), links.next().unwrap());
        let (mut ra, mut rb) = (recorder(&a), recorder(&b));
        // Interval 0: a 3, b 2. Interval 1: a nothing, b 1. Interval 2 (the last, cut
        // short): a 1, and b has ended.
        for _ in 0..3 {
            ra.record(Metric::Connect, 10_000);
        }
        rb.record(Metric::Connect, 20_000);
        rb.record(Metric::Connect, 30_000);
        a.rotate(&mut ra, 0);
        c.drain();
        assert!(c.log.intervals.is_empty(), "b is not past interval 0 yet");
        b.rotate(&mut rb, 0);
        a.rotate(&mut ra, 1);
        c.drain();
        assert_eq!(c.log.intervals.len(), 1);
        rb.record(Metric::Connect, 40_000);
        b.close(&mut rb, 1);
        ra.record_failure(
            crate::failure::Failure::new(
                crate::failure::Phase::Connect,
                crate::failure::ErrorKind::Refused,
            ),
            5_000,
        );
        a.close(&mut ra, 2);
        let log = c.finish(I * 2 + Duration::from_millis(50));
        let counts: Vec<u64> = log
            .intervals
            .iter()
            .map(|iv| iv.counts[series(Metric::Connect)])
            .collect();
        assert_eq!(counts, [5, 1, 0]);
        assert_eq!(log.intervals[2].counts[series(Metric::Failed)], 1);
        let lengths: Vec<u128> = log
            .intervals
            .iter()
            .map(|iv| iv.length.as_millis())
            .collect();
        assert_eq!(
            lengths,
            [200, 200, 50],
            "the last interval ends with the run"
        );
        // The sums are the threads' own histograms, merged.
        let mut all = ra.clone();
        all.merge(&rb);
        let t = log.totals();
        for m in Metric::ALL {
            assert_eq!(t[series(m)], all.histogram(m).len(), "{m:?}");
        }
        let h = log.intervals[0].histogram(series(Metric::Connect));
        assert_eq!(h.len(), 5);
        assert!(h.max() >= 30_000, "b's values merged in");
    }

    #[test]
    fn each_thread_gets_back_what_it_sent() {
        // Thread a always sends first (its window holds the merge), b second: neither may
        // pile up spares while the other allocates.
        let (mut c, links) = Collector::new(I, 2, SystemTime::UNIX_EPOCH);
        let mut links = links.into_iter();
        let (a, b) = (links.next().unwrap(), links.next().unwrap());
        let (mut ra, mut rb) = (recorder(&a), recorder(&b));
        for k in 0..50 {
            ra.record(Metric::Total, 1_000);
            rb.record(Metric::Total, 2_000);
            a.rotate(&mut ra, k);
            b.rotate(&mut rb, k);
            c.drain();
        }
        assert_eq!(c.log.intervals.len(), 50);
        for (name, link) in [("a", &a), ("b", &b)] {
            let spares = link.spares.try_iter().count();
            assert_eq!(spares, 1, "{name}: its one spare, back each interval");
        }
    }

    #[test]
    fn swapped_windows_come_back_as_spares() {
        let (mut c, mut links) = Collector::new(I, 1, SystemTime::UNIX_EPOCH);
        let a = links.pop().unwrap();
        let mut r = recorder(&a);
        r.record(Metric::Total, 1_000);
        a.rotate(&mut r, 0);
        c.drain();
        // The first spare was taken by the swap; the swapped window came back emptied.
        assert!(a.spares.try_recv().is_ok_and(|w| w.is_empty()));
        assert!(a.spares.try_recv().is_err());
        // An empty window is not swapped.
        let before: *const Window = r.window.as_deref().unwrap();
        a.rotate(&mut r, 1);
        assert!(std::ptr::eq(before, r.window.as_deref().unwrap()));
        c.drain();
        assert_eq!(c.log.intervals.len(), 2);
    }
}
