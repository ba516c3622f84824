//! The `Report`: everything a run measured, as one serde value. Renderers (text, JSON, .hgrm)
//! are small functions of it, testable from a hand-made report.

mod build;
pub mod figures;
pub use crate::hdr;
pub mod hgrm;
pub mod hlog;
pub mod html;
pub mod json;
pub mod markdown;
pub mod merge;
pub mod schema;
pub mod table;
pub mod text;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::environment::Environment;
use crate::failure::{ErrorKind, Phase};
pub use crate::hdr::Hdr;
use crate::observe::Kernel;
use crate::observe::cpu::CpuCost;
use crate::observe::sampler::{TcpStates, TimeWait};
use crate::server::ServerTotals;
pub use crate::stats::PhaseStats;
use crate::stats::Tick;
use crate::stats::{Closes, Metric};
pub use build::Measured;

/// The schema name written into every report; bump on incompatible changes.
pub const SCHEMA: &str = "tcpbench.report.v1";

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    #[schemars(extend("const" = SCHEMA))]
    pub schema: String,
    /// tcpbench's version.
    pub version: String,
    /// When the measured part began, RFC 3339 (UTC).
    #[schemars(extend("format" = "date-time"))]
    pub started_at: String,
    /// Length of the measured part, in seconds.
    pub duration_s: f64,
    /// Every resolved client and server option.
    pub config: RunConfig,
    /// The address actually loaded (the embedded server's kernel-chosen port included).
    pub target_addr: SocketAddr,
    pub environment: Environment,
    pub totals: Totals,
    /// Successful connections per second over the measured part.
    pub rate_cps: f64,
    pub errors: Vec<ErrorCount>,
    /// A signal ended the run early: the figures cover what was done until then.
    pub interrupted: bool,
    /// Why the run was stopped early for its errors (--max-errors, a target that is down);
    /// null when it was not.
    #[serde(default)]
    pub aborted: Option<String>,
    pub latency: Latency,
    /// Open loop only: latency from each connection's scheduled start (coordinated omission
    /// corrected, as wrk2 reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_from_schedule: Option<ScheduledLatency>,
    /// The embedded server's own counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerTotals>,
    /// Kernel counter deltas and sysctls over the measured part.
    #[serde(default)]
    pub kernel: Kernel,
    /// CPU time: tcpbench's own and the machine's.
    #[serde(default)]
    pub cpu: CpuCost,
    /// One line per figure that points to a known cause, with the fix.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// TIME_WAIT peaks and ends per side, from the sampler.
    #[serde(default)]
    pub time_wait: TimeWait,
    /// TIME_WAIT hit net.ipv4.tcp_max_tw_buckets: the kernel closed sockets without it
    /// (TCPTimeWaitOverflow), so close figures are not those of normal closes.
    #[serde(default)]
    pub saturated: bool,
    /// The run's sockets by TCP state over time.
    #[serde(default)]
    pub tcp_states: TcpStates,
    /// Connections ended since the start, every 100 ms: the connection rate over time.
    #[serde(default)]
    pub timeline: Vec<Tick>,
    /// With `--repeat N`: each run's figures, and their median and range. The rest of the
    /// report is the runs merged (histograms merged, counts added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<figures::Repeats>,
    /// A merged report (`tcpbench merge`): each agent's run. The rest of the report is them
    /// merged: histograms added, counts summed, time series on a common wall-clock axis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentRun>,
    /// With `--hlog`: the latency of each interval, written only as the interval log
    /// (`report::hlog`), never in the JSON.
    #[serde(skip)]
    pub intervals: Option<crate::stats::interval::IntervalLog>,
}

/// One agent's run in a merged report.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentRun {
    /// `--agent-id`, or the hostname.
    pub id: String,
    pub index: Option<u32>,
    #[schemars(extend("format" = "date-time"))]
    pub started_at: String,
    pub duration_s: f64,
    pub rate_cps: f64,
    pub totals: Totals,
    pub config: RunConfig,
    pub environment: Environment,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Totals {
    pub attempted: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Of `bytes_received`, those the servers sent after the client's FIN (a half-close
    /// farewell, `--close client`).
    #[serde(default)]
    pub farewell_bytes: u64,
    /// Of `succeeded`, the connections whose SYN the kernel retransmitted (TCP_INFO
    /// `tcpi_total_retrans` after the handshake): each paid a retransmission timeout.
    #[serde(default)]
    pub syn_retransmitted: u64,
    /// How the established connections ended, observed by the client's syscalls (not the
    /// configured close): who sent the first FIN, or an RST. Failed connections included.
    #[serde(default)]
    pub closes: Closes,
}

/// Failures of one phase and kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorCount {
    pub phase: Phase,
    pub kind: ErrorKind,
    /// The errno's symbolic name, when the kernel gave one.
    pub errno: Option<String>,
    /// The HTTP status of an `http_status` failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub count: u64,
}

impl ErrorCount {
    /// The kind, with its HTTP status when it has one: `http_status 404`.
    pub fn kind_label(&self) -> String {
        match self.status {
            Some(status) => format!("{} {status}", self.kind),
            None => self.kind.to_string(),
        }
    }
}

/// The phases' distributions. `echo` is the exchange phase of every protocol: one
/// request's round trip (schema v1 keeps the name; text and Markdown say `exchange` when the
/// protocol is not echo).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Latency {
    pub connect: PhaseStats,
    /// The kernel's RTT sample of each handshake (TCP_INFO `tcpi_rtt`, µs resolution): the
    /// wire's part of `connect`. Under Fast Open a data-in-SYN handshake runs in the first
    /// exchange, and its sample is read after that exchange. Empty with `--no-tcp-info` and
    /// in reports from before it.
    #[serde(default)]
    pub handshake_rtt: PhaseStats,
    pub echo: PhaseStats,
    pub close: PhaseStats,
    pub total: PhaseStats,
    /// Failed attempts: from socket() to the failure (a connect timeout shows as its timeout).
    #[serde(default)]
    pub failed: PhaseStats,
    /// Open loop only: each connection's actual start minus its scheduled start, every
    /// attempt counted. How well the schedule was kept: the pacer's precision, the machine's
    /// wake-ups, and queueing when every worker was busy (`latency_from_schedule.queued`).
    /// Null in closed loop.
    #[serde(default)]
    pub start_lag: Option<PhaseStats>,
}

impl Latency {
    pub fn get(&self, m: Metric) -> &PhaseStats {
        match m {
            Metric::Connect => &self.connect,
            Metric::HandshakeRtt => &self.handshake_rtt,
            Metric::Echo => &self.echo,
            Metric::Close => &self.close,
            Metric::Total => &self.total,
            Metric::Failed => &self.failed,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScheduledLatency {
    pub connect: PhaseStats,
    pub total: PhaseStats,
    /// Connections whose scheduled start had passed before a worker was free to take them:
    /// all `--concurrency` workers were busy (queueing, what these figures exist to show).
    #[serde(default)]
    pub queued: u64,
}

impl Report {
    /// The configuration as the whole run asked for it: an agent's share replaced by the
    /// run's totals, and who and when left out, so that the agents of one run, and their
    /// merged report, have equal configurations.
    pub fn run_config(&self) -> serde_json::Value {
        let agents = self.config.agent.as_ref().map(|a| a.agents);
        let mut c = self.config.whole_run();
        c.start_at = None;
        // Whether the latency was also logged per interval is not how the run loaded.
        c.hlog_interval = None;
        let mut v = serde_json::to_value(&c).unwrap_or_default();
        // How many agents share the run is part of it; which one this is, is not.
        if let (Some(n), Some(obj)) = (agents, v.as_object_mut()) {
            obj.insert("agents".into(), n.into());
        }
        // Where an external server is reached is not how it is loaded: A/B servers compare.
        if let Some(t) = v.pointer_mut("/target/external") {
            *t = "HOST:PORT".into();
        }
        v
    }

    /// The configuration keys (dotted JSON paths) whose values differ from `other`'s.
    pub fn config_changes(&self, other: &Report) -> Vec<String> {
        self.config_changes_but(other, &[])
    }

    /// The same, leaving out the top-level keys `ignored`.
    pub(crate) fn config_changes_but(&self, other: &Report, ignored: &[&str]) -> Vec<String> {
        let without = |mut v: serde_json::Value| {
            if let Some(obj) = v.as_object_mut() {
                obj.retain(|k, _| !ignored.contains(&k.as_str()));
            }
            v
        };
        let mut out = Vec::new();
        diff(
            "",
            &without(self.run_config()),
            &without(other.run_config()),
            &mut out,
        );
        out
    }

    /// The kernel counters that moved, as "Name +delta".
    pub fn moved_counters(&self) -> Vec<String> {
        self.kernel
            .counters
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|(k, v)| format!("{k} {v:+}"))
            .collect()
    }

    /// What the text and Markdown call metric `m`: the echo phase is the exchange of every
    /// other protocol (its key stays `echo`).
    pub fn label(&self, m: Metric) -> &'static str {
        match m {
            Metric::Echo if !self.config.protocol.is_echo() => "exchange",
            m => m.name(),
        }
    }

    /// What the text and Markdown call phase `p` (see [`Report::label`]).
    pub fn phase_label(&self, p: Phase) -> String {
        match p {
            Phase::Echo => self.label(Metric::Echo).to_string(),
            p => p.to_string(),
        }
    }

    /// 0 when every connection succeeded, 1 when any failed.
    pub fn exit_code(&self) -> i32 {
        if self.totals.failed == 0 { 0 } else { 1 }
    }
}

/// Collects the paths at which two JSON values differ.
fn diff(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value::Object;
    match (a, b) {
        (Object(x), Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let null = serde_json::Value::Null;
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(
                    &p,
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod fixture {
    //! A hand-made report for renderer tests.
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::failure::Failure;
    use crate::stats::Recorder;
    use clap::Parser;
    use std::time::SystemTime;

    pub fn report() -> Report {
        let cli = Cli::parse_from(["tcpbench", "run", "--conns", "3"]);
        let Some(Command::Run(args)) = cli.command else {
            unreachable!()
        };
        let cfg = RunConfig::from_args(&args).unwrap();
        let mut rec = Recorder::default();
        for (i, ns) in [20_000u64, 30_000, 40_000].into_iter().enumerate() {
            rec.attempted += 1;
            rec.succeeded += 1;
            rec.record(Metric::Connect, ns);
            rec.record(Metric::Echo, ns * 2);
            rec.record(Metric::Close, ns * 3);
            rec.record(Metric::Total, ns * 6 + i as u64);
        }
        rec.attempted += 1;
        rec.record_failure(
            Failure::from_io(
                Phase::Connect,
                &std::io::Error::from_raw_os_error(libc::ECONNREFUSED),
            ),
            15_000,
        );
        rec.bytes_sent = 192;
        rec.bytes_received = 192;
        Report::build(
            &cfg,
            Measured {
                recorder: rec,
                started_at: SystemTime::UNIX_EPOCH,
                duration_s: 0.5,
                interrupted: false,
                aborted: None,
                target_addr: "127.0.0.1:4000".parse().unwrap(),
                server: None,
                environment: Environment::default(),
                kernel: Kernel::default(),
                cpu: CpuCost::default(),
                tcp_states: TcpStates::default(),
                time_wait: TimeWait::default(),
                hints: Vec::new(),
                timeline: Vec::new(),
                intervals: None,
            },
        )
    }
}
