//! Whether the io_uring engine can run here: the kernel lets this process set up a ring
//! (kernel.io_uring_disabled, seccomp and old kernels say no at setup), has every opcode
//! the engine submits, and runs a socket option through the ring (SOCKET_URING_OP_SETSOCKOPT,
//! Linux ≥ 6.7: the probe lists URING_CMD, not what a socket does with it); and whether the
//! run's options are ones the engine drives.

use std::sync::OnceLock;

use io_uring::{IoUring, opcode, types};

use crate::config::{LoadModel, RunConfig};

/// The opcodes the engine submits, with the names the note gives a missing one.
const OPCODES: [(u8, &str); 9] = [
    (opcode::Connect::CODE, "connect"),
    (opcode::Send::CODE, "send"),
    (opcode::Recv::CODE, "recv"),
    (opcode::Shutdown::CODE, "shutdown"),
    (opcode::Close::CODE, "close"),
    (opcode::LinkTimeout::CODE, "link_timeout"),
    (opcode::Timeout::CODE, "timeout"),
    (opcode::AsyncCancel2::CODE, "async_cancel"),
    (opcode::SetSockOpt::CODE, "uring_cmd"),
];

/// `Ok` when this kernel runs the engine, else why not, as a note's clause. Probed once.
pub fn support() -> Result<(), String> {
    static PROBED: OnceLock<Result<(), String>> = OnceLock::new();
    PROBED.get_or_init(probe).clone()
}

/// The first of the run's options the engine does not drive yet, as its flag.
pub fn unsupported(cfg: &RunConfig) -> Option<&'static str> {
    if matches!(cfg.load, LoadModel::Open { .. }) {
        Some("--rate (open loop)")
    } else if cfg.socket.linger.is_some_and(|l| !l.is_zero()) {
        // A lingering close blocks in the task work of the ring's own thread.
        Some("--linger above 0")
    } else if cfg.socket.fastopen {
        Some("--fastopen")
    } else if cfg.hlog_interval.is_some() {
        Some("--hlog")
    } else {
        None
    }
}

/// A ring as the engine sets it up: one submitter (its load thread), completions' task work
/// run only when that thread waits (fewer interrupts of the load). Older kernels lack the
/// flags; a plain ring serves there.
pub(super) fn ring(entries: u32) -> std::io::Result<IoUring> {
    let tuned = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(entries.saturating_mul(2))
        .build(entries);
    match tuned {
        Ok(r) => Ok(r),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::builder()
            .setup_cqsize(entries.saturating_mul(2))
            .build(entries),
        Err(e) => Err(e),
    }
}

fn probe() -> Result<(), String> {
    let ring = ring(8).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) => "this kernel has no io_uring".to_string(),
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "io_uring setup is refused ({e}: kernel.io_uring_disabled is {}, or a seccomp filter)",
            std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .map_or_else(|_| "unknown".into(), |s| s.trim().to_string())
        ),
        _ => format!("io_uring setup failed: {e}"),
    })?;
    if !ring.params().is_feature_ext_arg() {
        return Err("this kernel's io_uring cannot wait with a timeout (Linux ≥ 5.11)".into());
    }
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("this kernel cannot list its io_uring opcodes ({e})"))?;
    if let Some((_, name)) = OPCODES.iter().find(|(c, _)| !probe.is_supported(*c)) {
        return Err(format!("this kernel's io_uring has no {name}"));
    }
    setsockopt_runs(ring)
}

/// One SO_LINGER through the ring on a fresh socket: what `--close rst` submits.
fn setsockopt_runs(mut ring: IoUring) -> Result<(), String> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| format!("cannot make a probe socket: {e}"))?;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let set = opcode::SetSockOpt::new(
        types::Fd(std::os::fd::AsRawFd::as_raw_fd(&sock)),
        libc::SOL_SOCKET as u32,
        libc::SO_LINGER as u32,
        (&raw const linger).cast(),
        size_of::<libc::linger>() as u32,
    )
    .build();
    // SAFETY: the socket and `linger` outlive the wait for the completion just below.
    unsafe { ring.submission().push(&set) }.map_err(|_| "a fresh ring is full".to_string())?;
    ring.submit_and_wait(1)
        .map_err(|e| format!("io_uring_enter failed: {e}"))?;
    let res = ring.completion().next().map_or(-libc::EIO, |c| c.result());
    match res {
        0 => Ok(()),
        e => Err(format!(
            "this kernel's io_uring cannot set a socket option ({}; Linux ≥ 6.7)",
            std::io::Error::from_raw_os_error(-e)
        )),
    }
}
