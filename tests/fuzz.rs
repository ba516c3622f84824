//! The parsers of what people type and of the files they hand us: durations, `--bind`
//! address lists, reports. Each gets the kept corpus (tests/corpus/, with the outcome each
//! input must give), then generated inputs: arbitrary strings must give a value or an error,
//! never a panic, and well-formed ones must give the value they spell.
//!
//! Failing cases proptest finds are kept in tests/corpus/proptest-regressions.txt and run
//! first on every later run.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use tcpbench::parse;
use tcpbench::report::json;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name)
}

/// The corpus lines of `file`: (expect ok, input, expected value or message part).
fn cases(file: &str) -> Vec<(bool, String, String)> {
    let text = std::fs::read_to_string(corpus(file)).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "{file}: bad corpus line {l:?}");
            (f[0] == "ok", f[1].to_string(), f[2].to_string())
        })
        .collect()
}

#[test]
fn duration_corpus() {
    let cases = cases("durations.txt");
    assert!(cases.len() >= 10);
    for (ok, input, want) in cases {
        match parse::duration(&input) {
            Ok(d) if ok => assert_eq!(d.as_secs_f64(), want.parse::<f64>().unwrap(), "{input:?}"),
            Err(e) if !ok => assert!(e.contains(&want), "{input:?}: {e}"),
            other => panic!("{input:?}: expected ok={ok}, got {other:?}"),
        }
    }
}

#[test]
fn address_corpus() {
    let cases = cases("addresses.txt");
    assert!(cases.len() >= 10);
    for (ok, input, want) in cases {
        match parse::ip_list(&input) {
            Ok(l) if ok => assert_eq!(l.0.len(), want.parse::<usize>().unwrap(), "{input:?}"),
            Err(e) if !ok => assert!(e.contains(&want), "{input:?}: {e}"),
            other => panic!("{input:?}: expected ok={ok}, got {other:?}"),
        }
    }
}

#[test]
fn report_corpus() {
    let dir = corpus("reports");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = json::read(&path);
        // ok-: valid reports; old-: valid reports of an older v1 (tests/schema.rs).
        if name.starts_with("ok-") || name.starts_with("old-") {
            let r = result.unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(r.latency.connect.count, r.latency.connect.hdr.0.len());
        } else {
            let e = format!("{:#}", result.expect_err(&name));
            assert!(e.contains(&name), "the error names the file: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        seen += 1;
    }
    assert!(seen >= 5, "{seen} reports in {}", dir.display());
}

fn valid_report() -> String {
    std::fs::read_to_string(corpus("reports/ok-run.json")).unwrap()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/corpus/proptest-regressions.txt"
        )))),
        ..ProptestConfig::default()
    }
}

/// How a valid report is damaged.
#[derive(Clone, Debug)]
enum Damage {
    Truncate(usize),
    Replace(usize, u8),
    Delete(usize, usize),
    /// A string value replaced by arbitrary text (an hdr, a timestamp, a close mode).
    Field(usize, String),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Replace(i, b)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Damage::Delete(i, n)),
        (any::<usize>(), "[A-Za-z0-9+/=]{0,80}").prop_map(|(i, s)| Damage::Field(i, s)),
    ]
}

fn apply(text: &str, d: &Damage) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    match *d {
        Damage::Truncate(i) => b.truncate(i % b.len()),
        Damage::Replace(i, v) => {
            let i = i % b.len();
            b[i] = v;
        }
        Damage::Delete(i, n) => {
            let i = i % b.len();
            b.drain(i..(i + n).min(b.len()));
        }
        Damage::Field(i, ref s) => {
            // The i-th string value (after a `": "`), replaced whole.
            let starts: Vec<usize> = text.match_indices("\": \"").map(|(p, _)| p + 4).collect();
            let start = starts[i % starts.len()];
            let end = start + text[start..].find('"').unwrap();
            b.splice(start..end, s.bytes());
        }
    }
    b
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_duration_text_parses_or_explains(s in "\\PC{0,24}") {
        if let Err(e) = parse::duration(&s) {
            prop_assert!(!e.is_empty() && !e.contains('\n'));
        }
    }

    #[test]
    fn written_durations_parse_to_their_value(
        n in 0u64..10_000_000,
        (unit, ns) in prop::sample::select(vec![
            ("ns", 1u64), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000),
            ("m", 60_000_000_000), ("h", 3_600_000_000_000), ("d", 86_400_000_000_000),
        ]),
    ) {
        let text = format!("{n}{unit}");
        let want = u128::from(n) * u128::from(ns);
        match parse::duration(&text) {
            Ok(d) => prop_assert_eq!(d.as_nanos(), want),
            Err(e) => {
                prop_assert!(want > parse::MAX_DURATION.as_nanos(), "{}: {}", text, e);
                prop_assert!(e.contains("longer than a year"));
            }
        }
    }

    #[test]
    fn any_count_or_duration_text_parses_or_explains(s in "\\PC{0,24}") {
        let _ = parse::count_or_duration(&s);
    }

    #[test]
    fn any_address_text_parses_or_explains(s in "[0-9a-fA-F:.,\\- ]{0,48}") {
        if let Err(e) = parse::ip_list(&s) {
            prop_assert!(!e.is_empty() && !e.contains('\n'));
        }
    }

    #[test]
    fn v4_ranges_expand_to_every_address(lo in any::<u32>(), len in 0u32..2000) {
        let hi = lo.saturating_add(len);
        let text = format!("{}-{}", std::net::Ipv4Addr::from(lo), std::net::Ipv4Addr::from(hi));
        let list = parse::ip_list(&text).unwrap().0;
        prop_assert_eq!(list.len() as u64, u64::from(hi - lo) + 1);
        prop_assert_eq!(list[0], std::net::IpAddr::from(std::net::Ipv4Addr::from(lo)));
        prop_assert_eq!(*list.last().unwrap(), std::net::IpAddr::from(std::net::Ipv4Addr::from(hi)));
        // The same range written backwards is refused.
        if hi > lo {
            let back = format!("{}-{}", std::net::Ipv4Addr::from(hi), std::net::Ipv4Addr::from(lo));
            prop_assert!(parse::ip_list(&back).unwrap_err().contains("backwards"));
        }
    }

    #[test]
    fn v6_ranges_expand_to_every_address(lo in any::<u128>(), len in 0u128..300) {
        let hi = lo.saturating_add(len);
        let text = format!("{}-{}", std::net::Ipv6Addr::from(lo), std::net::Ipv6Addr::from(hi));
        prop_assert_eq!(parse::ip_list(&text).unwrap().0.len() as u128, hi - lo + 1);
    }

    #[test]
    fn damaged_reports_parse_or_explain(d in damage()) {
        let text = valid_report();
        let bytes = apply(&text, &d);
        let Ok(damaged) = std::str::from_utf8(&bytes) else {
            return Ok(());
        };
        if let Err(e) = json::parse(damaged, "r.json") {
            let e = format!("{e:#}");
            prop_assert!(e.starts_with("r.json"), "{}", e);
        }
    }

    #[test]
    fn any_hdr_text_decodes_or_explains(s in "[A-Za-z0-9+/=]{0,200}") {
        let _ = tcpbench::report::Hdr::decode(&s);
    }
}
