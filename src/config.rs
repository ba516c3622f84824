//! Validated configuration: what `run` and `serve` will do, as [`crate::cli::resolve`] builds
//! it once from the flags; this module knows nothing of the command line.
//!
//! Nothing downstream re-parses or re-validates flags. Every type here serializes into the
//! report's `config` so a report says exactly what produced it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod protocol;

pub use protocol::{
    DEFAULT_MAX_RESPONSE, HttpConfig, ProtocolConfig, RawConfig, RawEndConfig, RespConfig,
    ServerProtocol,
};

/// How the client ends each connection.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CloseMode {
    /// shutdown(SHUT_WR), read to EOF, close: the client closes first and holds TIME_WAIT.
    Client,
    /// close() right after the last echo, without waiting for the server's FIN (neper's
    /// tcp_crr, the C reference's crr): the client still closes first and holds TIME_WAIT.
    ClientNowait,
    /// Wait for the server's FIN, then close: the server closes first and holds TIME_WAIT.
    Server,
    /// SO_LINGER 0, then close: an abortive close (RST), no TIME_WAIT on either side.
    Rst,
}

/// How the echo server ends each connection.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ServerClose {
    /// Passive close: echo until the client's FIN, then shutdown(SHUT_WR) and close.
    Wait,
    /// Active close: close after echoing the first message; the server holds TIME_WAIT.
    First,
    /// Abortive close after echoing the first message: SO_LINGER 0, then close (RST).
    Rst,
}

/// Writes the flag value, as typed on the command line.
fn write_value(v: &impl clap::ValueEnum, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str(
        v.to_possible_value()
            .expect("no variant is skipped")
            .get_name(),
    )
}

impl std::fmt::Display for CloseMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_value(self, f)
    }
}

impl std::fmt::Display for ServerClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_value(self, f)
    }
}

/// Which executor drives the client's connections (`--engine`; `auto` is resolved to one of
/// these before the run).
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// A single-threaded tokio runtime per load thread, each connection a task (epoll).
    /// Reports from before `--engine` were all made by it.
    #[default]
    Tokio,
    /// An io_uring per load thread, driving all of its connections from completions.
    Uring,
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_value(self, f)
    }
}

/// Settings of the echo server, for `serve` and for the server embedded in `run`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub backlog: u32,
    pub reuseaddr: bool,
    pub reuseport: bool,
    /// OS threads, each with its own single-threaded runtime.
    pub workers: usize,
    /// Worker *i* runs on CPU *i* and, with SO_REUSEPORT, gets the connections whose SYN
    /// arrives on that CPU (see `cpu`).
    #[serde(default)]
    pub pin: bool,
    /// SO_LINGER on accepted sockets; `Some(0)` makes every close an RST.
    #[serde(default, with = "opt_secs")]
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub linger: Option<Duration>,
    pub close: ServerClose,
    /// For `first`/`rst`: close once this many bytes were echoed (with `protocol` http or
    /// resp: this many requests answered). `None`: after the first read (the first answer).
    pub close_after: Option<u64>,
    /// Bytes sent after the client's FIN and before the server's own FIN (half-close).
    pub farewell: usize,
    pub nodelay: bool,
    /// Connections served at once; further ones wait in the accept queue.
    pub max_conns: Option<usize>,
    /// A connection that sends nothing for this long is closed.
    #[serde(default, with = "opt_secs")]
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub idle_timeout: Option<Duration>,
    /// A connection that sends more than this is closed.
    pub max_payload: Option<u64>,
    /// Each worker waits this long before each accept(): a slow acceptor, so the accept
    /// queue fills (a backlog test), or a regression to catch.
    #[serde(default, with = "opt_secs")]
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub accept_delay: Option<Duration>,
    /// Wait this long before echoing each read: a slow application.
    #[serde(default, with = "opt_secs")]
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub echo_delay: Option<Duration>,
    /// What the server answers: echo, or the minimal HTTP or RESP responder.
    #[serde(default)]
    pub protocol: ServerProtocol,
    /// TCP_FASTOPEN on the listener: this many pending Fast Open requests (data in the SYN
    /// accepted before the handshake ends); `None`: Fast Open off.
    #[serde(default)]
    pub fastopen: Option<u32>,
    /// TCP_DEFER_ACCEPT: a connection is queued for accept() only once data (or a FIN)
    /// arrives, or after about this long.
    #[serde(default, with = "opt_secs")]
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub defer_accept: Option<Duration>,
    /// TCP_QUICKACK after each read: ACK at once instead of delaying the ACK.
    #[serde(default)]
    pub quickack: bool,
    /// The workers run SCHED_BATCH: woken by a connection, a worker does not preempt the
    /// thread on its CPU but runs when that one blocks. The embedded server's workers share
    /// CPUs with the client's threads, which then take their edges undisturbed: a pinned
    /// 1-flow client's connect() no longer returns only after the server has accepted and
    /// read (`README.md`, "What is measured"). `serve` leaves the policy alone.
    #[serde(default)]
    pub batch: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8888)),
            backlog: 1024,
            reuseaddr: true,
            reuseport: false,
            workers: 1,
            pin: false,
            batch: false,
            linger: None,
            close: ServerClose::Wait,
            close_after: None,
            farewell: 0,
            nodelay: false,
            max_conns: None,
            idle_timeout: None,
            max_payload: None,
            accept_delay: None,
            echo_delay: None,
            protocol: ServerProtocol::Echo,
            fastopen: None,
            defer_accept: None,
            quickack: false,
        }
    }
}

/// Where the load goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The embedded server (echo, or the responder of the run's protocol), started
    /// in-process on an ephemeral loopback port for the run.
    Embedded(ServerConfig),
    /// Any server that speaks the run's protocol, given as `--target HOST:PORT`, resolved
    /// once: the address loaded (when the name resolved to several, the first that answered
    /// the run's probe; [`RunConfig::target_name`] lists them all).
    External(SocketAddr),
}

/// `--target HOST:PORT` as typed, and every address it resolved to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TargetName {
    /// As typed: `localhost:8888`.
    pub name: String,
    /// The addresses in the resolver's order (getaddrinfo's RFC 6724 sort: `::1` before
    /// `127.0.0.1` for localhost), each once. Never empty.
    pub resolved: Vec<SocketAddr>,
}

impl TargetName {
    /// Whether it was typed as a name rather than as one address (`127.0.0.1:80`, `[::1]:80`).
    pub fn is_name(&self) -> bool {
        self.name.parse::<SocketAddr>().is_err()
    }

    /// The address a run loads unless a probe says otherwise: the resolver's first.
    pub fn first(&self) -> SocketAddr {
        self.resolved[0]
    }
}

/// Closed loop (a fixed number of workers) or open loop (a fixed schedule of starts).
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoadModel {
    /// `concurrency` workers, each starting its next connection when the last one ended.
    Closed { concurrency: usize },
    /// Connection `i` is scheduled at `start + i / rate`; `concurrency` workers serve the
    /// schedule, and latency is also measured from the scheduled start (wrk2's correction).
    Open { rate: f64, concurrency: usize },
}

impl LoadModel {
    pub fn concurrency(&self) -> usize {
        match *self {
            LoadModel::Closed { concurrency } | LoadModel::Open { concurrency, .. } => concurrency,
        }
    }

    pub fn rate(&self) -> Option<f64> {
        match *self {
            LoadModel::Open { rate, .. } => Some(rate),
            LoadModel::Closed { .. } => None,
        }
    }
}

/// When a phase of the load stops starting new connections: whichever bound comes first.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Bounds {
    pub conns: Option<u64>,
    #[serde(default, with = "opt_secs")]
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub duration: Option<Duration>,
}

/// How a client socket gets its local port.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case", tag = "strategy")]
pub enum PortStrategy {
    /// connect() picks an ephemeral port, as real clients do. When TIME_WAIT fills
    /// ip_local_port_range, that search gets expensive: it shows in connect latency.
    #[default]
    Kernel,
    /// bind() each socket to the next port of `lo..=hi` (SO_REUSEADDR), cycling, as netperf
    /// does: no search at connect(). Ports in use are skipped.
    Explicit { lo: u16, hi: u16 },
    /// bind(source, 0) with IP_BIND_ADDRESS_NO_PORT: the port is picked at connect() for the
    /// whole 4-tuple (what `--bind` uses too).
    BindNoPort,
}

/// Options of every client socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClientSocket {
    pub close: CloseMode,
    #[serde(default, with = "opt_secs")]
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub linger: Option<Duration>,
    pub reuseaddr: bool,
    pub nodelay: bool,
    /// Source addresses, used round-robin; empty: the kernel chooses.
    pub bind: Vec<IpAddr>,
    #[serde(default)]
    pub ports: PortStrategy,
    #[serde(with = "secs")]
    #[schemars(with = "f64", range(min = 0.0))]
    pub connect_timeout: Duration,
    #[serde(with = "secs")]
    #[schemars(with = "f64", range(min = 0.0))]
    pub io_timeout: Duration,
    /// One getsockopt(TCP_INFO) after each handshake: the kernel's RTT sample of it and its
    /// SYN retransmissions (`--no-tcp-info` turns it off). Reports from before it have none.
    #[serde(default)]
    pub tcp_info: bool,
    /// TCP_FASTOPEN_CONNECT: the first request rides in the SYN once a cookie is cached.
    #[serde(default)]
    pub fastopen: bool,
    /// TCP_SYNCNT: SYN retransmits before connect() gives up; `None`: net.ipv4.tcp_syn_retries.
    #[serde(default)]
    pub syn_retries: Option<u8>,
}

/// Everything `run` needs, validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunConfig {
    pub target: Target,
    /// `--target` given as a name: the name and every address it resolved to. With several,
    /// the run probes them in order (one connect each, closed with an RST) and loads the
    /// first that answers; `target` is that one in the report. Absent for an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<TargetName>,
    pub load: LoadModel,
    pub bounds: Bounds,
    /// Connections before the measured ones, excluded from every figure.
    pub warmup: Option<Bounds>,
    /// Bytes per request of the echo protocol.
    pub payload: usize,
    pub requests: u32,
    /// What each request and response is (`--protocol`).
    #[serde(default)]
    pub protocol: ProtocolConfig,
    /// A response larger than this fails as `response_too_large` (`--max-response`).
    #[serde(default = "default_max_response")]
    pub max_response: usize,
    /// Each connection stays open this long after its last echo, before it closes.
    #[serde(default, with = "opt_secs")]
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub hold: Option<Duration>,
    pub socket: ClientSocket,
    /// Bytes the server sends after the client's FIN, when known (embedded server).
    pub expect_farewell: Option<usize>,
    /// Client threads, each with its own single-threaded runtime (tokio) or ring (uring).
    pub threads: usize,
    /// The executor that drove the client's connections.
    #[serde(default)]
    pub engine: Engine,
    /// Why `--engine auto` did not take the io_uring engine: said on stderr and kept in the
    /// report's hints, not part of the configuration (two runs differ by `engine`).
    #[serde(skip)]
    #[schemars(skip)]
    pub engine_note: Option<String>,
    /// Client thread *i* runs on CPU *i* (beside server worker *i*, when embedded).
    #[serde(default)]
    pub pin: bool,
    /// Stop once this many (or this share of) connections failed.
    #[serde(default, deserialize_with = "error_limit_v1")]
    #[schemars(with = "Option<StoredErrorLimit>")]
    pub max_errors: Option<ErrorLimit>,
    /// The run happens in a fresh network namespace of its own.
    #[serde(default)]
    pub isolate: bool,
    /// Measure the embedded server's accept wait (tracepoint, root; `--no-accept-wait`
    /// turns it off). Reports from before it have none.
    #[serde(default)]
    pub accept_wait: bool,
    /// Network sysctls set in that namespace for the run.
    #[serde(default)]
    pub sysctls: Vec<(String, String)>,
    /// The socket-state sampler's tick (0 in reports from before the sampler).
    #[serde(default, with = "secs")]
    #[schemars(with = "f64", range(min = 0.0))]
    pub sample_interval: Duration,
    /// How long the sampler goes on after the load.
    #[serde(default, with = "secs")]
    #[schemars(with = "f64", range(min = 0.0))]
    pub drain: Duration,
    /// Wait for this wall-clock instant before starting (RFC 3339).
    #[serde(default, with = "opt_rfc3339")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub start_at: Option<std::time::SystemTime>,
    /// One agent of a distributed run; `bounds` and `load` hold this agent's share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
    /// `--hlog`'s interval: the measured load's latency is also kept per interval this long,
    /// for the HdrHistogram interval log. Absent without `--hlog`.
    #[serde(default, with = "opt_secs", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub hlog_interval: Option<Duration>,
}

fn default_max_response() -> usize {
    DEFAULT_MAX_RESPONSE
}

/// When failures stop a run early.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorLimit {
    /// This many failed connections.
    Count(u64),
    /// This share (0..=1) of the connections so far, once there are enough to tell.
    Ratio(f64),
}

/// `max_errors` as reports hold it: `{"count": N}`, `{"ratio": R}`, or the bare count that
/// v1 reports held before --max-errors took a share.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum StoredErrorLimit {
    Count(u64),
    Limit(ErrorLimit),
}

/// Reads `max_errors` in either form.
fn error_limit_v1<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ErrorLimit>, D::Error> {
    Ok(
        Option::<StoredErrorLimit>::deserialize(d)?.map(|l| match l {
            StoredErrorLimit::Count(n) => ErrorLimit::Count(n),
            StoredErrorLimit::Limit(l) => l,
        }),
    )
}

/// Who this agent is in a run of several, and what the whole run asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Agent {
    pub id: String,
    pub index: u32,
    pub agents: u32,
    /// `--conns` of the whole run.
    pub total_conns: Option<u64>,
    /// `--rate` of the whole run.
    pub total_rate: Option<f64>,
}

impl RunConfig {
    /// The configuration of the whole run this agent is part of: the totals in place of
    /// this agent's share, and no agent.
    pub fn whole_run(&self) -> RunConfig {
        let mut c = self.clone();
        if let Some(agent) = c.agent.take() {
            c.bounds.conns = agent.total_conns;
            if let (LoadModel::Open { rate, .. }, Some(total)) = (&mut c.load, agent.total_rate) {
                *rate = total;
            }
        }
        c
    }
}

/// The share of `total` that agent `index` of `agents` takes: an even split, the first
/// `total % agents` agents one more.
pub fn share(total: u64, index: u32, agents: u32) -> u64 {
    let (n, i) = (u64::from(agents), u64::from(index));
    total / n + u64::from(i < total % n)
}

/// `Duration` as seconds (f64) in reports.
pub(crate) mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

/// `Option<SystemTime>` as RFC 3339 (UTC) or null in reports.
pub(crate) mod opt_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&humantime::format_rfc3339_millis(*t).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|v| humantime::parse_rfc3339_weak(&v).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `Option<Duration>` as seconds (f64) or null in reports.
pub(crate) mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|v| Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Bad usage: one line that names the flag and the fix. Exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Most workers: far above what a process's descriptors allow anyway.
pub const MAX_CONCURRENCY: usize = 1_000_000;

/// How far ahead `--start-at` may be: a typo in the date would otherwise wait for years.
pub const MAX_START_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// Shortest `--hlog-interval`: the supervisor collects the threads' intervals every 100 ms.
pub const MIN_HLOG_INTERVAL: Duration = Duration::from_millis(100);
/// Longest `--hlog-interval`.
pub const MAX_HLOG_INTERVAL: Duration = Duration::from_secs(3600);

/// Slowest `--rate`, in connections/s: one per 1,000 s (slower is no schedule, it is a wait).
pub const MIN_RATE: f64 = 0.001;
/// Fastest `--rate`, in connections/s: far past what one host opens.
pub const MAX_RATE: f64 = 10_000_000.0;

/// Largest `--payload`.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// Whether connecting to `ip` stays on this host: loopback, or the unspecified address
/// (which Linux connects to loopback), IPv4-mapped forms included.
pub fn is_local(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || ip.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::is_local;

    #[test]
    fn local_targets() {
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_local(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["192.0.2.1", "10.0.0.1", "::ffff:192.0.2.1", "2001:db8::1"] {
            assert!(!is_local(ip.parse().unwrap()), "{ip}");
        }
    }
}
