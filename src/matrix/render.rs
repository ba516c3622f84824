//! matrix's renderers: figures as rows, scenarios as columns, in text, Markdown, JSON and HTML.

use std::collections::BTreeMap;

use super::{Matrix, Served};
use crate::report::figures;
use crate::report::table::{Table, number};

/// The figures the matrix table shows first, in order; counters that moved follow.
const ROWS: [&str; 15] = [
    "rate_cps",
    "connect.p50",
    "connect.p99",
    "handshake_rtt.p50",
    "handshake_rtt.p99",
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
    // A phase no scenario measured (handshake_rtt with --no-tcp-info) has no row.
    let mut names: Vec<String> = ROWS
        .iter()
        .filter(|n| figs.iter().any(|f| f.contains_key(**n)))
        .map(|s| s.to_string())
        .collect();
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

/// One scenario as the legend shows it: its flags, its server's lines, a failed server's
/// output tail.
struct Entry {
    line: String,
    server: Vec<String>,
    tail: Vec<String>,
}

/// The scenarios' flags, one entry each, the ones whose server did not start last.
fn legend(m: &Matrix) -> Vec<Entry> {
    let ran = m
        .scenarios
        .iter()
        .map(|s| entry(&s.name, &s.args, s.server.as_ref(), None));
    let failed = m
        .failed
        .iter()
        .map(|f| entry(&f.name, &f.args, Some(&f.server), Some(&f.error)));
    ran.chain(failed).collect()
}

fn entry(name: &str, args: &[String], server: Option<&Served>, error: Option<&str>) -> Entry {
    let line = match error {
        None => format!("{name}: tcpbench run {}", args.join(" ")),
        Some(_) => format!(
            "{name}: FAILED, did not run: tcpbench run {}",
            args.join(" ")
        ),
    };
    let mut lines = Vec::new();
    let mut tail = Vec::new();
    if let Some(s) = server {
        let command = crate::launch::shell_line(&s.command);
        match s.runs.as_slice() {
            [one] => lines.push(format!("server: {command}: {}", one.exit)),
            runs => {
                lines.push(format!("server: {command}"));
                for (i, r) in runs.iter().enumerate() {
                    lines.push(format!("run {}: {}", i + 1, r.exit));
                }
            }
        }
        if let Some(bad) = s.runs.iter().find(|r| r.failed) {
            if let Some(dir) = &bad.dir {
                lines.push(format!("its folder is kept: {dir}"));
            }
            tail = bad.tail.clone();
        }
        if s.runs.is_empty()
            && let Some(e) = error
        {
            lines.push(e.to_string());
        }
    }
    Entry {
        line,
        server: lines,
        tail,
    }
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
    for e in legend(m) {
        out.push_str(&format!("  {}\n", e.line));
        for l in &e.server {
            out.push_str(&format!("    {l}\n"));
        }
        for l in &e.tail {
            out.push_str(&format!("      | {l}\n"));
        }
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
    for e in legend(m) {
        out.push_str(&format!("- `{}`\n", e.line));
        for l in &e.server {
            out.push_str(&format!("  - `{l}`\n"));
        }
        if !e.tail.is_empty() {
            out.push_str(&format!("\n  ```\n  {}\n  ```\n", e.tail.join("\n  ")));
        }
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
    for e in legend(m) {
        out.push_str(&format!("<li><code>{}</code>", escape(&e.line)));
        if !e.server.is_empty() {
            out.push_str("<ul>");
            for l in &e.server {
                out.push_str(&format!("<li><code>{}</code></li>", escape(l)));
            }
            out.push_str("</ul>");
        }
        if !e.tail.is_empty() {
            out.push_str(&format!("<pre>{}</pre>", escape(&e.tail.join("\n"))));
        }
        out.push_str("</li>\n");
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
    use crate::launch::ServerRun;
    use crate::matrix::{Failed, Outcome, SCHEMA};

    fn server_run(exit: &str, failed: bool) -> ServerRun {
        ServerRun {
            command: vec!["nginx".into(), "-p".into(), "/tmp/x".into()],
            pid: 4321,
            addr: "127.0.0.1:40001".parse().unwrap(),
            exit: exit.into(),
            code: Some(if failed { 1 } else { 0 }),
            signal: None,
            failed,
            tail: if failed {
                vec!["nginx: [emerg] unknown directive \"lisen\"".into()]
            } else {
                vec![]
            },
            dir: failed.then(|| "/tmp/tcpbench-server-1-0".into()),
        }
    }

    fn matrix() -> Matrix {
        let r = crate::report::fixture::report();
        let served = |exit: &str, failed: bool| Served {
            command: vec!["nginx".into(), "-p".into(), "{dir}".into()],
            ready: "127.0.0.1:{port}".into(),
            runs: vec![server_run(exit, failed)],
        };
        Matrix {
            schema: SCHEMA.into(),
            file: "s.toml".into(),
            scenarios: vec![
                Outcome {
                    name: "a".into(),
                    args: vec![],
                    report: r.clone(),
                    server: None,
                },
                Outcome {
                    name: "b".into(),
                    args: vec!["--close".into(), "rst".into()],
                    report: r,
                    server: Some(served("stopped by SIGTERM (exit 0)", false)),
                },
            ],
            failed: vec![Failed {
                name: "c".into(),
                args: vec!["--target".into(), "127.0.0.1:{port}".into()],
                server: served(
                    "exited (exit 1) before it listened on 127.0.0.1:40001",
                    true,
                ),
                error: "server `nginx -p /tmp/x` exited (exit 1) before it listened".into(),
            }],
            interrupted: false,
        }
    }

    #[test]
    fn the_table_has_a_column_per_scenario_that_ran() {
        let m = matrix();
        let t = table(&m);
        assert_eq!(t.headers, ["figure", "a", "b"]);
        assert_eq!(t.rows[0][0], "rate (conn/s)");
        assert!(!t.rows.iter().any(|r| r[0].starts_with("handshake_rtt")));
        let mut m2 = matrix();
        m2.scenarios[1].report.latency.handshake_rtt =
            m2.scenarios[1].report.latency.connect.clone();
        let rows: Vec<String> = table(&m2).rows.iter().map(|r| r[0].clone()).collect();
        let at = |n: &str| rows.iter().position(|r| r == n).unwrap();
        assert_eq!(
            at("handshake_rtt.p50 (µs)"),
            at("connect.p99 (µs)") + 1,
            "{rows:?}"
        );
        assert_eq!(
            table(&m2).rows[at("handshake_rtt.p50 (µs)")][1],
            "-",
            "a measured nothing"
        );
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
            server: None,
        };
        let m = Matrix {
            schema: SCHEMA.into(),
            file: "s.toml".into(),
            scenarios: vec![
                outcome("a", with(&["preflight: <few> ports"])),
                outcome("b", with(&["preflight: <few> ports", "only b's"])),
                outcome("c", with(&[])),
            ],
            failed: vec![],
            interrupted: false,
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

    #[test]
    fn every_format_shows_the_server_its_exit_and_a_failed_ones_tail() {
        let m = matrix();
        let json = render_json(&m);
        let html = render_html_table(&m);
        for out in [
            render_text(&m),
            render_markdown(&m),
            json.clone(),
            html.clone(),
        ] {
            assert!(out.contains("stopped by SIGTERM (exit 0)"), "{out}");
            assert!(out.contains("exited (exit 1) before it listened"), "{out}");
            assert!(out.contains("unknown directive"), "{out}");
        }
        let text = render_text(&m);
        assert!(
            text.contains("    server: nginx -p {dir}: stopped by SIGTERM"),
            "{text}"
        );
        assert!(text.contains("c: FAILED, did not run"), "{text}");
        assert!(
            text.contains("its folder is kept: /tmp/tcpbench-server-1-0"),
            "{text}"
        );
        assert!(
            html.contains("<pre>nginx: [emerg] unknown directive &quot;lisen&quot;</pre>"),
            "{html}"
        );
        let back: Matrix = serde_json::from_str(&json).unwrap();
        assert_eq!(back.failed[0].server.runs[0].code, Some(1));
        assert_eq!(back.scenarios[1].server.as_ref().unwrap().runs[0].pid, 4321);
        assert_eq!(m.exit_code(), 1);
        let ok = Matrix {
            failed: vec![],
            ..matrix()
        };
        assert_eq!(
            ok.exit_code(),
            u8::from(ok.scenarios[0].report.totals.failed > 0)
        );
    }
}
