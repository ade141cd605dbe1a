//! Recovery after a simulated crash.
//!
//! For each store, [`recovery_keys`] random keys (200,000 unless `MTRDB_BENCH_RECOVERY_KEYS`
//! says otherwise) are written in durable batches of 1,000 into a new store; mtrdb runs with
//! background checkpoints disabled and a redo log large enough that no checkpoint happens, so
//! everything is left to the redo pass. The store's files are then copied while it is still
//! open (what a crash at that moment leaves; `Drop` would close cleanly). Each iteration copies
//! that image afresh (not timed), then times opening it and reading the last key written.
//!
//! - `recovery/redo_pass/mtrdb`: throughput in redo bytes replayed per second
//!   (`RecoveryReport::redo_bytes_replayed`); a line after it gives mtrs per second from the
//!   report's own counters and duration.
//! - `recovery/reopen_after_crash/STORE`: the same open for every store, throughput in user
//!   bytes (keys and values) of the image per second.
//!
//! Run with `cargo bench --bench recovery`; `MTRDB_BENCH_STORES=mtrdb,redb` narrows the stores.

mod common;

use std::path::Path;
use std::time::Duration;

use common::StoreKind;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};

fn root() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

fn recovery_keys() -> u64 {
    std::env::var("MTRDB_BENCH_RECOVERY_KEYS").ok().and_then(|keys| keys.parse().ok()).unwrap_or(200_000)
}

fn bench_recovery(c: &mut Criterion) {
    let keys = recovery_keys();
    let mut group = c.benchmark_group("recovery");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for kind in common::stores_from_env() {
        let dir = common::bench_dir(root(), &format!("recovery-{}-", kind.name()));
        let image = common::make_crash_image(kind, &dir.path().join("live"), &dir.path().join("image"), keys);
        let scratch = dir.path().join("scratch");

        if kind == StoreKind::Mtrdb {
            let probe = common::recover(kind, &image, &scratch);
            let report = probe.report.expect("mtrdb reports its recovery");
            assert!(report.mtrs_replayed > 0, "the crash image left nothing to replay: {report:?}");
            group.throughput(Throughput::Bytes(report.redo_bytes_replayed));
            let (mut mtrs, mut redo_bytes, mut reported) = (0u64, 0u64, Duration::ZERO);
            let (mut phases, mut recoveries) = ([Duration::ZERO; 5], 0u32);
            group.bench_function(BenchmarkId::new("redo_pass", kind.name()), |bencher| {
                bencher.iter_custom(|runs| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..runs {
                        let recovery = common::recover(kind, &image, &scratch);
                        let report = recovery.report.expect("mtrdb reports its recovery");
                        mtrs += report.mtrs_replayed;
                        redo_bytes += report.redo_bytes_replayed;
                        reported += report.redo_duration;
                        phases[0] += report.scan_duration;
                        phases[1] += report.rewrite_duration;
                        phases[2] += report.redo_duration - report.scan_duration;
                        phases[3] += report.write_back_duration;
                        phases[4] += report.duration;
                        recoveries += 1;
                        elapsed += recovery.elapsed;
                    }
                    elapsed
                })
            });
            let seconds = reported.as_secs_f64();
            println!(
                "recovery/redo_pass/mtrdb: {} keys, {} mtrs and {:.1} MB of redo per recovery, {} pages \
                 written back ({} through the doublewrite file); by the report's redo-pass duration: {:.1} \
                 MB/s of redo, {:.0} mtrs/s",
                keys,
                report.mtrs_replayed,
                report.redo_bytes_replayed as f64 / 1e6,
                report.pages_written_back,
                report.pages_doublewritten,
                redo_bytes as f64 / 1e6 / seconds,
                mtrs as f64 / seconds,
            );
            let [scan, rewrite, apply, write_back, whole] = phases.map(|phase| phase / recoveries.max(1));
            println!(
                "recovery/redo_pass/mtrdb: mean phases: first scan {scan:.1?}, second scan and apply {apply:.1?} \
                 (redo rewrite beside it {rewrite:.1?}), write-back {write_back:.1?}; whole open {whole:.1?}"
            );
        }

        group.throughput(Throughput::Bytes(image.user_bytes));
        group.bench_function(BenchmarkId::new("reopen_after_crash", kind.name()), |bencher| {
            bencher.iter_custom(|runs| (0..runs).map(|_| common::recover(kind, &image, &scratch).elapsed).sum())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_recovery);
criterion_main!(benches);
