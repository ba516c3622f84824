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
use axis::Kind;
use charts::{Chart, latency_chart, rate_chart, time_wait_chart};
use draw::draw;
/// One report in a chart: its label (scenario name, "baseline", "candidate", or "run") and the
/// report.
pub struct Series<'a> {
    pub label: &'a str,
    pub report: &'a Report,
}

/// Chart size in pixels.
pub(super) const WIDTH: u32 = 900;
pub(super) const HEIGHT: u32 = 360;
/// Points sampled along each latency curve.
pub(super) const CURVE_POINTS: usize = 200;
/// The nines axis goes no further than 99.999 %.
pub(super) const MAX_NINES: f64 = 5.0;
/// Font sizes as plotters takes them (the SVG gets size / 1.24).
pub(super) const LABEL_FONT: f64 = 15.0;
/// About the height of the plotting area, and of one legend line, to keep room for the legend.
pub(super) const PLOT_HEIGHT: f64 = 290.0;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::inspect::{charts as svgs, data_lines};
    use super::*;
    use crate::load::control::Tick;
    use crate::observe::sampler::Sample;
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
}
