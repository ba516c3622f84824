//! IPv6: `-6` runs the embedded server on [::1], the sock_diag sampler counts its
//! TIME_WAIT (AF_INET6), checked against the kernel's TW counter of the run's own namespace,
//! and `--bind` spreads IPv6 sources (ranges, prefixes) as `ss` in that namespace lists them.

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

/// `--bind` with IPv6 sources: four addresses added to the namespace's lo, given as a range
/// and as a prefix; `ss` in that namespace lists the client's TIME_WAIT ends on each of them,
/// round-robin (about 50 each of 200: each worker goes round on its own).
#[test]
fn bind_spreads_ipv6_sources_as_ss_sees_them() {
    let _g = heavy();
    if !common::require_netns() {
        return;
    }
    for bind in ["fd00::1-fd00::4", "fd00::4/126"] {
        let script = "ip link set lo up && for a in 1 2 3 4 5 6 7; do \
                      ip -6 addr add fd00::$a/128 dev lo nodad || exit 1; done && \
                      \"$0\" \"$@\" > /dev/null && ss -Htan6 state time-wait";
        let out = std::process::Command::new("unshare")
            .args(["-n", "sh", "-c", script])
            .arg(env!("CARGO_BIN_EXE_tcpbench"))
            .args([
                "run", "-6", "--bind", bind, "--conns", "200", "--close", "client",
            ])
            .args(["-q", "--concurrency", "8"])
            .output()
            .unwrap();
        let ss = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{ss}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut sources = std::collections::BTreeMap::<String, u32>::new();
        for line in ss.lines() {
            // Recv-Q Send-Q Local Peer: the client end's local address is its source.
            let local: std::net::SocketAddr =
                line.split_whitespace().nth(2).unwrap().parse().unwrap();
            *sources.entry(local.ip().to_string()).or_default() += 1;
        }
        let want: Vec<String> = match bind {
            "fd00::1-fd00::4" => (1..=4).map(|a| format!("fd00::{a}")).collect(),
            _ => (4..=7).map(|a| format!("fd00::{a}")).collect(),
        };
        assert_eq!(
            sources.keys().cloned().collect::<Vec<_>>(),
            want,
            "{bind}: {ss}"
        );
        assert_eq!(sources.values().sum::<u32>(), 200, "{bind}: {sources:?}");
        assert!(
            sources.values().all(|n| (40..=60).contains(n)),
            "{bind}: round-robin: {sources:?}"
        );
    }
}

#[test]
fn bind_of_the_other_family_is_one_line_and_exit_2() {
    for args in [
        &["-6", "--bind", "127.0.0.2"][..],
        &["--bind", "fd00::1-fd00::4"][..],
    ] {
        let out = bin().args(args).args(["--conns", "1"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("--bind") && err.contains("family"), "{err}");
    }
}

/// `--target localhost:PORT` where localhost resolves to ::1 and 127.0.0.1 (a private mount
/// namespace's /etc/hosts, so the test does not depend on the host's): a server on either
/// address alone is found by the probe and loaded. The namespace's kernel counters show the
/// probe left nothing behind: TIME_WAIT for the run's own connections only (the probe's RST).
#[test]
fn a_target_name_with_two_addresses_loads_the_one_that_answers() {
    let _g = heavy();
    if !common::require_netns() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "::1 localhost\n127.0.0.1 localhost\n").unwrap();
    for listen in ["[::1]:18888", "127.0.0.1:18888", ""] {
        let json = dir.path().join("r.json");
        // A fixed port: the namespace is the test's own, nothing else listens in it.
        let serve = match listen {
            "" => String::new(),
            // Bounded: --duration ends it even if the kill below were missed.
            l => format!(
                "\"$0\" serve -l '{l}' --duration 60s > /dev/null 2>&1 & srv=$!; sleep 0.5; "
            ),
        };
        let script = format!(
            "mount --bind '{}' /etc/hosts && ip link set lo up && {serve}\
             \"$0\" run --target localhost:18888 --conns 100 --close client -q --json '{}'; \
             rc=$?; [ -n \"$srv\" ] && kill $srv && wait $srv; exit $rc",
            hosts.display(),
            json.display()
        );
        let out = std::process::Command::new("unshare")
            .args(["-m", "-n", "sh", "-c", &script])
            .arg(env!("CARGO_BIN_EXE_tcpbench"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let r: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(
            r["config"]["target_name"]["resolved"],
            serde_json::json!(["[::1]:18888", "127.0.0.1:18888"]),
            "{err}"
        );
        if listen.is_empty() {
            assert_eq!(out.status.code(), Some(1), "{err}");
            let w = r["warnings"].to_string();
            assert!(
                w.contains("nothing listens") && w.contains("[::1]:18888, 127.0.0.1:18888"),
                "{w}"
            );
            continue;
        }
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert_eq!(r["target_addr"], listen, "{err}");
        assert_eq!(r["config"]["target_name"]["name"], "localhost:18888");
        assert_eq!(r["totals"]["succeeded"], 100, "{}", r["errors"]);
        assert_eq!(r["kernel"]["counters"]["TW"], 100);
        assert_eq!(r["kernel"]["counters"]["ActiveOpens"], 100);
    }
}
