//! The narrow file interface every byte of mtrdb's I/O goes through.
//!
//! Both the redo log (this crate) and the engine's data and doublewrite files use [`StorageFile`],
//! and open them through a [`Storage`] (one directory). The real implementation is [`DirStorage`];
//! tests and users' crash campaigns substitute a fault-injecting one that keeps a durable image
//! beside the pending writes, so that a simulated power loss sees the log's I/O and the pages' I/O
//! alike. This module owns no format and no policy: it must not know what the bytes mean.
//!
//! All positioned reads and writes are whole-buffer operations: a short read is
//! [`std::io::ErrorKind::UnexpectedEof`], never a silently shorter buffer.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One file, addressed by byte offset. Implementations must be safe to use from several threads
/// at once (positioned I/O has no shared cursor).
pub trait StorageFile: Send + Sync {
    /// Fills `buf` from `offset`; [`io::ErrorKind::UnexpectedEof`] if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, growing the file if needed. Not durable until
    /// [`StorageFile::sync_data`] returns.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every completed write durable (`fdatasync` class). An error here is final: the
    /// kernel may have dropped the dirty data, so callers must not retry and carry on.
    fn sync_data(&self) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Grows or shrinks the file; new bytes read as zeros. Durable after `sync_data`.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Gives back the disk space of the `len` bytes at `offset` (the file keeps its length):
    /// afterwards they read as zeros, or, where the file system cannot free space, as before.
    /// Callers use it only for bytes they will never read as data again. The default keeps the
    /// space.
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// The operating-system file behind this one, if there is one: the engine memory-maps it
    /// for reading. Fault-injecting implementations return `None` and are read through
    /// [`StorageFile::read_exact_at`].
    fn os_file(&self) -> Option<&File> {
        None
    }
}

/// How [`Storage::open_file`] treats a missing or existing file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist.
    Existing,
    /// The file must not exist; it is created empty.
    CreateNew,
}

/// A directory of named files, exclusively owned while it is open.
pub trait Storage: Send + Sync {
    /// Opens (or creates) `name` for reading and writing.
    fn open_file(&self, name: &str, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;
    /// Whether `name` exists.
    fn exists(&self, name: &str) -> io::Result<bool>;
    /// Removes `name` if it exists.
    fn remove_file(&self, name: &str) -> io::Result<()>;
    /// Makes the directory's entries (created and removed files) durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// A human-readable location for error messages.
    fn describe(&self, name: &str) -> String;
}

/// The real storage: files in one directory of the operating system's file system, locked
/// exclusively against a second opener (in this or another process) for as long as it lives.
#[derive(Debug)]
pub struct DirStorage {
    dir: PathBuf,
    // Held for the lifetime of the storage; the OS drops the lock when the handle closes.
    _lock: File,
}

/// How long [`DirStorage::open`] retries a held lock before reporting it.
/// 250 ms: with 50 ms, a CLI test that closed a database and at once ran the tool on it (while
/// other test threads spawned children) was refused as locked once in six runs on a loaded
/// two-core machine.
pub const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// The name of the lock file inside a database directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

impl DirStorage {
    /// Opens `dir` (creating it if `create` and it is missing) and takes its exclusive lock.
    /// A second open while the first is alive fails with [`io::ErrorKind::WouldBlock`].
    pub fn open(dir: &Path, create: bool) -> io::Result<DirStorage> {
        if create {
            std::fs::create_dir_all(dir)?;
        } else if !dir.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{} is not a directory", dir.display())));
        }
        let lock =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(dir.join(LOCK_FILE_NAME))?;
        // A lock that was just released can linger for an instant: another thread of this
        // process that is spawning a child shares every descriptor with it between fork and exec,
        // and the lock lives as long as any copy. So a held lock is retried briefly before it is
        // reported; a database really open elsewhere still fails after LOCK_RETRY.
        let deadline = std::time::Instant::now() + LOCK_RETRY;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("{} is locked by another open database", dir.display()),
                    ))
                }
                Err(std::fs::TryLockError::Error(error)) => return Err(error),
            }
        }
        Ok(DirStorage { dir: dir.to_path_buf(), _lock: lock })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Storage for DirStorage {
    fn open_file(&self, name: &str, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        if mode == OpenMode::CreateNew {
            options.create_new(true);
        }
        let file = options.open(self.dir.join(name))?;
        Ok(Arc::new(OsFile { file }))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        self.dir.join(name).try_exists()
    }

    fn remove_file(&self, name: &str) -> io::Result<()> {
        match std::fs::remove_file(self.dir.join(name)) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn describe(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// A file of the operating system.
#[derive(Debug)]
pub struct OsFile {
    file: File,
}

impl StorageFile for OsFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        use rustix::fs::{fallocate, FallocateFlags};
        match fallocate(&self.file, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, offset, len) {
            Ok(()) => Ok(()),
            // A file system that cannot punch holes keeps the space; the bytes stay as they were.
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }

    fn os_file(&self) -> Option<&File> {
        Some(&self.file)
    }
}
