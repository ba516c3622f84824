//! Run control on the main thread: Ctrl-C/SIGTERM handling and the progress bar.
//!
//! The first signal stops new connections and lets in-flight ones finish (their timeouts bound
//! that); the report is still written, marked interrupted. A second signal exits at once (130).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::Notify;

use super::worker::Progress;
use crate::config::{Bounds, ErrorLimit};

/// Exit status after an interruption, as shells expect for SIGINT.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Connections ended by a moment of the run, counted since its start.
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Tick {
    /// Since the pool started.
    pub t_ms: f64,
    pub succeeded: u64,
    pub failed: u64,
}

pub struct Control {
    rt: tokio::runtime::Runtime,
    signals: Signals,
    /// Set on the first signal; workers read it before each new connection.
    stop: Stopper,
    interrupted: bool,
    /// Why the run stopped early without a signal (--max-errors, a target that is down).
    aborted: Option<String>,
    show_progress: bool,
}

impl Control {
    /// Installs the signal handlers; progress shows only when stderr is a terminal.
    pub fn new(quiet: bool) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let signals = {
            let _guard = rt.enter();
            Signals::new()?
        };
        Ok(Control {
            rt,
            signals,
            stop: Stopper {
                flag: Arc::new(AtomicBool::new(false)),
                tx: tokio::sync::watch::Sender::new(false),
            },
            interrupted: false,
            aborted: None,
            show_progress: !quiet && std::io::stderr().is_terminal(),
        })
    }

    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.flag.clone()
    }

    /// A receiver that becomes `true` when the run is told to stop.
    pub fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.tx.subscribe()
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
    /// counts at each 100 ms tick since `start`, and once more at the end.
    pub fn supervise(
        &mut self,
        start: Instant,
        done: &Notify,
        progress: &[Arc<Progress>],
        bounds: Bounds,
        label: &str,
        max_errors: Option<ErrorLimit>,
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
        rt.block_on(async {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = done.notified() => break,
                    _ = signals.recv() => on_signal(stop, interrupted, &bar),
                    _ = tick.tick() => {
                        let (done, failed) = mark(&mut timeline);
                        bar.set_position(done);
                        bar.set_message(format!("{failed} failed"));
                        if aborted.is_none()
                            && let Some(why) = abort_reason(done, failed, max_errors)
                        {
                            bar.suspend(|| eprintln!("tcpbench: stopping: {why}"));
                            stop.stop();
                            *aborted = Some(why);
                        }
                    }
                }
            }
        });
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

    fn progress_bar(&self, bounds: Bounds, label: &str) -> ProgressBar {
        if !self.show_progress {
            return ProgressBar::hidden();
        }
        let bar = match bounds.conns {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::no_length(),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let template = if bounds.conns.is_some() {
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} conns ({per_sec}) {msg}"
        } else {
            "{prefix} [{elapsed_precise}] {spinner} {pos} conns ({per_sec}) {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_string());
        bar
    }
}

/// Connections that must all have failed before a run is called off without --max-errors.
const ALL_FAILED_AFTER: u64 = 100;

/// Why a run with `done` connections, `failed` of them failed, should stop early, if it should.
fn abort_reason(done: u64, failed: u64, max_errors: Option<ErrorLimit>) -> Option<String> {
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
        None if done >= ALL_FAILED_AFTER && failed == done => Some(format!(
            "all of the first {done} connections failed: the target looks down"
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
/// those asleep (open-loop schedule, --hold).
struct Stopper {
    flag: Arc<AtomicBool>,
    tx: tokio::sync::watch::Sender<bool>,
}

impl Stopper {
    fn stop(&self) {
        self.flag.store(true, Relaxed);
        self.tx.send_replace(true);
    }
}

fn on_signal(stop: &Stopper, interrupted: &mut bool, bar: &ProgressBar) {
    if *interrupted {
        bar.abandon();
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
    use super::abort_reason;
    use crate::config::ErrorLimit::{Count, Ratio};

    #[test]
    fn early_abort_rules() {
        assert!(abort_reason(99, 99, None).is_none(), "too few to judge");
        assert!(abort_reason(100, 100, None).unwrap().contains("looks down"));
        assert!(
            abort_reason(5000, 4999, None).is_none(),
            "one success: the target is up"
        );
        assert!(
            abort_reason(10, 5, Some(Count(5)))
                .unwrap()
                .contains("--max-errors 5")
        );
        assert!(abort_reason(10, 4, Some(Count(5))).is_none());
        assert!(
            abort_reason(200, 200, Some(Count(1000))).is_none(),
            "an explicit limit replaces the rule"
        );
        assert!(
            abort_reason(99, 99, Some(Ratio(0.5))).is_none(),
            "too few to judge"
        );
        assert!(
            abort_reason(200, 100, Some(Ratio(0.5))).is_none(),
            "50% is not more"
        );
        assert!(
            abort_reason(200, 101, Some(Ratio(0.5)))
                .unwrap()
                .contains("101 of 200 connections failed, more than --max-errors 50%")
        );
    }
}
