//! Several reports of one configuration as one: the runs of `--repeat` (one after another),
//! the agents of a distributed run (side by side). Histograms are merged, never their
//! percentiles averaged; counts add.

use std::collections::BTreeMap;

use std::time::{SystemTime, UNIX_EPOCH};

mod check;

pub use check::agents_problem;

use super::figures::Repeats;
use super::{AgentRun, ErrorCount, PhaseStats, Report, ScheduledLatency};
use crate::observe::sampler::Sample;
use crate::server::ServerTotals;
use crate::stats::Tick;

fn merged(stats: &[&PhaseStats]) -> PhaseStats {
    let mut h = crate::stats::new_histogram();
    for s in stats {
        // A histogram with wider bounds (another tool's) adds value by value, saturating.
        if h.add(&s.hdr.0).is_err() {
            for v in s.hdr.0.iter_recorded() {
                h.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
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
        let mut out = counts(runs);
        out.duration_s = runs.iter().map(|r| r.duration_s).sum();
        out.rate_cps = rate(out.totals.succeeded, out.duration_s);
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

        out.repeats = (runs.len() > 1).then(|| Repeats::of(runs));
        // Each run's intervals after the one before, on the first run's time axis.
        out.intervals = None;
        for log in runs.iter().filter_map(|r| r.intervals.clone()) {
            match out.intervals.as_mut() {
                Some(all) => all.append(log),
                None => out.intervals = Some(log),
            }
        }
        out
    }

    /// Merges the reports of agents that ran side by side (`tcpbench merge`): counts add,
    /// histograms merge, and the time series are laid on one wall-clock axis (from each
    /// report's `started_at`) and summed. The duration is from the first start to the last
    /// end; `agents` keeps each agent's run. Reports that are merges already contribute
    /// their agents.
    ///
    /// Panics on an empty `reports`.
    pub fn merge_agents(reports: &[Report]) -> Report {
        let mut out = counts(reports);
        let starts: Vec<SystemTime> = reports
            .iter()
            .map(|r| humantime::parse_rfc3339_weak(&r.started_at).unwrap_or(UNIX_EPOCH))
            .collect();
        let t0 = starts.iter().min().copied().unwrap_or(UNIX_EPOCH);
        let offsets: Vec<u64> = starts
            .iter()
            .map(|s| s.duration_since(t0).unwrap_or_default().as_micros() as u64)
            .collect();
        let end_s = reports
            .iter()
            .zip(&offsets)
            .map(|(r, o)| *o as f64 / 1e6 + r.duration_s)
            .fold(0.0, f64::max);
        // Each report's points of one series, with the report's offset on the common axis.
        fn each<V>(
            reports: &[Report],
            offsets: &[u64],
            points: impl Fn(&Report) -> Vec<(u64, V)>,
        ) -> Vec<(u64, Vec<(u64, V)>)> {
            reports
                .iter()
                .zip(offsets)
                .map(|(r, o)| (*o, points(r)))
                .collect()
        }
        out.started_at = humantime::format_rfc3339_millis(t0).to_string();
        out.duration_s = end_s;
        out.rate_cps = rate(out.totals.succeeded, end_s);
        out.config = reports[0].config.whole_run();
        out.repeats = None;

        // Connections ended, summed over agents at every instant any of them counted.
        let timeline = on_one_axis(
            each(reports, &offsets, |r| {
                r.timeline
                    .iter()
                    .map(|t| (us(t.t_ms), (t.succeeded, t.failed)))
                    .collect()
            }),
            |a: &mut (u64, u64), b| {
                a.0 += b.0;
                a.1 += b.1;
            },
        );
        out.timeline = timeline
            .into_iter()
            .map(|(t, (succeeded, failed))| Tick {
                t_ms: t as f64 / 1e3,
                succeeded,
                failed,
            })
            .collect();

        // Socket states: the namespace totals at every tick, the exact breakdowns per side.
        type States = BTreeMap<String, u32>;
        let side = |get: fn(&Sample) -> Option<&States>| {
            on_one_axis(
                each(reports, &offsets, |r| {
                    let samples = r.tcp_states.samples.iter();
                    samples
                        .filter_map(|s| Some((us(s.t_ms), get(s)?.clone())))
                        .collect()
                }),
                |a: &mut States, b| {
                    for (state, n) in b {
                        *a.entry(state.clone()).or_insert(0) += n;
                    }
                },
            )
        };
        let (client, server) = (side(|s| s.client.as_ref()), side(|s| s.server.as_ref()));
        let totals = on_one_axis(
            each(reports, &offsets, |r| {
                let samples = r.tcp_states.samples.iter();
                samples
                    .filter_map(|s| Some((us(s.t_ms), s.tw_total?)))
                    .collect()
            }),
            |a: &mut u64, b| *a += b,
        );
        let client: BTreeMap<u64, States> = client.into_iter().collect();
        let server: BTreeMap<u64, States> = server.into_iter().collect();
        let mut times: Vec<u64> = totals
            .iter()
            .map(|(t, _)| *t)
            .chain(client.keys().copied())
            .chain(server.keys().copied())
            .collect();
        times.sort_unstable();
        times.dedup();
        let totals: BTreeMap<u64, u64> = totals.into_iter().collect();
        out.tcp_states.samples = times
            .into_iter()
            .map(|t| Sample {
                t_ms: t as f64 / 1e3,
                tw_total: totals.get(&t).copied(),
                client: client.get(&t).cloned(),
                server: server.get(&t).cloned(),
            })
            .collect();
        out.tcp_states.server_observed = reports.iter().any(|r| r.tcp_states.server_observed);

        let tw_of = |m: &States| m.get("TIME_WAIT").copied().unwrap_or(0);
        let sum_u32 = |f: fn(&Report) -> u32| reports.iter().map(f).sum::<u32>();
        let max_u32 = |f: fn(&Report) -> u32| reports.iter().map(f).max().unwrap_or(0);
        out.time_wait.peak_client = client
            .values()
            .map(tw_of)
            .max()
            .unwrap_or(0)
            .max(max_u32(|r| r.time_wait.peak_client));
        out.time_wait.peak_server = server
            .values()
            .map(tw_of)
            .max()
            .unwrap_or(0)
            .max(max_u32(|r| r.time_wait.peak_server));
        out.time_wait.end_client = sum_u32(|r| r.time_wait.end_client);
        out.time_wait.end_server = sum_u32(|r| r.time_wait.end_server);
        out.time_wait.peak_namespace = totals.values().copied().max().unwrap_or(0);
        out.time_wait.drain_s = reports
            .iter()
            .filter_map(|r| r.time_wait.drain_s)
            .reduce(f64::max);

        out.agents = reports
            .iter()
            .flat_map(|r| {
                if r.agents.is_empty() {
                    vec![AgentRun {
                        id: r
                            .config
                            .agent
                            .as_ref()
                            .map_or_else(|| r.environment.hostname.clone(), |a| a.id.clone()),
                        index: r.config.agent.as_ref().map(|a| a.index),
                        started_at: r.started_at.clone(),
                        duration_s: r.duration_s,
                        rate_cps: r.rate_cps,
                        totals: r.totals.clone(),
                        config: r.config.clone(),
                        environment: r.environment.clone(),
                    }]
                } else {
                    r.agents.clone()
                }
            })
            .collect();
        out
    }
}

/// Milliseconds as whole microseconds, the common axis's unit.
fn us(ms: f64) -> u64 {
    (ms.max(0.0) * 1e3) as u64
}

/// Sums step series on one time axis: each series is (its offset, points (t, value)) with
/// `t` from its own start; at every instant any series has a point, the result is the sum
/// of each series' latest value (nothing before its first point).
fn on_one_axis<V: Clone + Default>(
    series: Vec<(u64, Vec<(u64, V)>)>,
    add: impl Fn(&mut V, &V),
) -> Vec<(u64, V)> {
    let mut times: Vec<u64> = series
        .iter()
        .flat_map(|(o, pts)| pts.iter().map(move |(t, _)| o + t))
        .collect();
    times.sort_unstable();
    times.dedup();
    let mut next = vec![0usize; series.len()];
    times
        .into_iter()
        .map(|t| {
            let mut sum = V::default();
            for (k, (o, pts)) in series.iter().enumerate() {
                while next[k] < pts.len() && o + pts[next[k]].0 <= t {
                    next[k] += 1;
                }
                if next[k] > 0 {
                    add(&mut sum, &pts[next[k] - 1].1);
                }
            }
            (t, sum)
        })
        .collect()
}

fn rate(succeeded: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        succeeded as f64 / seconds
    } else {
        0.0
    }
}

/// What merging does to any set of reports: histograms merged, counts and CPU time added,
/// errors summed by kind, flags or-ed, warnings once each. `duration_s`, the rate and the time
/// series are left for the caller, who knows whether the reports ran one after another or
/// side by side.
fn counts(runs: &[Report]) -> Report {
    let first = &runs[0];
    let mut out = first.clone();
    let all = |f: fn(&Report) -> &PhaseStats| merged(&runs.iter().map(f).collect::<Vec<_>>());
    out.latency.connect = all(|r| &r.latency.connect);
    out.latency.handshake_rtt = all(|r| &r.latency.handshake_rtt);
    out.latency.echo = all(|r| &r.latency.echo);
    out.latency.close = all(|r| &r.latency.close);
    out.latency.total = all(|r| &r.latency.total);
    out.latency.failed = all(|r| &r.latency.failed);
    if first.latency.start_lag.is_some() {
        let lags: Vec<&PhaseStats> = runs
            .iter()
            .filter_map(|r| r.latency.start_lag.as_ref())
            .collect();
        out.latency.start_lag = Some(merged(&lags));
    }
    if first.latency_from_schedule.is_some() {
        let sched: Vec<&ScheduledLatency> = runs
            .iter()
            .filter_map(|r| r.latency_from_schedule.as_ref())
            .collect();
        out.latency_from_schedule = Some(ScheduledLatency {
            connect: merged(&sched.iter().map(|s| &s.connect).collect::<Vec<_>>()),
            total: merged(&sched.iter().map(|s| &s.total).collect::<Vec<_>>()),
            queued: sched.iter().map(|s| s.queued).sum(),
        });
    }
    let sum = |f: fn(&Report) -> u64| runs.iter().map(f).sum::<u64>();
    out.totals.attempted = sum(|r| r.totals.attempted);
    out.totals.succeeded = sum(|r| r.totals.succeeded);
    out.totals.failed = sum(|r| r.totals.failed);
    out.totals.bytes_sent = sum(|r| r.totals.bytes_sent);
    out.totals.bytes_received = sum(|r| r.totals.bytes_received);
    out.totals.farewell_bytes = sum(|r| r.totals.farewell_bytes);
    out.totals.syn_retransmitted = sum(|r| r.totals.syn_retransmitted);
    for r in runs.iter().skip(1) {
        out.totals.closes.merge(&r.totals.closes);
    }

    type Key = (String, String, Option<String>, Option<u16>);
    let mut errors: BTreeMap<Key, ErrorCount> = BTreeMap::new();
    for e in runs.iter().flat_map(|r| &r.errors) {
        let key = (
            e.phase.to_string(),
            e.kind.to_string(),
            e.errno.clone(),
            e.status,
        );
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
            t.answers += s.answers;
            t.idle_timeouts += s.idle_timeouts;
            t.over_limit += s.over_limit;
            t.accept_errors += s.accept_errors;
        }
        let waits: Vec<&PhaseStats> = runs
            .iter()
            .filter_map(|r| r.server.as_ref()?.accept_wait.as_ref())
            .collect();
        if !waits.is_empty() {
            t.accept_wait = Some(merged(&waits));
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
    let busy_s: f64 = runs.iter().map(|r| r.duration_s).sum();
    let weighted = |f: fn(&Report) -> f64| {
        if busy_s > 0.0 {
            runs.iter().map(|r| f(r) * r.duration_s).sum::<f64>() / busy_s
        } else {
            f(first)
        }
    };
    out.cpu.system_busy_pct = weighted(|r| r.cpu.system_busy_pct);
    out.cpu.system_softirq_pct = weighted(|r| r.cpu.system_softirq_pct);

    let mut warnings: Vec<String> = Vec::new();
    for w in runs.iter().flat_map(|r| &r.warnings) {
        if !warnings.contains(w) {
            warnings.push(w.clone());
        }
    }
    out.warnings = warnings;
    out
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

    #[test]
    fn wider_histograms_merge_saturated_not_panicking() {
        let mut wide = hdrhistogram::Histogram::<u64>::new_with_bounds(1, u64::MAX / 4, 3).unwrap();
        wide.record(10 * crate::stats::HIGHEST_NS).unwrap();
        wide.record(5_000).unwrap();
        let mut r = fixture::report();
        r.latency.total.hdr = crate::report::Hdr(wide);
        let m = Report::merge_runs(&[fixture::report(), r]);
        assert_eq!(m.latency.total.count, 3 + 2);
    }

    #[test]
    fn agents_merge_on_one_wall_clock_axis() {
        use crate::config::Agent;
        use crate::observe::sampler::Sample;
        use crate::stats::Tick;
        use std::collections::BTreeMap;
        let agent = |index: u32, start: &str| {
            let mut r = fixture::report();
            r.started_at = start.to_string();
            r.duration_s = 1.0;
            r.config.bounds.conns = Some(3);
            r.config.agent = Some(Agent {
                id: format!("a{index}"),
                index,
                agents: 2,
                total_conns: Some(6),
                total_rate: None,
            });
            r.timeline = vec![
                Tick {
                    t_ms: 0.0,
                    succeeded: 0,
                    failed: 0,
                },
                Tick {
                    t_ms: 1000.0,
                    succeeded: 3,
                    failed: 1,
                },
            ];
            let tw = |n: u32| Some(BTreeMap::from([("TIME_WAIT".to_string(), n)]));
            r.tcp_states.samples = vec![
                Sample {
                    t_ms: 0.0,
                    tw_total: Some(0),
                    client: tw(0),
                    server: None,
                },
                Sample {
                    t_ms: 1000.0,
                    tw_total: Some(3),
                    client: tw(3),
                    server: None,
                },
            ];
            r.time_wait.peak_client = 3;
            r.time_wait.end_client = 3;
            r
        };
        // The second agent started half a second after the first.
        let (a, b) = (
            agent(0, "2026-11-25T04:00:00Z"),
            agent(1, "2026-11-25T04:00:00.500Z"),
        );
        assert!(
            a.config_changes(&b).is_empty(),
            "{:?}",
            a.config_changes(&b)
        );
        let m = Report::merge_agents(&[a.clone(), b]);
        assert_eq!(m.totals.succeeded, 2 * a.totals.succeeded);
        assert_eq!(m.latency.total.hdr.0.len(), 2 * a.latency.total.hdr.0.len());
        assert_eq!(m.duration_s, 1.5, "from the first start to the last end");
        assert_eq!(m.started_at, "2026-11-25T04:00:00.000Z");
        assert_eq!(m.config.bounds.conns, Some(6), "the whole run's total");
        assert!(m.config.agent.is_none());
        let ticks: Vec<(f64, u64)> = m.timeline.iter().map(|t| (t.t_ms, t.succeeded)).collect();
        assert_eq!(ticks, [(0.0, 0), (500.0, 0), (1000.0, 3), (1500.0, 6)]);
        assert_eq!(
            m.time_wait.peak_client, 6,
            "both agents' TIME_WAIT at 1.5 s"
        );
        assert_eq!(m.time_wait.end_client, 6);
        let ids: Vec<&str> = m.agents.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["a0", "a1"]);
        // A merge of merges keeps the agents.
        assert_eq!(
            Report::merge_agents(std::slice::from_ref(&m)).agents.len(),
            2
        );
    }
}
