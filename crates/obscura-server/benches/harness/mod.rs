//! A small timing harness for the regression benches (`cargo bench`): each case runs a few
//! samples of a fixed number of operations and prints the median time per operation, so a
//! slowdown shows up in review. Numbers are read by people, never asserted.

use std::time::{Duration, Instant};

/// Samples per case; the median is reported.
const SAMPLES: usize = 5;

/// Times `SAMPLES` runs of `run`, each doing `ops` operations, and prints the median per op.
pub fn case(name: &str, ops: usize, mut run: impl FnMut()) {
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    samples.sort();
    let median = samples.get(SAMPLES / 2).copied().unwrap_or_default();
    let per_op = median.as_secs_f64() / ops.max(1) as f64;
    println!("{name:<44} {:>10.2} µs/op  ({ops} ops, median of {SAMPLES})", per_op * 1e6);
}
