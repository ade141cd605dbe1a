//! The stores compared: [`StoreKind`], the [`Store`] and [`Session`] traits every adapter
//! implements, and [`open_store`]; one file per store holds its adapter.
//!
//! # The stores
//! Every store runs the same operations with the same durability: a write returns only once it
//! survives power loss (one durable transaction per batch or per single-key commit).
//! - `mtrdb`: [`Durability::Immediate`], default options (4 KiB pages, 128 MiB redo log,
//!   background checkpoints).
//! - `redb`: one write transaction per batch, `Durability::Immediate` (its default).
//! - `lmdb` (through `heed`): one write transaction per batch, default flags (synced commits).
//! - `fjall` (an LSM tree): one write batch per batch, `PersistMode::SyncData` on commit.
//! - `canopydb` (a copy-on-write B+tree with a WAL): one write transaction per batch, the WAL on
//!   and every commit synced (`use_wal`, `default_commit_sync`); a clean close checkpoints.
//! - `sqlite-full`: SQLite (bundled) in WAL mode with `synchronous=FULL`: the WAL is synced at
//!   each commit; table `kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID` (a clustered B-tree).
//! - `sqlite-normal`: the same with `synchronous=NORMAL`, a second row for reference: its commits
//!   are *not* durable (the WAL is synced only at checkpoints).
//!
//! Writers share one connection per SQLite database behind a mutex (SQLite admits one writer at
//! a time; a mutex avoids its busy-wait sleeps); every reading thread opens its own connection.
//! A read is one read transaction per operation for every store (mtrdb has no read transactions:
//! each `get` and `range` is its own snapshot).

mod canopydb;
mod fjall;
mod lmdb;
mod mtrdb;
mod redb;
mod sqlite;

use std::path::Path;

use ::mtrdb::{Db, Durability, Options};

pub use self::canopydb::CanopydbStore;
pub use self::fjall::FjallStore;
pub use self::lmdb::LmdbStore;
pub use self::mtrdb::MtrdbStore;
pub use self::redb::RedbStore;
pub use self::sqlite::SqliteStore;
use super::Entry;

/// The stores compared.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// This crate.
    Mtrdb,
    /// redb: copy-on-write B-trees.
    Redb,
    /// LMDB through heed: copy-on-write B+tree in a mapping.
    Lmdb,
    /// fjall: an LSM tree.
    Fjall,
    /// canopydb: a copy-on-write B+tree with a WAL.
    Canopydb,
    /// SQLite, WAL, `synchronous=FULL`.
    SqliteFull,
    /// SQLite, WAL, `synchronous=NORMAL` (commits not durable).
    SqliteNormal,
}

impl StoreKind {
    /// Every store, mtrdb first.
    pub const ALL: [StoreKind; 7] = [
        StoreKind::Mtrdb,
        StoreKind::Redb,
        StoreKind::Lmdb,
        StoreKind::Fjall,
        StoreKind::Canopydb,
        StoreKind::SqliteFull,
        StoreKind::SqliteNormal,
    ];

    /// Short name, as used on command lines and in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Mtrdb => "mtrdb",
            StoreKind::Redb => "redb",
            StoreKind::Lmdb => "lmdb",
            StoreKind::Fjall => "fjall",
            StoreKind::Canopydb => "canopydb",
            StoreKind::SqliteFull => "sqlite-full",
            StoreKind::SqliteNormal => "sqlite-normal",
        }
    }

    /// The store named `name`.
    pub fn from_name(name: &str) -> Option<StoreKind> {
        StoreKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Whether every commit is durable when it returns.
    pub fn durable_commits(self) -> bool {
        self != StoreKind::SqliteNormal
    }
}

/// The stores selected by the environment variable `MTRDB_BENCH_STORES` (comma-separated names),
/// or all of them.
pub fn stores_from_env() -> Vec<StoreKind> {
    match std::env::var("MTRDB_BENCH_STORES") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|name| {
                StoreKind::from_name(name.trim())
                    .unwrap_or_else(|| panic!("unknown store {name:?} in MTRDB_BENCH_STORES"))
            })
            .collect(),
        _ => StoreKind::ALL.to_vec(),
    }
}

/// A store under benchmark. `Sync`: threads share it.
pub trait Store: Send + Sync {
    /// Which store.
    fn kind(&self) -> StoreKind;
    /// Writes `entries` in one atomic transaction, durable when it returns.
    fn write_batch(&self, entries: &[Entry]);
    /// A per-thread handle for single commits and reads; create it on the thread that uses it.
    fn session(&self) -> Box<dyn Session + '_>;
    /// Waits until background work that could change the files (flushes, compactions) is done.
    fn quiesce(&self) {}
    /// mtrdb's own handle, for its counters.
    fn mtrdb(&self) -> Option<&Db> {
        None
    }
    /// A clean close: everything synced, files complete.
    fn close(self: Box<Self>);
}

/// Operations of one thread.
pub trait Session {
    /// Inserts one key in its own durable transaction.
    fn insert_durable(&mut self, key: &[u8], value: &[u8]);
    /// The value length of `key`, if present (the value is read, not only found).
    fn get(&mut self, key: &[u8]) -> Option<usize>;
    /// Reads up to `count` entries from `start` forwards (keys `>= start`) or backwards
    /// (keys `<= start`), in one read transaction; returns what it read. `usize::MAX` forwards
    /// from the smallest key reads every entry in key order.
    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> Scanned;
}

/// What a scan read: entries, and the bytes of their keys and values (summed from every entry,
/// so that no store can skip reading one).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Entries read.
    pub entries: u64,
    /// Key and value bytes of those entries.
    pub bytes: u64,
}

impl Scanned {
    /// Counts one entry of `bytes` key and value bytes.
    pub fn add_entry(&mut self, bytes: usize) {
        self.entries += 1;
        self.bytes += bytes as u64;
    }
}

/// The entries' key + value lengths, one item per entry.
impl FromIterator<usize> for Scanned {
    fn from_iter<I: IntoIterator<Item = usize>>(lengths: I) -> Scanned {
        let mut scanned = Scanned::default();
        lengths.into_iter().for_each(|bytes| scanned.add_entry(bytes));
        scanned
    }
}

/// Where a store keeps its files inside its directory.
pub fn open_store(kind: StoreKind, dir: &Path) -> Box<dyn Store> {
    std::fs::create_dir_all(dir).expect("create the store directory");
    match kind {
        StoreKind::Mtrdb => Box::new(MtrdbStore::open(dir, mtrdb_options())),
        StoreKind::Redb => Box::new(RedbStore::open(dir)),
        StoreKind::Lmdb => Box::new(LmdbStore::open(dir)),
        StoreKind::Fjall => Box::new(FjallStore::open(dir)),
        StoreKind::Canopydb => Box::new(CanopydbStore::open(dir)),
        StoreKind::SqliteFull => Box::new(SqliteStore::open(dir, kind, "FULL")),
        StoreKind::SqliteNormal => Box::new(SqliteStore::open(dir, kind, "NORMAL")),
    }
}

/// The options every mtrdb workload uses: the defaults, stated; `MTRDB_BENCH_LOG_CAPACITY`
/// (bytes) sets a larger redo log, which trades recovery time for fewer checkpoints and so
/// fewer page writes (as `innodb_log_file_size` does).
pub fn mtrdb_options() -> Options {
    let options = Options::default().durability(Durability::Immediate);
    match std::env::var("MTRDB_BENCH_LOG_CAPACITY").ok().and_then(|bytes| bytes.parse().ok()) {
        Some(bytes) => options.log_capacity(bytes),
        None => options,
    }
}
