//! The charts a report page draws, as data: latency by percentile, TIME_WAIT and the
//! connection rate over time, each line in its series' colour.

use std::collections::BTreeMap;

use plotters::prelude::RGBColor;

use super::axis::{Axis, nines_axis};
use super::{CURVE_POINTS, LEGEND_LINE, MAX_NINES, PLOT_HEIGHT, Pick, Series, colour};
use crate::observe::sampler::Sample;

/// One line of a chart: data points in chart coordinates (after any log transform).
pub(super) struct Line {
    pub(super) label: String,
    pub(super) colour: RGBColor,
    pub(super) dashed: bool,
    pub(super) points: Vec<(f64, f64)>,
}

impl Line {
    /// A solid line in series `i`'s colour.
    pub(super) fn solid(label: &str, i: usize, points: Vec<(f64, f64)>) -> Line {
        Line {
            label: label.to_string(),
            colour: colour(i),
            dashed: false,
            points,
        }
    }
}

pub(super) struct Chart {
    pub(super) x: Axis,
    pub(super) y: Axis,
    pub(super) lines: Vec<Line>,
}

impl Chart {
    /// Builds a chart from lines of raw values (non-finite points are dropped, lines left
    /// without points too), on the given x axis and a y axis fitted to the data: from 0, or,
    /// when `allow_log` and the values span more than 100×, log10.
    pub(super) fn fit(
        x: Axis,
        allow_log: bool,
        y_desc: &'static str,
        integer_y: bool,
        lines: Vec<Line>,
    ) -> Chart {
        let lines: Vec<Line> = lines
            .into_iter()
            .map(|mut l| {
                l.points.retain(|(x, y)| x.is_finite() && y.is_finite());
                l
            })
            .filter(|l| !l.points.is_empty())
            .collect();
        let ys = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
        let max = ys().fold(f64::NEG_INFINITY, f64::max);
        let min_pos = ys().filter(|&y| y > 0.0).fold(f64::INFINITY, f64::min);
        let headroom = if lines.is_empty() {
            0.0
        } else {
            (lines.len() as f64 * LEGEND_LINE + 24.0) / PLOT_HEIGHT
        };
        if allow_log && min_pos.is_finite() && max / min_pos > 100.0 {
            // Zeros sit on the floor of the axis.
            let floor = min_pos.log10();
            let lines = lines
                .into_iter()
                .map(|mut l| {
                    for p in &mut l.points {
                        p.1 = if p.1 > 0.0 { p.1.log10() } else { floor };
                    }
                    l
                })
                .collect();
            let y = Axis::log10(floor - 0.05, max.log10() + 0.05, y_desc).with_headroom(headroom);
            Chart { x, y, lines }
        } else {
            let top = if max.is_finite() {
                max.max(0.0) * 1.05
            } else {
                0.0
            };
            let y = Axis::linear(0.0, top, integer_y, y_desc).with_headroom(headroom);
            Chart { x, y, lines }
        }
    }
}

pub(super) fn latency_chart(series: &[Series<'_>], pick: Pick) -> Chart {
    let mut x_hi: f64 = 0.0;
    let mut lines = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let h = &pick(s.report).hdr.0;
        if h.is_empty() {
            continue;
        }
        // As far as the data resolves the tail (and at least to 90 %).
        let x_end = (h.len() as f64).log10().clamp(1.0, MAX_NINES);
        x_hi = x_hi.max(x_end);
        let points = (0..CURVE_POINTS)
            .map(|k| {
                let x = x_end * k as f64 / (CURVE_POINTS - 1) as f64;
                let q = (1.0 - 10f64.powf(-x)).clamp(0.0, 1.0);
                (x, h.value_at_quantile(q) as f64 / 1000.0)
            })
            .collect();
        lines.push(Line::solid(s.label, i, points));
    }
    let x = nines_axis(if x_hi > 0.0 { x_hi } else { 1.0 });
    Chart::fit(x, true, "µs", false, lines)
}

/// An x axis of seconds over the lines' points (from 0, or earlier if some are negative).
pub(super) fn time_axis(lines: &[Line]) -> Axis {
    let xs = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .filter(|x| x.is_finite());
    let (lo, hi) = xs.fold((0.0f64, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let hi = if hi.is_finite() { hi } else { lo };
    // A little room on the right, so the last point (or its marker) is off the frame.
    let hi = hi + (hi - lo) * 0.02;
    Axis::linear(lo, hi, false, "seconds")
}

pub(super) fn time_wait_chart(series: &[Series<'_>]) -> Chart {
    let mut lines = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let samples = &s.report.tcp_states.samples;
        type Side = fn(&Sample) -> Option<&BTreeMap<String, u32>>;
        let sides: [(&str, bool, Side); 2] = [
            ("client", false, |s| s.client.as_ref()),
            ("server", true, |s| s.server.as_ref()),
        ];
        for (side, dashed, get) in sides {
            let points: Vec<(f64, f64)> = samples
                .iter()
                .filter_map(|sample| {
                    let map = get(sample)?;
                    let tw = map.get("TIME_WAIT").copied().unwrap_or(0);
                    Some((sample.t_ms / 1000.0, f64::from(tw)))
                })
                .collect();
            lines.push(Line {
                label: format!("{} {side}", s.label),
                colour: colour(i),
                dashed,
                points,
            });
        }
    }
    time_chart(lines, "TIME_WAIT sockets", true)
}

pub(super) fn rate_chart(series: &[Series<'_>]) -> Chart {
    let mut lines = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let points = s
            .report
            .timeline
            .windows(2)
            .filter_map(|w| {
                let dt = (w[1].t_ms - w[0].t_ms) / 1000.0;
                (dt.is_finite() && dt > 0.0).then(|| {
                    let done = w[1].succeeded.saturating_sub(w[0].succeeded);
                    (w[1].t_ms / 1000.0, done as f64 / dt)
                })
            })
            .collect();
        lines.push(Line::solid(s.label, i, points));
    }
    time_chart(lines, "conn/s", false)
}

/// A chart over seconds, from the lines that have a point to draw.
pub(super) fn time_chart(mut lines: Vec<Line>, y_desc: &'static str, integer_y: bool) -> Chart {
    lines.retain(|l| l.points.iter().any(|(x, y)| x.is_finite() && y.is_finite()));
    let x = time_axis(&lines);
    Chart::fit(x, false, y_desc, integer_y, lines)
}
