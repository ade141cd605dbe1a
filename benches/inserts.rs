//! Split throughput: inserts per second, and for mtrdb the splits they cause per second, from
//! its own counters (`Db::stats`).
//!
//! - `insert_batches_1000/{sequential,random}/STORE`: durable batches of 1,000 inserts of a
//!   16-byte key and a 100-byte value. Sequential keys split at the right edge of the tree,
//!   random keys all over it. The tree grows from batch to batch and starts again empty once
//!   it holds [`REGROW_AFTER_KEYS`] keys (outside the measurement).
//! - `bulk_load_100k/{sequential,random}/STORE`: 100,000 inserts in one durable transaction
//!   into an empty store, then a clean close (so deferred write-back such as mtrdb's
//!   checkpoint is counted).
//!
//! Throughput is in keys (elements per second); after each mtrdb benchmark a line reports the
//! leaf, branch and root splits of the measured inserts and the splits per second.
//!
//! Run with `cargo bench --bench inserts`; `MTRDB_BENCH_STORES=mtrdb,redb` narrows the stores.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{KeyOrder, Splits, Store, StoreKind, BATCH_KEYS};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};

/// The batch benchmarks start from an empty store again past this many keys.
const REGROW_AFTER_KEYS: u64 = 1_000_000;
/// Keys of one bulk load.
const BULK_KEYS: u64 = 100_000;

fn root() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// Splits and time accumulated over every measured iteration of one benchmark.
#[derive(Default)]
struct SplitTally {
    splits: Splits,
    keys: u64,
    elapsed: Duration,
}

impl SplitTally {
    fn report(&self, benchmark: &str) {
        if self.keys == 0 {
            return;
        }
        let seconds = self.elapsed.as_secs_f64();
        println!(
            "{benchmark}: {} keys, {} leaf / {} branch / {} root splits ({:.2} per 1,000 keys): \
             {:.0} keys/s, {:.0} splits/s",
            self.keys,
            self.splits.leaf,
            self.splits.branch,
            self.splits.root,
            self.splits.total() as f64 * 1000.0 / self.keys as f64,
            self.keys as f64 / seconds,
            self.splits.total() as f64 / seconds,
        );
    }
}

/// A store that grows batch by batch.
struct Growing {
    kind: StoreKind,
    store: Option<Box<dyn Store>>,
    dir: Option<tempfile::TempDir>,
    next_key: u64,
}

impl Growing {
    fn new(kind: StoreKind) -> Growing {
        Growing { kind, store: None, dir: None, next_key: 0 }
    }

    /// The store (a new, empty one once the old one is full) and the index of its next key.
    fn store(&mut self) -> (&dyn Store, u64) {
        if self.next_key >= REGROW_AFTER_KEYS {
            self.reset();
        }
        if self.store.is_none() {
            let dir = common::bench_dir(root(), &format!("inserts-{}-", self.kind.name()));
            self.store = Some(common::open_store(self.kind, dir.path()));
            self.dir = Some(dir);
            self.next_key = 0;
        }
        (self.store.as_deref().expect("opened above"), self.next_key)
    }

    fn reset(&mut self) {
        if let Some(store) = self.store.take() {
            store.close();
        }
        self.dir = None;
    }
}

fn bench_batches(c: &mut Criterion) {
    let mut group = c.benchmark_group("insert_batches_1000");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(BATCH_KEYS));
    for order in [KeyOrder::Sequential, KeyOrder::Random] {
        for kind in common::stores_from_env() {
            let mut growing = Growing::new(kind);
            let mut tally = SplitTally::default();
            group.bench_with_input(BenchmarkId::new(order.name(), kind.name()), &kind, |bencher, _| {
                bencher.iter_custom(|batches| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..batches {
                        let (store, next_key) = growing.store();
                        let before = common::splits(store);
                        let spent = common::insert_keys(store, order, next_key, BATCH_KEYS, BATCH_KEYS);
                        if let (Some(before), Some(after)) = (before, common::splits(store)) {
                            tally.splits.add(after.since(before));
                        }
                        tally.keys += BATCH_KEYS;
                        tally.elapsed += spent;
                        elapsed += spent;
                        growing.next_key += BATCH_KEYS;
                    }
                    elapsed
                });
            });
            growing.reset();
            if kind == StoreKind::Mtrdb {
                tally.report(&format!("insert_batches_1000/{}/mtrdb", order.name()));
            }
        }
    }
    group.finish();
}

fn bench_bulk(c: &mut Criterion) {
    let mut group = c.benchmark_group("bulk_load_100k");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(BULK_KEYS));
    for order in [KeyOrder::Sequential, KeyOrder::Random] {
        let entries = common::entries(order, 0, BULK_KEYS);
        for kind in common::stores_from_env() {
            let mut tally = SplitTally::default();
            group.bench_with_input(BenchmarkId::new(order.name(), kind.name()), &kind, |bencher, &kind| {
                bencher.iter_custom(|loads| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..loads {
                        let dir = common::bench_dir(root(), &format!("bulk-{}-", kind.name()));
                        let store = common::open_store(kind, dir.path());
                        let started = std::time::Instant::now();
                        store.write_batch(&entries);
                        let splits = common::splits(store.as_ref());
                        store.close();
                        let spent = started.elapsed();
                        if let Some(splits) = splits {
                            tally.splits.add(splits);
                        }
                        tally.keys += BULK_KEYS;
                        tally.elapsed += spent;
                        elapsed += spent;
                    }
                    elapsed
                });
            });
            if kind == StoreKind::Mtrdb {
                tally.report(&format!("bulk_load_100k/{}/mtrdb", order.name()));
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_batches, bench_bulk);
criterion_main!(benches);
