//! A report as named figures (`rate_cps`, `connect.p99`, `time_wait.peak_client`, …): what
//! `compare`, `matrix` and `--repeat` line up, threshold and summarise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{PhaseStats, Report};
use crate::stats::Metric;

/// Which way a figure improves.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
    /// A fact of the configuration (TIME_WAIT on a side, a counter): a change is neither
    /// better nor worse.
    Neither,
}

/// The percentiles of each phase, by the names figures use.
pub const PERCENTILES: [&str; 6] = ["p50", "p90", "p99", "p999", "max", "mean"];

/// The phases with latency figures (failed attempts are counted by `errors`), and the
/// kernel's handshake RTT.
pub const PHASES: [Metric; 5] = [
    Metric::Connect,
    Metric::HandshakeRtt,
    Metric::Echo,
    Metric::Close,
    Metric::Total,
];

/// The value of one percentile of a phase, in µs.
pub fn percentile(s: &PhaseStats, name: &str) -> Option<f64> {
    Some(match name {
        "p50" => s.p50_us,
        "p90" => s.p90_us,
        "p99" => s.p99_us,
        "p999" => s.p999_us,
        "max" => s.max_us,
        "mean" => s.mean_us,
        "min" => s.min_us,
        _ => return None,
    })
}

/// Every figure of a report, in display order. Latencies are in µs; counters are the
/// non-zero kernel counter deltas.
pub fn of(r: &Report) -> Vec<(String, f64)> {
    let mut out = vec![("rate_cps".to_string(), r.rate_cps)];
    for m in PHASES {
        let s = r.latency.get(m);
        if s.count == 0 {
            continue;
        }
        for p in PERCENTILES {
            out.push((format!("{}.{p}", m.name()), percentile(s, p).unwrap_or(0.0)));
        }
    }
    out.push(("errors".into(), r.totals.failed as f64));
    out.push((
        "time_wait.peak_client".into(),
        f64::from(r.time_wait.peak_client),
    ));
    out.push((
        "time_wait.peak_server".into(),
        f64::from(r.time_wait.peak_server),
    ));
    out.push(("cpu.us_per_conn".into(), r.cpu.us_per_conn));
    for (name, v) in &r.kernel.counters {
        if *v != 0 {
            out.push((format!("counters.{name}"), *v as f64));
        }
    }
    out
}

/// Which way the figure called `name` improves.
pub fn better(name: &str) -> Better {
    if name == "rate_cps" {
        return Better::Higher;
    }
    if name == "errors" || name == "cpu.us_per_conn" {
        return Better::Lower;
    }
    match name.split_once('.') {
        Some((phase, _)) if PHASES.iter().any(|m| m.name() == phase) => Better::Lower,
        _ => Better::Neither,
    }
}

/// What a figure counts or measures, for a table's figure column.
pub fn unit(name: &str) -> &'static str {
    match name {
        "rate_cps" => "conn/s",
        "errors" => "failed connections",
        "cpu.us_per_conn" => "µs/conn",
        _ => match name.split_once('.') {
            Some(("time_wait", _)) => "sockets",
            Some(("counters", _)) => "count",
            _ if better(name) == Better::Lower => "µs",
            _ => "",
        },
    }
}

/// Whether `name` is a figure a report can have (counters: any name).
pub fn known(name: &str) -> bool {
    if matches!(
        name,
        "rate_cps"
            | "errors"
            | "cpu.us_per_conn"
            | "time_wait.peak_client"
            | "time_wait.peak_server"
    ) {
        return true;
    }
    match name.split_once('.') {
        Some(("counters", c)) => !c.is_empty(),
        Some((phase, p)) => PHASES.iter().any(|m| m.name() == phase) && PERCENTILES.contains(&p),
        None => false,
    }
}

/// The figures of `--repeat N` runs: each run's, and per figure their median and range.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Repeats {
    pub runs: Vec<BTreeMap<String, f64>>,
    pub median: BTreeMap<String, f64>,
    pub min: BTreeMap<String, f64>,
    pub max: BTreeMap<String, f64>,
}

impl Repeats {
    /// Lines up the figures of `runs` (a figure missing from a run counts as 0 there).
    pub fn of(runs: &[Report]) -> Repeats {
        let runs: Vec<BTreeMap<String, f64>> =
            runs.iter().map(|r| of(r).into_iter().collect()).collect();
        let mut names: Vec<&String> = runs.iter().flat_map(|r| r.keys()).collect();
        names.sort();
        names.dedup();
        let mut rep = Repeats::default();
        for name in names {
            let mut v: Vec<f64> = runs
                .iter()
                .map(|r| r.get(name).copied().unwrap_or(0.0))
                .collect();
            v.sort_by(f64::total_cmp);
            rep.median.insert(name.clone(), median(&v));
            rep.min.insert(name.clone(), v[0]);
            rep.max.insert(name.clone(), v[v.len() - 1]);
        }
        rep.runs = runs;
        rep
    }
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn figures_name_what_the_report_holds() {
        let r = fixture::report();
        let f: BTreeMap<String, f64> = of(&r).into_iter().collect();
        assert_eq!(f["connect.p50"], r.latency.connect.p50_us);
        assert_eq!(f["errors"], 1.0);
        assert!(f.keys().all(|k| known(k)), "{f:?}");
        assert_eq!(better("connect.p99"), Better::Lower);
        assert_eq!(better("rate_cps"), Better::Higher);
        assert_eq!(better("time_wait.peak_client"), Better::Neither);
        assert!(!known("connect.p42") && !known("rate") && known("counters.TW"));
        // Every figure a report has names its unit.
        assert!(f.keys().all(|k| !unit(k).is_empty()), "{f:?}");
        assert_eq!(unit("connect.p99"), "µs");
        assert_eq!(unit("rate_cps"), "conn/s");
        assert_eq!(unit("time_wait.peak_server"), "sockets");
    }

    #[test]
    fn repeats_take_median_and_range_per_figure() {
        let mut runs = vec![fixture::report(), fixture::report(), fixture::report()];
        for (r, rate) in runs.iter_mut().zip([100.0, 300.0, 200.0]) {
            r.rate_cps = rate;
        }
        let rep = Repeats::of(&runs);
        assert_eq!(rep.runs.len(), 3);
        assert_eq!(rep.median["rate_cps"], 200.0);
        assert_eq!((rep.min["rate_cps"], rep.max["rate_cps"]), (100.0, 300.0));
        assert_eq!(median(&[1.0, 2.0, 3.0, 10.0]), 2.5);
    }
}
