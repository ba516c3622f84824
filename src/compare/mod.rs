//! `tcpbench compare BASELINE CANDIDATE`: every figure side by side, a verdict per row, and
//! the thresholds that decide the exit status.
//!
//! With `--repeat` reports, figures are the runs' medians and a change smaller than the runs'
//! spread is noise: neither a verdict of better or worse, nor a failed threshold.

mod render;
pub mod stats;
pub mod threshold;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::UsageError;
use crate::report::Report;
use crate::report::figures::{self, Better};
pub use render::{
    render_html_table, render_json, render_markdown, render_text, table, threshold_table,
};
use threshold::{Check, Threshold};

/// Without `--repeat`, a change within this share of the baseline is called noise in the
/// verdict column (thresholds still apply).
pub const NOISE_FLOOR: f64 = 0.05;

/// One figure of both reports.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Row {
    pub figure: String,
    pub baseline: f64,
    pub candidate: f64,
    pub delta: f64,
    /// candidate / baseline; absent when the baseline is 0.
    pub ratio: Option<f64>,
    /// The change the runs' spread allows (largest range of either side), 0 without repeats.
    pub noise: f64,
    /// With runs on both sides (`--repeat`, `tcpbench ab`): the change with its confidence
    /// interval and the Mann-Whitney p-value; the verdict and relative thresholds follow it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<stats::Interval>,
    pub verdict: Verdict,
}

#[derive(Copy, Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Better,
    Worse,
    WithinNoise,
    /// A figure with no better direction (TIME_WAIT on a side, a counter) that moved.
    Changed,
    Same,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::WithinNoise => "within noise",
            Verdict::Changed => "changed",
            Verdict::Same => "same",
        }
    }
}

/// A threshold's outcome.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Checked {
    pub threshold: String,
    pub baseline: f64,
    pub candidate: f64,
    /// "holds", "fails", or "noise" (met, but inside the runs' spread or the interval).
    pub outcome: &'static str,
    /// The change's interval a relative threshold was judged on, where there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<stats::Interval>,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Comparison {
    pub baseline: String,
    pub candidate: String,
    /// How many runs each side's figures come from.
    pub runs: [usize; 2],
    pub rows: Vec<Row>,
    pub thresholds: Vec<Checked>,
    /// Configuration keys that differ (allowed with --allow-config-change).
    pub config_changes: Vec<String>,
    /// The reports' machine calibrations differ by more than [`MACHINE_NOISE`]: said first
    /// in every format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machines: Option<String>,
    /// The candidate's rates and latencies were scaled by the calibrations' ratio
    /// (`--normalize`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalized_by: Option<f64>,
}

/// Calibrations within this share of each other are one machine's noise.
pub const MACHINE_NOISE: f64 = 0.10;

/// What compare does beyond the figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Compare reports of different configurations (`--allow-config-change`).
    pub allow_config_change: bool,
    /// Scale the candidate by the machines' calibration ratio (`--normalize`).
    pub normalize: bool,
}

/// The calibration ratio candidate / baseline, where both reports have one.
fn calibration_ratio(base: &Report, cand: &Report) -> Option<(f64, f64, f64)> {
    let b = base.environment.calibration.as_ref()?.cycles_per_s;
    let c = cand.environment.calibration.as_ref()?.cycles_per_s;
    (b > 0.0 && c > 0.0).then_some((b, c, c / b))
}

impl Comparison {
    pub fn failed(&self) -> impl Iterator<Item = &Checked> {
        self.thresholds.iter().filter(|c| c.outcome == "fails")
    }

    pub fn exit_code(&self) -> i32 {
        i32::from(self.failed().next().is_some())
    }
}

/// A report's figures as compare uses them: the medians of its runs, with their ranges.
struct Side {
    value: BTreeMap<String, f64>,
    range: BTreeMap<String, f64>,
    /// The worst run's value of each figure: what an absolute threshold (`errors>0`)
    /// judges, so one bad run of three is not hidden by the median.
    worst: BTreeMap<String, f64>,
    runs: usize,
    /// Each run's figures (one map per run), with `--repeat`.
    each: Vec<BTreeMap<String, f64>>,
}

impl Side {
    fn of(r: &Report) -> Side {
        match &r.repeats {
            Some(rep) => Side {
                value: rep.median.clone(),
                range: rep
                    .max
                    .iter()
                    .map(|(k, hi)| (k.clone(), hi - rep.min.get(k).copied().unwrap_or(*hi)))
                    .collect(),
                worst: rep
                    .median
                    .keys()
                    .map(|k| {
                        let pick = match figures::better(k) {
                            Better::Higher => &rep.min,
                            Better::Lower | Better::Neither => &rep.max,
                        };
                        (k.clone(), pick.get(k).copied().unwrap_or(0.0))
                    })
                    .collect(),
                runs: rep.runs.len(),
                each: rep.runs.clone(),
            },
            None => {
                let value: BTreeMap<String, f64> = figures::of(r).into_iter().collect();
                Side {
                    worst: value.clone(),
                    value,
                    range: BTreeMap::new(),
                    runs: 1,
                    each: Vec::new(),
                }
            }
        }
    }
}

impl Side {
    /// Brings a side measured on a machine `ratio` times as fast as the other's onto that
    /// machine: rates divided by the ratio, latencies and CPU per connection multiplied.
    fn scale_to_machine(&mut self, ratio: f64) {
        let factor = |figure: &str| match figures::better(figure) {
            Better::Higher => Some(1.0 / ratio),
            Better::Lower if figure.contains('.') && !figure.starts_with("time_wait") => {
                Some(ratio)
            }
            _ => None,
        };
        let scale = |m: &mut BTreeMap<String, f64>| {
            for (k, v) in m.iter_mut() {
                if let Some(f) = factor(k) {
                    *v *= f;
                }
            }
        };
        scale(&mut self.value);
        scale(&mut self.range);
        scale(&mut self.worst);
        self.each.iter_mut().for_each(scale);
    }
}

/// Compares `cand` with `base` (named by their paths) under `thresholds`.
pub fn compare(
    base: (&str, &Report),
    cand: (&str, &Report),
    thresholds: &[Threshold],
    allow_config_change: bool,
) -> Result<Comparison, UsageError> {
    let opts = Options {
        allow_config_change,
        ..Options::default()
    };
    compare_with(base, cand, thresholds, opts)
}

/// [`compare`] with every option.
pub fn compare_with(
    (base_name, base): (&str, &Report),
    (cand_name, cand): (&str, &Report),
    thresholds: &[Threshold],
    opts: Options,
) -> Result<Comparison, UsageError> {
    let allow_config_change = opts.allow_config_change;
    let config_changes = base.config_changes(cand);
    if !config_changes.is_empty() && !allow_config_change {
        return Err(UsageError(format!(
            "{base_name} and {cand_name} were made with different configurations ({}); compare runs of one configuration, or add --allow-config-change",
            config_changes.join(", ")
        )));
    }
    // A counter threshold must name a counter the reports track (they list those that
    // stayed at 0 too): a misspelt one would always hold.
    for t in thresholds {
        if let Some(counter) = t.figure.strip_prefix("counters.")
            && !base.kernel.counters.contains_key(counter)
            && !cand.kernel.counters.contains_key(counter)
        {
            let known: Vec<&str> = base.kernel.counters.keys().map(String::as_str).collect();
            return Err(UsageError(format!(
                "--fail-if {t}: these reports have no counter {counter}; the counters are {}",
                known.join(", ")
            )));
        }
    }
    let (b, mut c) = (Side::of(base), Side::of(cand));
    let calibration = calibration_ratio(base, cand);
    let machines = calibration
        .filter(|(_, _, ratio)| (ratio - 1.0).abs() > MACHINE_NOISE)
        .map(|(bc, cc, ratio)| {
            format!(
                "the machines differ: calibration {bc:.0}/s vs {cc:.0}/s ({:.2}x); figures are not comparable; use `tcpbench ab`",
                ratio.max(1.0 / ratio)
            )
        });
    let normalized_by = match calibration {
        Some((_, _, ratio)) if opts.normalize => {
            c.scale_to_machine(ratio);
            Some(ratio)
        }
        _ => None,
    };
    // The baseline's order, then figures only the candidate has.
    let mut names: Vec<String> = figures::of(base).into_iter().map(|(n, _)| n).collect();
    for (n, _) in figures::of(cand) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let value = |s: &Side, n: &str| s.value.get(n).copied().unwrap_or(0.0);
    let noise = |n: &str| {
        let r = |s: &Side| s.range.get(n).copied().unwrap_or(0.0);
        r(&b).max(r(&c))
    };
    let interval = |n: &str| {
        let runs = |s: &Side| -> Vec<f64> {
            s.each
                .iter()
                .map(|r| r.get(n).copied().unwrap_or(0.0))
                .collect()
        };
        (b.each.len() >= 2 && c.each.len() >= 2)
            .then(|| stats::interval(&runs(&b), &runs(&c), stats::CONFIDENCE))
            .flatten()
    };
    let rows: Vec<Row> = names
        .iter()
        .map(|n| {
            let (bv, cv) = (value(&b, n), value(&c, n));
            let noise = noise(n);
            let interval = interval(n);
            // Too few runs for a bounded interval (3 + 3 at 95 %): the runs' spread decides.
            let verdict = match interval.filter(stats::Interval::bounded) {
                Some(i) => interval_verdict(figures::better(n), bv, cv, &i),
                None => verdict(figures::better(n), bv, cv, noise),
            };
            Row {
                figure: n.clone(),
                baseline: bv,
                candidate: cv,
                delta: cv - bv,
                ratio: (bv != 0.0).then(|| cv / bv),
                noise,
                interval,
                verdict,
            }
        })
        .collect();
    let thresholds = thresholds
        .iter()
        .map(|t| {
            let (bv, cv) = match t.limit {
                threshold::Limit::Relative(_) => (value(&b, &t.figure), value(&c, &t.figure)),
                threshold::Limit::Absolute(_) => (
                    value(&b, &t.figure),
                    c.worst.get(&t.figure).copied().unwrap_or(0.0),
                ),
            };
            let row_interval = rows
                .iter()
                .find(|r| r.figure == t.figure)
                .and_then(|r| r.interval);
            let check = match row_interval.filter(stats::Interval::bounded) {
                Some(i) => t.check_interval(bv, cv, &i),
                None => t.check(bv, cv, noise(&t.figure)),
            };
            let outcome = match check {
                Check::Holds => "holds",
                Check::Fails => "fails",
                Check::Noise => "noise",
            };
            Checked {
                threshold: t.to_string(),
                baseline: bv,
                candidate: cv,
                outcome,
                interval: row_interval.filter(|_| matches!(t.limit, threshold::Limit::Relative(_))),
            }
        })
        .collect();
    Ok(Comparison {
        baseline: base_name.to_string(),
        candidate: cand_name.to_string(),
        runs: [b.runs, c.runs],
        rows,
        thresholds,
        config_changes,
        machines,
        normalized_by,
    })
}

fn verdict(better: Better, base: f64, cand: f64, noise: f64) -> Verdict {
    let delta = cand - base;
    let band = noise.max(NOISE_FLOOR * base.abs());
    match better {
        _ if delta == 0.0 => Verdict::Same,
        Better::Neither => Verdict::Changed,
        _ if delta.abs() <= band => Verdict::WithinNoise,
        Better::Lower if delta < 0.0 => Verdict::Better,
        Better::Higher if delta > 0.0 => Verdict::Better,
        _ => Verdict::Worse,
    }
}

/// The verdict from runs on both sides: a change whose interval holds zero is noise.
fn interval_verdict(better: Better, base: f64, cand: f64, i: &stats::Interval) -> Verdict {
    match better {
        _ if base == cand && i.change_pct == 0.0 => Verdict::Same,
        _ if !i.excludes_zero() => Verdict::WithinNoise,
        Better::Neither => Verdict::Changed,
        Better::Lower if i.change_pct < 0.0 => Verdict::Better,
        Better::Higher if i.change_pct > 0.0 => Verdict::Better,
        _ => Verdict::Worse,
    }
}

/// The user's thresholds, with the defaults for figures they did not name.
pub fn with_defaults(given: Vec<Threshold>, defaults: bool) -> Vec<Threshold> {
    let mut all = given;
    if defaults {
        for d in threshold::defaults() {
            if !all.iter().any(|t| t.figure == d.figure) {
                all.push(d);
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    fn slower(mut r: Report, factor: f64) -> Report {
        r.latency.echo.p50_us *= factor;
        r.latency.total.p50_us *= factor;
        r.rate_cps /= factor;
        r
    }

    #[test]
    fn a_slower_candidate_fails_and_an_equal_one_passes() {
        let base = fixture::report();
        let ts = with_defaults(vec![], true);
        // The fixture has a failed connection; the default errors>0 would fail both.
        let ts: Vec<_> = ts.into_iter().filter(|t| t.figure != "errors").collect();
        let same = compare(("a", &base), ("b", &base.clone()), &ts, false).unwrap();
        assert_eq!(same.exit_code(), 0, "{}", render_text(&same));
        assert!(same.rows.iter().all(|r| r.verdict == Verdict::Same));
        let worse = compare(("a", &base), ("b", &slower(base.clone(), 2.0)), &ts, false).unwrap();
        assert_eq!(worse.exit_code(), 1);
        let failed: Vec<&str> = worse.failed().map(|c| c.threshold.as_str()).collect();
        assert!(
            failed.contains(&"echo.p50>+25%") && failed.contains(&"rate_cps<-20%"),
            "{failed:?}"
        );
        let row = worse.rows.iter().find(|r| r.figure == "echo.p50").unwrap();
        assert_eq!(row.verdict, Verdict::Worse);
        assert_eq!(row.ratio, Some(2.0));
        assert!(
            render_text(&worse).contains("FAIL: rate_cps<-20%"),
            "{}",
            render_text(&worse)
        );
    }

    #[test]
    fn changes_inside_the_runs_spread_are_noise() {
        let base = fixture::report();
        let mut runs = vec![base.clone(), slower(base.clone(), 1.5)];
        let spread_base = Report::merge_runs(&runs);
        runs = vec![slower(base.clone(), 1.6), slower(base.clone(), 1.7)];
        let cand = Report::merge_runs(&runs);
        let t = vec![threshold::parse("echo.p50>+10%").unwrap()];
        let c = compare(("a", &spread_base), ("b", &cand), &t, false).unwrap();
        assert_eq!(c.thresholds[0].outcome, "noise", "{}", render_text(&c));
        assert_eq!(c.exit_code(), 0);
        assert_eq!(c.runs, [2, 2]);
    }

    #[test]
    fn five_runs_a_side_are_judged_on_the_interval() {
        let base = fixture::report();
        let noisy = [1.0, 1.04, 0.97, 1.02, 0.99];
        let side = |shift: f64| {
            let runs: Vec<Report> = noisy
                .iter()
                .map(|f| slower(base.clone(), f * shift))
                .collect();
            Report::merge_runs(&runs)
        };
        let t = vec![
            threshold::parse("rate_cps<-20%").unwrap(),
            threshold::parse("echo.p50>+10%").unwrap(),
        ];
        // The same figures in another order: no change, nothing fails.
        let same = compare(("a", &side(1.0)), ("b", &side(1.0)), &t, false).unwrap();
        assert_eq!(same.exit_code(), 0, "{}", render_text(&same));
        let row = same.rows.iter().find(|r| r.figure == "rate_cps").unwrap();
        assert!(!row.interval.unwrap().excludes_zero());
        // 1.5x slower in every run: the interval's near end is past both limits.
        let slow = compare(("a", &side(1.0)), ("b", &side(1.5)), &t, false).unwrap();
        assert_eq!(slow.exit_code(), 1, "{}", render_text(&slow));
        let i = slow.thresholds[0].interval.unwrap();
        assert!(i.hi_pct < -20.0 && i.p < 0.01, "{i}");
        assert!(render_text(&slow).contains("change [95% interval], p"));
        // 12 % slower: past +10 % as an estimate, but the interval reaches back under it.
        let near = compare(("a", &side(1.0)), ("b", &side(1.12)), &t, false).unwrap();
        assert_eq!(
            near.thresholds[1].outcome,
            "noise",
            "{}",
            render_text(&near)
        );
    }

    #[test]
    fn different_machines_are_said_first_in_every_format_and_can_be_normalized() {
        use crate::environment::Calibration;
        let cal = |r: &mut Report, c: f64| {
            r.environment.calibration = Some(Calibration {
                cycles_per_s: c,
                cycles: 1000,
                span_ms: 150.0,
            });
        };
        let (mut base, mut cand) = (fixture::report(), fixture::report());
        cal(&mut base, 52_000.0);
        cal(&mut cand, 21_500.0);
        // The slower machine's run is 2.4x slower too.
        let cand = slower(cand, 52_000.0 / 21_500.0);
        let ts = vec![threshold::parse("rate_cps<-20%").unwrap()];
        let c = compare(("a", &base), ("b", &cand), &ts, false).unwrap();
        let warning = "the machines differ: calibration 52000/s vs 21500/s (2.42x)";
        assert!(
            c.machines.as_deref().unwrap().starts_with(warning),
            "{:?}",
            c.machines
        );
        assert!(render_text(&c).starts_with(&format!("WARNING: {warning}")));
        assert!(render_markdown(&c).starts_with(&format!("> **WARNING: {warning}")));
        assert!(render_json(&c).contains(warning));
        assert!(
            render_html_table(&c)
                .starts_with("<p class=\"error\"><strong>WARNING: the machines differ")
        );
        assert_eq!(c.exit_code(), 1);
        let opts = Options {
            normalize: true,
            ..Options::default()
        };
        let n = compare_with(("a", &base), ("b", &cand), &ts, opts).unwrap();
        assert_eq!(n.exit_code(), 0, "{}", render_text(&n));
        let rate = n.rows.iter().find(|r| r.figure == "rate_cps").unwrap();
        assert!(
            (rate.candidate / rate.baseline - 1.0).abs() < 1e-9,
            "{rate:?}"
        );
        assert!(render_text(&n).contains("normalized: the candidate's rates divided"));
        // Within the noise: no warning.
        cal(&mut base, 21_000.0);
        let c = compare(("a", &base), ("b", &cand), &ts, false).unwrap();
        assert_eq!(c.machines, None);
    }

    #[test]
    fn absolute_thresholds_judge_the_worst_run() {
        let base = fixture::report();
        let mut bad = fixture::report();
        bad.totals.failed = 40;
        let cand = Report::merge_runs(&[base.clone(), base.clone(), bad]);
        assert_eq!(cand.repeats.as_ref().unwrap().median["errors"], 1.0);
        let t = vec![threshold::parse("errors>1").unwrap()];
        let c = compare(("a", &base), ("b", &cand), &t, false).unwrap();
        assert_eq!(c.thresholds[0].outcome, "fails", "{}", render_text(&c));
        assert_eq!(c.thresholds[0].candidate, 40.0);
    }

    #[test]
    fn a_misspelt_counter_is_refused() {
        let mut base = fixture::report();
        base.kernel.counters.insert("ListenOverflows".into(), 0);
        let ok = vec![threshold::parse("counters.ListenOverflows>0").unwrap()];
        assert!(compare(("a", &base), ("b", &base), &ok, false).is_ok());
        let typo = vec![threshold::parse("counters.ListenOverflow>0").unwrap()];
        let e = compare(("a", &base), ("b", &base), &typo, false).unwrap_err();
        assert!(
            e.0.contains("no counter ListenOverflow;") && e.0.contains("ListenOverflows"),
            "{}",
            e.0
        );
    }

    #[test]
    fn different_configs_are_refused_unless_allowed() {
        let base = fixture::report();
        let mut cand = base.clone();
        cand.config.payload = 1000;
        let e = compare(("a.json", &base), ("b.json", &cand), &[], false).unwrap_err();
        assert!(
            e.0.contains("payload: 64 vs 1000") && e.0.contains("--allow-config-change"),
            "{}",
            e.0
        );
        let c = compare(("a.json", &base), ("b.json", &cand), &[], true).unwrap();
        assert_eq!(c.config_changes, ["payload: 64 vs 1000"]);
    }

    #[test]
    fn an_engine_change_is_a_config_change() {
        let mut base = fixture::report();
        base.config.engine = crate::config::Engine::Tokio;
        let mut cand = base.clone();
        cand.config.engine = crate::config::Engine::Uring;
        let e = compare(("a.json", &base), ("b.json", &cand), &[], false).unwrap_err();
        assert!(e.0.contains("engine"), "{}", e.0);
        let c = compare(("a.json", &base), ("b.json", &cand), &[], true).unwrap();
        assert_eq!(c.config_changes, [r#"engine: "tokio" vs "uring""#]);
    }

    #[test]
    fn user_thresholds_replace_the_default_for_their_figure() {
        let t = with_defaults(vec![threshold::parse("errors>10").unwrap()], true);
        assert_eq!(t.iter().filter(|t| t.figure == "errors").count(), 1);
        assert_eq!(t.len(), threshold::DEFAULTS.len());
        assert!(with_defaults(vec![], false).is_empty());
    }

    #[test]
    fn markdown_leads_with_the_verdict() {
        let base = fixture::report();
        let c = compare(("a", &base), ("b", &base), &[], false).unwrap();
        let md = render_markdown(&c);
        assert!(md.starts_with("### tcpbench compare: PASS"), "{md}");
        assert!(md.contains("| figure | baseline | candidate |"), "{md}");
        let json: serde_json::Value = serde_json::from_str(&render_json(&c)).unwrap();
        assert_eq!(json["rows"][0]["figure"], "rate_cps");
    }
}
