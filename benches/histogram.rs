//! The recording hot path and the end-of-run merge.
//!
//!     cargo bench --bench histogram

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
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

criterion_group!(benches, histograms);
criterion_main!(benches);
