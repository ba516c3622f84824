//! `matrix` and `ab` starting real servers: each scenario's (or run's) own nginx in its own
//! namespace, a server that exits or never listens failing only its scenario, and no server
//! process left behind, however tcpbench ends.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::servers::require;
use common::{bin, heavy};
use serde_json::Value;

/// Runs `tcpbench matrix FILE EXTRA… --json OUT`: exit code, stderr, the JSON.
fn matrix(file: &Path, extra: &[&str]) -> (Option<i32>, String, Value) {
    let json = file.with_extension("json");
    let out = bin()
        .arg("matrix")
        .arg(file)
        .args(extra)
        .args(["--quiet", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_slice(&std::fs::read(&json).unwrap_or_default())
        .unwrap_or_else(|e| panic!("no matrix JSON ({e}): {stderr}"));
    (out.status.code(), stderr, v)
}

/// Every server a matrix JSON names: ran scenarios' and failed ones'.
fn server_pids(v: &Value) -> Vec<u32> {
    let served = v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.get("server"))
        .chain(
            v["failed"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| &f["server"]),
        );
    served
        .flat_map(|s| s["runs"].as_array().unwrap().clone())
        .map(|r| r["pid"].as_u64().unwrap() as u32)
        .collect()
}

/// Processes whose process group is `pgid` (a server's, named by its leader's PID), or that
/// are `pgid` itself.
fn group_members(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // pid (comm) state ppid pgrp …
                let rest: Vec<&str> = stat
                    .rsplit_once(')')
                    .unwrap()
                    .1
                    .split_whitespace()
                    .collect();
                *pid == pgid || rest.get(2) == Some(&pgid.to_string().as_str())
            })
        })
        .collect()
}

/// Asserts no process of any of these servers' groups is left, waiting up to `limit` (a
/// server told to stop by the kernel exits a moment after its parent).
fn assert_gone(pids: &[u32], limit: Duration) {
    let until = Instant::now() + limit;
    loop {
        let left: Vec<u32> = pids.iter().flat_map(|p| group_members(*p)).collect();
        if left.is_empty() {
            return;
        }
        if Instant::now() >= until {
            for pid in &left {
                // SAFETY: kill(2) on a server this test's tcpbench started and left behind.
                unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
            }
            panic!("server processes left (now killed): {left:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Children of process `parent` (its servers), waiting up to 10 s for the first.
fn children_of(parent: u32) -> Vec<u32> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let kids: Vec<u32> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    let rest: Vec<&str> = stat
                        .rsplit_once(')')
                        .unwrap()
                        .1
                        .split_whitespace()
                        .collect();
                    rest.get(1) == Some(&parent.to_string().as_str())
                })
            })
            .collect();
        if !kids.is_empty() || Instant::now() >= until {
            return kids;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The shipped nginx baseline template with its backlog and workers changed, written to `dir`.
fn nginx_template(dir: &Path, name: &str, backlog: u32) -> PathBuf {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/servers/nginx-backlog511.conf");
    let text = std::fs::read_to_string(base).unwrap();
    assert!(text.contains("backlog=511") && text.contains("worker_processes 2;"));
    let text = text
        .replace("backlog=511", &format!("backlog={backlog}"))
        .replace("worker_processes 2;", "worker_processes 1;");
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn counter(report: &Value, name: &str) -> u64 {
    report["kernel"]["counters"][name].as_u64().unwrap_or(0)
}

#[test]
fn two_nginx_configurations_both_run_and_the_tiny_backlog_overflows() {
    let Some(nginx) = require("nginx", "nginx-light") else {
        return;
    };
    if !common::require_netns() {
        return;
    }
    let _g = heavy();
    let dir = tempfile::tempdir().unwrap();
    nginx_template(dir.path(), "tiny.conf", 4);
    nginx_template(dir.path(), "large.conf", 4096);
    let file = dir.path().join("nginx.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[defaults]
conns = 3000
concurrency = 256
close = "rst"
requests = 0
server.command = ["{nginx}", "-p", "{{dir}}", "-c", "{{config}}", "-e", "{{dir}}/error.log", "-g", "daemon off;"]

[[scenario]]
name = "backlog 4"
server.config = "tiny.conf"

[[scenario]]
name = "backlog 4096"
server.config = "large.conf"
"#,
            nginx = nginx.display()
        ),
    )
    .unwrap();
    let (code, stderr, v) = matrix(&file, &["--isolate"]);
    assert_eq!(code, Some(0), "{stderr}");
    let s = v["scenarios"].as_array().unwrap();
    assert_eq!(s.len(), 2, "{stderr}");
    for sc in s {
        let r = &sc["report"];
        assert_eq!(r["totals"]["succeeded"], 3000, "{}", sc["name"]);
        // The scenario's namespace is its own: every handshake there is with nginx.
        assert!(
            counter(r, "PassiveOpens") > 0,
            "{}",
            r["kernel"]["counters"]
        );
        assert_eq!(r["environment"]["isolated"], true);
        let run = &sc["server"]["runs"][0];
        assert_eq!(run["exit"], "stopped by SIGTERM (exit 0)", "{run}");
        assert_eq!(run["failed"], false);
        assert_eq!(
            r["target_addr"], run["addr"],
            "the run loaded the server it started"
        );
        assert!(
            sc["args"]
                .as_array()
                .unwrap()
                .contains(&"127.0.0.1:{port}".into())
        );
    }
    let (tiny, large) = (&s[0]["report"], &s[1]["report"]);
    assert!(
        counter(tiny, "ListenOverflows") > 0,
        "256 clients at once against a backlog of 4: {}",
        tiny["kernel"]["counters"]
    );
    assert_eq!(
        counter(large, "ListenOverflows"),
        0,
        "{}",
        large["kernel"]["counters"]
    );
    assert_ne!(
        s[0]["server"]["runs"][0]["pid"],
        s[1]["server"]["runs"][0]["pid"]
    );
    assert_gone(&server_pids(&v), Duration::ZERO);
}

#[test]
fn a_server_that_exits_or_never_listens_fails_its_scenario_and_the_next_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        r#"
[defaults]
conns = 200
concurrency = 2
close = "rst"

[[scenario]]
name = "exits"
server.command = ["sh", "-c", "echo 'no such config' >&2; exit 3"]

[[scenario]]
name = "never listens"
server.command = ["sleep", "120"]
server.ready-timeout = "1s"

[[scenario]]
name = "embedded"
"#,
    )
    .unwrap();
    let started = Instant::now();
    let (code, stderr, v) = matrix(&file, &[]);
    let took = started.elapsed();
    assert_eq!(
        code,
        Some(1),
        "a failed scenario fails the matrix: {stderr}"
    );
    let ran = v["scenarios"].as_array().unwrap();
    assert_eq!(ran.len(), 1, "{stderr}");
    assert_eq!(ran[0]["name"], "embedded");
    assert_eq!(ran[0]["report"]["totals"]["succeeded"], 200);
    let failed = v["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{v}");
    let exits = &failed[0]["server"]["runs"][0];
    assert_eq!(failed[0]["name"], "exits");
    assert_eq!(exits["code"], 3, "{exits}");
    assert!(
        exits["exit"]
            .as_str()
            .unwrap()
            .contains("(exit 3) before it listened"),
        "{exits}"
    );
    assert_eq!(exits["tail"], serde_json::json!(["no such config"]));
    assert!(stderr.contains("| no such config"), "{stderr}");
    // Its folder is kept for its logs, and named.
    let kept = PathBuf::from(exits["dir"].as_str().unwrap());
    assert!(kept.join("server.out").is_file());
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains(&kept.display().to_string())
    );
    std::fs::remove_dir_all(&kept).unwrap();
    let never = &failed[1]["server"]["runs"][0];
    assert!(
        never["exit"]
            .as_str()
            .unwrap()
            .contains("not listening on 127.0.0.1:")
            && never["exit"].as_str().unwrap().contains("after 1s"),
        "{never}"
    );
    assert_eq!(
        never["signal"], "SIGTERM",
        "stopped by its stop signal: {never}"
    );
    std::fs::remove_dir_all(never["dir"].as_str().unwrap()).unwrap();
    // The timeout is the bound: 1 s of waiting, not sleep's 120 (the margin is for a busy
    // machine: the whole matrix, runs included).
    assert!(took < Duration::from_secs(40), "{took:?}: {stderr}");
    assert_gone(&server_pids(&v), Duration::ZERO);
}

/// A matrix waiting for a server that never listens, ended by `signal`: the server must go.
fn ended_while_waiting(signal: i32) -> (Option<i32>, Vec<u32>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wait.toml");
    std::fs::write(
        &file,
        "[[scenario]]\nname = \"waits\"\nconns = 10\nserver.command = [\"sleep\", \"300\"]\nserver.ready-timeout = \"300s\"\n",
    )
    .unwrap();
    let mut child = bin()
        .arg("matrix")
        .arg(&file)
        .arg("--quiet")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let servers = children_of(child.id());
    assert_eq!(servers.len(), 1, "the matrix started its server");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("tcpbench-server-{}-0", child.id())),
    );
    (status.code(), servers)
}

#[test]
fn ctrl_c_or_a_kill_while_a_server_starts_leaves_no_server() {
    let started = Instant::now();
    let (code, servers) = ended_while_waiting(libc::SIGINT);
    assert_eq!(code, Some(130), "Ctrl-C ends the matrix as interrupted");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "not the 300 s wait"
    );
    assert_gone(&servers, Duration::ZERO);
    // SIGKILL leaves no Drop to run: the kernel's parent-death signal stops the server.
    let (code, servers) = ended_while_waiting(libc::SIGKILL);
    assert_eq!(code, None);
    assert_gone(&servers, Duration::from_secs(5));
}

#[test]
fn ab_starts_a_fresh_server_for_every_run_of_a_side() {
    let Some(nginx) = require("nginx", "nginx-light") else {
        return;
    };
    if !common::require_netns() {
        return;
    }
    let _g = heavy();
    let dir = tempfile::tempdir().unwrap();
    let conf = nginx_template(dir.path(), "nginx.conf", 511);
    let json = dir.path().join("ab.json");
    let server = format!(
        "{} -p {{dir}} -c {{fill:{}}} -e {{dir}}/error.log -g 'daemon off;'",
        nginx.display(),
        conf.display()
    );
    let out = bin()
        .args(["ab", "--rounds", "2", "--no-default-thresholds", "--json"])
        .arg(&json)
        .args(["--candidate-server", &server])
        .args([
            "--",
            "--conns",
            "500",
            "--concurrency",
            "4",
            "--close",
            "rst",
        ])
        .args([
            "--requests",
            "0",
            "--isolate",
            "--sysctl",
            "net.ipv4.tcp_tw_reuse=0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let (base, cand) = (&v["sides"][0], &v["sides"][1]);
    assert!(
        base.get("servers").is_none(),
        "the baseline loads the embedded server"
    );
    let servers = cand["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{cand}");
    assert_ne!(
        servers[0]["pid"], servers[1]["pid"],
        "a fresh server per run"
    );
    for (run, server) in cand["runs"].as_array().unwrap().iter().zip(servers) {
        assert_eq!(server["exit"], "stopped by SIGTERM (exit 0)", "{server}");
        assert_eq!(run["target_addr"], server["addr"]);
        assert_eq!(run["totals"]["succeeded"], 500);
        // ab made the namespace: the server's accepts and the sysctl are the run's own.
        assert_eq!(counter(run, "PassiveOpens"), 500, "{}", run["kernel"]);
        assert_eq!(run["kernel"]["sysctl"]["net.ipv4.tcp_tw_reuse"], "0");
    }
    let pids: Vec<u32> = servers
        .iter()
        .map(|s| s["pid"].as_u64().unwrap() as u32)
        .collect();
    assert_gone(&pids, Duration::ZERO);
}
