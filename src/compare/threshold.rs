//! `--fail-if` expressions: `FIGURE OP VALUE`.
//!
//! - `connect.p99>+10%`: fail when the candidate's connect p99 is more than 10% above the
//!   baseline's. `rate_cps<-5%`: more than 5% below. A relative threshold never fails on a
//!   change inside the runs' spread (`--repeat`).
//! - `errors>0`, `total.p99>2ms`, `rate_cps<50000`: the candidate's own value against a
//!   number; latencies take a unit (ns, us, µs, ms, s; bare numbers are µs).
//!
//! OP is one of `>`, `>=`, `<`, `<=`. FIGURE is a name from [`crate::report::figures`].

use std::fmt;

use super::stats::Interval;
use crate::report::figures;

#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Limit {
    /// A change relative to the baseline, in percent (+10 for "+10%").
    Relative(f64),
    /// The candidate's value itself (latencies in µs).
    Absolute(f64),
}

/// One `--fail-if`: the run fails when `figure OP limit` holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub figure: String,
    pub op: Op,
    pub limit: Limit,
    /// As the user wrote it, units and all (without spaces).
    pub text: String,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The outcome of a threshold on one pair of values.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Check {
    Holds,
    /// The condition is met: a regression.
    Fails,
    /// The condition is met, but the change is inside the runs' spread.
    Noise,
}

impl Threshold {
    /// Checks the candidate value `cand` against the baseline `base`; `noise` is the change
    /// the runs' spread allows (0 without `--repeat`).
    pub fn check(&self, base: f64, cand: f64, noise: f64) -> Check {
        let met = match self.limit {
            Limit::Absolute(v) => {
                return if self.op.holds(cand, v) {
                    Check::Fails
                } else {
                    Check::Holds
                };
            }
            Limit::Relative(pct) => self.op.holds(change_pct(base, cand), pct),
        };
        match (met, (cand - base).abs() <= noise) {
            (false, _) => Check::Holds,
            (true, true) => Check::Noise,
            (true, false) => Check::Fails,
        }
    }
}

impl Threshold {
    /// Checks a relative threshold against the change's confidence interval: it fails only
    /// when even the interval's end nearest to no change is past the limit, and is noise when
    /// the estimate is past it but the interval reaches back. An absolute threshold is
    /// [`Threshold::check`]ed on the candidate's value.
    pub fn check_interval(&self, base: f64, cand: f64, i: &Interval) -> Check {
        match self.limit {
            Limit::Absolute(_) => self.check(base, cand, 0.0),
            Limit::Relative(pct) => {
                if self.op.holds(i.near_end(), pct) && i.excludes_zero() {
                    Check::Fails
                } else if self.op.holds(i.change_pct, pct) {
                    Check::Noise
                } else {
                    Check::Holds
                }
            }
        }
    }
}

/// The change from `base` to `cand` in percent; from 0, any rise is +∞.
pub fn change_pct(base: f64, cand: f64) -> f64 {
    if base == 0.0 {
        if cand == 0.0 {
            0.0
        } else {
            f64::INFINITY.copysign(cand)
        }
    } else {
        (cand - base) / base.abs() * 100.0
    }
}

/// Parses one expression, as `--fail-if` takes it.
pub fn parse(s: &str) -> Result<Threshold, String> {
    let s = s.trim();
    let at = s.find(['<', '>']).ok_or_else(|| {
        format!("'{s}' has no comparison; write e.g. 'connect.p99>+10%' or 'errors>0'")
    })?;
    let figure = s[..at].trim();
    let rest = &s[at..];
    let (op, value) = if let Some(v) = rest.strip_prefix(">=") {
        (Op::Ge, v)
    } else if let Some(v) = rest.strip_prefix("<=") {
        (Op::Le, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (Op::Gt, v)
    } else {
        (Op::Lt, &rest[1..])
    };
    if !figures::known(figure) {
        return Err(format!(
            "'{figure}' is not a figure; use rate_cps, errors, cpu.us_per_conn, connect|echo|close|total.p50|p90|p99|p999|max|mean, time_wait.peak_client|peak_server or counters.NAME"
        ));
    }
    let value = value.trim();
    let bad = || {
        format!(
            "'{value}' in '{s}' is not a limit; write a change (+10%, -5%) or a value (0, 500us, 2ms)"
        )
    };
    let limit = if let Some(pct) = value.strip_suffix('%') {
        let p: f64 = pct.trim().parse().map_err(|_| bad())?;
        Limit::Relative(p)
    } else {
        let latency = figures::better(figure) == figures::Better::Lower
            && figure.contains('.')
            && !figure.starts_with("cpu.");
        Limit::Absolute(absolute(value, latency).ok_or_else(bad)?)
    };
    match limit {
        Limit::Relative(v) | Limit::Absolute(v) if !v.is_finite() => Err(bad()),
        _ => Ok(Threshold {
            figure: figure.to_string(),
            op,
            limit,
            text: s.split_whitespace().collect(),
        }),
    }
}

/// A number, with a time unit for latencies (converted to µs).
fn absolute(value: &str, latency: bool) -> Option<f64> {
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(value.len());
    let (num, unit) = value.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match (unit.trim(), latency) {
        ("", _) => 1.0,
        ("ns", true) => 1e-3,
        ("us" | "µs", true) => 1.0,
        ("ms", true) => 1e3,
        ("s", true) => 1e6,
        _ => return None,
    };
    Some(n * scale)
}

/// The thresholds `compare` applies unless told otherwise; loose enough for a rerun on a
/// shared 2-core machine to pass, tight enough for a slower server to fail.
pub const DEFAULTS: [&str; 6] = [
    "errors>0",
    "rate_cps<-20%",
    "connect.p50>+25%",
    "echo.p50>+25%",
    "total.p50>+25%",
    "total.p99>+50%",
];

pub fn defaults() -> Vec<Threshold> {
    DEFAULTS
        .iter()
        .map(|d| parse(d).expect("default thresholds parse"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_limits_parse() {
        let t = parse("connect.p99>+10%").unwrap();
        assert_eq!(
            (t.figure.as_str(), t.op, t.limit),
            ("connect.p99", Op::Gt, Limit::Relative(10.0))
        );
        assert_eq!(
            parse(" rate_cps < -5% ").unwrap().limit,
            Limit::Relative(-5.0)
        );
        assert_eq!(parse("errors>0").unwrap().limit, Limit::Absolute(0.0));
        assert_eq!(
            parse("total.p99>=2ms").unwrap(),
            Threshold {
                figure: "total.p99".into(),
                op: Op::Ge,
                limit: Limit::Absolute(2000.0),
                text: "total.p99>=2ms".into(),
            }
        );
        assert_eq!(
            parse("echo.p50<=500ns").unwrap().limit,
            Limit::Absolute(0.5)
        );
        assert_eq!(parse("counters.ListenOverflows>0").unwrap().op, Op::Gt);
        assert!(DEFAULTS.iter().all(|d| parse(d).is_ok()));
    }

    #[test]
    fn bad_expressions_say_what_to_write() {
        for (bad, says) in [
            ("connect.p99", "no comparison"),
            ("conect.p99>+10%", "not a figure"),
            ("connect.p42>1", "not a figure"),
            ("connect.p99>+ten%", "not a limit"),
            ("rate_cps<5ms", "not a limit"),
            ("errors>", "not a limit"),
            ("connect.p99>inf", "not a limit"),
            (">5", "not a figure"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn checks_respect_direction_and_noise() {
        let slower = parse("connect.p99>+10%").unwrap();
        assert_eq!(slower.check(100.0, 105.0, 0.0), Check::Holds);
        assert_eq!(slower.check(100.0, 120.0, 0.0), Check::Fails);
        assert_eq!(slower.check(100.0, 120.0, 25.0), Check::Noise);
        assert_eq!(
            slower.check(100.0, 50.0, 0.0),
            Check::Holds,
            "faster is fine"
        );
        let fewer = parse("rate_cps<-5%").unwrap();
        assert_eq!(fewer.check(1000.0, 900.0, 0.0), Check::Fails);
        assert_eq!(fewer.check(1000.0, 2000.0, 0.0), Check::Holds);
        let errors = parse("errors>0").unwrap();
        assert_eq!(errors.check(0.0, 0.0, 0.0), Check::Holds);
        assert_eq!(
            errors.check(0.0, 3.0, 10.0),
            Check::Fails,
            "absolute limits ignore noise"
        );
        assert_eq!(change_pct(0.0, 1.0), f64::INFINITY);
        assert_eq!(change_pct(0.0, 0.0), 0.0);
    }

    #[test]
    fn thresholds_print_as_written() {
        assert_eq!(
            parse("connect.p99>+10%").unwrap().to_string(),
            "connect.p99>+10%"
        );
        assert_eq!(parse("errors>0").unwrap().to_string(), "errors>0");
        assert_eq!(
            parse(" total.p99 >= 2ms ").unwrap().to_string(),
            "total.p99>=2ms"
        );
    }
}
