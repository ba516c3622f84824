//! Validated configuration: what `run` and `serve` will do, resolved once from the CLI.
//!
//! Nothing downstream re-parses or re-validates flags. Every type here serializes into the
//! report's `config` so a report says exactly what produced it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// For `first`/`rst`: close once this many bytes were echoed. `None`: after the first read.
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
        }
    }
}

/// Where the load goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// An echo server started in-process on an ephemeral loopback port for the run.
    Embedded(ServerConfig),
    /// Any echo server, given as `--target HOST:PORT`, resolved once.
    External(SocketAddr),
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
}

/// Everything `run` needs, validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunConfig {
    pub target: Target,
    pub load: LoadModel,
    pub bounds: Bounds,
    /// Connections before the measured ones, excluded from every figure.
    pub warmup: Option<Bounds>,
    pub payload: usize,
    pub requests: u32,
    /// Each connection stays open this long after its last echo, before it closes.
    #[serde(default, with = "opt_secs")]
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub hold: Option<Duration>,
    pub socket: ClientSocket,
    /// Bytes the server sends after the client's FIN, when known (embedded server).
    pub expect_farewell: Option<usize>,
    /// Client threads, each with its own single-threaded runtime.
    pub threads: usize,
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

fn usage<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

/// Most workers: far above what a process's descriptors allow anyway.
pub const MAX_CONCURRENCY: usize = 1_000_000;

/// How far ahead `--start-at` may be: a typo in the date would otherwise wait for years.
pub const MAX_START_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// Largest `--payload`.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// Whether connecting to `ip` stays on this host: loopback, or the unspecified address
/// (which Linux connects to loopback), IPv4-mapped forms included.
pub fn is_local(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || ip.is_unspecified()
}

fn cpus() -> usize {
    crate::cpu::count()
}

fn linger_secs(secs: Option<u32>) -> Option<Duration> {
    secs.map(|s| Duration::from_secs(s.into()))
}

impl ServerConfig {
    /// `tcpbench serve`'s flags, validated.
    pub fn from_serve_args(a: &crate::cli::ServeArgs) -> Result<Self, UsageError> {
        let cfg = ServerConfig {
            listen: a.listen,
            backlog: a.backlog,
            reuseaddr: !a.no_reuseaddr,
            reuseport: a.reuseport,
            workers: a.workers,
            pin: a.pin,
            linger: linger_secs(a.linger),
            close: a.close,
            close_after: a.close_after,
            farewell: a.farewell,
            nodelay: a.nodelay,
            max_conns: a.max_conns,
            idle_timeout: a.idle_timeout,
            max_payload: a.max_payload,
            accept_delay: a.accept_delay.filter(|d| !d.is_zero()),
            echo_delay: a.echo_delay.filter(|d| !d.is_zero()),
        };
        cfg.validate("")?;
        Ok(cfg)
    }

    /// Checks shared by `serve` and the embedded server; `prefix` is "" or "server-".
    fn validate(&self, prefix: &str) -> Result<(), UsageError> {
        if self.workers == 0 {
            return usage(format!("--{prefix}workers must be at least 1"));
        }
        if self.backlog == 0 {
            return usage(format!("--{prefix}backlog must be at least 1"));
        }
        if self.max_conns == Some(0) {
            return usage("--max-conns must be at least 1");
        }
        if self.close == ServerClose::Rst && self.linger.is_some_and(|l| !l.is_zero()) {
            return usage(format!(
                "--{prefix}close rst already closes with SO_LINGER 0; drop --{prefix}linger"
            ));
        }
        if self.close == ServerClose::Wait && self.close_after.is_some() {
            return usage("--close-after needs --close first or --close rst");
        }
        Ok(())
    }
}

impl RunConfig {
    /// `tcpbench run`'s flags, validated.
    pub fn from_args(a: &crate::cli::RunArgs) -> Result<Self, UsageError> {
        use crate::parse::CountOrDuration;

        if a.concurrency == 0 || a.concurrency > MAX_CONCURRENCY {
            return usage(format!("--concurrency must be from 1 to {MAX_CONCURRENCY}"));
        }
        let load = match a.rate {
            None => LoadModel::Closed {
                concurrency: a.concurrency,
            },
            Some(r) if r.is_finite() && r > 0.0 => LoadModel::Open {
                rate: r,
                concurrency: a.concurrency,
            },
            Some(r) => {
                return usage(format!(
                    "--rate {r}: give a positive number of connections/s"
                ));
            }
        };
        if let Some(at) = a.start_at
            && at
                .duration_since(std::time::SystemTime::now())
                .is_ok_and(|ahead| ahead > MAX_START_AHEAD)
        {
            return usage(format!(
                "--start-at {} is more than a day ahead; give a time within a day, or +D from now",
                humantime::format_rfc3339_seconds(at)
            ));
        }
        let mut bounds = Bounds {
            conns: a.conns.or(if a.duration.is_none() {
                Some(10_000)
            } else {
                None
            }),
            duration: a.duration,
        };
        let mut load = load;
        let agent = match (a.agents, a.agent_index) {
            (None, _) if a.agent_id.is_none() => None,
            (Some(0), _) => return usage("--agents must be at least 1"),
            (Some(n), Some(i)) if i >= n => {
                return usage(format!(
                    "--agent-index {i} is not one of --agents {n} (they count from 0 to {})",
                    n - 1
                ));
            }
            (agents, index) => {
                let (agents, index) = (agents.unwrap_or(1), index.unwrap_or(0));
                let agent = Agent {
                    id: a
                        .agent_id
                        .clone()
                        .unwrap_or_else(crate::environment::hostname),
                    index,
                    agents,
                    total_conns: bounds.conns,
                    total_rate: load.rate(),
                };
                if let Some(total) = bounds.conns {
                    let mine = share(total, index, agents);
                    if mine == 0 {
                        return usage(format!(
                            "--conns {total} over --agents {agents} leaves agent {index} nothing; give at least one connection per agent"
                        ));
                    }
                    bounds.conns = Some(mine);
                }
                if let LoadModel::Open { rate, concurrency } = load {
                    load = LoadModel::Open {
                        rate: rate / f64::from(agents),
                        concurrency,
                    };
                }
                Some(agent)
            }
        };
        if bounds.conns == Some(0) {
            return usage("--conns must be at least 1");
        }
        if bounds.duration.is_some_and(|d| d.is_zero()) {
            return usage("--duration must be longer than 0s");
        }
        let warmup = a.warmup.and_then(|w| match w {
            CountOrDuration::Count(0) => None,
            CountOrDuration::Count(n) => Some(Bounds {
                conns: Some(n),
                duration: None,
            }),
            CountOrDuration::Duration(d) if d.is_zero() => None,
            CountOrDuration::Duration(d) => Some(Bounds {
                conns: None,
                duration: Some(d),
            }),
        });
        if a.payload > MAX_PAYLOAD {
            return usage(format!(
                "--payload {} is over the {MAX_PAYLOAD}-byte limit",
                a.payload
            ));
        }
        if a.payload == 0 && a.requests > 0 {
            return usage("--payload 0 sends nothing to echo; use --requests 0 for connect-close");
        }
        if a.close == CloseMode::Rst && a.linger.is_some_and(|l| l > 0) {
            return usage("--close rst already closes with SO_LINGER 0; drop --linger");
        }
        if !a.sysctl.is_empty() && !a.isolate {
            return usage(
                "--sysctl would change the host's settings; add --isolate to set it in the run's own namespace",
            );
        }
        if a.isolate && a.target.as_ref().is_some_and(|t| !t.ip().is_loopback()) {
            return usage(
                "--isolate runs in a namespace with only a loopback; a remote --target is unreachable from it",
            );
        }
        if a.sample_interval < Duration::from_millis(1) {
            return usage("--sample-interval must be at least 1ms");
        }
        if a.threads == Some(0) {
            return usage("--threads must be at least 1");
        }
        let threads = a.threads.unwrap_or(cpus()).min(a.concurrency);
        // Pinning pairs client and server threads; alone, a client has nothing to pair with.
        let pin = !a.no_pin && (a.pin || a.target.is_none());
        if let Some(t) = a.target
            && !is_local(t.ip())
            && !a.allow_remote
        {
            return usage(format!(
                "--target {t} is not on this host; add --allow-remote to load a server you run elsewhere"
            ));
        }
        let target = match a.target {
            Some(addr) => {
                if a.server.any_given() {
                    return usage(
                        "--server-* options configure the embedded server; drop them or drop --target",
                    );
                }
                Target::External(addr)
            }
            None => Target::Embedded(Self::embedded_server(a, threads, pin)?),
        };
        let target_ip = match &target {
            Target::External(addr) => addr.ip(),
            Target::Embedded(s) => s.listen.ip(),
        };
        let bind = a.bind.clone().map(|l| l.0).unwrap_or_default();
        if let Some(ip) = bind.iter().find(|ip| ip.is_ipv4() != target_ip.is_ipv4()) {
            return usage(format!(
                "--bind {ip} is not of the target's address family ({target_ip}); bind addresses of the same family"
            ));
        }
        let ports = match (a.port_strategy, a.port_range) {
            (crate::cli::PortArg::Kernel, None) => PortStrategy::Kernel,
            (crate::cli::PortArg::BindNoPort, None) => PortStrategy::BindNoPort,
            (crate::cli::PortArg::Explicit, range) => {
                let (lo, hi) = range.unwrap_or((2000, 31999));
                PortStrategy::Explicit { lo, hi }
            }
            (_, Some(_)) => return usage("--port-range goes with --port-strategy explicit"),
        };
        if ports == PortStrategy::BindNoPort && a.bind.is_none() {
            return usage(
                "--port-strategy bind-no-port needs --bind addresses (without one it is the kernel's own choice)",
            );
        }
        if matches!(ports, PortStrategy::Explicit { .. })
            && a.bind.as_ref().is_some_and(|b| b.0.len() > 1)
        {
            return usage(
                "--port-strategy explicit takes one --bind address at most; use bind-no-port to spread over several",
            );
        }
        let expect_farewell = match &target {
            Target::Embedded(s) if s.close == ServerClose::Wait => Some(s.farewell),
            _ => None,
        };
        Ok(RunConfig {
            target,
            load,
            bounds,
            warmup,
            payload: a.payload,
            requests: a.requests,
            hold: a.hold.filter(|h| !h.is_zero()),
            socket: ClientSocket {
                close: a.close,
                linger: linger_secs(a.linger),
                reuseaddr: a.reuseaddr
                    || (matches!(ports, PortStrategy::Explicit { .. }) && !a.no_reuseaddr),
                nodelay: a.nodelay,
                bind,
                ports,
                connect_timeout: a.connect_timeout,
                io_timeout: a.io_timeout,
            },
            expect_farewell,
            threads,
            pin,
            max_errors: a.max_errors,
            isolate: a.isolate,
            sysctls: a.sysctl.clone(),
            sample_interval: a.sample_interval,
            drain: a.drain,
            start_at: a.start_at,
            agent,
        })
    }

    /// The embedded server, its close policy following the client's close mode unless given.
    /// One server worker per client thread by default: with more workers than flows, a
    /// connection often lands on a sleeping worker and pays for waking it (measured: 1 flow
    /// ran at half the rate with 2 SO_REUSEPORT workers; 16 flows 20% faster).
    fn embedded_server(
        a: &crate::cli::RunArgs,
        threads: usize,
        pin: bool,
    ) -> Result<ServerConfig, UsageError> {
        let s = &a.server;
        let close = s.server_close.unwrap_or(match a.close {
            CloseMode::Client | CloseMode::ClientNowait | CloseMode::Rst => ServerClose::Wait,
            CloseMode::Server => ServerClose::First,
        });
        if s.server_farewell.is_some_and(|f| f > 0) && a.close != CloseMode::Client {
            return usage(
                "--server-farewell is read by the client's close phase; use it with --close client",
            );
        }
        if a.close == CloseMode::Server && close == ServerClose::Wait {
            return usage(
                "--close server with --server-close wait would hang (each side waits for the other's FIN); use --server-close first",
            );
        }
        let defaults = ServerConfig::default();
        let cfg = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            backlog: s.server_backlog.unwrap_or(defaults.backlog),
            reuseaddr: !s.server_no_reuseaddr,
            reuseport: !s.server_no_reuseport,
            workers: s.server_workers.unwrap_or(threads),
            pin,
            linger: linger_secs(s.server_linger),
            close,
            // The server's "first message" is everything this client will send.
            close_after: (close != ServerClose::Wait)
                .then(|| a.payload as u64 * u64::from(a.requests)),
            farewell: s.server_farewell.unwrap_or(0),
            nodelay: s.server_nodelay,
            accept_delay: s.server_accept_delay.filter(|d| !d.is_zero()),
            echo_delay: s.server_echo_delay.filter(|d| !d.is_zero()),
            ..defaults
        };
        cfg.validate("server-")?;
        Ok(cfg)
    }
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
