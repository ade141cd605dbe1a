//! Online backup: [`Db::backup_to`] writes a consistent copy of an open database into another
//! directory while readers and writers go on.
//!
//! # How a backup is made
//! 1. The destination must be a new or empty directory outside the database's own directory.
//!    Its lock is taken, and the marker file [`BACKUP_INCOMPLETE_FILE`] is created and made
//!    durable (with the directory entry of the destination itself) before any other file:
//!    [`Db::open`] refuses a directory that holds it ([`Error::IncompleteBackup`]), so a copy cut
//!    short by a crash, a kill or an error is never opened half made.
//! 2. A snapshot is registered, as an iterator registers one: the version committed at that
//!    moment (a batch boundary) and the meta page as of it. Everything the copy holds is as of
//!    that version, whatever writers do meanwhile.
//! 3. Pages `0..page_count` are read at the snapshot, [`COPY_CHUNK_BYTES`] at a time under the
//!    tree's read lock (a writer waits for at most one chunk's reads), then sealed (checksummed)
//!    and written to the copy's data file outside the lock. The meta page gets the copy's own
//!    log id: a copy is a database of its own.
//! 4. The copy's data file is synced. Its redo log is created empty, with its checkpoint at the
//!    source log's end when the copy began, which is at or after every page's LSN in the copy,
//!    so any redo the copy writes later is newer than the pages it is replayed onto. An empty
//!    doublewrite file beside them; the directory is synced.
//! 5. The marker is removed and the directory synced: only now is the copy complete.
//!
//! Opening the copy finds no redo after its checkpoint: it opens with nothing to recover.
//!
//! # Bounds
//! Memory: one chunk buffer, plus what the snapshot keeps (as for an open [`Iter`](super::Iter)):
//! at most one image per page that writers change while the backup runs. Time: proportional to
//! the data file's pages in use (free pages are copied too, so that the copy's free list is the
//! source's). Writers are held off for at most one chunk's page reads at a time
//! ([`BackupReport::longest_pause`] measures it).
//!
//! # Errors
//! An error in the destination (a full disk, a file-size limit) is the backup's alone: the
//! source database is not touched and stays writable. The files made so far are removed (the
//! marker last), giving their space back.
//!
//! This module owns the backup's order of writes and its destination checks; it must not change
//! the source database (it only reads it at a snapshot) nor know node layout.

use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mtr::{DirStorage, LogFile, Lsn, OpenMode, Storage, StorageFile};

use crate::btree::{self, AtVersion, PageSource};
use crate::error::{Error, Result};
use crate::page;

use super::{open::new_log_id, Db, DATA_FILE, DOUBLEWRITE_FILE, LOG_FILE};

/// The marker of a backup still being written: present from before the copy's first file is
/// created until after its last is synced. `Db::open` refuses a directory holding it.
pub const BACKUP_INCOMPLETE_FILE: &str = "backup.incomplete";

/// Bytes of pages read per hold of the tree's read lock.
pub const COPY_CHUNK_BYTES: usize = 1 << 20;

/// How far a backup has come: passed to the progress callback after every chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupProgress {
    /// Bytes of the data file copied so far.
    pub bytes_done: u64,
    /// Bytes of the data file to copy in all.
    pub bytes_total: u64,
}

/// What a backup did.
#[derive(Clone, Debug)]
pub struct BackupReport {
    /// Pages copied (the data file's pages in use or free at the snapshot).
    pub pages: u64,
    /// Bytes of the copy's data file.
    pub bytes: u64,
    /// The redo log position the copy is as of: the copy holds every batch whose redo ends at or
    /// before it, and no other.
    pub lsn: u64,
    /// From the call to the copy being complete (synced and marked so).
    pub duration: Duration,
    /// The longest single hold of the tree's read lock: the longest a writer could have waited
    /// for the backup.
    pub longest_pause: Duration,
    /// Whether opening the copy has redo to replay: never, as a copy's log holds no redo after
    /// its checkpoint; stated so that a caller need not take it on trust.
    pub recovery_needed: bool,
}

fn io_at<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { action, path: path.display().to_string(), source }
}

impl Db {
    /// Writes a consistent copy of the database into `dir` (new, or an empty directory), while
    /// readers and writers go on. The copy is the database as of one batch boundary (the moment
    /// of this call), opens with nothing to recover, and is a database of its own (its own log
    /// id). `progress` is called after every chunk of [`COPY_CHUNK_BYTES`] with the bytes done
    /// and the total.
    ///
    /// The copy is written with the database's own care: its files and the directory are synced
    /// before it is marked complete, and until then [`Db::open`] refuses it
    /// ([`Error::IncompleteBackup`]), so a backup cut short is never opened half made.
    ///
    /// **Bounds.** Memory: one chunk, plus (as for an open iterator) at most one image per page
    /// that writers change while the backup runs. A writer waits for at most one chunk's page
    /// reads at a time. See the `backup` module doc.
    ///
    /// **Errors.** [`Error::BackupDestination`] for a destination that is not a directory, is
    /// not empty, or lies inside this database's directory; an I/O error in the destination
    /// (a full disk, say) removes what was written there and leaves this database untouched
    /// and writable.
    pub fn backup_to(&self, dir: impl AsRef<Path>, mut progress: impl FnMut(BackupProgress)) -> Result<BackupReport> {
        let started = Instant::now();
        let dir = dir.as_ref();
        let created_dir = check_destination(Path::new(self.location()), dir)?;
        let destination = match Destination::begin(dir, created_dir) {
            Ok(destination) => destination,
            Err(error) => {
                if created_dir {
                    let _ = std::fs::remove_dir(dir);
                }
                return Err(error);
            }
        };
        match self.copy_into(&destination, &mut progress) {
            Ok(mut report) => {
                destination.finish()?;
                report.duration = started.elapsed();
                Ok(report)
            }
            Err(error) => {
                destination.abandon();
                Err(error)
            }
        }
    }

    fn copy_into(&self, destination: &Destination, progress: &mut dyn FnMut(BackupProgress)) -> Result<BackupReport> {
        let inner = &self.inner;
        let page_size = inner.page_size;
        let (snapshot, lsn) = inner.hold_snapshot();
        let version = snapshot.version;
        let meta = {
            let tree = inner.tree.read();
            btree::read_meta(&AtVersion(&tree.pager, version))?
        };
        let total_pages = u64::from(meta.page_count);
        let total_bytes = total_pages * page_size as u64;
        let data = destination.create(DATA_FILE)?;
        let data_path = destination.path(DATA_FILE);
        let log_id = new_log_id();
        let chunk_pages = (COPY_CHUNK_BYTES / page_size).max(1) as u64;
        let mut chunk = vec![0u8; chunk_pages as usize * page_size];
        let mut longest_pause = Duration::ZERO;
        let mut next: u64 = 0;
        progress(BackupProgress { bytes_done: 0, bytes_total: total_bytes });
        while next < total_pages {
            let pages = chunk_pages.min(total_pages - next);
            let bytes = &mut chunk[..pages as usize * page_size];
            {
                let held = Instant::now();
                let tree = inner.tree.read();
                let source = AtVersion(&tree.pager, version);
                for (index, out) in bytes.chunks_exact_mut(page_size).enumerate() {
                    let page_id = (next + index as u64) as page::PageId;
                    out.copy_from_slice(&source.page(page_id)?);
                }
                drop(tree);
                longest_pause = longest_pause.max(held.elapsed());
            }
            for (index, out) in bytes.chunks_exact_mut(page_size).enumerate() {
                let page_id = (next + index as u64) as page::PageId;
                if page_id == page::META_PAGE_ID {
                    page::meta_body_mut(out).log_id.set(log_id);
                }
                page::seal(page_id, out);
            }
            data.write_all_at(bytes, next * page_size as u64)
                .map_err(io_at("writing the backup's data file", &data_path))?;
            next += pages;
            progress(BackupProgress { bytes_done: next * page_size as u64, bytes_total: total_bytes });
        }
        data.sync_data().map_err(io_at("syncing the backup's data file", &data_path))?;
        let log = destination.create(LOG_FILE)?;
        LogFile::create_at(log, inner.log.file().capacity(), log_id, Lsn(lsn.0))?;
        destination.create(DOUBLEWRITE_FILE)?;
        Ok(BackupReport {
            pages: total_pages,
            bytes: total_bytes,
            lsn: lsn.0,
            duration: Duration::ZERO,
            longest_pause,
            recovery_needed: false,
        })
    }
}

/// Refuses a destination that is not a directory, is not empty, or lies inside the database's
/// own directory (`source`, when it is a directory of the file system). Returns whether the
/// destination does not exist yet (and will be created).
fn check_destination(source: &Path, dir: &Path) -> Result<bool> {
    let refuse = |detail: &str| Error::BackupDestination { path: dir.to_path_buf(), detail: detail.into() };
    let exists = dir.try_exists().map_err(io_at("looking at the backup's destination", dir))?;
    if exists {
        if !dir.is_dir() {
            return Err(refuse("it exists and is not a directory"));
        }
        let mut entries = std::fs::read_dir(dir).map_err(io_at("listing the backup's destination", dir))?;
        if let Some(entry) = entries.next() {
            let name = entry.map_err(io_at("listing the backup's destination", dir))?.file_name();
            return Err(refuse(&format!("it is not empty (it holds {})", name.to_string_lossy())));
        }
    }
    if let (Ok(source), Some(destination)) = (source.canonicalize(), resolve(dir)) {
        if destination.starts_with(&source) {
            return Err(refuse("it lies inside the database's own directory"));
        }
    }
    Ok(!exists)
}

/// `path` made absolute with its existing part resolved (symbolic links followed), the rest
/// appended as written: where a directory that does not exist yet would be.
fn resolve(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(resolved) = existing.canonicalize() {
            let mut out = resolved;
            for component in rest.iter().rev() {
                match component {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return Some(out);
        }
        rest.push(existing.components().next_back()?);
        existing = existing.parent()?;
    }
}

/// The destination directory while a backup writes it.
struct Destination {
    storage: DirStorage,
    dir: PathBuf,
    created_dir: bool,
}

impl Destination {
    /// Creates the directory if needed, takes its lock, and makes the marker durable.
    fn begin(dir: &Path, created_dir: bool) -> Result<Destination> {
        let storage = super::open::lock_directory(dir, "opening the backup's destination")?;
        let destination = Destination { storage, dir: dir.to_path_buf(), created_dir };
        let made = (|| {
            destination.create(BACKUP_INCOMPLETE_FILE)?;
            if created_dir {
                // The destination's own entry in its parent, so that the marker cannot vanish
                // with it.
                if let Some(parent) = std::path::absolute(dir).ok().as_deref().and_then(Path::parent) {
                    File::open(parent)
                        .and_then(|parent| parent.sync_all())
                        .map_err(io_at("syncing the backup's parent directory", parent))?;
                }
            }
            Ok(())
        })();
        match made {
            Ok(()) => Ok(destination),
            Err(error) => {
                destination.abandon();
                Err(error)
            }
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates `name` (which must not exist) and syncs the directory.
    fn create(&self, name: &str) -> Result<Arc<dyn StorageFile>> {
        let path = self.path(name);
        let file =
            self.storage.open_file(name, OpenMode::CreateNew).map_err(io_at("creating a file of the backup", &path))?;
        self.storage.sync_dir().map_err(io_at("syncing the backup's directory", &self.dir))?;
        Ok(file)
    }

    /// Marks the copy complete: every file is synced, so removing the marker durably is the
    /// last step.
    fn finish(self) -> Result<()> {
        self.storage
            .remove_file(BACKUP_INCOMPLETE_FILE)
            .map_err(io_at("removing the backup's marker", &self.path(BACKUP_INCOMPLETE_FILE)))?;
        self.storage.sync_dir().map_err(io_at("syncing the backup's directory", &self.dir))
    }

    /// Removes what the backup wrote (the marker last, so that a crash meanwhile still leaves a
    /// refused copy), and the directory if the backup created it. Best effort: the error that
    /// led here is the one reported.
    fn abandon(self) {
        for name in [DATA_FILE, LOG_FILE, DOUBLEWRITE_FILE] {
            let _ = self.storage.remove_file(name);
        }
        let _ = self.storage.sync_dir();
        let _ = self.storage.remove_file(BACKUP_INCOMPLETE_FILE);
        let _ = self.storage.remove_file(mtr::io::LOCK_FILE_NAME);
        let _ = self.storage.sync_dir();
        let created_dir = self.created_dir;
        let dir = self.dir.clone();
        drop(self.storage);
        if created_dir {
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// Refuses a directory holding a backup that was cut short.
pub(super) fn refuse_incomplete_backup(storage: &dyn Storage, location: &str) -> Result<()> {
    let marked = storage.exists(BACKUP_INCOMPLETE_FILE).map_err(|source| Error::Io {
        action: "looking for a backup marker",
        path: storage.describe(BACKUP_INCOMPLETE_FILE),
        source,
    })?;
    if marked {
        return Err(Error::IncompleteBackup { dir: location.to_string() });
    }
    Ok(())
}
