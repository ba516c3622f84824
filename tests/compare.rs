//! `tcpbench compare` and `tcpbench matrix` as CI and users meet them: real runs, real files,
//! exit statuses.

mod common;

use std::path::{Path, PathBuf};

use common::{bin, heavy};
use serde_json::Value;

/// A small, steady benchmark: RST close (no TIME_WAIT to build up between runs), few flows.
const BENCH: [&str; 9] = [
    "--conns",
    "1000",
    "--concurrency",
    "4",
    "--close",
    "rst",
    "--repeat",
    "3",
    "-q",
];

fn bench(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let out = bin()
        .args(BENCH)
        .args(extra)
        .arg("--json")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::read_report(&path);
    path
}

fn compare(args: &[&str]) -> (Option<i32>, String, String) {
    let out = bin().arg("compare").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_rerun_passes_and_a_slower_server_fails() {
    let _g = heavy();
    let dir = tempfile::tempdir().unwrap();
    let base = bench(dir.path(), "base.json", &[]);
    let rerun = bench(dir.path(), "rerun.json", &[]);
    let slow = bench(dir.path(), "slow.json", &["--server-echo-delay", "2ms"]);

    // Runs made one after another on a shared machine drift (that is what `tcpbench ab`, and
    // tests/ab.rs, interleave against); here a rerun is held only to what no drift moves.
    let (code, out, err) = compare(&[
        s(&base),
        s(&rerun),
        "--no-default-thresholds",
        "--fail-if",
        "errors>0",
    ]);
    println!("{out}");
    assert_eq!(code, Some(0), "a rerun of the same config: {out}{err}");
    assert!(out.contains("PASS"), "{out}");
    assert!(out.contains("median of 3 runs"), "{out}");

    // The echo delay is a configuration change: refused unless allowed, naming the key.
    let (code, _, err) = compare(&[s(&base), s(&slow)]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("echo_delay") && err.contains("--allow-config-change"),
        "{err}"
    );

    let (code, out, err) = compare(&[s(&base), s(&slow), "--allow-config-change"]);
    println!("{out}");
    assert_eq!(code, Some(1), "a 2 ms slower echo: {out}{err}");
    assert!(
        out.contains("FAIL:") && out.contains("echo.p50>+25%"),
        "{out}"
    );
    let echo = out
        .lines()
        .find(|l| l.starts_with("echo.p50 "))
        .expect("an echo.p50 row");
    assert!(echo.ends_with("worse"), "{echo}");

    // Markdown for a CI summary, JSON for tools; the same verdict.
    let (code, md, _) = compare(&[
        s(&base),
        s(&slow),
        "--allow-config-change",
        "--format",
        "markdown",
    ]);
    assert_eq!(code, Some(1));
    // Led by the verdict (after a machines warning, when a busy machine's calibration moved).
    let first = md.lines().find(|l| !l.starts_with("> ") && !l.is_empty());
    assert!(
        first.is_some_and(|l| l.starts_with("### tcpbench compare: FAIL")),
        "{md}"
    );
    let (code, json, _) = compare(&[
        s(&base),
        s(&slow),
        "--allow-config-change",
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&json).unwrap();
    let failed: Vec<&Value> = v["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["outcome"] == "fails")
        .collect();
    assert!(!failed.is_empty(), "{json}");

    // A threshold the change does not cross passes, even against the slow run.
    let (code, out, _) = compare(&[
        s(&base),
        s(&slow),
        "--allow-config-change",
        "--no-default-thresholds",
        "--fail-if",
        "errors>0",
    ]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn bad_inputs_exit_2_with_one_line_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let report = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/reports/ok-run.json");
    let corpus = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus/reports")
            .join(name)
    };
    let missing = dir.path().join("missing.json");
    for (args, says) in [
        (vec![s(&report), s(&missing)], "missing.json"),
        (
            vec![s(&report), s(&corpus("err-other-schema.json"))],
            "schema tcpbench.report.v0",
        ),
        (
            vec![s(&report), s(&corpus("err-not-json.json"))],
            "not JSON",
        ),
        (
            vec![s(&report), s(&report), "--fail-if", "connect.p99>lots"],
            "--fail-if",
        ),
        (
            vec![s(&report), s(&report), "--fail-if", "latency>+5%"],
            "not a figure",
        ),
        (vec![s(&report)], "CANDIDATE"),
    ] {
        let (code, _, err) = compare(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn matrix_moves_time_wait_with_the_close_mode() {
    let _g = heavy();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.toml");
    std::fs::write(
        &file,
        "[defaults]\nconns = 500\nconcurrency = 4\n\n\
         [[scenario]]\nname = \"client\"\nclose = \"client\"\n\n\
         [[scenario]]\nname = \"server\"\nclose = \"server\"\n\n\
         [[scenario]]\nname = \"rst\"\nclose = \"rst\"\n",
    )
    .unwrap();
    let (json, html) = (dir.path().join("m.json"), dir.path().join("m.html"));
    let out = bin()
        .args(["matrix", s(&file), "--isolate", "-q", "--json", s(&json)])
        .args(["--html", s(&html), "--format", "markdown"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) && err.contains("--isolate cannot create") {
        let why = err.trim().trim_start_matches("tcpbench: error: ");
        common::require(
            &format!("root (CAP_SYS_ADMIN) for --isolate; here: {why}"),
            false,
        );
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{err}");
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("| figure | client | server | rst |"), "{md}");
    let m: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(m["schema"], "tcpbench.matrix.v1");
    for scenario in m["scenarios"].as_array().unwrap() {
        common::assert_schema(&scenario["report"]);
    }
    let tw = |i: usize, side: &str| {
        m["scenarios"][i]["report"]["time_wait"][side]
            .as_u64()
            .unwrap()
    };
    assert!(
        tw(0, "peak_client") >= 450 && tw(0, "peak_server") == 0,
        "client"
    );
    assert!(
        tw(1, "peak_server") >= 300 && tw(1, "peak_client") == 0,
        "server"
    );
    assert!(
        tw(2, "peak_client") == 0 && tw(2, "peak_server") == 0,
        "rst"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.matches("<svg").count() >= 6, "charts in the HTML");
}

#[test]
fn a_bad_scenario_file_names_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[[scenario]]\nname = \"a\"\nconns = 10\n\n[[scenario]]\nname = \"b\"\nclose = \"later\"\n",
    )
    .unwrap();
    let out = bin().args(["matrix", s(&file)]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.toml:7") && err.contains("key `close`") && err.contains("later"),
        "{err}"
    );
}

#[test]
fn merge_adds_agents_and_refuses_other_configurations() {
    let _g = heavy();
    let dir = tempfile::tempdir().unwrap();
    let agent = |i: &str, close: &str| {
        let path = dir.path().join(format!("agent-{i}-{close}.json"));
        let out = bin()
            .args(["--conns", "1001", "--agents", "2", "--agent-index", i])
            .args([
                "--agent-id",
                &format!("a{i}"),
                "--close",
                close,
                "-q",
                "--start-at",
                "+0s",
            ])
            .arg("--json")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    };
    let (a0, a1, other) = (agent("0", "rst"), agent("1", "rst"), agent("1", "client"));
    let read = |p: &Path| -> Value { common::read_report(p) };
    // 1001 connections over 2 agents: 501 and 500.
    assert_eq!(read(&a0)["totals"]["succeeded"], 501);
    assert_eq!(read(&a1)["totals"]["succeeded"], 500);

    let merged = dir.path().join("merged.json");
    let out = bin()
        .args(["merge", s(&a0), s(&a1), "-o", s(&merged)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("merged from 2 agents: a0 (501 succeeded"),
        "{text}"
    );
    let m = read(&merged);
    assert_eq!(m["totals"]["succeeded"], 1001);
    assert_eq!(m["latency"]["total"]["count"], 1001);
    assert_eq!(
        m["config"]["bounds"]["conns"], 1001,
        "the whole run's total"
    );
    assert_eq!(m["agents"].as_array().unwrap().len(), 2);
    // compare reads a merged report like any other.
    let (code, out, err) = compare(&[s(&merged), s(&merged)]);
    assert_eq!(code, Some(0), "{out}{err}");

    let out = bin().args(["merge", s(&a0), s(&a0)]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "the same report twice: {err}");
    assert!(err.contains("give each agent's report once"), "{err}");
    // One agent of two: the merge would cover half the run.
    let out = bin().args(["merge", s(&a1)]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("agent index 0 of --agents 2 is missing"),
        "{err}"
    );

    let out = bin().args(["merge", s(&a0), s(&other)]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("socket.close") && err.contains("--force"),
        "{err}"
    );
    let out = bin()
        .args(["merge", s(&a0), s(&other), "--force"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}
