//! Which formats each result type has: one [`Export`] impl per result type, each arm one
//! call to the renderer that lives with the type (`report/`, `compare`, `matrix`, `trace`,
//! `rebind`).

use super::{Body, Export, Format};
use crate::compare::{self, Comparison};
use crate::matrix::{self, Matrix};
use crate::rebind::{self, Attempt};
use crate::report::{self, Report, html::Series};
use crate::trace::{self, Trace};

/// A run's (or a merge's) report and, with `run --trace`, one connection traced after it.
pub struct RunOutcome<'a> {
    /// The HTML page's title: `tcpbench run`, `tcpbench merge`.
    pub title: &'a str,
    pub report: &'a Report,
    pub traced: Option<&'a Trace>,
}

/// A comparison with the two reports it judged (the HTML page charts both).
pub struct Compared<'a> {
    /// The page's title: "tcpbench compare", "tcpbench ab".
    pub title: &'static str,
    pub comparison: &'a Comparison,
    pub baseline: &'a Report,
    pub candidate: &'a Report,
}

fn text(s: String) -> Option<Body> {
    Some(Body::Text(s))
}

/// JSON documents end with a newline, as text files do.
fn json(mut s: String) -> Option<Body> {
    s.push('\n');
    Some(Body::Text(s))
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).expect("results always serialize")
}

impl Export for RunOutcome<'_> {
    fn export(&self, format: Format) -> Option<Body> {
        let r = self.report;
        match format {
            Format::Text => text(match self.traced {
                Some(t) => format!(
                    "{}\n{}\n",
                    report::text::render_for(r, super::terminal_columns()),
                    trace::render_text(t)
                ),
                None => report::text::render_for(r, super::terminal_columns()),
            }),
            Format::Markdown => text(report::markdown::render(r)),
            Format::Json => json(report::json::render(r)),
            Format::Html => text(self.html()),
            Format::Hgrm => Some(Body::Files(report::hgrm::files(r))),
            Format::Hlog => report::hlog::render(r).map(Body::Text),
            Format::Svg => None,
        }
    }
}

impl RunOutcome<'_> {
    /// The page: the text summary, the traced connection's ladder when there is one, then
    /// the charts.
    fn html(&self) -> String {
        let summary = report::table::escape(&report::text::render(self.report));
        let ladder = self
            .traced
            .map(|t| {
                format!(
                    "<h2>One connection, traced</h2>\n<figure>{}</figure>\n",
                    trace::render_svg(t)
                )
            })
            .unwrap_or_default();
        let series = [Series {
            label: "run",
            report: self.report,
        }];
        report::html::render(
            self.title,
            &format!("<pre>{summary}</pre>\n{ladder}"),
            &series,
        )
    }
}

impl Export for Compared<'_> {
    fn export(&self, format: Format) -> Option<Body> {
        let c = self.comparison;
        match format {
            Format::Text => text(compare::render_text(c)),
            Format::Markdown => text(compare::render_markdown(c)),
            Format::Json => json(compare::render_json(c)),
            Format::Html => {
                let series = [
                    Series {
                        label: "baseline",
                        report: self.baseline,
                    },
                    Series {
                        label: "candidate",
                        report: self.candidate,
                    },
                ];
                let table = compare::render_html_table(c);
                text(report::html::render(self.title, &table, &series))
            }
            Format::Svg | Format::Hgrm | Format::Hlog => None,
        }
    }
}

/// An A/B: its JSON holds every run of both sides; the other formats are the comparison of
/// the sides' merged runs.
impl Export for crate::ab::Ab {
    fn export(&self, format: Format) -> Option<Body> {
        if format == Format::Json {
            return json(pretty(self));
        }
        let merged: Vec<Report> = self
            .sides
            .iter()
            .map(|s| Report::merge_runs(&s.runs))
            .collect();
        Compared {
            title: "tcpbench ab",
            comparison: &self.comparison,
            baseline: &merged[0],
            candidate: &merged[1],
        }
        .export(format)
    }
}

impl Export for Matrix {
    fn export(&self, format: Format) -> Option<Body> {
        match format {
            Format::Text => text(matrix::render_text(self)),
            Format::Markdown => text(matrix::render_markdown(self)),
            Format::Json => json(matrix::render_json(self)),
            Format::Html => {
                let series: Vec<Series> = self
                    .scenarios
                    .iter()
                    .map(|s| Series {
                        label: &s.name,
                        report: &s.report,
                    })
                    .collect();
                let title = format!("tcpbench matrix {}", self.file);
                let table = matrix::render_html_table(self);
                text(report::html::render(&title, &table, &series))
            }
            Format::Svg | Format::Hgrm | Format::Hlog => None,
        }
    }
}

/// `tcpbench trace`'s connections.
impl Export for Vec<Trace> {
    fn export(&self, format: Format) -> Option<Body> {
        match format {
            Format::Text => text(
                self.iter()
                    .map(|t| format!("{}\n", trace::render_text(t)))
                    .collect(),
            ),
            Format::Json => json(pretty(self)),
            // The first connection's ladder.
            Format::Svg => self.first().and_then(|t| text(trace::render_svg(t))),
            Format::Markdown | Format::Html | Format::Hgrm | Format::Hlog => None,
        }
    }
}

/// `tcpbench rebind`'s table.
impl Export for Vec<Attempt> {
    fn export(&self, format: Format) -> Option<Body> {
        match format {
            Format::Text => text(rebind::render(self)),
            Format::Json => json(pretty(self)),
            Format::Markdown | Format::Html | Format::Svg | Format::Hgrm | Format::Hlog => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn a_report_has_every_format_but_svg() {
        let r = fixture::report();
        let run = RunOutcome {
            title: "tcpbench run",
            report: &r,
            traced: None,
        };
        for f in [Format::Text, Format::Markdown, Format::Json, Format::Html] {
            assert!(
                matches!(run.export(f), Some(Body::Text(t)) if !t.is_empty()),
                "{f:?}"
            );
        }
        let Some(Body::Text(j)) = run.export(Format::Json) else {
            unreachable!()
        };
        let back = report::json::parse(&j, "exported").unwrap();
        assert_eq!(back.totals.attempted, r.totals.attempted);
        let Some(Body::Files(files)) = run.export(Format::Hgrm) else {
            panic!("hgrm is files")
        };
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "connect.hgrm",
                "handshake_rtt.hgrm",
                "echo.hgrm",
                "close.hgrm",
                "total.hgrm",
                "failed.hgrm"
            ]
        );
        assert!(run.export(Format::Svg).is_none());
    }

    #[test]
    fn rebind_has_text_and_json() {
        let table = vec![Attempt {
            addr: "[::1]:8888".parse().unwrap(),
            old_reuseaddr: true,
            new_reuseaddr: false,
            time_wait: 3,
            error: Some("EADDRINUSE".into()),
        }];
        let Some(Body::Text(t)) = table.export(Format::Text) else {
            unreachable!()
        };
        assert!(t.contains("EADDRINUSE"));
        let Some(Body::Text(j)) = table.export(Format::Json) else {
            unreachable!()
        };
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v[0]["time_wait"], 3);
        assert_eq!(v[0]["addr"], "[::1]:8888");
        assert!(t.contains("rebind on ::1 "), "{t}");
        assert!(table.export(Format::Html).is_none());
    }
}
