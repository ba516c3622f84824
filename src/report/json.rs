//! The report as JSON, and read back (`compare`, `merge`); `output` writes it.

use std::fs;
use std::path::Path;

use anyhow::Context;

use super::{Report, SCHEMA};

pub fn render(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report always serializes")
}

/// Reads a report written by this version's schema.
pub fn read(path: &Path) -> anyhow::Result<Report> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses a report from `text`; `origin` names it in errors (a path). Any input gives a
/// report or an error, never a panic: the fuzz tests hold it to that.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<Report> {
    let value: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{origin} is not JSON"))?;
    match value.get("schema").and_then(|s| s.as_str()) {
        Some(SCHEMA) => {}
        Some(other) => anyhow::bail!(
            "{origin} has schema {other}; this tcpbench reads {SCHEMA}: make the report again with this version"
        ),
        None => anyhow::bail!("{origin} is not a tcpbench report (no \"schema\" key)"),
    }
    serde_json::from_value(value)
        .with_context(|| format!("{origin} is not a valid {SCHEMA} report"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn round_trips_and_keeps_required_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let report = fixture::report();
        fs::write(&path, render(&report)).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        for key in [
            "schema",
            "version",
            "started_at",
            "duration_s",
            "config",
            "environment",
            "totals",
            "rate_cps",
            "errors",
            "interrupted",
            "latency",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["latency"]["connect"]["count"], 3);
        assert_eq!(v["errors"][0]["errno"], "ECONNREFUSED");
        assert_eq!(v["errors"][0]["kind"], "refused");
        let back = read(&path).unwrap();
        assert_eq!(back.latency.total.hdr.0.len(), 3);
    }

    #[test]
    fn refuses_other_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.json");
        fs::write(&path, r#"{"schema":"tcpbench.report.v0"}"#).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("v0"));
    }
}
