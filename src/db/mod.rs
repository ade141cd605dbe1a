//! The public API: opening (creating or recovering) a database, batches, reads, iterators,
//! checkpoints and shutdown.
//!
//! # Files in a database directory
//! - `data.mtrdb`: the pages ([`crate::page`]).
//! - `redo.log`: the redo log ([`mtr::layout`]).
//! - `dblwr`: the doublewrite file ([`crate::checkpoint`]).
//! - `LOCK`: held exclusively while the database is open.
//! - `backup.incomplete`: only in a backup's copy still being written ([`Db::backup_to`]); a
//!   directory holding it is never opened.
//!
//! # Concurrency
//! One batch is applied at a time (the writer mutex), under the tree's write lock; readers take
//! the read lock per lookup, so a reader sees a batch whole or not at all. Iterators read a
//! snapshot: the version committed when they were created, kept by the pager's copy-on-write
//! page images. They take the read lock only while reading one leaf, so a long scan never holds
//! writers off. A transaction holds the writer mutex from its start to its commit (one writer at
//! a time: transactions are serializable) and never the tree's lock longer than a lookup, so it
//! holds other writers off but never readers. Creating and dropping a keyspace are batches too.
//!
//! # Durability and visibility
//! With [`Durability::Immediate`] (the default) a write returns once its redo is durable; writers
//! committing at the same time share syncs (group commit). With [`Durability::Eventual`] a write
//! returns once its redo is in the log buffer; the buffer is synced within about a second, when it
//! holds [`EVENTUAL_FLUSH_BYTES`], and on `flush`, `checkpoint` and `close`. A crash may then lose
//! the latest writes, but recovery always yields a prefix of them: never a hole, never part of a
//! batch.
//!
//! A batch becomes visible to readers when it is applied, which can be just before its redo is
//! durable (as in InnoDB). A reader can therefore see a write whose call has not returned yet; if
//! the process crashes in that instant, the write may be lost. A write whose call returned under
//! `Immediate` is never lost.
//!
//! This module owns the orchestration (locks, durability, checkpoints, the background thread);
//! it must not know page layout (that is [`crate::btree`] and [`crate::page`]).
//!
//! # Where things are
//! - here: the `Db` handle and the state its threads share (`Inner`), the files' names and the
//!   limits, point reads, `check`, `checkpoint`, `flush`, `close`, and the failed state.
//! - `backup`: [`Db::backup_to`], a consistent copy of the open database.
//! - `options`: [`Options`], [`Durability`] and their defaults.
//! - `open`: opening: creating a database, or repairing and recovering one, and starting its
//!   threads.
//! - `batch`: [`WriteBatch`] and the write path, from checking a batch to its durable commit.
//! - `background`: checkpoints, the checkpoint and log-flush threads, and stopping them.
//! - `compact`: [`Db::compact`], moving pages down and cutting the data file's free end.
//! - `iter`: [`Iter`], range scans at a snapshot, and the registry of open snapshots.
//! - `keyspace`: [`Keyspace`] handles; creating, listing and dropping keyspaces, and freeing a
//!   dropped one's pages.
//! - `stats`: [`Stats`] and the counters behind them.
//! - `transaction`: [`Db::transaction`], [`Transaction`]: reads of its own writes, one writer at a
//!   time, committed as one batch.

mod background;
mod backup;
mod batch;
mod compact;
mod iter;
mod keyspace;
mod open;
mod options;
mod stats;
mod transaction;

pub use backup::{BackupProgress, BackupReport, BACKUP_INCOMPLETE_FILE, COPY_CHUNK_BYTES};
pub use batch::WriteBatch;
pub use compact::{CompactProgress, CompactReport, CUT_RELINKS_PER_BATCH, MAX_PASSES, MOVES_PER_BATCH};
pub use iter::Iter;
pub use keyspace::Keyspace;
pub use options::{
    Durability, Options, DEFAULT_LOG_CAPACITY, DEFAULT_PAGE_SIZE, DEFAULT_RECOVERY_MEMORY, EVENTUAL_FLUSH_BYTES,
    EVENTUAL_FLUSH_INTERVAL,
};
pub use stats::Stats;
pub use transaction::{Transaction, TransactionRange};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use mtr::{Log, MtrBuf, Storage, StorageFile};
use parking_lot::{Condvar, Mutex};

use crate::btree::{self, AtVersion, Latest};
use crate::catalog::{self, Keyspaces};
use crate::check::{self, CheckReport};
use crate::error::{Error, Result};
use crate::pager::Pager;
use crate::recovery::RecoveryReport;

use background::Background;
use batch::check_key;
use stats::Counters;

/// The data file's name.
pub const DATA_FILE: &str = "data.mtrdb";
/// The redo log's name.
pub const LOG_FILE: &str = "redo.log";
/// The doublewrite file's name.
pub const DOUBLEWRITE_FILE: &str = "dblwr";
/// The largest value: 64 MiB.
pub const MAX_VALUE_BYTES: usize = 64 << 20;

struct Tree {
    pager: Pager,
    /// Batches committed since open: the snapshot version.
    version: u64,
    /// The live keyspaces (changed only when a batch that creates or drops one commits).
    keyspaces: Keyspaces,
}

struct Inner {
    /// See [`Inner::identity`].
    identity: u64,
    location: String,
    storage: Arc<dyn Storage>,
    options: Options,
    page_size: usize,
    log: Log,
    doublewrite: Arc<dyn StorageFile>,
    tree: TreeLock,
    writer: Mutex<MtrBuf>,
    checkpoint_lock: Mutex<()>,
    /// One compaction at a time.
    compaction: Mutex<()>,
    /// Where the last compaction batch's redo ends: the data file is cut only by a checkpoint
    /// at or after it (see `compact`).
    compaction_redo_end: std::sync::atomic::AtomicU64,
    /// A compaction lowered `page_count`; the data file is longer than that until cut.
    cut_pending: std::sync::atomic::AtomicBool,
    /// An `Eventual` write was made (always so on an `Eventual` database): the log flusher has
    /// work. Until then it leaves the log alone, so that an `Immediate` database's I/O stays
    /// exactly its writers' (its crash tests number every operation).
    eventual_writes: std::sync::atomic::AtomicBool,
    snapshots: Mutex<BTreeMap<u64, usize>>,
    failure: Mutex<Option<String>>,
    counters: Counters,
    recovery: RecoveryReport,
    background: Mutex<Background>,
    background_signal: Condvar,
    log_flush_signal: Condvar,
}

/// An open database. `Send + Sync`: share it between threads with `Arc<Db>`.
pub struct Db {
    inner: Arc<Inner>,
    background: Option<JoinHandle<()>>,
    /// Syncs buffered `Eventual` writes every [`EVENTUAL_FLUSH_INTERVAL`].
    log_flusher: Option<JoinHandle<()>>,
    closed: bool,
}

impl Db {
    /// The value of `key` in the default keyspace, if present.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let key = key.as_ref();
        check_key(key)?;
        let tree = self.inner.tree.read();
        btree::get(&Latest(&tree.pager), catalog::DEFAULT_ROOT, key, self.inner.page_size)
    }

    /// Verifies the whole structure (checksums, order, fences, links, levels, overflow chains,
    /// the free list, and that every page is accounted for exactly once), at a snapshot.
    pub fn check(&self) -> Result<CheckReport> {
        let (version, _) = self.inner.register_snapshot();
        let result = check::check_tree(self.inner.page_size, |page_id| {
            let tree = self.inner.tree.read();
            let page = AtVersion(&tree.pager, version);
            btree::PageSource::page(&page, page_id).map(|bytes| bytes.to_vec())
        });
        self.inner.release_snapshot(version);
        result
    }

    /// Writes every dirty page back and records a checkpoint, so recovery starts from here.
    /// Free pages at the end of the data file (after a drop or removals freed the last pages)
    /// are cut off first, and the file shrinks (unless an iterator is open: then at a later
    /// checkpoint); see [`Db::compact`] for moving pages in use out of the way.
    pub fn checkpoint(&self) -> Result<()> {
        self.inner.cut_free_end()?;
        self.inner.checkpoint()
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.inner.check_writable()?;
        self.inner.log.flush_all().map(|_| ()).map_err(|e| self.inner.fail(e.into()))
    }

    /// Closes cleanly: a final checkpoint, so the next open has nothing to recover.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    /// What recovery did when this handle opened the database.
    #[must_use]
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// The page size.
    #[must_use]
    pub fn page_size(&self) -> usize {
        self.inner.page_size
    }

    /// The redo log's capacity in bytes: a batch's keys and values must fit in it (with room to
    /// spare, [`Error::BatchTooLarge`] otherwise); a program that splits large work into batches
    /// sizes them from this.
    #[must_use]
    pub fn log_capacity(&self) -> u64 {
        self.inner.log.file().capacity()
    }

    /// Where the database lives.
    #[must_use]
    pub fn location(&self) -> &str {
        &self.inner.location
    }
}

// `Db` is shared between threads (`Arc<Db>`); keep it so.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Db>();
};

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl Inner {
    /// Tells this database's keyspace handles from another's: unique per open in this process
    /// (an address could be reused by a database opened after this one closed).
    fn identity(&self) -> u64 {
        self.identity
    }

    fn check_writable(&self) -> Result<()> {
        if let Some(cause) = self.failure.lock().clone() {
            return Err(Error::Poisoned { cause });
        }
        Ok(())
    }

    /// Enters the failed state (writes refused until reopened); returns the error.
    fn fail(&self, error: Error) -> Error {
        let mut failure = self.failure.lock();
        if failure.is_none() {
            *failure = Some(error.to_string());
        }
        error
    }
}

/// The tree's reader-writer lock. Point reads take it for every get: with one lock word, every
/// reader thread's increment and decrement move the same cache line between cores. A sharded
/// lock gives each reader thread a shard of its own (`crossbeam_utils::sync::ShardedLock`); a
/// writer, once per batch or checkpoint step, locks every shard. A panic while it is held cannot
/// leave the tree half changed in a way the next user would trust (batches are undone on error,
/// and a panicking writer never reaches its commit), so a poisoned lock is simply taken.
struct TreeLock(crossbeam_utils::sync::ShardedLock<Tree>);

impl TreeLock {
    fn new(tree: Tree) -> TreeLock {
        TreeLock(crossbeam_utils::sync::ShardedLock::new(tree))
    }

    fn read(&self) -> crossbeam_utils::sync::ShardedLockReadGuard<'_, Tree> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> crossbeam_utils::sync::ShardedLockWriteGuard<'_, Tree> {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
