//! `--hlog`: the interval log a run writes, read back as other tools read it: by the
//! `hdrhistogram` crate's `IntervalLogIterator`, by Java HdrHistogram's
//! `HistogramLogProcessor` (Debian's libhdrhistogram-java, the library HistogramLogAnalyzer
//! reads logs with) and by Python's `hdrhistogram` package (`hdrh.log.HistogramLogReader`,
//! pip-installed into a venv of this test's own). Checked: its tags, its intervals in time
//! order, and each tag's counts over all intervals equal to the JSON report's count for that
//! phase (the last partial interval kept, nothing counted twice).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use serde_json::Value;

use common::{bin, heavy, run_report};

/// One tag's intervals as a reader saw them: (start since the log's base time, length,
/// count), in the log's order.
type Series = BTreeMap<String, Vec<(Duration, Duration, u64)>>;

/// The log at `path` as the crate's reader reads it, and its base time.
fn read_with_crate(path: &Path) -> (Series, Option<Duration>) {
    let text = std::fs::read(path).unwrap();
    let mut series = Series::new();
    let mut base = None;
    for entry in IntervalLogIterator::new(&text) {
        match entry.expect("the crate's reader parses the log") {
            LogEntry::BaseTime(t) => base = Some(t),
            LogEntry::StartTime(_) => {}
            LogEntry::Interval(iv) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(iv.encoded_histogram())
                    .expect("base64");
                let h: Histogram<u64> = Deserializer::new()
                    .deserialize(&mut bytes.as_slice())
                    .expect("a V2 histogram");
                let tag = iv.tag().expect("every interval is tagged").as_str();
                series.entry(tag.to_string()).or_default().push((
                    iv.start_timestamp(),
                    iv.duration(),
                    h.len(),
                ));
            }
        }
    }
    (series, base)
}

/// The report's count for `tag`: `latency.<tag>.count`, or `latency_from_schedule`'s.
fn report_count(report: &Value, tag: &str) -> u64 {
    let pointer = match tag {
        "connect_from_schedule" => "/latency_from_schedule/connect/count".to_string(),
        "total_from_schedule" => "/latency_from_schedule/total/count".to_string(),
        t => format!("/latency/{t}/count"),
    };
    report
        .pointer(&pointer)
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Every tag tcpbench can write, with the report's key of each.
const ALL_TAGS: [&str; 9] = [
    "connect",
    "handshake_rtt",
    "echo",
    "close",
    "total",
    "failed",
    "start_lag",
    "connect_from_schedule",
    "total_from_schedule",
];

/// The tags are `expected`; every tag has every interval, back to back in time order; each
/// tag's counts add up to the report's; a tag the report has no value for is absent.
fn assert_adds_up(series: &Series, report: &Value, expected: &[&str]) {
    let tags: Vec<&str> = series.keys().map(String::as_str).collect();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(tags, want, "the log's tags");
    for tag in ALL_TAGS {
        let total: u64 = series.get(tag).into_iter().flatten().map(|s| s.2).sum();
        assert_eq!(
            total,
            report_count(report, tag),
            "{tag}: the intervals' counts against the report's"
        );
    }
    let starts = |s: &[(Duration, Duration, u64)]| s.iter().map(|i| i.0).collect::<Vec<_>>();
    let first = &series[expected[0]];
    for (tag, s) in series {
        assert_eq!(
            starts(s),
            starts(first),
            "{tag}: the same intervals as every tag"
        );
        assert!(
            s.windows(2).all(|w| w[0].0 < w[1].0),
            "{tag}: start times increase: {s:?}"
        );
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn an_open_loop_run_logs_every_phase_per_interval_and_adds_up() {
    let _guard = heavy();
    let dir = tempdir();
    let log = dir.path().join("run.hlog");
    // 2,000 connections at 2,000/s: about 1 s of load, 5 intervals of 200 ms and a last one.
    let (report, code) = run_report(&[
        "--rate",
        "2000",
        "--conns",
        "2000",
        "-c",
        "16",
        "--hlog",
        log.to_str().unwrap(),
        "--hlog-interval",
        "200ms",
    ]);
    assert_eq!(code, Some(0), "the run succeeded");
    let (series, base) = read_with_crate(&log);
    let mut tags = vec![
        "connect",
        "echo",
        "close",
        "total",
        "start_lag",
        "connect_from_schedule",
        "total_from_schedule",
    ];
    // The kernel's RTT sample of a loopback handshake is never 0 µs, but keep to what ran.
    if report_count(&report, "handshake_rtt") > 0 {
        tags.push("handshake_rtt");
    }
    assert_adds_up(&series, &report, &tags);
    let connect = &series["connect"];
    assert!(connect.len() >= 4, "several intervals: {connect:?}");
    // Back to back from the load's start: 200 ms each but the last, which ends with it.
    let mut at = Duration::ZERO;
    for (i, &(start, length, _)) in connect.iter().enumerate() {
        assert_eq!(start, at, "interval {i} starts where the last ended");
        if i + 1 < connect.len() {
            assert_eq!(length, Duration::from_millis(200), "interval {i}");
        }
        at += length;
    }
    let duration_s = report["duration_s"].as_f64().unwrap();
    assert!(
        (at.as_secs_f64() - duration_s).abs() < 0.05,
        "the intervals span the load: {at:?} against duration_s {duration_s}"
    );
    // The base time is the load's start, on the wall clock the report's started_at uses.
    let started_at = humantime::parse_rfc3339_weak(report["started_at"].as_str().unwrap())
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let base = base.expect("a BaseTime header");
    assert!(
        base.abs_diff(started_at) < Duration::from_secs(1),
        "{base:?} against started_at {started_at:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("#tcpbench "), "the header names tcpbench");
    assert!(text.contains("values in nanoseconds"));
    assert!(
        text.contains("\n#command: tcpbench "),
        "the header names the command"
    );
    assert!(text.contains("#[MaxValueDivisor: 1000000.000]\n"));

    // Java's HistogramLogProcessor: HdrHistogram's own reader, the one HistogramLogAnalyzer
    // is built on.
    if common::require(
        &format!(
            "java and {HDRHISTOGRAM_JAR} (apt-get install default-jre-headless libhdrhistogram-java)"
        ),
        java_reader_here(),
    ) {
        for tag in ALL_TAGS {
            let (total, intervals) = read_with_java(&log, tag);
            assert_eq!(
                total,
                report_count(&report, tag),
                "{tag}: HistogramLogProcessor's total against the report's"
            );
            assert_eq!(
                intervals,
                series.get(tag).map_or(0, Vec::len),
                "{tag}: HistogramLogProcessor reads as many intervals as the crate"
            );
        }
    }

    let Some(python) = hdrh_python() else {
        return;
    };
    let by_python = read_with_python(&python, &log);
    for tag in ALL_TAGS {
        let (total, intervals) = by_python.get(tag).copied().unwrap_or((0, 0));
        assert_eq!(
            total,
            report_count(&report, tag),
            "{tag}: Python hdrh's totals against the report's"
        );
        assert_eq!(
            intervals,
            series.get(tag).map_or(0, Vec::len),
            "{tag}: Python hdrh reads as many intervals as the crate"
        );
    }
}

#[test]
fn repeated_runs_follow_on_one_axis_and_failures_have_their_tag() {
    let _guard = heavy();
    let dir = tempdir();
    let log = dir.path().join("repeat.hlog");
    let (report, code) = run_report(&[
        "--conns",
        "1500",
        "-c",
        "8",
        "--repeat",
        "2",
        "--hlog",
        log.to_str().unwrap(),
        "--hlog-interval",
        "100ms",
    ]);
    assert_eq!(code, Some(0));
    let (series, _) = read_with_crate(&log);
    let mut tags = vec!["connect", "echo", "close", "total"];
    if report_count(&report, "handshake_rtt") > 0 {
        tags.push("handshake_rtt");
    }
    // The merged report's counts are both runs'; so are the log's.
    assert_eq!(report_count(&report, "connect"), 3000);
    assert_adds_up(&series, &report, &tags);

    // A target that refuses: every attempt is in `failed`, nothing else has a value.
    let (_holder, refusing) = common::refusing_port();
    let log = dir.path().join("refused.hlog");
    let (report, code) = run_report(&[
        "--target",
        &refusing.to_string(),
        "--conns",
        "300",
        "-c",
        "4",
        "--max-errors",
        "1000",
        "--hlog",
        log.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "failed connections");
    assert_eq!(report_count(&report, "failed"), 300);
    let (series, _) = read_with_crate(&log);
    assert_adds_up(&series, &report, &["failed"]);
}

#[test]
fn a_bad_interval_is_refused_before_the_run() {
    let dir = tempdir();
    let log = dir.path().join("x.hlog");
    for (interval, what) in [
        (
            "0s",
            "--hlog-interval 0s: give an interval from 100ms to 1h",
        ),
        (
            "10ms",
            "--hlog-interval 10ms: give an interval from 100ms to 1h",
        ),
        (
            "2h",
            "--hlog-interval 2h: give an interval from 100ms to 1h",
        ),
        ("5", "'5' has no unit"),
    ] {
        let out = bin()
            .args(["-q", "-n", "10", "--hlog"])
            .arg(&log)
            .args(["--hlog-interval", interval])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{interval}: {err}");
        assert!(err.contains(what), "{interval}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!log.exists(), "{interval}: nothing ran");
    }
    let out = bin()
        .args(["-q", "-n", "10", "--hlog-interval", "1s"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--hlog <PATH>"),
        "names the missing flag: {err}"
    );
}

/// Debian's HdrHistogram for Java (libhdrhistogram-java), with its HistogramLogProcessor.
const HDRHISTOGRAM_JAR: &str = "/usr/share/java/hdrhistogram.jar";

fn java_reader_here() -> bool {
    Path::new(HDRHISTOGRAM_JAR).exists()
        && Command::new("java")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// Tag `tag`'s total count and number of intervals as Java's HistogramLogProcessor reads the
/// log at `log`: its interval lines (`0.200: I:627 ( … ) T:…`), and the overall
/// distribution's `Total count` in the `.hgrm` it writes beside them. (0, 0) for a tag the
/// log does not have (`-listtags` does not list it).
fn read_with_java(log: &Path, tag: &str) -> (u64, usize) {
    let java = |args: &[&str]| {
        let out = Command::new("java")
            .args([
                "-cp",
                HDRHISTOGRAM_JAR,
                "org.HdrHistogram.HistogramLogProcessor",
                "-i",
            ])
            .arg(log)
            .args(args)
            .output()
            .expect("java runs");
        assert!(
            out.status.success(),
            "HistogramLogProcessor {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    if !java(&["-listtags"]).lines().any(|l| l.trim() == tag) {
        return (0, 0);
    }
    let dir = tempdir();
    let out = dir.path().join(tag);
    java(&["-tag", tag, "-o", out.to_str().unwrap()]);
    let lines = std::fs::read_to_string(&out).unwrap();
    let intervals = lines.lines().filter(|l| l.contains(": I:")).count();
    let hgrm = std::fs::read_to_string(out.with_extension("hgrm")).unwrap();
    let total = hgrm
        .lines()
        .find_map(|l| l.split("Total count    =").nth(1))
        .and_then(|v| v.trim().trim_end_matches(']').trim().parse().ok())
        .unwrap_or_else(|| panic!("no Total count in {hgrm}"));
    (total, intervals)
}

/// The Python package, pinned: 0.8.0 is the first whose `HistogramLogReader` reads `Tag=`
/// lines (0.7.1 and older skip them, and read nothing of this log); 0.10.8 is the newest.
const HDRH: &str = "hdrhistogram==0.10.8";

/// The venv's python with `hdrh` importable, made (and the package pip-installed) on first
/// use under the test's own temp dir; `None` after a visible skip where python3 -m venv or
/// pip cannot be had (a failure under CI).
fn hdrh_python() -> Option<PathBuf> {
    match make_venv() {
        Ok(python) => Some(python),
        Err(why) => {
            common::require(
                &format!("python3 -m venv and pip install {HDRH} ({why})"),
                false,
            );
            None
        }
    }
}

fn make_venv() -> Result<PathBuf, String> {
    common::venv::tool("hdrh-venv", HDRH, "python", |python| {
        Command::new(python)
            .args(["-c", "import hdrh.log, importlib.metadata as m; assert m.version('hdrhistogram') == '0.10.8'"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Reads a log with `hdrh.log.HistogramLogReader` and prints each tag's total count and
/// number of intervals as JSON; fails if a tag's intervals go back in time.
const READ_LOG: &str = r#"
import json, sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

reader = HistogramLogReader(sys.argv[1], HdrHistogram(1, 3600 * 10**9, 3))
tags, last = {}, {}
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    tag = h.get_tag()
    if tag is None:
        sys.exit("an interval without a tag")
    start = h.get_start_time_stamp()
    if tag in last and start <= last[tag]:
        sys.exit("%s goes back in time: %s after %s" % (tag, start, last[tag]))
    last[tag] = start
    total, n = tags.get(tag, (0, 0))
    tags[tag] = (total + h.get_total_count(), n + 1)
print(json.dumps(tags))
"#;

/// Each tag's (total count, intervals) as Python's `hdrh` reads the log at `log`.
fn read_with_python(python: &Path, log: &Path) -> BTreeMap<String, (u64, usize)> {
    let out = Command::new(python)
        .args(["-c", READ_LOG])
        .arg(log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hdrh could not read the log: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

#[test]
fn the_log_can_go_to_standard_output_and_a_failed_write_is_exit_3() {
    let _guard = heavy();
    let out = bin()
        .args(["-q", "-n", "200", "-c", "4", "--hlog", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let dir = tempdir();
    let log = dir.path().join("stdout.hlog");
    std::fs::write(&log, &out.stdout).unwrap();
    let (series, _) = read_with_crate(&log);
    let connect: u64 = series["connect"].iter().map(|s| s.2).sum();
    assert_eq!(connect, 200, "the whole log on standard output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("200 succeeded"),
        "the summary on standard error: {err}"
    );

    // A device that takes nothing: the run's other outputs are written, the status says not all.
    let json = dir.path().join("r.json");
    let out = bin()
        .args([
            "-q",
            "-n",
            "100",
            "-c",
            "4",
            "--hlog",
            "/dev/full",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--hlog /dev/full: cannot write"), "{err}");
    assert!(json.exists(), "the JSON is still written");
}
