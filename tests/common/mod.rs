//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod servers;
pub mod venv;

use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, Once, OnceLock};

use clap::Parser;
use tcpbench::cli::{Cli, Command};
use tcpbench::config::RunConfig;

/// Load tests take this lock so only one churns connections at a time on the 2 cores.
pub fn heavy() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a test's prerequisite (root, a tool) is here; a test returns at once when not:
/// `if !require("root", is_root) { return; }`.
///
/// A missing one is not a quiet pass: this writes `SKIPPED <test>: needs <what>` to the real
/// standard error (libtest does not capture it), lists every skip again after the test
/// binary's summary line, and under CI (`CI` set, and not "false" or "0") panics instead,
/// since CI has every prerequisite and must skip nothing.
pub fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let line = format!("SKIPPED {test}: needs {what}");
    if let Some(ci) =
        std::env::var_os("CI").filter(|v| !["", "false", "0"].contains(&v.to_str().unwrap_or("?")))
    {
        panic!("{line}; CI={ci:?} is set, and CI must skip nothing");
    }
    let _ = writeln!(std::io::stderr(), "{line}");
    skipped(line);
    false
}

/// Every skip of this test binary, written out again when it exits (after libtest's
/// summary, which counts skipped tests as passed).
fn skipped(line: String) {
    static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static AT_EXIT: Once = Once::new();
    extern "C" fn list() {
        let lines = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "\n{} test(s) SKIPPED, counted as passed above:",
            lines.len()
        );
        for l in lines.iter() {
            let _ = writeln!(err, "  {l}");
        }
    }
    SKIPPED.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    // SAFETY: `list` is a plain function that lives as long as the process.
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(list);
    });
}

/// `unshare -n` works here (root or CAP_SYS_ADMIN): a test can run in a network namespace of
/// its own. `require`s it, so a missing one is a visible skip.
pub fn require_netns() -> bool {
    let probe = std::process::Command::new("unshare")
        .args(["-n", "ip", "link", "set", "lo", "up"])
        .output();
    let why = match probe {
        Ok(o) if o.status.success() => return true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    require(
        &format!("a network namespace (unshare -n: root or CAP_SYS_ADMIN; here: {why})"),
        false,
    )
}

/// The committed schema of `tcpbench.report.v1`, reports/schema/report.v1.json, compiled once.
fn report_schema() -> &'static jsonschema::Validator {
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/schema/report.v1.json");
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schema: serde_json::Value = serde_json::from_slice(&text).expect("the schema is JSON");
        // Formats too: a timestamp must be RFC 3339, as the schema says.
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("the report schema is a valid JSON Schema")
    })
}

/// Where `report` breaks the report schema, one line per violation (at most 10); empty
/// when it is a valid `tcpbench.report.v1` report.
pub fn schema_violations(report: &serde_json::Value) -> Vec<String> {
    report_schema()
        .iter_errors(report)
        .take(10)
        .map(|e| {
            let mut line = format!("{}: {e}", e.instance_path());
            if line.len() > 300 {
                let cut = (0..=300)
                    .rev()
                    .find(|&i| line.is_char_boundary(i))
                    .unwrap_or(0);
                line.truncate(cut);
                line.push('…');
            }
            line
        })
        .collect()
}

/// Panics, naming the violations, unless `report` matches reports/schema/report.v1.json.
/// Every test that reads a report a run wrote calls this (through `read_report`).
pub fn assert_schema(report: &serde_json::Value) {
    let bad = schema_violations(report);
    assert!(
        bad.is_empty(),
        "the report breaks reports/schema/report.v1.json:\n{}",
        bad.join("\n")
    );
}

/// The JSON report at `path`, checked against the report schema.
pub fn read_report(path: &Path) -> serde_json::Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let report =
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_schema(&report);
    report
}

/// Runs `tcpbench ARGS… -q --json FILE` in a fresh network namespace (`unshare -n`, lo up):
/// its report (checked against the schema) and how the process ended; `None` after a
/// visible skip where namespaces cannot be made (a failure under CI).
pub fn isolated_report(args: &[&str]) -> Option<(serde_json::Value, std::process::Output)> {
    if !require_netns() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_tcpbench"))
        .args(args)
        .args(["-q", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        json.exists(),
        "no report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((read_report(&json), out))
}

/// Runs `tcpbench -q --json FILE ARGS…` and returns its report (checked against the schema)
/// and exit status; a run that wrote no report fails the test with its stderr.
pub fn run_report(args: &[&str]) -> (serde_json::Value, Option<i32>) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = bin()
        .args(["-q", "--json"])
        .arg(&json)
        .args(args)
        .output()
        .unwrap();
    if !json.exists() {
        panic!("no report: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    (read_report(&json), out.status.code())
}

/// A run configuration from command-line flags, as the binary would build it.
pub fn config(flags: &[&str]) -> RunConfig {
    let argv = ["tcpbench", "run", "--quiet"].iter().chain(flags);
    let Some(Command::Run(args)) = Cli::try_parse_from(argv).expect("flags parse").command else {
        unreachable!("run was given")
    };
    RunConfig::from_args(&args).expect("flags are valid")
}

/// A loopback port that refuses connections: bound, never listening, so the kernel answers
/// SYNs with RST and nobody else can take the port while the socket is held.
pub fn refusing_port() -> (socket2::Socket, std::net::SocketAddr) {
    let holder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    holder
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = holder.local_addr().unwrap().as_socket().unwrap();
    (holder, addr)
}

/// The tcpbench binary under test.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_tcpbench"))
}

/// A TCP socket as the kernel lists it in /proc/net/tcp (IPv4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelSocket {
    pub local_ip: std::net::Ipv4Addr,
    pub remote_ip: std::net::Ipv4Addr,
    pub local_port: u16,
    pub remote_port: u16,
    /// The kernel's state number: 1 ESTABLISHED, 6 TIME_WAIT, 10 LISTEN, …
    pub state: u8,
}

pub const ESTABLISHED: u8 = 1;
pub const TIME_WAIT: u8 = 6;

/// Every IPv4 TCP socket of this network namespace, read from /proc/net/tcp.
pub fn kernel_sockets() -> Vec<KernelSocket> {
    let text = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp is readable");
    let port = |field: &str| u16::from_str_radix(field.rsplit(':').next().unwrap(), 16).unwrap();
    // The address is the network-order word printed as a host-order number.
    let ip = |field: &str| {
        let word = u32::from_str_radix(field.split(':').next().unwrap(), 16).unwrap();
        std::net::Ipv4Addr::from(word.to_ne_bytes())
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 3).then(|| KernelSocket {
                local_ip: ip(f[1]),
                remote_ip: ip(f[2]),
                local_port: port(f[1]),
                remote_port: port(f[2]),
                state: u8::from_str_radix(f[3], 16).unwrap(),
            })
        })
        .collect()
}
