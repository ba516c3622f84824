//! The HdrHistogram interval log (`--hlog`): the latency over time, in the text form that
//! HistogramLogAnalyzer, HdrHistogram's `HistogramLogProcessor` and the `hdrhistogram`
//! crate's and Python `hdrh`'s log readers take.
//!
//! A header (comments naming tcpbench, the command and the units; `StartTime` and
//! `BaseTime`, both the load's start), then one line per tag per interval, in time order:
//! `Tag=connect,START,LENGTH,MAX,HISTFAAA…`, START seconds since the load's start, each
//! histogram in the compressed V2 encoding, base64. Values are nanoseconds, as everywhere in
//! tcpbench; the MAX column is in milliseconds (`MaxValueDivisor` 1,000,000), as Java's
//! HdrHistogram tools write it for nanosecond values, and HistogramLogAnalyzer, which scales
//! values by that same ratio, shows milliseconds. A tag appears in every interval once it has
//! a value in any of them (an empty histogram where it had none), and not at all otherwise.
//! The tags' counts over all intervals are the report's `latency.<tag>.count`.

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use super::Report;
use crate::stats::interval::{IntervalLog, SERIES, TAGS};

/// Nanoseconds per unit of the log's MAX column (milliseconds).
pub const MAX_VALUE_DIVISOR: f64 = 1e6;

/// The log of `report`'s intervals, or `None` when it kept none (no `--hlog`).
pub fn render(report: &Report) -> Option<String> {
    report
        .intervals
        .as_ref()
        .map(|log| render_log(log, &report.version))
}

/// The log's text; `version` is tcpbench's.
pub fn render_log(log: &IntervalLog, version: &str) -> String {
    let totals = log.totals();
    let used: Vec<usize> = (0..SERIES).filter(|&i| totals[i] > 0).collect();
    let mut comments = vec![
        format!(
            "tcpbench {version}: TCP connection latency over time, an HdrHistogram interval log"
        ),
        format!(
            "one histogram per tag per {} interval; values in nanoseconds; Interval_Max in milliseconds",
            humantime::format_duration(log.interval)
        ),
        format!(
            "tags: {}",
            used.iter().map(|&i| TAGS[i]).collect::<Vec<_>>().join(" ")
        ),
    ];
    if let Some(cmd) = &log.command {
        comments.push(format!("command: {cmd}"));
    }
    // The version line Java's HistogramLogWriter writes (1.3: the first with tags).
    comments.push("[Histogram log format version 1.3]".into());
    let mut builder = IntervalLogWriterBuilder::new();
    for c in &comments {
        builder.add_comment(c);
    }
    builder
        .with_start_time(log.started_at)
        .with_base_time(log.started_at)
        .with_max_value_divisor(MAX_VALUE_DIVISOR);
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut writer = builder
            .begin_log_with(&mut out, &mut serializer)
            .expect("writing into memory does not fail");
        for iv in &log.intervals {
            for &i in &used {
                let tag = Tag::new(TAGS[i]).expect("tags have no comma or space");
                writer
                    .write_histogram(&iv.histogram(i), iv.start, iv.length, Some(tag))
                    .expect("writing into memory does not fail");
            }
        }
    }
    String::from_utf8(out).expect("the log is ASCII")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    use super::*;
    use crate::stats::Metric;
    use crate::stats::interval::{Window, series};

    fn log() -> IntervalLog {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut log = IntervalLog::empty(t0, Duration::from_millis(500));
        for k in 0..3u32 {
            let mut w = Window::default();
            for v in 0..=k {
                w.record(series(Metric::Connect), 20_000 + u64::from(v));
                w.record(series(Metric::Total), 2_000_000);
            }
            let start = Duration::from_millis(500) * k;
            let length = if k == 2 {
                Duration::from_millis(120)
            } else {
                Duration::from_millis(500)
            };
            log.intervals.push(w.finish(start, length));
        }
        log.command = Some("tcpbench --conns 6 --hlog x.hlog".into());
        log
    }

    #[test]
    fn the_crates_reader_reads_it_back() {
        let text = render_log(&log(), "0.1.0");
        assert!(text.starts_with("#tcpbench 0.1.0"));
        assert!(text.contains("#command: tcpbench --conns 6 --hlog x.hlog\n"));
        assert!(text.contains("#[StartTime: 1700000000.000 (seconds since epoch)]\n"));
        assert!(text.contains("#[BaseTime: 1700000000.000 (seconds since epoch)]\n"));
        let mut seen = Vec::new();
        let mut base = None;
        for e in IntervalLogIterator::new(text.as_bytes()) {
            match e.expect("the log parses") {
                LogEntry::BaseTime(t) => base = Some(t),
                LogEntry::StartTime(_) => {}
                LogEntry::Interval(iv) => {
                    let bytes = base64::Engine::decode(
                        &base64::engine::general_purpose::STANDARD,
                        iv.encoded_histogram(),
                    )
                    .unwrap();
                    let h: hdrhistogram::Histogram<u64> = Deserializer::new()
                        .deserialize(&mut bytes.as_slice())
                        .unwrap();
                    seen.push((
                        iv.tag().unwrap().as_str().to_string(),
                        iv.start_timestamp().as_millis(),
                        iv.duration().as_millis(),
                        h.len(),
                        iv.max(),
                    ));
                }
            }
        }
        assert_eq!(base, Some(Duration::from_secs(1_700_000_000)));
        let got: Vec<(&str, u128, u128, u64)> = seen
            .iter()
            .map(|(t, s, d, n, _)| (t.as_str(), *s, *d, *n))
            .collect();
        // Only the tags with values, every interval, in time order; the last one is short.
        assert_eq!(
            got,
            [
                ("connect", 0, 500, 1),
                ("total", 0, 500, 1),
                ("connect", 500, 500, 2),
                ("total", 500, 500, 2),
                ("connect", 1000, 120, 3),
                ("total", 1000, 120, 3),
            ]
        );
        // The MAX column is in milliseconds: 2 ms for total.
        assert!((seen[1].4 - 2.0).abs() < 0.01, "{}", seen[1].4);
    }

    #[test]
    fn a_log_without_intervals_is_its_header() {
        let empty = IntervalLog::empty(SystemTime::UNIX_EPOCH, Duration::from_secs(1));
        let text = render_log(&empty, "0.1.0");
        assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
        assert!(text.contains("#tags: \n"));
    }
}
