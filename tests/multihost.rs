//! A distributed run on one machine: one server and three agents, each in a network namespace
//! of its own, joined by veth pairs to a bridge in a "switch" namespace, all made by this test
//! (as root) and addressed from 198.18.0.0/15, the benchmarking range. The agents split 3,000
//! connections (`--agents 3 --agent-index I`), start at one `--start-at` instant, and
//! `tcpbench merge` adds their reports up. Traffic never leaves those namespaces: the host's
//! own namespace has no interface on the bridge and no route to 198.18.0.0/15.
//!
//! Where `ip netns add` is not permitted (it needs root: CAP_SYS_ADMIN to make a namespace
//! and to mount it under /run/netns) the test is a visible skip (`common::require`), and under
//! CI a failure.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use serde_json::Value;
use tcpbench::report::Hdr;

const SERVER: &str = "198.18.0.1";
const PORT: u16 = 9000;
const AGENTS: usize = 3;
const CONNS: u64 = 3000;
/// How long any one child may take before it is killed and the test fails.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// The namespaces and processes this test made. Dropping it, also when an assert fails,
/// kills the processes still running (by their own PID) and deletes the namespaces, which
/// takes their veth ends and the bridge with them.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Lab {
    /// An empty lab, or why no namespace can be made here.
    fn new() -> Result<Lab, String> {
        let mut lab = Lab {
            prefix: format!("tcpbench-{}", std::process::id()),
            namespaces: Vec::new(),
            children: Vec::new(),
        };
        lab.netns("sw")?;
        Ok(lab)
    }

    /// Makes the named namespace `<prefix>-<role>` with its loopback up.
    fn netns(&mut self, role: &str) -> Result<String, String> {
        let name = format!("{}-{role}", self.prefix);
        let add = || Command::new("ip").args(["netns", "add", &name]).output();
        let mut out =
            add().map_err(|e| format!("cannot run ip (apt-get install iproute2): {e}"))?;
        if String::from_utf8_lossy(&out.stderr).contains("exists") {
            // Left by a run of this test with the same PID that was killed before its cleanup.
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
            out = add().map_err(|e| e.to_string())?;
        }
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        self.namespaces.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Ok(name)
    }

    /// A namespace for `role` wired to the bridge, with `addr`/15 on its eth0.
    fn host(&mut self, role: &str, addr: &str) -> String {
        let ns = self.netns(role).expect("a second namespace");
        let sw = &self.namespaces[0];
        let port = format!("p-{role}");
        // Both ends are made from inside the switch namespace: nothing appears in the host's.
        ip(&[
            "-n", sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["-n", sw, "link", "set", &port, "master", "br0", "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/15"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ns
    }

    /// Starts tcpbench in namespace `ns` (`ip netns exec` execs it: the child's PID is
    /// tcpbench's), or here with `None`, its output in `dir/<name>.out|.err`; the lab owns it.
    fn spawn(&mut self, ns: Option<&str>, args: &[String], dir: &Path, name: &str) -> usize {
        let out = File::create(dir.join(format!("{name}.out"))).unwrap();
        let err = File::create(dir.join(format!("{name}.err"))).unwrap();
        let bin = env!("CARGO_BIN_EXE_tcpbench");
        let mut cmd = match ns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, bin]);
                cmd
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("ip netns exec starts");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Waits for child `i` to exit, at most CHILD_TIMEOUT; its exit code.
    fn wait(&mut self, i: usize, what: &str) -> Option<i32> {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            if let Some(status) = self.children[i].try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{what} still running after {CHILD_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to child `i` (a graceful stop for `serve`), then waits for it.
    fn stop(&mut self, i: usize, what: &str) -> Option<i32> {
        let pid = libc::pid_t::try_from(self.children[i].id()).unwrap();
        // SAFETY: kill(2) on the PID of a child this lab spawned and has not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill {what}");
        self.wait(i, what)
    }
}

/// The words of a command line (none of ours has a space inside a word).
fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until `path` has a line containing `text`, at most `timeout`.
fn wait_for_line(path: &Path, text: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !std::fs::read_to_string(path).is_ok_and(|s| s.contains(text)) {
        let now = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "no {text:?} in {path:?} after {timeout:?}: {now}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn three_agents_in_namespaces_merge_into_one_report() {
    let _g = common::heavy();
    let mut lab = match Lab::new() {
        Ok(lab) => lab,
        Err(why) => {
            common::require(
                &format!("root (CAP_SYS_ADMIN) for `ip netns add`; here: {why}"),
                false,
            );
            return;
        }
    };
    let sw = lab.namespaces[0].clone();
    ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", &sw, "link", "set", "br0", "up"]);
    let srv = lab.host("srv", SERVER);
    let clients: Vec<String> = (0..AGENTS)
        .map(|i| lab.host(&format!("c{i}"), &format!("198.18.0.{}", 11 + i)))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let listen = format!("{SERVER}:{PORT}");
    // --duration: the server stops by itself should everything else go wrong.
    let serve = words(&format!(
        "serve --listen {listen} --workers 2 --reuseport --duration 90s"
    ));
    let server = lab.spawn(Some(&srv), &serve, dir.path(), "server");
    wait_for_line(
        &dir.path().join("server.err"),
        "listening on",
        Duration::from_secs(10),
    );

    // One instant for all, far enough ahead for three processes to start.
    let start_at = humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(2));
    let start_at = start_at.to_string();
    let agents: Vec<usize> = (0..AGENTS)
        .map(|i| {
            let mut args = words(&format!(
                "run --target {listen} --allow-remote --agents {AGENTS} --agent-index {i} \
                 --agent-id client-{i} --conns {CONNS} --start-at {start_at} --close rst \
                 --quiet --json"
            ));
            args.push(
                dir.path()
                    .join(format!("agent-{i}.json"))
                    .display()
                    .to_string(),
            );
            lab.spawn(Some(&clients[i]), &args, dir.path(), &format!("agent-{i}"))
        })
        .collect();
    for (i, &child) in agents.iter().enumerate() {
        let code = lab.wait(child, &format!("agent {i}"));
        let err = std::fs::read_to_string(dir.path().join(format!("agent-{i}.err")));
        assert_eq!(code, Some(0), "agent {i}: {}", err.unwrap_or_default());
    }
    let reports: Vec<Value> = (0..AGENTS)
        .map(|i| common::read_report(&dir.path().join(format!("agent-{i}.json"))))
        .collect();

    let merged_path = dir.path().join("merged.json");
    let mut args = vec!["merge".to_string()];
    args.extend((0..AGENTS).map(|i| format!("{}/agent-{i}.json", dir.path().display())));
    args.extend(["-o".to_string(), merged_path.display().to_string()]);
    let merge = lab.spawn(None, &args, dir.path(), "merge");
    let code = lab.wait(merge, "merge");
    let text = std::fs::read_to_string(dir.path().join("merge.out")).unwrap();
    let err = std::fs::read_to_string(dir.path().join("merge.err")).unwrap();
    println!("$ tcpbench merge agent-0.json agent-1.json agent-2.json -o merged.json\n{text}{err}");
    assert_eq!(code, Some(0), "merge: {err}");
    let merged = common::read_report(&merged_path);

    // Each agent made its third, and the merge adds them up.
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(
            u(&r["totals"]["succeeded"]),
            CONNS / 3,
            "agent {i}: {}",
            r["totals"]
        );
    }
    let sum = |pick: &dyn Fn(&Value) -> u64| reports.iter().map(pick).sum::<u64>();
    let succeeded = sum(&|r| u(&r["totals"]["succeeded"]));
    assert_eq!(succeeded, CONNS);
    assert_eq!(
        u(&merged["totals"]["succeeded"]),
        succeeded,
        "{}",
        merged["totals"]
    );
    let counted = sum(&|r| u(&r["latency"]["total"]["count"]));
    assert_eq!(u(&merged["latency"]["total"]["count"]), counted);
    let listed = merged["agents"].as_array().expect("merged agents");
    assert_eq!(listed.len(), AGENTS, "{listed:?}");

    // The merged p99 is the p99 of one histogram holding every sample, not an average.
    let mut all: Option<Histogram<u64>> = None;
    for r in &reports {
        let h = Hdr::decode(r["latency"]["total"]["hdr"].as_str().unwrap())
            .unwrap()
            .0;
        match &mut all {
            None => all = Some(h),
            Some(all) => all.add(&h).unwrap(),
        }
    }
    let all = all.unwrap();
    assert_eq!(all.len(), counted);
    let p99 = all.value_at_quantile(0.99) as f64 / 1000.0;
    let merged_p99 = f(&merged["latency"]["total"]["p99_us"]);
    let mean_p99 = reports
        .iter()
        .map(|r| f(&r["latency"]["total"]["p99_us"]))
        .sum::<f64>()
        / 3.0;
    println!(
        "total p99: merged {merged_p99} µs, one histogram of all samples {p99} µs, \
         average of the agents' p99s {mean_p99:.1} µs"
    );
    assert!(
        (merged_p99 - p99).abs() < 1e-6,
        "merged p99 {merged_p99} != {p99}"
    );

    // --start-at: no agent began before the instant, and all began within a moment of it.
    let at = humantime::parse_rfc3339_weak(&start_at).unwrap();
    let began: Vec<SystemTime> = listed
        .iter()
        .map(|a| humantime::parse_rfc3339_weak(a["started_at"].as_str().unwrap()).unwrap())
        .collect();
    for (a, t) in listed.iter().zip(&began) {
        let late = t
            .duration_since(at)
            .unwrap_or_else(|e| panic!("{} began {:?} before --start-at", a["id"], e.duration()));
        assert!(
            late < Duration::from_secs(1),
            "{} began {late:?} after --start-at",
            a["id"]
        );
    }

    // The server saw every connection of the three agents.
    assert_eq!(lab.stop(server, "server"), Some(0));
    let served = std::fs::read_to_string(dir.path().join("server.out")).unwrap();
    println!("server: {served}");
    assert!(
        served.contains(&format!("accepted {CONNS} connections")),
        "{served}"
    );
}
