//! The kernel's view of a run: TCP counters, the sysctls that decide the outcome, and CPU
//! time, read before and after the measured part.
//!
//! All of it is Linux's /proc; the counters and sysctls belong to the network namespace
//! tcpbench runs in, so other traffic in the same namespace shows in them too.

#[cfg(target_os = "linux")]
pub mod accept_wait;
pub mod counters;
pub mod cpu;
pub mod netns;
pub mod sampler;
pub mod sockdiag;
#[cfg(target_os = "linux")]
pub mod tracefs;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kernel section of a report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Kernel {
    /// What the counters cover: they are per network namespace.
    pub scope: String,
    /// Change of each counter over the measured part (Tcp* from /proc/net/snmp, TcpExt*
    /// from /proc/net/netstat).
    pub counters: BTreeMap<String, i64>,
    /// The sysctls that decide connection churn, as read at the start.
    pub sysctl: BTreeMap<String, String>,
}

/// The sysctls a report records, by name.
pub const SYSCTLS: [&str; 12] = [
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_syn_linear_timeouts",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_fastopen",
    "net.core.somaxconn",
];

/// Reads the sysctls of [`SYSCTLS`] that this kernel has; whitespace is folded to one space.
pub fn sysctls() -> BTreeMap<String, String> {
    SYSCTLS
        .iter()
        .filter_map(|name| {
            let path = format!("/proc/sys/{}", name.replace('.', "/"));
            let value = std::fs::read_to_string(path).ok()?;
            Some((
                name.to_string(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        })
        .collect()
}

/// A snapshot taken at the start of the measured part, turned into the report's sections at
/// its end.
pub struct Before {
    counters: counters::Snapshot,
    cpu: cpu::Snapshot,
    sysctl: BTreeMap<String, String>,
    isolated: bool,
}

impl Before {
    /// `isolated`: the run has a network namespace of its own (`--isolate`).
    pub fn take(isolated: bool) -> Before {
        Before {
            counters: counters::Snapshot::take(),
            cpu: cpu::Snapshot::take(),
            sysctl: sysctls(),
            isolated,
        }
    }

    /// The kernel and CPU sections, for `connections` connections attempted.
    pub fn finish(self, connections: u64) -> (Kernel, cpu::CpuCost) {
        let kernel = Kernel {
            scope: if self.isolated {
                "the run's own network namespace (--isolate): these counts are the run's alone"
                    .into()
            } else {
                "network namespace of the run (shared with other processes in it)".into()
            },
            counters: counters::Snapshot::take().delta(&self.counters),
            sysctl: self.sysctl,
        };
        (
            kernel,
            cpu::Snapshot::take().cost_since(&self.cpu, connections),
        )
    }
}
