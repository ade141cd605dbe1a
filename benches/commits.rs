//! Durable single-key commits per second with 1, 2, 4 and 8 writer threads, each commit one
//! random 16-byte key and a 100-byte value in its own transaction, durable when it returns.
//! mtrdb shares one sync among the writers that commit together (group commit); the baseline in
//! the same run is one `pwrite` + `fdatasync` per commit on a plain, preallocated file, the cost
//! every commit would pay without grouping.
//!
//! `durable_commit/STORE/THREADS` and `durable_commit/fdatasync_per_commit/1`; throughput in
//! commits (elements) per second. Run with `cargo bench --bench commits`;
//! `MTRDB_BENCH_STORES=mtrdb,redb` narrows the stores.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{FsyncBaseline, Until};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn root() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

fn bench_commits(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable_commit");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));

    let dir = common::bench_dir(root(), "commits-baseline-");
    let mut baseline = FsyncBaseline::create(dir.path());
    group.bench_function(BenchmarkId::new("fdatasync_per_commit", 1), |bencher| {
        bencher.iter_custom(|commits| baseline.run(Until::Operations(commits)).1)
    });
    drop(dir);

    for kind in common::stores_from_env() {
        let dir = common::bench_dir(root(), &format!("commits-{}-", kind.name()));
        let store = common::open_store(kind, dir.path());
        for threads in [1usize, 2, 4, 8] {
            group.bench_with_input(BenchmarkId::new(kind.name(), threads), &threads, |bencher, &threads| {
                bencher.iter_custom(|commits| {
                    common::durable_commits(store.as_ref(), threads, Until::Operations(commits)).1
                })
            });
        }
        if let Some(db) = store.mtrdb() {
            let log = db.stats().log;
            println!("durable_commit/mtrdb: log counters over all thread counts: {log:?}");
        }
        store.close();
    }
    group.finish();
}

criterion_group!(benches, bench_commits);
criterion_main!(benches);
