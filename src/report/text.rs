//! The terminal summary.

use std::fmt::Write;

use super::{PhaseStats, Report};
use crate::config::{LoadModel, Target};
use crate::stats::Metric;

/// Terminals narrower than this get the narrow latency table.
pub const WIDE_COLUMNS: usize = 100;

/// The summary in its wide layout (files, pipes, wide terminals).
pub fn render(r: &Report) -> String {
    render_for(r, None)
}

/// The summary for a terminal `columns` wide (`None`: not a terminal): under
/// [`WIDE_COLUMNS`] the latency tables drop min and mean and narrow their columns, and in a
/// terminal a line longer than its width is wrapped between words, indented under its start.
pub fn render_for(r: &Report, columns: Option<usize>) -> String {
    wrap_to(
        summary(r, columns.is_some_and(|c| c < WIDE_COLUMNS)),
        columns,
    )
}

/// `text` as it is for a file or pipe (`None`), wrapped for a terminal `columns` wide.
pub fn wrap_to(text: String, columns: Option<usize>) -> String {
    match columns {
        Some(c) => wrap(&text, c),
        None => text,
    }
}

/// Each line of `text` broken between words to at most `columns` characters; a continuation
/// is indented two past its line's own indent. A word longer than the room is cut.
fn wrap(text: &str, columns: usize) -> String {
    let columns = columns.max(20);
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    for line in text.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let mut rest = line;
        let mut first = true;
        loop {
            let lead = if first {
                0
            } else {
                (indent + 2).min(columns / 2)
            };
            let room = columns - lead;
            out.extend(std::iter::repeat_n(' ', lead));
            let body = if first { rest } else { rest.trim_start() };
            if body.chars().count() <= room {
                out.push_str(body);
                out.push('\n');
                break;
            }
            let cut = body.char_indices().nth(room).map_or(body.len(), |(i, _)| i);
            let at = body[..cut]
                .rfind(' ')
                .filter(|&i| !body[..i].trim_start().is_empty())
                .unwrap_or(cut);
            out.push_str(body[..at].trim_end());
            out.push('\n');
            rest = &body[at..];
            first = false;
        }
    }
    out
}

/// The summary's lines, unwrapped.
fn summary(r: &Report, narrow: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", config_line(r));
    let t = &r.totals;
    let _ = writeln!(
        out,
        "{} attempted, {} succeeded, {} failed in {:.3} s: {:.0} conn/s; {} B sent, {} B received{}{}",
        t.attempted,
        t.succeeded,
        t.failed,
        r.duration_s,
        r.rate_cps,
        t.bytes_sent,
        t.bytes_received,
        if t.farewell_bytes > 0 {
            format!(" ({} B farewell after our FIN)", t.farewell_bytes)
        } else {
            String::new()
        },
        if r.interrupted {
            " (INTERRUPTED: partial figures)"
        } else {
            ""
        },
    );
    if let Some(rep) = &r.repeats {
        let _ = writeln!(out, "{}", repeats_line(rep));
    }
    if !r.agents.is_empty() {
        let each: Vec<String> = r
            .agents
            .iter()
            .map(|a| {
                format!(
                    "{} ({} succeeded, {:.0} conn/s, from {})",
                    a.id, a.totals.succeeded, a.rate_cps, a.started_at
                )
            })
            .collect();
        let n = r.agents.len();
        let _ = writeln!(
            out,
            "merged from {n} agent{}: {}",
            if n == 1 { "" } else { "s" },
            each.join("; ")
        );
    }
    out.push('\n');
    let rows: Vec<(&str, &PhaseStats)> = Metric::ALL
        .iter()
        // Failed attempts and the kernel's RTT get a row only when there were some.
        .filter(|&&m| {
            !matches!(m, Metric::Failed | Metric::HandshakeRtt) || r.latency.get(m).count > 0
        })
        .map(|&m| (r.label(m), r.latency.get(m)))
        .collect();
    table(&mut out, "latency (µs)", &rows, narrow);
    if let Some(note) = handshake_note(r) {
        let _ = writeln!(out, "{note}");
    }
    if let Some(s) = &r.latency_from_schedule {
        out.push('\n');
        let mut rows = vec![("connect", &s.connect), ("total", &s.total)];
        if let Some(lag) = &r.latency.start_lag {
            rows.insert(0, ("start_lag", lag));
        }
        table(&mut out, "from scheduled start (µs)", &rows, narrow);
        let _ = writeln!(out, "{}", queueing_note(r, s.queued));
    }
    out.push('\n');
    if r.errors.is_empty() {
        let _ = writeln!(out, "errors: none");
    } else {
        let _ = writeln!(out, "errors:");
        for e in &r.errors {
            let errno = e
                .errno
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:>8}  {:<22} at {}{}",
                e.count,
                e.kind_label(),
                r.phase_label(e.phase),
                errno
            );
        }
    }
    if let Some(line) = closes_line(r) {
        let _ = writeln!(out, "{line}");
    }
    let moved = r.moved_counters();
    if !moved.is_empty() {
        let scope = match r.agents.len() {
            0 => "namespace".to_string(),
            n => format!("summed over {n} agents' namespaces"),
        };
        let _ = writeln!(out, "kernel counters ({scope}): {}", moved.join(", "));
    }
    let tw = &r.time_wait;
    let st = &r.tcp_states;
    let server_tw = if st.server_observed {
        format!("server peak {} (end {})", tw.peak_server, tw.end_server)
    } else {
        "server not observable (not on this host)".into()
    };
    let mut drained = tw
        .drain_s
        .map(|d| format!(", drained {d:.1} s after the load"))
        .unwrap_or_default();
    if r.saturated {
        drained.push_str(", SATURATED (tcp_max_tw_buckets reached)");
    }
    let _ = writeln!(
        out,
        "TIME_WAIT: client peak {} (end {}), {server_tw}{drained}; {} samples via {} (exact every {:.0}-{:.0} ms, sampler {:.1} ms CPU = {:.1}% of a core)",
        tw.peak_client,
        tw.end_client,
        st.samples.len(),
        match st.source {
            Some(crate::observe::sockdiag::Source::SockDiag) => "sock_diag",
            Some(crate::observe::sockdiag::Source::Procfs) => "/proc/net/tcp (no netlink)",
            None => "nothing",
        },
        st.exact_interval_ms[0],
        st.exact_interval_ms[1],
        st.sampler_cpu_ms,
        st.sampler_cpu_pct,
    );
    let c = &r.cpu;
    let _ = writeln!(
        out,
        "cpu: tcpbench {:.2} s user + {:.2} s system = {:.1} µs/conn; machine {:.0}% busy ({:.0}% softirq)",
        c.user_s, c.sys_s, c.us_per_conn, c.system_busy_pct, c.system_softirq_pct
    );
    if let Some(s) = &r.server {
        let answers = match s.answers {
            0 => String::new(),
            n => format!(", {n} answers"),
        };
        let wait = s
            .accept_wait
            .as_ref()
            .map(|w| {
                format!(
                    "; accept wait p50 {} µs, p99 {} µs, max {} µs ({} sampled, kernel's ESTABLISHED to accept())",
                    us(w.p50_us),
                    us(w.p99_us),
                    us(w.max_us),
                    w.count
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "server: {} accepted{answers}, {} B in, {} B out, {} resets{wait}",
            s.accepted, s.bytes_in, s.bytes_out, s.resets
        );
    }
    if let Some(why) = &r.aborted {
        let _ = writeln!(out, "ABORTED: {why}");
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// Whether the open loop queued: connections that waited for a free worker.
fn queueing_note(r: &Report, queued: u64) -> String {
    let started = r.latency.start_lag.as_ref().map_or(0, |l| l.count);
    if queued == 0 {
        return "  start_lag: no connection waited for a free worker; the lag is the pacer's wake-up and the machine's".into();
    }
    format!(
        "  start_lag: {queued} of {started} connections waited for a free worker (all {} in flight): queueing, which the figures from the scheduled start exist to show",
        r.config.load.concurrency()
    )
}

/// What lies between `connect` and the kernel's `handshake_rtt`, under the table.
fn handshake_note(r: &Report) -> Option<String> {
    let (c, k) = (&r.latency.connect, &r.latency.handshake_rtt);
    if k.count == 0 {
        return None;
    }
    let inside = if r.target_addr.ip().is_loopback() {
        "; on loopback the server's half of the handshake runs inside connect(), in softirq"
    } else {
        ""
    };
    let retransmitted = match r.totals.syn_retransmitted {
        0 => String::new(),
        n => format!("; {n} connections had their SYN retransmitted"),
    };
    let fast_open = r
        .kernel
        .counters
        .get("TCPFastOpenActive")
        .copied()
        .unwrap_or(0);
    if fast_open > 0 {
        return Some(format!(
            "  handshake_rtt under Fast Open: {fast_open} connections sent their request in the SYN, so connect() returned before it left and their handshake ran inside the first exchange (its sample read after it){retransmitted}"
        ));
    }
    Some(format!(
        "  connect - handshake_rtt = {} µs at p50: the syscalls' own work beside the SYN's round trip (local port, the SYN built and sent){inside}{retransmitted}",
        us(c.p50_us - k.p50_us)
    ))
}

/// How the established connections ended, as observed; `None` when none was.
pub(crate) fn closes_line(r: &Report) -> Option<String> {
    let c = &r.totals.closes;
    (c.total() > 0).then(|| {
        format!(
            "closes (observed): {} client first, {} server first, {} RST sent, {} RST received",
            c.client_first, c.server_first, c.rst_sent, c.rst_received
        )
    })
}

/// What each request is: the echo's size, or the protocol's request.
fn requests_phrase(c: &crate::config::RunConfig) -> String {
    use crate::config::{ProtocolConfig, RawEndConfig};
    let n = format!(
        "{} request{}",
        c.requests,
        if c.requests == 1 { "" } else { "s" }
    );
    match &c.protocol {
        ProtocolConfig::Echo => format!("{} B x {n}", c.payload),
        ProtocolConfig::Http(h) => format!("http GET {} x {n}", h.path),
        ProtocolConfig::Resp(x) => {
            let command = x.command.as_deref().unwrap_or("PING");
            format!("resp {command:?} x {n}")
        }
        ProtocolConfig::Raw(x) => {
            let end = match &x.end {
                RawEndConfig::Bytes(b) => format!("{b} B back"),
                RawEndConfig::Prefix(p) => format!("a {}-byte prefix back", p.len()),
                RawEndConfig::Close => "read to the close".into(),
            };
            format!("raw {} B, {end}, x {n}", x.send.len())
        }
    }
}

/// The spread of `--repeat` runs: median (min–max) of the headline figures.
fn repeats_line(rep: &super::figures::Repeats) -> String {
    let fig = |name: &str, unit: &str| {
        let (Some(med), Some(lo), Some(hi)) =
            (rep.median.get(name), rep.min.get(name), rep.max.get(name))
        else {
            return None;
        };
        Some(format!(
            "{name} {} ({}–{}){unit}",
            us(*med),
            us(*lo),
            us(*hi)
        ))
    };
    let parts: Vec<String> = [
        fig("rate_cps", " conn/s"),
        fig("connect.p50", " µs"),
        fig("connect.p99", " µs"),
        fig("total.p50", " µs"),
        fig("total.p99", " µs"),
    ]
    .into_iter()
    .flatten()
    .collect();
    format!(
        "{} runs merged; per run, median (min–max): {}",
        rep.runs.len(),
        parts.join("; ")
    )
}

pub(crate) fn config_line(r: &Report) -> String {
    header(&r.version, &r.config, r.target_addr)
}

/// What a run of this build will do, in one line: printed on stderr when it starts, and atop
/// its summary.
pub fn config_header(c: &crate::config::RunConfig, target_addr: std::net::SocketAddr) -> String {
    header(env!("CARGO_PKG_VERSION"), c, target_addr)
}

fn header(
    version: &str,
    c: &crate::config::RunConfig,
    target_addr: std::net::SocketAddr,
) -> String {
    let load = match c.load {
        LoadModel::Closed { concurrency } => format!("closed loop, concurrency {concurrency}"),
        LoadModel::Open { rate, concurrency } => {
            format!("open loop at {rate} conn/s, up to {concurrency} in flight")
        }
    };
    let bound = match (c.bounds.conns, c.bounds.duration) {
        (Some(n), None) => format!("{n} conns"),
        (None, Some(d)) => humantime::format_duration(d).to_string(),
        (Some(n), Some(d)) => format!("{n} conns or {}", humantime::format_duration(d)),
        (None, None) => "unbounded".into(),
    };
    let server = match &c.target {
        Target::Embedded(s) => {
            let delay = |what: &str, d: Option<std::time::Duration>| {
                d.map(|d| format!(", {what} delay {}", humantime::format_duration(d)))
                    .unwrap_or_default()
            };
            let what = match s.protocol {
                crate::config::ServerProtocol::Echo => String::new(),
                p => format!(" {p}"),
            };
            format!(
                "embedded{what} server {} (close {}, backlog {}, {} worker{}{}{})",
                target_addr,
                s.close,
                s.backlog,
                s.workers,
                if s.workers == 1 { "" } else { "s" },
                delay("accept", s.accept_delay),
                delay("echo", s.echo_delay),
            )
        }
        Target::External(_) => format!("target {target_addr}"),
    };
    format!(
        "tcpbench {}: {bound}, {load}, {} thread{}{}, {}, close {} -> {server}",
        version,
        c.threads,
        if c.threads == 1 { "" } else { "s" },
        if c.pin { " (pinned)" } else { "" },
        requests_phrase(c),
        c.socket.close,
    )
}

/// A latency table: a row per phase, a column per percentile. A phase with no samples shows
/// `-`, never a figure that was not measured. Narrow: 69 columns (names up to 14 characters: `handshake_rtt` whole), without min and mean.
fn table(out: &mut String, title: &str, rows: &[(&str, &PhaseStats)], narrow: bool) {
    let (name_w, w) = if narrow { (14, 8) } else { (24, 9) };
    let headers: &[&str] = if narrow {
        &["count", "p50", "p90", "p99", "p99.9", "max"]
    } else {
        &["count", "min", "p50", "p90", "p99", "p99.9", "max", "mean"]
    };
    let _ = write!(out, "{:<width$}", title, width = name_w + 2);
    for h in headers {
        let _ = write!(out, "{h:>w$} ");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    for (name, s) in rows {
        let values: Vec<String> = if narrow {
            vec![s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us]
        } else {
            vec![
                s.min_us, s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us, s.mean_us,
            ]
        }
        .into_iter()
        .map(|v| if s.count == 0 { "-".into() } else { us(v) })
        .collect();
        let name: String = name.chars().take(name_w).collect();
        let _ = write!(out, "  {name:<name_w$}{:>w$}", s.count);
        for v in values {
            let _ = write!(out, " {v:>w$}");
        }
        out.push('\n');
    }
}

/// Microseconds with one decimal below 10 ms, whole above.
fn us(v: f64) -> String {
    if v < 10_000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn a_narrow_terminal_gets_a_table_that_fits_and_unmeasured_phases_show_dashes() {
        let mut r = fixture::report();
        r.latency.echo = PhaseStats::default();
        r.latency.handshake_rtt = r.latency.connect.clone();
        let wide = render(&r);
        let narrow = render_for(&r, Some(80));
        let widest = |t: &str, from: &str| {
            t.lines()
                .skip_while(|l| !l.starts_with(from))
                .take_while(|l| !l.is_empty())
                .map(|l| l.chars().count())
                .max()
                .unwrap()
        };
        assert!(widest(&narrow, "latency") <= 80, "{narrow}");
        let longest = |t: &str| t.lines().map(|l| l.chars().count()).max().unwrap();
        assert!(longest(&narrow) <= 80, "every line fits: {narrow}");
        assert!(widest(&wide, "latency") > 100, "{wide}");
        let at_120 = render_for(&r, Some(120));
        assert!(
            at_120.contains("min") && at_120.contains("mean"),
            "{at_120}"
        );
        assert!(longest(&at_120) <= 120, "{at_120}");
        assert!(longest(&wide) > 120, "the unwrapped lines are long: {wide}");
        assert_eq!(
            at_120.split_whitespace().collect::<Vec<_>>(),
            wide.split_whitespace().collect::<Vec<_>>(),
            "wrapping only moves words"
        );
        let echo = narrow
            .lines()
            .find(|l| l.trim_start().starts_with("echo"))
            .unwrap();
        assert!(echo.ends_with("-") && !echo.contains("0.0"), "{echo}");
        assert!(narrow.contains("p99.9") && !narrow.contains("mean"));
        assert!(
            narrow.contains("\n  handshake_rtt "),
            "the longest name whole: {narrow}"
        );
    }

    #[test]
    fn summary_has_totals_table_and_errors() {
        let text = render(&fixture::report());
        assert!(
            text.contains("4 attempted, 3 succeeded, 1 failed"),
            "{text}"
        );
        assert!(text.contains("6 conn/s"), "{text}");
        let connect = text
            .lines()
            .find(|l| l.trim_start().starts_with("connect"))
            .unwrap();
        let cols: Vec<&str> = connect.split_whitespace().collect();
        assert_eq!(cols[1], "3");
        assert_eq!(cols[2], "20.0", "min of 20, 30, 40 µs");
        assert!(
            text.contains("refused") && text.contains("ECONNREFUSED"),
            "{text}"
        );
        assert!(text.contains("close client -> embedded server"), "{text}");
        assert!(!text.contains("farewell"), "none came: {text}");
    }

    #[test]
    fn handshake_rtt_sits_under_connect_with_the_difference() {
        let mut r = fixture::report();
        let text = render(&r);
        assert!(!text.contains("handshake_rtt"), "none measured: {text}");
        let mut h = crate::stats::new_histogram();
        for us in [4u64, 5, 6] {
            h.record(us * 1000).unwrap();
        }
        r.latency.handshake_rtt = crate::report::PhaseStats::from_histogram(&h);
        r.totals.syn_retransmitted = 2;
        let text = render(&r);
        let lines: Vec<&str> = text.lines().collect();
        let at = |name: &str| {
            lines
                .iter()
                .position(|l| l.trim_start().starts_with(name))
                .unwrap()
        };
        assert_eq!(at("handshake_rtt"), at("connect") + 1, "{text}");
        // connect p50 30 µs, handshake_rtt p50 5 µs.
        assert!(
            lines[at("connect - handshake_rtt")].contains("= 25.0 µs at p50"),
            "{text}"
        );
        assert!(
            text.contains("on loopback")
                && text.contains("2 connections had their SYN retransmitted"),
            "{text}"
        );
        // Under Fast Open connect() ends before the SYN leaves: no difference is claimed.
        r.kernel.counters.insert("TCPFastOpenActive".into(), 3);
        let text = render(&r);
        assert!(!text.contains("connect - handshake_rtt"), "{text}");
        assert!(
            text.contains("3 connections sent their request in the SYN"),
            "{text}"
        );
    }

    #[test]
    fn another_protocol_labels_the_echo_phase_exchange_and_shows_closes_and_statuses() {
        let mut r = fixture::report();
        assert!(!render(&r).contains("closes"), "none observed");
        r.config.protocol =
            crate::config::ProtocolConfig::Resp(crate::config::RespConfig { command: None });
        r.totals.closes.server_first = 2;
        r.totals.closes.rst_received = 1;
        r.errors[0].kind = crate::failure::ErrorKind::HttpStatus;
        r.errors[0].phase = crate::failure::Phase::Echo;
        r.errors[0].status = Some(404);
        let text = render(&r);
        let labels: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next())
            .collect();
        assert!(
            labels.contains(&"exchange") && !labels.contains(&"echo"),
            "{text}"
        );
        assert!(text.contains("resp \"PING\" x 1 request"), "{text}");
        assert!(text.contains("http_status 404"), "{text}");
        assert!(text.contains("at exchange"), "{text}");
        assert!(
            text.contains(
                "closes (observed): 0 client first, 2 server first, 0 RST sent, 1 RST received"
            ),
            "{text}"
        );
        let md = crate::report::markdown::render(&r);
        assert!(md.contains("| exchange | 3 |"), "{md}");
        assert!(md.contains("| http_status 404 | exchange |"), "{md}");
    }

    #[test]
    fn farewell_bytes_are_shown_when_some_came() {
        let mut r = fixture::report();
        r.totals.farewell_bytes = 9;
        let text = render(&r);
        assert!(
            text.contains("B received (9 B farewell after our FIN)"),
            "{text}"
        );
    }
}
