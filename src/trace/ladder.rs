//! The text ladder of a [`Trace`], as the textbook draws it: the client's column on the
//! left, the server's on the right, each segment an arrow between them labelled with its
//! flags, sequence and acknowledgment numbers (relative, then absolute), length and time;
//! each state an end enters written in its column at the moment it entered it. Then the
//! close's shape, TIME_WAIT, and the verdicts.

use std::fmt::Write as _;

use super::model::{Check, Observed, Segment, Side, StateChange, Trace};

/// Width of the client's state column.
const STATE_W: usize = 13;
/// Narrowest arrow.
const MIN_ARROW: usize = 56;
/// Lines of prose are wrapped here.
const WRAP: usize = 100;

/// One row of the ladder.
enum Row<'a> {
    Segment(&'a Segment),
    State(&'a StateChange),
}

impl Row<'_> {
    fn t_us(&self) -> f64 {
        match self {
            Row::Segment(s) => s.t_us,
            Row::State(s) => s.t_us,
        }
    }
}

/// A segment's label: flags, seq and ack (relative, absolute), length.
pub fn label(s: &Segment) -> String {
    let mut l = format!("{}  seq {} ({})", s.flag_label(), s.rel_seq, s.seq);
    if s.has("ACK") {
        let _ = write!(l, "  ack {} ({})", s.rel_ack, s.ack);
    }
    let _ = write!(l, "  len {}", s.len);
    l
}

/// A state as the ladder writes it; `*` marks one sock_diag supplied.
fn state_text(s: &StateChange) -> String {
    match s.observed {
        Observed::Tracepoint => s.state.clone(),
        Observed::SockDiag | Observed::TracepointAndSockDiag => format!("{}*", s.state),
    }
}

/// The ladder, the close, TIME_WAIT, the checks and the notes of `t`.
pub fn render_text(t: &Trace) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "connection {} of {}: client {} -> server {}",
        t.conn, t.conns, t.client, t.server
    );
    let server_close = t.server_close.map_or("external server".to_string(), |c| {
        format!("server close {c}")
    });
    let _ = writeln!(
        out,
        "close {} ({server_close}); {}",
        t.close,
        t.outcome.as_deref().unwrap_or("the connection succeeded")
    );
    let _ = writeln!(out, "states: {}", t.states_source.describe());
    out.push('\n');

    let mut rows: Vec<Row> = t
        .segments
        .iter()
        .map(Row::Segment)
        .chain(t.states.iter().map(Row::State))
        .collect();
    // Stable: at equal times a state (listed after the segments) follows the segment.
    rows.sort_by(|a, b| a.t_us().total_cmp(&b.t_us()));
    let arrow_w = t
        .segments
        .iter()
        .map(|s| label(s).chars().count() + 8)
        .max()
        .unwrap_or(0)
        .max(MIN_ARROW);
    let blank = " ".repeat(arrow_w);

    let _ = writeln!(
        out,
        "{:>10}  {:<STATE_W$}{:^w$}  server",
        "t (µs)",
        "client",
        "",
        w = arrow_w + 2
    );
    // Where each end starts: the state its first change left.
    let initial = |side: Side| {
        t.states
            .iter()
            .find(|s| s.side == side)
            .and_then(|s| s.from.clone())
            .unwrap_or_default()
    };
    let _ = writeln!(
        out,
        "{:>10}  {:<STATE_W$}|{blank}|  {}",
        "",
        initial(Side::Client),
        initial(Side::Server)
    );
    for row in &rows {
        match row {
            Row::State(s) => {
                let (left, right) = match s.side {
                    Side::Client => (state_text(s), String::new()),
                    Side::Server => (String::new(), state_text(s)),
                };
                let _ = writeln!(out, "{:>10.1}  {left:<STATE_W$}|{blank}|  {right}", s.t_us);
            }
            Row::Segment(s) => {
                let l = label(s);
                let fill = arrow_w - l.chars().count() - 6;
                let arrow = match s.from {
                    Side::Client => format!("-- {l} {}->", "-".repeat(fill)),
                    Side::Server => format!("<-- {l} {}", "-".repeat(fill + 1)),
                };
                let _ = writeln!(out, "{:>10.1}  {:<STATE_W$}|{arrow}|", s.t_us, "");
            }
        }
    }
    if let Some(note) = syn_recv_note(t) {
        let _ = writeln!(out, "{:>10}  {note}", "");
    }
    if t.states.iter().any(|s| s.observed != Observed::Tracepoint) {
        let _ = writeln!(
            out,
            "{:>10}  * seen by sock_diag (TIME_WAIT: at the full socket's X -> CLOSE, the \
             timewait socket listed right after)",
            ""
        );
    }
    out.push('\n');

    let td = &t.teardown;
    let _ = writeln!(
        out,
        "close: {}; {} segment(s){}{}",
        td.kind.words(),
        td.segments,
        td.first_fin
            .map_or(String::new(), |s| format!(", first FIN from the {s}")),
        td.rst_from
            .map_or(String::new(), |s| format!(", RST from the {s}")),
    );
    if t.time_wait.is_empty() {
        let _ = writeln!(out, "TIME_WAIT: neither side");
    }
    for tw in &t.time_wait {
        let how = match tw.measured_s {
            Some(s) => format!("lasted {s:.2} s (measured until gone)"),
            None => format!(
                "kernel timer {} ms left {:.1} ms in: about {:.1} s",
                tw.expires_ms,
                tw.seen_after_ms,
                tw.seconds()
            ),
        };
        let _ = writeln!(
            out,
            "TIME_WAIT: the {} from {:.1} µs, {how}",
            tw.side, tw.t_us
        );
    }
    if t.capture_drops > 0 {
        let _ = writeln!(
            out,
            "capture: the kernel dropped {} frame(s): segments may be missing",
            t.capture_drops
        );
    }
    out.push_str("\nchecks:\n");
    for c in &t.checks {
        write_check(&mut out, c);
    }
    if !t.notes.is_empty() {
        out.push_str("\nnotes:\n");
        for n in &t.notes {
            wrap(&mut out, "  - ", "    ", n);
        }
    }
    out
}

fn write_check(out: &mut String, c: &Check) {
    let verdict = match c.holds {
        Some(true) => "holds",
        Some(false) => "FAILS",
        None => "n/a",
    };
    let _ = writeln!(out, "  [{verdict:^5}] ({}) {}", c.id, c.claim);
    wrap(out, "          ", "          ", &c.detail);
}

/// Writes `text` word-wrapped at [`WRAP`], the first line after `first`, the rest after
/// `rest`.
fn wrap(out: &mut String, first: &str, rest: &str, text: &str) {
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > WRAP {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
}

/// Why the server's SYN_RECV shows where it does: at the last ACK for a plain handshake
/// (the half-open connection is a request socket until then), at the SYN under Fast Open
/// (the server accepts the SYN's data, so the full socket is made there).
fn syn_recv_note(t: &Trace) -> Option<&'static str> {
    let recv = t
        .states
        .iter()
        .find(|s| s.side == Side::Server && s.state == "SYN_RECV")?;
    let syn_ack = t
        .segments
        .iter()
        .find(|s| s.from == Side::Server && s.flags.iter().any(|f| f == "SYN"));
    Some(match syn_ack {
        Some(sa) if recv.t_us <= sa.t_us => {
            "the server's SYN_RECV shows before its SYN+ACK: Fast Open took the SYN's data, so \
             the kernel made the full socket at the SYN"
        }
        _ => {
            "the server's SYN_RECV shows at the handshake's last ACK: before it, the half-open \
             connection is a request socket, which has no state change of its own"
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{CloseMode, ServerClose};
    use crate::trace::model::*;

    fn seg(t_us: f64, from: Side, flags: &[&str], rel: (u32, u32), len: u32) -> Segment {
        let (isn_own, isn_peer) = match from {
            Side::Client => (1000, 5000),
            Side::Server => (5000, 1000),
        };
        let acks = flags.contains(&"ACK");
        Segment {
            t_us,
            from,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            seq: isn_own + rel.0,
            ack: if acks { isn_peer + rel.1 } else { 0 },
            rel_seq: rel.0,
            rel_ack: if acks { rel.1 } else { 0 },
            len,
            win: 512,
        }
    }

    fn st(t_us: f64, side: Side, from: &str, state: &str, observed: Observed) -> StateChange {
        StateChange {
            t_us,
            side,
            from: Some(from.into()),
            state: state.into(),
            observed,
        }
    }

    /// A hand-made client close: the textbook's connection with a 3-segment close.
    pub(crate) fn sample() -> Trace {
        use Side::{Client as C, Server as S};
        let segments = vec![
            seg(0.0, C, &["SYN"], (0, 0), 0),
            seg(11.0, S, &["SYN", "ACK"], (0, 1), 0),
            seg(20.0, C, &["ACK"], (1, 1), 0),
            seg(30.0, C, &["PSH", "ACK"], (1, 1), 64),
            seg(40.0, S, &["PSH", "ACK"], (1, 65), 64),
            seg(50.0, C, &["FIN", "ACK"], (65, 65), 0),
            seg(60.0, S, &["FIN", "ACK"], (65, 66), 0),
            seg(70.0, C, &["ACK"], (66, 66), 0),
        ];
        let tp = Observed::Tracepoint;
        let states = vec![
            st(-2.0, C, "CLOSED", "SYN_SENT", tp),
            st(15.0, C, "SYN_SENT", "ESTABLISHED", tp),
            st(22.0, S, "LISTEN", "SYN_RECV", tp),
            st(22.0, S, "SYN_RECV", "ESTABLISHED", tp),
            st(49.0, C, "ESTABLISHED", "FIN_WAIT1", tp),
            st(55.0, S, "ESTABLISHED", "CLOSE_WAIT", tp),
            st(58.0, S, "CLOSE_WAIT", "LAST_ACK", tp),
            st(65.0, C, "FIN_WAIT1", "FIN_WAIT2", tp),
            st(
                66.0,
                C,
                "FIN_WAIT2",
                "TIME_WAIT",
                Observed::TracepointAndSockDiag,
            ),
            st(75.0, S, "LAST_ACK", "CLOSED", tp),
        ];
        let mut t = Trace {
            conn: 1,
            conns: 1,
            client: "127.0.0.1:50000".parse().unwrap(),
            server: "127.0.0.1:8080".parse().unwrap(),
            close: CloseMode::Client,
            server_close: Some(ServerClose::Wait),
            states_source: StateSource::Tracepoint,
            outcome: None,
            teardown: crate::trace::checks::teardown(&segments),
            segments,
            states,
            time_wait: vec![TimeWait {
                side: C,
                t_us: 66.0,
                expires_ms: 59_990,
                seen_after_ms: 2.0,
                measured_s: None,
                resolution_ms: None,
            }],
            checks: Vec::new(),
            capture_drops: 0,
            notes: vec!["a note".into()],
        };
        t.checks = crate::trace::checks::all(&t, None, &[]);
        t
    }

    #[test]
    fn ladder_puts_client_left_server_right_in_time_order() {
        let text = render_text(&sample());
        let lines: Vec<&str> = text.lines().collect();
        let find = |needle: &str| {
            lines
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no {needle:?} in\n{text}"))
        };
        // Arrows point the right way and carry relative and absolute numbers.
        let syn = lines[find("SYN  seq 0 (1000)")];
        assert!(syn.contains("|-- SYN") && syn.ends_with("->|"), "{syn}");
        let synack = lines[find("SYN+ACK  seq 0 (5000)  ack 1 (1001)  len 0")];
        assert!(synack.contains("|<-- SYN+ACK"), "{synack}");
        assert!(synack.trim_start().starts_with("11.0"), "{synack}");
        // All arrows are the same width: both columns line up.
        let bars: Vec<usize> = lines
            .iter()
            .filter(|l| l.contains("seq ") && l.contains('|'))
            .map(|l| l.rfind('|').unwrap())
            .collect();
        assert!(bars.windows(2).all(|w| w[0] == w[1]), "{text}");
        // States on their own side, between the right segments.
        let sent = lines[find("SYN_SENT")];
        assert!(
            sent.find("SYN_SENT").unwrap() < sent.find('|').unwrap(),
            "client on the left"
        );
        let last_ack = lines[find("LAST_ACK")];
        assert!(
            last_ack.find("LAST_ACK").unwrap() > last_ack.rfind('|').unwrap(),
            "server on the right"
        );
        assert!(
            find("SYN_SENT") < find("SYN  seq")
                && find("FIN_WAIT1") < find("FIN+ACK  seq 65 (1065)")
        );
        assert!(find("TIME_WAIT*") > find("FIN+ACK  seq 65 (5065)"));
        assert!(lines[1].starts_with("close client"), "{text}");
        // The initial states: CLOSED and LISTEN.
        assert!(
            lines
                .iter()
                .any(|l| l.contains("CLOSED") && l.contains("LISTEN")),
            "{text}"
        );
        // The close and the verdicts.
        assert!(text.contains(
            "close: three segments: FIN, FIN+ACK, ACK; 3 segment(s), first FIN from the client"
        ));
        assert!(
            text.contains("[holds] (1)") && text.contains("[holds] (2)"),
            "{text}"
        );
        assert!(text.contains("[FAILS] (4)"), "3 segments, not 4:\n{text}");
        assert!(text.contains("[holds] (5)"), "{text}");
        assert!(text.contains("about 60.0 s"), "{text}");
        assert!(text.contains("  - a note"));
    }

    #[test]
    fn json_round_trips() {
        let t = sample();
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains(r#""flags":["SYN","ACK"]"#), "{json}");
        assert!(json.contains(r#""from":"server""#) && json.contains(r#""holds":null"#));
        assert_eq!(serde_json::from_str::<Trace>(&json).unwrap(), t);
    }

    #[test]
    fn prose_wraps() {
        let mut out = String::new();
        wrap(&mut out, "> ", "  ", &"word ".repeat(60));
        assert!(out.lines().count() > 2);
        assert!(out.lines().all(|l| l.chars().count() <= WRAP));
    }
}
