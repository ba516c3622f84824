//! The handshake knobs, each observed in the kernel: Fast Open counters, TCP_DEFER_ACCEPT's
//! dropped ACKs, TCP_SYNCNT's give-up time and what TCP_QUICKACK does (and does not do) to
//! the close. Every run is `--isolate`d (root), so the counters are the run's alone; where
//! no namespace can be made the test says so and checks nothing.

mod common;

use std::time::Instant;

use common::{bin, heavy};
use serde_json::Value;

/// Whether a network namespace can be made; a skip says so.
fn can_isolate() -> bool {
    let ok = std::process::Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: needs root for network namespaces (unshare -n)");
    }
    ok
}

/// `tcpbench run --isolate ARGS`: its JSON report and exit status.
fn run(args: &[&str]) -> (Value, Option<i32>) {
    common::run_report(&[&["--isolate"][..], args].concat())
}

fn counter(r: &Value, name: &str) -> i64 {
    r["kernel"]["counters"][name]
        .as_i64()
        .unwrap_or_else(|| panic!("no counter {name}: {}", r["kernel"]["counters"]))
}

#[test]
fn fastopen_carries_the_request_in_the_syn_after_one_cookie_request() {
    if !can_isolate() {
        return;
    }
    let _g = heavy();
    let (r, code) = run(&["--fastopen", "--server-fastopen", "64", "--conns", "200"]);
    assert_eq!(code, Some(0), "{}", r["errors"]);
    assert_eq!(r["kernel"]["sysctl"]["net.ipv4.tcp_fastopen"], "3");
    // The first connection (one per thread at most, racing) asks for a cookie; the rest
    // send their request in the SYN and the server accepts it there.
    let (active, passive) = (
        counter(&r, "TCPFastOpenActive"),
        counter(&r, "TCPFastOpenPassive"),
    );
    let reqd = counter(&r, "TCPFastOpenCookieReqd");
    assert!((1..=4).contains(&reqd), "cookie requests {reqd}");
    assert_eq!(
        active + reqd,
        200,
        "active {active} + cookie requests {reqd}"
    );
    assert_eq!(passive, active, "every data-in-SYN accepted by the server");
    assert_eq!(counter(&r, "TCPFastOpenActiveFail"), 0);
    assert_eq!(counter(&r, "TCPFastOpenPassiveFail"), 0);
    assert_eq!(r["totals"]["bytes_received"], 200 * 64);
    // connect() returned before a data-in-SYN left: the kernel's sample of that handshake
    // is read after the first exchange, so every connection has one.
    let rtt = &r["latency"]["handshake_rtt"];
    assert_eq!(rtt["count"], 200, "{rtt}");
    assert!(rtt["p50_us"].as_f64().unwrap() > 0.0, "{rtt}");

    // Without the flags: the same run, no Fast Open at all.
    let (plain, _) = run(&["--conns", "200"]);
    assert_eq!(counter(&plain, "TCPFastOpenActive"), 0);
    assert_eq!(counter(&plain, "TCPFastOpenCookieReqd"), 0);
}

#[test]
fn defer_accept_drops_the_bare_ack_and_accepts_on_the_fin() {
    if !can_isolate() {
        return;
    }
    let _g = heavy();
    let base = ["--conns", "200", "--requests", "0"];
    let with = |extra: &[&str]| run(&[&base[..], extra].concat());

    let (plain, code) = with(&["--close", "client"]);
    assert_eq!(code, Some(0));
    assert_eq!(counter(&plain, "TCPDeferAcceptDrop"), 0);

    // The handshake's last ACK carries no data: the listener drops it and keeps the
    // connection half-open; the client's FIN is what queues it for accept().
    let (deferred, code) = with(&["--close", "client", "--server-defer-accept", "5"]);
    assert_eq!(code, Some(0), "{}", deferred["errors"]);
    assert_eq!(counter(&deferred, "TCPDeferAcceptDrop"), 200);
    assert_eq!(deferred["server"]["accepted"], 200);
    assert_eq!(counter(&deferred, "PassiveOpens"), 200);
    assert!(
        deferred["duration_s"].as_f64().unwrap() < 4.0,
        "the FIN, not the 5 s timeout, woke the server"
    );

    // An RST instead of a FIN: the server is never woken for any of them.
    let (reset, code) = with(&["--close", "rst", "--server-defer-accept", "5"]);
    assert_eq!(code, Some(0), "{}", reset["errors"]);
    assert_eq!(counter(&reset, "TCPDeferAcceptDrop"), 200);
    assert_eq!(reset["server"]["accepted"], 0);
    assert_eq!(counter(&reset, "PassiveOpens"), 0);
    assert_eq!(
        counter(&reset, "AttemptFails"),
        200,
        "reset while half-open"
    );
}

#[test]
fn syn_retries_1_gives_up_in_3_s_where_the_default_waits_on() {
    if !can_isolate() {
        return;
    }
    let _g = heavy();
    // One server worker that waits 60 s before accepting, backlog 1: the first connections
    // fill the accept queue, later SYNs are dropped (ListenOverflows) and retransmitted.
    let dropping = [
        "--server-backlog",
        "1",
        "--server-accept-delay",
        "60s",
        "--server-workers",
        "1",
        "--threads",
        "1",
        "--concurrency",
        "4",
        "--conns",
        "4",
        "--requests",
        "0",
        "--close",
        "rst",
    ];
    let started = Instant::now();
    let (r, code) = run(&[
        &dropping[..],
        &["--syn-retries", "1", "--connect-timeout", "20s"],
    ]
    .concat());
    let took = started.elapsed().as_secs_f64();
    assert_eq!(code, Some(1), "failures exit 1");
    let e = &r["errors"][0];
    assert_eq!(
        (e["phase"].as_str(), e["errno"].as_str()),
        (Some("connect"), Some("ETIMEDOUT")),
        "{}",
        r["errors"]
    );
    let failed_s = r["latency"]["failed"]["p50_us"].as_f64().unwrap() / 1e6;
    // (2^(1+1) - 1) x 1 s initial RTO (measured 3.07 s).
    assert!(
        (2.5..6.0).contains(&failed_s),
        "gave up after {failed_s:.2} s"
    );
    assert!(took < 15.0, "the run took {took:.1} s");
    assert!(counter(&r, "ListenOverflows") > 0);
    let warned = r["warnings"].as_array().unwrap().iter().any(|w| {
        w.as_str()
            .unwrap()
            .contains("gives up after 1 SYN retransmits, about 3 s (--syn-retries 1)")
    });
    assert!(warned, "{}", r["warnings"]);

    // The kernel's default (6: 127 s) outlasts a 6 s --connect-timeout.
    let (d, code) = run(&[&dropping[..], &["--connect-timeout", "6s"]].concat());
    assert_eq!(code, Some(1));
    let e = &d["errors"][0];
    assert_eq!(e["kind"], "connect_timeout");
    assert!(
        e["errno"].is_null(),
        "our timer, not the kernel's: {}",
        d["errors"]
    );
    assert!(d["latency"]["failed"]["p50_us"].as_f64().unwrap() / 1e6 >= 5.9);
}

#[test]
fn quickack_leaves_the_close_at_three_segments() {
    if !can_isolate() {
        return;
    }
    let _g = heavy();
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for quick in [false, true] {
        let json = dir.path().join(format!("t{quick}.json"));
        let mut cmd = bin();
        cmd.args(["trace", "--isolate", "--json"]).arg(&json);
        if quick {
            cmd.arg("--server-quickack");
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let t = if t.is_array() { t[0].clone() } else { t };
        seen.push((
            t["teardown"]["segments"].as_u64(),
            t["teardown"]["first_fin"].clone(),
        ));
    }
    // Measured: TCP_QUICKACK after each read does not reach the ACK of the FIN. The FIN
    // puts the passive side back in delayed-ACK (ping-pong) mode, and the server's own
    // FIN, microseconds later, carries that ACK: FIN, FIN+ACK, ACK either way.
    for (segments, first) in &seen {
        assert_eq!(*segments, Some(3), "{seen:?}");
        assert_eq!(first, "client");
    }
}
