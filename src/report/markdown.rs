//! A run report as Markdown: for a CI job summary, a pull request, a wiki page.

use std::fmt::Write;

use super::Report;
use super::table::{Table, number};
use crate::stats::Metric;

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### tcpbench run\n");
    let _ = writeln!(out, "`{}`\n", super::text::config_line(r));
    let t = &r.totals;
    let _ = writeln!(
        out,
        "**{} attempted, {} succeeded, {} failed** in {:.3} s: **{} conn/s**{}\n",
        t.attempted,
        t.succeeded,
        t.failed,
        r.duration_s,
        number(r.rate_cps),
        if r.interrupted {
            " (interrupted: partial figures)"
        } else {
            ""
        }
    );
    if let Some(why) = &r.aborted {
        let _ = writeln!(out, "**Aborted:** {why}\n");
    }
    let mut lat = Table::new([
        "latency (µs)",
        "count",
        "min",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "mean",
    ]);
    for m in Metric::ALL {
        let s = r.latency.get(m);
        if matches!(m, Metric::Failed | Metric::HandshakeRtt) && s.count == 0 {
            continue;
        }
        lat.row(
            [r.label(m).to_string(), s.count.to_string()]
                .into_iter()
                .chain(
                    [
                        s.min_us, s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us, s.mean_us,
                    ]
                    .map(number),
                ),
        );
    }
    out.push_str(&lat.to_markdown());
    out.push('\n');
    if r.errors.is_empty() {
        out.push_str("No errors.\n\n");
    } else {
        let mut e = Table::new(["count", "kind", "phase", "errno"]);
        e.label_columns = 0;
        for x in &r.errors {
            e.row([
                x.count.to_string(),
                x.kind_label(),
                r.phase_label(x.phase),
                x.errno.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&e.to_markdown());
        out.push('\n');
    }
    if let Some(line) = super::text::closes_line(r) {
        let _ = writeln!(out, "{line}\n");
    }
    let tw = &r.time_wait;
    let _ = writeln!(
        out,
        "TIME_WAIT peak: client {}, server {}{}\n",
        tw.peak_client,
        tw.peak_server,
        if r.saturated {
            " (**saturated**: tcp_max_tw_buckets reached)"
        } else {
            ""
        }
    );
    let moved = r.moved_counters();
    if !moved.is_empty() {
        let _ = writeln!(out, "Kernel counters: {}\n", moved.join(", "));
    }
    for w in &r.warnings {
        let _ = writeln!(out, "- ⚠️ {w}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn markdown_has_totals_latency_and_errors() {
        let md = render(&fixture::report());
        assert!(
            md.contains("**4 attempted, 3 succeeded, 1 failed**"),
            "{md}"
        );
        assert!(md.contains("| connect | 3 | 20 | 30 | 40 |"), "{md}");
        assert!(md.contains("| failed | 1 |"), "{md}");
        assert!(
            md.contains("| 1 | refused | connect | ECONNREFUSED |"),
            "{md}"
        );
    }
}
