//! `tcpbench ab` as CI meets it: both sides in one job, interleaved, judged on intervals.
//! Each run is a child `tcpbench run` in a network namespace of its own (root).

mod common;

use common::{bin, heavy};
use serde_json::Value;

/// A small steady run: RST close (no TIME_WAIT between runs), few flows, its own namespace.
const COMMON: [&str; 8] = [
    "--conns",
    "500",
    "--concurrency",
    "4",
    "--close",
    "rst",
    "--isolate",
    "--payload=64",
];

fn ab(dir: &std::path::Path, extra: &[&str]) -> (Option<i32>, String, Value) {
    let json = dir.join("ab.json");
    let out = bin()
        .arg("ab")
        .args(["--rounds", "5", "--json"])
        .arg(&json)
        .args(extra)
        .arg("--")
        .args(COMMON)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap_or_default())
        .unwrap_or_else(|e| panic!("no ab JSON ({e}): {stdout}\n{stderr}"));
    (out.status.code(), stdout, v)
}

#[test]
fn the_same_build_against_itself_passes_and_a_2ms_echo_fails() {
    if !common::require_netns() {
        return;
    }
    let _g = heavy();
    let dir = tempfile::tempdir().unwrap();
    let (code, out, v) = ab(dir.path(), &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(v["schema"], "tcpbench.ab.v1");
    for side in v["sides"].as_array().unwrap() {
        let runs = side["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 5, "{side}");
        for r in runs {
            assert_eq!(r["totals"]["succeeded"], 500);
        }
    }
    assert!(out.contains("PASS"), "{out}");

    let (code, out, v) = ab(dir.path(), &["--candidate-args", "--server-echo-delay 2ms"]);
    assert_eq!(code, Some(1), "{out}");
    let echo = v["comparison"]["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["threshold"] == "echo.p50>+25%")
        .unwrap()
        .clone();
    assert_eq!(echo["outcome"], "fails", "{out}");
    // 2 ms on a ~100 µs echo: the whole interval is far above zero.
    let lo = echo["interval"]["lo_pct"].as_f64().unwrap();
    assert!(lo > 100.0, "{echo}");
    let verdict = out.lines().find(|l| l.starts_with("FAIL: ")).unwrap_or("");
    assert!(verdict.contains("echo.p50>+25%"), "{out}");
}

#[test]
fn bad_side_flags_are_one_line() {
    let out = bin()
        .args([
            "ab",
            "--baseline-args",
            "--bind '127.0.0.2",
            "--",
            "-n",
            "10",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--baseline-args") && err.lines().count() == 1,
        "{err}"
    );
}
