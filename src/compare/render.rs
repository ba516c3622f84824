//! compare's renderers: the figures and thresholds tables, and the text, Markdown, JSON and
//! HTML forms of a [`Comparison`].

use super::Comparison;
use super::threshold::change_pct;
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

/// The HTML report's table part.
pub fn render_html_table(c: &Comparison) -> String {
    use crate::report::table::escape;
    let warnings: String = machine_lines(c)
        .iter()
        .map(|l| format!("<p class=\"error\"><strong>{}</strong></p>\n", escape(l)))
        .collect();
    format!(
        "{warnings}<p><strong>{}</strong></p>\n<p>{}</p>\n{}\n{}",
        escape(&verdict_line(c)),
        escape(&headline(c)),
        threshold_table(c).to_html(),
        table(c).to_html()
    )
}
