//! Durable single-key commits per second with 1, 2, 4 and 8 writer threads, each commit one
//! random 16-byte key and a 100-byte value in its own transaction, durable when it returns.
//! mtrdb shares one sync among the writers that commit together (group commit); the baseline in
//! the same run is one `pwrite` + `fdatasync` per commit on a plain, preallocated file, the cost
//! every commit would pay without grouping.
//!
//! `durable_commit/STORE/THREADS` and `durable_commit/fdatasync_per_commit/1`; throughput in
//! commits (elements) per second. `durable_commit_busy/*`: one committing thread (and the
//! baseline) while other processes keep every core busy (`CpuHogs`), as on a loaded server. Run with `cargo bench --bench commits`;
//! `MTRDB_BENCH_STORES=mtrdb,redb` narrows the stores.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{CpuHogs, FsyncBaseline, Until};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn root() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// The baseline, then every store with each of `thread_counts` committing threads, in `name`.
fn commit_group(c: &mut Criterion, name: &str, thread_counts: &[usize]) {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));

    let dir = common::bench_dir(root(), &format!("{name}-baseline-"));
    let mut baseline = FsyncBaseline::create(dir.path());
    group.bench_function(BenchmarkId::new("fdatasync_per_commit", 1), |bencher| {
        bencher.iter_custom(|commits| baseline.run(Until::Operations(commits)).1)
    });
    drop(dir);

    for kind in common::stores_from_env() {
        let dir = common::bench_dir(root(), &format!("{name}-{}-", kind.name()));
        let store = common::open_store(kind, dir.path());
        for &threads in thread_counts {
            group.bench_with_input(BenchmarkId::new(kind.name(), threads), &threads, |bencher, &threads| {
                bencher.iter_custom(|commits| {
                    common::durable_commits(store.as_ref(), threads, Until::Operations(commits)).1
                })
            });
        }
        if let Some(db) = store.mtrdb() {
            let log = db.stats().log;
            println!("{name}/mtrdb: log counters over all thread counts: {log:?}");
        }
        store.close();
    }
    group.finish();
}

fn bench_commits(c: &mut Criterion) {
    commit_group(c, "durable_commit", &[1, 2, 4, 8]);
}

fn bench_commits_busy(c: &mut Criterion) {
    let _hogs = CpuHogs::on_every_core();
    commit_group(c, "durable_commit_busy", &[1]);
}

criterion_group!(benches, bench_commits, bench_commits_busy);
criterion_main!(benches);
