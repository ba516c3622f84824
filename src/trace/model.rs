//! The [`Trace`] of one connection: its segments as captured, the states each end passed
//! through, and the verdicts on the textbook's claims. Plain serde data, so every renderer
//! (text ladder, SVG, JSON) works from a value that can also be made by hand.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::config::{CloseMode, ServerClose};

/// One traced connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Which connection of the trace this is, from 1.
    pub conn: u32,
    /// How many connections the trace opened, one after another.
    pub conns: u32,
    /// The client end of the 4-tuple, as the first SYN carried it.
    pub client: SocketAddr,
    /// The server end of the 4-tuple.
    pub server: SocketAddr,
    /// How the client closed (`--close`).
    pub close: CloseMode,
    /// The embedded server's close policy; `None` for an external target.
    pub server_close: Option<ServerClose>,
    /// Where [`Trace::states`] came from.
    pub states_source: StateSource,
    /// How the connection code ended: `None` when it succeeded, else its failure (phase,
    /// kind, errno), as `run` would have counted it.
    pub outcome: Option<String>,
    /// Every segment of the 4-tuple, once each, in the order the kernel sent them.
    pub segments: Vec<Segment>,
    /// The states each end entered, in time order.
    pub states: Vec<StateChange>,
    /// The ends that went into TIME_WAIT, and for how long.
    pub time_wait: Vec<TimeWait>,
    /// How the connection was torn down, read from the segments.
    pub teardown: Teardown,
    /// The claims of the textbook, each with its verdict from this capture.
    pub checks: Vec<Check>,
    /// Frames the kernel dropped from the capture socket's queue while this connection ran
    /// (PACKET_STATISTICS); non-zero means segments may be missing.
    pub capture_drops: u32,
    /// What else the reader should know about this trace (limits met, fallbacks taken).
    pub notes: Vec<String>,
}

/// An end of the connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Client,
    Server,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the socket states came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateSource {
    /// The tracepoint `sock:inet_sock_set_state` through a private tracefs instance: every
    /// transition of a full socket, timed by the kernel (to the microsecond). TIME_WAIT is
    /// not a transition of the full socket; sock_diag tells it.
    Tracepoint,
    /// sock_diag dumps of the two ports polled in a tight loop (no tracefs here): only the
    /// states that last long enough to be seen between two polls.
    SockDiagPoll,
}

impl StateSource {
    pub fn describe(self) -> &'static str {
        match self {
            StateSource::Tracepoint => {
                "tracepoint sock:inet_sock_set_state (private tracefs instance); TIME_WAIT from sock_diag"
            }
            StateSource::SockDiagPoll => {
                "sock_diag polled in a tight loop (no tracefs): short-lived states may be missed"
            }
        }
    }
}

/// How one state was observed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed {
    /// A transition the tracepoint reported.
    Tracepoint,
    /// A state a sock_diag poll saw; its time is when that poll returned, so the state was
    /// entered no later than that.
    SockDiag,
    /// TIME_WAIT: the tracepoint's `X → CLOSE` of the full socket at this instant (the
    /// kernel swaps it for a timewait socket there), and sock_diag listing that timewait
    /// socket for the 4-tuple right afterwards.
    TracepointAndSockDiag,
}

/// One segment as the capture saw it leave its sender.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Microseconds since the first SYN (kernel timestamp of the capture, to the ns).
    pub t_us: f64,
    pub from: Side,
    /// The TCP flags set, in header order: "SYN", "ACK", "PSH", "FIN", "RST", …
    pub flags: Vec<String>,
    /// Sequence number as sent.
    pub seq: u32,
    /// Acknowledgment number as sent (0 when the ACK flag is clear).
    pub ack: u32,
    /// `seq` relative to the sender's initial sequence number.
    pub rel_seq: u32,
    /// `ack` relative to the peer's initial sequence number (0 without ACK).
    pub rel_ack: u32,
    /// Payload bytes.
    pub len: u32,
    /// The advertised window, unscaled.
    pub win: u16,
}

impl Segment {
    /// Whether `flag` ("SYN", "FIN", …) is set.
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The flags joined with `+`, e.g. "SYN+ACK".
    pub fn flag_label(&self) -> String {
        self.flags.join("+")
    }

    /// The sequence number after this segment: SYN and FIN each take one.
    pub fn end_seq(&self) -> u32 {
        self.seq
            .wrapping_add(self.len)
            .wrapping_add(u32::from(self.has("SYN")) + u32::from(self.has("FIN")))
    }
}

/// One end entering a state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    /// Microseconds since the first SYN (negative: before it, e.g. SYN_SENT).
    pub t_us: f64,
    pub side: Side,
    /// The state it left, when the source tells.
    pub from: Option<String>,
    /// The state it entered: SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT1, FIN_WAIT2,
    /// CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSING or CLOSED.
    pub state: String,
    pub observed: Observed,
}

/// One end's TIME_WAIT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeWait {
    pub side: Side,
    /// When it began, µs since the first SYN.
    pub t_us: f64,
    /// The kernel's timer when sock_diag first listed the socket: ms left (`idiag_expires`).
    pub expires_ms: u32,
    /// Milliseconds from its start to that listing.
    pub seen_after_ms: f64,
    /// How long it lasted, in seconds, when the trace waited for it to end
    /// (`--wait-time-wait`); to within [`TimeWait::resolution_ms`].
    pub measured_s: Option<f64>,
    /// The sampling step of `measured_s`, in ms.
    pub resolution_ms: Option<f64>,
}

impl TimeWait {
    /// Its length in seconds: measured when the trace waited, else start-to-sighting plus
    /// the kernel's timer at the sighting.
    pub fn seconds(&self) -> f64 {
        self.measured_s
            .unwrap_or((self.seen_after_ms + f64::from(self.expires_ms)) / 1000.0)
    }
}

/// How the connection ended, from its segments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Teardown {
    pub kind: TeardownKind,
    /// Segments of the close: the FINs and the ACKs of them (data in between not counted),
    /// or the segments from the first FIN/RST up to the RST.
    pub segments: u32,
    /// The side that sent the first FIN (the active closer).
    pub first_fin: Option<Side>,
    /// The side that sent an RST.
    pub rst_from: Option<Side>,
    /// Data segments sent between the first FIN and the end (a half-close's farewell).
    pub data_between: u32,
}

/// The shapes a close takes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeardownKind {
    /// FIN, ACK, FIN, ACK: the passive side acked the FIN before sending its own.
    FourWay,
    /// FIN, FIN+ACK, ACK: the passive side's ACK rode on its FIN.
    ThreeWay,
    /// Both FINs were sent before either was acked: both ends pass CLOSING.
    Simultaneous,
    /// An RST ended it (abortive close).
    Rst,
    /// The capture does not hold a complete close.
    Incomplete,
}

impl TeardownKind {
    /// The close as a reader of the textbook names it.
    pub fn words(self) -> &'static str {
        match self {
            TeardownKind::FourWay => "four segments: FIN, ACK, FIN, ACK",
            TeardownKind::ThreeWay => "three segments: FIN, FIN+ACK, ACK",
            TeardownKind::Simultaneous => "simultaneous: both FINs crossed, both ends in CLOSING",
            TeardownKind::Rst => "abortive: an RST, no FIN exchange",
            TeardownKind::Incomplete => "not captured whole",
        }
    }
}

/// A claim and its verdict from the capture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The claim's number in the seed text's list, 1–5.
    pub id: u8,
    pub claim: String,
    /// `Some(true)`: the capture shows it; `Some(false)`: it shows otherwise; `None`: this
    /// capture cannot tell (the detail says why).
    pub holds: Option<bool>,
    /// The numbers behind the verdict.
    pub detail: String,
}

/// The kernel's name of a TCP state number (include/net/tcp_states.h), as the textbook
/// writes it: TCP_CLOSE is CLOSED, TCP_NEW_SYN_RECV (a request socket) is SYN_RECV.
pub fn state_name(n: u8) -> &'static str {
    match n {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 | 12 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSED",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// Kernel state numbers the trace uses by name.
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const TIME_WAIT: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const LISTEN: u8 = 10;
}
