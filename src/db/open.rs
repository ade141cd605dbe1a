//! Opening a database: `Db::open`, `Db::open_with` and `Db::open_storage`. Creating a new one;
//! or repairing the torn pages of an existing one, recovering it and checking that its meta page
//! and redo log belong together; then starting the handle and its threads.
//!
//! This module owns the directory's files until the handle exists; it must not take part in the
//! writes and checkpoints of an open database (`batch`, `background`).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use mtr::{DirStorage, Log, LogFile, Lsn, MtrBuf, OpenMode, Storage, StorageFile};
use parking_lot::{Condvar, Mutex};

use crate::btree::{self, BatchWriter, FirstPages, Latest};
use crate::catalog;
use crate::checkpoint::{self, DoublewriteTag};
use crate::error::{Error, Result};
use crate::page;
use crate::pager::Pager;
use crate::recovery::{self, RecoveryReport};

use super::background::Background;
use super::stats::Counters;
use super::{Db, Inner, Options, Tree, TreeLock, DATA_FILE, DEFAULT_PAGE_SIZE, DOUBLEWRITE_FILE, LOG_FILE};

/// The checkpoint number a new database's log reaches once creation is complete: the log starts
/// at 1, resuming it writes 2, and the checkpoint after the first pages are written writes 3.
const CREATED_DATABASE_CHECKPOINT: u64 = 3;

fn io_at(action: &'static str, path: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { action, path, source }
}

pub(super) fn new_log_id() -> u64 {
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
        let storage = lock_directory(dir, "opening the database directory")?;
        super::backup::refuse_incomplete_backup(&storage, &dir.display().to_string())?;
        if !storage.exists(DATA_FILE).map_err(io_at("looking for the data file", dir.display().to_string()))? {
            refuse_foreign_directory(dir)?;
        }
        Db::open_storage(Arc::new(storage), dir.display().to_string(), options)
    }

    /// Opens a database on any [`Storage`] (for example a fault-injecting one in tests).
    pub fn open_storage(storage: Arc<dyn Storage>, location: String, options: Options) -> Result<Db> {
        options.validate()?;
        super::backup::refuse_incomplete_backup(&*storage, &location)?;
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
        // A file of another format version is refused before anything reads it as this one.
        {
            let mut first_bytes = vec![0u8; page::META_PREFIX_BYTES];
            if data.read_exact_at(&mut first_bytes, 0).is_ok() {
                if let Some(found) = page::claimed_format_version(&first_bytes) {
                    if found != page::FORMAT_VERSION {
                        return Err(Error::FormatVersion {
                            path: describe(DATA_FILE),
                            found,
                            supported: page::FORMAT_VERSION,
                        });
                    }
                }
            }
        }
        let claimed = |file: &Arc<dyn StorageFile>| {
            let mut first_bytes = vec![0u8; page::META_PREFIX_BYTES];
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
        // Before recovery writes anything (its doublewrite batches overwrite the last one), the
        // data file's writes still pending from a process that died in this boot reach the disk
        // whole; and the slot recovery starts from is made durable, since after a failed sync it
        // may exist only in the page cache (`crate::recovery`).
        data.sync_data().map_err(io_at("syncing the data file before recovery", describe(DATA_FILE)))?;
        let checkpoint = log_file.latest_checkpoint()?;
        log_file.rewrite_checkpoint_durably(checkpoint)?;
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
        let (written, doublewritten) = (Cell::new(0), Cell::new(0));
        let mut write_back = |pager: &mut Pager| {
            let counts = write_back_all(pager, &*storage, &doublewrite, tag)?;
            written.set(written.get() + counts.pages);
            doublewritten.set(doublewritten.get() + counts.doublewritten);
            Ok(())
        };
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
        let write_back_started = Instant::now();
        let counts = write_back_all(&mut pager, &*storage, &doublewrite, tag)?;
        let log = Log::resume(log_file, Lsn(report.recovered_end_lsn))?;
        // Free pages a compaction cut off the page ids whose data file was not cut before the
        // process stopped: the checkpoint just written is past every record naming them.
        let page_count = btree::read_meta(&Latest(&pager))?.page_count;
        pager.cut_file(page_count)?;
        let mut report = report;
        report.write_back_duration = write_back_started.elapsed();
        report.pages_written_back = written.get() + counts.pages;
        report.pages_doublewritten = doublewritten.get() + counts.doublewritten;
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
        let default_entry = catalog::KeyspaceInfo::default_keyspace();
        let mut catalog_cells = Vec::new();
        page::encode_leaf_cell(
            &mut catalog_cells,
            &default_entry.catalog_key(),
            page::LeafValue::Inline(&catalog::encode_live(default_entry.id, default_entry.root, 0)),
        );
        let first_pages = FirstPages {
            meta: page::MetaState {
                catalog_root: catalog::CATALOG_ROOT,
                page_count: 3,
                free_head: 0,
                next_tree_id: catalog::DEFAULT_TREE_ID + 1,
            },
            catalog_cells: &catalog_cells,
            default_root: catalog::DEFAULT_ROOT,
        };
        let end =
            BatchWriter::bootstrap(&mut pager, &log, &mut mtr, log_id, options.replay_journal.as_ref(), first_pages)?;
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
        let keyspaces = {
            let source = Latest(&pager);
            let meta = btree::read_meta(&source)?;
            let entries = catalog::entries(&source, meta.catalog_root)?;
            catalog::Keyspaces::load(&entries, &meta)?
        };
        let resume_reclaim = !keyspaces.dropped.is_empty();
        static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let eventual = options.durability == super::Durability::Eventual;
        let inner = Arc::new(Inner {
            identity: OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            location,
            storage,
            options,
            page_size,
            log,
            doublewrite,
            tree: TreeLock::new(Tree { pager, version: 0, keyspaces }),
            writer: Mutex::new(MtrBuf::new()),
            checkpoint_lock: Mutex::new(()),
            compaction: Mutex::new(()),
            compaction_redo_end: std::sync::atomic::AtomicU64::new(0),
            cut_pending: std::sync::atomic::AtomicBool::new(false),
            eventual_writes: std::sync::atomic::AtomicBool::new(eventual),
            snapshots: Mutex::new(BTreeMap::new()),
            failure: Mutex::new(None),
            counters: Counters::default(),
            recovery,
            background: Mutex::new(Background::default()),
            background_signal: Condvar::new(),
            log_flush_signal: Condvar::new(),
        });
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
        // Its own thread, so that neither `background_checkpoints(false)` nor a long checkpoint
        // holds off the promised sync; on every database, as `write_with` may ask for `Eventual`
        // on any (idle, it wakes once a second to find nothing buffered).
        db.log_flusher = Some(spawn("mtrdb-log-flush", Inner::log_flush_loop, &db.inner)?);
        if resume_reclaim {
            // A drop whose pages were not all freed when the last process stopped. A failure
            // (a damaged page of a dropped keyspace) does not keep the database from opening:
            // the entry stays, `check` reports the damage, and writes that fail say why.
            if let Err(error) = db.inner.reclaim_dropped() {
                tracing::warn!(%error, "freeing the pages of a dropped keyspace failed; it stays pending");
            }
        }
        Ok(db)
    }
}

/// Writes every dirty page back (through the doublewrite file, unless redo rebuilds it) and
/// marks them clean, while no other thread can reach the pager (opening and creating).
fn write_back_all(
    pager: &mut Pager,
    storage: &dyn Storage,
    doublewrite: &Arc<dyn StorageFile>,
    tag: DoublewriteTag,
) -> Result<checkpoint::WriteBack> {
    let images = pager.dirty_images();
    if images.is_empty() {
        return Ok(checkpoint::WriteBack::default());
    }
    let counts = checkpoint::write_pages(
        pager.data_file(),
        &storage.describe(DATA_FILE),
        doublewrite,
        &storage.describe(DOUBLEWRITE_FILE),
        pager.page_size(),
        &images,
        tag,
    )?;
    // Nothing else changes pages while a database opens: every page written is clean now.
    pager.mark_written(&images, Lsn::ZERO)?;
    Ok(counts)
}

/// Opens `dir` (creating it if missing) and takes its lock: [`Error::Locked`] if another handle
/// or process holds it, an I/O error (`action`) otherwise.
pub(super) fn lock_directory(dir: &Path, action: &'static str) -> Result<DirStorage> {
    DirStorage::open(dir, true).map_err(|source| {
        if source.kind() == std::io::ErrorKind::WouldBlock {
            Error::Locked { dir: dir.to_path_buf() }
        } else {
            Error::Io { action, path: dir.display().to_string(), source }
        }
    })
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
