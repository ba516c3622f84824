//! The report format is a contract: `reports/schema/report.v1.json` is generated from the
//! report's types; every report tcpbench writes (a run, `--repeat`, `merge`) matches it; the
//! shipped reports and the oldest v1 reports match it and are still read by `compare` and
//! `merge`; and the schema and the reader agree, key by key, on what a report may leave out
//! and what it may not hold.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{assert_schema, bin, heavy, read_report, schema_violations};
use serde_json::{Value, json};
use tcpbench::report::{json as report_json, schema};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the binary with `args`, which must exit with `code`.
fn tcpbench(args: &[&str], code: i32) {
    let out = bin().args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "tcpbench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reports as tcpbench writes them, made once per test binary: a plain open-loop run with
/// most options set, one against a port that refuses (errors, an early abort), a `--repeat`
/// run and a merge of two agents.
fn fresh_reports() -> &'static [(&'static str, Value)] {
    static REPORTS: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    REPORTS.get_or_init(|| {
        let _g = heavy();
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let run = path("run.json");
        tcpbench(
            &[
                "--conns",
                "300",
                "--rate",
                "3000",
                "--warmup",
                "20",
                "--hold",
                "1ms",
                "--max-errors",
                "50%",
                "--server-farewell",
                "3",
                "-q",
                "--json",
                s(&run),
            ],
            0,
        );
        // Bound and never listening: the kernel refuses every SYN.
        let holder =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        holder
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let port = holder
            .local_addr()
            .unwrap()
            .as_socket()
            .unwrap()
            .to_string();
        let refused = path("refused.json");
        tcpbench(
            &[
                "--target",
                &port,
                "--conns",
                "300",
                "-q",
                "--json",
                s(&refused),
            ],
            1,
        );
        let repeat = path("repeat.json");
        tcpbench(
            &[
                "--conns",
                "200",
                "--repeat",
                "2",
                "-q",
                "--json",
                s(&repeat),
            ],
            0,
        );
        let agents: Vec<PathBuf> = ["0", "1"]
            .iter()
            .map(|i| {
                let p = path(&format!("agent-{i}.json"));
                let id = format!("a{i}");
                tcpbench(
                    &[
                        "--conns",
                        "301",
                        "--agents",
                        "2",
                        "--agent-index",
                        i,
                        "--agent-id",
                        &id,
                        "--start-at",
                        "+0s",
                        "-q",
                        "--json",
                        s(&p),
                    ],
                    0,
                );
                p
            })
            .collect();
        let merged = path("merged.json");
        tcpbench(
            &["merge", s(&agents[0]), s(&agents[1]), "-o", s(&merged)],
            0,
        );
        let read = |p: &Path| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        vec![
            ("run", read(&run)),
            ("refused", read(&refused)),
            ("repeat", read(&repeat)),
            ("agent", read(&agents[0])),
            ("merged", read(&merged)),
        ]
    })
}

#[test]
fn the_committed_schema_is_the_one_the_types_generate() {
    let committed = std::fs::read_to_string(repo(schema::PATH)).unwrap();
    assert!(
        committed == schema::render(),
        "{} is not what the report's types generate: run `cargo run --example report_schema` \
         and commit the file (adding a field is a v1 change; renaming, removing or retyping \
         one is v2)",
        schema::PATH
    );
    let v: Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(v["properties"]["schema"]["const"], "tcpbench.report.v1");
    // Objects admit keys they do not list: fields may be added within v1. (An enum's
    // one-key wrapper object, {"embedded": …}, admits no other key, as serde reads it.)
    let structs = v["$defs"].as_object().unwrap().values().chain([&v]);
    for def in structs.filter(|d| d.get("properties").is_some()) {
        assert!(def.get("additionalProperties").is_none(), "{def}");
    }
}

#[test]
fn every_report_tcpbench_writes_matches_the_schema() {
    for (name, report) in fresh_reports() {
        let bad = schema_violations(report);
        assert!(bad.is_empty(), "the {name} report: {}", bad.join("\n"));
    }
    let by_name = |n: &str| &fresh_reports().iter().find(|(k, _)| *k == n).unwrap().1;
    // The reports hold what they were made to hold, so the checks above covered it.
    assert!(by_name("run")["latency_from_schedule"].is_object());
    assert_eq!(
        by_name("run")["config"]["max_errors"],
        json!({"ratio": 0.5})
    );
    assert!(by_name("refused")["errors"][0]["errno"].is_string());
    assert_eq!(
        by_name("repeat")["repeats"]["runs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(by_name("merged")["agents"].as_array().unwrap().len(), 2);
}

/// The shipped reports, the corpus and the two oldest v1 reports: `old-v1-first.json` as the
/// first v1 tcpbench wrote it, `old-v1-sample.json` the sample shipped until v1 grew.
#[test]
fn shipped_and_old_v1_reports_match_the_schema_and_are_read() {
    let mut files = vec![
        repo("reports/sample-10000.json"),
        repo("reports/baseline.json"),
    ];
    for entry in std::fs::read_dir(repo("tests/corpus/reports")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("ok-") || name.starts_with("old-") {
            files.push(path);
        }
    }
    assert!(files.len() >= 5, "{files:?}");
    for path in &files {
        read_report(path);
        report_json::read(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    }
    let oldest = read_report(&repo("tests/corpus/reports/old-v1-first.json"));
    assert!(
        oldest["config"].get("isolate").is_none(),
        "it predates --isolate"
    );
    assert!(
        oldest.get("tcp_states").is_none(),
        "it predates the sampler"
    );
}

#[test]
fn compare_and_merge_read_the_oldest_v1_reports() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["old-v1-first.json", "old-v1-sample.json"] {
        let old = repo(&format!("tests/corpus/reports/{name}"));
        let out = bin().args(["compare", s(&old), s(&old)]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("rate_cps"), "{text}");
        let merged = dir.path().join(format!("merged-{name}"));
        let out = bin()
            .args(["merge", s(&old), "-o", s(&merged)])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m = read_report(&merged);
        let old = read_report(&old);
        // Every count the old report has comes through; fields added since read as defaults.
        for (key, value) in old["totals"].as_object().unwrap() {
            assert_eq!(&m["totals"][key], value, "totals.{key}");
        }
        assert_eq!(m["agents"].as_array().unwrap().len(), 1);
    }
}

/// A `max_errors` of the v1 reports written before --max-errors took a share: a bare count.
#[test]
fn a_bare_max_errors_count_of_older_v1_reports_is_read() {
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(repo("tests/corpus/reports/ok-run.json")).unwrap())
            .unwrap();
    v["config"]["max_errors"] = json!(500);
    assert_schema(&v);
    let r = report_json::parse(&v.to_string(), "r.json").unwrap();
    assert_eq!(
        r.config.max_errors,
        Some(tcpbench::config::ErrorLimit::Count(500))
    );
    // Written back, it takes today's form.
    let back: Value = serde_json::from_str(&report_json::render(&r)).unwrap();
    assert_eq!(back["config"]["max_errors"], json!({"count": 500}));
}

#[test]
fn the_schema_rejects_wrong_types_missing_keys_and_other_schemas() {
    let good = &fresh_reports()[0].1;
    assert!(schema_violations(good).is_empty());
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        schema_violations(&v).join("\n")
    };
    let bad = broken(&|v| v["totals"]["attempted"] = json!("300"));
    assert!(bad.contains("/totals/attempted"), "{bad}");
    let bad = broken(&|v| v["latency"]["connect"]["p99_us"] = json!(null));
    assert!(bad.contains("/latency/connect/p99_us"), "{bad}");
    let bad = broken(&|v| v["totals"]["failed"] = json!(-1));
    assert!(bad.contains("/totals/failed"), "{bad}");
    let bad = broken(&|v| {
        v["errors"] = json!([{"phase": "connect", "kind": "no_such_kind", "count": 1}])
    });
    assert!(bad.contains("/errors/0/kind"), "{bad}");
    let bad = broken(&|v| v["schema"] = json!("tcpbench.report.v2"));
    assert!(bad.contains("/schema"), "{bad}");
    let bad = broken(&|v| {
        v.as_object_mut().unwrap().remove("latency");
    });
    assert!(bad.contains("latency"), "{bad}");
    assert!(
        !broken(&|v| v["config"]["socket"]["ports"] = json!({"strategy": "random"})).is_empty()
    );
    // The damaged reports of the corpus that a schema can tell.
    for name in [
        "err-array.json",
        "err-missing-totals.json",
        "err-negative-count.json",
        "err-other-schema.json",
    ] {
        let path = repo(&format!("tests/corpus/reports/{name}"));
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(
            !schema_violations(&v).is_empty(),
            "{name} passes the schema"
        );
    }
}

/// One step of a path into a JSON value.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every path into `v`: each key of every object, and the first element of every array.
fn paths(v: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                at.push(Step::Key(k.clone()));
                out.push(at.clone());
                paths(x, at, out);
                at.pop();
            }
        }
        Value::Array(a) if !a.is_empty() => {
            at.push(Step::Index(0));
            out.push(at.clone());
            paths(&a[0], at, out);
            at.pop();
        }
        _ => {}
    }
}

fn get<'a>(v: &'a Value, path: &[Step]) -> &'a Value {
    path.iter().fold(v, |v, step| match step {
        Step::Key(k) => &v[k.as_str()],
        Step::Index(i) => &v[*i],
    })
}

/// The JSON type of `v`.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn at<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, step| match step {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

/// The schema accepts a report exactly when the reader does, for every single change of a
/// fresh report: a key removed (only keys with a default may go), a value replaced by one of
/// another type, `null`, -1 or `{}`, and an unknown key added to an object (fields may be
/// added within v1). Strings keep to strings here: what a string encodes (an address, a
/// histogram) the reader checks, and a JSON Schema only names it.
#[test]
fn the_schema_and_the_reader_agree_on_every_key() {
    let mut checked = 0;
    let mut rejected = 0;
    let mut seen = std::collections::HashSet::new();
    for (name, report) in fresh_reports() {
        let mut all = Vec::new();
        paths(report, &mut Vec::new(), &mut all);
        for path in all {
            // A key seen already in an object of the same keys (`p99_us` of each phase, the
            // totals of each agent) is the same field of the same type: once is enough.
            let (parent, last) = path.split_at(path.len() - 1);
            let keys: Vec<&String> = get(report, parent)
                .as_object()
                .map_or_else(Vec::new, |m| m.keys().collect());
            let original = get(report, &path);
            if !seen.insert(format!("{:?} {keys:?} {}", last[0], kind(original))) {
                continue;
            }
            let mut changes: Vec<(&str, Value)> = Vec::new();
            if let Step::Key(k) = &last[0] {
                let mut v = report.clone();
                at(&mut v, parent).as_object_mut().unwrap().remove(k);
                changes.push(("removed", v));
            }
            let mut replacements = vec![json!(null), json!(-1), json!({})];
            if !original.is_string() {
                replacements.push(json!("x"));
            }
            for new in replacements {
                let mut v = report.clone();
                *at(&mut v, &path) = new;
                changes.push(("replaced", v));
            }
            if original.is_object() {
                let mut v = report.clone();
                at(&mut v, &path)["a_field_of_a_later_v1"] = json!(1);
                changes.push(("given a new key", v));
            }
            for (what, v) in changes {
                let schema_ok = schema_violations(&v).is_empty();
                let reader = report_json::parse(&v.to_string(), "r.json");
                assert_eq!(
                    schema_ok,
                    reader.is_ok(),
                    "the {name} report with {path:?} {what} ({}): the schema says {}, the reader {:?}",
                    get(&v, &path),
                    if schema_ok { "valid" } else { "invalid" },
                    reader.map(|_| ()).map_err(|e| format!("{e:#}")),
                );
                checked += 1;
                rejected += usize::from(!schema_ok);
            }
        }
    }
    println!("{checked} changed reports, {rejected} rejected by both");
    assert!(
        checked > 1000 && rejected > checked / 4,
        "{checked} {rejected}"
    );
}
