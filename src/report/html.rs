//! A self-contained HTML report: a caller's table, then SVG charts drawn by plotters (latency by
//! percentile per phase, TIME_WAIT over time, connection rate over time), every series overlaid
//! in its own colour. The document fetches nothing: inline CSS, inline SVG, no scripts.
//!
//! Charts are drawn by plotters' SVG backend; this module only computes the data and the axes
//! (ranges widened when degenerate, tick positions chosen here) and builds the HTML around them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{PhaseStats, Report};
use crate::observe::sampler::Sample;

/// One report in a chart: its label (scenario name, "baseline", "candidate", or "run") and the
/// report.
pub struct Series<'a> {
    pub label: &'a str,
    pub report: &'a Report,
}

/// Chart size in pixels.
const WIDTH: u32 = 900;
const HEIGHT: u32 = 360;
/// Points sampled along each latency curve.
const CURVE_POINTS: usize = 200;
/// The nines axis goes no further than 99.999 %.
const MAX_NINES: f64 = 5.0;
/// Font sizes as plotters takes them (the SVG gets size / 1.24).
const LABEL_FONT: f64 = 15.0;
/// About the height of the plotting area, and of one legend line, to keep room for the legend.
const PLOT_HEIGHT: f64 = 290.0;
const LEGEND_LINE: f64 = 17.0;

/// Series colours (Tableau 10 without its grey: no series is ever grey, as the mesh is).
const PALETTE: [RGBColor; 9] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xFF, 0x9D, 0xA7),
];

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub use super::table::escape;

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  max-width: 960px; margin: 2em auto; padding: 0 1em; color: #222; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.6em; }
pre { overflow-x: auto; font-size: 0.85em; }
h2 { font-size: 1.2em; margin-top: 2em; padding-bottom: 0.2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure.chart { margin: 1em 0 2em; }
figure.chart figcaption { font-weight: 600; margin-bottom: 0.3em; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
.nodata { color: #888; font-weight: normal; }
.error { color: #b00; }
"#;

/// Picks a phase's latency from a report.
type Pick = fn(&Report) -> &PhaseStats;

/// A whole HTML document: `title` as <title> and <h1>, then `table_html` (a ready-made HTML
/// fragment, inserted as is — the caller renders the comparison/summary table), then the charts,
/// every series overlaid in each chart, each series its own colour (and a legend).
pub fn render(title: &str, table_html: &str, series: &[Series<'_>]) -> String {
    let title = escape(title);
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    html.push_str(table_html);
    html.push('\n');

    html.push_str("<h2>Latency by percentile</h2>\n");
    let phases: [(&str, Pick); 4] = [
        ("Connect", |r| &r.latency.connect),
        ("Echo", |r| &r.latency.echo),
        ("Close", |r| &r.latency.close),
        ("Total", |r| &r.latency.total),
    ];
    for (name, pick) in phases {
        let chart = latency_chart(series, pick);
        let scale = if chart.y.kind == Kind::Log10 {
            ", log scale"
        } else {
            ""
        };
        figure(
            &mut html,
            &format!("{name} latency by percentile (µs{scale})"),
            &chart,
        );
    }

    html.push_str("<h2>TIME_WAIT over time</h2>\n");
    figure(
        &mut html,
        "TIME_WAIT sockets over time (client solid, server dashed)",
        &time_wait_chart(series),
    );

    html.push_str("<h2>Connection rate over time</h2>\n");
    figure(
        &mut html,
        "Successful connections per second",
        &rate_chart(series),
    );

    html.push_str("</body>\n</html>\n");
    html
}

/// One chart as a <figure>: its caption, then the SVG (or why it could not be drawn).
fn figure(html: &mut String, caption: &str, chart: &Chart) {
    let nodata = if chart.lines.is_empty() {
        " <span class=\"nodata\">— no data</span>"
    } else {
        ""
    };
    let _ = writeln!(
        html,
        "<figure class=\"chart\">\n<figcaption>{}{nodata}</figcaption>",
        escape(caption)
    );
    match draw(chart) {
        Ok(svg) => html.push_str(&svg),
        Err(e) => {
            let _ = writeln!(
                html,
                "<p class=\"error\">chart not drawn: {}</p>",
                escape(&e)
            );
        }
    }
    html.push_str("</figure>\n");
}

/// How an axis' tick values read.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// The value itself.
    Plain,
    /// x = -log10(1 - q), read as the percentile q.
    Nines,
    /// The log10 of the value, read as the value.
    Log10,
}

#[derive(Clone, Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    /// Labelled ticks (bold grid lines), within lo..=hi.
    ticks: Vec<f64>,
    /// Unlabelled light grid lines.
    light: Vec<f64>,
    kind: Kind,
    desc: &'static str,
}

impl Axis {
    fn label(&self, v: f64) -> String {
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
    fn linear(lo: f64, hi: f64, integer: bool, desc: &'static str) -> Axis {
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
    fn log10(lo: f64, hi: f64, desc: &'static str) -> Axis {
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
    fn with_headroom(mut self, fraction: f64) -> Axis {
        let f = fraction.clamp(0.0, 0.5);
        self.hi = self.lo + (self.hi - self.lo) / (1.0 - f);
        self
    }
}

/// A range of non-zero width with finite ends.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
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
fn nice_ticks(lo: f64, hi: f64, target: usize, integer: bool) -> Vec<f64> {
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
fn fmt_num(v: f64) -> String {
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

/// One line of a chart: data points in chart coordinates (after any log transform).
struct Line {
    label: String,
    colour: RGBColor,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

impl Line {
    /// A solid line in series `i`'s colour.
    fn solid(label: &str, i: usize, points: Vec<(f64, f64)>) -> Line {
        Line {
            label: label.to_string(),
            colour: colour(i),
            dashed: false,
            points,
        }
    }
}

struct Chart {
    x: Axis,
    y: Axis,
    lines: Vec<Line>,
}

impl Chart {
    /// Builds a chart from lines of raw values (non-finite points are dropped, lines left
    /// without points too), on the given x axis and a y axis fitted to the data: from 0, or,
    /// when `allow_log` and the values span more than 100×, log10.
    fn fit(
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

/// The "nines" axis: x = -log10(1 - q), ticks at 0, 50, 90, 99, … %.
fn nines_axis(hi: f64) -> Axis {
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

fn latency_chart(series: &[Series<'_>], pick: Pick) -> Chart {
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
fn time_axis(lines: &[Line]) -> Axis {
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

fn time_wait_chart(series: &[Series<'_>]) -> Chart {
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

fn rate_chart(series: &[Series<'_>]) -> Chart {
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
fn time_chart(mut lines: Vec<Line>, y_desc: &'static str, integer_y: bool) -> Chart {
    lines.retain(|l| l.points.iter().any(|(x, y)| x.is_finite() && y.is_finite()));
    let x = time_axis(&lines);
    Chart::fit(x, false, y_desc, integer_y, lines)
}

/// A linear f64 axis with the ticks of an [`Axis`]. (plotters' own `with_key_points` keeps
/// `RangedCoordf64`'s `NoDefaultFormatting`, which leaves the mesh without a label formatter.)
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
    light: Vec<f64>,
}

impl Ticked {
    fn new(axis: &Axis) -> Ticked {
        Ticked {
            inner: (axis.lo..axis.hi).into(),
            ticks: axis.ticks.clone(),
            light: axis.light.clone(),
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// Draws a chart as an SVG document (a string), with plotters.
fn draw(chart: &Chart) -> Result<String, String> {
    let mut svg = String::new();
    draw_into(&mut svg, chart).map_err(|e| e.to_string())?;
    Ok(svg)
}

fn draw_into(svg: &mut String, chart: &Chart) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let (x, y) = (&chart.x, &chart.y);
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut ctx = ChartBuilder::on(&root)
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(76)
        .build_cartesian_2d(Ticked::new(x), Ticked::new(y))?;
    let x_label = |v: &f64| x.label(*v);
    let y_label = |v: &f64| y.label(*v);
    ctx.configure_mesh()
        .x_desc(x.desc)
        .y_desc(y.desc)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .label_style(("sans-serif", LABEL_FONT))
        .axis_desc_style(("sans-serif", LABEL_FONT))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(BLACK.mix(0.05))
        .axis_style(BLACK.mix(0.6))
        .draw()?;

    for line in &chart.lines {
        let c = line.colour;
        // Keep every point inside the plotting area: plotters does not clip paths.
        let points: Vec<(f64, f64)> = line
            .points
            .iter()
            .map(|&(px, py)| (px.clamp(x.lo, x.hi), py.clamp(y.lo, y.hi)))
            .collect();
        let style = c.stroke_width(2);
        let anno = if line.dashed {
            ctx.draw_series(DashedLineSeries::new(points.clone(), 7, 5, style))?
        } else {
            ctx.draw_series(LineSeries::new(points.clone(), style))?
        };
        // Legend glyphs are filled rectangles, so every coloured <polyline> is data.
        if line.dashed {
            anno.legend(move |(lx, ly)| {
                EmptyElement::at((lx, ly))
                    + Rectangle::new([(0, -1), (6, 2)], c.filled())
                    + Rectangle::new([(10, -1), (16, 2)], c.filled())
                    + Rectangle::new([(20, -1), (24, 2)], c.filled())
            })
        } else {
            anno.legend(move |(lx, ly)| {
                EmptyElement::at((lx, ly)) + Rectangle::new([(0, -1), (24, 2)], c.filled())
            })
        }
        .label(line.label.as_str());
        if points.len() == 1 {
            // A one-point line is invisible: mark the point.
            ctx.draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        }
    }

    if chart.lines.is_empty() {
        let centre = ((x.lo + x.hi) / 2.0, (y.lo + y.hi) / 2.0);
        let grey = BLACK.mix(0.45);
        let style = TextStyle::from(("sans-serif", 22).into_font())
            .color(&grey)
            .pos(Pos::new(HPos::Center, VPos::Center));
        ctx.plotting_area()
            .draw(&Text::new("no data", centre, style))?;
    } else {
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", LABEL_FONT))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Reading a rendered report back: the checks tests and scripts make on what a browser shows.
pub mod inspect {
    /// Each `<svg>…</svg>` of a document: one per chart.
    pub fn charts(html: &str) -> Vec<&str> {
        html.split("<svg")
            .skip(1)
            .map(|s| s.split("</svg>").next().unwrap_or(""))
            .collect()
    }

    fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        tag[start..].split('"').next()
    }

    /// The data lines of a chart: coloured polylines with at least `min_points` points (the
    /// mesh is grey and legend glyphs are rectangles).
    pub fn data_lines(svg: &str, min_points: usize) -> usize {
        svg.split("<polyline")
            .skip(1)
            .map(|t| t.split('>').next().unwrap_or(""))
            .filter(|t| {
                let stroke = attr(t, "stroke").unwrap_or("").to_ascii_lowercase();
                let grey = stroke.len() == 7
                    && stroke[1..3] == stroke[3..5]
                    && stroke[3..5] == stroke[5..7];
                let n = attr(t, "points").unwrap_or("").split_whitespace().count();
                !grey && n >= min_points
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::inspect::{charts as svgs, data_lines};
    use super::*;
    use crate::load::control::Tick;
    use crate::report::fixture;

    fn tw(n: u32) -> BTreeMap<String, u32> {
        BTreeMap::from([("TIME_WAIT".to_string(), n), ("ESTABLISHED".to_string(), 3)])
    }

    /// The fixture with TIME_WAIT samples and a timeline.
    fn full_report() -> Report {
        let mut r = fixture::report();
        r.tcp_states.samples = (0..20)
            .map(|i| Sample {
                t_ms: i as f64 * 100.0,
                tw_total: Some(i * 10),
                client: (i % 2 == 0).then(|| tw(i as u32 * 5)),
                server: (i % 2 == 0).then(|| tw(i as u32 * 4)),
            })
            .collect();
        r.timeline = (0..20)
            .map(|i| Tick {
                t_ms: i as f64 * 100.0,
                succeeded: i * i * 10,
                failed: 0,
            })
            .collect();
        r
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn six_charts_each_with_data_and_legend() {
        let (a, b) = (full_report(), full_report());
        let html = render(
            "Run <1>",
            "<table><tr><td class=\"num\">1</td></tr></table>",
            &[
                Series {
                    label: "baseline",
                    report: &a,
                },
                Series {
                    label: "a<b",
                    report: &b,
                },
            ],
        );
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>Run &lt;1&gt;</title>"));
        assert!(html.contains("<h1>Run &lt;1&gt;</h1>"));
        assert!(
            html.contains("<td class=\"num\">1</td>"),
            "table inserted as is"
        );
        let charts = svgs(&html);
        assert_eq!(charts.len(), 6);
        // Latency charts: one 200-point curve per series.
        for svg in &charts[..4] {
            assert_eq!(data_lines(svg, CURVE_POINTS), 2, "{svg}");
            assert!(svg.contains("baseline") && svg.contains("a&lt;b"));
            assert!(!svg.contains("a<b"));
            assert!(svg.contains(">\n90%\n<") || svg.contains("90%"));
        }
        // TIME_WAIT: client lines solid (10 points), server lines dashed (many short pieces).
        assert_eq!(data_lines(charts[4], 10), 2);
        assert!(data_lines(charts[4], 2) > 4);
        for label in [
            "baseline client",
            "baseline server",
            "a&lt;b client",
            "a&lt;b server",
        ] {
            assert!(charts[4].contains(label), "{label}");
        }
        // Rate: 19 intervals per series.
        assert_eq!(data_lines(charts[5], 19), 2);
        assert!(charts[5].contains("conn/s"));
        assert!(!html.contains("no data"));
        assert!(html.contains("a&lt;b"));
        assert!(!html.contains("a<b"));
    }

    #[test]
    fn fetches_nothing() {
        let r = full_report();
        let html = render(
            "t",
            "",
            &[Series {
                label: "run",
                report: &r,
            }],
        );
        let lower = html.to_lowercase();
        for bad in [
            "src=\"http",
            "href=\"http",
            "src='http",
            "href='http",
            "url(http",
            "<script",
            "<link",
            "@import",
            "<img",
        ] {
            assert!(!lower.contains(bad), "{bad}");
        }
        // The only URL is the SVG namespace name, which is never fetched.
        let urls = lower.matches("http").count();
        assert_eq!(
            urls,
            lower
                .matches("xmlns=\"http://www.w3.org/2000/svg\"")
                .count()
        );
    }

    #[test]
    fn empty_reports_render_no_data() {
        let mut r = fixture::report();
        for p in [
            &mut r.latency.connect,
            &mut r.latency.echo,
            &mut r.latency.close,
            &mut r.latency.total,
        ] {
            *p = PhaseStats::default();
        }
        let html = render(
            "empty",
            "",
            &[Series {
                label: "run",
                report: &r,
            }],
        );
        assert_eq!(svgs(&html).len(), 6);
        assert_eq!(html.matches("— no data").count(), 6);
        assert!(!html.contains("chart not drawn"));
        // No series at all.
        let html = render("none", "", &[]);
        assert_eq!(svgs(&html).len(), 6);
        assert_eq!(html.matches("— no data").count(), 6);
    }

    #[test]
    fn degenerate_data_does_not_panic() {
        let mut r = fixture::report();
        // One sample, one tick pair with zero elapsed time, NaN times, all zeros.
        r.tcp_states.samples = vec![
            Sample {
                t_ms: 0.0,
                tw_total: None,
                client: Some(BTreeMap::new()),
                server: None,
            },
            Sample {
                t_ms: f64::NAN,
                tw_total: None,
                client: Some(tw(3)),
                server: Some(tw(1)),
            },
        ];
        r.timeline = vec![
            Tick {
                t_ms: 5.0,
                succeeded: 0,
                failed: 0,
            },
            Tick {
                t_ms: 5.0,
                succeeded: 10,
                failed: 0,
            },
            Tick {
                t_ms: f64::NAN,
                succeeded: 20,
                failed: 0,
            },
            Tick {
                t_ms: 105.0,
                succeeded: 20,
                failed: 0,
            },
        ];
        let html = render(
            "d",
            "",
            &[Series {
                label: "run",
                report: &r,
            }],
        );
        let charts = svgs(&html);
        assert_eq!(charts.len(), 6);
        assert!(!html.contains("chart not drawn"));
        // The single client sample (TIME_WAIT absent = 0) is drawn, marked by a circle.
        assert!(charts[4].contains("<circle"));
        assert!(!html.contains("NaN"));

        // One huge and one tiny latency: a log axis.
        let mut h = crate::stats::new_histogram();
        h.record(1).unwrap();
        h.record(5_000_000_000).unwrap();
        r.latency.connect = PhaseStats::from_histogram(&h);
        let html = render(
            "d",
            "",
            &[Series {
                label: "run",
                report: &r,
            }],
        );
        assert!(html.contains("Connect latency by percentile (µs, log scale)"));
        assert_eq!(data_lines(svgs(&html)[0], CURVE_POINTS), 1);
    }

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
