//! Checks before a run: will the descriptors fit, and will the local ports last?
//!
//! A connection that closes first on the client keeps its 4-tuple in TIME_WAIT for 60 s, and
//! with one source address and one target every connection needs a port of its own. These
//! checks do the arithmetic up front, so a run that will hit a limit says so before it starts
//! and names the fix, instead of ending in a wall of EADDRNOTAVAIL.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::config::{ClientSocket, CloseMode, PortStrategy, RunConfig, Target, UsageError};
use crate::environment;
use crate::sockopt::{self, Local};

/// Descriptors kept free for what is not counted below: standard streams, the supervisor's
/// runtime and signal pipe, the sampler's netlink socket, the report files (10 measured
/// before the files).
pub const FD_MARGIN: u64 = 32;

/// Descriptors one runtime thread holds (load thread or server worker), measured with
/// strace: its epoll instance and a dup of it (tokio keeps a second handle to its
/// registry), its waker's eventfd, and a dup of the process's signal pipe (enable_all).
pub const RUNTIME_FDS: u64 = 4;

/// Raises the soft descriptor limit to the hard one, and refuses a run that cannot fit.
pub fn check_fd_budget(cfg: &RunConfig) -> Result<(), UsageError> {
    let soft = environment::raise_nofile_limit().unwrap_or(u64::MAX);
    fd_budget(cfg, soft)
}

/// What a run's descriptors come to when every worker has a connection open.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct FdNeed {
    /// Per connection: the client's socket, and the embedded server's accepted one; in
    /// open loop, the worker's timer (its pacer's timerfd) too.
    pub per_conn: u64,
    /// Per client thread: its runtime's, and with the embedded server, one server worker's
    /// runtime and listener (the workers follow the threads unless told otherwise).
    pub per_thread: u64,
    /// Server workers beyond (or short of) one per client thread, at `RUNTIME_FDS + 1` each.
    pub server_fixed: i64,
}

impl FdNeed {
    pub fn of(cfg: &RunConfig) -> FdNeed {
        let threads = cfg.threads as i64;
        let timer = u64::from(cfg.load.rate().is_some());
        match &cfg.target {
            Target::Embedded(s) => FdNeed {
                per_conn: 2 + timer,
                per_thread: 2 * RUNTIME_FDS + 1,
                server_fixed: (s.workers as i64 - threads) * (RUNTIME_FDS as i64 + 1),
            },
            Target::External(_) => FdNeed {
                per_conn: 1 + timer,
                per_thread: RUNTIME_FDS,
                server_fixed: 0,
            },
        }
    }

    /// Descriptors for `concurrency` connections over `threads` threads, margin included.
    pub fn total(&self, concurrency: u64, threads: u64) -> u64 {
        let fixed = (FD_MARGIN as i64 + self.server_fixed).max(0) as u64;
        concurrency
            .saturating_mul(self.per_conn)
            .saturating_add(threads.saturating_mul(self.per_thread))
            .saturating_add(fixed)
    }
}

fn fd_budget(cfg: &RunConfig, soft: u64) -> Result<(), UsageError> {
    let c = cfg.load.concurrency() as u64;
    let threads = cfg.threads as u64;
    let n = FdNeed::of(cfg);
    let need = n.total(c, threads);
    if need <= soft {
        return Ok(());
    }
    // The most connections these threads leave room for, and the most threads these
    // connections leave room for.
    let fit_conns = soft.saturating_sub(n.total(0, threads)) / n.per_conn;
    let fit_threads = soft.saturating_sub(n.total(c, 0)) / n.per_thread;
    let mut fixes = Vec::new();
    if fit_conns >= 1 {
        fixes.push(format!("use --concurrency {fit_conns} or less"));
    }
    if threads > 1 && fit_threads >= 1 {
        fixes.push(format!("use --threads {fit_threads} or fewer"));
    }
    if fixes.is_empty() {
        let one = soft.saturating_sub(n.total(0, 1)) / n.per_conn;
        fixes.push(format!("use --threads 1 --concurrency {}", one.max(1)));
    }
    if matches!(cfg.target, Target::Embedded(_)) {
        fixes.push("run `tcpbench serve` in another process and use --target".into());
    }
    Err(UsageError(format!(
        "--concurrency {c} over {threads} thread{} needs about {need} file descriptors ({} per connection, {} per thread) but RLIMIT_NOFILE is {soft} (hard limit reached); {}",
        if threads == 1 { "" } else { "s" },
        n.per_conn,
        n.per_thread,
        fixes.join("; or ")
    )))
}

/// Refuses `--bind` addresses this host does not have, before the run: each is bound the
/// way the run binds it (IP_BIND_ADDRESS_NO_PORT, so no port is taken), and EADDRNOTAVAIL
/// names the address. All of 127.0.0.0/8 is local once one of it is, so one stands for them.
pub fn check_bind_addresses(cfg: &RunConfig) -> Result<(), UsageError> {
    let family = match &cfg.target {
        Target::Embedded(s) => s.listen,
        Target::External(a) => *a,
    };
    let mut loopback_seen = false;
    for &ip in &cfg.socket.bind {
        let v4_loopback = matches!(ip, IpAddr::V4(v4) if v4.is_loopback());
        if v4_loopback && std::mem::replace(&mut loopback_seen, true) {
            continue;
        }
        let local = Local {
            ip: Some(ip),
            port: None,
        };
        let socket = ClientSocket {
            ports: PortStrategy::Kernel,
            ..cfg.socket.clone()
        };
        match sockopt::client_socket(&family, &socket, local) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                return Err(UsageError(format!(
                    "--bind {ip} is not an address of this host (bind() says EADDRNOTAVAIL); give addresses `ip addr` lists, e.g. 127.0.0.2-127.0.0.9 for a loopback target"
                )));
            }
            // Anything else (EMFILE…) shows in the run, counted by kind.
            _ => {}
        }
    }
    Ok(())
}

/// The settings the port arithmetic depends on.
#[derive(Clone, Debug, PartialEq)]
pub struct PortSettings {
    /// net.ipv4.ip_local_port_range, inclusive.
    pub range: (u16, u16),
    /// net.ipv4.tcp_tw_reuse: 0 off, 1 on, 2 loopback only.
    pub tw_reuse: u8,
}

impl PortSettings {
    /// Reads them from the sysctls of the namespace the run is in.
    pub fn from_sysctls(sysctl: &BTreeMap<String, String>) -> Option<PortSettings> {
        let range = sysctl.get("net.ipv4.ip_local_port_range")?;
        let mut ends = range.split_whitespace().map(str::parse::<u16>);
        let (Some(Ok(lo)), Some(Ok(hi))) = (ends.next(), ends.next()) else {
            return None;
        };
        let tw_reuse = sysctl
            .get("net.ipv4.tcp_tw_reuse")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2);
        Some(PortSettings {
            range: (lo, hi.max(lo)),
            tw_reuse,
        })
    }
}

/// One-line hints about local ports for a run of `cfg` against `target`: empty when the
/// ports will last.
pub fn port_hints(cfg: &RunConfig, target: IpAddr, s: &PortSettings) -> Vec<String> {
    let client_time_wait = matches!(
        cfg.socket.close,
        CloseMode::Client | CloseMode::ClientNowait
    ) && cfg.socket.linger != Some(std::time::Duration::ZERO);
    if !client_time_wait {
        return Vec::new();
    }
    let (ports, sources, which) = match cfg.socket.ports {
        PortStrategy::Explicit { lo, hi } => (u64::from(hi - lo) + 1, 1, "--port-range"),
        PortStrategy::Kernel | PortStrategy::BindNoPort => (
            u64::from(s.range.1 - s.range.0) + 1,
            cfg.socket.bind.len().max(1) as u64,
            "ip_local_port_range",
        ),
    };
    let capacity = ports * sources;
    let explicit = matches!(cfg.socket.ports, PortStrategy::Explicit { .. });
    // A socket bound to its port explicitly may take over a TIME_WAIT 4-tuple whatever
    // tcp_tw_reuse says (TCP timestamps on), but its bind() needs SO_REUSEADDR.
    let reuse = match s.tw_reuse {
        _ if explicit => cfg.socket.reuseaddr,
        0 => false,
        2 => target.to_canonical().is_loopback(),
        _ => true,
    };
    let warmup = cfg.warmup.and_then(|w| w.conns).unwrap_or(0);
    let planned = match (cfg.bounds.conns, cfg.bounds.duration, cfg.load.rate()) {
        (Some(n), _, _) => Some(n + warmup),
        (None, Some(d), Some(rate)) => Some((rate * d.as_secs_f64()) as u64 + warmup),
        _ => None,
    };
    let mut hints = Vec::new();
    let spread = |need: u64| {
        let addrs = need.div_ceil(ports).max(2);
        match target.to_canonical() {
            // Loopback reaches a loopback target from any 127.x address.
            IpAddr::V4(t) if t.is_loopback() && addrs < (1 << 24) - 2 => {
                let last =
                    std::net::Ipv4Addr::from(u32::from_be_bytes([127, 0, 0, 1]) + addrs as u32);
                format!("--bind 127.0.0.2-{last} ({addrs} source addresses)")
            }
            _ => format!("--bind with {addrs} source addresses of this host"),
        }
    };
    let sources_text = if sources == 1 {
        "1 source address".to_string()
    } else {
        format!("{sources} source addresses")
    };
    if !reuse && let Some(planned) = planned {
        if explicit && planned > capacity {
            hints.push(format!(
                "{planned} connections planned over {capacity} ports of --port-range without SO_REUSEADDR: bind() fails with EADDRINUSE on each port still in TIME_WAIT, so expect about {} local_port_exhaustion failures; drop --no-reuseaddr, widen --port-range, or use --close rst or --close server",
                planned - capacity,
            ));
        } else if planned > capacity {
            hints.push(format!(
                "{planned} connections planned but only {capacity} local ports ({ports} in {which} x {sources_text}) and each stays in client TIME_WAIT for 60 s with tcp_tw_reuse={}: expect about {} local_port_exhaustion failures; use {}, --close rst or --close server, or net.ipv4.tcp_tw_reuse=1",
                s.tw_reuse,
                planned - capacity.min(planned),
                spread(planned),
            ));
        } else if planned > capacity / 2 && cfg.socket.ports == PortStrategy::Kernel {
            hints.push(format!(
                "{planned} connections planned against {capacity} local ports in TIME_WAIT (tcp_tw_reuse={}): past about {} connect() slows while the kernel searches for a free port, and that shows in connect latency; use {} to keep it flat",
                s.tw_reuse,
                capacity / 2,
                spread(planned * 2),
            ));
        }
    }
    // tcp_tw_reuse hands a TIME_WAIT port to a new connection only once the port's last
    // timestamp is a second old: younger ones still fill the range, and past half of it
    // connect() scans it for each new connection.
    let per_second = cfg.load.rate().map(|r| r as u64).or(planned);
    if reuse
        && !explicit
        && let Some(n) = per_second
        && n > capacity / 2
    {
        hints.push(format!(
            "{n} connections {} against {capacity} local ports ({ports} in {which} x {sources_text}): TIME_WAIT ports are reused only once a second old, so past about {} in a second connect() scans the range and the rate can collapse until they age; use {} to keep it flat, or --close rst or --close server",
            if cfg.load.rate().is_some() { "a second" } else { "planned" },
            capacity / 2,
            spread(n * 2),
        ));
    }
    hints
}

/// What net.ipv4.tcp_fastopen (a bit mask: 1 client, 2 server, 0x200 server without
/// cookies, 0x400 client without) means for a run that asks for Fast Open: a one-line hint
/// when a side it asks for is off, naming the value and the fix; none when it is on or not
/// asked for.
pub fn fastopen_hint(
    client: bool,
    server: bool,
    sysctl: &BTreeMap<String, String>,
) -> Option<String> {
    if !client && !server {
        return None;
    }
    let Some(raw) = sysctl.get("net.ipv4.tcp_fastopen") else {
        return Some("this kernel has no net.ipv4.tcp_fastopen: Fast Open is unavailable".into());
    };
    let value = raw.trim().strip_prefix("0x").map_or_else(
        || raw.trim().parse::<u32>().ok(),
        |hex| u32::from_str_radix(hex, 16).ok(),
    )?;
    let missing: Vec<&str> = [
        (client && value & 1 == 0, "client (bit 1, --fastopen)"),
        (
            server && value & 2 == 0,
            "server (bit 2, --server-fastopen)",
        ),
    ]
    .into_iter()
    .filter_map(|(off, side)| off.then_some(side))
    .collect();
    if missing.is_empty() {
        return None;
    }
    let means = match value & 3 {
        0 => "Fast Open off",
        1 => "client side only, the kernel's default",
        2 => "server side only",
        _ => unreachable!("both bits set leave nothing missing"),
    };
    Some(format!(
        "net.ipv4.tcp_fastopen is {raw} ({means}): the {} side of Fast Open stays off and connections use a plain handshake; use --isolate (which sets it to 3 for the run) or set it to 3 on the host",
        missing.join(" and the ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn cfg(flags: &[&str]) -> RunConfig {
        let argv = ["tcpbench", "run"].iter().chain(flags);
        let Some(Command::Run(a)) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        RunConfig::from_args(&a).unwrap()
    }

    const LOOP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn settings(lo: u16, hi: u16, tw_reuse: u8) -> PortSettings {
        PortSettings {
            range: (lo, hi),
            tw_reuse,
        }
    }

    #[test]
    fn too_many_connections_for_the_ports_get_a_hint_with_the_fix() {
        let s = settings(40000, 41999, 0);
        let h = port_hints(&cfg(&["--conns", "3000"]), LOOP, &s);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h[0].contains("about 1000 local_port_exhaustion"), "{h:?}");
        assert!(h[0].contains("--bind 127.0.0.2-127.0.0.3"), "{h:?}");
        // Four source addresses give 8,000 ports: no exhaustion, but the search slows.
        let four = cfg(&["--conns", "3000", "--bind", "127.0.0.2-127.0.0.5"]);
        assert!(port_hints(&four, LOOP, &s).is_empty());
    }

    #[test]
    fn no_hint_when_the_client_leaves_no_time_wait() {
        let many = ["--conns", "100000"];
        for close in ["rst", "server"] {
            let c = cfg(&["--conns", "100000", "--close", close]);
            assert!(port_hints(&c, LOOP, &settings(32768, 60999, 0)).is_empty());
        }
        // tw_reuse=2 covers loopback only.
        let remote: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            port_hints(&cfg(&many), remote, &settings(32768, 60999, 2)).len(),
            1
        );
    }

    #[test]
    fn explicit_ports_without_reuseaddr_run_out() {
        let flags = [
            "--conns",
            "3000",
            "--port-strategy",
            "explicit",
            "--port-range",
            "20000-20999",
        ];
        let s = settings(32768, 60999, 0);
        assert!(
            port_hints(&cfg(&flags), LOOP, &s).is_empty(),
            "SO_REUSEADDR by default"
        );
        let mut no = flags.to_vec();
        no.push("--no-reuseaddr");
        let h = port_hints(&cfg(&no), LOOP, &s);
        assert!(
            h[0].contains("about 2000 local_port_exhaustion") && h[0].contains("EADDRINUSE"),
            "{h:?}"
        );
    }

    #[test]
    fn suggested_source_ranges_are_real_addresses() {
        let h = port_hints(
            &cfg(&["--conns", "30000"]),
            LOOP,
            &settings(60000, 60099, 0),
        );
        assert!(
            h[0].contains("--bind 127.0.0.2-127.0.1.45 (300 source addresses)"),
            "{h:?}"
        );
        let remote: IpAddr = "192.0.2.1".parse().unwrap();
        let h = port_hints(
            &cfg(&["--conns", "30000"]),
            remote,
            &settings(60000, 60099, 0),
        );
        assert!(h[0].contains("300 source addresses of this host"), "{h:?}");
    }

    #[test]
    fn half_the_range_warns_of_slower_connects() {
        let h = port_hints(
            &cfg(&["--conns", "20000"]),
            LOOP,
            &settings(32768, 60999, 0),
        );
        assert!(h[0].contains("connect() slows"), "{h:?}");
    }

    #[test]
    fn reused_ports_still_warn_of_the_one_second_cliff() {
        let c = cfg(&["--rate", "5000", "--duration", "10s"]);
        let h = port_hints(&c, LOOP, &settings(40000, 40999, 2));
        assert!(
            h[0].contains("5000 connections a second") && h[0].contains("--bind"),
            "{h:?}"
        );
        let h = port_hints(
            &cfg(&["--conns", "20000"]),
            LOOP,
            &settings(32768, 60999, 2),
        );
        assert!(h[0].contains("past about 14116 in a second"), "{h:?}");
        assert!(
            port_hints(
                &cfg(&["--conns", "10000"]),
                LOOP,
                &settings(32768, 60999, 2)
            )
            .is_empty()
        );
    }

    #[test]
    fn fastopen_hint_names_the_side_that_is_off() {
        let with = |v: &str| BTreeMap::from([("net.ipv4.tcp_fastopen".to_string(), v.to_string())]);
        assert_eq!(fastopen_hint(false, false, &with("0")), None);
        assert_eq!(fastopen_hint(true, true, &with("3")), None);
        assert_eq!(fastopen_hint(true, false, &with("1")), None);
        let h = fastopen_hint(true, true, &with("1")).unwrap();
        assert!(
            h.contains("is 1 (client side only") && h.contains("server (bit 2"),
            "{h}"
        );
        assert!(!h.contains("client (bit 1"), "{h}");
        let h = fastopen_hint(true, false, &with("0")).unwrap();
        assert!(
            h.contains("Fast Open off") && h.contains("--isolate"),
            "{h}"
        );
        assert_eq!(fastopen_hint(false, true, &with("0x603")), None);
    }

    #[test]
    fn settings_come_from_sysctls() {
        let sysctl = BTreeMap::from([
            (
                "net.ipv4.ip_local_port_range".to_string(),
                "100 200".to_string(),
            ),
            ("net.ipv4.tcp_tw_reuse".to_string(), "0".to_string()),
        ]);
        assert_eq!(
            PortSettings::from_sysctls(&sysctl),
            Some(settings(100, 200, 0))
        );
    }

    #[test]
    fn descriptor_budget_names_the_numbers() {
        let c = cfg(&["--concurrency", "1000", "--threads", "1"]);
        assert!(fd_budget(&c, 20_000).is_ok());
        let e = fd_budget(&c, 256).unwrap_err().to_string();
        // 256 - 32 margin - 9 for the thread, 2 per connection.
        assert!(
            e.contains("RLIMIT_NOFILE is 256") && e.contains("--concurrency 107 or"),
            "{e}"
        );
        assert!(fd_budget(&cfg(&["--concurrency", "107", "--threads", "1"]), 256).is_ok());
        assert!(fd_budget(&cfg(&["--concurrency", "108", "--threads", "1"]), 256).is_err());
    }

    #[test]
    fn descriptor_budget_counts_threads() {
        // 96 connections fit in 256 with one thread, not with 64 (each holds 9).
        let few = cfg(&["--concurrency", "96", "--threads", "1"]);
        assert!(fd_budget(&few, 256).is_ok());
        let many = cfg(&["--concurrency", "96", "--threads", "64"]);
        let e = fd_budget(&many, 256).unwrap_err().to_string();
        assert!(
            e.contains("over 64 threads needs about 800") && e.contains("--threads 3 or fewer"),
            "{e}"
        );
        assert!(fd_budget(&cfg(&["--concurrency", "96", "--threads", "3"]), 256).is_ok());
        // A client alone holds one descriptor per connection and one runtime per thread.
        let client = cfg(&[
            "--concurrency",
            "96",
            "--threads",
            "64",
            "--target",
            "127.0.0.1:9",
        ]);
        let e = fd_budget(&client, 256).unwrap_err().to_string();
        assert!(
            e.contains("needs about 384") && e.contains("--threads 32 or fewer"),
            "{e}"
        );
    }
}
