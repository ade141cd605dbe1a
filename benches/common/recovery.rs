//! Crash and recovery: a crash image (a store's files copied while it is open, after its last
//! durable commit) and the timed reopen of a copy of it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mtrdb::{Options, RecoveryReport};

use super::{
    insert_keys, mtrdb_options, open_store, random_key, KeyOrder, MtrdbStore, Store, StoreKind, BATCH_KEYS,
    ENTRY_BYTES, VALUE_BYTES,
};

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
