//! compare's renderers: the figures and thresholds tables, and the text, Markdown, JSON and
//! HTML forms of a [`Comparison`].

use super::threshold::change_pct;
use super::{Comparison, Verdict};
use crate::report::figures;
use crate::report::table::{Table, number};

/// The figures table: figure, baseline, candidate, delta, ratio, verdict; with runs on
/// both sides, the change with its confidence interval and p-value before the verdict.
pub fn table(c: &Comparison) -> Table {
    let intervals = c.rows.iter().any(|r| r.interval.is_some());
    let mut headers = vec!["figure", "baseline", "candidate", "delta", "ratio"];
    if intervals {
        headers.push("change [95% interval], p");
    }
    headers.push("verdict");
    let mut t = Table::new(headers);
    for r in &c.rows {
        let mut cells = vec![
            r.figure.clone(),
            number(r.baseline),
            number(r.candidate),
            format!(
                "{}{}",
                if r.delta > 0.0 { "+" } else { "" },
                number(r.delta)
            ),
            r.ratio
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_else(|| "-".into()),
        ];
        if intervals {
            cells.push(r.interval.map_or_else(|| "-".into(), |i| i.to_string()));
        }
        cells.push(r.verdict.as_str().to_string());
        t.row(cells);
    }
    t
}

/// The thresholds table.
pub fn threshold_table(c: &Comparison) -> Table {
    let mut t = Table::new(["threshold", "baseline", "candidate", "change", "outcome"]);
    for x in &c.thresholds {
        let pct = change_pct(x.baseline, x.candidate);
        t.row([
            x.threshold.clone(),
            number(x.baseline),
            number(x.candidate),
            match &x.interval {
                Some(i) => i.to_string(),
                None if pct.is_finite() => format!("{pct:+.1}%"),
                None => "-".into(),
            },
            match x.outcome {
                "fails" => "FAILS".to_string(),
                "noise" if x.interval.is_some() => "holds (the interval reaches it)".to_string(),
                "noise" => "holds (within the runs' spread)".to_string(),
                o => o.to_string(),
            },
        ]);
    }
    t
}

fn headline(c: &Comparison) -> String {
    let runs = |n: usize| {
        if n == 1 {
            "1 run".to_string()
        } else {
            format!("median of {n} runs")
        }
    };
    format!(
        "baseline {} ({}) vs candidate {} ({})",
        c.baseline,
        runs(c.runs[0]),
        c.candidate,
        runs(c.runs[1])
    )
}

fn verdict_line(c: &Comparison) -> String {
    let failed: Vec<&str> = c.failed().map(|x| x.threshold.as_str()).collect();
    if failed.is_empty() {
        format!("PASS: all {} thresholds hold", c.thresholds.len())
    } else {
        format!("FAIL: {}", failed.join(", "))
    }
}

/// The machines warning and the normalisation note, one line each, before anything else.
fn machine_lines(c: &Comparison) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(m) = &c.machines {
        lines.push(format!("WARNING: {m}"));
    }
    if let Some(r) = c.normalized_by {
        lines.push(format!(
            "normalized: the candidate's rates divided and latencies multiplied by the calibration ratio {r:.3}"
        ));
    }
    lines
}

pub fn render_text(c: &Comparison) -> String {
    let mut out = String::new();
    for l in machine_lines(c) {
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str(&format!("{}\n", headline(c)));
    if !c.config_changes.is_empty() {
        out.push_str(&format!(
            "config changes: {}\n",
            c.config_changes.join(", ")
        ));
    }
    out.push('\n');
    out.push_str(&table(c).to_text());
    out.push('\n');
    out.push_str(&threshold_table(c).to_text());
    out.push_str(&verdict_line(c));
    out.push('\n');
    out
}

pub fn render_markdown(c: &Comparison) -> String {
    let mut out = String::new();
    for l in machine_lines(c) {
        out.push_str(&format!("> **{l}**\n\n"));
    }
    out.push_str(&format!("### tcpbench compare: {}\n\n", verdict_line(c)));
    out.push_str(&format!("{}\n\n", headline(c)));
    if !c.config_changes.is_empty() {
        out.push_str(&format!(
            "Config changes: `{}`\n\n",
            c.config_changes.join("`, `")
        ));
    }
    out.push_str(&threshold_table(c).to_markdown());
    out.push('\n');
    out.push_str(&table(c).to_markdown());
    out
}

pub fn render_json(c: &Comparison) -> String {
    serde_json::to_string_pretty(c).expect("a comparison serializes")
}

/// The HTML report's table part: the verdict (coloured), the headline, the config changes,
/// then both tables with FAILS and worse in red, better in green, and each figure's unit.
pub fn render_html_table(c: &Comparison) -> String {
    use crate::report::table::escape;
    let warnings: String = machine_lines(c)
        .iter()
        .map(|l| format!("<p class=\"error\"><strong>{}</strong></p>\n", escape(l)))
        .collect();
    let pass = c.failed().next().is_none();
    let mut out = format!(
        "{warnings}<p><strong class=\"{}\">{}</strong></p>\n<p>{}</p>\n",
        if pass { "pass" } else { "fail" },
        escape(&verdict_line(c)),
        escape(&headline(c))
    );
    if !c.config_changes.is_empty() {
        out.push_str("<p>config changes:</p>\n<ul>\n");
        for change in &c.config_changes {
            out.push_str(&format!("<li><code>{}</code></li>\n", escape(change)));
        }
        out.push_str("</ul>\n");
    }
    let outcome = threshold_table(c).headers.len() - 1;
    out.push_str(&threshold_table(c).to_html_with(|r, col| {
        (col == outcome && c.thresholds[r].outcome == "fails").then_some("fails")
    }));
    let mut figures = table(c);
    for (row, r) in figures.rows.iter_mut().zip(&c.rows) {
        let unit = figures::unit(&r.figure);
        if !unit.is_empty() {
            row[0] = format!("{} ({unit})", r.figure);
        }
    }
    let verdict = figures.headers.len() - 1;
    out.push('\n');
    out.push_str(&figures.to_html_with(|r, col| {
        (col == verdict)
            .then_some(match c.rows[r].verdict {
                Verdict::Worse => Some("worse"),
                Verdict::Better => Some("better"),
                _ => None,
            })
            .flatten()
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{compare, threshold};
    use crate::report::fixture;

    #[test]
    fn html_colours_verdicts_and_carries_units_and_config_changes() {
        let base = fixture::report();
        let mut cand = base.clone();
        cand.config.payload = 1000;
        cand.latency.echo.p50_us *= 2.0;
        cand.rate_cps *= 2.0;
        let t = vec![threshold::parse("echo.p50>+25%").unwrap()];
        let c = compare(("a.json", &base), ("b.json", &cand), &t, true).unwrap();
        let html = render_html_table(&c);
        assert!(
            html.contains("<strong class=\"fail\">FAIL: echo.p50&gt;+25%</strong>"),
            "{html}"
        );
        assert!(
            html.contains("<li><code>payload: 64 vs 1000</code></li>"),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"num fails\">FAILS</td>"),
            "{html}"
        );
        assert!(html.contains("<td>echo.p50 (µs)</td>"), "{html}");
        assert!(html.contains("<td>rate_cps (conn/s)</td>"), "{html}");
        // Twice the latency is worse, twice the rate better; an unchanged figure has no colour.
        let row = |figure: &str| {
            let start = html.find(&format!("<td>{figure} (")).unwrap();
            html[start..].split("</tr>").next().unwrap().to_string()
        };
        assert!(
            row("echo.p50").ends_with("<td class=\"num worse\">worse</td>"),
            "{html}"
        );
        assert!(
            row("rate_cps").ends_with("<td class=\"num better\">better</td>"),
            "{html}"
        );
        assert!(
            row("connect.p50").ends_with("<td class=\"num\">same</td>"),
            "{html}"
        );
        // What text and Markdown show, the page shows.
        assert!(render_text(&c).contains("payload: 64 vs 1000"));
        assert!(render_markdown(&c).contains("payload: 64 vs 1000"));

        let same = compare(("a.json", &base), ("b.json", &base), &t, false).unwrap();
        let html = render_html_table(&same);
        assert!(html.contains("<strong class=\"pass\">PASS"), "{html}");
        assert!(
            !html.contains("config changes") && !html.contains("FAILS"),
            "{html}"
        );
    }
}
