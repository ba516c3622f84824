//! A load path that holds against hostile input: stop rules that stop, targets that cheat,
//! and diagnoses that name the real cause (issue 12, sections 2-4).
//!
//! The servers here are written in the test with std threads, one connection at a time, so
//! each behaves exactly as described and nothing of tcpbench's own server is involved.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{bin, heavy, refusing_port};

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs tcpbench with `args` plus `-q --json`, and returns its exit code, report and stdout.
fn run_json(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = bin()
        .args(args)
        .arg("-q")
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let text = std::fs::read(&json)
        .unwrap_or_else(|e| panic!("{args:?}: no report ({e}): {}", stderr_of(&out)));
    let r = serde_json::from_slice(&text).unwrap();
    (
        out.status.code(),
        r,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A server on a loopback port that serves `conns` connections one after another with
/// `serve`, then stops. Every socket has a 10 s timeout, so no thread outlives a test long.
fn one_at_a_time(conns: usize, serve: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(conns) {
            let Ok(stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
                .set_write_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            serve(stream);
        }
    });
    addr
}

/// Echoes each read as it comes, with `extra` appended to the same write.
fn echo_with(s: &mut TcpStream, extra: &[u8]) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let mut out = buf[..n].to_vec();
        out.extend_from_slice(extra);
        s.write_all(&out)?;
    }
}

/// The textbook echo server: echo each read; on EOF write "bye", shutdown(SHUT_WR), close.
fn textbook(mut s: TcpStream) {
    if echo_with(&mut s, b"").is_ok() {
        let _ = s.write_all(b"bye");
        let _ = s.shutdown(Shutdown::Write);
    }
}

#[test]
fn a_textbook_servers_farewell_is_counted_not_failed() {
    let _guard = heavy();
    let conns = 200;
    let addr = one_at_a_time(conns, textbook).to_string();
    let n = conns.to_string();
    let (code, r, text) = run_json(&["--target", &addr, "--conns", &n, "--concurrency", "4"]);
    assert_eq!(code, Some(0), "{}", r["errors"]);
    let t = &r["totals"];
    assert_eq!(t["succeeded"], 200);
    assert_eq!(t["farewell_bytes"], 3 * 200);
    assert_eq!(t["bytes_received"], 64 * 200 + 3 * 200);
    assert!(text.contains("600 B farewell"), "{text}");

    // The count checked: the right one passes, any other fails each connection.
    let addr = one_at_a_time(20, textbook).to_string();
    let flags = ["--target", &addr, "--conns", "20", "--expect-farewell", "3"];
    let (code, r, _) = run_json(&flags);
    assert_eq!(code, Some(0), "{}", r["errors"]);
    assert_eq!(r["totals"]["farewell_bytes"], 60);
    let addr = one_at_a_time(20, textbook).to_string();
    let flags = ["--target", &addr, "--conns", "20", "--expect-farewell", "2"];
    let (code, r, _) = run_json(&flags);
    assert_eq!(code, Some(1));
    assert_eq!(r["totals"]["failed"], 20);
    assert_eq!(
        r["errors"][0]["kind"], "farewell_mismatch",
        "{}",
        r["errors"]
    );
    assert_eq!(r["errors"][0]["phase"], "close");
}

/// Sends back 6 bytes more than it was sent, in the same write as the echo.
fn cheat(mut s: TcpStream) {
    let _ = echo_with(&mut s, b"EXTRA!");
}

#[test]
fn bytes_beyond_the_echo_fail_as_extra_bytes() {
    let _guard = heavy();
    for close in ["client", "client-nowait", "rst"] {
        let addr = one_at_a_time(50, cheat).to_string();
        let (code, r, _) = run_json(&[
            "--target",
            &addr,
            "--conns",
            "50",
            "--concurrency",
            "2",
            "--close",
            close,
        ]);
        assert_eq!(code, Some(1), "--close {close}");
        assert_eq!(r["totals"]["succeeded"], 0, "--close {close}");
        assert_eq!(r["totals"]["failed"], 50, "--close {close}");
        assert_eq!(r["errors"][0]["kind"], "extra_bytes", "{}", r["errors"]);
        assert_eq!(r["errors"][0]["phase"], "echo");
        assert_eq!(r["errors"].as_array().unwrap().len(), 1, "{}", r["errors"]);
        assert_eq!(r["totals"]["bytes_received"], 50 * 70, "--close {close}");
    }
}

/// Echoes, then 20 ms later sends 4 bytes nobody asked for, then echoes on.
fn late_cheat(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        if s.write_all(&buf[..n]).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
        if s.write_all(b"LATE").is_err() {
            return;
        }
    }
}

#[test]
fn bytes_queued_when_the_close_starts_fail_as_extra_bytes() {
    let _guard = heavy();
    // The client holds each connection 300 ms after its echo: the late bytes are queued
    // by then, before our FIN.
    let addr = one_at_a_time(3, late_cheat).to_string();
    let (code, r, _) = run_json(&[
        "--target",
        &addr,
        "--conns",
        "3",
        "--concurrency",
        "1",
        "--hold",
        "300ms",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(r["totals"]["failed"], 3);
    assert_eq!(r["errors"][0]["kind"], "extra_bytes", "{}", r["errors"]);
    assert_eq!(r["totals"]["bytes_received"], 3 * (64 + 4));
}

/// Reads the request, then echoes it a byte every 100 ms.
fn drip(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    let Ok(n) = s.read(&mut buf) else { return };
    for b in &buf[..n] {
        std::thread::sleep(Duration::from_millis(100));
        if s.write_all(&[*b]).is_err() {
            return;
        }
    }
}

/// Echoes, and after the client's FIN drips a farewell a byte every 100 ms, never its FIN.
fn drip_farewell(mut s: TcpStream) {
    if echo_with(&mut s, b"").is_ok() {
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            if s.write_all(b".").is_err() {
                return;
            }
        }
    }
}

#[test]
fn io_timeout_is_a_deadline_for_the_whole_echo_and_the_wait_for_fin() {
    let _guard = heavy();
    for (server, phase) in [(drip as fn(TcpStream), "echo"), (drip_farewell, "close")] {
        let addr = one_at_a_time(2, server).to_string();
        let started = Instant::now();
        let (code, r, _) = run_json(&[
            "--target",
            &addr,
            "--conns",
            "2",
            "--concurrency",
            "1",
            "--io-timeout",
            "300ms",
        ]);
        let took = started.elapsed();
        assert_eq!(code, Some(1), "{phase}");
        assert_eq!(r["totals"]["failed"], 2, "{phase}");
        assert_eq!(r["errors"][0]["kind"], "io_timeout", "{}", r["errors"]);
        assert_eq!(r["errors"][0]["phase"], phase, "{}", r["errors"]);
        // Each connection gives up at 300 ms; 64 bytes a tenth of a second apart take 6.4 s.
        assert!(took < Duration::from_secs(4), "{phase}: took {took:?}");
    }
}

#[test]
fn max_errors_stops_within_the_connections_in_flight() {
    let _guard = heavy();
    let (_holder, addr) = refusing_port();
    let addr = addr.to_string();
    let concurrency = 8;
    let c = concurrency.to_string();
    for (limit, at_least, at_most, why) in [
        (Some("10"), 10, 10 + concurrency, "--max-errors 10"),
        (
            Some("50%"),
            100,
            100 + concurrency,
            "more than --max-errors 50%",
        ),
        (None, 100, 100 + concurrency, "the first"),
    ] {
        let mut flags = vec!["--target", &addr, "--duration", "30s", "--concurrency", &c];
        flags.extend(limit.iter().flat_map(|l| ["--max-errors", l]));
        let (code, r, _) = run_json(&flags);
        assert_eq!(code, Some(1), "{limit:?}");
        let failed = r["totals"]["failed"].as_u64().unwrap();
        assert!(
            (at_least..=at_most).contains(&failed),
            "{limit:?}: stopped after {failed} failures, not within {at_least}..={at_most}"
        );
        let aborted = r["aborted"].as_str().unwrap_or_default();
        assert!(aborted.contains(why), "{limit:?}: {aborted}");
    }
}

/// A child tcpbench with RLIMIT_NOFILE set to `limit`, soft and hard, before it starts.
fn with_nofile(limit: u64, args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = bin();
    cmd.args(args);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd.output().unwrap()
}

#[test]
fn the_descriptor_preflight_counts_threads() {
    let _guard = heavy();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let j = json.to_str().unwrap();
    let base = ["--conns", "500", "--concurrency", "96", "-q", "--json", j];
    let out = with_nofile(256, &[&base[..], &["--threads", "64"]].concat());
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("RLIMIT_NOFILE is 256") && err.contains("over 64 threads"),
        "{err}"
    );
    assert!(!json.exists(), "a refused run writes no report");
    // The fix it names works under the same limit.
    let threads = err
        .split("--threads ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no --threads fix: {err}"));
    let out = with_nofile(256, &[&base[..], &["--threads", threads]].concat());
    assert_eq!(
        out.status.code(),
        Some(0),
        "--threads {threads}: {}",
        stderr_of(&out)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["totals"]["succeeded"], 500, "{}", r["errors"]);
}

#[test]
fn bad_values_exit_2_with_one_line() {
    for (args, names) in [
        (vec!["--rate", "1e300", "-n", "5"], "--rate 1e300"),
        (vec!["--rate", "1e-300", "-n", "5"], "--rate 1e-300"),
        (vec!["--rate=0", "-n", "5"], "0.001 to 10000000"),
        (vec!["--rate=-5", "-n", "5"], "--rate"),
        (vec!["--rate", "inf", "-n", "5"], "--rate"),
        (vec!["--rate", "NaN", "-n", "5"], "--rate"),
        (vec!["--rate", "20000000", "-n", "5"], "0.001 to 10000000"),
        (vec!["--target", "127.0.0.1:0", "-n", "5"], "port 0"),
        (
            vec!["--bind", "192.0.2.1", "-n", "5"],
            "--bind 192.0.2.1 is not an address",
        ),
        (vec!["--io-timeout", "0s", "-n", "5"], "--io-timeout"),
        (
            vec!["--connect-timeout", "0s", "-n", "5"],
            "--connect-timeout",
        ),
        (vec!["--expect-farewell", "3", "-n", "5"], "--target"),
        (
            vec![
                "--target",
                "127.0.0.1:9",
                "--expect-farewell",
                "3",
                "--close",
                "rst",
            ],
            "--close client",
        ),
        (
            vec![
                "serve",
                "-l",
                "127.0.0.1:0",
                "--max-payload",
                "0",
                "--duration",
                "1s",
            ],
            "--max-payload",
        ),
        (
            vec![
                "serve",
                "-l",
                "127.0.0.1:0",
                "--idle-timeout",
                "0s",
                "--duration",
                "1s",
            ],
            "--idle-timeout",
        ),
    ] {
        let out = bin().args(&args).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(names), "{args:?}: {err}");
    }
    // The ends of the --rate range are taken.
    for rate in ["0.001", "10000000"] {
        let out = bin()
            .args(["--rate", rate, "-n", "1", "-q"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "--rate {rate}: {}",
            stderr_of(&out)
        );
    }
}

#[test]
fn a_source_address_that_is_not_here_is_a_bind_address_failure() {
    // Past the preflight (an address could go away mid-run): the connection's own kind.
    let (_holder, target) = refusing_port();
    let t = target.to_string();
    let cfg = common::config(&["--target", &t, "--bind", "192.0.2.1"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let echo = tcpbench::load::proto::Protocol::from_config(&cfg.protocol, 64, target).unwrap();
    let mut scratch = tcpbench::load::conn::Scratch::new(&cfg, echo.into());
    let (_keep, mut stop) = tokio::sync::watch::channel(false);
    let source = Some("192.0.2.1".parse().unwrap());
    let f = rt
        .block_on(tcpbench::load::conn::run(
            &cfg,
            target,
            source,
            None,
            &mut stop,
            &mut scratch,
        ))
        .unwrap_err();
    assert_eq!(f.kind, tcpbench::failure::ErrorKind::BindAddress);
    assert_eq!(f.errno, Some(libc::EADDRNOTAVAIL));
}

/// Every key README's "The report" lists, as JSON pointers.
const DOCUMENTED: &[&str] = &[
    "/schema",
    "/config",
    "/environment/kernel",
    "/environment/cpus",
    "/environment/rlimit_nofile",
    "/totals/attempted",
    "/totals/succeeded",
    "/totals/failed",
    "/totals/bytes_sent",
    "/totals/bytes_received",
    "/totals/farewell_bytes",
    "/totals/syn_retransmitted",
    "/rate_cps",
    "/errors",
    "/interrupted",
    "/aborted",
    "/latency/start_lag",
    "/server/accept_wait",
    "/kernel/counters",
    "/kernel/sysctl",
    "/cpu/user_s",
    "/cpu/sys_s",
    "/cpu/us_per_conn",
    "/cpu/system_busy_pct",
    "/cpu/system_softirq_pct",
    "/warnings",
    "/saturated",
    "/tcp_states/source",
    "/tcp_states/exact_interval_ms",
    "/time_wait/peak_client",
    "/time_wait/peak_server",
    "/time_wait/end_client",
    "/time_wait/end_server",
    "/time_wait/drain_s",
    "/time_wait/peak_namespace",
];

const PHASE_KEYS: &[&str] = &[
    "count", "min_us", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "hdr",
];

#[test]
fn every_documented_key_is_in_a_plain_runs_report() {
    let _guard = heavy();
    let (code, r, _) = run_json(&["--conns", "100"]);
    assert_eq!(code, Some(0));
    for key in DOCUMENTED {
        assert!(
            r.pointer(key).is_some(),
            "{key} missing from a plain run's report"
        );
    }
    for phase in [
        "connect",
        "handshake_rtt",
        "echo",
        "close",
        "total",
        "failed",
    ] {
        for key in PHASE_KEYS {
            let p = format!("/latency/{phase}/{key}");
            assert!(r.pointer(&p).is_some(), "{p} missing");
        }
    }
    assert!(r["aborted"].is_null() && r["time_wait"]["drain_s"].is_null());
    assert!(
        r["latency"]["start_lag"].is_null(),
        "closed loop has no schedule"
    );
    assert_eq!(r["interrupted"], false);
    // And an error's keys, from a run that has some.
    let (_holder, addr) = refusing_port();
    let a = addr.to_string();
    let (_, r, _) = run_json(&["--target", &a, "--conns", "5"]);
    for key in ["phase", "kind", "errno", "count"] {
        assert!(
            r["errors"][0].get(key).is_some(),
            "errors[0].{key}: {}",
            r["errors"]
        );
    }
}

#[test]
fn a_target_where_nothing_listens_says_how_to_start_one() {
    let (_holder, addr) = common::refusing_port();
    let out = common::bin()
        .args(["-q", "-n", "300", "--target", &addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let hint = format!("nothing listens on {addr}: start one with `tcpbench serve -l {addr}`");
    assert!(text.contains(&hint), "{text}");
    let out = common::bin().args(["--target", "8888"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'8888' has no host"));
}
