//! A self-contained HTML report: a caller's table, then SVG charts drawn by plotters (latency by
//! percentile per phase, TIME_WAIT over time, connection rate over time), every series overlaid
//! in its own colour. The document fetches nothing: inline CSS, inline SVG, no scripts.
//!
//! Charts are drawn by plotters' SVG backend; this module only computes the data and the axes
//! (ranges widened when degenerate, tick positions chosen here) and builds the HTML around them.

mod axis;
mod charts;
mod draw;
pub mod inspect;

use std::fmt::Write as _;

use plotters::prelude::RGBColor;

use super::{PhaseStats, Report};
use axis::fmt_num;
use charts::{Chart, Mark, Scale, latency_charts, rate_chart, time_wait_chart};
use draw::draw;
/// One report in a chart: its label (scenario name, "baseline", "candidate", or "run") and the
/// report.
pub struct Series<'a> {
    pub label: &'a str,
    pub report: &'a Report,
}

/// Points sampled along each latency curve.
pub(super) const CURVE_POINTS: usize = 200;
/// The nines axis goes no further than 99.999 %.
pub(super) const MAX_NINES: f64 = 5.0;
/// Font sizes as plotters takes them (the SVG gets size / 1.24).
pub(super) const LABEL_FONT: f64 = 15.0;
/// About the height of one legend line, to keep room for the legend.
pub(super) const LEGEND_LINE: f64 = 17.0;

/// Series colours (Tableau 10 without its grey: no series is ever grey, as the mesh is).
pub(super) const PALETTE: [RGBColor; 9] = [
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

pub(super) fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub use super::table::escape;

pub(super) const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  max-width: 1320px; margin: 2em auto; padding: 0 1em; color: #222; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.6em; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.85em; max-width: 960px; }
p, ul { max-width: 960px; }
h2 { font-size: 1.2em; margin-top: 2em; padding-bottom: 0.2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure.chart { margin: 1em 0 2em; }
div.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); column-gap: 2em; }
figure.chart figcaption { font-weight: 600; margin-bottom: 0.3em; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
.nodata { color: #888; font-weight: normal; }
.error { color: #b00; }
.warnings li { color: #8a4b00; }
td.fails, td.worse, .fail { color: #b00; font-weight: 600; }
td.better, .pass { color: #176b2c; font-weight: 600; }
"#;

/// Picks a phase's latency from a report.
pub(super) type Pick = fn(&Report) -> &PhaseStats;

/// A whole HTML document: `title` as `<title>` and `<h1>`, then `table_html` (a ready-made HTML
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

    html.push_str("<h2>Latency by percentile</h2>\n<div class=\"charts\">\n");
    let phases: [(&str, Pick); 4] = [
        ("Connect", |r| &r.latency.connect),
        ("Echo", |r| &r.latency.echo),
        ("Close", |r| &r.latency.close),
        ("Total", |r| &r.latency.total),
    ];
    let picks = phases.map(|(_, pick)| pick);
    let (scale, charts) = latency_charts(series, &picks);
    let scale = match scale {
        Scale::Log => ", log scale",
        Scale::Linear => "",
    };
    // The echo phase is every other protocol's exchange.
    let exchange = series.iter().any(|s| !s.report.config.protocol.is_echo());
    for ((name, _), chart) in phases.iter().zip(&charts) {
        let name = match *name {
            "Echo" if exchange => "Exchange",
            name => name,
        };
        figure(
            &mut html,
            &format!("{name} latency by percentile (µs{scale})"),
            chart,
        );
    }
    html.push_str("</div>\n");

    html.push_str("<h2>TIME_WAIT over time</h2>\n");
    let chart = time_wait_chart(series);
    figure(&mut html, &time_wait_caption(series, &chart), &chart);

    html.push_str("<h2>Connection rate over time</h2>\n");
    figure(
        &mut html,
        "Successful connections per second, over each interval between ticks \
         (the last, partial interval left out)",
        &rate_chart(series),
    );

    html.push_str("</body>\n</html>\n");
    html
}

/// What the TIME_WAIT chart's line and marks are, for its caption: the marks it has, with the
/// tick and the exact counts' intervals the reports give.
fn time_wait_caption(series: &[Series<'_>], chart: &Chart) -> String {
    let states = || {
        series
            .iter()
            .map(|s| &s.report.tcp_states)
            .filter(|t| !t.samples.is_empty())
    };
    let mut ticks: Vec<f64> = states().map(|t| t.interval_ms).collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    let every = match ticks[..] {
        [ms] if ms > 0.0 => format!("every {} ms", fmt_num(ms)),
        _ => "every tick".to_string(),
    };
    let (lo, hi) = states().fold((f64::INFINITY, 0.0f64), |(lo, hi), t| {
        (
            lo.min(t.exact_interval_ms[0]),
            hi.max(t.exact_interval_ms[1]),
        )
    });
    let apart = if lo.is_finite() && hi > 0.0 {
        format!(", {}–{} ms apart", fmt_num(lo), fmt_num(hi))
    } else {
        String::new()
    };
    let has = |mark| chart.lines.iter().any(|l| l.mark == mark);
    let mut parts = Vec::new();
    if has(Mark::Line) {
        parts.push(format!(
            "line: the network namespace's total (this run's and any other's), {every}"
        ));
    }
    let sides: Vec<&str> = [
        (Mark::Circle, "● client side"),
        (Mark::Triangle, "▲ server side"),
    ]
    .into_iter()
    .filter(|&(mark, _)| has(mark))
    .map(|(_, name)| name)
    .collect();
    if !sides.is_empty() {
        parts.push(format!(
            "{}: this run's own sockets, counted exactly only where marked{apart}",
            sides.join(", ")
        ));
    }
    if parts.is_empty() {
        "TIME_WAIT sockets over time".to_string()
    } else {
        format!("TIME_WAIT sockets over time — {}", parts.join("; "))
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::inspect::{charts as svgs, coloured, data_lines};
    use super::*;
    use crate::observe::sampler::Sample;
    use crate::report::fixture;
    use crate::stats::Tick;

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

    fn two(a: &Report, b: &Report) -> String {
        render(
            "Run <1>",
            "<table><tr><td class=\"num\">1</td></tr></table>",
            &[
                Series {
                    label: "baseline",
                    report: a,
                },
                Series {
                    label: "a<b",
                    report: b,
                },
            ],
        )
    }

    fn one(r: &Report) -> String {
        render(
            "t",
            "<pre>summary</pre>",
            &[Series {
                label: "run",
                report: r,
            }],
        )
    }

    #[test]
    fn six_charts_each_with_data_and_legend() {
        let (a, b) = (full_report(), full_report());
        let html = two(&a, &b);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>Run &lt;1&gt;</title>"));
        assert!(html.contains("<h1>Run &lt;1&gt;</h1>"));
        assert!(
            html.contains("<td class=\"num\">1</td>"),
            "table inserted as is"
        );
        let charts = svgs(&html);
        assert_eq!(charts.len(), 6);
        // Latency charts: one 200-point curve per series, a legend entry for each.
        for svg in &charts[..4] {
            assert_eq!(data_lines(svg, CURVE_POINTS), 2, "{svg}");
            assert_eq!(coloured(svg, "rect"), 2, "{svg}");
            assert!(svg.contains("baseline") && svg.contains("a&lt;b"));
            assert!(!svg.contains("a<b"));
            assert!(svg.contains(">\n90%\n<") || svg.contains("90%"));
        }
        // TIME_WAIT: a series' namespace total on all 20 ticks, its per-side counts as marks
        // on the 10 ticks that had them; one legend entry per series.
        assert_eq!(data_lines(charts[4], 20), 2);
        assert_eq!(data_lines(charts[4], 2), 2);
        assert_eq!(coloured(charts[4], "circle"), 2 * 10);
        assert_eq!(coloured(charts[4], "polygon"), 2 * 10);
        assert_eq!(coloured(charts[4], "rect"), 2);
        assert!(charts[4].contains("baseline") && charts[4].contains("a&lt;b"));
        assert!(!charts[4].contains("client") && !charts[4].contains("server"));
        // Rate: 19 intervals, the last (partial) one left out.
        assert_eq!(data_lines(charts[5], 18), 2);
        assert_eq!(data_lines(charts[5], 19), 0);
        assert!(charts[5].contains("conn/s"));
        assert!(!html.contains("no data"));
        assert!(html.contains("a&lt;b"));
        assert!(!html.contains("a<b"));
    }

    #[test]
    fn one_series_has_no_legend() {
        let r = full_report();
        let html = one(&r);
        let charts = svgs(&html);
        assert_eq!(charts.len(), 6);
        for (i, svg) in charts.iter().enumerate() {
            assert!(data_lines(svg, 2) >= 1, "chart {i}");
            assert_eq!(coloured(svg, "rect"), 0, "chart {i} has a legend");
            assert!(
                !svg.contains(">run<") && !svg.contains("\nrun\n"),
                "chart {i}"
            );
        }
        // The caption says what the TIME_WAIT chart's line and marks are.
        assert!(
            html.contains("line: the network namespace&#39;s total")
                && html.contains("● client side, ▲ server side: this run&#39;s own sockets"),
            "{html}"
        );
    }

    #[test]
    fn time_wait_draws_the_total_on_time_and_the_exact_counts_as_marks() {
        let mut r = fixture::report();
        r.tcp_states.interval_ms = 100.0;
        r.tcp_states.exact_interval_ms = [100.0, 500.0];
        // The plateau is reached at 0.3 s; the exact counts see it at 0.5 s only.
        r.tcp_states.samples = (0..11)
            .map(|i| Sample {
                t_ms: i as f64 * 100.0,
                tw_total: Some((i * 400).min(1200)),
                client: (i % 5 == 0).then(|| tw(((i * 400).min(1200)) as u32)),
                server: None,
            })
            .collect();
        let html = one(&r);
        let svg = svgs(&html)[4];
        // The line has a point on every tick (11), at the ticks' values.
        assert_eq!(data_lines(svg, 11), 1);
        assert_eq!(data_lines(svg, 12), 0);
        // Three exact counts (0, 0.5, 1 s), as marks, none for the server's side.
        assert_eq!(coloured(svg, "circle"), 3);
        assert_eq!(coloured(svg, "polygon"), 0);
        // The total's line is flat from its third point on: the plateau is on time.
        let points: Vec<(f64, f64)> = svg
            .split("<polyline")
            .skip(1)
            .filter_map(|t| t.split("points=\"").nth(1)?.split('"').next())
            .find(|p| p.split_whitespace().count() == 11)
            .unwrap()
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert!(points[2].1 > points[3].1, "{points:?}");
        assert!(points[3..].iter().all(|p| p.1 == points[3].1), "{points:?}");
        assert!(html.contains("every 100 ms") && html.contains("100–500 ms apart"));
        assert!(html.contains("● client side:") && !html.contains("▲"));
    }

    #[test]
    fn latency_charts_share_one_axis_kind() {
        let mut r = fixture::report();
        // Connect spans 1000×, the other phases less than 100×: every chart is log.
        let mut h = crate::stats::new_histogram();
        h.record(1_000).unwrap();
        h.record(1_000_000).unwrap();
        r.latency.connect = PhaseStats::from_histogram(&h);
        let html = one(&r);
        for phase in ["Connect", "Echo", "Close", "Total"] {
            assert!(
                html.contains(&format!("{phase} latency by percentile (µs, log scale)")),
                "{phase}"
            );
        }
        // None spans 100×: every chart is linear.
        let html = one(&fixture::report());
        assert_eq!(html.matches("log scale").count(), 0);
        assert_eq!(html.matches(" latency by percentile (µs)").count(), 4);
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
}
