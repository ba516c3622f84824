//! From what was observed of one connection — segments with kernel timestamps, state
//! transitions, TIME_WAIT sightings, all on the monotonic clock — to its [`Trace`]: times
//! made relative to the first SYN, sequence numbers relative to each side's ISN, TIME_WAIT
//! put where the kernel entered it, and the checks computed. Pure: no kernel here.

use std::net::SocketAddr;

use super::checks;
use super::model::{
    Observed, Segment, Side, StateChange, StateSource, TimeWait, Trace, state_name, tcp_state,
};
use crate::config::{CloseMode, ServerClose};

/// TCP header flag bits.
pub mod flag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// Flag names in the order a trace prints them (SYN+ACK, FIN+ACK, PSH+ACK, RST+ACK).
const FLAG_NAMES: [(u8, &str); 8] = [
    (flag::SYN, "SYN"),
    (flag::FIN, "FIN"),
    (flag::RST, "RST"),
    (flag::PSH, "PSH"),
    (flag::ACK, "ACK"),
    (flag::URG, "URG"),
    (flag::ECE, "ECE"),
    (flag::CWR, "CWR"),
];

/// A captured segment, before it belongs to a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSegment {
    /// Kernel timestamp, on CLOCK_MONOTONIC, in ns.
    pub mono_ns: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    /// The TCP flag bits ([`flag`]).
    pub flags: u8,
    pub len: u32,
    pub win: u16,
}

impl RawSegment {
    pub fn is_first_syn(&self) -> bool {
        self.flags & (flag::SYN | flag::ACK) == flag::SYN
    }
}

/// A state one end entered.
#[derive(Clone, Debug, PartialEq)]
pub struct RawState {
    /// On CLOCK_MONOTONIC, in ns.
    pub mono_ns: i64,
    pub side: Side,
    /// The kernel's state numbers.
    pub old: Option<u8>,
    pub new: u8,
    pub observed: Observed,
}

/// A TIME_WAIT socket sock_diag listed for one end of the 4-tuple.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTimeWait {
    pub side: Side,
    /// When it was first listed, on CLOCK_MONOTONIC.
    pub seen_mono_ns: i64,
    /// Its timer then (`idiag_expires`), ms.
    pub expires_ms: u32,
    /// The first poll that no longer listed it, when the trace waited for that, and the
    /// polls' step in ms.
    pub gone: Option<(i64, f64)>,
}

/// Everything observed about one connection.
#[derive(Clone, Debug)]
pub struct Observation {
    pub conn: u32,
    pub conns: u32,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub close: CloseMode,
    pub server_close: Option<ServerClose>,
    pub states_source: StateSource,
    pub outcome: Option<String>,
    pub segments: Vec<RawSegment>,
    pub states: Vec<RawState>,
    pub time_wait: Vec<RawTimeWait>,
    pub capture_drops: u32,
    pub notes: Vec<String>,
}

/// The initial sequence numbers of one connection.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Isn {
    pub client_addr: SocketAddr,
    pub client: u32,
    /// `None` when no SYN+ACK came (refused).
    pub server: Option<u32>,
}

/// The ISNs of a connection's segments: the first SYN's and the first SYN+ACK's.
pub fn isn(client: SocketAddr, segments: &[RawSegment]) -> Option<Isn> {
    let syn = segments
        .iter()
        .find(|s| s.src == client && s.is_first_syn())?;
    let synack = segments
        .iter()
        .find(|s| s.dst == client && s.flags & (flag::SYN | flag::ACK) == flag::SYN | flag::ACK);
    Some(Isn {
        client_addr: client,
        client: syn.seq,
        server: synack.map(|s| s.seq),
    })
}

/// Which end of `client`–`server` a socket with these addresses is.
pub fn side_of(
    local: SocketAddr,
    remote: SocketAddr,
    client: SocketAddr,
    server: SocketAddr,
) -> Option<Side> {
    if local == client && remote == server {
        Some(Side::Client)
    } else if local == server && remote == client {
        Some(Side::Server)
    } else {
        None
    }
}

/// Which end a state change the tracepoint reported belongs to. Two changes come before the
/// socket has its whole 4-tuple: a connecting socket's CLOSE → SYN_SENT, before connect()
/// picks its port (local port 0), and, on some kernels, a child socket's LISTEN → SYN_RECV,
/// before its peer is filled in (remote port 0). The caller makes sure only one connection
/// to `server` is being made in the window it looks at.
pub fn side_of_change(
    local: SocketAddr,
    remote: SocketAddr,
    old: u8,
    new: u8,
    client: SocketAddr,
    server: SocketAddr,
) -> Option<Side> {
    side_of(local, remote, client, server).or_else(|| {
        let connecting = old == tcp_state::CLOSE
            && new == tcp_state::SYN_SENT
            && local.port() == 0
            && remote == server;
        let accepting = old == tcp_state::LISTEN
            && new == tcp_state::SYN_RECV
            && remote.port() == 0
            && local == server;
        if connecting {
            Some(Side::Client)
        } else if accepting {
            Some(Side::Server)
        } else {
            None
        }
    })
}

/// The flag names of `bits`.
pub fn flag_names(bits: u8) -> Vec<String> {
    FLAG_NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

fn us(from_ns: i64, to_ns: i64) -> f64 {
    (to_ns - from_ns) as f64 / 1000.0
}

/// The trace of one connection; `run` holds the ISNs of every connection of the run, for
/// the check that compares them.
pub fn build(o: Observation, run: &[Isn]) -> Trace {
    let mut raw = o.segments;
    raw.sort_by_key(|s| s.mono_ns);
    let isn = isn(o.client, &raw);
    let t0 = raw
        .iter()
        .find(|s| s.src == o.client && s.is_first_syn())
        .or(raw.first())
        .map_or(0, |s| s.mono_ns);
    let (client_isn, server_isn) = isn.map_or((0, 0), |i| (i.client, i.server.unwrap_or(0)));
    let segments: Vec<Segment> = raw
        .iter()
        .map(|s| {
            let from = if s.src == o.client {
                Side::Client
            } else {
                Side::Server
            };
            let (own, peer) = match from {
                Side::Client => (client_isn, server_isn),
                Side::Server => (server_isn, client_isn),
            };
            let acks = s.flags & flag::ACK != 0;
            Segment {
                t_us: us(t0, s.mono_ns),
                from,
                flags: flag_names(s.flags),
                seq: s.seq,
                ack: s.ack,
                rel_seq: s.seq.wrapping_sub(own),
                rel_ack: if acks { s.ack.wrapping_sub(peer) } else { 0 },
                len: s.len,
                win: s.win,
            }
        })
        .collect();

    let (states, time_wait) = states(o.states, &o.time_wait, t0);
    let teardown = checks::teardown(&segments);
    let mut trace = Trace {
        conn: o.conn,
        conns: o.conns,
        client: o.client,
        server: o.server,
        close: o.close,
        server_close: o.server_close,
        states_source: o.states_source,
        outcome: o.outcome,
        segments,
        states,
        time_wait,
        teardown,
        checks: Vec::new(),
        capture_drops: o.capture_drops,
        notes: o.notes,
    };
    trace.checks = checks::all(&trace, isn.as_ref(), run);
    trace
}

/// The state changes in time order, each end's TIME_WAIT put where the kernel entered it,
/// and the TIME_WAIT summaries.
fn states(
    mut raw: Vec<RawState>,
    tws: &[RawTimeWait],
    t0: i64,
) -> (Vec<StateChange>, Vec<TimeWait>) {
    raw.sort_by_key(|s| s.mono_ns);
    let mut out_tw = Vec::new();
    for tw in tws {
        // The full socket's last X → CLOSE is where the kernel swapped in the timewait
        // socket; a poll that saw TIME_WAIT itself gives its own time.
        let seen_directly = raw
            .iter()
            .position(|s| s.side == tw.side && s.new == tcp_state::TIME_WAIT);
        let entered = match seen_directly {
            Some(i) => i,
            None => match raw
                .iter()
                .rposition(|s| s.side == tw.side && s.new == tcp_state::CLOSE)
            {
                Some(i) => {
                    raw[i].new = tcp_state::TIME_WAIT;
                    raw[i].observed = Observed::TracepointAndSockDiag;
                    i
                }
                None => {
                    raw.push(RawState {
                        mono_ns: tw.seen_mono_ns,
                        side: tw.side,
                        old: None,
                        new: tcp_state::TIME_WAIT,
                        observed: Observed::SockDiag,
                    });
                    raw.len() - 1
                }
            },
        };
        let entered_ns = raw[entered].mono_ns;
        if let Some((gone, _)) = tw.gone {
            raw.push(RawState {
                mono_ns: gone,
                side: tw.side,
                old: Some(tcp_state::TIME_WAIT),
                new: tcp_state::CLOSE,
                observed: Observed::SockDiag,
            });
        }
        out_tw.push(TimeWait {
            side: tw.side,
            t_us: us(t0, entered_ns),
            expires_ms: tw.expires_ms,
            seen_after_ms: (tw.seen_mono_ns - entered_ns).max(0) as f64 / 1e6,
            measured_s: tw.gone.map(|(gone, _)| (gone - entered_ns) as f64 / 1e9),
            resolution_ms: tw.gone.map(|(_, step)| step),
        });
        raw.sort_by_key(|s| s.mono_ns);
    }
    let states = raw
        .iter()
        .map(|s| StateChange {
            t_us: us(t0, s.mono_ns),
            side: s.side,
            from: s.old.map(|o| state_name(o).to_string()),
            state: state_name(s.new).to_string(),
            observed: s.observed,
        })
        .collect();
    (states, out_tw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn seg(t: i64, client_sends: bool, flags: u8, seq: u32, ack: u32, len: u32) -> RawSegment {
        let (c, s) = (addr("127.0.0.1:50000"), addr("127.0.0.1:8080"));
        let (src, dst) = if client_sends { (c, s) } else { (s, c) };
        RawSegment {
            mono_ns: t,
            src,
            dst,
            seq,
            ack,
            flags,
            len,
            win: 100,
        }
    }

    fn state(t: i64, side: Side, old: u8, new: u8) -> RawState {
        RawState {
            mono_ns: t,
            side,
            old: Some(old),
            new,
            observed: Observed::Tracepoint,
        }
    }

    #[test]
    fn times_and_sequence_numbers_are_relative() {
        use flag::*;
        let o = Observation {
            conn: 1,
            conns: 1,
            client: addr("127.0.0.1:50000"),
            server: addr("127.0.0.1:8080"),
            close: CloseMode::Client,
            server_close: Some(ServerClose::Wait),
            states_source: StateSource::Tracepoint,
            outcome: None,
            segments: vec![
                seg(1_010_000, false, SYN | ACK, 7000, 1001, 0),
                seg(1_000_000, true, SYN, 1000, 0, 0),
                seg(1_020_000, true, ACK, 1001, 7001, 0),
                seg(1_030_000, true, FIN | ACK, 1001, 7001, 0),
                seg(1_040_000, false, FIN | ACK, 7001, 1002, 0),
                seg(1_050_000, true, ACK, 1002, 7002, 0),
            ],
            states: vec![
                state(999_000, Side::Client, 7, 2),
                state(1_045_000, Side::Client, 5, 7),
            ],
            time_wait: vec![RawTimeWait {
                side: Side::Client,
                seen_mono_ns: 3_045_000,
                expires_ms: 59_990,
                gone: None,
            }],
            capture_drops: 0,
            notes: vec![],
        };
        let t = build(o, &[]);
        assert_eq!(t.segments[0].flags, ["SYN"]);
        assert_eq!(t.segments[0].t_us, 0.0);
        assert_eq!(t.segments[1].flags, ["SYN", "ACK"]);
        assert_eq!(t.segments[1].t_us, 10.0);
        assert_eq!((t.segments[1].rel_seq, t.segments[1].rel_ack), (0, 1));
        assert_eq!((t.segments[5].rel_seq, t.segments[5].rel_ack), (2, 2));
        assert_eq!(t.states[0].t_us, -1.0);
        assert_eq!(t.states[0].state, "SYN_SENT");
        assert_eq!(t.states[0].from.as_deref(), Some("CLOSED"));
        // FIN_WAIT2 → CLOSE of the full socket became TIME_WAIT.
        assert_eq!(t.states[1].state, "TIME_WAIT");
        assert_eq!(t.states[1].observed, Observed::TracepointAndSockDiag);
        assert_eq!(t.time_wait[0].t_us, 45.0);
        assert_eq!(t.time_wait[0].seen_after_ms, 2.0);
        assert!((t.time_wait[0].seconds() - 59.992).abs() < 1e-9);
    }

    #[test]
    fn sides_follow_the_four_tuple() {
        let (c, s) = (addr("127.0.0.1:50000"), addr("127.0.0.1:8080"));
        assert_eq!(side_of(c, s, c, s), Some(Side::Client));
        assert_eq!(side_of(s, c, c, s), Some(Side::Server));
        assert_eq!(side_of(addr("127.0.0.1:50001"), s, c, s), None);
        let change = |local: &str, remote: &str, old, new| {
            side_of_change(addr(local), addr(remote), old, new, c, s)
        };
        assert_eq!(
            change("127.0.0.1:0", "127.0.0.1:8080", 7, 2),
            Some(Side::Client),
            "connect() before its port"
        );
        assert_eq!(
            change("127.0.0.1:8080", "0.0.0.0:0", 10, 3),
            Some(Side::Server),
            "a child before its peer"
        );
        assert_eq!(
            change("127.0.0.1:8080", "0.0.0.0:0", 7, 10),
            None,
            "the listener itself"
        );
        assert_eq!(change("127.0.0.1:0", "127.0.0.1:8080", 1, 4), None);
    }
}
