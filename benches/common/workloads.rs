//! The workloads: inserts in durable transactions, durable single commits, point gets and range
//! scans from several threads (`run_threads`), a full ordered scan, per-operation latencies,
//! and mtrdb's split counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use mtrdb::Db;

use super::{entries, mix, random_key, value, KeyOrder, Scanned, Session, Store, KEY_BYTES, SCAN_KEYS, VALUE_BYTES};

/// mtrdb's split counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Splits {
    /// Leaf splits.
    pub leaf: u64,
    /// Branch splits (not counting root splits).
    pub branch: u64,
    /// Root splits.
    pub root: u64,
}

impl Splits {
    /// The counters of `db` now.
    pub fn of(db: &Db) -> Splits {
        let stats = db.stats();
        Splits { leaf: stats.leaf_splits, branch: stats.branch_splits, root: stats.root_splits }
    }

    /// All splits.
    pub fn total(self) -> u64 {
        self.leaf + self.branch + self.root
    }

    /// The splits from `earlier` to `self`.
    pub fn since(self, earlier: Splits) -> Splits {
        Splits { leaf: self.leaf - earlier.leaf, branch: self.branch - earlier.branch, root: self.root - earlier.root }
    }

    /// Adds `other`.
    pub fn add(&mut self, other: Splits) {
        self.leaf += other.leaf;
        self.branch += other.branch;
        self.root += other.root;
    }
}

/// The split counters of `store`, if it is mtrdb.
pub fn splits(store: &dyn Store) -> Option<Splits> {
    store.mtrdb().map(Splits::of)
}

/// Inserts keys `start .. start + count` of `order` in durable transactions of `txn_keys` keys;
/// returns the time spent writing (generating the entries is not timed).
pub fn insert_keys(store: &dyn Store, order: KeyOrder, start: u64, count: u64, txn_keys: u64) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut next = start;
    while next < start + count {
        let txn_count = txn_keys.min(start + count - next);
        let batch = entries(order, next, txn_count);
        let started = Instant::now();
        store.write_batch(&batch);
        elapsed += started.elapsed();
        next += txn_count;
    }
    elapsed
}

/// When a multi-threaded run stops.
#[derive(Copy, Clone, Debug)]
pub enum Until {
    /// After this many operations in all (shared evenly between the threads).
    Operations(u64),
    /// After this much time.
    Elapsed(Duration),
}

/// Runs `operation(session, thread, sequence)` on `threads` threads, each with its own session
/// (opened before the clock starts), until `until`. Returns the operations done and the wall
/// time they took.
pub fn run_threads<F>(store: &dyn Store, threads: usize, until: Until, operation: F) -> (u64, Duration)
where
    F: Fn(&mut dyn Session, u64, u64) + Sync,
{
    let per_thread = match until {
        Until::Operations(total) => total.div_ceil(threads as u64),
        Until::Elapsed(_) => u64::MAX,
    };
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start_together = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads as u64)
            .map(|thread| {
                let (stop, done, start_together, operation) = (&stop, &done, &start_together, &operation);
                scope.spawn(move || {
                    let mut session = store.session();
                    start_together.wait();
                    let mut sequence = 0;
                    while sequence < per_thread && !stop.load(Ordering::Relaxed) {
                        operation(session.as_mut(), thread, sequence);
                        sequence += 1;
                    }
                    done.fetch_add(sequence, Ordering::Relaxed);
                })
            })
            .collect();
        start_together.wait();
        let started = Instant::now();
        if let Until::Elapsed(duration) = until {
            std::thread::sleep(duration);
            stop.store(true, Ordering::Relaxed);
        }
        for worker in workers {
            worker.join().expect("benchmark thread");
        }
        started.elapsed()
    });
    let operations = done.load(Ordering::Relaxed);
    match until {
        // Rounding up gave each thread the same share: report the time for `total` exactly.
        Until::Operations(total) => (total, elapsed.mul_f64(total as f64 / operations.max(1) as f64)),
        Until::Elapsed(_) => (operations, elapsed),
    }
}

/// Keys for single-key commits: distinct across calls within a process.
static NEXT_COMMIT_KEY: AtomicU64 = AtomicU64::new(1 << 40);

/// One durable single-key commit: a random 16-byte key, a 100-byte value.
fn commit_one(session: &mut dyn Session) {
    let index = NEXT_COMMIT_KEY.fetch_add(1, Ordering::Relaxed);
    session.insert_durable(&random_key(index), &value(index));
}

/// Durable single-key commits from `threads` threads. Returns commits and wall time.
pub fn durable_commits(store: &dyn Store, threads: usize, until: Until) -> (u64, Duration) {
    run_threads(store, threads, until, |session, _, _| commit_one(session))
}

/// Durable single-key commits from one thread, each one timed. Returns commits, wall time and
/// the latency of every commit.
pub fn durable_commits_timed(store: &dyn Store, until: Until) -> (u64, Duration, Latencies) {
    // One thread: the lock is never contended (tens of nanoseconds against a sync's tens of
    // microseconds at least).
    let latencies = Mutex::new(Latencies::default());
    let (commits, elapsed) = run_threads(store, 1, until, |session, _, _| {
        let started = Instant::now();
        commit_one(session);
        latencies.lock().expect("latencies lock").record(started.elapsed());
    });
    (commits, elapsed, latencies.into_inner().expect("latencies lock"))
}

/// The latencies of the operations of a run.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    samples: Vec<Duration>,
}

impl Latencies {
    /// Adds one operation's latency.
    pub fn record(&mut self, latency: Duration) {
        self.samples.push(latency);
    }

    /// The median (nearest rank: the `ceil(n / 2)`-th smallest), `None` if none was recorded.
    pub fn p50(&self) -> Option<Duration> {
        let mut samples = self.samples.clone();
        let rank = samples.len().div_ceil(2).checked_sub(1)?;
        Some(*samples.select_nth_unstable(rank).1)
    }
}

/// Random point gets of keys `0 .. key_count` (random order) from `threads` threads; every key
/// must be found. Returns gets and wall time.
pub fn point_gets(store: &dyn Store, key_count: u64, threads: usize, until: Until, salt: u64) -> (u64, Duration) {
    run_threads(store, threads, until, |session, thread, sequence| {
        let index = mix(salt ^ (thread << 48) ^ sequence) % key_count;
        let found = session.get(&random_key(index));
        assert_eq!(found, Some(VALUE_BYTES), "{}: key {index} of {key_count} is missing", store.kind().name());
    })
}

/// Range scans of [`SCAN_KEYS`] entries from a random existing key (of keys `0 .. key_count`,
/// random order), forwards or backwards, on one thread. Returns scans and wall time.
pub fn range_scans(store: &dyn Store, key_count: u64, forward: bool, until: Until, salt: u64) -> (u64, Duration) {
    run_threads(store, 1, until, |session, _, sequence| {
        let index = mix(salt ^ sequence) % key_count;
        let read = session.scan(&random_key(index), SCAN_KEYS, forward);
        assert!(read.entries >= 1, "{}: a scan from an existing key read nothing", store.kind().name());
    })
}

/// One scan of every entry in key order, forwards, on one thread (one read transaction; the
/// session is opened before the clock starts), from the smallest key of [`KEY_BYTES`] bytes,
/// which every key of the workloads is at least (an empty start would do, but LMDB refuses an
/// empty key). Every entry's key and value lengths are summed. Returns what was read and the
/// wall time.
pub fn full_scan(store: &dyn Store) -> (Scanned, Duration) {
    let mut session = store.session();
    let started = Instant::now();
    let scanned = session.scan(&[0; KEY_BYTES], usize::MAX, true);
    (std::hint::black_box(scanned), started.elapsed())
}
