//! matrix's renderers: figures as rows, scenarios as columns, in text, Markdown, JSON and HTML.

use std::collections::BTreeMap;

use super::Matrix;
use crate::report::figures;
use crate::report::table::{Table, number};

/// The figures the matrix table shows first, in order; counters that moved follow.
const ROWS: [&str; 13] = [
    "rate_cps",
    "connect.p50",
    "connect.p99",
    "echo.p50",
    "echo.p99",
    "close.p50",
    "close.p99",
    "total.p50",
    "total.p99",
    "errors",
    "time_wait.peak_client",
    "time_wait.peak_server",
    "cpu.us_per_conn",
];

/// Figures as rows, scenarios as columns.
pub fn table(m: &Matrix) -> Table {
    let figs: Vec<BTreeMap<String, f64>> = m
        .scenarios
        .iter()
        .map(|s| figures::of(&s.report).into_iter().collect())
        .collect();
    let mut names: Vec<String> = ROWS.iter().map(|s| s.to_string()).collect();
    let mut counters: Vec<&String> = figs
        .iter()
        .flat_map(|f| f.keys())
        .filter(|k| k.starts_with("counters."))
        .collect();
    counters.sort();
    counters.dedup();
    names.extend(counters.into_iter().cloned());
    let mut t = Table::new(
        std::iter::once("figure".to_string()).chain(m.scenarios.iter().map(|s| s.name.clone())),
    );
    for n in names {
        let label = match n.as_str() {
            "rate_cps" => "rate (conn/s)".to_string(),
            "errors" => "failed".to_string(),
            "cpu.us_per_conn" => "cpu µs/conn".to_string(),
            n if figures::better(n) == figures::Better::Lower => format!("{n} (µs)"),
            n => n.to_string(),
        };
        // A counter that did not move is 0; a phase without samples has no figure.
        let missing = if n.starts_with("counters.") { "0" } else { "-" };
        t.row(std::iter::once(label).chain(figs.iter().map(|f| {
            f.get(&n)
                .map(|v| number(*v))
                .unwrap_or_else(|| missing.into())
        })));
    }
    t
}

/// The scenarios' flags, one line each.
fn legend(m: &Matrix) -> Vec<String> {
    m.scenarios
        .iter()
        .map(|s| format!("{}: tcpbench run {}", s.name, s.args.join(" ")))
        .collect()
}

/// Every scenario's warnings (preflight's among them), each once, with the scenarios that
/// gave it, in the order they first appear.
fn warnings(m: &Matrix) -> Vec<(Vec<&str>, &str)> {
    let mut out: Vec<(Vec<&str>, &str)> = Vec::new();
    for s in &m.scenarios {
        for w in &s.report.warnings {
            match out.iter_mut().find(|(_, seen)| *seen == w.as_str()) {
                Some((names, _)) => names.push(&s.name),
                None => out.push((vec![&s.name], w)),
            }
        }
    }
    out
}

pub fn render_text(m: &Matrix) -> String {
    let mut out = format!("tcpbench matrix {}\n", m.file);
    for l in legend(m) {
        out.push_str(&format!("  {l}\n"));
    }
    out.push('\n');
    out.push_str(&table(m).to_text());
    for (names, w) in warnings(m) {
        out.push_str(&format!("warning ({}): {w}\n", names.join(", ")));
    }
    out
}

pub fn render_markdown(m: &Matrix) -> String {
    let mut out = format!("### tcpbench matrix `{}`\n\n", m.file);
    for l in legend(m) {
        out.push_str(&format!("- `{l}`\n"));
    }
    out.push('\n');
    out.push_str(&table(m).to_markdown());
    let warnings = warnings(m);
    if !warnings.is_empty() {
        out.push('\n');
    }
    for (names, w) in warnings {
        out.push_str(&format!("- ⚠️ ({}) {w}\n", names.join(", ")));
    }
    out
}

pub fn render_json(m: &Matrix) -> String {
    serde_json::to_string_pretty(m).expect("a matrix serializes")
}

pub fn render_html_table(m: &Matrix) -> String {
    use crate::report::table::escape;
    let mut out = String::from("<ul>\n");
    for l in legend(m) {
        out.push_str(&format!("<li><code>{}</code></li>\n", escape(&l)));
    }
    out.push_str("</ul>\n");
    out.push_str(&table(m).to_html());
    let warnings = warnings(m);
    if !warnings.is_empty() {
        out.push_str("<ul class=\"warnings\">\n");
        for (names, w) in warnings {
            out.push_str(&format!(
                "<li>warning ({}): {}</li>\n",
                escape(&names.join(", ")),
                escape(w)
            ));
        }
        out.push_str("</ul>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{Outcome, SCHEMA};

    #[test]
    fn the_table_has_a_column_per_scenario() {
        let r = crate::report::fixture::report();
        let m = Matrix {
            schema: SCHEMA.into(),
            file: "s.toml".into(),
            scenarios: vec![
                Outcome {
                    name: "a".into(),
                    args: vec![],
                    report: r.clone(),
                },
                Outcome {
                    name: "b".into(),
                    args: vec!["--close".into(), "rst".into()],
                    report: r,
                },
            ],
        };
        let t = table(&m);
        assert_eq!(t.headers, ["figure", "a", "b"]);
        assert_eq!(t.rows[0][0], "rate (conn/s)");
        let text = render_text(&m);
        assert!(text.contains("b: tcpbench run --close rst"), "{text}");
        assert!(render_markdown(&m).contains("| figure | a | b |"));
        assert!(!text.contains("warning"), "{text}");
    }

    #[test]
    fn every_form_carries_every_warning() {
        let r = crate::report::fixture::report();
        let with = |warnings: &[&str]| {
            let mut r = r.clone();
            r.warnings = warnings.iter().map(|w| w.to_string()).collect();
            r
        };
        let outcome = |name: &str, report| Outcome {
            name: name.into(),
            args: vec![],
            report,
        };
        let m = Matrix {
            schema: SCHEMA.into(),
            file: "s.toml".into(),
            scenarios: vec![
                outcome("a", with(&["preflight: <few> ports"])),
                outcome("b", with(&["preflight: <few> ports", "only b's"])),
                outcome("c", with(&[])),
            ],
        };
        let text = render_text(&m);
        assert!(
            text.contains("warning (a, b): preflight: <few> ports\n")
                && text.contains("warning (b): only b's\n"),
            "{text}"
        );
        let md = render_markdown(&m);
        assert!(
            md.contains("- ⚠️ (a, b) preflight: <few> ports\n")
                && md.contains("- ⚠️ (b) only b's\n"),
            "{md}"
        );
        let html = render_html_table(&m);
        assert!(
            html.contains("<li>warning (a, b): preflight: &lt;few&gt; ports</li>")
                && html.contains("<li>warning (b): only b&#39;s</li>"),
            "{html}"
        );
    }
}
