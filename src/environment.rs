//! The machine a run happened on, and the process limits it needs.

use std::fs;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Environment {
    /// Kernel release, e.g. "6.1.0-28-amd64".
    pub kernel: String,
    pub cpus: usize,
    pub hostname: String,
    /// RLIMIT_NOFILE after tcpbench raised the soft limit: [soft, hard].
    pub rlimit_nofile: [u64; 2],
}

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
        }
    }
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
