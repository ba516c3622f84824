//! A load path that holds against hostile input: stop rules that stop, targets that cheat,
//! and diagnoses that name the real cause (issue 12, sections 2-4).
//!
//! The servers here are written in the test with std threads, one connection at a time, so
//! each behaves exactly as described and nothing of tcpbench's own server is involved.

mod common;

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
