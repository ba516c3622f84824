//! The two engines (`--engine tokio`, `--engine uring`) run the same connection cycle: the
//! same run on each, in a fresh network namespace, leaves the same marks in the kernel
//! (TIME_WAIT on the side that closed first, RSTs, its counters) and the same counts and
//! bytes in the report. `auto` is tokio while the io_uring engine is opt-in.

mod common;

use common::heavy;
use serde_json::Value;

/// Runs tcpbench with `args` in a fresh network namespace: its report and exit status.
fn isolated(args: &[&str]) -> Option<(Value, Option<i32>)> {
    common::isolated_report(args).map(|(r, out)| (r, out.status.code()))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The same `args` on both engines: each report, after checking it says its engine.
fn both(args: &[&str]) -> Option<[(Value, Option<i32>); 2]> {
    let run = |engine: &str| {
        let mut a = args.to_vec();
        a.extend(["--engine", engine]);
        let (r, code) = isolated(&a)?;
        assert_eq!(r["config"]["engine"], engine, "{}", r["config"]);
        Some((r, code))
    };
    Some([run("tokio")?, run("uring")?])
}

/// Both engines' runs of `close` mode: every connection succeeded and closed the same way,
/// the bytes the server counted are the ones the client sent, and the kernel holds
/// TIME_WAIT (or saw RSTs) on the same side.
fn same_close(close: &str, conns: u64) {
    let _g = heavy();
    let n = conns.to_string();
    let Some(runs) = both(&["--conns", &n, "--close", close, "--payload", "100"]) else {
        return;
    };
    let mut seen = Vec::new();
    for (r, code) in &runs {
        let engine = r["config"]["engine"].clone();
        assert_eq!(*code, Some(0), "{engine}: {}", r["errors"]);
        let t = &r["totals"];
        assert_eq!(u(&t["succeeded"]), conns, "{engine}: {t}");
        assert_eq!(u(&t["bytes_sent"]), conns * 100, "{engine}: {t}");
        assert_eq!(u(&t["bytes_received"]), conns * 100, "{engine}: {t}");
        // What the server (another thread, another socket) read and echoed.
        let s = &r["server"];
        assert_eq!(u(&s["accepted"]), conns, "{engine}: {s}");
        assert_eq!(u(&s["bytes_in"]), conns * 100, "{engine}: {s}");
        let tw = &r["time_wait"];
        let c = &r["kernel"]["counters"];
        let side = match close {
            "rst" => {
                assert!(u(&c["OutRsts"]) >= conns, "{engine}: {c}");
                assert_eq!(u(&c["TW"]), 0, "{engine}: {c}");
                "none"
            }
            _ if u(&tw["end_client"]) >= conns * 95 / 100 && u(&tw["peak_server"]) == 0 => "client",
            _ if u(&tw["end_server"]) >= conns * 95 / 100 && u(&tw["peak_client"]) == 0 => "server",
            _ => panic!("{engine}: TIME_WAIT on neither side alone: {tw}"),
        };
        seen.push((t["closes"].clone(), side));
    }
    assert_eq!(seen[0], seen[1], "tokio vs uring, --close {close}");
}

#[test]
fn rst_closes_alike() {
    same_close("rst", 1000);
}

#[test]
fn client_nowait_closes_alike() {
    same_close("client-nowait", 1000);
}

#[test]
fn client_closes_alike() {
    same_close("client", 1000);
}

#[test]
fn server_closes_alike() {
    same_close("server", 1000);
}

#[test]
fn several_requests_and_a_farewell_alike() {
    let _g = heavy();
    let args = [
        "--conns",
        "300",
        "--requests",
        "3",
        "--close",
        "client",
        "--server-farewell",
        "7",
        "--concurrency",
        "8",
    ];
    let Some(runs) = both(&args) else { return };
    for (r, code) in &runs {
        let engine = &r["config"]["engine"];
        assert_eq!(*code, Some(0), "{engine}: {}", r["errors"]);
        let t = &r["totals"];
        assert_eq!(u(&t["succeeded"]), 300, "{engine}: {t}");
        assert_eq!(u(&t["farewell_bytes"]), 300 * 7, "{engine}: {t}");
        // Three round trips a connection.
        assert_eq!(u(&r["latency"]["echo"]["count"]), 900, "{engine}");
    }
}

#[test]
fn a_refusing_port_fails_alike() {
    let _g = heavy();
    // In its own namespace nothing listens on this port: every SYN meets an RST.
    let args = [
        "--target",
        "127.0.0.1:9",
        "--conns",
        "200",
        "--max-errors",
        "1000",
    ];
    let Some(runs) = both(&args) else { return };
    for (r, code) in &runs {
        let engine = &r["config"]["engine"];
        assert_eq!(*code, Some(1), "{engine}");
        let t = &r["totals"];
        assert_eq!(
            (u(&t["failed"]), u(&t["succeeded"])),
            (200, 0),
            "{engine}: {t}"
        );
        let errors = r["errors"].to_string();
        assert!(errors.contains("refused"), "{engine}: {errors}");
        assert!(u(&r["kernel"]["counters"]["OutRsts"]) >= 200, "{engine}");
    }
}

#[test]
fn a_hold_keeps_every_connection_open_at_once() {
    let _g = heavy();
    let args = ["--conns", "400", "--concurrency", "400", "--hold", "1s"];
    let Some((r, code)) = isolated(&[&args[..], &["--engine", "uring"]].concat()) else {
        return;
    };
    assert_eq!(code, Some(0), "{}", r["errors"]);
    assert_eq!(u(&r["totals"]["succeeded"]), 400);
    // The sampler (sock_diag) saw them established together on the client's side.
    let samples = r["tcp_states"]["samples"].as_array().expect("samples");
    let peak = samples
        .iter()
        .filter_map(|s| s["client"]["ESTABLISHED"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(peak >= 400 * 9 / 10, "established at peak: {peak}");
}

/// `auto` stays on tokio while the io_uring engine is opt-in (issue #19 open), even in a
/// closed loop that uring could drive.
#[test]
fn auto_is_tokio_while_uring_is_opt_in() {
    let _g = heavy();
    let out = common::bin()
        .args(["run", "-q", "--conns", "50", "--json", "/dev/stdout"])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(r["config"]["engine"], "tokio");
    assert_eq!(u(&r["totals"]["succeeded"]), 50);
}

#[test]
fn uring_refuses_an_option_it_lacks_in_one_line() {
    let out = common::bin()
        .args(["run", "--engine", "uring", "--rate", "100", "--conns", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--engine uring") && stderr.contains("--rate"),
        "{stderr}"
    );
}
