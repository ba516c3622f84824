//! Building a [`Report`] from what a run measured: figures from the merged recorder, then
//! the warnings each figure with a known cause earns, with its fix.

use std::net::SocketAddr;
use std::time::SystemTime;

use super::*;
use crate::environment::Environment;
use crate::observe::Kernel;
use crate::observe::cpu::CpuCost;
use crate::observe::sampler::{TcpStates, TimeWait};
use crate::server::ServerTotals;
use crate::stats::interval::IntervalLog;
use crate::stats::{Recorder, Tick};

/// The measured inputs of a report, gathered by `run`.
pub struct Measured {
    pub recorder: Recorder,
    pub started_at: SystemTime,
    pub duration_s: f64,
    pub interrupted: bool,
    pub aborted: Option<String>,
    pub target_addr: SocketAddr,
    pub server: Option<ServerTotals>,
    pub environment: Environment,
    pub kernel: Kernel,
    pub cpu: CpuCost,
    pub tcp_states: TcpStates,
    pub time_wait: TimeWait,
    /// The preflight's hints, given before the run.
    pub hints: Vec<String>,
    pub timeline: Vec<Tick>,
    /// With `--hlog`: the latency of each interval.
    pub intervals: Option<IntervalLog>,
}

impl Report {
    pub fn build(config: &RunConfig, m: Measured) -> Report {
        let r = &m.recorder;
        let stats = |metric| PhaseStats::from_histogram(r.histogram(metric));
        let errors = r
            .errors
            .iter()
            .map(|(f, &count)| ErrorCount {
                phase: f.phase,
                kind: f.kind,
                errno: f.errno_name(),
                status: f.status,
                count,
            })
            .collect();
        Report {
            schema: SCHEMA.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: humantime::format_rfc3339_millis(m.started_at).to_string(),
            duration_s: m.duration_s,
            config: config.clone(),
            target_addr: m.target_addr,
            environment: m.environment,
            totals: Totals {
                attempted: r.attempted,
                succeeded: r.succeeded,
                failed: r.failed,
                bytes_sent: r.bytes_sent,
                bytes_received: r.bytes_received,
                farewell_bytes: r.farewell_bytes,
                syn_retransmitted: r.syn_retransmitted,
                closes: r.closes,
            },
            rate_cps: if m.duration_s > 0.0 {
                r.succeeded as f64 / m.duration_s
            } else {
                0.0
            },
            errors,
            interrupted: m.interrupted,
            aborted: m.aborted,
            latency: Latency {
                connect: stats(Metric::Connect),
                handshake_rtt: stats(Metric::HandshakeRtt),
                echo: stats(Metric::Echo),
                close: stats(Metric::Close),
                total: stats(Metric::Total),
                failed: stats(Metric::Failed),
                start_lag: config
                    .load
                    .rate()
                    .map(|_| PhaseStats::from_histogram(&r.start_lag)),
            },
            latency_from_schedule: config.load.rate().map(|_| ScheduledLatency {
                connect: PhaseStats::from_histogram(&r.from_schedule[0]),
                total: PhaseStats::from_histogram(&r.from_schedule[1]),
                queued: r.queued_starts,
            }),
            server: m.server,
            kernel: m.kernel,
            cpu: m.cpu,
            warnings: m.hints,
            saturated: false,
            time_wait: m.time_wait,
            tcp_states: m.tcp_states,
            timeline: m.timeline,
            repeats: None,
            agents: Vec::new(),
            intervals: m.intervals,
        }
        .with_warnings()
    }

    /// Sets `saturated`, and adds a warning for each figure that points to a known cause.
    fn with_warnings(mut self) -> Report {
        let counter = |name: &str| self.kernel.counters.get(name).copied().unwrap_or(0);
        let tw_cap: Option<u64> = self
            .kernel
            .sysctl
            .get("net.ipv4.tcp_max_tw_buckets")
            .and_then(|v| v.parse().ok());
        self.saturated = counter("TCPTimeWaitOverflow") > 0
            || tw_cap.is_some_and(|cap| self.time_wait.peak_namespace >= cap);
        let mut w: Vec<String> = std::mem::take(&mut self.warnings)
            .into_iter()
            .map(|h| format!("preflight: {h}"))
            .collect();
        if counter("ListenOverflows") > 0 {
            w.push(format!(
                "{} listen-queue overflows: the backlog is too small or the server accepts too slowly; raise {} (and net.core.somaxconn)",
                counter("ListenOverflows"),
                if self.server.is_some() { "--server-backlog" } else { "the server's listen backlog" }
            ));
        }
        if self.saturated {
            w.push(format!(
                "TIME_WAIT saturated: net.ipv4.tcp_max_tw_buckets ({}) was reached and {} closes skipped TIME_WAIT (TCPTimeWaitOverflow); close figures past that point are not those of a normal close: use --close rst, fewer --conns, or --isolate with a larger tcp_max_tw_buckets",
                tw_cap.map_or("?".into(), |c| c.to_string()),
                counter("TCPTimeWaitOverflow")
            ));
        }
        let exhausted: u64 = self
            .errors
            .iter()
            .filter(|e| e.kind == ErrorKind::LocalPortExhaustion)
            .map(|e| e.count)
            .sum();
        if exhausted > 0 {
            w.push(format!(
                "{exhausted} connections found no free local port (EADDRNOTAVAIL): spread them with --bind over more source addresses, close with --close rst, or allow net.ipv4.tcp_tw_reuse"
            ));
        }
        if let Some(s) = &self.latency_from_schedule
            && s.queued > 0
            && s.queued * 100 >= self.totals.attempted
        {
            w.push(format!(
                "{} connections started late because all {} workers were busy at their scheduled start: the open loop queued, and the figures from the scheduled start include that wait; raise --concurrency, or lower --rate below what the target sustains",
                s.queued,
                self.config.load.concurrency()
            ));
        }
        // A --target where every connect was refused: nothing listens there.
        let refused: u64 = self
            .errors
            .iter()
            .filter(|e| e.kind == ErrorKind::Refused && e.phase == Phase::Connect)
            .map(|e| e.count)
            .sum();
        if refused > 0 && self.totals.succeeded == 0 && self.server.is_none() {
            let t = self.target_addr;
            let tried = match &self.config.target_name {
                Some(n) if n.resolved.len() > 1 => {
                    let all: Vec<String> = n.resolved.iter().map(|a| a.to_string()).collect();
                    format!(
                        " ({} resolves to {}; none answered)",
                        n.name,
                        all.join(", ")
                    )
                }
                _ => String::new(),
            };
            w.push(format!(
                "nothing listens on {t}{tried}: start one with `tcpbench serve -l {t}`, or leave out --target for the embedded server"
            ));
        }
        let connect = &self.latency.connect;
        if connect.count > 0 && connect.max_us >= 900_000.0 {
            // Since Linux 6.5 the first tcp_syn_linear_timeouts retransmits come 1 s apart.
            let ladder = match self.kernel.sysctl.get("net.ipv4.tcp_syn_linear_timeouts") {
                Some(n) if n != "0" => format!("1 s apart for the first {n}, then doubling"),
                _ => "at 1 s, 3 s, 7 s, 15 s…".to_string(),
            };
            w.push(format!(
                "connect latency reached {:.1} s: dropped SYNs were retransmitted ({ladder}){}; look at ListenOverflows and the server's backlog",
                connect.max_us / 1e6,
                self.syn_give_up().map_or(String::new(), |g| format!(", {g}"))
            ));
        }
        // connect() itself gave up (ETIMEDOUT from the kernel, not --connect-timeout).
        let gave_up: u64 = self
            .errors
            .iter()
            .filter(|e| e.phase == Phase::Connect && e.errno.as_deref() == Some("ETIMEDOUT"))
            .map(|e| e.count)
            .sum();
        if gave_up > 0 {
            w.push(format!(
                "{gave_up} connects got no answer to their SYNs and the kernel gave up (ETIMEDOUT){}; look at ListenOverflows and the server's backlog",
                self.syn_give_up().map_or(String::new(), |g| format!(": {g}"))
            ));
        }
        self.warnings = w;
        self
    }

    /// When connect() gives up on unanswered SYNs, in words: after N retransmits (TCP_SYNCNT
    /// from --syn-retries, or net.ipv4.tcp_syn_retries), which the kernel turns into a time
    /// (tcp_model_timeout: (2^(N+1) - 1) x the 1 s initial RTO, measured: 3 s for N=1, 7 s
    /// for N=2); the linear timeouts only pack more retransmits into that time.
    fn syn_give_up(&self) -> Option<String> {
        let (n, from) = match self.config.socket.syn_retries {
            Some(n) => (u32::from(n), format!("--syn-retries {n}")),
            None => {
                let n = self
                    .kernel
                    .sysctl
                    .get("net.ipv4.tcp_syn_retries")?
                    .parse()
                    .ok()?;
                (
                    n,
                    format!("net.ipv4.tcp_syn_retries={n}; --syn-retries N sets it per run"),
                )
            }
        };
        Some(format!(
            "connect() gives up after {n} SYN retransmits, about {} s ({from})",
            syn_give_up_secs(n)
        ))
    }
}

/// Seconds before connect() fails on SYNs that get no answer, for `retries` (TCP_SYNCNT),
/// with the 1 s initial RTO doubling up to the 120 s TCP_RTO_MAX (tcp_model_timeout).
pub fn syn_give_up_secs(retries: u32) -> u64 {
    const THRESH: u32 = 6; // ilog2(TCP_RTO_MAX / 1 s)
    if retries <= THRESH {
        (2u64 << retries) - 1
    } else {
        (2u64 << THRESH) - 1 + u64::from(retries - THRESH) * 120
    }
}

#[cfg(test)]
mod tests {
    use super::syn_give_up_secs;

    #[test]
    fn syn_give_up_follows_the_kernels_model() {
        assert_eq!(syn_give_up_secs(1), 3);
        assert_eq!(syn_give_up_secs(2), 7);
        assert_eq!(syn_give_up_secs(6), 127);
        assert_eq!(syn_give_up_secs(8), 367);
    }
}
