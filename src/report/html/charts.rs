//! The charts a report page draws, as data: latency by percentile, TIME_WAIT and the
//! connection rate over time, each series in its own colour.

use std::collections::BTreeMap;

use plotters::prelude::RGBColor;

use super::axis::{Axis, nines_axis};
use super::{CURVE_POINTS, LEGEND_LINE, MAX_NINES, Pick, Series, colour};
use crate::observe::sampler::Sample;

/// How a line's points are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Mark {
    /// Joined by straight segments: a value known at every point along the way.
    Line,
    /// A filled circle per point, not joined: values known only where they were taken.
    Circle,
    /// A filled triangle per point, not joined.
    Triangle,
}

/// One line of a chart: data points in chart coordinates (after any log transform).
pub(super) struct Line {
    /// Its legend entry; `None` when the chart needs none for it (one series, or a mark the
    /// caption explains).
    pub(super) label: Option<String>,
    pub(super) colour: RGBColor,
    pub(super) mark: Mark,
    pub(super) points: Vec<(f64, f64)>,
}

impl Line {
    /// A line in series `i`'s colour, in the legend as `label`.
    pub(super) fn new(label: Option<&str>, i: usize, mark: Mark, points: Vec<(f64, f64)>) -> Line {
        Line {
            label: label.map(str::to_string),
            colour: colour(i),
            mark,
            points,
        }
    }
}

/// A chart's size in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Size {
    pub(super) width: u32,
    pub(super) height: u32,
}

/// The latency charts: small multiples, two abreast on a wide screen.
pub(super) const SMALL: Size = Size {
    width: 640,
    height: 300,
};
/// The charts over time: the page's width.
pub(super) const WIDE: Size = Size {
    width: 900,
    height: 340,
};

pub(super) struct Chart {
    pub(super) size: Size,
    pub(super) x: Axis,
    pub(super) y: Axis,
    pub(super) lines: Vec<Line>,
}

/// The y scale of a chart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Scale {
    /// From 0.
    Linear,
    /// log10, zeros on the floor (linear when no value is above 0).
    Log,
}

/// Whether values spanning this many times their smallest positive one want a log axis.
const LOG_SPAN: f64 = 100.0;

/// Whether the lines' values span more than [`LOG_SPAN`].
fn spans_decades(lines: &[Line]) -> bool {
    let ys = || {
        lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .filter(|y| y.is_finite())
    };
    let max = ys().fold(f64::NEG_INFINITY, f64::max);
    let min_pos = ys().filter(|&y| y > 0.0).fold(f64::INFINITY, f64::min);
    min_pos.is_finite() && max / min_pos > LOG_SPAN
}

impl Chart {
    /// Builds a chart from lines of raw values (non-finite points are dropped, lines left
    /// without points too), on the given x axis and a y axis fitted to the data on `scale`,
    /// with room at the top for the legend.
    pub(super) fn fit(
        size: Size,
        x: Axis,
        scale: Scale,
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
        let entries = lines.iter().filter(|l| l.label.is_some()).count();
        // About the height of the plotting area: the frame less the margins and x labels.
        let plot_height = f64::from(size.height) - 72.0;
        let headroom = if entries == 0 {
            0.0
        } else {
            (entries as f64 * LEGEND_LINE + 24.0) / plot_height
        };
        if scale == Scale::Log && min_pos.is_finite() {
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
            Chart { size, x, y, lines }
        } else {
            let top = if max.is_finite() {
                max.max(0.0) * 1.05
            } else {
                0.0
            };
            let y = Axis::linear(0.0, top, integer_y, y_desc).with_headroom(headroom);
            Chart { size, x, y, lines }
        }
    }
}

/// Each series' label for the legend: none when there is one series (nothing to tell apart).
fn labels<'a>(series: &'a [Series<'_>]) -> impl Iterator<Item = Option<&'a str>> {
    let legend = series.len() > 1;
    series.iter().map(move |s| legend.then_some(s.label))
}

/// The latency curves of one phase, one per series with samples, in µs.
fn latency_lines(series: &[Series<'_>], pick: Pick) -> (f64, Vec<Line>) {
    let mut x_hi: f64 = 0.0;
    let mut lines = Vec::new();
    for (i, (s, label)) in series.iter().zip(labels(series)).enumerate() {
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
        lines.push(Line::new(label, i, Mark::Line, points));
    }
    (x_hi, lines)
}

/// One latency chart per phase, all on one y scale: log10 when any phase's values span more
/// than 100×, else linear, so the charts of a page read alike.
pub(super) fn latency_charts(series: &[Series<'_>], picks: &[Pick]) -> (Scale, Vec<Chart>) {
    let phases: Vec<(f64, Vec<Line>)> = picks.iter().map(|&p| latency_lines(series, p)).collect();
    let scale = if phases.iter().any(|(_, lines)| spans_decades(lines)) {
        Scale::Log
    } else {
        Scale::Linear
    };
    let charts = phases
        .into_iter()
        .map(|(x_hi, lines)| {
            let x = nines_axis(if x_hi > 0.0 { x_hi } else { 1.0 });
            Chart::fit(SMALL, x, scale, "µs", false, lines)
        })
        .collect();
    (scale, charts)
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

/// TIME_WAIT over time, per series: the namespace's total at every tick as a line (the
/// sampler reads it every tick, so the line is on time), and the exact counts of the run's
/// own sockets as marks where they were taken (sparse: the sampler stretches their interval
/// to its CPU budget), a circle for the client side, a triangle for the server side.
pub(super) fn time_wait_chart(series: &[Series<'_>]) -> Chart {
    type Side = fn(&Sample) -> Option<&BTreeMap<String, u32>>;
    let sides: [(Mark, Side); 2] = [
        (Mark::Circle, |s| s.client.as_ref()),
        (Mark::Triangle, |s| s.server.as_ref()),
    ];
    let mut lines = Vec::new();
    for (i, (s, label)) in series.iter().zip(labels(series)).enumerate() {
        let samples = &s.report.tcp_states.samples;
        let total = samples
            .iter()
            .filter_map(|sample| Some((sample.t_ms / 1000.0, sample.tw_total? as f64)))
            .collect();
        let mut own = vec![Line::new(None, i, Mark::Line, total)];
        for (mark, get) in sides {
            let points = samples
                .iter()
                .filter_map(|sample| {
                    let tw = get(sample)?.get("TIME_WAIT").copied().unwrap_or(0);
                    Some((sample.t_ms / 1000.0, f64::from(tw)))
                })
                .collect();
            own.push(Line::new(None, i, mark, points));
        }
        own.retain(|l| l.points.iter().any(|(x, y)| x.is_finite() && y.is_finite()));
        // The series' first line drawn carries its legend entry.
        if let Some(first) = own.first_mut() {
            first.label = label.map(str::to_string);
        }
        lines.extend(own);
    }
    time_chart(lines, "TIME_WAIT sockets", true)
}

/// Successful connections per second over each interval between ticks, divided by the
/// interval's real length. The last interval, from the last tick to the end of the run, is
/// left out when there are others: the load winds down inside it (the last connections
/// finish with fewer and fewer workers still busy), so its rate reads as a fall that the
/// run did not have while it ran.
pub(super) fn rate_chart(series: &[Series<'_>]) -> Chart {
    let mut lines = Vec::new();
    for (i, (s, label)) in series.iter().zip(labels(series)).enumerate() {
        let timeline = &s.report.timeline;
        let ticks = if timeline.len() > 2 {
            &timeline[..timeline.len() - 1]
        } else {
            &timeline[..]
        };
        let points = ticks
            .windows(2)
            .filter_map(|w| {
                let dt = (w[1].t_ms - w[0].t_ms) / 1000.0;
                (dt.is_finite() && dt > 0.0).then(|| {
                    let done = w[1].succeeded.saturating_sub(w[0].succeeded);
                    (w[1].t_ms / 1000.0, done as f64 / dt)
                })
            })
            .collect();
        lines.push(Line::new(label, i, Mark::Line, points));
    }
    time_chart(lines, "conn/s", false)
}

/// A chart over seconds, from the lines that have a point to draw.
pub(super) fn time_chart(mut lines: Vec<Line>, y_desc: &'static str, integer_y: bool) -> Chart {
    lines.retain(|l| l.points.iter().any(|(x, y)| x.is_finite() && y.is_finite()));
    let x = time_axis(&lines);
    Chart::fit(WIDE, x, Scale::Linear, y_desc, integer_y, lines)
}
