//! The report as JSON, written atomically: a temp file in the same folder, fsync, rename.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use anyhow::Context;

use super::{Report, SCHEMA};

pub fn render(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report always serializes")
}

/// Writes `report` to `path` atomically.
pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    write_atomic(path, render(report).as_bytes())
        .with_context(|| format!("cannot write the JSON report to {}", path.display()))
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

/// Writes `bytes` to `path` so a reader sees the old file or the whole new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path names no file"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
        write(&report, &path).unwrap();
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
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left behind"
        );
    }

    #[test]
    fn refuses_other_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.json");
        fs::write(&path, r#"{"schema":"tcpbench.report.v0"}"#).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("v0"));
    }
}
