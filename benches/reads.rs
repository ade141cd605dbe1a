//! Reads on a store of [`read_keys`] keys (1,000,000 unless `MTRDB_BENCH_READ_KEYS` says
//! otherwise), built once per store outside the measurement: random order, durable
//! transactions of 100,000 keys, then closed and reopened so the reads see the store as opened.
//!
//! - `reads/get_1_thread/STORE`, `reads/get_4_threads/STORE`: random point gets of present keys,
//!   each its own read transaction; throughput in gets (elements) per second.
//! - `reads/scan_10_forward/STORE`, `reads/scan_10_backward/STORE`: range scans of 10 entries
//!   from a random present key; throughput in bytes of key and value read per second (one
//!   iteration is one scan, so the time per iteration gives scans per second).
//! - `reads_full_scan/scan_all_forward/STORE`: every entry in key order, from a reopened store;
//!   throughput in entries per second.
//!
//! Run with `cargo bench --bench reads`; `MTRDB_BENCH_STORES=mtrdb,redb` narrows the stores.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{KeyOrder, Until, BULK_TXN_KEYS, ENTRY_BYTES, KEY_BYTES, SCAN_KEYS};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn root() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

fn read_keys() -> u64 {
    std::env::var("MTRDB_BENCH_READ_KEYS").ok().and_then(|keys| keys.parse().ok()).unwrap_or(1_000_000)
}

fn bench_reads(c: &mut Criterion) {
    let keys = read_keys();
    let mut full_scans = Vec::new();
    let mut group = c.benchmark_group("reads");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for kind in common::stores_from_env() {
        let dir = common::bench_dir(root(), &format!("reads-{}-", kind.name()));
        let store = common::open_store(kind, dir.path());
        common::insert_keys(store.as_ref(), KeyOrder::Random, 0, keys, BULK_TXN_KEYS);
        store.close();
        let store = common::open_store(kind, dir.path());
        let store = store.as_ref();

        group.throughput(Throughput::Elements(1));
        for threads in [1usize, 4] {
            let name = if threads == 1 { "get_1_thread".to_string() } else { format!("get_{threads}_threads") };
            let mut salt = 0;
            group.bench_function(BenchmarkId::new(name, kind.name()), |bencher| {
                bencher.iter_custom(|gets| {
                    salt += 1;
                    common::point_gets(store, keys, threads, Until::Operations(gets), salt).1
                })
            });
        }
        group.throughput(Throughput::Bytes(SCAN_KEYS as u64 * ENTRY_BYTES));
        for (name, forward) in [("scan_10_forward", true), ("scan_10_backward", false)] {
            let mut session = store.session();
            let mut sequence = 0u64;
            group.bench_function(BenchmarkId::new(name, kind.name()), |bencher| {
                bencher.iter(|| {
                    sequence += 1;
                    let start = common::random_key(common::mix(sequence) % keys);
                    session.scan(&start, SCAN_KEYS, forward)
                })
            });
        }
        // The full ordered scan, in a group of its own (one iteration reads every entry).
        full_scans.push((kind, dir, keys));
    }
    group.finish();

    let mut group = c.benchmark_group("reads_full_scan");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    for (kind, dir, keys) in &full_scans {
        let store = common::open_store(*kind, dir.path());
        let mut session = store.session();
        group.throughput(Throughput::Elements(*keys));
        group.bench_function(BenchmarkId::new("scan_all_forward", kind.name()), |bencher| {
            bencher.iter(|| {
                let read = session.scan(&[0; KEY_BYTES], *keys as usize, true);
                assert_eq!(read.entries, *keys);
            })
        });
        drop(session);
        store.close();
    }
    group.finish();
}

criterion_group!(benches, bench_reads);
criterion_main!(benches);
