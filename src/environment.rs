//! The machine a run happened on, and the process limits it needs: its kernel, CPU model, and
//! a calibration of its loopback connection cycle, so that reports of two machines (or of one
//! machine on two days) can tell that they differ.

use std::fs;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Environment {
    /// Kernel release, e.g. "6.1.0-28-amd64".
    pub kernel: String,
    pub cpus: usize,
    pub hostname: String,
    /// RLIMIT_NOFILE after tcpbench raised the soft limit: [soft, hard].
    pub rlimit_nofile: [u64; 2],
    /// The CPU's model name, from /proc/cpuinfo.
    #[serde(default)]
    pub cpu_model: String,
    /// The CPU says it runs under a hypervisor (the `hypervisor` flag).
    #[serde(default)]
    pub virtualized: bool,
    /// The run had a network namespace of its own (`--isolate`).
    #[serde(default)]
    pub isolated: bool,
    /// How fast this machine's kernel runs the loopback connection cycle, measured just
    /// before the load.
    #[serde(default)]
    pub calibration: Option<Calibration>,
}

/// A short fixed loop of the kernel's loopback connection cycle, run on one thread with
/// blocking calls as a C loop would: socket, connect, accept, close with RST (SO_LINGER 0, so
/// no TIME_WAIT is left). Its rate is a property of the machine (CPU, kernel, hypervisor) and
/// of how busy it is, not of tcpbench's engine: two reports whose calibrations differ were
/// made on machines that differ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Calibration {
    /// Cycles per second: the median of the loop's ten slices.
    pub cycles_per_s: f64,
    pub cycles: u64,
    /// How long the loop ran, in ms.
    pub span_ms: f64,
}

/// How long [`calibrate`] runs its loop.
pub const CALIBRATION_SPAN: Duration = Duration::from_millis(150);

/// Runs the calibration loop for `span` (after a short warm-up) against a listener of its own
/// on 127.0.0.1 of the current network namespace.
pub fn calibrate(span: Duration) -> std::io::Result<Calibration> {
    use socket2::{Domain, Socket, Type};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr: socket2::SockAddr = listener.local_addr()?.into();
    let cycle = || -> std::io::Result<()> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        s.set_linger(Some(Duration::ZERO))?;
        s.connect(&addr)?;
        let (accepted, _) = listener.accept()?;
        drop(s);
        drop(accepted);
        Ok(())
    };
    let warmup = Instant::now();
    while warmup.elapsed() < span / 10 {
        cycle()?;
    }
    // The median of ten slices: a slice another process interrupted does not move it.
    let start = Instant::now();
    let mut cycles = 0u64;
    let mut rates = Vec::with_capacity(SLICES as usize);
    for _ in 0..SLICES {
        let slice = Instant::now();
        let mut n = 0u64;
        while slice.elapsed() < span / SLICES {
            cycle()?;
            n += 1;
        }
        rates.push(n as f64 / slice.elapsed().as_secs_f64());
        cycles += n;
    }
    rates.sort_by(f64::total_cmp);
    Ok(Calibration {
        cycles_per_s: (rates[rates.len() / 2 - 1] + rates[rates.len() / 2]) / 2.0,
        cycles,
        span_ms: start.elapsed().as_secs_f64() * 1000.0,
    })
}

/// How many slices [`calibrate`] takes the median of.
const SLICES: u32 = 10;

impl Environment {
    pub fn snapshot() -> Environment {
        let read = |p: &str| {
            fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        Environment {
            kernel: read("/proc/sys/kernel/osrelease"),
            cpus: crate::cpu::count(),
            hostname: hostname(),
            rlimit_nofile: nofile_limit().map_or([0, 0], |(s, h)| [s, h]),
            cpu_model: cpuinfo_field("model name").unwrap_or_default(),
            virtualized: cpuinfo_field("flags")
                .is_some_and(|f| f.split_whitespace().any(|x| x == "hypervisor")),
            isolated: false,
            calibration: None,
        }
    }
}

/// The first value of `key` in /proc/cpuinfo.
fn cpuinfo_field(key: &str) -> Option<String> {
    let text = fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// This machine's name, as the kernel has it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// RLIMIT_NOFILE as (soft, hard).
pub fn nofile_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft RLIMIT_NOFILE to the hard one; returns the soft limit now in force.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    let (soft, hard) = nofile_limit()?;
    if soft >= hard {
        return Ok(soft);
    }
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Ok(soft);
    }
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_counts_real_cycles() {
        let c = calibrate(Duration::from_millis(30)).unwrap();
        assert!(c.cycles > 10, "{c:?}");
        assert!(c.span_ms >= 30.0, "{c:?}");
        let mean = c.cycles as f64 / c.span_ms * 1000.0;
        assert!(
            c.cycles_per_s > mean / 3.0 && c.cycles_per_s < mean * 3.0,
            "{c:?}"
        );
    }

    #[test]
    fn the_cpu_is_described() {
        let e = Environment::snapshot();
        assert!(!e.cpu_model.is_empty(), "{e:?}");
    }
}
