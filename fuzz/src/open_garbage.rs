//! Target `open_garbage`: opening database files of arbitrary bytes.
//!
//! The three files (`data.mtrdb`, `redo.log`, `dblwr`) are placed into a [`FaultStorage`] with
//! `set_file_bytes`, either raw from the input or as a real small database with parts edited.
//!
//! | field          | meaning                                                                 |
//! |----------------|-------------------------------------------------------------------------|
//! | `u8` base      | `% 4`: 0 raw files from the input; 1 a cleanly closed database (4 KiB pages); 2 the same database crashed with committed batches still only in the redo log (recovery replays them); 3 a cleanly closed database with 64 KiB pages |
//! | `u8` absent    | bit 0: no data file; bit 1: no redo log; bit 2: no doublewrite file      |
//! | base 0:        | `u16` data_len, `u16` log_len, then the data bytes, the log bytes, and the rest is the doublewrite file |
//! | base 1..=3:    | `u8` edits (`% 17`), each `op: u8` with file `op % 3` (data, log, doublewrite) and action `op / 3 % 4`: 0 write a blob (`u32` offset, blob ≤ 16 KiB); 1 set the length (`u32`, ≤ 2 MiB); 2 xor a byte (`u32` offset, `u8` mask); 3 copy `u16` bytes from `u32` to `u32` within the file. Offsets are taken modulo the file's length plus one. |
//!
//! A data file of length 0 means "create a new database"; that is fine.
//!
//! # Properties
//! `Db::open_storage`, `check`, `get` and iteration both ways return a typed error or a
//! valid result, never panic. When `check` accepts the database it is a valid database:
//! iteration succeeds and is strictly ascending, backward iteration is its reverse, `get` finds
//! every entry; a write then either fails with a typed error or succeeds, and after a successful
//! write and close the database reopens, passes `check` again and holds exactly the old
//! entries plus the new one.

use std::sync::{Arc, OnceLock};

use mtrdb::db::{DATA_FILE, DOUBLEWRITE_FILE, LOG_FILE};
use mtrdb::fault::FaultStorage;
use mtrdb::{Db, Options};

use crate::input::Reader;

/// Entries read at most, so a damaged tree that loops cannot hang the target.
const MAX_ENTRIES: usize = 4000;
const MAX_FILE_BYTES: u64 = 2 << 20;

/// The three files of a database.
#[derive(Clone, Debug, Default)]
pub struct Files {
    /// `data.mtrdb`.
    pub data: Option<Vec<u8>>,
    /// `redo.log`.
    pub log: Option<Vec<u8>>,
    /// `dblwr`.
    pub doublewrite: Option<Vec<u8>>,
}

/// The options every open uses.
#[must_use]
pub fn options() -> Options {
    Options::default().background_checkpoints(false).log_capacity(256 * 1024)
}

/// Keys of the base databases.
#[must_use]
pub fn base_key(index: u32) -> Vec<u8> {
    if index.is_multiple_of(5) {
        let mut key = vec![b'p'; 150];
        key.extend_from_slice(format!("{index:04}").as_bytes());
        key
    } else {
        format!("key{index:04}").into_bytes()
    }
}

fn base_value(index: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (index as usize * 31 + i * 7) as u8).collect()
}

fn files_of(storage: &FaultStorage) -> Files {
    Files {
        data: storage.file_bytes(DATA_FILE),
        log: storage.file_bytes(LOG_FILE),
        doublewrite: storage.file_bytes(DOUBLEWRITE_FILE),
    }
}

/// Builds a small database: splits (two levels), an overflow chain, a freed page, a checkpoint.
/// With `crash`, more committed batches follow the last checkpoint and the machine loses power
/// (keeping every pending write), so opening it replays them. `page_size` as `Options`.
#[must_use]
pub fn build_base(page_size: usize, crash: bool) -> Files {
    let storage = FaultStorage::new();
    let db = Db::open_storage(Arc::new(storage.clone()), "base".into(), options().page_size(page_size))
        .expect("create the base database");
    for index in 0..120u32 {
        db.insert(base_key(index), base_value(index, 20 + (index as usize % 7) * 9)).expect("insert");
    }
    db.insert(b"big", base_value(7, 3 * page_size + 100)).expect("insert an overflow value");
    db.insert(b"gone", base_value(8, page_size + 10)).expect("insert a second overflow value");
    for index in (0..120u32).step_by(4) {
        db.remove(base_key(index)).expect("remove");
    }
    db.remove(b"gone").expect("free an overflow chain");
    db.checkpoint().expect("checkpoint");
    if !crash {
        db.close().expect("close");
        return files_of(&storage);
    }
    for index in 120..160u32 {
        db.insert(base_key(index), base_value(index, 30)).expect("insert after the checkpoint");
    }
    db.insert(b"big", base_value(9, page_size + 1)).expect("replace the overflow value");
    db.remove(base_key(1)).expect("remove after the checkpoint");
    storage.crash_at(storage.op_count());
    drop(db);
    files_of(&storage.power_loss(1))
}

fn bases() -> &'static [Files; 3] {
    static BASES: OnceLock<[Files; 3]> = OnceLock::new();
    BASES.get_or_init(|| [build_base(4096, false), build_base(4096, true), build_base(65536, false)])
}

/// Runs one input (see the module doc).
pub fn run(data: &[u8]) {
    open_and_read(&files_for_input(data));
}

/// The files an input describes (see the module doc).
#[must_use]
pub fn files_for_input(data: &[u8]) -> Files {
    let mut input = Reader::new(data);
    let base = input.u8() % 4;
    let absent = input.u8();
    let mut files = if base == 0 {
        let data_len = input.u16() as usize;
        let log_len = input.u16() as usize;
        Files {
            data: Some(input.bytes(data_len).to_vec()),
            log: Some(input.bytes(log_len).to_vec()),
            doublewrite: Some(input.rest().to_vec()),
        }
    } else {
        let mut files = bases()[base as usize - 1].clone();
        let edits = input.u8() % 17;
        for _ in 0..edits {
            edit(&mut input, &mut files);
        }
        files
    };
    if absent & 1 == 1 {
        files.data = None;
    }
    if absent & 2 == 2 {
        files.log = None;
    }
    if absent & 4 == 4 {
        files.doublewrite = None;
    }
    files
}

/// A storage holding the files an input describes (for diagnosing a finding).
#[must_use]
pub fn storage_for_input(data: &[u8]) -> FaultStorage {
    storage_of(&files_for_input(data))
}

fn edit(input: &mut Reader<'_>, files: &mut Files) {
    let op = input.u8();
    let file = match op % 3 {
        0 => &mut files.data,
        1 => &mut files.log,
        _ => &mut files.doublewrite,
    };
    let bytes = file.get_or_insert_with(Vec::new);
    let len = bytes.len() as u64;
    let offset = |value: u32| (u64::from(value) % (len + 1)) as usize;
    match op / 3 % 4 {
        0 => {
            let at = offset(input.u32());
            let blob = input.blob(16 << 10);
            if bytes.len() < at + blob.len() {
                bytes.resize(at + blob.len(), 0);
            }
            bytes[at..at + blob.len()].copy_from_slice(blob);
        }
        1 => bytes.resize((u64::from(input.u32()) % (MAX_FILE_BYTES + 1)) as usize, 0),
        2 => {
            let at = offset(input.u32());
            let mask = input.u8();
            if let Some(byte) = bytes.get_mut(at) {
                *byte ^= mask;
            }
        }
        _ => {
            let from = offset(input.u32());
            let to = offset(input.u32());
            let count = input.u16() as usize;
            let count = count.min(bytes.len() - from).min(bytes.len() - to);
            bytes.copy_within(from..from + count, to);
        }
    }
}

fn storage_of(files: &Files) -> FaultStorage {
    let storage = FaultStorage::new();
    for (name, bytes) in [(DATA_FILE, &files.data), (LOG_FILE, &files.log), (DOUBLEWRITE_FILE, &files.doublewrite)] {
        if let Some(bytes) = bytes {
            storage.set_file_bytes(name, bytes.clone());
        }
    }
    storage
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads up to [`MAX_ENTRIES`] entries; `Err` if iteration failed.
fn read_all(db: &Db, backward: bool) -> Result<(Entries, bool), mtrdb::Error> {
    let mut entries = Vec::new();
    let mut iter = db.iter();
    loop {
        let next = if backward { iter.next_back() } else { iter.next() };
        match next {
            None => return Ok((entries, true)),
            Some(Ok((key, value))) => entries.push((key.to_vec(), value.to_vec())),
            Some(Err(error)) => return Err(error),
        }
        if entries.len() >= MAX_ENTRIES {
            return Ok((entries, false));
        }
    }
}

/// Opens the files and reads everything; asserts the properties of the module doc.
pub fn open_and_read(files: &Files) {
    let storage = storage_of(files);
    let Ok(db) = Db::open_storage(Arc::new(storage.clone()), "fuzz".into(), options()) else { return };
    let checked = db.check();
    let forward = read_all(&db, false);
    let backward = read_all(&db, true);
    for key in [&b"big"[..], b"key0001", b"key0119", b"gone", &base_key(5)] {
        let _ = db.get(key);
    }
    let _ = db.range(&b"key0050"[..]..&b"key0070"[..]).take(50).count();
    let _ = db.range(&b"key0050"[..]..).rev().take(50).count();
    if checked.is_err() {
        if let Ok((entries, _)) = &forward {
            for (key, _) in entries.iter().take(64) {
                let _ = db.get(key);
            }
        }
        return;
    }
    // A database `check` accepts is a valid database.
    let (entries, complete) = match forward {
        Ok(read) => read,
        Err(error) => panic!("check passed, but iteration failed: {error}"),
    };
    assert!(entries.windows(2).all(|pair| pair[0].0 < pair[1].0), "iteration is not strictly ascending");
    match backward {
        Ok((mut back, back_complete)) => {
            if complete && back_complete {
                back.reverse();
                assert!(back == entries, "backward iteration is not the reverse of forward iteration");
            }
        }
        Err(error) => panic!("check passed, but backward iteration failed: {error}"),
    }
    for (key, value) in &entries {
        match db.get(key) {
            Ok(Some(found)) => assert!(&found == value, "get disagrees with iteration"),
            Ok(None) => panic!("check passed, but get misses an iterated key"),
            Err(error) => panic!("check passed, but get failed: {error}"),
        }
    }
    if !complete {
        return;
    }
    let new_key = b"fuzz-new-key".to_vec();
    let new_value = b"fuzz-new-value".to_vec();
    if db.insert(&new_key, &new_value).is_err() {
        return;
    }
    if let Err(error) = db.check() {
        panic!("check passed, an insert succeeded, and check now fails: {error}");
    }
    if db.close().is_err() {
        return;
    }
    let db = match Db::open_storage(Arc::new(storage), "fuzz".into(), options()) {
        Ok(db) => db,
        Err(error) => panic!("a valid database, written to and closed, does not reopen: {error}"),
    };
    if let Err(error) = db.check() {
        panic!("a valid database, written to and closed, fails check after reopening: {error}");
    }
    let mut expected = entries;
    match expected.binary_search_by(|(key, _)| key.cmp(&new_key)) {
        Ok(index) => expected[index].1 = new_value,
        Err(index) => expected.insert(index, (new_key, new_value)),
    }
    match read_all(&db, false) {
        Ok((found, true)) => assert!(found == expected, "the reopened database lost or changed entries"),
        Ok((_, false)) => {}
        Err(error) => panic!("iteration of the reopened database failed: {error}"),
    }
}
