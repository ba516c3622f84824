//! `--isolate`: the run in a fresh network namespace of its own, loopback up, so its
//! TIME_WAIT, counters and sysctls belong to it alone and never touch the host's.

use std::io;

#[cfg(target_os = "linux")]
const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
#[cfg(target_os = "linux")]
const SIOCSIFFLAGS: libc::c_ulong = 0x8914;

/// Buckets of the fresh namespace's own TCP socket hash table (see [`enter_fresh`]): about
/// one per socket at the most a run holds (a full port range in TIME_WAIT, both sides).
pub const EHASH_BUCKETS: u32 = 32_768;

/// Moves the calling thread, and every thread it starts afterwards, into a new network
/// namespace and brings its loopback up. Needs CAP_SYS_ADMIN (root).
///
/// The namespace gets a TCP socket hash table of its own, of [`EHASH_BUCKETS`] buckets,
/// where the kernel allows (Linux 6.1+, `net.ipv4.tcp_child_ehash_entries`): otherwise it
/// shares the host's, sized by memory (262,144 buckets on a 24 GiB machine), and each of
/// the sampler's sock_diag dumps walks every bucket of it, ~2.3 ms in the kernel during
/// which a load thread woken on that CPU waits (seen with `perf sched timehist` as 1.9 ms
/// start lags every exact sample). A namespace's own table is sized by the sysctl of the
/// namespace that creates it, so a first, throwaway namespace sets it and a second one,
/// made from there, is the run's: the host's sysctl is never touched.
#[cfg(target_os = "linux")]
pub fn enter_fresh() -> io::Result<()> {
    unshare_net()?;
    if set_sysctl(
        "net.ipv4.tcp_child_ehash_entries",
        &EHASH_BUCKETS.to_string(),
    )
    .is_ok()
    {
        unshare_net()?;
    }
    loopback_up()
}

#[cfg(target_os = "linux")]
fn unshare_net() -> io::Result<()> {
    // SAFETY: unshare(2) with a flag; it affects only the calling thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// ifconfig lo up, through the SIOC[GS]IFFLAGS ioctls on a throwaway socket.
#[cfg(target_os = "linux")]
fn loopback_up() -> io::Result<()> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    // struct ifreq: the name, then a union whose first member here is the flags (short).
    let mut ifr = [0u8; 40];
    ifr[..3].copy_from_slice(b"lo\0");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: a 40-byte ifreq, as large as the kernel's, for both ioctls.
    if unsafe { libc::ioctl(fd, SIOCGIFFLAGS, ifr.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = i16::from_ne_bytes([ifr[16], ifr[17]]) | libc::IFF_UP as i16;
    ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: as above.
    if unsafe { libc::ioctl(fd, SIOCSIFFLAGS, ifr.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Network namespaces are Linux's: elsewhere `--isolate` is refused with this error.
#[cfg(not(target_os = "linux"))]
pub fn enter_fresh() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "network namespaces are Linux-only",
    ))
}

/// Writes a sysctl of the current network namespace, e.g. `net.ipv4.tcp_tw_reuse`.
pub fn set_sysctl(name: &str, value: &str) -> io::Result<()> {
    std::fs::write(format!("/proc/sys/{}", name.replace('.', "/")), value)
}
