//! The verdict's statistics: how two sides' per-run figures differ, with a confidence
//! interval a handful of noisy runs can support.
//!
//! Two sides of `n` and `m` runs are compared on a log scale (a figure's change is a ratio):
//! the change is the Hodges-Lehmann estimate (the median of all `n·m` pairwise log-ratios),
//! its interval the order statistics of those log-ratios that invert the Mann-Whitney U test
//! (Bauer 1972), and `p` the test's exact two-sided p-value. Nothing here assumes the runs are
//! normal, and nothing is random: the same runs always give the same verdict.
//!
//! With too few runs for the confidence asked (4 + 4 at 95 %), the interval is unbounded;
//! compare then judges by the runs' spread, as it does for a single run per side.

use serde::{Deserialize, Serialize};

/// The confidence of the intervals compare and ab report.
pub const CONFIDENCE: f64 = 0.95;

/// How candidate differs from baseline, in percent of the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimated change, % (Hodges-Lehmann).
    pub change_pct: f64,
    /// The interval's low and high ends, %; infinite where the runs are too few.
    #[serde(
        serialize_with = "finite_or_null::serialize",
        deserialize_with = "finite_or_null::low"
    )]
    pub lo_pct: f64,
    #[serde(
        serialize_with = "finite_or_null::serialize",
        deserialize_with = "finite_or_null::high"
    )]
    pub hi_pct: f64,
    /// The Mann-Whitney U test's two-sided p-value (exact without ties).
    pub p: f64,
    /// Runs on each side.
    pub runs: [usize; 2],
}

impl Interval {
    /// The interval's end nearest to no change: a change is only as large as this.
    pub fn near_end(&self) -> f64 {
        if self.lo_pct > 0.0 {
            self.lo_pct
        } else if self.hi_pct < 0.0 {
            self.hi_pct
        } else {
            0.0
        }
    }

    /// Whether the interval leaves out zero (the change is real at [`CONFIDENCE`]).
    pub fn excludes_zero(&self) -> bool {
        self.lo_pct > 0.0 || self.hi_pct < 0.0
    }

    /// Whether the runs were enough for a bounded interval.
    pub fn bounded(&self) -> bool {
        self.lo_pct.is_finite() && self.hi_pct.is_finite()
    }
}

impl std::fmt::Display for Interval {
    /// `-12.4% [-15.1%, -9.6%], p = 0.008`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let end = |v: f64| {
            if v.is_finite() {
                format!("{v:+.1}%")
            } else if v > 0.0 {
                "+inf".into()
            } else {
                "-inf".into()
            }
        };
        write!(
            f,
            "{:+.1}% [{}, {}], p = {:.3}",
            self.change_pct,
            end(self.lo_pct),
            end(self.hi_pct),
            self.p
        )
    }
}

/// Compares `cand` with `base` (each one figure's per-run values). `None` when either side is
/// empty.
pub fn interval(base: &[f64], cand: &[f64], confidence: f64) -> Option<Interval> {
    if base.is_empty() || cand.is_empty() {
        return None;
    }
    let positive = base.iter().chain(cand).all(|&v| v > 0.0 && v.is_finite());
    // Pairwise differences of candidate minus baseline, on a log scale where every value is
    // positive; else plain differences, read against the baseline's median.
    let scale = median(base);
    let mut d: Vec<f64> = cand
        .iter()
        .flat_map(|&c| {
            base.iter()
                .map(move |&b| if positive { (c / b).ln() } else { c - b })
        })
        .collect();
    d.sort_by(f64::total_cmp);
    let pct = |x: f64| {
        if positive {
            (x.exp() - 1.0) * 100.0
        } else if scale != 0.0 {
            x / scale.abs() * 100.0
        } else if x == 0.0 {
            0.0
        } else {
            x.signum() * f64::INFINITY
        }
    };
    let (n, m) = (base.len(), cand.len());
    let change_pct = pct(median(&d));
    // C: the largest u with P(U <= u) <= (1 - confidence) / 2; the interval is
    // [d_(C+1), d_(nm-C)] (1-based).
    let alpha = (1.0 - confidence) / 2.0;
    let cdf = u_cdf(n, m);
    let c = cdf.iter().take_while(|&&p| p <= alpha).count();
    let (lo_pct, hi_pct) = if c == 0 {
        (f64::NEG_INFINITY, f64::INFINITY)
    } else {
        (pct(d[c - 1]), pct(d[n * m - c]))
    };
    Some(Interval {
        change_pct,
        lo_pct,
        hi_pct,
        p: mann_whitney_p(base, cand),
        runs: [n, m],
    })
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The two-sided p-value of the Mann-Whitney U test of `a` against `b`: exact (from the
/// distribution of U) when there are no ties, else the normal approximation with the tie
/// correction and a continuity correction.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return 1.0;
    }
    // U of a: pairs where a beats b, ties counting half.
    let mut u: f64 = 0.0;
    let mut ties = false;
    for &x in a {
        for &y in b {
            if x > y {
                u += 1.0;
            } else if x == y {
                u += 0.5;
                ties = true;
            }
        }
    }
    let nm = (n * m) as f64;
    let u_small = u.min(nm - u);
    if !ties && n * m <= 400 {
        let cdf = u_cdf(n, m);
        let p: f64 = 2.0 * cdf[u_small as usize];
        return p.min(1.0);
    }
    // Normal approximation, with the variance corrected for ties.
    let mut all: Vec<f64> = a.iter().chain(b).copied().collect();
    all.sort_by(f64::total_cmp);
    let total = (n + m) as f64;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < all.len() {
        let j = all[i..].iter().take_while(|&&v| v == all[i]).count();
        let t = j as f64;
        tie_term += t * t * t - t;
        i += j;
    }
    let var = nm / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = ((nm / 2.0 - u_small) - 0.5).max(0.0) / var.sqrt();
    (2.0 * normal_upper_tail(z)).min(1.0)
}

/// P(U <= u) for u = 0..=n·m under the null hypothesis, without ties: the count of
/// arrangements with each U over C(n+m, n), by the recurrence
/// f(n, m, u) = f(n-1, m, u-m) + f(n, m-1, u).
fn u_cdf(n: usize, m: usize) -> Vec<f64> {
    let max = n * m;
    // f[i][j] is the distribution for i and j items, as counts indexed by u.
    let mut f: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); m + 1]; n + 1];
    for i in 0..=n {
        for j in 0..=m {
            f[i][j] = if i == 0 || j == 0 {
                vec![1.0]
            } else {
                let mut v = vec![0.0; i * j + 1];
                for (u, c) in f[i - 1][j].iter().enumerate() {
                    v[u + j] += c;
                }
                for (u, c) in f[i][j - 1].iter().enumerate() {
                    v[u] += c;
                }
                v
            };
        }
    }
    let counts = &f[n][m];
    let total: f64 = counts.iter().sum();
    let mut acc = 0.0;
    (0..=max)
        .map(|u| {
            acc += counts.get(u).copied().unwrap_or(0.0);
            acc / total
        })
        .collect()
}

/// P(Z > z) for a standard normal Z (Abramowitz and Stegun 7.1.26; error < 1.5e-7).
fn normal_upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    0.5 * poly * (-x * x).exp()
}

/// Infinite ends are written as null (JSON has no infinity) and read back as infinite.
mod finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    /// A null low end is minus infinity.
    pub fn low<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NEG_INFINITY))
    }

    /// A null high end is plus infinity.
    pub fn high<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_p_values_match_the_tables() {
        // 5 vs 5, complete separation: U = 0, p = 2/252.
        let p = mann_whitney_p(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]);
        assert!((p - 2.0 / 252.0).abs() < 1e-12, "{p}");
        // Interleaved: no evidence.
        let p = mann_whitney_p(&[1.0, 3.0, 5.0, 7.0, 9.0], &[2.0, 4.0, 6.0, 8.0, 10.0]);
        assert!(p > 0.5, "{p}");
        // The CDF of 4 vs 4 at 0 is 1/70.
        assert!((u_cdf(4, 4)[0] - 1.0 / 70.0).abs() < 1e-12);
        assert!((u_cdf(3, 5).last().unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_real_slowdown_has_an_interval_that_excludes_zero() {
        let base = [100.0, 102.0, 98.0, 101.0, 99.0];
        let cand = [80.0, 82.0, 79.0, 81.0, 78.0];
        let i = interval(&base, &cand, CONFIDENCE).unwrap();
        assert!(i.excludes_zero(), "{i}");
        assert!(i.change_pct < -15.0 && i.change_pct > -25.0, "{i}");
        assert!(i.hi_pct < -15.0, "{i}");
        assert!(i.p < 0.01, "{i}");
        assert_eq!(i.near_end(), i.hi_pct);
    }

    #[test]
    fn noise_alone_gives_an_interval_around_zero() {
        let base = [100.0, 93.0, 107.0, 96.0, 104.0];
        let cand = [97.0, 105.0, 101.0, 92.0, 106.0];
        let i = interval(&base, &cand, CONFIDENCE).unwrap();
        assert!(!i.excludes_zero(), "{i}");
        assert_eq!(i.near_end(), 0.0);
        assert!(i.p > 0.3, "{i}");
    }

    #[test]
    fn too_few_runs_cannot_bound_the_change() {
        let i = interval(&[100.0, 101.0], &[50.0, 51.0], CONFIDENCE).unwrap();
        assert!(!i.bounded(), "{i}");
        assert_eq!(i.near_end(), 0.0);
        // 4 + 4 is the least that bounds a 95 % interval.
        let i = interval(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], CONFIDENCE).unwrap();
        assert!(i.bounded(), "{i}");
    }

    #[test]
    fn zero_counts_use_differences() {
        let i = interval(&[0.0, 0.0, 0.0, 0.0, 0.0], &[0.0; 5], CONFIDENCE).unwrap();
        assert_eq!(i.change_pct, 0.0);
        assert!(!i.excludes_zero());
        assert!(i.p >= 0.99, "{i}");
        let i = interval(
            &[2.0, 0.0, 1.0, 0.0, 1.0],
            &[9.0, 8.0, 7.0, 9.0, 10.0],
            CONFIDENCE,
        )
        .unwrap();
        assert!(i.excludes_zero(), "{i}");
    }

    #[test]
    fn displays_as_the_issue_writes_it() {
        let i = Interval {
            change_pct: -12.4,
            lo_pct: -15.1,
            hi_pct: -9.6,
            p: 0.008,
            runs: [5, 5],
        };
        assert_eq!(i.to_string(), "-12.4% [-15.1%, -9.6%], p = 0.008");
    }
}
