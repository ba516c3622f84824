//! The recording hot path (without and with `--hlog`'s interval window) and the end-of-run
//! merge.
//!
//!     cargo bench --bench histogram

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use std::time::Duration;

use tcpbench::stats::interval::{Window, series};
use tcpbench::stats::{Metric, Recorder};

fn histograms(c: &mut Criterion) {
    let mut rec = Recorder::default();
    let mut v = 12_345u64;
    c.bench_function("histogram/record", |b| {
        b.iter(|| {
            v = v
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            rec.record(Metric::Connect, black_box(v >> 40));
        })
    });
    // With --hlog: the same record also goes into the thread's interval window.
    let mut rec = Recorder {
        window: Some(Box::default()),
        ..Recorder::default()
    };
    c.bench_function("histogram/record_hlog", |b| {
        b.iter(|| {
            v = v
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            rec.record(Metric::Connect, black_box(v >> 40));
        })
    });
    let mut other = Recorder::default();
    for i in 0..100_000u64 {
        for m in Metric::ALL {
            other.record(m, 10_000 + i * 37);
        }
    }
    c.bench_function("histogram/merge_recorder", |b| {
        b.iter(|| {
            let mut total = Recorder::default();
            total.merge(black_box(&other));
            total
        })
    });
}

/// What the supervisor does per thread and interval with --hlog, off the record path: add a
/// thread's window into the interval's, and compress the merged one into the log.
fn intervals(c: &mut Criterion) {
    let mut w = Window::default();
    for i in 0..10_000u64 {
        for m in Metric::ALL {
            w.record(series(m), 10_000 + i * 37);
        }
    }
    c.bench_function("histogram/interval_add", |b| {
        let mut merged = Window::default();
        b.iter(|| merged.add(black_box(&w)))
    });
    c.bench_function("histogram/interval_finish", |b| {
        b.iter(|| black_box(&w).finish(Duration::ZERO, Duration::from_secs(1)))
    });
}

criterion_group!(benches, histograms, intervals);
criterion_main!(benches);
