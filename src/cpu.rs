//! CPU placement: which CPUs this process may use, and pinning threads to them.
//!
//! Client and embedded server share the machine. When a client thread and the server worker
//! that serves it sit on different CPUs, every handshake, echo and close wakes the other
//! thread with an inter-processor interrupt; on the virtual machines measured here that
//! tripled the latency of a 1-flow cycle. Pinning client thread *i* and server worker *i* to
//! CPU *i*, and steering each SYN to the listener of the CPU it arrives on (a reuseport cBPF
//! program), keeps every connection on one CPU.

use std::io;

/// The CPUs this thread may run on, in order.
#[cfg(target_os = "linux")]
pub fn allowed() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid, and the kernel fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: pid 0 is this thread; `set` has `size` bytes.
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    // SAFETY: CPU_ISSET reads the set filled above.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Elsewhere: every CPU the standard library counts.
#[cfg(not(target_os = "linux"))]
pub fn allowed() -> Vec<usize> {
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

/// How many CPUs this process may use.
pub fn count() -> usize {
    allowed().len().max(1)
}

/// The CPU that thread or worker `index` is pinned to.
pub fn for_index(index: usize) -> usize {
    let cpus = allowed();
    cpus[index % cpus.len().max(1)]
}

/// Pins the calling thread to `cpu`.
#[cfg(target_os = "linux")]
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is this thread; `set` is a whole cpu_set_t.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the calling thread SCHED_BATCH: a batch thread that wakes does not preempt the
/// thread running on its CPU; it runs when that one blocks, or at the scheduler's tick.
#[cfg(target_os = "linux")]
pub fn batch_current_thread() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is this thread; `param` is a valid sched_param for SCHED_BATCH.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere the policy is left as it is.
#[cfg(not(target_os = "linux"))]
pub fn batch_current_thread() -> io::Result<()> {
    Ok(())
}

/// Elsewhere threads are not pinned (the run's config line says so).
#[cfg(not(target_os = "linux"))]
pub fn pin_current_thread(_cpu: usize) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "thread pinning is Linux-only",
    ))
}

/// Whether `workers` listeners indexed by CPU number cover the allowed CPUs exactly
/// (CPUs 0..workers), so a steering program's answer always names a listener.
pub fn steerable(workers: usize) -> bool {
    workers > 1 && allowed() == (0..workers).collect::<Vec<_>>()
}
