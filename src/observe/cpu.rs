//! CPU cost, netperf's "service demand": tcpbench's own user and system time (getrusage)
//! and the whole machine's busy share (/proc/stat) over the measured part.

use serde::{Deserialize, Serialize};

/// The report's `cpu` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CpuCost {
    /// tcpbench's user CPU time (all its threads: client, embedded server, sampler).
    pub user_s: f64,
    /// tcpbench's system CPU time: the kernel's work done on its behalf.
    pub sys_s: f64,
    /// (user + system) per connection attempted, in µs.
    pub us_per_conn: f64,
    /// Share of all CPUs' time that was not idle, in %.
    pub system_busy_pct: f64,
    /// Share of all CPUs' time spent in softirq (where loopback packets are processed), in %.
    pub system_softirq_pct: f64,
}

/// Counters at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    user_s: f64,
    sys_s: f64,
    /// /proc/stat's first line: (total jiffies, idle + iowait jiffies, softirq jiffies).
    stat: (u64, u64, u64),
}

impl Snapshot {
    pub fn take() -> Snapshot {
        // SAFETY: a zeroed rusage is valid, and getrusage fills it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_SELF and a pointer to a whole rusage.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let stat = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_stat(&s))
            .unwrap_or_default();
        Snapshot {
            user_s: secs(ru.ru_utime),
            sys_s: secs(ru.ru_stime),
            stat,
        }
    }

    pub fn cost_since(&self, before: &Snapshot, connections: u64) -> CpuCost {
        let user_s = self.user_s - before.user_s;
        let sys_s = self.sys_s - before.sys_s;
        let total = self.stat.0.saturating_sub(before.stat.0) as f64;
        let idle = self.stat.1.saturating_sub(before.stat.1) as f64;
        let softirq = self.stat.2.saturating_sub(before.stat.2) as f64;
        let pct = |part: f64| {
            if total > 0.0 {
                100.0 * part / total
            } else {
                0.0
            }
        };
        CpuCost {
            user_s,
            sys_s,
            us_per_conn: if connections > 0 {
                (user_s + sys_s) * 1e6 / connections as f64
            } else {
                0.0
            },
            system_busy_pct: pct(total - idle),
            system_softirq_pct: pct(softirq),
        }
    }
}

/// (total, idle + iowait, softirq) jiffies from the `cpu` line of /proc/stat.
fn parse_stat(text: &str) -> Option<(u64, u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    // already inside user and nice.
    let total: u64 = v.iter().take(8).sum();
    Some((
        total,
        v.get(3)? + v.get(4).unwrap_or(&0),
        *v.get(6).unwrap_or(&0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_splits_into_busy_idle_softirq() {
        let (total, idle, softirq) =
            parse_stat("cpu  100 0 200 600 50 0 40 10 0 0\ncpu0 1 2 3\n").unwrap();
        assert_eq!((total, idle, softirq), (1000, 650, 40));
    }

    #[test]
    fn cost_counts_this_process() {
        let before = Snapshot::take();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        let cost = Snapshot::take().cost_since(&before, 10);
        assert!(cost.user_s > 0.0, "{cost:?}");
        assert!(cost.us_per_conn > 0.0);
    }
}
