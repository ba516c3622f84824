//! Socket states from the tracepoint `sock:inet_sock_set_state`, read through a private
//! tracefs instance (Linux only).
//!
//! A keeper thread finds tracefs (mounted at /sys/kernel/tracing, /sys/kernel/debug/tracing
//! or anywhere /proc lists it) or, when none is mounted, mounts it in a mount namespace of
//! its own — so the host's mount table is never touched and the mount goes away with the
//! thread. It creates `instances/tcpbench-PID-N`, sets the trace clock to `mono` (the clock
//! the capture's timestamps are converted to), filters the event on the traced port, enables
//! it and hands the open `trace_pipe` over. When the [`Tracer`] is dropped the pipe is closed
//! first and the keeper disables the event and removes the instance — also after an error,
//! and instances left by a process that no longer exists are removed at the next start.
//!
//! What the tracepoint shows and does not: every state change of a full socket, timed to the
//! microsecond (trace_pipe prints µs). The server's SYN_RECV is not seen while it lasts: the
//! kernel keeps a half-open connection as a request socket (TCP_NEW_SYN_RECV) with no
//! tracepoint, and creates the full socket only when the final ACK arrives — the tracepoint
//! then reports LISTEN → SYN_RECV and SYN_RECV → ESTABLISHED, both after that ACK, a few µs
//! apart. A connecting socket's CLOSE → SYN_SENT comes before connect() has picked its local
//! port (it reads port 0). TIME_WAIT
//! is not a state change either: the kernel replaces the full socket by a timewait socket and
//! reports `FIN_WAIT2 → CLOSE` (or `CLOSING → CLOSE`); sock_diag tells the rest.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The event, as tracefs names it.
const EVENT: &str = "events/sock/inet_sock_set_state";

/// One transition the tracepoint reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The trace clock (`mono`: CLOCK_MONOTONIC), ns; printed to the µs.
    pub mono_ns: i64,
    /// The socket's own address and its peer's (port 0: not set yet).
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Kernel state numbers.
    pub old: u8,
    pub new: u8,
}

/// A running tracepoint reader; dropping it removes its tracefs instance.
pub struct Tracer {
    /// trace_pipe of the instance, non-blocking; closed before the instance is removed.
    pipe: Option<File>,
    /// Bytes of a line not yet complete.
    carry: Vec<u8>,
    /// Lines of "[LOST n EVENTS]" seen: the ring buffer overflowed.
    pub lost: u32,
    /// Dropped to tell the keeper to remove the instance; the keeper waits on it.
    stop: Option<mpsc::Sender<()>>,
    keeper: Option<JoinHandle<()>>,
    /// The instance's path, for messages.
    pub instance: PathBuf,
}

impl Tracer {
    /// Starts tracing the state changes of sockets whose local or remote port is `port`.
    /// The error says why the tracepoint cannot be used here.
    pub fn start(port: u16) -> Result<Tracer, String> {
        Tracer::start_filtered(format!(
            "protocol == 6 && (sport == {port} || dport == {port})"
        ))
    }

    /// Starts tracing the state changes the event filter `filter` passes (the tracepoint's
    /// fields: `sport`, `dport`, `oldstate`, `newstate`, …; `!(dport & 15)` samples).
    pub fn start_filtered(filter: String) -> Result<Tracer, String> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let keeper = std::thread::Builder::new()
            .name("tcpbench-tracefs".into())
            .spawn(move || keep(&filter, ready_tx, stop_rx))
            .map_err(|e| format!("cannot start the tracefs thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok((pipe, instance))) => Ok(Tracer {
                pipe: Some(pipe),
                carry: Vec::new(),
                lost: 0,
                stop: Some(stop_tx),
                keeper: Some(keeper),
                instance,
            }),
            Ok(Err(e)) => {
                let _ = keeper.join();
                Err(e)
            }
            Err(_) => {
                let _ = keeper.join();
                Err("the tracefs thread ended without a word".into())
            }
        }
    }

    /// Appends the events traced so far to `out`, without waiting.
    pub fn drain(&mut self, out: &mut Vec<Event>) -> io::Result<()> {
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(());
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.carry.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let complete = self
            .carry
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let text = String::from_utf8_lossy(&self.carry[..complete]).into_owned();
        self.carry.drain(..complete);
        for line in text.lines() {
            if line.contains("[LOST") {
                self.lost += 1;
            } else if let Some(e) = parse_line(line) {
                out.push(e);
            }
        }
        Ok(())
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // The pipe holds a reference on the instance: close it before the keeper removes it.
        self.pipe.take();
        self.stop.take();
        if let Some(k) = self.keeper.take() {
            let _ = k.join();
        }
    }
}

/// The keeper thread: sets the instance up, reports, waits for the stop, removes it.
fn keep(
    filter: &str,
    ready: mpsc::Sender<Result<(File, PathBuf), String>>,
    stop: mpsc::Receiver<()>,
) {
    let setup = || -> Result<(File, Instance), String> {
        let root = tracefs_root()?;
        remove_stale(&root);
        let inst = Instance::create(&root)?;
        let pipe = inst.configure(filter)?;
        Ok((pipe, inst))
    };
    match setup() {
        Ok((pipe, inst)) => {
            if ready.send(Ok((pipe, inst.path.clone()))).is_ok() {
                // Returns when the Tracer drops its sender.
                let _ = stop.recv();
            }
            drop(inst);
        }
        Err(e) => {
            let _ = ready.send(Err(e));
        }
    }
}

/// An instance directory; dropping it disables the event and removes the directory.
struct Instance {
    path: PathBuf,
}

impl Instance {
    fn create(root: &Path) -> Result<Instance, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "tcpbench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = root.join("instances").join(name);
        fs::create_dir(&path)
            .map_err(|e| format!("cannot create the tracefs instance {}: {e}", path.display()))?;
        Ok(Instance { path })
    }

    /// Clock, filter, enable; returns the open trace_pipe.
    fn configure(&self, filter: &str) -> Result<File, String> {
        let write = |file: &str, value: &str| {
            fs::write(self.path.join(file), value).map_err(|e| {
                format!("cannot write {value:?} to {file} of the tracefs instance: {e}")
            })
        };
        write("trace_clock", "mono")?;
        write(&format!("{EVENT}/filter"), filter)?;
        write(&format!("{EVENT}/enable"), "1")?;
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.path.join("trace_pipe"))
            .map_err(|e| format!("cannot open trace_pipe: {e}"))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = fs::write(self.path.join(EVENT).join("enable"), "0");
        // EBUSY while a reader still holds the instance: it is closing, retry briefly.
        for _ in 0..100 {
            match fs::remove_dir(&self.path) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return,
            }
        }
    }
}

/// Removes instances of tcpbench processes that no longer exist (killed mid-trace).
fn remove_stale(root: &Path) {
    let Ok(dir) = fs::read_dir(root.join("instances")) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("tcpbench-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = fs::remove_dir(entry.path());
        }
    }
}

/// Where tracefs is, mounting it privately when it is nowhere.
fn tracefs_root() -> Result<PathBuf, String> {
    let has_instances = |p: &Path| p.join("instances").is_dir();
    let mounts = fs::read_to_string("/proc/thread-self/mounts").unwrap_or_default();
    let listed = mounts.lines().filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[2] == "tracefs").then(|| PathBuf::from(f[1]))
    });
    let known = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"].map(PathBuf::from);
    if let Some(p) = listed.chain(known).find(|p| has_instances(p)) {
        return Ok(p);
    }
    mount_privately()?;
    let p = PathBuf::from("/sys/kernel/tracing");
    if has_instances(&p) {
        Ok(p)
    } else {
        Err("tracefs mounted privately but it has no instances/ directory".into())
    }
}

/// Mounts tracefs on /sys/kernel/tracing in a mount namespace of this thread's own.
fn mount_privately() -> Result<(), String> {
    let fail = |what: &str| {
        let e = io::Error::last_os_error();
        format!("tracefs is not mounted, and mounting it privately failed at {what}: {e}")
    };
    // SAFETY: unshare(2) with a flag; it changes only this thread's mount namespace (and
    // its own copy of cwd/root).
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(fail("unshare(CLONE_NEWNS)"));
    }
    // Make every mount private in the new namespace, so nothing propagates to the host.
    // SAFETY: NUL-terminated strings; no data argument.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(fail("making / private"));
    }
    // SAFETY: as above.
    let r = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(fail("mount -t tracefs"));
    }
    Ok(())
}

/// The kernel state number of a tracepoint name, e.g. "TCP_SYN_SENT".
fn state_number(name: &str) -> Option<u8> {
    const NAMES: [&str; 12] = [
        "TCP_ESTABLISHED",
        "TCP_SYN_SENT",
        "TCP_SYN_RECV",
        "TCP_FIN_WAIT1",
        "TCP_FIN_WAIT2",
        "TCP_TIME_WAIT",
        "TCP_CLOSE",
        "TCP_CLOSE_WAIT",
        "TCP_LAST_ACK",
        "TCP_LISTEN",
        "TCP_CLOSING",
        "TCP_NEW_SYN_RECV",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as u8 + 1)
}

/// One line of trace_pipe in the event's default format, e.g.
/// `  curl-12 [001] ..s2. 9262.075466: inet_sock_set_state: family=AF_INET
/// protocol=IPPROTO_TCP sport=7777 dport=56858 saddr=127.0.0.1 daddr=127.0.0.1
/// saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 oldstate=TCP_LISTEN newstate=TCP_SYN_RECV`.
pub fn parse_line(line: &str) -> Option<Event> {
    let (head, body) = line.split_once(": inet_sock_set_state: ")?;
    let (secs, frac) = head.split_whitespace().last()?.split_once('.')?;
    let digits = frac.len().min(9) as u32;
    let frac_ns: i64 = frac[..digits as usize].parse::<i64>().ok()? * 10i64.pow(9 - digits);
    let mono_ns = secs.parse::<i64>().ok()? * 1_000_000_000 + frac_ns;
    let field = |name: &str| {
        body.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    if field("protocol")? != "IPPROTO_TCP" {
        return None;
    }
    let (saddr, daddr) = match field("family")? {
        "AF_INET" => (field("saddr")?, field("daddr")?),
        "AF_INET6" => (field("saddrv6")?, field("daddrv6")?),
        _ => return None,
    };
    let ip = |s: &str| s.parse::<IpAddr>().ok().map(|a| a.to_canonical());
    Some(Event {
        mono_ns,
        local: SocketAddr::new(ip(saddr)?, field("sport")?.parse().ok()?),
        remote: SocketAddr::new(ip(daddr)?, field("dport")?.parse().ok()?),
        old: state_number(field("oldstate")?)?,
        new: state_number(field("newstate")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_format() {
        let line = "         python3-1369    [001] ..s2.  9262.075466: inet_sock_set_state: \
            family=AF_INET protocol=IPPROTO_TCP sport=7777 dport=56858 saddr=127.0.0.1 \
            daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 \
            oldstate=TCP_LISTEN newstate=TCP_SYN_RECV";
        let e = parse_line(line).expect("an event");
        assert_eq!(e.mono_ns, 9_262_075_466_000);
        assert_eq!(e.local, "127.0.0.1:7777".parse().unwrap());
        assert_eq!(e.remote, "127.0.0.1:56858".parse().unwrap());
        assert_eq!((e.old, e.new), (10, 3));

        let v6 = "tcpbench-7 [000] ..... 12.000001: inet_sock_set_state: family=AF_INET6 \
            protocol=IPPROTO_TCP sport=41000 dport=8080 saddr=0.0.0.0 daddr=0.0.0.0 \
            saddrv6=::1 daddrv6=::1 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT";
        let e = parse_line(v6).expect("an event");
        assert_eq!(e.local, "[::1]:41000".parse().unwrap());
        assert_eq!((e.old, e.new, e.mono_ns), (7, 2, 12_000_001_000));

        assert!(parse_line("CPU:1 [LOST 3 EVENTS]").is_none());
        let sctp = line.replace("IPPROTO_TCP", "IPPROTO_SCTP");
        assert!(parse_line(&sctp).is_none());
    }
}
