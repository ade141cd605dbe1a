//! What a transaction costs over a plain batch of the same writes: `N` random 16-byte keys with
//! 100-byte values (N = 1, 10, 100), committed either as one `WriteBatch` or by one
//! `Db::transaction` that reads each key before writing it (the read-modify-write a transaction
//! is for) or only writes. The keys are drawn from 100,000 loaded first, so every write replaces
//! a value and the tree keeps its size: each measurement sees the same tree, whatever ran
//! before it. Under `Durability::Eventual`, so that the comparison is of the work each path does
//! and not of the sync both would pay alike.
//!
//! `transaction_overhead/{batch,transaction_write_only,transaction_read_write}/N`; throughput in
//! keys (elements) per second. mtrdb only. Run with `cargo bench --bench transactions`.

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mtrdb::{Db, Durability, Options, WriteBatch};

fn root() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// Keys loaded at the start.
const LOADED: usize = 100_000;

struct Rng(u64);

impl Rng {
    /// xorshift64*: cheap, and random enough to spread keys over the tree.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn key(&mut self) -> [u8; 16] {
        let a = self.next();
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&a.to_le_bytes());
        key[8..].copy_from_slice(&a.rotate_left(17).to_le_bytes());
        key
    }
}

/// Loaded keys, drawn at random.
struct Keys {
    loaded: Vec<[u8; 16]>,
    rng: Rng,
}

impl Keys {
    fn next(&mut self) -> [u8; 16] {
        self.loaded[(self.rng.next() % self.loaded.len() as u64) as usize]
    }
}

fn transaction_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("transaction_overhead");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    let dir = tempfile::tempdir_in(root()).expect("a benchmark directory");
    let db = Db::open_with(dir.path(), Options::default().durability(Durability::Eventual)).expect("open");
    let ks = db.default_keyspace();
    let value = [7u8; 100];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let loaded: Vec<[u8; 16]> = (0..LOADED).map(|_| rng.key()).collect();
    for chunk in loaded.chunks(1000) {
        let mut batch = WriteBatch::new();
        for key in chunk {
            batch.insert(key, value);
        }
        db.write(batch).expect("load");
    }
    let mut keys = Keys { loaded, rng };
    for n in [1u64, 10, 100] {
        group.throughput(Throughput::Elements(n));
        group.bench_function(BenchmarkId::new("batch", n), |b| {
            b.iter(|| {
                let mut batch = WriteBatch::new();
                for _ in 0..n {
                    batch.insert(keys.next(), value);
                }
                db.write(batch).expect("batch");
            })
        });
        group.bench_function(BenchmarkId::new("transaction_write_only", n), |b| {
            b.iter(|| {
                db.transaction(|tx| -> mtrdb::Result<()> {
                    for _ in 0..n {
                        tx.insert(&ks, keys.next(), value)?;
                    }
                    Ok(())
                })
                .expect("transaction");
            })
        });
        group.bench_function(BenchmarkId::new("transaction_read_write", n), |b| {
            b.iter(|| {
                db.transaction(|tx| -> mtrdb::Result<()> {
                    for _ in 0..n {
                        let key = keys.next();
                        let old = tx.get(&ks, key)?.expect("a loaded key");
                        tx.insert(&ks, key, &old)?;
                    }
                    Ok(())
                })
                .expect("transaction");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, transaction_overhead);
criterion_main!(benches);
