//! Chart axes: ranges widened when degenerate, round ticks, the nines and log10 scales.

/// How an axis' tick values read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Kind {
    /// The value itself.
    Plain,
    /// x = -log10(1 - q), read as the percentile q.
    Nines,
    /// The log10 of the value, read as the value.
    Log10,
}

#[derive(Clone, Debug)]
pub(super) struct Axis {
    pub(super) lo: f64,
    pub(super) hi: f64,
    /// Labelled ticks (bold grid lines), within lo..=hi.
    pub(super) ticks: Vec<f64>,
    /// Unlabelled light grid lines.
    pub(super) light: Vec<f64>,
    pub(super) kind: Kind,
    pub(super) desc: &'static str,
}

impl Axis {
    pub(super) fn label(&self, v: f64) -> String {
        match self.kind {
            Kind::Plain => fmt_num(v),
            Kind::Log10 => fmt_num(10f64.powf(v)),
            Kind::Nines => {
                let pct = 100.0 * (1.0 - 10f64.powf(-v));
                // Enough decimals to tell 99.99 % from 99.999 %.
                let decimals = (v.round() as i64 - 2).clamp(0, 6) as usize;
                format!("{pct:.decimals$}%")
            }
        }
    }

    /// A linear axis from `lo` to `hi`, widened when degenerate, with round ticks.
    pub(super) fn linear(lo: f64, hi: f64, integer: bool, desc: &'static str) -> Axis {
        let (lo, hi) = widen(lo, hi);
        Axis {
            lo,
            hi,
            ticks: nice_ticks(lo, hi, 8, integer),
            light: Vec::new(),
            kind: Kind::Plain,
            desc,
        }
    }

    /// An axis of log10 values spanning `lo`..`hi` (both log10 already), ticks at decades.
    pub(super) fn log10(lo: f64, hi: f64, desc: &'static str) -> Axis {
        let (lo, hi) = widen(lo, hi);
        let mut ticks = Vec::new();
        let mut light = Vec::new();
        let (first, last) = (lo.floor() as i32, hi.ceil() as i32);
        for d in first..=last {
            for k in 1..10 {
                let v = (f64::from(k)).log10() + f64::from(d);
                if v < lo || v > hi {
                    continue;
                }
                if k == 1 {
                    ticks.push(v);
                } else {
                    light.push(v);
                }
            }
        }
        // Few decades shown: label some of the steps between them too (about 8 labels).
        let between: &[i32] = match ticks.len() {
            0..=2 => &[2, 5],
            3 => &[3],
            _ => &[],
        };
        if !between.is_empty() {
            ticks.extend(
                light
                    .iter()
                    .copied()
                    .filter(|v| between.contains(&(10f64.powf(v - v.floor()).round() as i32))),
            );
            ticks.sort_by(f64::total_cmp);
        }
        Axis {
            lo,
            hi,
            ticks,
            light,
            kind: Kind::Log10,
            desc,
        }
    }

    /// Raises the top so the upper `fraction` of the axis is left free (for the legend).
    pub(super) fn with_headroom(mut self, fraction: f64) -> Axis {
        let f = fraction.clamp(0.0, 0.5);
        self.hi = self.lo + (self.hi - self.lo) / (1.0 - f);
        self
    }
}

/// A range of non-zero width with finite ends.
pub(super) fn widen(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = match (lo.is_finite(), hi.is_finite()) {
        (true, true) => (lo.min(hi), lo.max(hi)),
        (true, false) => (lo, lo),
        (false, true) => (hi, hi),
        (false, false) => (0.0, 1.0),
    };
    let span = hi - lo;
    if span > 1e-9 * lo.abs().max(hi.abs()).max(1e-12) {
        (lo, hi)
    } else if lo == 0.0 {
        (0.0, 1.0)
    } else {
        let pad = lo.abs() * 0.1;
        (lo - pad, hi + pad)
    }
}

/// Round ticks (1, 2, 2.5, 5 × 10^n apart) covering `lo..=hi`, about `target` of them.
pub(super) fn nice_ticks(lo: f64, hi: f64, target: usize, integer: bool) -> Vec<f64> {
    let raw = (hi - lo) / target.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return vec![lo];
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let step = if integer { step.max(1.0).round() } else { step };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|k| k as f64 * step)
        .map(|v| if v == 0.0 { 0.0 } else { v })
        .collect()
}

/// A number as an axis label: integers above 100, three significant digits below.
pub(super) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let a = v.abs();
    if a < 1e-12 {
        return "0".into();
    }
    if !(1e-3..1e7).contains(&a) {
        return format!("{v:.0e}");
    }
    let decimals = (2 - a.log10().floor() as i32).clamp(0, 5) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The "nines" axis: x = -log10(1 - q), ticks at 0, 50, 90, 99, … %.
pub(super) fn nines_axis(hi: f64) -> Axis {
    let (lo, hi) = widen(0.0, hi);
    let ticks = [0.0, 2f64.log10(), 1.0, 2.0, 3.0, 4.0, 5.0]
        .into_iter()
        .filter(|&t| t <= hi + 1e-9)
        .collect();
    Axis {
        lo,
        hi,
        ticks,
        light: Vec::new(),
        kind: Kind::Nines,
        desc: "percentile",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_sane() {
        assert_eq!(widen(3.0, 3.0), (2.7, 3.3));
        assert_eq!(widen(0.0, 0.0), (0.0, 1.0));
        assert_eq!(widen(f64::NAN, f64::NAN), (0.0, 1.0));
        assert_eq!(
            nice_ticks(0.0, 10.0, 5, false),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        assert_eq!(nice_ticks(0.0, 1.05, 8, true), vec![0.0, 1.0]);
        assert_eq!(fmt_num(0.30000000000000004), "0.3");
        assert_eq!(fmt_num(1000.0), "1000");
        assert_eq!(fmt_num(2.5), "2.5");
        assert_eq!(fmt_num(0.0), "0");
        let n = nines_axis(5.0);
        let labels: Vec<String> = n.ticks.iter().map(|&t| n.label(t)).collect();
        assert_eq!(
            labels,
            ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        );
        let l = Axis::log10(1.0, 3.5, "µs");
        let labels: Vec<String> = l.ticks.iter().map(|&t| l.label(t)).collect();
        assert_eq!(labels, ["10", "30", "100", "300", "1000", "3000"]);
        let l = Axis::log10(0.9, 2.9, "µs");
        let labels: Vec<String> = l.ticks.iter().map(|&t| l.label(t)).collect();
        assert_eq!(labels, ["10", "20", "50", "100", "200", "500"]);
        let l = Axis::log10(-0.5, 4.0, "µs");
        let labels: Vec<String> = l.ticks.iter().map(|&t| l.label(t)).collect();
        assert_eq!(labels, ["1", "10", "100", "1000", "10000"]);
    }
}
