//! The seed text's claims about the handshake and the close, each checked against the
//! segments and states of one [`Trace`]: a verdict and the numbers behind it.

use std::collections::BTreeSet;

use super::build::Isn;
use super::model::{Check, Segment, Side, Teardown, TeardownKind, Trace};

/// Whether sequence number `a` comes after `b` (modulo 2^32, RFC 1982 style).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Every check, in the seed text's order.
pub fn all(t: &Trace, isn: Option<&Isn>, run: &[Isn]) -> Vec<Check> {
    vec![
        handshake(&t.segments),
        fins_acked(&t.segments),
        isns(isn, run),
        close_segments(t),
        time_wait(t),
    ]
}

fn check(id: u8, claim: &str, holds: Option<bool>, detail: String) -> Check {
    Check {
        id,
        claim: claim.to_string(),
        holds,
        detail,
    }
}

fn first(
    segs: &[Segment],
    from: Side,
    pred: impl Fn(&Segment) -> bool,
) -> Option<(usize, &Segment)> {
    segs.iter()
        .enumerate()
        .find(|(_, s)| s.from == from && pred(s))
}

/// (1) The SYN+ACK acks the client's ISN+1; the final ACK acks the server's ISN+1.
pub fn handshake(segs: &[Segment]) -> Check {
    const CLAIM: &str =
        "handshake: the SYN+ACK's ack = client ISN+1, the final ACK's ack = server ISN+1";
    let syn = first(segs, Side::Client, |s| s.has("SYN") && !s.has("ACK"));
    let synack = first(segs, Side::Server, |s| s.has("SYN") && s.has("ACK"));
    let (Some((_, syn)), Some((i, synack))) = (syn, synack) else {
        return check(
            1,
            CLAIM,
            None,
            "no SYN and SYN+ACK in the capture: the handshake did not happen".into(),
        );
    };
    let Some((_, ack)) = segs[i + 1..]
        .iter()
        .enumerate()
        .find(|(_, s)| s.from == Side::Client && s.has("ACK") && !s.has("SYN"))
    else {
        return check(
            1,
            CLAIM,
            None,
            "no ACK from the client after the SYN+ACK".into(),
        );
    };
    let want1 = syn.seq.wrapping_add(1);
    // Fast Open: a server that takes the data in the SYN acks it with the SYN+ACK.
    let fast_open = syn.len > 0 && synack.ack == want1.wrapping_add(syn.len);
    let want2 = synack.seq.wrapping_add(1);
    let holds = (synack.ack == want1 || fast_open) && ack.ack == want2;
    let took = format!(
        "= ISN+1+{}: Fast Open, the SYN's {} bytes taken",
        syn.len, syn.len
    );
    check(
        1,
        CLAIM,
        Some(holds),
        format!(
            "client ISN {}: SYN+ACK ack {} ({}); server ISN {}: final ACK ack {} ({})",
            syn.seq,
            synack.ack,
            if synack.ack == want1 {
                "= ISN+1"
            } else if fast_open {
                &took
            } else {
                "≠ ISN+1"
            },
            synack.seq,
            ack.ack,
            if ack.ack == want2 {
                "= ISN+1"
            } else {
                "≠ ISN+1"
            },
        ),
    )
}

/// The index of the first segment after `i` from the peer of `segs[i]` whose ack passes
/// `segs[i]`'s data (so it is that segment's ACK, or an ACK of something later).
fn acked_by(segs: &[Segment], i: usize) -> Option<usize> {
    let s = &segs[i];
    let data_end = s.seq.wrapping_add(s.len);
    segs.iter()
        .enumerate()
        .skip(i + 1)
        .find(|(_, p)| p.from == s.from.peer() && p.has("ACK") && after(p.ack, data_end))
        .map(|(j, _)| j)
}

/// (2) Each FIN is acked with its seq + 1 (+ the data it carries: the FIN takes one
/// sequence number after the data).
pub fn fins_acked(segs: &[Segment]) -> Check {
    const CLAIM: &str = "each FIN is acked with ack = the FIN's seq+1 (after any data it carries)";
    let fins: Vec<usize> = (0..segs.len()).filter(|&i| segs[i].has("FIN")).collect();
    if fins.is_empty() {
        let why = if segs.iter().any(|s| s.has("RST")) {
            "no FIN in this capture: an RST ended the connection"
        } else {
            "no FIN in this capture"
        };
        return check(2, CLAIM, None, why.into());
    }
    let mut holds = true;
    let mut parts = Vec::new();
    for &i in &fins {
        let f = &segs[i];
        let want = f.end_seq();
        let data = if f.len > 0 {
            format!(" + {} data", f.len)
        } else {
            String::new()
        };
        match acked_by(segs, i) {
            Some(j) => {
                let a = &segs[j];
                let ok = a.ack == want;
                holds &= ok;
                parts.push(format!(
                    "{}'s FIN seq {}{data} acked by the {}'s {} with ack {} ({})",
                    f.from,
                    f.seq,
                    a.from,
                    a.flag_label(),
                    a.ack,
                    if ok { "= seq+1" } else { "≠ seq+1" }
                ));
            }
            None => {
                holds = false;
                parts.push(format!("{}'s FIN seq {} is never acked", f.from, f.seq));
            }
        }
    }
    check(2, CLAIM, Some(holds), parts.join("; "))
}

/// (3) The ISNs are not predictable: compared across the run's connections (distinct
/// 4-tuples), or for one connection only what one can show.
pub fn isns(isn: Option<&Isn>, run: &[Isn]) -> Check {
    const CLAIM: &str = "initial sequence numbers are not predictable";
    let Some(isn) = isn else {
        return check(3, CLAIM, None, "no SYN in the capture".into());
    };
    let fixed = |v: u32| v == 0 || v == 1;
    let mut seen = BTreeSet::new();
    let distinct: Vec<&Isn> = run.iter().filter(|i| seen.insert(i.client_addr)).collect();
    if distinct.len() < 2 {
        let server = isn.server;
        let holds = !fixed(isn.client) && server.is_some_and(|s| !fixed(s) && s != isn.client);
        return check(
            3,
            CLAIM,
            server.map(|_| holds),
            format!(
                "client ISN {}, server ISN {}: {}. One connection can show only that the ISNs \
                 are not a constant (not 0 or 1, different on each side), not that the next \
                 one cannot be guessed: trace several connections (--conns 5) to compare them",
                isn.client,
                server.map_or("none".into(), |s| s.to_string()),
                if holds {
                    "neither is 0/1 and they differ"
                } else {
                    "this looks like a fixed ISN"
                }
            ),
        );
    }
    // Gaps between successive connections' ISNs. Linux draws each ISN from a keyed hash of
    // the 4-tuple plus a clock (RFC 6528), so across 4-tuples the gaps look random; a
    // counter (RFC 793's 4 µs clock, the old BSD +64000) makes them equal or small.
    let gaps = |pick: fn(&Isn) -> Option<u32>| -> Vec<i64> {
        distinct
            .windows(2)
            .filter_map(|w| Some(i64::from(pick(w[1])?.wrapping_sub(pick(w[0])?) as i32)))
            .collect()
    };
    let client = gaps(|i| Some(i.client));
    let server = gaps(|i| i.server);
    let counter_like = |g: &[i64]| {
        // Equal steps need two gaps to show; one gap says only whether it is small.
        (g.len() >= 2 && g.windows(2).all(|w| w[0] == w[1]))
            || (!g.is_empty() && g.iter().all(|d| d.abs() < 1 << 24))
    };
    let predictable = counter_like(&client) || counter_like(&server);
    let list = |pick: fn(&Isn) -> Option<u32>| {
        distinct
            .iter()
            .map(|i| pick(i).map_or("-".into(), |v| v.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    check(
        3,
        CLAIM,
        Some(!predictable),
        format!(
            "{} connections: client ISNs {}; server ISNs {}; gaps between successive client \
             ISNs {:?}: {}. A handful of samples can show a counter, not prove \
             unpredictability",
            distinct.len(),
            list(|i| Some(i.client)),
            list(|i| i.server),
            client,
            if predictable {
                "equal or small steps, like a counter"
            } else {
                "no common step and not small, as a keyed hash of the 4-tuple gives"
            }
        ),
    )
}

/// How the connection was torn down, read from its segments.
pub fn teardown(segs: &[Segment]) -> Teardown {
    let rst = segs.iter().position(|s| s.has("RST"));
    let fin1 = segs.iter().position(|s| s.has("FIN"));
    let mut t = Teardown {
        kind: TeardownKind::Incomplete,
        segments: 0,
        first_fin: fin1.map(|i| segs[i].from),
        rst_from: rst.map(|i| segs[i].from),
        data_between: 0,
    };
    if let Some(r) = rst {
        let start = fin1.map_or(r, |f| f.min(r));
        t.kind = TeardownKind::Rst;
        t.segments = (r - start + 1) as u32;
        return t;
    }
    let Some(f1) = fin1 else {
        return t;
    };
    let a = segs[f1].from;
    let ack1 = acked_by(segs, f1).filter(|&j| segs[j].ack == segs[f1].end_seq());
    let fin2 = (f1 + 1..segs.len()).find(|&j| segs[j].from == a.peer() && segs[j].has("FIN"));
    let ack2 = fin2.and_then(|j| acked_by(segs, j));
    let parts: BTreeSet<usize> = [Some(f1), ack1, fin2, ack2].into_iter().flatten().collect();
    t.segments = parts.len() as u32;
    let last = *parts.last().expect("the first FIN");
    t.data_between = (f1 + 1..=last)
        .filter(|j| !parts.contains(j) && segs[*j].len > 0)
        .count() as u32;
    t.kind = match (ack1, fin2, ack2) {
        (Some(a1), Some(f2), Some(_)) if a1 == f2 => TeardownKind::ThreeWay,
        (Some(a1), Some(f2), Some(_)) if f2 < a1 => TeardownKind::Simultaneous,
        (Some(_), Some(_), Some(_)) => TeardownKind::FourWay,
        _ => TeardownKind::Incomplete,
    };
    t
}

/// (4) How many segments the close took: 4 as in the textbook, 3 when the passive side's
/// ACK rode on its FIN, or an RST.
pub fn close_segments(t: &Trace) -> Check {
    const CLAIM: &str = "the close takes four segments: FIN, ACK, FIN, ACK";
    let segs = &t.segments;
    let td = &t.teardown;
    let at = |i: usize| segs[i].t_us;
    let fin_of = |side: Side| segs.iter().position(|s| s.from == side && s.has("FIN"));
    let (holds, detail) = match td.kind {
        TeardownKind::Rst => {
            let r = segs.iter().position(|s| s.has("RST")).expect("an RST");
            (
                // No FIN close happened: the claim is about one, so it does not apply.
                None,
                format!(
                    "no four-way close: the {} sent {} at {:.1} µs (an abortive close, SO_LINGER 0 \
                     or a reset), {} segment(s) from the first FIN/RST to the RST",
                    segs[r].from,
                    segs[r].flag_label(),
                    at(r),
                    td.segments
                ),
            )
        }
        TeardownKind::Incomplete => (
            None,
            "the capture holds no complete close (no FIN, or a FIN not answered)".into(),
        ),
        kind => {
            let a = td.first_fin.expect("a FIN");
            let b = a.peer();
            let f1 = fin_of(a).expect("first FIN");
            let f2 = (f1 + 1..segs.len())
                .find(|&j| segs[j].from == b && segs[j].has("FIN"))
                .expect("second FIN");
            let gap = at(f2) - at(f1);
            let extra = match td.data_between {
                0 => String::new(),
                n => format!(" ({n} data segment(s) of the half-close not counted)"),
            };
            let text = match kind {
                TeardownKind::ThreeWay => format!(
                    "3 segments: the {a}'s FIN at {:.1} µs, the {b}'s FIN+ACK {gap:.1} µs later \
                     acking it, the {a}'s final ACK. The kernel holds back the ACK of a FIN \
                     (delayed ACK: 40 ms or more on Linux); the {b} closed {gap:.1} µs after \
                     the FIN arrived, long before, so its FIN carried that ACK. A passive side \
                     that closes later than the delayed ACK makes the textbook's four{extra}",
                    at(f1)
                ),
                TeardownKind::Simultaneous => format!(
                    "4 segments, simultaneous close: both sides sent a FIN before the other's \
                     arrived ({gap:.1} µs apart), each then acked the other's{extra}"
                ),
                _ => {
                    let a1 = acked_by(segs, f1).expect("an ACK of the first FIN");
                    let ack = &segs[a1];
                    let (d1, d2) = (at(a1) - at(f1), at(f2) - at(a1));
                    let why = if ack.len > 0 {
                        format!(
                            "the {b} sent {} bytes after the FIN (a half-close) and they carried \
                             the ACK; its FIN followed on its own",
                            ack.len
                        )
                    } else if d1 >= 10_000.0 {
                        format!(
                            "the ACK left alone when the delayed-ACK timer fired, {:.1} ms \
                             after the FIN: the {b} had not closed yet",
                            d1 / 1000.0
                        )
                    } else {
                        format!("the {b} acked the FIN before it closed")
                    };
                    format!(
                        "4 segments as in the textbook: the {a}'s FIN at {:.1} µs, the {b}'s \
                         {} acking it {d1:.1} µs later, the {b}'s FIN {d2:.1} µs after that, \
                         the {a}'s final ACK: {why}{extra}",
                        at(f1),
                        ack.flag_label(),
                    )
                }
            };
            (Some(kind != TeardownKind::ThreeWay), text)
        }
    };
    check(4, CLAIM, holds, detail)
}

/// (5) The side that sent the first FIN ends in TIME_WAIT (none after an RST), for 2 MSL
/// (60 s on Linux).
pub fn time_wait(t: &Trace) -> Check {
    const CLAIM: &str =
        "the side that sent the first FIN ends in TIME_WAIT (none after an RST), for 60 s on Linux";
    let expected: BTreeSet<Side> = match t.teardown.kind {
        TeardownKind::Rst => BTreeSet::new(),
        TeardownKind::Incomplete => {
            return check(5, CLAIM, None, "the capture holds no complete close".into());
        }
        // Each side of a simultaneous close goes through CLOSING into TIME_WAIT.
        TeardownKind::Simultaneous => [Side::Client, Side::Server].into(),
        _ => t.teardown.first_fin.into_iter().collect(),
    };
    let seen: BTreeSet<Side> = t.time_wait.iter().map(|tw| tw.side).collect();
    let who = |s: &BTreeSet<Side>| match s.len() {
        0 => "neither side".to_string(),
        _ => s
            .iter()
            .map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(" and "),
    };
    let mut detail = format!(
        "expected {} (first FIN: {}); sock_diag saw TIME_WAIT on {}",
        who(&expected),
        t.teardown.first_fin.map_or("none", Side::as_str),
        who(&seen)
    );
    for tw in &t.time_wait {
        detail += &match tw.measured_s {
            Some(s) => format!(
                "; the {}'s TIME_WAIT lasted {s:.2} s (polled every {:.0} ms until gone)",
                tw.side,
                tw.resolution_ms.unwrap_or(0.0)
            ),
            None => format!(
                "; the {}'s kernel timer had {} ms left {:.1} ms after it began: about {:.1} s \
                 in all (--wait-time-wait measures it)",
                tw.side,
                tw.expires_ms,
                tw.seen_after_ms,
                tw.seconds()
            ),
        };
    }
    check(5, CLAIM, Some(expected == seen), detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::model::Segment;

    fn s(from: Side, flags: &[&str], seq: u32, ack: u32, len: u32) -> Segment {
        Segment {
            t_us: 0.0,
            from,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            seq,
            ack,
            rel_seq: 0,
            rel_ack: 0,
            len,
            win: 0,
        }
    }
    use Side::{Client as C, Server as S};

    fn handshake_segs() -> Vec<Segment> {
        vec![
            s(C, &["SYN"], 100, 0, 0),
            s(S, &["SYN", "ACK"], 900, 101, 0),
            s(C, &["ACK"], 101, 901, 0),
        ]
    }

    #[test]
    fn handshake_acks_isn_plus_one() {
        let c = handshake(&handshake_segs());
        assert_eq!(c.holds, Some(true), "{}", c.detail);
        let mut bad = handshake_segs();
        bad[2].ack = 900;
        assert_eq!(handshake(&bad).holds, Some(false));
        assert_eq!(handshake(&bad[..1]).holds, None);
    }

    #[test]
    fn three_segment_close_and_data_before_fin() {
        let mut segs = handshake_segs();
        segs.extend([
            s(C, &["FIN", "PSH", "ACK"], 101, 901, 10), // data then FIN: ack must be 112
            s(S, &["FIN", "ACK"], 901, 112, 0),
            s(C, &["ACK"], 112, 902, 0),
        ]);
        let fins = fins_acked(&segs);
        assert_eq!(fins.holds, Some(true), "{}", fins.detail);
        let td = teardown(&segs);
        assert_eq!(td.kind, TeardownKind::ThreeWay);
        assert_eq!((td.segments, td.first_fin), (3, Some(C)));
        // An ack of the FIN that forgets the FIN's own sequence number.
        segs[4].ack = 111;
        segs.insert(5, s(S, &["ACK"], 902, 111, 0));
        assert_eq!(fins_acked(&segs).holds, Some(false));
    }

    #[test]
    fn four_segment_close_with_a_farewell() {
        let mut segs = handshake_segs();
        segs.extend([
            s(S, &["FIN", "ACK"], 901, 101, 0),
            s(C, &["ACK"], 101, 902, 0),
            s(C, &["PSH", "ACK"], 101, 902, 5),
            s(S, &["ACK"], 902, 106, 0),
            s(C, &["FIN", "ACK"], 106, 902, 0),
            s(S, &["ACK"], 902, 107, 0),
        ]);
        let td = teardown(&segs);
        assert_eq!(td.kind, TeardownKind::FourWay);
        assert_eq!(
            (td.segments, td.first_fin, td.data_between),
            (4, Some(S), 1)
        );
        assert_eq!(fins_acked(&segs).holds, Some(true));
    }

    #[test]
    fn rst_and_simultaneous() {
        let mut segs = handshake_segs();
        segs.push(s(C, &["RST", "ACK"], 101, 901, 0));
        let td = teardown(&segs);
        assert_eq!(
            (td.kind, td.rst_from, td.segments),
            (TeardownKind::Rst, Some(C), 1)
        );
        assert_eq!(fins_acked(&segs).holds, None);

        let mut segs = handshake_segs();
        segs.extend([
            s(C, &["FIN", "ACK"], 101, 901, 0),
            s(S, &["FIN", "ACK"], 901, 101, 0),
            s(C, &["ACK"], 102, 902, 0),
            s(S, &["ACK"], 902, 102, 0),
        ]);
        assert_eq!(teardown(&segs).kind, TeardownKind::Simultaneous);
    }

    #[test]
    fn isn_checks() {
        let a = |port: u16| -> std::net::SocketAddr { ([127, 0, 0, 1], port).into() };
        let one = Isn {
            client_addr: a(1),
            client: 3_000_000_000,
            server: Some(17),
        };
        assert_eq!(isns(Some(&one), &[one]).holds, Some(true));
        let zero = Isn { client: 0, ..one };
        assert_eq!(isns(Some(&zero), &[zero]).holds, Some(false));
        let run: Vec<Isn> = (0..4)
            .map(|i| Isn {
                client_addr: a(i),
                client: 1000 + 64_000 * u32::from(i),
                server: Some(5 + 7 * u32::from(i)),
            })
            .collect();
        assert_eq!(isns(Some(&run[0]), &run).holds, Some(false), "a counter");
        let random = [0x1234_5678u32, 0x9abc_def0, 0x0fed_cba9, 0x7654_3210];
        let run: Vec<Isn> = (0..4)
            .map(|i| Isn {
                client_addr: a(i),
                client: random[i as usize],
                server: Some(random[3 - i as usize]),
            })
            .collect();
        let c = isns(Some(&run[0]), &run);
        assert_eq!(c.holds, Some(true), "{}", c.detail);
    }
}
