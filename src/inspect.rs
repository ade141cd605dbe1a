//! Read-only inspection of a database directory: an overlay [`Storage`] that serves reads from
//! the directory's real files and keeps every write in memory, so that a full recovery, a
//! structural check, statistics or a dump can run on a database, even one that crashed, while its
//! files stay byte-for-byte unchanged.
//!
//! ```no_run
//! # fn main() -> mtrdb::Result<()> {
//! let inspected = mtrdb::inspect::open_in_memory(std::path::Path::new("/var/lib/app/db"))?;
//! let report = inspected.db.check()?; // after an in-memory recovery
//! println!("{} entries; recovery replayed {} mtrs", report.entries, inspected.db.recovery_report().mtrs_replayed);
//! # Ok(()) }
//! ```
//!
//! # How it works
//! - [`OverlayDir::open`] takes the directory's lock exclusively (a `try_lock` of the engine's own
//!   [`mtr::io::LOCK_FILE_NAME`] file), so a database that a live process has open is reported as
//!   [`Error::Locked`] instead of being read while it changes. If the directory has no lock file
//!   (a copy made without it), none is created: no process has the database open then, since
//!   opening creates the lock file first. (One that opens it during the inspection is not kept
//!   out; the inspection may then read files that change under it, but still never writes.)
//! - Each file is opened **read-only** (`O_RDONLY`) on first use. Its writes go to a copy-on-write
//!   overlay of [`OVERLAY_BLOCK_BYTES`]-byte blocks: the first write to a block copies the block's
//!   current bytes into memory, and later reads of that block are served from the copy. Length
//!   changes are tracked in memory too (bytes past a shrink read as zeros, as in a real file).
//!   Files created or removed through the overlay exist or vanish only in memory.
//! - `sync_data` and `sync_dir` do nothing; [`StorageFile::os_file`] is `None`, so the engine
//!   reads pages with positioned reads (through the overlay), never through a mapping of the real
//!   file.
//!
//! [`OverlayDir::recover`] (which [`open_in_memory`] calls) runs [`Db::open_storage`] on the
//! overlay: torn-page repair, the redo pass, the write-back of the recovered pages and the log's
//! resumption all happen, but only in memory, and the overlay's data file then holds the
//! recovered pages. Closing or dropping that [`Db`] checkpoints into the overlay, which is then
//! discarded. A directory without a data file is refused rather than created (in memory).
//!
//! # What this module owns and must not touch
//! It owns the overlay and its in-memory bytes. It must never write, truncate, create, remove or
//! sync a file of the directory it inspects: every real file handle it holds is opened read-only,
//! which the operating system enforces. It knows no file format (that is [`crate::page`],
//! [`mtr::layout`] and the modules that read them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mtr::{OpenMode, Storage, StorageFile};
use parking_lot::Mutex;

use crate::db::{Db, Options, DATA_FILE};
use crate::error::{Error, Result};

/// The granularity of the copy-on-write overlay: a write copies whole blocks of this size.
pub const OVERLAY_BLOCK_BYTES: u64 = 4096;

/// A database directory opened for inspection: reads from its files, writes to memory. Clones are
/// cheap handles to the same overlay (and the same lock).
#[derive(Clone, Debug)]
pub struct OverlayDir {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    /// The directory's lock file, held exclusively while any clone lives; `None` when the
    /// directory has no lock file.
    _lock: Option<File>,
    lock_held: bool,
    names: Mutex<Names>,
}

#[derive(Debug, Default)]
struct Names {
    /// Every file opened so far, so that later opens see the same overlay.
    open: HashMap<String, Arc<OverlayFile>>,
    /// Names removed through the overlay (the real files stay).
    removed: HashSet<String>,
}

/// The result of [`open_in_memory`]: a database recovered in memory, and the overlay it lives on.
pub struct Inspected {
    /// The overlay: after opening, its files hold the recovered state (in memory).
    pub overlay: OverlayDir,
    /// The database, recovered in memory. Closing or dropping it touches only the overlay.
    pub db: Db,
}

/// Opens the database in `dir` without modifying any of its files: [`OverlayDir::open`] then
/// [`OverlayDir::recover`].
pub fn open_in_memory(dir: &Path) -> Result<Inspected> {
    let overlay = OverlayDir::open(dir)?;
    let db = overlay.recover()?;
    Ok(Inspected { overlay, db })
}

impl OverlayDir {
    /// Opens `dir` for inspection and takes its lock (see the module doc). A missing directory is
    /// an [`Error::Io`] of kind `NotFound`; a database open elsewhere is [`Error::Locked`].
    pub fn open(dir: &Path) -> Result<OverlayDir> {
        let io_error = |source| Error::Io {
            action: "opening the directory for inspection",
            path: dir.display().to_string(),
            source,
        };
        if !dir.is_dir() {
            return Err(io_error(io::Error::new(io::ErrorKind::NotFound, "no such directory")));
        }
        let lock_path = dir.join(mtr::io::LOCK_FILE_NAME);
        let lock = match File::open(&lock_path) {
            Ok(file) => Some(file),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(io_error(error)),
        };
        if let Some(file) = &lock {
            // flock works on a read-only descriptor, and conflicts with the engine's lock.
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { dir: dir.to_path_buf() }),
                Err(std::fs::TryLockError::Error(error)) => return Err(io_error(error)),
            }
        }
        let lock_held = lock.is_some();
        Ok(OverlayDir {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                _lock: lock,
                lock_held,
                names: Mutex::new(Names::default()),
            }),
        })
    }

    /// Opens the database on this overlay: a full recovery, in memory (background checkpoints
    /// off). A directory without a data file is [`Error::NotADatabase`]: opening would otherwise
    /// create a new database (in memory). Call it once per overlay: a second open would see the
    /// first one's in-memory checkpoint, not the files as they are.
    pub fn recover(&self) -> Result<Db> {
        let data_exists = self.exists(DATA_FILE).map_err(|source| Error::Io {
            action: "looking for the data file",
            path: self.describe(DATA_FILE),
            source,
        })?;
        if !data_exists {
            return Err(Error::NotADatabase {
                path: self.describe(DATA_FILE),
                detail: "the file does not exist; this directory holds no mtrdb database".into(),
            });
        }
        Db::open_storage(
            Arc::new(self.clone()),
            self.path().display().to_string(),
            Options::default().background_checkpoints(false),
        )
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.shared.dir
    }

    /// Whether the directory's lock file existed and is held by this overlay.
    #[must_use]
    pub fn lock_held(&self) -> bool {
        self.shared.lock_held
    }

    /// A file exactly as it is on disk, ignoring the overlay: reads only, every write or length
    /// change fails with [`io::ErrorKind::PermissionDenied`]. `None` if the file does not exist.
    pub fn original(&self, name: &str) -> io::Result<Option<Arc<dyn StorageFile>>> {
        check_name(name)?;
        match File::open(self.shared.dir.join(name)) {
            Ok(file) => Ok(Some(Arc::new(ReadOnlyFile { file }))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Bytes the overlay holds in memory (written blocks), over all files.
    #[must_use]
    pub fn overlay_bytes(&self) -> u64 {
        let names = self.shared.names.lock();
        names.open.values().map(|file| file.state.lock().blocks.len() as u64 * OVERLAY_BLOCK_BYTES).sum()
    }
}

fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not a file name")));
    }
    Ok(())
}

impl Storage for OverlayDir {
    fn open_file(&self, name: &str, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        check_name(name)?;
        let mut names = self.shared.names.lock();
        if let Some(file) = names.open.get(name) {
            return match mode {
                OpenMode::Existing => Ok(Arc::clone(file) as Arc<dyn StorageFile>),
                OpenMode::CreateNew => Err(io::Error::new(io::ErrorKind::AlreadyExists, name.to_string())),
            };
        }
        let path = self.shared.dir.join(name);
        let removed = names.removed.contains(name);
        let file = match mode {
            OpenMode::Existing => {
                if removed {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{} (removed in memory)", path.display()),
                    ));
                }
                // Read-only: the operating system refuses any write through this handle.
                let base = OpenOptions::new().read(true).open(&path)?;
                OverlayFile::over(base)?
            }
            OpenMode::CreateNew => {
                if !removed && path.try_exists()? {
                    return Err(io::Error::new(io::ErrorKind::AlreadyExists, path.display().to_string()));
                }
                OverlayFile::empty()
            }
        };
        let file = Arc::new(file);
        names.removed.remove(name);
        names.open.insert(name.to_string(), Arc::clone(&file));
        Ok(file)
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        check_name(name)?;
        let names = self.shared.names.lock();
        if names.open.contains_key(name) {
            return Ok(true);
        }
        if names.removed.contains(name) {
            return Ok(false);
        }
        self.shared.dir.join(name).try_exists()
    }

    fn remove_file(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        let mut names = self.shared.names.lock();
        names.open.remove(name);
        names.removed.insert(name.to_string());
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self, name: &str) -> String {
        self.shared.dir.join(name).display().to_string()
    }
}

/// One file of an [`OverlayDir`].
#[derive(Debug)]
struct OverlayFile {
    /// The real file, read-only; `None` for a file created in memory.
    base: Option<File>,
    state: Mutex<OverlayState>,
}

#[derive(Debug)]
struct OverlayState {
    /// The file's length as the overlay's users see it.
    len: u64,
    /// Bytes of the real file at or after this offset read as zeros (a shrink hid them).
    base_visible: u64,
    /// Written blocks, by block index. Bytes of a block at or past `len` are zero.
    blocks: BTreeMap<u64, Box<[u8]>>,
}

impl OverlayFile {
    fn over(base: File) -> io::Result<OverlayFile> {
        let len = base.metadata()?.len();
        Ok(OverlayFile {
            base: Some(base),
            state: Mutex::new(OverlayState { len, base_visible: len, blocks: BTreeMap::new() }),
        })
    }

    fn empty() -> OverlayFile {
        OverlayFile { base: None, state: Mutex::new(OverlayState { len: 0, base_visible: 0, blocks: BTreeMap::new() }) }
    }

    /// Fills `buf` with the bytes at `offset` that no overlay block covers: from the real file
    /// below `base_visible`, zeros after it.
    fn read_base(&self, state: &OverlayState, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let from_base = state.base_visible.saturating_sub(offset).min(buf.len() as u64) as usize;
        let (head, tail) = buf.split_at_mut(from_base);
        if !head.is_empty() {
            match &self.base {
                Some(file) => std::os::unix::fs::FileExt::read_exact_at(file, head, offset)?,
                None => head.fill(0),
            }
        }
        tail.fill(0);
        Ok(())
    }

    /// Reads `[offset, offset + buf.len())`, which must lie within `state.len`.
    fn read_view(&self, state: &OverlayState, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        let mut at = offset;
        while at < end {
            let block = at / OVERLAY_BLOCK_BYTES;
            let block_start = block * OVERLAY_BLOCK_BYTES;
            let done = (at - offset) as usize;
            if let Some(bytes) = state.blocks.get(&block) {
                let upto = end.min(block_start + OVERLAY_BLOCK_BYTES);
                let from = (at - block_start) as usize;
                let len = (upto - at) as usize;
                buf[done..done + len].copy_from_slice(&bytes[from..from + len]);
                at = upto;
            } else {
                // One read up to the next overlaid block (or the end): scans read megabytes.
                let next_overlaid =
                    state.blocks.range(block + 1..).next().map(|(&index, _)| index * OVERLAY_BLOCK_BYTES);
                let upto = next_overlaid.map_or(end, |start| start.min(end));
                let len = (upto - at) as usize;
                self.read_base(state, &mut buf[done..done + len], at)?;
                at = upto;
            }
        }
        Ok(())
    }
}

impl StorageFile for OverlayFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let state = self.state.lock();
        let fits = offset.checked_add(buf.len() as u64).is_some_and(|end| end <= state.len);
        if !fits {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the file"));
        }
        self.read_view(&state, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.state.lock();
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past the largest offset"))?;
        let mut at = offset;
        while at < end {
            let block = at / OVERLAY_BLOCK_BYTES;
            let block_start = block * OVERLAY_BLOCK_BYTES;
            if !state.blocks.contains_key(&block) {
                // Copy on write: the block's current bytes (zeros past the current length).
                let mut bytes = vec![0u8; OVERLAY_BLOCK_BYTES as usize].into_boxed_slice();
                let visible = state.len.saturating_sub(block_start).min(OVERLAY_BLOCK_BYTES) as usize;
                self.read_view(&state, &mut bytes[..visible], block_start)?;
                state.blocks.insert(block, bytes);
            }
            let upto = end.min(block_start + OVERLAY_BLOCK_BYTES);
            let from = (at - block_start) as usize;
            let len = (upto - at) as usize;
            let done = (at - offset) as usize;
            if let Some(bytes) = state.blocks.get_mut(&block) {
                bytes[from..from + len].copy_from_slice(&buf[done..done + len]);
            }
            at = upto;
        }
        state.len = state.len.max(end);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        // Nothing to make durable: the overlay is thrown away.
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.state.lock().len)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state.lock();
        if len < state.len {
            state.base_visible = state.base_visible.min(len);
            let first_gone = len.div_ceil(OVERLAY_BLOCK_BYTES);
            state.blocks.split_off(&first_gone);
            // Keep "bytes of a block past `len` are zero" for the block the new end falls in.
            let tail_from = (len % OVERLAY_BLOCK_BYTES) as usize;
            if tail_from != 0 {
                if let Some(bytes) = state.blocks.get_mut(&(len / OVERLAY_BLOCK_BYTES)) {
                    bytes[tail_from..].fill(0);
                }
            }
        }
        state.len = len;
        Ok(())
    }
}

/// A real file opened read-only, for [`OverlayDir::original`].
struct ReadOnlyFile {
    file: File,
}

fn read_only_error() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "the file is opened read-only for inspection")
}

impl StorageFile for ReadOnlyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }

    fn write_all_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(read_only_error())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(read_only_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, OverlayDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), bytes).unwrap();
        let overlay = OverlayDir::open(dir.path()).unwrap();
        (dir, overlay)
    }

    fn read_all(file: &Arc<dyn StorageFile>) -> Vec<u8> {
        let mut out = vec![0u8; file.len().unwrap() as usize];
        file.read_exact_at(&mut out, 0).unwrap();
        out
    }

    #[test]
    fn writes_stay_in_memory_and_reads_see_them() {
        let original: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let (dir, overlay) = file_with(&original);
        let file = overlay.open_file("f", OpenMode::Existing).unwrap();
        let mut model = original.clone();
        for (offset, len) in [(0usize, 10usize), (4090, 20), (9_990, 30), (20_000, 5), (8191, 1)] {
            let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0xa5).collect();
            file.write_all_at(&data, offset as u64).unwrap();
            if model.len() < offset + len {
                model.resize(offset + len, 0);
            }
            model[offset..offset + len].copy_from_slice(&data);
            assert_eq!(read_all(&file), model);
        }
        // A second open sees the same overlay.
        assert_eq!(read_all(&overlay.open_file("f", OpenMode::Existing).unwrap()), model);
        file.sync_data().unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), original);
        assert_eq!(read_all(&overlay.original("f").unwrap().unwrap()), original);
    }

    #[test]
    fn shrink_then_grow_reads_zeros() {
        let original = vec![7u8; 9000];
        let (_dir, overlay) = file_with(&original);
        let file = overlay.open_file("f", OpenMode::Existing).unwrap();
        file.write_all_at(&[1, 2, 3], 4100).unwrap();
        file.set_len(4101).unwrap();
        file.set_len(9000).unwrap();
        let bytes = read_all(&file);
        assert_eq!(&bytes[..4100], &original[..4100]);
        assert_eq!(bytes[4100], 1);
        assert!(bytes[4101..].iter().all(|&b| b == 0));
        assert!(file.read_exact_at(&mut [0u8; 2], 8999).is_err());
    }

    #[test]
    fn created_and_removed_files_live_in_memory() {
        let (dir, overlay) = file_with(b"abc");
        assert!(overlay.open_file("f", OpenMode::CreateNew).is_err());
        let new = overlay.open_file("g", OpenMode::CreateNew).unwrap();
        new.write_all_at(b"xyz", 2).unwrap();
        assert_eq!(read_all(&new), b"\0\0xyz");
        assert!(overlay.exists("g").unwrap());
        assert!(!dir.path().join("g").exists());
        overlay.remove_file("f").unwrap();
        assert!(!overlay.exists("f").unwrap());
        assert!(overlay.open_file("f", OpenMode::Existing).is_err());
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"abc");
    }

    #[test]
    fn a_live_database_is_reported_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        assert!(matches!(OverlayDir::open(dir.path()), Err(Error::Locked { .. })));
        db.close().unwrap();
        assert!(OverlayDir::open(dir.path()).unwrap().lock_held());
    }

    #[test]
    fn recovery_in_memory_leaves_the_files_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        // A crashed directory is the CLI tests' business (they need the fault-injecting storage);
        // here a cleanly closed one, on which the in-memory open still writes its checkpoint.
        let db = Db::open_with(dir.path(), Options::default().log_capacity(256 * 1024)).unwrap();
        for i in 0..300u32 {
            db.insert(format!("key{i:05}"), [i as u8; 40]).unwrap();
        }
        db.close().unwrap();
        let before: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap())
            })
            .collect();
        let inspected = open_in_memory(dir.path()).unwrap();
        assert_eq!(inspected.db.check().unwrap().entries, 300);
        inspected.db.insert(b"more", b"writes").unwrap();
        inspected.db.checkpoint().unwrap();
        assert!(inspected.overlay.overlay_bytes() > 0);
        drop(inspected);
        for (name, bytes) in before {
            assert_eq!(std::fs::read(dir.path().join(&name)).unwrap(), bytes, "{name} changed");
        }
    }

    #[test]
    fn a_directory_without_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(open_in_memory(dir.path()), Err(Error::NotADatabase { .. })));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
