//! Shared by the CLI's tests: a database directory that crashed in the middle of a batch that
//! splits, built with the fault-injecting storage; filling a database with entries, a keyspace and
//! an overflow value; running the built `mtrdb` binary; and snapshots of a directory's files
//! (bytes and modification times) to prove a command left them alone.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::SystemTime;

use mtr::layout::{LogFile, RING_OFFSET};
use mtr::{ScanMode, Scanner, Storage};
use mtrdb::db::{DATA_FILE, DOUBLEWRITE_FILE, LOG_FILE};
use mtrdb::fault::FaultStorage;
use mtrdb::redo::{self, MTR_ABORT, MTR_COMMIT};
use mtrdb::{Db, Options, WriteBatch};

/// A small log, so the files stay small.
pub const LOG_CAPACITY: u64 = 256 * 1024;

/// The entries a crashed fixture holds after recovery (everything committed before the crash).
pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// What the log of a crashed fixture holds after its checkpoint.
#[derive(Debug)]
pub struct CrashedLog {
    /// Valid mtrs after the checkpoint.
    pub mtrs: u64,
    /// Of those, mtrs of the batch the crash cut short.
    pub unfinished_mtrs: u64,
    /// Where the valid log ends.
    pub end_lsn: u64,
}

fn key(i: u32) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

fn value(i: u32, len: usize) -> Vec<u8> {
    (0..len).map(|j| b'a' + ((i as usize + j) % 26) as u8).collect()
}

/// Writes into `dir` the files of a database that crashed while writing the redo of a batch
/// that splits leaves: the data file holds a checkpointed tree, the log holds committed batches
/// after the checkpoint, then a prefix of the crashed batch's mtrs (at least one of them a split)
/// and a torn tail. Returns the entries recovery must yield and what the log holds.
///
/// The batch's redo reaches the log file in one write at its commit; the process dies with that
/// write pending ([`FaultStorage::crash_at`]). A power loss then keeps any subset of the write's
/// 512-byte sectors; this fixture keeps the longest run of leading sectors that still leaves the
/// batch without its commit but with a split among its surviving mtrs, so the outcome does not
/// hang on a random seed.
pub fn crashed_mid_split(dir: &Path) -> (Model, CrashedLog) {
    let storage = FaultStorage::new();
    let options = || Options::default().background_checkpoints(false).log_capacity(LOG_CAPACITY);
    let db = Db::open_storage(Arc::new(storage.clone()), "sim".into(), options()).unwrap();
    let mut model = Model::new();
    let mut batch = WriteBatch::new();
    for i in (0..120).step_by(2) {
        batch.insert(key(i), value(i, 60));
        model.insert(key(i), value(i, 60));
    }
    db.write(batch).unwrap();
    db.checkpoint().unwrap();
    // Committed after the checkpoint: only in the log.
    for i in (1..12).step_by(2) {
        db.insert(key(i), value(i, 30)).unwrap();
        model.insert(key(i), value(i, 30));
    }
    db.remove(key(0)).unwrap();
    model.remove(&key(0));
    storage.crash_at(storage.op_count());
    let mut doomed = WriteBatch::new();
    for i in 200..260 {
        doomed.insert(key(i), value(i, 90));
    }
    assert!(db.write(doomed).is_err(), "the batch must hit the crash");
    drop(db);
    let kept_all = storage.power_loss(1);
    let kept_none = storage.power_loss(0);
    let all = kept_all.file_bytes(LOG_FILE).unwrap();
    let none = kept_none.file_bytes(LOG_FILE).unwrap();
    let batch_start = scan(&kept_none).map(|scan| scan.end_lsn).unwrap();
    let batch_end = scan(&kept_all).map(|scan| scan.end_lsn).unwrap();
    let ring_offset = |lsn: u64| (RING_OFFSET + lsn % LOG_CAPACITY) as usize;
    // Sector boundaries inside the batch's redo, latest first.
    let mut cut = batch_end - (ring_offset(batch_end) % SECTOR_BYTES) as u64;
    while cut > batch_start {
        let mut torn = none.clone();
        for lsn in batch_start..cut {
            torn[ring_offset(lsn)] = all[ring_offset(lsn)];
        }
        kept_none.set_file_bytes(LOG_FILE, torn);
        if let Some(log) = scan(&kept_none).filter(|scan| scan.unfinished_split) {
            for name in [DATA_FILE, LOG_FILE, DOUBLEWRITE_FILE] {
                let bytes = kept_none.file_bytes(name).unwrap_or_else(|| panic!("{name} survives"));
                std::fs::write(dir.join(name), bytes).unwrap();
            }
            let crashed = CrashedLog { mtrs: log.mtrs, unfinished_mtrs: log.unfinished, end_lsn: log.end_lsn };
            return (model, crashed);
        }
        cut -= SECTOR_BYTES as u64;
    }
    panic!("no torn prefix of the batch's redo holds a split without the commit");
}

const SECTOR_BYTES: usize = mtrdb::fault::SECTOR_BYTES;

struct Scan {
    mtrs: u64,
    /// Mtrs after the last commit or abort.
    unfinished: u64,
    /// Whether one of those is a split (holds a `NODE_FORMAT` record).
    unfinished_split: bool,
    end_lsn: u64,
}

/// Scans the log of `storage` from its checkpoint, as recovery would (but leniently).
fn scan(storage: &FaultStorage) -> Option<Scan> {
    let file = storage.open_file(LOG_FILE, mtr::OpenMode::Existing).ok()?;
    let log = LogFile::open(file).ok()?;
    let checkpoint = log.latest_checkpoint().ok()?;
    let mut scanner = Scanner::new(&log, checkpoint, ScanMode::Lenient);
    let mut scan = Scan { mtrs: 0, unfinished: 0, unfinished_split: false, end_lsn: 0 };
    while let Some(frame) = scanner.next_mtr().ok()? {
        scan.mtrs += 1;
        if frame.flags & (MTR_COMMIT | MTR_ABORT) != 0 {
            scan.unfinished = 0;
            scan.unfinished_split = false;
        } else {
            scan.unfinished += 1;
            scan.unfinished_split |= mtr::RecordIter::new(frame.body).any(|r| r.kind == redo::kind::NODE_FORMAT);
        }
    }
    let end = scanner.end()?;
    if end.corruption.is_some() {
        return None;
    }
    scan.end_lsn = end.lsn.0;
    Some(scan)
}

/// Writes into `db` entries `key000000`, `key000001`, ... (`entries` of them, `value_len` bytes
/// each) in batches of 500 into the default keyspace, 20 entries into a keyspace "alpha", and one
/// value (`overflow`) in an overflow chain.
pub fn fill(db: &Db, entries: u32, value_len: usize) {
    let alpha = db.keyspace("alpha").unwrap();
    for start in (0..entries).step_by(500) {
        let mut batch = WriteBatch::new();
        for i in start..(start + 500).min(entries) {
            batch.insert(format!("key{i:06}"), vec![b'a' + (i % 26) as u8; value_len]);
        }
        db.write(batch).unwrap();
    }
    for i in 0..20u32 {
        alpha.insert(format!("a{i:02}"), format!("alpha {i}")).unwrap();
    }
    db.insert(b"overflow", (0..20_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
}

/// Runs the built `mtrdb` with `args`.
pub fn mtrdb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtrdb")).args(args).output().expect("the mtrdb binary runs")
}

/// Runs `mtrdb` and returns its standard output, failing the test (with stderr) unless it exits 0.
pub fn mtrdb_ok(args: &[&str]) -> String {
    let output = mtrdb(args);
    assert!(
        output.status.success(),
        "mtrdb {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `mtrdb`: its standard output if it exits 0, else its standard error.
pub fn mtrdb_result(args: &[&str]) -> Result<String, String> {
    let output = mtrdb(args);
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Asserts `mtrdb` failed with a message and without a panic; returns its standard error.
pub fn mtrdb_fails(args: &[&str]) -> String {
    let output = mtrdb(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "mtrdb {args:?} should fail with status 1; stderr: {stderr}");
    assert!(stderr.starts_with("mtrdb: error: "), "no error message: {stderr}");
    assert!(!stderr.contains("panicked"), "mtrdb {args:?} panicked: {stderr}");
    stderr
}

/// Every file of a directory: name, bytes and modification time.
pub fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let modified = entry.metadata().unwrap().modified().unwrap();
            (entry.file_name().to_string_lossy().into_owned(), (std::fs::read(entry.path()).unwrap(), modified))
        })
        .collect()
}

/// The entries of a database directory, read through the library (recovering it for real).
pub fn contents(dir: &Path) -> Model {
    let db = Db::open(dir).unwrap();
    let model = db.iter().map(|entry| entry.map(|(key, value)| (key.to_vec(), value.to_vec())).unwrap()).collect();
    db.close().unwrap();
    model
}

/// Every keyspace of a dump, by name (`""` for the default keyspace, always present).
pub type KeyspaceModels = BTreeMap<String, Model>;

/// Parses a dump written by `mtrdb dump` (format version 2) of a database without named
/// keyspaces: its entries.
pub fn parse_dump(text: &str) -> Model {
    let mut keyspaces = parse_dump_keyspaces(text);
    let default = keyspaces.remove("").unwrap();
    assert!(keyspaces.is_empty(), "the dump holds named keyspaces: {:?}", keyspaces.keys());
    default
}

/// Parses a dump written by `mtrdb dump` (format version 2): every keyspace's entries, checking
/// that keyspaces come sorted by name, keys ascending, and that the trailer's counts match.
pub fn parse_dump_keyspaces(text: &str) -> KeyspaceModels {
    assert!(text.ends_with('\n'), "the dump's last line ends with a line feed");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("# mtrdb dump v2"));
    let unhex = |hex: &str| -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    };
    let mut keyspaces = KeyspaceModels::new();
    let mut current = String::new();
    keyspaces.insert(current.clone(), Model::new());
    let (mut entries, mut keyspace_lines) = (0usize, 0usize);
    let mut trailer = None;
    for line in lines {
        assert!(trailer.is_none(), "a line after the trailer: {line:?}");
        if let Some(counts) = line.strip_prefix("# end ") {
            trailer = Some(counts.to_string());
        } else if let Some(hex) = line.strip_prefix("# keyspace ") {
            let name = String::from_utf8(unhex(hex)).unwrap();
            assert!(current.is_empty() || name > current, "keyspaces sorted by name, each once");
            assert!(keyspaces.insert(name.clone(), Model::new()).is_none());
            current = name;
            keyspace_lines += 1;
        } else {
            let (key, value) = line.split_once('\t').unwrap();
            let model = keyspaces.get_mut(&current).unwrap();
            let key = unhex(key);
            assert!(model.keys().next_back().is_none_or(|last| *last < key), "keys ascending");
            model.insert(key, unhex(value));
            entries += 1;
        }
    }
    assert_eq!(trailer, Some(format!("entries={entries} keyspaces={keyspace_lines}")), "the trailer counts the lines");
    keyspaces
}
