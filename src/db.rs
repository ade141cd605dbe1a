//! The public API: opening (creating or recovering) a database, batches, reads, iterators,
//! checkpoints and shutdown.
//!
//! # Files in a database directory
//! - `data.mtrdb`: the pages ([`crate::page`]).
//! - `redo.log`: the redo log ([`mtr::layout`]).
//! - `dblwr`: the doublewrite file ([`crate::checkpoint`]).
//! - `LOCK`: held exclusively while the database is open.
//!
//! # Concurrency
//! One batch is applied at a time (the writer mutex), under the tree's write lock; readers take
//! the read lock per lookup, so a reader sees a batch whole or not at all. Iterators read a
//! snapshot: the version committed when they were created, kept by the pager's copy-on-write
//! page images. They take the read lock only while reading one leaf, so a long scan never holds
//! writers off.
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

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mtr::{DirStorage, Log, LogFile, Lsn, MtrBuf, OpenMode, Storage, StorageFile};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::btree::{self, AtVersion, BatchWriter, ChunkValue, Latest, WriteCounts};
use crate::check::{self, CheckReport};
use crate::checkpoint::{self, DoublewriteTag};
use crate::error::{Error, Result};
use crate::page::{self, MAX_KEY_BYTES};
use crate::pager::{Pager, SnapshotWindow};
use crate::recovery::{self, RecoveryReport};
use crate::replay::ReplayJournal;

/// The checkpoint number a new database's log reaches once creation is complete: the log starts
/// at 1, resuming it writes 2, and the checkpoint after the first pages are written writes 3.
const CREATED_DATABASE_CHECKPOINT: u64 = 3;

/// The data file's name.
pub const DATA_FILE: &str = "data.mtrdb";
/// The redo log's name.
pub const LOG_FILE: &str = "redo.log";
/// The doublewrite file's name.
pub const DOUBLEWRITE_FILE: &str = "dblwr";
/// The largest value: 64 MiB.
pub const MAX_VALUE_BYTES: usize = 64 << 20;
/// The default page size.
pub const DEFAULT_PAGE_SIZE: usize = 4096;
/// The default redo log capacity: 128 MiB (a batch's redo must fit in it).
pub const DEFAULT_LOG_CAPACITY: u64 = 128 << 20;
/// The default for [`Options::recovery_memory`]: 64 MiB of recovered page images.
pub const DEFAULT_RECOVERY_MEMORY: u64 = 64 << 20;
/// Under [`Durability::Eventual`], buffered redo is synced at least this often, by a thread of
/// its own.
pub const EVENTUAL_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Under [`Durability::Eventual`], buffered redo beyond this is synced at once.
pub const EVENTUAL_FLUSH_BYTES: u64 = 4 << 20;

/// When a write is durable.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// A write returns once its redo is durable (fsynced). Concurrent writers share syncs.
    #[default]
    Immediate,
    /// A write returns once its redo is buffered; a thread of the database's own syncs it within
    /// about a second ([`EVENTUAL_FLUSH_INTERVAL`]), with or without background checkpoints. A crash may
    /// lose the latest writes, but never leaves a hole or a partial batch.
    Eventual,
}

/// How to open a database.
#[derive(Clone, Debug)]
pub struct Options {
    page_size: Option<usize>,
    durability: Durability,
    log_capacity: u64,
    background_checkpoints: bool,
    recovery_memory_bytes: u64,
    replay_journal: Option<ReplayJournal>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            page_size: None,
            durability: Durability::Immediate,
            log_capacity: DEFAULT_LOG_CAPACITY,
            background_checkpoints: true,
            recovery_memory_bytes: DEFAULT_RECOVERY_MEMORY,
            replay_journal: None,
        }
    }
}

impl Options {
    /// Page size for a new database: a power of two from 4096 to 65536 (default 4096). An
    /// existing database keeps its own; asking for another is [`Error::PageSizeMismatch`].
    #[must_use]
    pub fn page_size(mut self, bytes: usize) -> Options {
        self.page_size = Some(bytes);
        self
    }

    /// When writes are durable (default [`Durability::Immediate`]).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Options {
        self.durability = durability;
        self
    }

    /// Redo log capacity for a new database, a multiple of 4096 of at least 256 KiB (default
    /// 128 MiB). It bounds recovery time and the size of one batch.
    #[must_use]
    pub fn log_capacity(mut self, bytes: u64) -> Options {
        self.log_capacity = bytes;
        self
    }

    /// Whether a background thread checkpoints as the log fills (default true). Without it,
    /// writers checkpoint themselves when the log runs short.
    #[must_use]
    pub fn background_checkpoints(mut self, enabled: bool) -> Options {
        self.background_checkpoints = enabled;
        self
    }

    /// The most memory recovery may hold in recovered page images (default 64 MiB, at least one
    /// page). Past it, recovery writes the pages it has recovered so far back to the data file
    /// (through the doublewrite file) and goes on, so opening a database after a crash needs at
    /// most this much for pages, plus the pages one mtr touches (a few hundred at most) and the
    /// log scanner's window of a few MiB, whatever the size of the tree or of the log.
    #[must_use]
    pub fn recovery_memory(mut self, bytes: u64) -> Options {
        self.recovery_memory_bytes = bytes;
        self
    }

    /// Replay consistency checking (a testing aid, see [`crate::replay`]): records every page
    /// image the forward path produces, and makes recovery compare its replay with them.
    #[must_use]
    pub fn replay_check(mut self, journal: ReplayJournal) -> Options {
        self.replay_journal = Some(journal);
        self
    }

    fn validate(&self) -> Result<()> {
        if let Some(size) = self.page_size {
            if !size.is_power_of_two() || !(page::MIN_PAGE_SIZE..=page::MAX_PAGE_SIZE).contains(&size) {
                return Err(Error::InvalidOption(format!("page size {size} is not a power of two from 4096 to 65536")));
            }
        }
        if self.log_capacity < 256 * 1024
            || self.log_capacity > mtr::layout::MAX_CAPACITY_BYTES
            || !self.log_capacity.is_multiple_of(4096)
        {
            return Err(Error::InvalidOption(format!(
                "log capacity {} is not a multiple of 4096 from 256 KiB to {} bytes",
                self.log_capacity,
                mtr::layout::MAX_CAPACITY_BYTES
            )));
        }
        Ok(())
    }
}

enum BatchOp {
    Insert(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
}

/// Inserts and removes applied together: all of them or none, also across a crash.
#[derive(Default)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Inserts or replaces `key`.
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut WriteBatch {
        self.ops.push(BatchOp::Insert(key.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Removes `key` (nothing if it is absent).
    pub fn remove(&mut self, key: impl AsRef<[u8]>) -> &mut WriteBatch {
        self.ops.push(BatchOp::Remove(key.as_ref().to_vec()));
        self
    }

    /// Operations in the batch.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Counters since the database was opened.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Batches committed (single inserts and removes count as batches).
    pub batches: u64,
    /// Mtrs appended.
    pub mtrs: u64,
    /// Redo bytes appended (approximate frame bytes).
    pub redo_bytes: u64,
    /// Leaf splits.
    pub leaf_splits: u64,
    /// Branch splits (excluding root splits).
    pub branch_splits: u64,
    /// Root splits: the tree grew a level.
    pub root_splits: u64,
    /// Node merges.
    pub merges: u64,
    /// Root collapses: the tree lost a level.
    pub root_collapses: u64,
    /// Overflow pages written.
    pub overflow_pages_written: u64,
    /// Overflow pages freed.
    pub overflow_pages_freed: u64,
    /// Checkpoints completed.
    pub checkpoints: u64,
    /// Pages written back to the data file.
    pub pages_written: u64,
    /// Of those, pages first written to the doublewrite file (the others redo alone can rebuild).
    pub pages_doublewritten: u64,
    /// Pages currently dirty in memory.
    pub dirty_pages: u64,
    /// Page images kept for open snapshots.
    pub snapshot_images: u64,
    /// The redo log's own counters.
    pub log: mtr::LogStats,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    mtrs: AtomicU64,
    redo_bytes: AtomicU64,
    leaf_splits: AtomicU64,
    branch_splits: AtomicU64,
    root_splits: AtomicU64,
    merges: AtomicU64,
    root_collapses: AtomicU64,
    overflow_pages_written: AtomicU64,
    overflow_pages_freed: AtomicU64,
    checkpoints: AtomicU64,
    pages_written: AtomicU64,
    pages_doublewritten: AtomicU64,
}

impl Counters {
    fn add(&self, counts: &WriteCounts) {
        let pairs = [
            (&self.mtrs, counts.mtrs),
            (&self.redo_bytes, counts.redo_bytes),
            (&self.leaf_splits, counts.leaf_splits),
            (&self.branch_splits, counts.branch_splits),
            (&self.root_splits, counts.root_splits),
            (&self.merges, counts.merges),
            (&self.root_collapses, counts.root_collapses),
            (&self.overflow_pages_written, counts.overflow_pages_written),
            (&self.overflow_pages_freed, counts.overflow_pages_freed),
        ];
        for (counter, value) in pairs {
            counter.fetch_add(value, Ordering::Relaxed);
        }
    }
}

struct Tree {
    pager: Pager,
    /// Batches committed since open: the snapshot version.
    version: u64,
}

#[derive(Default)]
struct Background {
    stop: bool,
    requested: bool,
}

struct Inner {
    location: String,
    storage: Arc<dyn Storage>,
    options: Options,
    page_size: usize,
    log: Log,
    doublewrite: Arc<dyn StorageFile>,
    tree: RwLock<Tree>,
    writer: Mutex<MtrBuf>,
    checkpoint_lock: Mutex<()>,
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
    /// Under [`Durability::Eventual`]: syncs the log buffer every [`EVENTUAL_FLUSH_INTERVAL`].
    log_flusher: Option<JoinHandle<()>>,
    closed: bool,
}

fn io_at(action: &'static str, path: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { action, path, source }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::KeySize { len: key.len(), max: MAX_KEY_BYTES });
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge { len: value.len(), max: MAX_VALUE_BYTES });
    }
    Ok(())
}

fn new_log_id() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.write_u32(std::process::id());
    hasher.finish() | 1
}

impl Db {
    /// Opens the database in `dir`, creating the directory and the database if missing, and
    /// recovering it if it was not closed cleanly.
    pub fn open(dir: impl AsRef<Path>) -> Result<Db> {
        Db::open_with(dir, Options::default())
    }

    /// [`Db::open`] with options.
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Db> {
        options.validate()?;
        let dir = dir.as_ref();
        let storage = DirStorage::open(dir, true).map_err(|source| {
            if source.kind() == std::io::ErrorKind::WouldBlock {
                Error::Locked { dir: dir.to_path_buf() }
            } else {
                Error::Io { action: "opening the database directory", path: dir.display().to_string(), source }
            }
        })?;
        if !storage.exists(DATA_FILE).map_err(io_at("looking for the data file", dir.display().to_string()))? {
            refuse_foreign_directory(dir)?;
        }
        Db::open_storage(Arc::new(storage), dir.display().to_string(), options)
    }

    /// Opens a database on any [`Storage`] (for example a fault-injecting one in tests).
    pub fn open_storage(storage: Arc<dyn Storage>, location: String, options: Options) -> Result<Db> {
        options.validate()?;
        let started = Instant::now();
        let describe = |name: &str| storage.describe(name);
        let data_exists = storage.exists(DATA_FILE).map_err(io_at("looking for the data file", describe(DATA_FILE)))?;
        let data_is_empty = !data_exists
            || storage
                .open_file(DATA_FILE, OpenMode::Existing)
                .and_then(|file| file.len())
                .map_err(io_at("reading the data file's length", describe(DATA_FILE)))?
                == 0;
        if data_is_empty {
            // Either a new database, or one whose creation was cut short (its data file is
            // empty until the creating checkpoint, which `open` waits for). But a redo log that
            // records that checkpoint belongs to a database that was created: its data file was
            // lost afterwards, and starting over would destroy the log too.
            let created = storage
                .open_file(LOG_FILE, OpenMode::Existing)
                .ok()
                .and_then(|file| LogFile::open(file).ok())
                .and_then(|log| log.latest_checkpoint().ok())
                .is_some_and(|checkpoint| checkpoint.number >= CREATED_DATABASE_CHECKPOINT);
            if created {
                return Err(Error::NotADatabase {
                    path: describe(DATA_FILE),
                    detail: "the data file is missing or empty, but the redo log beside it belongs to a database that \
                             was created; refusing to start over (restore the data file from a backup)"
                        .into(),
                });
            }
        }
        let data = if data_exists {
            storage
                .open_file(DATA_FILE, OpenMode::Existing)
                .map_err(io_at("opening the data file", describe(DATA_FILE)))?
        } else {
            let data = storage
                .open_file(DATA_FILE, OpenMode::CreateNew)
                .map_err(io_at("creating the data file", describe(DATA_FILE)))?;
            storage.sync_dir().map_err(io_at("syncing the directory", location.clone()))?;
            data
        };
        let data_len = data.len().map_err(io_at("reading the data file's length", describe(DATA_FILE)))?;
        let doublewrite = match storage.open_file(DOUBLEWRITE_FILE, OpenMode::Existing) {
            Ok(file) => file,
            Err(_) => {
                let file = storage
                    .open_file(DOUBLEWRITE_FILE, OpenMode::CreateNew)
                    .map_err(io_at("creating the doublewrite file", describe(DOUBLEWRITE_FILE)))?;
                storage.sync_dir().map_err(io_at("syncing the directory", location.clone()))?;
                file
            }
        };
        if data_len == 0 {
            // A new database, or one whose creation was cut short before its first checkpoint
            // (which is written before `open` returns, so no user data can be lost here).
            return Db::create(storage, location, options, data, doublewrite);
        }
        // The meta page names the page size. If its first sector was torn while the database was
        // being created, the doublewrite file holds a copy of page 0 (written and synced first).
        let claimed = |file: &Arc<dyn StorageFile>| {
            let mut first_bytes = vec![0u8; page::HEADER_BYTES + 40];
            file.read_exact_at(&mut first_bytes, 0).ok()?;
            page::claimed_page_size(&first_bytes)
                .filter(|size| size.is_power_of_two() && (page::MIN_PAGE_SIZE..=page::MAX_PAGE_SIZE).contains(size))
        };
        let page_size =
            claimed(&data).or_else(|| checkpoint::doublewrite_page_size(&doublewrite)).ok_or_else(|| {
                Error::NotADatabase { path: describe(DATA_FILE), detail: "no mtrdb meta page at its start".into() }
            })?;
        if let Some(requested) = options.page_size {
            if requested != page_size {
                return Err(Error::PageSizeMismatch { existing: page_size, requested });
            }
        }
        let log_file = storage.open_file(LOG_FILE, OpenMode::Existing).map_err(|source| Error::NotADatabase {
            path: describe(LOG_FILE),
            detail: format!("the redo log cannot be opened ({source}); without it the data file cannot be recovered"),
        })?;
        let log_file = LogFile::open(log_file)?;
        // What recovery reads must be durable before pages built from it are written back.
        log_file.file().sync_data().map_err(io_at("syncing the redo log before recovery", describe(LOG_FILE)))?;
        let checkpoint = log_file.latest_checkpoint()?;
        let repaired = checkpoint::repair_torn_pages(
            &data,
            &describe(DATA_FILE),
            &doublewrite,
            &describe(DOUBLEWRITE_FILE),
            page_size,
            checkpoint,
            log_file.log_id(),
        )?;
        let mut pager = Pager::open(data, describe(DATA_FILE), page_size)?;
        let tag = DoublewriteTag { log_id: log_file.log_id(), base_checkpoint: checkpoint.number };
        let mut write_back = |pager: &mut Pager| write_back_all(pager, &*storage, &doublewrite, tag);
        let redo = recovery::Redo {
            log: &log_file,
            checkpoint,
            journal: options.replay_journal.as_ref(),
            memory_limit_bytes: options.recovery_memory_bytes,
        };
        let report = recovery::redo(&mut pager, redo, repaired.len() as u64, started, &mut write_back)?;
        {
            let meta = pager.read(page::META_PAGE_ID).map_err(|e| Error::NotADatabase {
                path: describe(DATA_FILE),
                detail: format!("its meta page is unusable: {e}"),
            })?;
            if page::header(&meta).kind != page::PageKind::Meta as u8 {
                return Err(Error::NotADatabase {
                    path: describe(DATA_FILE),
                    detail: "page 0 is not a meta page".into(),
                });
            }
            if page::meta_log_id(&meta) != log_file.log_id() {
                return Err(Error::NotADatabase {
                    path: describe(LOG_FILE),
                    detail: "the redo log belongs to another database".into(),
                });
            }
        }
        write_back_all(&mut pager, &*storage, &doublewrite, tag)?;
        let log = Log::resume(log_file, Lsn(report.recovered_end_lsn))?;
        let mut report = report;
        report.duration = started.elapsed();
        Db::start(storage, location, options, page_size, log, doublewrite, pager, report)
    }

    fn create(
        storage: Arc<dyn Storage>,
        location: String,
        options: Options,
        data: Arc<dyn StorageFile>,
        doublewrite: Arc<dyn StorageFile>,
    ) -> Result<Db> {
        let describe = |name: &str| storage.describe(name);
        let page_size = options.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        storage.remove_file(LOG_FILE).map_err(io_at("removing a half-created redo log", describe(LOG_FILE)))?;
        doublewrite.set_len(0).map_err(io_at("emptying the doublewrite file", describe(DOUBLEWRITE_FILE)))?;
        let log_file = storage
            .open_file(LOG_FILE, OpenMode::CreateNew)
            .map_err(io_at("creating the redo log", describe(LOG_FILE)))?;
        let log_id = new_log_id();
        let log_file = LogFile::create(log_file, options.log_capacity, log_id)?;
        storage.sync_dir().map_err(io_at("syncing the directory", location.clone()))?;
        let log = Log::resume(log_file, Lsn::ZERO)?;
        let mut pager = Pager::open(data, describe(DATA_FILE), page_size)?;
        let mut mtr = MtrBuf::new();
        let end = BatchWriter::bootstrap(&mut pager, &log, &mut mtr, log_id, options.replay_journal.as_ref())?;
        log.flush_up_to(end)?;
        let tag = DoublewriteTag { log_id, base_checkpoint: log.last_checkpoint().number };
        write_back_all(&mut pager, &*storage, &doublewrite, tag)?;
        log.checkpoint(end)?;
        Db::start(storage, location, options, page_size, log, doublewrite, pager, RecoveryReport::default())
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        storage: Arc<dyn Storage>,
        location: String,
        options: Options,
        page_size: usize,
        log: Log,
        doublewrite: Arc<dyn StorageFile>,
        pager: Pager,
        recovery: RecoveryReport,
    ) -> Result<Db> {
        let background_checkpoints = options.background_checkpoints;
        let inner = Arc::new(Inner {
            location,
            storage,
            options,
            page_size,
            log,
            doublewrite,
            tree: RwLock::new(Tree { pager, version: 0 }),
            writer: Mutex::new(MtrBuf::new()),
            checkpoint_lock: Mutex::new(()),
            snapshots: Mutex::new(BTreeMap::new()),
            failure: Mutex::new(None),
            counters: Counters::default(),
            recovery,
            background: Mutex::new(Background::default()),
            background_signal: Condvar::new(),
            log_flush_signal: Condvar::new(),
        });
        let eventual = inner.options.durability == Durability::Eventual;
        let mut db = Db { inner, background: None, log_flusher: None, closed: false };
        // A thread that cannot be started is an error, not a silent loss of the promise it
        // keeps (dropping `db` then stops whatever did start).
        let spawn = |name: &str, body: fn(&Inner), inner: &Arc<Inner>| {
            let inner = Arc::clone(inner);
            std::thread::Builder::new().name(name.into()).spawn(move || body(&inner)).map_err(|source| Error::Io {
                action: "starting a background thread",
                path: name.to_string(),
                source,
            })
        };
        if background_checkpoints {
            db.background = Some(spawn("mtrdb-checkpoint", Inner::background_loop, &db.inner)?);
        }
        if eventual {
            // Its own thread, so that neither `background_checkpoints(false)` nor a long
            // checkpoint holds off the promised sync.
            db.log_flusher = Some(spawn("mtrdb-log-flush", Inner::log_flush_loop, &db.inner)?);
        }
        Ok(db)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let key = key.as_ref();
        check_key(key)?;
        let tree = self.inner.tree.read();
        btree::get(&Latest(&tree.pager), key, self.inner.page_size)
    }

    /// Inserts or replaces `key` (atomic and, under `Immediate`, durable when it returns).
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.insert(key, value);
        self.inner.write(&batch.ops).map(|_| ())
    }

    /// Removes `key`; whether it was present.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let mut batch = WriteBatch::new();
        batch.remove(key);
        self.inner.write(&batch.ops)
    }

    /// Applies a batch atomically: all of it or nothing, also across a crash.
    ///
    /// **When it fails.** A refusal checked up front ([`Error::KeySize`],
    /// [`Error::ValueTooLarge`], [`Error::BatchTooLarge`]) applied nothing. Any other error means
    /// the outcome is unknown: the batch may or may not survive a crash, and readers of this
    /// handle may already see it (batches are visible to readers before their redo is durable,
    /// as in every group-commit engine). After a failed write or sync the handle refuses writes
    /// ([`Error::Poisoned`]) but still serves reads of what it holds in memory; close and reopen
    /// it to see exactly what is durable, which recovery then makes safe to build on.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.inner.write(&batch.ops).map(|_| ())
    }

    /// The entries with keys in `range`, ascending (or descending from the back), as of the
    /// moment of this call. A range whose start lies after its end is empty.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter<'_> {
        let own = |bound: Bound<&K>| match bound {
            Bound::Included(key) => Bound::Included(key.as_ref().to_vec()),
            Bound::Excluded(key) => Bound::Excluded(key.as_ref().to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        Iter::new(self, own(range.start_bound()), own(range.end_bound()))
    }

    /// Every entry, ascending.
    pub fn iter(&self) -> Iter<'_> {
        Iter::new(self, Bound::Unbounded, Bound::Unbounded)
    }

    /// Verifies the whole structure (checksums, order, fences, links, levels, overflow chains,
    /// the free list, and that every page is accounted for exactly once), at a snapshot.
    pub fn check(&self) -> Result<CheckReport> {
        let version = self.inner.register_snapshot();
        let result = check::check_tree(self.inner.page_size, |page_id| {
            let tree = self.inner.tree.read();
            let page = AtVersion(&tree.pager, version);
            btree::PageSource::page(&page, page_id).map(|bytes| bytes.to_vec())
        });
        self.inner.release_snapshot(version);
        result
    }

    /// Writes every dirty page back and records a checkpoint, so recovery starts from here.
    pub fn checkpoint(&self) -> Result<()> {
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

    fn shutdown(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        {
            let mut background = self.inner.background.lock();
            background.stop = true;
            self.inner.background_signal.notify_all();
            self.inner.log_flush_signal.notify_all();
        }
        for handle in [self.background.take(), self.log_flusher.take()].into_iter().flatten() {
            let _ = handle.join();
        }
        self.inner.checkpoint()
    }

    /// Counters since open.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (dirty_pages, snapshot_images) = {
            let tree = self.inner.tree.read();
            (tree.pager.dirty_count() as u64, tree.pager.history_pages() as u64)
        };
        Stats {
            batches: load(&c.batches),
            mtrs: load(&c.mtrs),
            redo_bytes: load(&c.redo_bytes),
            leaf_splits: load(&c.leaf_splits),
            branch_splits: load(&c.branch_splits),
            root_splits: load(&c.root_splits),
            merges: load(&c.merges),
            root_collapses: load(&c.root_collapses),
            overflow_pages_written: load(&c.overflow_pages_written),
            overflow_pages_freed: load(&c.overflow_pages_freed),
            checkpoints: load(&c.checkpoints),
            pages_written: load(&c.pages_written),
            pages_doublewritten: load(&c.pages_doublewritten),
            dirty_pages,
            snapshot_images,
            log: self.inner.log.stats(),
        }
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

/// Writes every dirty page back (through the doublewrite file) and marks them clean, while no
/// other thread can reach the pager (opening and creating).
fn write_back_all(
    pager: &mut Pager,
    storage: &dyn Storage,
    doublewrite: &Arc<dyn StorageFile>,
    tag: DoublewriteTag,
) -> Result<()> {
    let images = pager.dirty_images();
    if images.is_empty() {
        return Ok(());
    }
    checkpoint::write_pages(
        pager.data_file(),
        &storage.describe(DATA_FILE),
        doublewrite,
        &storage.describe(DOUBLEWRITE_FILE),
        pager.page_size(),
        &images,
        tag,
    )?;
    pager.mark_written(&images)
}

fn refuse_foreign_directory(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(io_at("listing the database directory", dir.display().to_string()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ![mtr::io::LOCK_FILE_NAME, DATA_FILE, LOG_FILE, DOUBLEWRITE_FILE].contains(&name.as_str()) {
            return Err(Error::ForeignDirectory { dir: PathBuf::from(dir), file: name });
        }
    }
    Ok(())
}

impl Inner {
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

    fn write(&self, ops: &[BatchOp]) -> Result<bool> {
        self.check_writable()?;
        let mut payload_bytes: u64 = 0;
        for op in ops {
            match op {
                BatchOp::Insert(key, value) => {
                    check_key(key)?;
                    check_value(value)?;
                    payload_bytes += (key.len() + value.len()) as u64;
                }
                BatchOp::Remove(key) => {
                    check_key(key)?;
                    payload_bytes += key.len() as u64;
                }
            }
        }
        if ops.is_empty() {
            return Ok(false);
        }
        let capacity = self.log.file().capacity();
        if payload_bytes + btree::ABORT_RESERVE_BYTES > capacity {
            // The keys and values alone are more than the log holds: no room-making can help.
            return Err(Error::BatchTooLarge { needed: payload_bytes + btree::ABORT_RESERVE_BYTES, capacity });
        }
        let (commit, removed) = {
            // The writer lock is held from the room check to the commit, so no other writer can
            // use the room this batch made.
            let mut mtr = self.writer.lock();
            self.make_log_room(payload_bytes + 64 * ops.len() as u64)?;
            let log_was_empty = self.log.free_bytes() == capacity;
            match self.apply_batch(&mut mtr, ops) {
                // The estimate was short (merges can log most of a page per remove): the batch
                // was abandoned whole. Checkpoint until the log is empty and try once more; only
                // a batch whose own redo exceeds the log fails then.
                Err(Error::BatchTooLarge { .. }) if !log_was_empty => {
                    self.checkpoint()?;
                    self.apply_batch(&mut mtr, ops)?
                }
                outcome => outcome?,
            }
        };
        if let Some(end) = commit {
            match self.options.durability {
                Durability::Immediate => self.log.flush_up_to(end).map_err(|e| self.fail(e.into()))?,
                Durability::Eventual => {
                    if self.log.unflushed_bytes() >= EVENTUAL_FLUSH_BYTES {
                        self.log.flush_up_to(end).map_err(|e| self.fail(e.into()))?;
                    }
                }
            }
        }
        if self.log.free_bytes() < self.log.file().capacity() / 2 {
            self.request_checkpoint();
        }
        Ok(removed)
    }

    /// Applies a batch under the tree's write lock (the caller holds the writer lock): commits it
    /// whole, or abandons it whole and returns the error. Returns the commit LSN (`None` if it
    /// changed nothing) and whether a remove found its key.
    fn apply_batch(&self, mtr: &mut MtrBuf, ops: &[BatchOp]) -> Result<(Option<Lsn>, bool)> {
        let mut tree = self.tree.write();
        let (oldest_snapshot, newest_snapshot) = {
            let snapshots = self.snapshots.lock();
            (snapshots.keys().next().copied(), snapshots.keys().next_back().copied())
        };
        tree.pager.trim_history(oldest_snapshot);
        let history = newest_snapshot.map(|newest_open| SnapshotWindow { version: tree.version, newest_open });
        let mut writer =
            BatchWriter::new(&mut tree.pager, &self.log, mtr, history, self.options.replay_journal.clone())?;
        let mut removed = false;
        let mut failed = None;
        for op in ops {
            let result = match op {
                BatchOp::Insert(key, value) => writer.insert(key, value),
                BatchOp::Remove(key) => writer.remove(key).map(|existed| removed |= existed),
            };
            if let Err(error) = result {
                failed = Some(error);
                break;
            }
        }
        let outcome = match failed {
            None => writer.commit(),
            Some(error) => Err(error),
        };
        let commit = match outcome {
            Ok(commit) => {
                self.counters.add(&writer.counts);
                commit
            }
            Err(error) => {
                if let Err(abort_error) = writer.abort() {
                    self.fail(abort_error);
                }
                return Err(error);
            }
        };
        if commit.is_some() {
            tree.version += 1;
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
        }
        Ok((commit, removed))
    }

    /// Makes sure about `estimate` bytes of redo fit, checkpointing if the log is short of room.
    fn make_log_room(&self, estimate: u64) -> Result<()> {
        let capacity = self.log.file().capacity();
        // Leave room for the batch (twice its payload covers splits) and a margin.
        let wanted = (estimate.saturating_mul(2) + capacity / 8).min(capacity - btree::ABORT_RESERVE_BYTES);
        for _ in 0..3 {
            if self.log.free_bytes() >= wanted {
                break;
            }
            self.checkpoint()?;
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<()> {
        let _one_at_a_time = self.checkpoint_lock.lock();
        self.check_writable()?;
        let _span = tracing::info_span!("checkpoint").entered();
        // Between batches (a batch holds the write lock from its first mtr to its commit), so
        // the images hold only committed changes and `lsn` covers all of them.
        let (images, lsn) = {
            let tree = self.tree.read();
            (tree.pager.dirty_images(), self.log.end_lsn())
        };
        // Checkpoints are serialised, so the last completed one cannot change under this one.
        let tag =
            DoublewriteTag { log_id: self.log.file().log_id(), base_checkpoint: self.log.last_checkpoint().number };
        if images.is_empty() && lsn == self.log.last_checkpoint().lsn {
            return Ok(());
        }
        self.log.flush_up_to(lsn).map_err(|e| self.fail(e.into()))?;
        let data_name = self.storage.describe(DATA_FILE);
        let data = { Arc::clone(self.tree.read().pager.data_file()) };
        let written = checkpoint::write_pages(
            &data,
            &data_name,
            &self.doublewrite,
            &self.storage.describe(DOUBLEWRITE_FILE),
            self.page_size,
            &images,
            tag,
        )
        .map_err(|e| self.fail(e))?;
        self.tree.write().pager.mark_written(&images).map_err(|e| self.fail(e))?;
        self.log.checkpoint(lsn).map_err(|e| self.fail(e.into()))?;
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.counters.pages_written.fetch_add(written.pages, Ordering::Relaxed);
        self.counters.pages_doublewritten.fetch_add(written.doublewritten, Ordering::Relaxed);
        tracing::info!(lsn = lsn.0, pages = written.pages, doublewrite_batches = written.batches, "checkpoint written");
        Ok(())
    }

    fn request_checkpoint(&self) {
        let mut background = self.background.lock();
        background.requested = true;
        self.background_signal.notify_all();
    }

    fn background_loop(&self) {
        loop {
            {
                let mut background = self.background.lock();
                if !background.stop && !background.requested {
                    self.background_signal.wait_for(&mut background, Duration::from_secs(1));
                }
                if background.stop {
                    return;
                }
                background.requested = false;
            }
            if self.failure.lock().is_some() {
                continue;
            }
            if self.log.free_bytes() < self.log.file().capacity() / 2 {
                let _ = self.checkpoint();
            }
        }
    }

    /// The log flusher under [`Durability::Eventual`]: every [`EVENTUAL_FLUSH_INTERVAL`], makes
    /// the buffered redo durable, whatever else is going on.
    fn log_flush_loop(&self) {
        loop {
            {
                let mut background = self.background.lock();
                if !background.stop {
                    self.log_flush_signal.wait_for(&mut background, EVENTUAL_FLUSH_INTERVAL);
                }
                if background.stop {
                    return;
                }
            }
            if self.failure.lock().is_some() || self.log.unflushed_bytes() == 0 {
                continue;
            }
            if let Err(error) = self.log.flush_all() {
                self.fail(error.into());
            }
        }
    }

    fn register_snapshot(&self) -> u64 {
        let tree = self.tree.read();
        let version = tree.version;
        *self.snapshots.lock().entry(version).or_insert(0) += 1;
        version
    }

    fn release_snapshot(&self, version: u64) {
        let mut snapshots = self.snapshots.lock();
        if let Some(count) = snapshots.get_mut(&version) {
            *count -= 1;
            if *count == 0 {
                snapshots.remove(&version);
            }
        }
    }
}

/// An iterator over a range of entries, at the snapshot taken when it was created. Yields
/// `Result<(key, value)>`; after an error it ends.
///
/// **Bounds.** It takes the tree's read lock only to copy a chunk of one leaf (at most
/// [`btree::SCAN_CHUNK_BYTES`] of keys and inline values beyond its first entry) or up to 64
/// pages of one large value, so a scan never holds writers off for long. Large (overflow) values
/// are read when yielded, never buffered ahead: it holds at most one chunk per end plus the value
/// it yields. While it is unfinished, its snapshot retains at most one page image per page
/// changed since it began; once it has returned `None`, it retains nothing.
pub struct Iter<'a> {
    db: &'a Db,
    version: Option<u64>,
    low: Bound<Vec<u8>>,
    high: Bound<Vec<u8>>,
    front: VecDeque<(Vec<u8>, ChunkValue)>,
    front_exhausted: bool,
    back: VecDeque<(Vec<u8>, ChunkValue)>,
    back_exhausted: bool,
    finished: bool,
    /// Entries the next fill of each end copies out: small at first (short scans are the common
    /// case), growing to whole leaves.
    front_limit: usize,
    back_limit: usize,
}

/// Overflow pages an iterator reads per hold of the tree's read lock.
const OVERFLOW_PAGES_PER_LOCK: usize = 64;

/// Entries the first fill of an iterator copies out.
const FIRST_FILL_ENTRIES: usize = 16;

fn range_is_empty(low: &Bound<Vec<u8>>, high: &Bound<Vec<u8>>) -> bool {
    match (low, high) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l), Bound::Excluded(h))
        | (Bound::Excluded(l), Bound::Included(h))
        | (Bound::Excluded(l), Bound::Excluded(h)) => l >= h,
        _ => false,
    }
}

impl<'a> Iter<'a> {
    fn new(db: &'a Db, low: Bound<Vec<u8>>, high: Bound<Vec<u8>>) -> Iter<'a> {
        let empty = range_is_empty(&low, &high);
        let version = (!empty).then(|| db.inner.register_snapshot());
        Iter {
            db,
            version,
            low,
            high,
            front: VecDeque::new(),
            front_exhausted: false,
            back: VecDeque::new(),
            back_exhausted: false,
            finished: empty,
            front_limit: FIRST_FILL_ENTRIES,
            back_limit: FIRST_FILL_ENTRIES,
        }
    }

    fn fill(&mut self, forward: bool) -> Result<()> {
        let Some(version) = self.version else { return Ok(()) };
        let tree = self.db.inner.tree.read();
        let source = AtVersion(&tree.pager, version);
        if forward {
            let chunk = btree::chunk_forward(&source, &self.low, &self.high, self.front_limit)?;
            self.front.extend(chunk.entries);
            self.front_exhausted = chunk.exhausted;
            self.front_limit = self.front_limit.saturating_mul(4);
        } else {
            let chunk = btree::chunk_backward(&source, &self.low, &self.high, self.back_limit)?;
            self.back.extend(chunk.entries);
            self.back_exhausted = chunk.exhausted;
            self.back_limit = self.back_limit.saturating_mul(4);
        }
        Ok(())
    }

    /// Ends the iteration and releases the snapshot at once: a finished iterator kept alive
    /// pins nothing.
    fn finish(&mut self) {
        self.finished = true;
        self.front.clear();
        self.back.clear();
        if let Some(version) = self.version.take() {
            self.db.inner.release_snapshot(version);
        }
    }

    fn step(&mut self, forward: bool) -> Option<Result<(Vec<u8>, Vec<u8>)>> {
        if self.finished {
            return None;
        }
        let (buffer_empty, exhausted) = if forward {
            (self.front.is_empty(), self.front_exhausted)
        } else {
            (self.back.is_empty(), self.back_exhausted)
        };
        if buffer_empty && !exhausted {
            if let Err(error) = self.fill(forward) {
                self.finish();
                return Some(Err(error));
            }
        }
        let next = if forward { self.front.pop_front() } else { self.back.pop_front() };
        let Some((key, value)) = next else {
            self.finish();
            return None;
        };
        // The other end may have moved past this entry already.
        if !btree_within(&key, &self.low, &self.high) {
            self.finish();
            return None;
        }
        let value = match value {
            ChunkValue::Loaded(value) => value,
            ChunkValue::Overflow { len, first_page } => match self.read_overflow(len, first_page) {
                Ok(value) => value,
                Err(error) => {
                    self.finish();
                    return Some(Err(error));
                }
            },
        };
        let bound = if forward { &mut self.low } else { &mut self.high };
        set_excluded(bound, &key);
        Some(Ok((key, value)))
    }

    /// Reads an overflow value at the iterator's snapshot, taking the tree's read lock for
    /// [`OVERFLOW_PAGES_PER_LOCK`] pages at a time, so that a 64 MiB value never holds writers
    /// off for its whole length. The snapshot keeps the chain's pages as they were (a page
    /// freed or reused since keeps its old image for it).
    fn read_overflow(&self, len: u32, first_page: page::PageId) -> Result<Vec<u8>> {
        let Some(version) = self.version else { return Err(Error::corrupt(first_page, "no snapshot")) };
        let mut out = btree::overflow_buffer(len, first_page)?;
        let max_pages = (len as usize).div_ceil(page::overflow_capacity(self.db.inner.page_size));
        let mut next = first_page;
        let mut pages = 0;
        while next != 0 && pages < max_pages {
            let tree = self.db.inner.tree.read();
            let source = AtVersion(&tree.pager, version);
            for _ in 0..OVERFLOW_PAGES_PER_LOCK {
                if next == 0 || pages >= max_pages {
                    break;
                }
                next = btree::append_overflow_page(&source, next, &mut out)?;
                pages += 1;
            }
        }
        btree::check_overflow_read(&out, len, first_page, next)?;
        Ok(out)
    }
}

/// Makes `bound` exclude `key`, reusing the bound's allocation (one per iterator, not per step).
fn set_excluded(bound: &mut Bound<Vec<u8>>, key: &[u8]) {
    let mut owned = match std::mem::replace(bound, Bound::Unbounded) {
        Bound::Excluded(owned) | Bound::Included(owned) => owned,
        Bound::Unbounded => Vec::new(),
    };
    owned.clear();
    owned.extend_from_slice(key);
    *bound = Bound::Excluded(owned);
}

fn btree_within(key: &[u8], low: &Bound<Vec<u8>>, high: &Bound<Vec<u8>>) -> bool {
    let above = match low {
        Bound::Unbounded => true,
        Bound::Included(l) => key >= l.as_slice(),
        Bound::Excluded(l) => key > l.as_slice(),
    };
    let below = match high {
        Bound::Unbounded => true,
        Bound::Included(h) => key <= h.as_slice(),
        Bound::Excluded(h) => key < h.as_slice(),
    };
    above && below
}

impl Iterator for Iter<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl Drop for Iter<'_> {
    fn drop(&mut self) {
        if let Some(version) = self.version.take() {
            self.db.inner.release_snapshot(version);
        }
    }
}
