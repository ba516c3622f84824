//! IPv6: `-6` runs the embedded server on [::1], and the sock_diag sampler counts its
//! TIME_WAIT (AF_INET6), checked against the kernel's TW counter of the run's own namespace.

mod common;

use common::{bin, heavy};
use serde_json::Value;

/// `tcpbench run ARGS` (quiet, JSON): its report and exit status.
fn run(args: &[&str]) -> (Value, Option<i32>) {
    common::run_report(args)
}

#[test]
fn run_6_loads_a_server_on_ipv6_loopback() {
    let _g = heavy();
    let (r, code) = run(&["-6", "--conns", "300", "--close", "rst"]);
    assert_eq!(code, Some(0), "{}", r["errors"]);
    let addr: std::net::SocketAddr = r["target_addr"].as_str().unwrap().parse().unwrap();
    assert_eq!(addr.ip(), std::net::Ipv6Addr::LOCALHOST);
    assert_eq!(r["totals"]["succeeded"], 300);
    assert_eq!(r["server"]["accepted"], 300);
    assert_eq!(r["totals"]["bytes_received"], 300 * 64);
}

#[test]
fn the_sampler_counts_ipv6_time_wait_in_an_isolated_run() {
    if !std::process::Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("SKIPPED: needs root for network namespaces (unshare -n)");
        return;
    }
    let _g = heavy();
    let (r, code) = run(&["-6", "--isolate", "--conns", "300", "--close", "client"]);
    assert_eq!(code, Some(0), "{}", r["errors"]);
    // Its own namespace: every TIME_WAIT is one of this run's 300 client closes.
    let tw = &r["time_wait"];
    assert_eq!(tw["peak_client"], 300, "{tw}");
    assert_eq!(tw["end_client"], 300, "{tw}");
    assert_eq!(tw["peak_server"], 0, "{tw}");
    assert_eq!(r["kernel"]["counters"]["TW"], 300);

    // --close server: the TIME_WAIT is on the server's side of [::1].
    let (r, code) = run(&["-6", "--isolate", "--conns", "200", "--close", "server"]);
    assert_eq!(code, Some(0), "{}", r["errors"]);
    assert_eq!(r["time_wait"]["peak_server"], 200, "{}", r["time_wait"]);
    assert_eq!(r["time_wait"]["peak_client"], 0, "{}", r["time_wait"]);
}

#[test]
fn dash_6_with_a_target_is_one_line_and_exit_2() {
    let out = bin()
        .args(["-6", "--target", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("-6") && err.contains("[::1]:9"), "{err}");
}
