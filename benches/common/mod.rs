//! The workloads of the benchmarks, one implementation per store, shared by the criterion
//! benches (`benches/*.rs`, `mod common;`) and the table tool (`examples/bench_table.rs`,
//! included with `#[path]`).
//!
//! # The stores
//! Every store runs the same operations with the same durability: a write returns only once it
//! survives power loss (one durable transaction per batch or per single-key commit).
//! - `mtrdb`: [`Durability::Immediate`], default options (4 KiB pages, 128 MiB redo log,
//!   background checkpoints).
//! - `redb`: one write transaction per batch, `Durability::Immediate` (its default).
//! - `lmdb` (through `heed`): one write transaction per batch, default flags (synced commits).
//! - `fjall` (an LSM tree): one write batch per batch, `PersistMode::SyncData` on commit.
//! - `sqlite-full`: SQLite (bundled) in WAL mode with `synchronous=FULL`: the WAL is synced at
//!   each commit; table `kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID` (a clustered B-tree).
//! - `sqlite-normal`: the same with `synchronous=NORMAL`, a second row for reference: its commits
//!   are *not* durable (the WAL is synced only at checkpoints).
//!
//! Writers share one connection per SQLite database behind a mutex (SQLite admits one writer at
//! a time; a mutex avoids its busy-wait sleeps); every reading thread opens its own connection.
//! A read is one read transaction per operation for every store (mtrdb has no read transactions:
//! each `get` and `range` is its own snapshot).
//!
//! # The data
//! Keys are 16 bytes, values 100 bytes of pseudo-random (incompressible) bytes. Sequential keys
//! ascend with their index (the first 8 bytes are the index, big-endian); random keys are the
//! sequential key of a bijective mix of the index, so they never repeat.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::Bound;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use mtrdb::{Db, Durability, Options, RecoveryReport, WriteBatch};

/// Key length of every workload.
pub const KEY_BYTES: usize = 16;
/// Value length of every workload.
pub const VALUE_BYTES: usize = 100;
/// User bytes of one entry.
pub const ENTRY_BYTES: u64 = (KEY_BYTES + VALUE_BYTES) as u64;
/// Keys per durable batch in the batch workloads.
pub const BATCH_KEYS: u64 = 1_000;
/// Keys per transaction in a bulk load.
pub const BULK_TXN_KEYS: u64 = 100_000;
/// Keys returned by one range scan.
pub const SCAN_KEYS: usize = 10;

/// One key-value pair of a workload.
#[derive(Clone)]
pub struct Entry {
    /// The key.
    pub key: [u8; KEY_BYTES],
    /// The value.
    pub value: [u8; VALUE_BYTES],
}

/// The order in which a workload inserts keys.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KeyOrder {
    /// Ascending: every split is at the right edge of the tree.
    Sequential,
    /// Uniformly random: splits all over the tree.
    Random,
}

impl KeyOrder {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            KeyOrder::Sequential => "sequential",
            KeyOrder::Random => "random",
        }
    }
}

/// A bijective 64-bit mix (the splitmix64 finalizer): distinct inputs give distinct outputs.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Writes `x` as 8 big-endian bytes (so byte order is numeric order), by hand: the workspace
/// denies the `to_be_bytes` family.
fn put_u64_big_endian(out: &mut [u8], x: u64) {
    for (index, byte) in out.iter_mut().take(8).enumerate() {
        *byte = (x >> (56 - 8 * index)) as u8;
    }
}

/// The `index`-th key in ascending order.
pub fn sequential_key(index: u64) -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    put_u64_big_endian(&mut key[..8], index);
    put_u64_big_endian(&mut key[8..], mix(index));
    key
}

const RANDOM_SALT: u64 = 0x5eed_0f6b_7ee5;

/// The `index`-th key of the random order: distinct for distinct indexes.
pub fn random_key(index: u64) -> [u8; KEY_BYTES] {
    sequential_key(mix(index ^ RANDOM_SALT))
}

/// The key of `index` in `order`.
pub fn key(order: KeyOrder, index: u64) -> [u8; KEY_BYTES] {
    match order {
        KeyOrder::Sequential => sequential_key(index),
        KeyOrder::Random => random_key(index),
    }
}

/// A pseudo-random, incompressible value for `index`.
pub fn value(index: u64) -> [u8; VALUE_BYTES] {
    let mut value = [0u8; VALUE_BYTES];
    for (word_index, chunk) in value.chunks_mut(8).enumerate() {
        let word = mix(index.wrapping_mul(31).wrapping_add(word_index as u64)).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    value
}

/// Entries `start .. start + count` of `order`.
pub fn entries(order: KeyOrder, start: u64, count: u64) -> Vec<Entry> {
    (start..start + count).map(|index| Entry { key: key(order, index), value: value(index) }).collect()
}

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
    /// SQLite, WAL, `synchronous=FULL`.
    SqliteFull,
    /// SQLite, WAL, `synchronous=NORMAL` (commits not durable).
    SqliteNormal,
}

impl StoreKind {
    /// Every store, mtrdb first.
    pub const ALL: [StoreKind; 6] = [
        StoreKind::Mtrdb,
        StoreKind::Redb,
        StoreKind::Lmdb,
        StoreKind::Fjall,
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
    /// (keys `<= start`); returns how many it read.
    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> usize;
}

/// Where a store keeps its files inside its directory.
pub fn open_store(kind: StoreKind, dir: &Path) -> Box<dyn Store> {
    std::fs::create_dir_all(dir).expect("create the store directory");
    match kind {
        StoreKind::Mtrdb => Box::new(MtrdbStore::open(dir, mtrdb_options())),
        StoreKind::Redb => Box::new(RedbStore::open(dir)),
        StoreKind::Lmdb => Box::new(LmdbStore::open(dir)),
        StoreKind::Fjall => Box::new(FjallStore::open(dir)),
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

// ---------------------------------------------------------------------------------------------
// mtrdb

/// mtrdb.
pub struct MtrdbStore {
    db: Db,
}

impl MtrdbStore {
    /// Opens (creating or recovering) an mtrdb database in `dir`.
    pub fn open(dir: &Path, options: Options) -> MtrdbStore {
        MtrdbStore { db: Db::open_with(dir, options).expect("open mtrdb") }
    }
}

impl Store for MtrdbStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Mtrdb
    }

    fn write_batch(&self, entries: &[Entry]) {
        let mut batch = WriteBatch::new();
        for entry in entries {
            batch.insert(entry.key, entry.value);
        }
        self.db.write(batch).expect("mtrdb write");
    }

    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(MtrdbSession { db: &self.db })
    }

    fn mtrdb(&self) -> Option<&Db> {
        Some(&self.db)
    }

    fn close(self: Box<Self>) {
        self.db.close().expect("mtrdb close");
    }
}

struct MtrdbSession<'a> {
    db: &'a Db,
}

impl Session for MtrdbSession<'_> {
    fn insert_durable(&mut self, key: &[u8], value: &[u8]) {
        self.db.insert(key, value).expect("mtrdb insert");
    }

    fn get(&mut self, key: &[u8]) -> Option<usize> {
        self.db.get(key).expect("mtrdb get").map(|value| value.len())
    }

    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> usize {
        let read = |entry: mtrdb::Result<(mtrdb::Bytes, mtrdb::Bytes)>| {
            let (key, value) = entry.expect("mtrdb scan");
            std::hint::black_box(key.len() + value.len())
        };
        if forward {
            self.db.range::<&[u8], _>(start..).take(count).map(read).count()
        } else {
            self.db.range::<&[u8], _>(..=start).rev().take(count).map(read).count()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// redb

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("bench");

/// redb.
pub struct RedbStore {
    db: redb::Database,
}

impl RedbStore {
    fn open(dir: &Path) -> RedbStore {
        let db = redb::Database::create(dir.join("data.redb")).expect("open redb");
        let txn = db.begin_write().expect("redb begin_write");
        txn.open_table(REDB_TABLE).expect("redb create table");
        txn.commit().expect("redb commit");
        RedbStore { db }
    }
}

impl Store for RedbStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Redb
    }

    fn write_batch(&self, entries: &[Entry]) {
        let txn = self.db.begin_write().expect("redb begin_write");
        {
            let mut table = txn.open_table(REDB_TABLE).expect("redb open_table");
            for entry in entries {
                table.insert(&entry.key[..], &entry.value[..]).expect("redb insert");
            }
        }
        txn.commit().expect("redb commit");
    }

    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(RedbSession { db: &self.db })
    }

    fn close(self: Box<Self>) {
        drop(self.db);
    }
}

/// One entry of a redb range.
type RedbEntry<'a> = Result<(redb::AccessGuard<'a, &'a [u8]>, redb::AccessGuard<'a, &'a [u8]>), redb::StorageError>;

struct RedbSession<'a> {
    db: &'a redb::Database,
}

impl Session for RedbSession<'_> {
    fn insert_durable(&mut self, key: &[u8], value: &[u8]) {
        let txn = self.db.begin_write().expect("redb begin_write");
        {
            let mut table = txn.open_table(REDB_TABLE).expect("redb open_table");
            table.insert(key, value).expect("redb insert");
        }
        txn.commit().expect("redb commit");
    }

    fn get(&mut self, key: &[u8]) -> Option<usize> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read().expect("redb begin_read");
        let table = txn.open_table(REDB_TABLE).expect("redb open_table");
        table.get(key).expect("redb get").map(|value| value.value().len())
    }

    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> usize {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read().expect("redb begin_read");
        let table = txn.open_table(REDB_TABLE).expect("redb open_table");
        let read = |entry: RedbEntry<'_>| {
            let (key, value) = entry.expect("redb scan");
            std::hint::black_box(key.value().len() + value.value().len())
        };
        if forward {
            table.range::<&[u8]>(start..).expect("redb range").take(count).map(read).count()
        } else {
            table.range::<&[u8]>(..=start).expect("redb range").rev().take(count).map(read).count()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// LMDB (heed)

type LmdbDatabase = heed::Database<heed::types::Bytes, heed::types::Bytes>;

/// LMDB through heed.
pub struct LmdbStore {
    env: heed::Env,
    db: LmdbDatabase,
}

impl LmdbStore {
    fn open(dir: &Path) -> LmdbStore {
        // SAFETY: heed's contract for the memory map: the files are opened by this process only
        // (each benchmark store has its own directory) and nothing else modifies them while the
        // environment is open.
        let env = unsafe { heed::EnvOpenOptions::new().map_size(16 << 30).max_dbs(1).open(dir) }.expect("open lmdb");
        let mut txn = env.write_txn().expect("lmdb write_txn");
        let db: LmdbDatabase = env.create_database(&mut txn, None).expect("lmdb create_database");
        txn.commit().expect("lmdb commit");
        LmdbStore { env, db }
    }
}

impl Store for LmdbStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Lmdb
    }

    fn write_batch(&self, entries: &[Entry]) {
        let mut txn = self.env.write_txn().expect("lmdb write_txn");
        for entry in entries {
            self.db.put(&mut txn, &entry.key, &entry.value).expect("lmdb put");
        }
        txn.commit().expect("lmdb commit");
    }

    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(LmdbSession { store: self })
    }

    fn close(self: Box<Self>) {
        self.env.force_sync().expect("lmdb sync");
        let LmdbStore { env, db: _ } = *self;
        env.prepare_for_closing().wait();
    }
}

struct LmdbSession<'a> {
    store: &'a LmdbStore,
}

impl Session for LmdbSession<'_> {
    fn insert_durable(&mut self, key: &[u8], value: &[u8]) {
        let mut txn = self.store.env.write_txn().expect("lmdb write_txn");
        self.store.db.put(&mut txn, key, value).expect("lmdb put");
        txn.commit().expect("lmdb commit");
    }

    fn get(&mut self, key: &[u8]) -> Option<usize> {
        let txn = self.store.env.read_txn().expect("lmdb read_txn");
        self.store.db.get(&txn, key).expect("lmdb get").map(<[u8]>::len)
    }

    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> usize {
        let txn = self.store.env.read_txn().expect("lmdb read_txn");
        let read = |entry: heed::Result<(&[u8], &[u8])>| {
            let (key, value) = entry.expect("lmdb scan");
            std::hint::black_box(key.len() + value.len())
        };
        if forward {
            let range = (Bound::Included(start), Bound::Unbounded);
            self.store.db.range(&txn, &range).expect("lmdb range").take(count).map(read).count()
        } else {
            let range = (Bound::Unbounded, Bound::Included(start));
            self.store.db.rev_range(&txn, &range).expect("lmdb rev_range").take(count).map(read).count()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// fjall

/// fjall.
pub struct FjallStore {
    db: fjall::Database,
    keyspace: fjall::Keyspace,
}

impl FjallStore {
    fn open(dir: &Path) -> FjallStore {
        let db = fjall::Database::builder(dir).open().expect("open fjall");
        let keyspace = db.keyspace("bench", fjall::KeyspaceCreateOptions::default).expect("fjall keyspace");
        FjallStore { db, keyspace }
    }

    fn commit(&self, entries: impl Iterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>) {
        let mut batch = self.db.batch().durability(Some(fjall::PersistMode::SyncData));
        for (key, value) in entries {
            batch.insert(&self.keyspace, key.as_ref(), value.as_ref());
        }
        batch.commit().expect("fjall commit");
    }
}

impl Store for FjallStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Fjall
    }

    fn write_batch(&self, entries: &[Entry]) {
        self.commit(entries.iter().map(|entry| (entry.key, entry.value)));
    }

    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(FjallSession { store: self })
    }

    fn quiesce(&self) {
        while self.db.outstanding_flushes() > 0 || self.db.active_compactions() > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn close(self: Box<Self>) {
        self.quiesce();
        self.db.persist(fjall::PersistMode::SyncAll).expect("fjall persist");
    }
}

struct FjallSession<'a> {
    store: &'a FjallStore,
}

impl Session for FjallSession<'_> {
    fn insert_durable(&mut self, key: &[u8], value: &[u8]) {
        self.store.commit(std::iter::once((key, value)));
    }

    fn get(&mut self, key: &[u8]) -> Option<usize> {
        self.store.keyspace.get(key).expect("fjall get").map(|value| value.len())
    }

    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> usize {
        let read = |guard: fjall::Guard| {
            let (key, value) = guard.into_inner().expect("fjall scan");
            std::hint::black_box(key.len() + value.len())
        };
        if forward {
            self.store.keyspace.range::<&[u8], _>(start..).take(count).map(read).count()
        } else {
            self.store.keyspace.range::<&[u8], _>(..=start).rev().take(count).map(read).count()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite

/// SQLite in WAL mode.
pub struct SqliteStore {
    kind: StoreKind,
    path: PathBuf,
    synchronous: &'static str,
    writer: Mutex<rusqlite::Connection>,
}

const SQLITE_INSERT: &str = "INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)";

fn sqlite_connection(path: &Path, synchronous: &str) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(path).expect("open sqlite");
    connection.busy_timeout(Duration::from_secs(30)).expect("sqlite busy_timeout");
    connection
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};
             CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;"
        ))
        .expect("sqlite setup");
    connection
}

impl SqliteStore {
    fn open(dir: &Path, kind: StoreKind, synchronous: &'static str) -> SqliteStore {
        let path = dir.join("data.sqlite");
        let writer = Mutex::new(sqlite_connection(&path, synchronous));
        SqliteStore { kind, path, synchronous, writer }
    }
}

impl Store for SqliteStore {
    fn kind(&self) -> StoreKind {
        self.kind
    }

    fn write_batch(&self, entries: &[Entry]) {
        let mut connection = self.writer.lock().expect("sqlite writer lock");
        let txn = connection.transaction().expect("sqlite begin");
        {
            let mut insert = txn.prepare_cached(SQLITE_INSERT).expect("sqlite prepare");
            for entry in entries {
                insert.execute(rusqlite::params![&entry.key[..], &entry.value[..]]).expect("sqlite insert");
            }
        }
        txn.commit().expect("sqlite commit");
    }

    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(SqliteSession { store: self, reader: sqlite_connection(&self.path, self.synchronous) })
    }

    fn close(self: Box<Self>) {
        let connection = self.writer.into_inner().expect("sqlite writer lock");
        connection.close().map_err(|(_, error)| error).expect("sqlite close");
    }
}

struct SqliteSession<'a> {
    store: &'a SqliteStore,
    reader: rusqlite::Connection,
}

impl Session for SqliteSession<'_> {
    fn insert_durable(&mut self, key: &[u8], value: &[u8]) {
        let connection = self.store.writer.lock().expect("sqlite writer lock");
        let mut insert = connection.prepare_cached(SQLITE_INSERT).expect("sqlite prepare");
        insert.execute(rusqlite::params![key, value]).expect("sqlite insert");
    }

    fn get(&mut self, key: &[u8]) -> Option<usize> {
        use rusqlite::OptionalExtension;
        let mut select = self.reader.prepare_cached("SELECT v FROM kv WHERE k = ?1").expect("sqlite prepare");
        select.query_row([key], |row| Ok(row.get_ref(0)?.as_blob()?.len())).optional().expect("sqlite get")
    }

    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> usize {
        let sql = if forward {
            "SELECT k, v FROM kv WHERE k >= ?1 ORDER BY k ASC LIMIT ?2"
        } else {
            "SELECT k, v FROM kv WHERE k <= ?1 ORDER BY k DESC LIMIT ?2"
        };
        let mut select = self.reader.prepare_cached(sql).expect("sqlite prepare");
        let mut rows = select.query(rusqlite::params![start, count as i64]).expect("sqlite scan");
        let mut read = 0;
        while let Some(row) = rows.next().expect("sqlite scan") {
            let key = row.get_ref(0).and_then(|v| Ok(v.as_blob()?.len())).expect("sqlite key");
            let value = row.get_ref(1).and_then(|v| Ok(v.as_blob()?.len())).expect("sqlite value");
            std::hint::black_box(key + value);
            read += 1;
        }
        read
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads

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

/// Durable single-key commits (a random 16-byte key, a 100-byte value each) from `threads`
/// threads. Returns commits and wall time.
pub fn durable_commits(store: &dyn Store, threads: usize, until: Until) -> (u64, Duration) {
    run_threads(store, threads, until, |session, _, _| {
        let index = NEXT_COMMIT_KEY.fetch_add(1, Ordering::Relaxed);
        session.insert_durable(&random_key(index), &value(index));
    })
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
        assert!(read >= 1, "{}: a scan from an existing key read nothing", store.kind().name());
    })
}

/// A plain file for the one-`fdatasync`-per-commit baseline: 64 MiB written through once, so
/// later writes overwrite allocated blocks (as a circular log does in its steady state).
pub struct FsyncBaseline {
    file: File,
    offset: u64,
}

const BASELINE_FILE_BYTES: u64 = 64 << 20;
/// Bytes one baseline commit writes: about the frame of a single-key insert.
const BASELINE_COMMIT_BYTES: usize = KEY_BYTES + VALUE_BYTES + 32;

impl FsyncBaseline {
    /// Creates the file in `dir`.
    pub fn create(dir: &Path) -> FsyncBaseline {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("baseline.dat"))
            .expect("create the baseline file");
        let chunk = vec![0u8; 1 << 20];
        for index in 0..BASELINE_FILE_BYTES / chunk.len() as u64 {
            file.write_all_at(&chunk, index * chunk.len() as u64).expect("fill the baseline file");
        }
        file.sync_all().expect("sync the baseline file");
        FsyncBaseline { file, offset: 0 }
    }

    /// One commit: a `pwrite` of a commit-sized record and an `fdatasync`.
    pub fn commit(&mut self) {
        let record = [0x5au8; BASELINE_COMMIT_BYTES];
        self.file.write_all_at(&record, self.offset).expect("pwrite");
        self.file.sync_data().expect("fdatasync");
        self.offset =
            (self.offset + BASELINE_COMMIT_BYTES as u64) % (BASELINE_FILE_BYTES - BASELINE_COMMIT_BYTES as u64);
    }

    /// Commits until `until`; returns commits and wall time.
    pub fn run(&mut self, until: Until) -> (u64, Duration) {
        let started = Instant::now();
        let mut commits = 0;
        loop {
            let stop = match until {
                Until::Operations(total) => commits >= total,
                Until::Elapsed(duration) => started.elapsed() >= duration,
            };
            if stop {
                return (commits, started.elapsed());
            }
            self.commit();
            commits += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Crash and recovery

/// The redo log capacity of a recovery workload of `keys` random keys for mtrdb: room for all
/// of its redo (about 230 bytes per key, splits included) with a wide margin, so that no
/// checkpoint happens and everything is left to the redo pass.
pub fn recovery_log_capacity(keys: u64) -> u64 {
    (keys * 512 + (32 << 20)).next_multiple_of(1 << 20)
}

/// mtrdb's options for the recovery workload: no background checkpoints.
fn recovery_options(keys: u64) -> Options {
    mtrdb_options().background_checkpoints(false).log_capacity(recovery_log_capacity(keys))
}

/// A copy of a store's files taken while it was open, after its last durable commit: what a
/// crash (process or power) at that moment leaves.
pub struct CrashImage {
    /// The copied files.
    pub dir: PathBuf,
    /// User bytes committed since the store was created (all of it unreplayed for mtrdb).
    pub user_bytes: u64,
    /// Keys committed.
    pub keys: u64,
}

/// Writes `keys` random keys in durable batches of [`BATCH_KEYS`] into a new store in
/// `work_dir`, with mtrdb's background checkpoints disabled and a log that holds all of it, then
/// copies its files into `image_dir` while the store is still open. Returns the image; the store
/// is then closed (its own directory is left to the caller).
pub fn make_crash_image(kind: StoreKind, work_dir: &Path, image_dir: &Path, keys: u64) -> CrashImage {
    std::fs::create_dir_all(work_dir).expect("create the store directory");
    let store: Box<dyn Store> = match kind {
        StoreKind::Mtrdb => Box::new(MtrdbStore::open(work_dir, recovery_options(keys))),
        other => open_store(other, work_dir),
    };
    insert_keys(store.as_ref(), KeyOrder::Random, 0, keys, BATCH_KEYS);
    store.quiesce();
    if let Some(db) = store.mtrdb() {
        db.flush().expect("mtrdb flush");
        let stats = db.stats();
        assert_eq!(stats.checkpoints, 0, "the recovery workload must leave everything to the redo pass");
    }
    copy_dir_sparse(work_dir, image_dir);
    drop(store);
    CrashImage { dir: image_dir.to_path_buf(), user_bytes: keys * ENTRY_BYTES, keys }
}

/// What reopening a crash image cost.
pub struct Recovery {
    /// Wall time of the open (recovery included) and one read of the last key written.
    pub elapsed: Duration,
    /// mtrdb's own report of the redo pass.
    pub report: Option<RecoveryReport>,
}

/// Copies `image` into `scratch_dir` (not timed), opens it and reads one key (timed), closes it
/// (not timed) and removes the copy.
pub fn recover(kind: StoreKind, image: &CrashImage, scratch_dir: &Path) -> Recovery {
    if scratch_dir.exists() {
        std::fs::remove_dir_all(scratch_dir).expect("clear the scratch directory");
    }
    copy_dir_sparse(&image.dir, scratch_dir);
    let last_key = random_key(image.keys - 1);
    let started = Instant::now();
    let store = match kind {
        StoreKind::Mtrdb => Box::new(MtrdbStore::open(scratch_dir, recovery_options(image.keys))) as Box<dyn Store>,
        other => open_store(other, scratch_dir),
    };
    let found = store.session().get(&last_key);
    let elapsed = started.elapsed();
    assert_eq!(found, Some(VALUE_BYTES), "{}: the last committed key is missing after recovery", kind.name());
    let report = store.mtrdb().map(|db| db.recovery_report().clone());
    drop(store);
    std::fs::remove_dir_all(scratch_dir).expect("remove the scratch copy");
    Recovery { elapsed, report }
}

/// Copies the regular files under `from` into `to`, keeping holes (runs of zero MiBs are not
/// written). SQLite's `-shm` file (shared memory, rebuilt after a crash) is left out.
pub fn copy_dir_sparse(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("list the directory") {
        let entry = entry.expect("a directory entry");
        let source = entry.path();
        let target = to.join(entry.file_name());
        let file_type = entry.file_type().expect("file type");
        if file_type.is_dir() {
            copy_dir_sparse(&source, &target);
        } else if file_type.is_file() && !entry.file_name().to_string_lossy().ends_with("-shm") {
            copy_file_sparse(&source, &target);
        }
    }
}

fn copy_file_sparse(from: &Path, to: &Path) {
    let mut source = File::open(from).expect("open a file to copy");
    let length = source.metadata().expect("file metadata").len();
    let mut target = File::create(to).expect("create the copy");
    let mut chunk = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let read = source.read(&mut chunk).expect("read a file to copy");
        if read == 0 {
            break;
        }
        let data = &chunk[..read];
        if data.iter().any(|&byte| byte != 0) {
            target.write_all_at(data, offset).expect("write the copy");
        }
        offset += read as u64;
    }
    target.set_len(length).expect("size the copy");
    target.flush().expect("flush the copy");
}

// ---------------------------------------------------------------------------------------------
// Measuring the machine

/// Sectors of 512 bytes written to the block device that holds `path`, from `/proc/diskstats`
/// (field 10), found by the device number of `path` (or, failing that, by the mount that holds
/// it in `/proc/self/mountinfo`). `None` if the device cannot be found.
pub fn device_bytes_written(path: &Path) -> Option<u64> {
    let device = block_device_name(path)?;
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    stats.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(2) == Some(&device.as_str()))
            .then(|| fields.get(9)?.parse::<u64>().ok().map(|sectors| sectors * 512))?
    })
}

/// The name (`vda`, `nvme0n1p2`, ...) of the block device holding `path`.
pub fn block_device_name(path: &Path) -> Option<String> {
    let dev = std::fs::metadata(path).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    let by_number = stats.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let matches = fields.first()?.parse::<u64>().ok()? == major && fields.get(1)?.parse::<u64>().ok()? == minor;
        matches.then(|| fields.get(2).map(|name| (*name).to_string()))?
    });
    by_number.or_else(|| device_of_mount(path))
}

/// The device named as the source of the longest mount point that contains `path`.
fn device_of_mount(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(mount_point) = fields.get(4) else { continue };
        let Some(separator) = fields.iter().position(|field| *field == "-") else { continue };
        let Some(source) = fields.get(separator + 2) else { continue };
        if path.starts_with(mount_point) && best.as_ref().is_none_or(|(len, _)| mount_point.len() > *len) {
            let name = source.strip_prefix("/dev/").unwrap_or(source).to_string();
            best = Some((mount_point.len(), name));
        }
    }
    best.map(|(_, name)| name)
}

/// Bytes allocated on disk (`st_blocks` × 512) by the files under `dir`: sparse regions not
/// counted.
pub fn allocated_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("list the directory").flatten() {
        let Ok(metadata) = entry.metadata() else { continue };
        if metadata.is_dir() {
            total += allocated_bytes(&entry.path());
        } else {
            total += metadata.blocks() * 512;
        }
    }
    total
}

/// This process's peak resident memory (`VmHWM`), in bytes.
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Flushes the filesystem holding `dir` (`sync -f`), so the device counters include everything.
pub fn sync_filesystem(dir: &Path) {
    let status = std::process::Command::new("sync").arg("-f").arg(dir).status().expect("run sync -f");
    assert!(status.success(), "sync -f {} failed", dir.display());
}

/// A new directory for benchmark files on the real disk (under the target directory, not tmpfs).
pub fn bench_dir(root: &Path, prefix: &str) -> tempfile::TempDir {
    std::fs::create_dir_all(root).expect("create the benchmark root");
    tempfile::Builder::new().prefix(prefix).tempdir_in(root).expect("a directory under the benchmark root")
}

/// Other processes keeping every core busy until dropped (`sh` busy loops), as on a server
/// whose CPUs are taken by other work: the "both cores busy" rows and benches.
pub struct CpuHogs {
    children: Vec<std::process::Child>,
}

impl CpuHogs {
    pub fn on_every_core() -> CpuHogs {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let children = (0..cores)
            .map(|_| {
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("start a CPU-bound sh loop")
            })
            .collect();
        // Let the scheduler see them as running before anything is measured.
        std::thread::sleep(Duration::from_millis(100));
        CpuHogs { children }
    }
}

impl Drop for CpuHogs {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
