//! HdrHistogram percentile distributions (`.hgrm`), the text HdrHistogram's plotters read.
//! Values are written in milliseconds, as those plotters label them.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::Report;
use crate::stats::Metric;

/// Nanoseconds per written unit (milliseconds).
const SCALE: f64 = 1e6;

/// The percentile distribution of one histogram, in HdrHistogram's own layout.
pub fn render(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / SCALE;
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.6} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.6} {q:2.12} {total:10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.6}, StdDeviation   = {:12.6}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.6}, Total count    = {:12}]",
        h.max() as f64 / SCALE,
        h.len()
    );
    let sub_buckets = (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two();
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets
    );
    out
}

/// One `<phase>.hgrm` file per phase: its name and its text (`--hgrm DIR` writes them).
pub fn files(report: &Report) -> Vec<(String, String)> {
    Metric::ALL
        .iter()
        .map(|m| (file_name(*m), render(&report.latency.get(*m).hdr.0)))
        .collect()
}

/// The names of the files [`files`] makes, in its order: what `--hgrm DIR` writes in DIR.
pub fn names() -> Vec<String> {
    Metric::ALL.iter().map(|m| file_name(*m)).collect()
}

fn file_name(m: Metric) -> String {
    format!("{}.hgrm", m.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn layout_matches_hdrhistogram() {
        let mut h = new_histogram();
        for i in 1..=1000u64 {
            h.record(i * 1000).unwrap();
        }
        let text = render(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].trim_start().starts_with("Value"));
        assert!(lines[1].is_empty());
        let last_data = lines.iter().rev().find(|l| !l.starts_with('#')).unwrap();
        let cols: Vec<&str> = last_data.split_whitespace().collect();
        assert_eq!(cols.len(), 3, "the 100% line has no 1/(1-q) column");
        assert_eq!(cols[2], "1000");
        assert!(
            (cols[0].parse::<f64>().unwrap() - 1.0).abs() < 0.001,
            "max is 1 ms"
        );
        assert!(text.contains("Total count    =         1000"));
    }
}
