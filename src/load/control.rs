//! Run control on the main thread: Ctrl-C/SIGTERM handling and the progress bar.
//!
//! The first signal stops new connections and lets in-flight ones finish (their timeouts bound
//! that); the report is still written, marked interrupted. A second signal exits at once (130).
//!
//! The [`Stopper`] and the failure rule ([`ErrorBudget`]) are shared with the workers: the
//! worker whose failure reaches `--max-errors` stops the run itself, at once.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::Notify;

use super::worker::Progress;
use crate::config::{Bounds, ErrorLimit};
use crate::failure::Failure;
use crate::stats::Tick;

/// Exit status after an interruption, as shells expect for SIGINT.
pub const EXIT_INTERRUPTED: i32 = 130;

pub struct Control {
    rt: tokio::runtime::Runtime,
    signals: Signals,
    /// Set on the first signal (or by a worker, at --max-errors); workers read it before
    /// each new connection.
    stop: Arc<Stopper>,
    interrupted: bool,
    /// Why the run stopped early without a signal (--max-errors, a target that is down).
    aborted: Option<String>,
    show_progress: bool,
}

/// A current-thread runtime for the main thread, with SIGINT/SIGTERM handlers installed in
/// it: what a command waits on signals with.
pub fn signal_runtime() -> std::io::Result<(tokio::runtime::Runtime, Signals)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signals = {
        let _guard = rt.enter();
        Signals::new()?
    };
    Ok((rt, signals))
}

impl Control {
    /// Installs the signal handlers; progress shows only when stderr is a terminal.
    pub fn new(quiet: bool) -> std::io::Result<Self> {
        let (rt, signals) = signal_runtime()?;
        Ok(Control {
            rt,
            signals,
            stop: Arc::new(Stopper {
                flag: AtomicBool::new(false),
                tx: tokio::sync::watch::Sender::new(false),
            }),
            interrupted: false,
            aborted: None,
            show_progress: !quiet && std::io::stderr().is_terminal(),
        })
    }

    /// What stops the workers; they share it with this supervisor.
    pub fn stopper(&self) -> Arc<Stopper> {
        self.stop.clone()
    }

    pub fn stop_now(&self) {
        self.stop.stop();
    }

    /// Why the run was stopped early for its errors, if it was.
    pub fn aborted(&self) -> Option<&str> {
        self.aborted.as_deref()
    }

    /// Whether a signal ended the run early.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// Waits for `done` while drawing progress and handling signals; returns the progress
    /// counts at each 100 ms tick since `start`, and once more at the end. The workers judge
    /// `budget` themselves, at each failure; this only reports why it stopped the run.
    /// `on_tick` runs at each tick too (the `--hlog` collection).
    #[allow(clippy::too_many_arguments)]
    pub fn supervise(
        &mut self,
        start: Instant,
        done: &Notify,
        progress: &[Progress],
        bounds: Bounds,
        label: &str,
        budget: &ErrorBudget,
        on_tick: &mut dyn FnMut(),
    ) -> Vec<Tick> {
        let bar = self.progress_bar(bounds, label);
        let mut timeline = Vec::new();
        let counts = || -> (u64, u64) {
            let done: u64 = progress.iter().map(|p| p.done.load(Relaxed)).sum();
            let failed: u64 = progress.iter().map(|p| p.failed.load(Relaxed)).sum();
            (done, failed)
        };
        let mark = |timeline: &mut Vec<Tick>| {
            let (done, failed) = counts();
            timeline.push(Tick {
                t_ms: start.elapsed().as_secs_f64() * 1e3,
                succeeded: done.saturating_sub(failed),
                failed,
            });
            (done, failed)
        };
        let Control {
            rt,
            signals,
            stop,
            interrupted,
            aborted,
            ..
        } = self;
        let note_abort = |aborted: &mut Option<String>, bar: &ProgressBar| {
            if aborted.is_none()
                && let Some(why) = budget.why()
            {
                bar.suspend(|| eprintln!("tcpbench: stopping: {why}"));
                *aborted = Some(why.to_string());
            }
        };
        rt.block_on(async {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = done.notified() => break,
                    _ = signals.recv() => on_signal(stop, interrupted, &bar),
                    _ = tick.tick() => {
                        on_tick();
                        let (done, failed) = mark(&mut timeline);
                        let elapsed = start.elapsed();
                        bar.set_position(match bounds.conns {
                            Some(_) => done,
                            None => elapsed.as_millis() as u64,
                        });
                        bar.set_message(progress_message(bounds, done, failed, elapsed));
                        note_abort(aborted, &bar);
                    }
                }
            }
        });
        note_abort(aborted, &bar);
        mark(&mut timeline);
        bar.finish_and_clear();
        timeline
    }

    /// Waits `d` (showing `label`), or less if a signal comes: a signal cuts the wait short,
    /// a second one exits.
    pub fn pause(&mut self, d: Duration, label: &str) {
        let bar = if self.show_progress {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        bar.set_message(format!("{label} ({})", humantime::format_duration(d)));
        bar.enable_steady_tick(Duration::from_millis(200));
        let Control {
            rt,
            signals,
            stop,
            interrupted,
            ..
        } = self;
        rt.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = signals.recv() => on_signal(stop, interrupted, &bar),
            }
        });
        bar.finish_and_clear();
    }

    /// The progress line: with `--conns`, a bar of connections with the rate and the ETA;
    /// with `--duration`, a bar of time "of 8s" with the connections done so far.
    fn progress_bar(&self, bounds: Bounds, label: &str) -> ProgressBar {
        if !self.show_progress {
            return ProgressBar::hidden();
        }
        let (bar, template) = match (bounds.conns, bounds.duration) {
            (Some(n), _) => (
                ProgressBar::new(n),
                "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} conns ({rate}, ETA {eta}) {msg}",
            ),
            (None, Some(d)) => (
                ProgressBar::new(d.as_millis() as u64),
                "{prefix} [{elapsed_precise}] {wide_bar} of {bound} {msg}",
            ),
            (None, None) => (
                ProgressBar::no_length(),
                "{prefix} [{elapsed_precise}] {spinner} {msg}",
            ),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let bound = bounds
            .duration
            .map(|d| humantime::format_duration(d).to_string())
            .unwrap_or_default();
        if let Ok(style) = ProgressStyle::with_template(template) {
            let style = style
                .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}/s", per_sec(s.per_sec()));
                })
                .with_key(
                    "bound",
                    move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&bound);
                    },
                );
            bar.set_style(style);
        }
        bar.set_prefix(label.to_string());
        bar
    }
}

/// A rate as the summary rounds it: whole connections per second, thousands separated.
fn per_sec(v: f64) -> String {
    let n = if v.is_finite() { v.round() as u64 } else { 0 };
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What the progress line says beside the bar: connections done (with `--duration`, where
/// the bar is time) and failures.
fn progress_message(bounds: Bounds, done: u64, failed: u64, elapsed: Duration) -> String {
    if bounds.conns.is_none() {
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
        format!("{done} conns ({}/s), {failed} failed", per_sec(rate))
    } else {
        format!("{failed} failed")
    }
}

/// Connections that must all have failed before a run is called off without --max-errors.
const ALL_FAILED_AFTER: u64 = 100;

/// The stop rule for failures (`--max-errors`, or "the first 100 all failed"), judged by the
/// worker that records each failure, so a run stops within the connections already in
/// flight rather than on the supervisor's next tick. One per pool run, shared by all its
/// threads' workers; the supervisor reads [`ErrorBudget::why`].
pub struct ErrorBudget {
    limit: Option<ErrorLimit>,
    /// Failed connections so far, over all threads: one relaxed add per failure.
    failed: AtomicU64,
    /// Set by the first success; later successes only read it.
    any_succeeded: AtomicBool,
    /// Why the run was stopped: set once, by the worker whose failure tripped the rule.
    why: OnceLock<String>,
}

impl ErrorBudget {
    pub fn new(limit: Option<ErrorLimit>) -> Self {
        ErrorBudget {
            limit,
            failed: AtomicU64::new(0),
            any_succeeded: AtomicBool::new(false),
            why: OnceLock::new(),
        }
    }

    /// Counts a successful connection (only the first one writes).
    #[inline]
    pub fn succeeded(&self) {
        if !self.any_succeeded.load(Relaxed) {
            self.any_succeeded.store(true, Relaxed);
        }
    }

    /// Counts a failed connection, `last`; `done` sums the connections ended so far (asked
    /// for only by a `P%` limit). Returns `true` when this failure trips the rule: the
    /// caller stops the run.
    pub fn failed(&self, last: Failure, done: impl FnOnce() -> u64) -> bool {
        let failed = self.failed.fetch_add(1, Relaxed) + 1;
        if self.why.get().is_some() {
            return false;
        }
        let done = match self.limit {
            Some(ErrorLimit::Ratio(_)) => done().max(failed),
            _ => 0,
        };
        let all_failed = !self.any_succeeded.load(Relaxed);
        match abort_reason(failed, done, all_failed, self.limit, last) {
            Some(why) => self.why.set(why).is_ok(),
            None => false,
        }
    }

    /// Why the rule stopped the run, once it has.
    pub fn why(&self) -> Option<&str> {
        self.why.get().map(String::as_str)
    }
}

/// Why a run should stop early after `failed` failures, `last` the latest, if it should:
/// `done` connections have ended (read for a `P%` limit only), and `all_failed` when none
/// succeeded yet.
fn abort_reason(
    failed: u64,
    done: u64,
    all_failed: bool,
    max_errors: Option<ErrorLimit>,
    last: Failure,
) -> Option<String> {
    match max_errors {
        Some(ErrorLimit::Count(n)) if failed >= n => {
            Some(format!("{failed} connections failed (--max-errors {n})"))
        }
        Some(ErrorLimit::Ratio(r))
            if done >= ALL_FAILED_AFTER && failed as f64 > r * done as f64 =>
        {
            Some(format!(
                "{failed} of {done} connections failed, more than --max-errors {}%",
                r * 100.0
            ))
        }
        None if failed >= ALL_FAILED_AFTER && all_failed => Some(format!(
            "all of the first {failed} connections failed (the last: {} at {}): the target looks down or broken; --max-errors N lets a run go on",
            last.kind, last.phase
        )),
        _ => None,
    }
}

/// SIGINT and SIGTERM, both meaning "stop".
pub struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    /// Catches both from now on; needs a runtime context.
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next one.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// Tells the workers to stop: a flag read before each connection, and a watch that wakes
/// those asleep (open-loop schedule, --hold). The supervisor stops on a signal; the worker
/// whose failure trips the [`ErrorBudget`] stops too. It never un-stops.
pub struct Stopper {
    flag: AtomicBool,
    tx: tokio::sync::watch::Sender<bool>,
}

impl Stopper {
    pub fn stop(&self) {
        self.flag.store(true, Relaxed);
        self.tx.send_replace(true);
    }

    /// Whether the run is stopping: read before each new connection.
    #[inline]
    pub fn stopping(&self) -> bool {
        self.flag.load(Relaxed)
    }

    /// A receiver that becomes `true` when the run is told to stop.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

fn on_signal(stop: &Stopper, interrupted: &mut bool, bar: &ProgressBar) {
    if *interrupted {
        bar.finish_and_clear();
        eprintln!("tcpbench: interrupted twice; exiting without a report");
        std::process::exit(EXIT_INTERRUPTED);
    }
    *interrupted = true;
    stop.stop();
    bar.suspend(|| {
        eprintln!(
            "tcpbench: interrupted; connections in flight get {} s to finish (again to quit at once)",
            super::worker::STOP_GRACE.as_secs()
        )
    });
}

#[cfg(test)]
mod tests {
    use super::{ErrorBudget, abort_reason, per_sec};

    #[test]
    fn the_progress_rate_is_rounded_like_the_summary() {
        assert_eq!(per_sec(20_437.424_3), "20,437");
        assert_eq!(per_sec(999.6), "1,000");
        assert_eq!(per_sec(1_234_567.0), "1,234,567");
        assert_eq!(per_sec(f64::NAN), "0");
    }
    use crate::config::ErrorLimit::{Count, Ratio};
    use crate::failure::{ErrorKind, Failure, Phase};

    const REFUSED: Failure = Failure {
        phase: Phase::Connect,
        kind: ErrorKind::Refused,
        errno: Some(libc::ECONNREFUSED),
        status: None,
    };

    #[test]
    fn early_abort_rules() {
        assert!(
            abort_reason(99, 0, true, None, REFUSED).is_none(),
            "too few to judge"
        );
        assert!(
            abort_reason(100, 0, true, None, REFUSED)
                .unwrap()
                .contains("looks down")
        );
        assert!(
            abort_reason(4999, 0, false, None, REFUSED).is_none(),
            "one success: the target is up"
        );
        assert!(
            abort_reason(5, 10, false, Some(Count(5)), REFUSED)
                .unwrap()
                .contains("--max-errors 5")
        );
        assert!(abort_reason(4, 10, false, Some(Count(5)), REFUSED).is_none());
        assert!(
            abort_reason(200, 200, true, Some(Count(1000)), REFUSED).is_none(),
            "an explicit limit replaces the rule"
        );
        assert!(
            abort_reason(99, 99, true, Some(Ratio(0.5)), REFUSED).is_none(),
            "too few to judge"
        );
        assert!(
            abort_reason(100, 200, false, Some(Ratio(0.5)), REFUSED).is_none(),
            "50% is not more"
        );
        assert!(
            abort_reason(101, 200, false, Some(Ratio(0.5)), REFUSED)
                .unwrap()
                .contains("101 of 200 connections failed, more than --max-errors 50%")
        );
    }

    #[test]
    fn the_failure_that_reaches_the_limit_trips_it_once() {
        let b = ErrorBudget::new(Some(Count(3)));
        let trips: Vec<bool> = (0..5)
            .map(|_| b.failed(REFUSED, || unreachable!()))
            .collect();
        assert_eq!(trips, [false, false, true, false, false]);
        assert!(b.why().unwrap().contains("3 connections failed"));

        let down = ErrorBudget::new(None);
        assert!(!(0..99).any(|_| down.failed(REFUSED, || 0)));
        assert!(
            down.failed(REFUSED, || 0),
            "the 100th failure with no success"
        );
        assert!(
            down.why()
                .unwrap()
                .contains("(the last: refused at connect)"),
            "{:?}",
            down.why()
        );
        let up = ErrorBudget::new(None);
        up.succeeded();
        assert!(!(0..500).any(|_| up.failed(REFUSED, || 0)));
        assert!(up.why().is_none());
    }
}
