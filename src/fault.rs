//! A fault-injecting [`Storage`] for crash testing: mtrdb's own tests use it, and so can yours
//! (enable the `fault-injection` feature).
//!
//! It models the operating system's page cache honestly:
//! - each file has a **durable image** and a list of **pending** (unsynced) operations: writes and
//!   length changes. Reads see the durable image with the pending operations applied in order;
//! - `sync_data` makes a file's pending operations durable; `sync_dir` makes the directory's
//!   entries (created and removed files) durable;
//! - [`FaultStorage::power_loss`] returns the storage as it would be after a power failure: for
//!   every pending write, nothing, all of it, or a **torn** part of it (any subset of its 512-byte
//!   sectors), chosen by a seed; files whose creation was never made durable vanish.
//!
//! Every write, length change and sync is counted (see [`FaultStorage::op_count`]), so a test can
//! stop the world at each boundary in turn:
//! - [`FaultStorage::crash_at`]`(n)`: operation `n` (0-based) and every later one fails, as if
//!   the process died there. Operation `n` itself is kept as pending (the kernel may or may not
//!   have taken it), so a power loss may persist, drop or tear it.
//! - [`FaultStorage::fail_at`]`(n)`: operation `n` fails with an I/O error once, and the world
//!   goes on. A failed sync behaves as Linux does after a writeback error: the writes it could
//!   not persist are **lost for durability** (a later sync reports success without them, and a
//!   power loss drops them) but **stay readable from the page cache**, which now lies: every
//!   read in this simulated boot, by this process or a reopened database, sees the new bytes,
//!   while the disk holds the old ones. Only [`FaultStorage::power_loss`] (the reboot) drops
//!   the cache and shows what the disk holds.
//!
//! To make a background checkpoint overlap writers at an exact point (a deterministic schedule,
//! not luck), [`FaultStorage::pause_at`]`(n)` holds the thread that issues operation `n` before
//! it is performed until [`FaultStorage::release_pause`]; meanwhile other threads go on (a test
//! runs a batch there), and their operations are numbered after it.
//!
//! ```
//! # fn main() -> mtrdb::Result<()> {
//! use std::sync::Arc;
//! use mtrdb::fault::FaultStorage;
//! let storage = FaultStorage::new();
//! let db = mtrdb::Db::open_storage(Arc::new(storage.clone()), "sim".into(), Default::default())?;
//! db.insert(b"k", b"v")?;
//! storage.crash_at(storage.op_count()); // the process dies now
//! drop(db);
//! let after = storage.power_loss(7); // and then the power goes
//! let db = mtrdb::Db::open_storage(Arc::new(after), "sim".into(), Default::default())?;
//! assert_eq!(db.get(b"k")?.as_deref(), Some(&b"v"[..])); // acknowledged, so durable
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;

use mtr::{OpenMode, Storage, StorageFile};
use parking_lot::{Condvar, Mutex, MutexGuard};

/// Sector size for torn writes.
pub const SECTOR_BYTES: usize = 512;

#[derive(Clone, Debug)]
enum PendingOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone, Debug, Default)]
struct SimFile {
    durable: Vec<u8>,
    /// Operations not yet durable that a sync or a power loss may still persist.
    pending: Vec<PendingOp>,
    /// What reads see (the page cache): the durable image with every operation since applied,
    /// including those a failed sync lost for durability.
    current: Vec<u8>,
    removed: bool,
}

fn apply_op(image: &mut Vec<u8>, op: &PendingOp) {
    match op {
        PendingOp::Write { offset, data } => {
            let offset = *offset as usize;
            if image.len() < offset + data.len() {
                image.resize(offset + data.len(), 0);
            }
            image[offset..offset + data.len()].copy_from_slice(data);
        }
        PendingOp::SetLen(len) => image.resize(*len as usize, 0),
    }
}

#[derive(Debug, Default)]
struct World {
    files: BTreeMap<String, SimFile>,
    /// Names present as of the last directory sync.
    durable_names: BTreeSet<String>,
    ops: u64,
    crash_at: Option<u64>,
    fail_at: Option<u64>,
    crashed: bool,
    failures_injected: u64,
    /// The operation whose issuing thread is held (see [`FaultStorage::pause_at`]).
    pause_at: Option<u64>,
    paused: bool,
    released: bool,
}

/// Holds the thread about to issue the operation named by [`FaultStorage::pause_at`] until it
/// is released. Called with the world locked, before the operation is counted.
fn hold_if_paused(world: &mut MutexGuard<'_, World>, gate: &Condvar) {
    if world.pause_at != Some(world.ops) {
        return;
    }
    world.pause_at = None;
    world.paused = true;
    world.released = false;
    gate.notify_all();
    while !world.released {
        gate.wait(world);
    }
    world.paused = false;
}

impl World {
    /// Counts an operation and decides its fate: `Ok(true)` go ahead, `Ok(false)` go ahead but
    /// report a crash (the op stays pending), `Err` fail it now.
    fn admit(&mut self, action: &str) -> io::Result<bool> {
        if self.crashed {
            return Err(io::Error::other(format!("simulated crash: {action} after the process died")));
        }
        let index = self.ops;
        self.ops += 1;
        if self.crash_at == Some(index) {
            self.crashed = true;
            return Ok(false);
        }
        if self.fail_at == Some(index) {
            self.failures_injected += 1;
            return Err(io::Error::other(format!("injected I/O error on operation {index} ({action})")));
        }
        Ok(true)
    }
}

/// The fault-injecting storage. Clones share one simulated machine.
#[derive(Clone, Debug, Default)]
pub struct FaultStorage {
    world: Arc<Mutex<World>>,
    gate: Arc<Condvar>,
}

impl FaultStorage {
    /// An empty machine.
    #[must_use]
    pub fn new() -> FaultStorage {
        FaultStorage::default()
    }

    /// Writes, length changes and syncs so far (including failed ones).
    #[must_use]
    pub fn op_count(&self) -> u64 {
        self.world.lock().ops
    }

    /// Operation `index` and all later ones fail: the process dies there (see the module doc).
    pub fn crash_at(&self, index: u64) {
        let mut world = self.world.lock();
        world.crash_at = Some(index);
        if world.ops > index {
            world.crashed = true;
        }
    }

    /// Operation `index` fails once with an I/O error.
    pub fn fail_at(&self, index: u64) {
        self.world.lock().fail_at = Some(index);
    }

    /// Holds the thread that issues operation `index` (0-based, as [`FaultStorage::op_count`]
    /// counts) before it is performed, until [`FaultStorage::release_pause`]. Other threads'
    /// operations go on meanwhile and are counted first.
    pub fn pause_at(&self, index: u64) {
        let mut world = self.world.lock();
        world.pause_at = Some(index);
        world.paused = false;
        world.released = false;
    }

    /// Waits until a thread is held by [`FaultStorage::pause_at`] (`true`), or until
    /// `give_up()` says the pause will never come (`false`; checked every 20 µs), for
    /// example because the thread finished without issuing that operation.
    pub fn wait_for_pause(&self, give_up: impl Fn() -> bool) -> bool {
        let mut world = self.world.lock();
        loop {
            if world.paused {
                return true;
            }
            if give_up() {
                world.pause_at = None;
                return false;
            }
            self.gate.wait_for(&mut world, std::time::Duration::from_micros(20));
        }
    }

    /// Lets the thread held by [`FaultStorage::pause_at`] go on (and cancels a pause not yet
    /// reached).
    pub fn release_pause(&self) {
        let mut world = self.world.lock();
        world.pause_at = None;
        world.released = true;
        self.gate.notify_all();
    }

    /// Whether the simulated process has died.
    #[must_use]
    pub fn crashed(&self) -> bool {
        self.world.lock().crashed
    }

    /// Errors injected by [`FaultStorage::fail_at`] so far.
    #[must_use]
    pub fn failures_injected(&self) -> u64 {
        self.world.lock().failures_injected
    }

    /// The machine after a power failure now: a new storage holding, for each file, its durable
    /// image plus, for each pending write, nothing, all of it, or a torn subset of its sectors
    /// (chosen by `seed`). Seed 0 drops every pending operation; seed 1 keeps them all.
    #[must_use]
    pub fn power_loss(&self, seed: u64) -> FaultStorage {
        let world = self.world.lock();
        let mut random = SplitMix(seed ^ 0x9e37_79b9_7f4a_7c15);
        let mut files = BTreeMap::new();
        for (name, file) in &world.files {
            if !world.durable_names.contains(name) {
                continue; // its creation never reached the disk
            }
            let mut image = file.durable.clone();
            for op in &file.pending {
                let choice = match seed {
                    0 => 0,
                    1 => 1,
                    _ => random.next() % 3,
                };
                match (choice, op) {
                    (0, _) => {}
                    (1, op) => apply_op(&mut image, op),
                    (_, PendingOp::SetLen(_)) => {}
                    (_, PendingOp::Write { offset, data }) => {
                        // Keep a random subset of the sectors the write covers.
                        let mut kept = image.clone();
                        apply_op(&mut kept, op);
                        let start = *offset as usize;
                        let end = start + data.len();
                        let mut sector = start - start % SECTOR_BYTES;
                        if image.len() < end {
                            image.resize(end, 0);
                        }
                        while sector < end {
                            let from = sector.max(start);
                            let to = (sector + SECTOR_BYTES).min(end);
                            if random.next().is_multiple_of(2) {
                                image[from..to].copy_from_slice(&kept[from..to]);
                            }
                            sector += SECTOR_BYTES;
                        }
                    }
                }
            }
            files.insert(
                name.clone(),
                SimFile { durable: image.clone(), pending: Vec::new(), current: image, removed: false },
            );
        }
        let durable_names = files.keys().cloned().collect();
        FaultStorage {
            world: Arc::new(Mutex::new(World { files, durable_names, ..World::default() })),
            gate: Arc::new(Condvar::new()),
        }
    }

    /// A file's current bytes (what reads see), if it exists.
    #[must_use]
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let world = self.world.lock();
        world.files.get(name).filter(|file| !file.removed).map(|file| file.current.clone())
    }

    /// Replaces a file's bytes, durably (for tests that corrupt files).
    pub fn set_file_bytes(&self, name: &str, bytes: Vec<u8>) {
        let mut world = self.world.lock();
        world.files.insert(
            name.to_string(),
            SimFile { durable: bytes.clone(), pending: Vec::new(), current: bytes, removed: false },
        );
        world.durable_names.insert(name.to_string());
    }
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// One file of a [`FaultStorage`].
struct FaultFile {
    world: Arc<Mutex<World>>,
    gate: Arc<Condvar>,
    name: String,
}

impl FaultFile {
    fn with_file<T>(&self, body: impl FnOnce(&mut SimFile) -> T) -> io::Result<T> {
        let mut world = self.world.lock();
        match world.files.get_mut(&self.name) {
            Some(file) if !file.removed => Ok(body(file)),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, format!("{} was removed", self.name))),
        }
    }

    fn mutate(&self, action: &str, op: PendingOp) -> io::Result<()> {
        let mut world = self.world.lock();
        hold_if_paused(&mut world, &self.gate);
        let go_on = world.admit(action)?;
        let file = world
            .files
            .get_mut(&self.name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, self.name.clone()))?;
        apply_op(&mut file.current, &op);
        file.pending.push(op);
        if go_on {
            Ok(())
        } else {
            Err(io::Error::other(format!("simulated crash during {action} of {}", self.name)))
        }
    }
}

impl StorageFile for FaultFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with_file(|file| {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            match file.current.get(start..start.saturating_add(buf.len())) {
                Some(bytes) => {
                    buf.copy_from_slice(bytes);
                    Ok(())
                }
                None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the file")),
            }
        })?
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.mutate("write", PendingOp::Write { offset, data: buf.to_vec() })
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut world = self.world.lock();
        hold_if_paused(&mut world, &self.gate);
        let admitted = world.admit("sync");
        let file = world
            .files
            .get_mut(&self.name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, self.name.clone()))?;
        match admitted {
            Ok(true) => {
                // Only what is pending reaches the disk; bytes an earlier failed sync lost stay
                // in the cache but never become durable.
                for op in std::mem::take(&mut file.pending) {
                    apply_op(&mut file.durable, &op);
                }
                Ok(())
            }
            Ok(false) => Err(io::Error::other("simulated crash during sync")),
            Err(error) => {
                if !world.crashed {
                    // Like Linux after a writeback error: the dirty pages are marked clean
                    // without reaching the disk. Reads keep seeing them (`current` is left as
                    // it is) until the reboot; no later sync will write them.
                    if let Some(file) = world.files.get_mut(&self.name) {
                        file.pending.clear();
                    }
                }
                Err(error)
            }
        }
    }

    fn len(&self) -> io::Result<u64> {
        self.with_file(|file| file.current.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.mutate("set_len", PendingOp::SetLen(len))
    }

    /// Modelled as a write of zeros within the file's length: like any write, not durable until
    /// the next sync, and torn by a power loss before it.
    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        let file_len = self.len()?;
        let end = offset.saturating_add(len).min(file_len);
        if end <= offset {
            return Ok(());
        }
        let zeros = vec![0u8; usize::try_from(end - offset).map_err(io::Error::other)?];
        self.mutate("punch_hole", PendingOp::Write { offset, data: zeros })
    }
}

impl Storage for FaultStorage {
    fn open_file(&self, name: &str, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut world = self.world.lock();
        let exists = world.files.get(name).is_some_and(|file| !file.removed);
        match (mode, exists) {
            (OpenMode::Existing, false) => return Err(io::Error::new(io::ErrorKind::NotFound, name.to_string())),
            (OpenMode::CreateNew, true) => return Err(io::Error::new(io::ErrorKind::AlreadyExists, name.to_string())),
            (OpenMode::CreateNew, false) => {
                if world.crashed {
                    return Err(io::Error::other("simulated crash: create after the process died"));
                }
                world.files.insert(name.to_string(), SimFile::default());
            }
            (OpenMode::Existing, true) => {}
        }
        Ok(Arc::new(FaultFile { world: Arc::clone(&self.world), gate: Arc::clone(&self.gate), name: name.to_string() }))
    }

    fn exists(&self, name: &str) -> io::Result<bool> {
        Ok(self.world.lock().files.get(name).is_some_and(|file| !file.removed))
    }

    fn remove_file(&self, name: &str) -> io::Result<()> {
        let mut world = self.world.lock();
        if world.crashed {
            return Err(io::Error::other("simulated crash: remove after the process died"));
        }
        if let Some(file) = world.files.get_mut(name) {
            file.removed = true;
        }
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut world = self.world.lock();
        hold_if_paused(&mut world, &self.gate);
        world.admit("sync_dir")?;
        if world.crashed {
            return Err(io::Error::other("simulated crash during sync_dir"));
        }
        world.files.retain(|_, file| !file.removed);
        world.durable_names = world.files.keys().cloned().collect();
        Ok(())
    }

    fn describe(&self, name: &str) -> String {
        format!("fault-injection:{name}")
    }
}
