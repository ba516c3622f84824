//! Several reports of one configuration as one: the runs of `--repeat`, (later) the clients
//! of a distributed run. Histograms are merged, never their percentiles averaged; counts add.

use std::collections::BTreeMap;

use super::figures::Repeats;
use super::{ErrorCount, PhaseStats, Report, ScheduledLatency};
use crate::server::ServerTotals;

fn merged(stats: &[&PhaseStats]) -> PhaseStats {
    let mut h = crate::stats::new_histogram();
    for s in stats {
        h.add(&s.hdr.0).expect("report histograms share bounds");
    }
    PhaseStats::from_histogram(&h)
}

impl Report {
    /// Merges the reports of `runs` made one after another with the same configuration:
    /// counts and durations add, histograms merge, TIME_WAIT peaks take the highest, and
    /// the time series are the first run's. `repeats` keeps each run's figures.
    ///
    /// Panics on an empty `runs`.
    pub fn merge_runs(runs: &[Report]) -> Report {
        let first = &runs[0];
        let mut out = first.clone();
        let all = |f: fn(&Report) -> &PhaseStats| merged(&runs.iter().map(f).collect::<Vec<_>>());
        out.latency.connect = all(|r| &r.latency.connect);
        out.latency.echo = all(|r| &r.latency.echo);
        out.latency.close = all(|r| &r.latency.close);
        out.latency.total = all(|r| &r.latency.total);
        out.latency.failed = all(|r| &r.latency.failed);
        if first.latency_from_schedule.is_some() {
            let sched: Vec<&ScheduledLatency> = runs
                .iter()
                .filter_map(|r| r.latency_from_schedule.as_ref())
                .collect();
            out.latency_from_schedule = Some(ScheduledLatency {
                connect: merged(&sched.iter().map(|s| &s.connect).collect::<Vec<_>>()),
                total: merged(&sched.iter().map(|s| &s.total).collect::<Vec<_>>()),
            });
        }
        let sum = |f: fn(&Report) -> u64| runs.iter().map(f).sum::<u64>();
        out.totals.attempted = sum(|r| r.totals.attempted);
        out.totals.succeeded = sum(|r| r.totals.succeeded);
        out.totals.failed = sum(|r| r.totals.failed);
        out.totals.bytes_sent = sum(|r| r.totals.bytes_sent);
        out.totals.bytes_received = sum(|r| r.totals.bytes_received);
        out.duration_s = runs.iter().map(|r| r.duration_s).sum();
        out.rate_cps = if out.duration_s > 0.0 {
            out.totals.succeeded as f64 / out.duration_s
        } else {
            0.0
        };

        let mut errors: BTreeMap<(String, String, Option<String>), ErrorCount> = BTreeMap::new();
        for e in runs.iter().flat_map(|r| &r.errors) {
            let key = (e.phase.to_string(), e.kind.to_string(), e.errno.clone());
            errors
                .entry(key)
                .and_modify(|c| c.count += e.count)
                .or_insert_with(|| e.clone());
        }
        out.errors = errors.into_values().collect();
        out.interrupted = runs.iter().any(|r| r.interrupted);
        out.aborted = runs.iter().find_map(|r| r.aborted.clone());
        out.saturated = runs.iter().any(|r| r.saturated);

        out.server = first.server.as_ref().map(|_| {
            let mut t = ServerTotals::default();
            for s in runs.iter().filter_map(|r| r.server.as_ref()) {
                t.accepted += s.accepted;
                t.bytes_in += s.bytes_in;
                t.bytes_out += s.bytes_out;
                t.resets += s.resets;
                t.idle_timeouts += s.idle_timeouts;
                t.over_limit += s.over_limit;
                t.accept_errors += s.accept_errors;
            }
            t
        });
        let mut counters = BTreeMap::new();
        for (k, v) in runs.iter().flat_map(|r| &r.kernel.counters) {
            *counters.entry(k.clone()).or_insert(0) += v;
        }
        out.kernel.counters = counters;

        let cpu_sum = |f: fn(&Report) -> f64| runs.iter().map(f).sum::<f64>();
        out.cpu.user_s = cpu_sum(|r| r.cpu.user_s);
        out.cpu.sys_s = cpu_sum(|r| r.cpu.sys_s);
        out.cpu.us_per_conn = if out.totals.attempted > 0 {
            (out.cpu.user_s + out.cpu.sys_s) * 1e6 / out.totals.attempted as f64
        } else {
            0.0
        };
        // Machine-wide shares, weighted by each run's length.
        let weighted = |f: fn(&Report) -> f64| {
            if out.duration_s > 0.0 {
                runs.iter().map(|r| f(r) * r.duration_s).sum::<f64>() / out.duration_s
            } else {
                f(first)
            }
        };
        out.cpu.system_busy_pct = weighted(|r| r.cpu.system_busy_pct);
        out.cpu.system_softirq_pct = weighted(|r| r.cpu.system_softirq_pct);

        let last = &runs[runs.len() - 1];
        out.time_wait.peak_client = runs
            .iter()
            .map(|r| r.time_wait.peak_client)
            .max()
            .unwrap_or(0);
        out.time_wait.peak_server = runs
            .iter()
            .map(|r| r.time_wait.peak_server)
            .max()
            .unwrap_or(0);
        out.time_wait.peak_namespace = runs
            .iter()
            .map(|r| r.time_wait.peak_namespace)
            .max()
            .unwrap_or(0);
        out.time_wait.end_client = last.time_wait.end_client;
        out.time_wait.end_server = last.time_wait.end_server;
        out.time_wait.drain_s = last.time_wait.drain_s;

        let mut warnings: Vec<String> = Vec::new();
        for w in runs.iter().flat_map(|r| &r.warnings) {
            if !warnings.contains(w) {
                warnings.push(w.clone());
            }
        }
        out.warnings = warnings;
        out.repeats = (runs.len() > 1).then(|| Repeats::of(runs));
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::report::{Report, fixture};

    #[test]
    fn runs_merge_by_histogram_and_sum() {
        let a = fixture::report();
        let mut b = fixture::report();
        b.rate_cps = 1.0;
        b.time_wait.peak_client = 7;
        let m = Report::merge_runs(&[a.clone(), b]);
        assert_eq!(m.totals.attempted, 2 * a.totals.attempted);
        assert_eq!(m.latency.connect.count, 2 * a.latency.connect.count);
        assert_eq!(
            m.latency.connect.hdr.0.len(),
            2 * a.latency.connect.hdr.0.len()
        );
        assert_eq!(m.errors.len(), 1);
        assert_eq!(m.errors[0].count, 2 * a.errors[0].count);
        assert_eq!(m.duration_s, 2.0 * a.duration_s);
        assert_eq!(m.rate_cps, a.rate_cps, "same counts over twice the time");
        assert_eq!(m.time_wait.peak_client, 7);
        let rep = m.repeats.expect("two runs keep their figures");
        assert_eq!(rep.runs.len(), 2);
        assert_eq!(rep.min["rate_cps"], 1.0);
        assert!(Report::merge_runs(&[a]).repeats.is_none());
    }
}
