//! Close semantics as the kernel records them: TIME_WAIT on the side that closed first,
//! none after an RST. Each run gets a fresh network namespace of its own (unshare -n, as
//! root), so TIME_WAIT and counters belong to it alone; where that is not permitted the test
//! is a visible skip (`common::require`), and under CI a failure.

mod common;

use std::process::Command;

use common::heavy;
use serde_json::Value;

/// Runs tcpbench with `args` in a fresh network namespace and returns its report, after
/// checking it exited with `code`; `None` when no namespace can be made.
fn isolated(args: &[&str], code: impl Fn(&Value) -> i32) -> Option<Value> {
    let (report, out) = common::isolated_report(args)?;
    assert_eq!(
        out.status.code(),
        Some(code(&report)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(report)
}

/// Every connection succeeded: exit 0.
fn clean(_: &Value) -> i32 {
    0
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn client_close_leaves_time_wait_on_the_client() {
    let _g = heavy();
    let Some(r) = isolated(&["--conns", "2000", "--close", "client"], clean) else {
        return;
    };
    let tw = &r["time_wait"];
    assert_eq!(r["tcp_states"]["source"], "sock_diag");
    assert!(u(&tw["end_client"]) >= 1900, "client TIME_WAIT: {tw}");
    assert_eq!(u(&tw["peak_server"]), 0, "{tw}");
    assert!(u(&r["kernel"]["counters"]["TW"]) >= 1900);
}

#[test]
fn server_close_leaves_time_wait_on_the_server() {
    let _g = heavy();
    let Some(r) = isolated(&["--conns", "2000", "--close", "server"], clean) else {
        return;
    };
    let tw = &r["time_wait"];
    assert!(u(&tw["end_server"]) >= 1900, "server TIME_WAIT: {tw}");
    assert_eq!(u(&tw["peak_client"]), 0, "{tw}");
}

#[test]
fn rst_close_leaves_no_time_wait_and_counts_resets() {
    let _g = heavy();
    let Some(r) = isolated(&["--conns", "2000", "--close", "rst"], clean) else {
        return;
    };
    let tw = &r["time_wait"];
    assert_eq!(
        (u(&tw["peak_client"]), u(&tw["peak_server"])),
        (0, 0),
        "{tw}"
    );
    let c = &r["kernel"]["counters"];
    assert!(u(&c["OutRsts"]) >= 2000, "{c}");
    assert!(u(&c["EstabResets"]) >= 2000, "{c}");
    assert_eq!(u(&c["TW"]), 0, "{c}");
}

#[test]
fn server_linger_zero_resets_the_client_read() {
    let _g = heavy();
    // The server aborts after the client's FIN: the client's read to EOF meets the RST.
    let args = [
        "--conns",
        "500",
        "--close",
        "client",
        "--server-linger",
        "0",
        // Every close may meet the RST: without a limit of its own the run would stop once
        // the first 100 all failed.
        "--max-errors",
        "1000",
    ];
    let exit = |r: &Value| i32::from(u(&r["totals"]["failed"]) > 0);
    let Some(r) = isolated(&args, exit) else {
        return;
    };
    let tw = &r["time_wait"];
    assert_eq!(
        (u(&tw["peak_client"]), u(&tw["peak_server"])),
        (0, 0),
        "{tw}"
    );
    // The kernel delivers the RST to a read that waits for EOF as ECONNRESET, or as EOF when
    // the RST overtakes the read; the report counts each as it came.
    let resets: u64 = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "reset" && e["phase"] == "close")
        .map(|e| u(&e["count"]))
        .sum();
    println!("server linger 0: {resets} of 500 client reads ended in ECONNRESET");
    assert_eq!(
        resets + u(&r["totals"]["succeeded"]),
        500,
        "{}",
        r["errors"]
    );
    assert!(u(&r["server"]["accepted"]) == 500);
}

/// Runs tcpbench with `--isolate` and `args`; returns its output and report, or `None` when
/// no namespace can be made here.
fn run_isolated(args: &[&str]) -> Option<(std::process::Output, Value)> {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = Command::new(env!("CARGO_BIN_EXE_tcpbench"))
        .args(args)
        .args(["--isolate", "-q", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) && stderr.contains("--isolate cannot create") {
        let why = stderr.trim().trim_start_matches("tcpbench: error: ");
        common::require(
            &format!("root (CAP_SYS_ADMIN) for --isolate; here: {why}"),
            false,
        );
        return None;
    }
    assert!(json.exists(), "no report: {stderr}");
    Some((out, common::read_report(&json)))
}

fn errors_of_kind(r: &Value, kind: &str) -> u64 {
    r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| u(&e["count"]))
        .sum()
}

/// 2,000 local ports and no TIME_WAIT reuse (set in the run's own namespace).
const SMALL_PORT_RANGE: [&str; 4] = [
    "--sysctl",
    "net.ipv4.ip_local_port_range=40000 41999",
    "--sysctl",
    "net.ipv4.tcp_tw_reuse=0",
];

#[test]
fn port_exhaustion_is_predicted_counted_and_fixed_by_more_source_addresses() {
    let _g = heavy();
    let mut args = vec!["--conns", "3000", "--close", "client"];
    args.extend(SMALL_PORT_RANGE);
    let Some((out, r)) = run_isolated(&args) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        r["kernel"]["sysctl"]["net.ipv4.ip_local_port_range"],
        "40000 41999"
    );
    assert_eq!(r["kernel"]["sysctl"]["net.ipv4.tcp_tw_reuse"], "0");
    assert!(r["kernel"]["scope"].as_str().unwrap().contains("--isolate"));
    // The embedded server's listener holds one of the 2,000 ports; the client gets the rest.
    let exhausted = errors_of_kind(&r, "local_port_exhaustion");
    assert_eq!(exhausted, 1001, "{}", r["errors"]);
    assert_eq!(u(&r["totals"]["succeeded"]), 1999);
    assert_eq!(r["errors"][0]["errno"], "EADDRNOTAVAIL");
    assert_eq!(u(&r["latency"]["failed"]["count"]), exhausted);
    // The hint came before the run, on stderr, and stays in the report.
    assert!(
        stderr.contains("hint:") && stderr.contains("--bind 127.0.0.2-"),
        "{stderr}"
    );
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("preflight") && warnings.contains("EADDRNOTAVAIL"),
        "{warnings}"
    );
    // The host's own setting is untouched.
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    assert_ne!(
        host.split_whitespace().collect::<Vec<_>>(),
        ["40000", "41999"]
    );

    // Four source addresses: four times the 4-tuples, and every connection gets a port.
    args.extend(["--bind", "127.0.0.2-127.0.0.5"]);
    let (out, r) = run_isolated(&args).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", r["errors"]);
    assert_eq!(u(&r["totals"]["succeeded"]), 3000);
    assert!(
        u(&r["time_wait"]["peak_client"]) >= 2900,
        "{}",
        r["time_wait"]
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hint:"));
}

#[test]
fn a_slow_acceptor_with_a_small_backlog_overflows_the_listen_queue() {
    let _g = heavy();
    // One server worker that accepts a connection every 10 ms, an accept queue of 8, and 64
    // clients at once: SYNs are dropped and come back after the retransmit timeout.
    let args = [
        "--conns",
        "200",
        "--concurrency",
        "64",
        "--server-backlog",
        "8",
        "--server-accept-delay",
        "10ms",
        "--server-workers",
        "1",
        // A connection whose last handshake ACK the full queue dropped waits in the echo
        // until the server's SYN+ACK retransmits get it accepted: seconds, under load more
        // than the default 10 s deadline. This test is about the overflow, not that wait.
        "--io-timeout",
        "60s",
    ];
    let Some((out, r)) = run_isolated(&args) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(u(&r["totals"]["succeeded"]), 200);
    let p99 = r["latency"]["connect"]["p99_us"].as_f64().unwrap();
    assert!(p99 >= 1e6, "connect p99 {p99} µs: no SYN was retransmitted");
    let overflows = u(&r["kernel"]["counters"]["ListenOverflows"]);
    assert!(overflows > 0, "{}", r["kernel"]["counters"]);
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("listen-queue overflows") && warnings.contains("--server-backlog"),
        "{warnings}"
    );
}

#[test]
fn a_full_time_wait_table_marks_the_report_saturated() {
    let _g = heavy();
    let args = [
        "--conns",
        "2000",
        "--close",
        "client",
        "--sysctl",
        "net.ipv4.tcp_max_tw_buckets=1000",
    ];
    let Some((out, r)) = run_isolated(&args) else {
        return;
    };
    assert_eq!(out.status.code(), Some(0), "{}", r["errors"]);
    assert_eq!(r["saturated"], true, "{}", r["time_wait"]);
    let overflow = u(&r["kernel"]["counters"]["TCPTimeWaitOverflow"]);
    assert!(
        (900..=1100).contains(&overflow),
        "TCPTimeWaitOverflow {overflow}"
    );
    // The kernel's check lets the count reach one past the cap.
    assert!(
        u(&r["time_wait"]["peak_client"]) <= 1001,
        "{}",
        r["time_wait"]
    );
    assert!(
        r["warnings"].to_string().contains("saturated"),
        "{}",
        r["warnings"]
    );

    // Under the cap, the same run is not saturated.
    let (_, r) = run_isolated(&["--conns", "500", "--close", "client"]).unwrap();
    assert_eq!(r["saturated"], false);
}

#[test]
fn rebind_needs_so_reuseaddr_on_both_sockets() {
    let _g = heavy();
    if !common::require_netns() {
        return;
    }
    rebind_table(&[], "127.0.0.1");
}

#[test]
fn rebind_6_does_the_same_on_ipv6_loopback() {
    let _g = heavy();
    if !common::require_netns() {
        return;
    }
    rebind_table(&["-6"], "[::1]");
}

/// `rebind --conns 3 FLAGS` in a fresh namespace: the 2×2 table, and `ss` in that namespace
/// lists the four servers' TIME_WAIT ends (3 each: the server closed first) on `ip`, and no other.
fn rebind_table(flags: &[&str], ip: &str) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rebind.json");
    let script = "ip link set lo up && \"$0\" \"$@\" > /dev/null && ss -Htan state time-wait";
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .arg(env!("CARGO_BIN_EXE_tcpbench"))
        .arg("rebind")
        .args(flags)
        .args(["--conns", "3", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        json.exists(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let ss = String::from_utf8_lossy(&out.stdout);
    let local_on_ip = |l: &&str| {
        l.split_whitespace()
            .nth(2)
            .is_some_and(|a| a.starts_with(&format!("{ip}:")))
    };
    assert_eq!(ss.lines().filter(local_on_ip).count(), 4 * 3, "{ss}");
    assert_eq!(ss.lines().count(), 4 * 3, "only {ip}: {ss}");
    let table: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = table.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        assert!(
            row["addr"].as_str().unwrap().starts_with(ip),
            "the servers listened on {ip}: {row}"
        );
        assert!(
            u(&row["time_wait"]) >= 3,
            "server-side TIME_WAIT was there: {row}"
        );
        let both = row["old_reuseaddr"] == true && row["new_reuseaddr"] == true;
        let want = if both {
            Value::Null
        } else {
            Value::from("EADDRINUSE")
        };
        assert_eq!(row["error"], want, "{row}");
    }
}

#[test]
fn explicit_ports_come_from_the_given_range() {
    let _g = heavy();
    if !common::require_netns() {
        return;
    }
    // The client closes first, so the kernel keeps each 4-tuple in TIME_WAIT: their local
    // ports are the ports the client bound. `ss` lists them in the same namespace.
    let script = "ip link set lo up && \"$0\" \"$@\" > /dev/null && ss -Htan state time-wait";
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .arg(env!("CARGO_BIN_EXE_tcpbench"))
        .args(["--conns", "500", "--close", "client-nowait", "-q"])
        .args(["--port-strategy", "explicit", "--port-range", "21000-21999"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    // Columns: Recv-Q Send-Q Local:Port Peer:Port
    let ports: Vec<u16> = listing
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(2)?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(ports.len(), 500, "{listing}");
    assert!(
        ports.iter().all(|p| (21000..=21999).contains(p)),
        "ports outside the range: {ports:?}"
    );
}

/// `--isolate`'s namespace has a TCP socket hash table of its own, sized for a run, not
/// the host's (whose every bucket each sock_diag dump of the sampler would walk); the
/// host's sysctls are untouched.
#[test]
fn an_isolated_namespace_has_its_own_small_socket_hash_table() {
    if !common::require_netns() {
        return;
    }
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .unwrap()
            .trim()
            .to_string()
    };
    let host_child = read("tcp_child_ehash_entries");
    let inside = std::thread::spawn(move || {
        tcpbench::observe::netns::enter_fresh().unwrap();
        (read("tcp_ehash_entries"), read("tcp_child_ehash_entries"))
    })
    .join()
    .unwrap();
    let buckets = tcpbench::observe::netns::EHASH_BUCKETS.to_string();
    // The kernel prints a namespace's own table's size as "N" and the shared one's as "-N".
    assert_eq!(inside.0, buckets, "the run's namespace: {inside:?}");
    assert_eq!(inside.1, "0", "the run's namespace makes no more of them");
    assert_eq!(
        read("tcp_child_ehash_entries"),
        host_child,
        "the host's sysctl"
    );
}
