//! A database directory's files as bytes, for the tests that damage, replace or copy them.

use std::path::Path;

/// The files of a database directory: the data file, the redo log, the doublewrite file.
pub const FILES: [&str; 3] = ["data.mtrdb", "redo.log", "dblwr"];

/// The bytes of `dir`'s files, in the order of [`FILES`].
pub fn read_files(dir: &Path) -> Vec<Vec<u8>> {
    FILES.iter().map(|name| std::fs::read(dir.join(name)).unwrap()).collect()
}

/// Makes `dir`'s files hold `files` (in the order of [`FILES`]), writing only those that differ
/// (an open may have rewritten the log's checkpoint slots, repaired pages or written back
/// recovered pages).
pub fn write_files(dir: &Path, files: &[Vec<u8>]) {
    for (name, bytes) in FILES.iter().zip(files) {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_ref() != Some(bytes) {
            std::fs::write(&path, bytes).unwrap();
        }
    }
}

/// The checkpoint LSN in a redo log file: that of the valid-looking slot with the larger number
/// (number at byte 8, LSN at byte 16 of each 4096-byte slot after the header block).
pub fn checkpoint_lsn(log: &[u8]) -> u64 {
    let slot = |at: usize| {
        let word = |offset: usize| u64::from_le_bytes(log[at + offset..at + offset + 8].try_into().unwrap());
        (word(8), word(16))
    };
    slot(4096).max(slot(8192)).1
}

/// A scratch directory in memory where there is one: for tests that open a database thousands of
/// times, each open syncing; on tmpfs a sync costs nothing.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}
