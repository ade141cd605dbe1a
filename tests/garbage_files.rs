//! Garbage in place of database files, foreign directories, a second opener, mismatched and
//! invalid options, and out-of-range keys and values.
//!
//! Guards against a damaged or substituted file being taken for a database: replacing the data
//! file, the redo log or the doublewrite file (or all of them) with random bytes, zeros, a
//! truncated copy or another database's file must give an error from `open` or from the first
//! read, never `Ok` with wrong data and never a panic. Only where nothing can be lost is `Ok`
//! right, and then the data must be exactly the original (the doublewrite file of a cleanly
//! closed database holds nothing needed; a complete set of another database's files is that
//! database). Also guards the typed errors of the API (`ForeignDirectory`, `Locked`,
//! `PageSizeMismatch`, `InvalidOption`, `KeySize`, `ValueTooLarge`, `BatchTooLarge`) and that a
//! refused call leaves the database working and complete.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use common::files::{checkpoint_lsn, read_files, write_files, FILES};
use common::rng::Rng;
use mtrdb::{Db, Error, Options, WriteBatch, MAX_KEY_BYTES, MAX_VALUE_BYTES};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn small_options() -> Options {
    Options::default().log_capacity(256 * 1024)
}

/// A closed database with a few hundred keys, two overflow values and some free pages.
fn build_db(dir: &Path, seed: u64, keys: u64, prefix: &str) -> Model {
    let mut rng = Rng(seed);
    let mut model = Model::new();
    let db = Db::open_with(dir, small_options()).unwrap();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(50) {
        let mut batch = WriteBatch::new();
        for &k in chunk {
            let key = format!("{prefix}{k:05}").into_bytes();
            let len = 10 + (rng.next() % 300) as usize;
            let value = rng.bytes(len);
            batch.insert(&key, &value);
            model.insert(key, value);
        }
        db.write(batch).unwrap();
    }
    for k in 0..2 {
        let key = format!("big{seed}-{k}").into_bytes();
        let value = rng.bytes(10_000 + k * 5000);
        db.insert(&key, &value).unwrap();
        model.insert(key, value);
    }
    db.insert(b"temporary", rng.bytes(20_000)).unwrap();
    assert!(db.remove(b"temporary").unwrap());
    for k in (0..keys).step_by(7) {
        let key = format!("{prefix}{k:05}").into_bytes();
        assert!(db.remove(&key).unwrap());
        model.remove(&key);
    }
    let report = db.check().unwrap();
    assert!(report.free_pages > 0 && report.overflow_pages > 0 && report.height > 1, "{report:?}");
    db.close().unwrap();
    model
}

/// What opening and reading a directory gave.
enum Outcome {
    OpenFailed(String),
    /// The error, and the entries reads had returned before it.
    ReadFailed(String, Model),
    Opened(Model),
    Panicked(String),
}

/// Opens `dir` and reads everything: iteration both ways, `check`, and a `get` of every key.
fn open_and_read(dir: &Path) -> Outcome {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let db = match Db::open_with(dir, small_options()) {
            Ok(db) => db,
            Err(e) => return Outcome::OpenFailed(e.to_string()),
        };
        let mut model = Model::new();
        for entry in db.iter() {
            match entry {
                Ok((key, value)) => {
                    model.insert(key.to_vec(), value.to_vec());
                }
                Err(e) => return Outcome::ReadFailed(format!("iteration: {e}"), model.clone()),
            }
        }
        let mut count = 0usize;
        for entry in db.iter().rev() {
            match entry {
                Ok((key, value)) if model.get(&key[..]).is_some_and(|v| *v == value) => count += 1,
                Ok(_) => return Outcome::ReadFailed("reverse iteration disagrees with forward".into(), model.clone()),
                Err(e) => return Outcome::ReadFailed(format!("reverse iteration: {e}"), model.clone()),
            }
        }
        if count != model.len() {
            return Outcome::ReadFailed("reverse iteration disagrees with forward".into(), model.clone());
        }
        match db.check() {
            Ok(report) if report.entries == model.len() as u64 => {}
            Ok(report) => {
                return Outcome::ReadFailed(format!("check counts {} entries", report.entries), model.clone())
            }
            Err(e) => return Outcome::ReadFailed(format!("check: {e}"), model.clone()),
        }
        for (key, value) in &model {
            match db.get(key) {
                Ok(Some(got)) if &got == value => {}
                Ok(other) => {
                    let what = format!("get disagrees with iteration: {:?}", other.map(|v| v.len()));
                    return Outcome::ReadFailed(what, model.clone());
                }
                Err(e) => return Outcome::ReadFailed(format!("get: {e}"), model.clone()),
            }
        }
        Outcome::Opened(model)
    }));
    result.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Outcome::Panicked(message)
    })
}

#[derive(Clone, Copy, Debug)]
enum Garbage {
    Random,
    Zeros,
    TruncatedHalf,
    TruncatedOnePage,
    Truncated10,
    Truncated0,
    FromOtherDatabase,
}

const ALL_GARBAGE: [Garbage; 7] = [
    Garbage::Random,
    Garbage::Zeros,
    Garbage::TruncatedHalf,
    Garbage::TruncatedOnePage,
    Garbage::Truncated10,
    Garbage::Truncated0,
    Garbage::FromOtherDatabase,
];

fn garbage_for(kind: Garbage, original: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    match kind {
        Garbage::Random => rng.bytes(original.len()),
        Garbage::Zeros => vec![0; original.len()],
        Garbage::TruncatedHalf => original[..original.len() / 2].to_vec(),
        Garbage::TruncatedOnePage => original[..original.len().min(4096)].to_vec(),
        Garbage::Truncated10 => original[..original.len().min(10)].to_vec(),
        Garbage::Truncated0 => Vec::new(),
        Garbage::FromOtherDatabase => other.to_vec(),
    }
}

/// Every kind of garbage in place of each file and of all of them.
#[test]
fn garbage_in_place_of_database_files() {
    let scratch = tempfile::tempdir().unwrap();
    let (ours, theirs) = (scratch.path().join("ours"), scratch.path().join("theirs"));
    let model = build_db(&ours, 1, 400, "ours");
    let other_model = build_db(&theirs, 2, 900, "theirs");
    let pristine = read_files(&ours);
    let other = read_files(&theirs);
    assert!(pristine.iter().all(|file| !file.is_empty()), "a database file is empty after close");
    let mut rng = Rng(99);
    let mut failures = Vec::new();
    let mut cases = 0;
    // Which files: one index, or all (None).
    let targets: [Option<usize>; 4] = [Some(0), Some(1), Some(2), None];
    for target in targets {
        for kind in ALL_GARBAGE {
            let case = tempfile::tempdir().unwrap();
            let mut files = pristine.clone();
            for (index, file) in files.iter_mut().enumerate() {
                if target.is_none_or(|t| t == index) {
                    *file = garbage_for(kind, &pristine[index], &other[index], &mut rng);
                }
            }
            write_files(case.path(), &files);
            let what = format!("{} replaced by {kind:?}", target.map_or("every file", |t| FILES[t]));
            let outcome = open_and_read(case.path());
            cases += 1;
            let verdict = match (target, kind, &outcome) {
                (_, _, Outcome::Panicked(message)) => Err(format!("panicked: {message}")),
                // A cleanly closed database needs nothing from its doublewrite file. (What a
                // foreign one may do to the data file: `foreign_doublewrite_*` below.)
                (Some(2), _, Outcome::Opened(got)) if got == &model => Ok(()),
                // An emptied data file beside its log: `data_file_emptied_*` below.
                (Some(0), Garbage::Truncated0, _) => Ok(()),
                (Some(2), _, other) => Err(format!("expected Ok with the original data, got {}", short(other))),
                // A complete set of another database's files is that database.
                (None, Garbage::FromOtherDatabase, Outcome::Opened(got)) if got == &other_model => Ok(()),
                (None, Garbage::FromOtherDatabase, other) => {
                    Err(format!("expected the other database, got {}", short(other)))
                }
                // All files empty: indistinguishable from a creation cut short; a new database.
                (None, Garbage::Truncated0, Outcome::Opened(got)) if got.is_empty() => Ok(()),
                (_, _, Outcome::OpenFailed(_)) => Ok(()),
                // An error at some read is right, if nothing read before it was wrong.
                (_, _, Outcome::ReadFailed(_, seen)) => {
                    let from = |source: &Model| seen.iter().all(|(k, v)| source.get(k) == Some(v));
                    if from(&model) || from(&other_model) {
                        Ok(())
                    } else {
                        Err(format!("reads returned entries of neither database before failing: {}", short(&outcome)))
                    }
                }
                (_, _, Outcome::Opened(got)) => Err(format!(
                    "opened without an error and read {} entries ({}); an error was due",
                    got.len(),
                    if got == &model { "the original data, by luck" } else { "NOT the original data" }
                )),
            };
            println!("{what}: {} -> {}", short(&outcome), if verdict.is_ok() { "ok" } else { "WRONG" });
            if let Err(problem) = verdict {
                failures.push(format!("{what}: {problem}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {cases} cases went wrong:\n{}", failures.len(), failures.join("\n"));
}

/// The data file emptied, or deleted, beside a redo log that has checkpoints past the database's
/// creation: that is a lost data file, not a new database. `open` must refuse, and must leave the
/// redo log as it was (it is all that is left).
#[test]
fn data_file_emptied_or_deleted_beside_its_log_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("db");
    build_db(&dir, 1, 400, "key");
    let log = std::fs::read(dir.join(FILES[1])).unwrap();
    let mut problems = Vec::new();
    for deleted in [false, true] {
        let case = tempfile::tempdir().unwrap();
        for name in &FILES[1..] {
            std::fs::copy(dir.join(name), case.path().join(name)).unwrap();
        }
        if !deleted {
            std::fs::write(case.path().join(FILES[0]), b"").unwrap();
        }
        let what = if deleted { "data file deleted" } else { "data file emptied" };
        let outcome = open_and_read(case.path());
        println!("{what}: {}", short(&outcome));
        if !matches!(outcome, Outcome::OpenFailed(_)) {
            problems.push(format!("{what}: expected open to fail, got {}", short(&outcome)));
        }
        if std::fs::read(case.path().join(FILES[1])).ok().as_ref() != Some(&log) {
            problems.push(format!("{what}: the redo log was rewritten (its committed history is gone)"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Another database's doublewrite file beside ours: its page copies must never be written into
/// our data file. After a clean close, open must not touch the data file at all; with a page of
/// ours damaged, the foreign copy of that page id must not be taken as the repair (it is another
/// database's page). Right answers: the original data (nothing damaged) or an error (a damaged
/// page), never the other database's entries.
#[test]
fn foreign_doublewrite_never_repairs_a_damaged_page() {
    let scratch = tempfile::tempdir().unwrap();
    let (ours, theirs) = (scratch.path().join("ours"), scratch.path().join("theirs"));
    // The same key names in both, different values; theirs has the longer history (larger LSNs).
    let model = build_db(&ours, 1, 400, "key");
    build_db(&theirs, 2, 1500, "key");
    // Their doublewrite file as a checkpoint leaves it (a clean close gives its space back).
    let mut their_dblwr = Vec::new();
    for round in 0..4u8 {
        let db = Db::open_with(&theirs, small_options()).unwrap();
        let mut batch = WriteBatch::new();
        for k in 0..1500 {
            batch.insert(format!("key{k:05}"), [round; 30]);
        }
        db.write(batch).unwrap();
        db.checkpoint().unwrap();
        their_dblwr = std::fs::read(theirs.join(FILES[2])).unwrap();
        db.close().unwrap();
    }
    // Our checkpoint LSN, from the redo log's two checkpoint slots.
    let our_log = std::fs::read(ours.join(FILES[1])).unwrap();
    let our_checkpoint = checkpoint_lsn(&our_log);
    let our_data = std::fs::read(ours.join(FILES[0])).unwrap();
    let page = 4096;
    let lsn_of = |image: &[u8]| u64::from_le_bytes(image[8..16].try_into().unwrap());
    let id_of = |image: &[u8]| u32::from_le_bytes(image[16..20].try_into().unwrap()) as usize;
    // A page id that is a leaf in our file and has a copy newer than our checkpoint in theirs.
    let target = their_dblwr
        .chunks_exact(page)
        .filter(|image| lsn_of(image) > our_checkpoint)
        .map(id_of)
        .find(|&id| id > 0 && (id + 1) * page <= our_data.len() && our_data[id * page + 4] == 2)
        .expect("no page id to damage: the setup no longer produces overlapping pages");
    let mut problems = Vec::new();
    // Nothing damaged: opens right, and leaves the data file alone.
    std::fs::write(ours.join(FILES[2]), &their_dblwr).unwrap();
    match open_and_read(&ours) {
        Outcome::Opened(got) if got == model => {}
        other => problems.push(format!("with only a foreign doublewrite file: {}", short(&other))),
    }
    let data_after = std::fs::read(ours.join(FILES[0])).unwrap();
    if data_after != our_data {
        problems.push(format!(
            "opening a cleanly closed database beside a foreign doublewrite file wrote foreign pages \
             into the data file (it went from {} to {} bytes)",
            our_data.len(),
            data_after.len()
        ));
    }
    // Damaged (starting again from the closed files): an error, and no foreign entry returned.
    let mut damaged = our_data.clone();
    damaged[target * page + 2000] ^= 0x5a;
    std::fs::write(ours.join(FILES[0]), &damaged).unwrap();
    std::fs::write(ours.join(FILES[1]), &our_log).unwrap();
    std::fs::write(ours.join(FILES[2]), &their_dblwr).unwrap();
    // Every entry any read returns must be ours; an error may come at any point.
    let mut foreign = Vec::new();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let db = Db::open_with(&ours, small_options())?;
        for entry in db.iter().chain(db.iter().rev()) {
            let (key, value) = entry?;
            if model.get(&key[..]).is_none_or(|v| *v != value) {
                foreign.push(String::from_utf8_lossy(&key).into_owned());
            }
        }
        db.check().map(|_| ())
    }));
    println!("damaged page {target}, foreign doublewrite: {outcome:?}");
    let outcome = outcome.unwrap_or_else(|_| panic!("opening with a foreign doublewrite file panicked"));
    if !foreign.is_empty() {
        problems.push(format!(
            "page {target} was damaged and the other database's doublewrite copy of it was taken as the \
             repair: reads returned {} entries that are not ours (first {:?}); the outcome was {outcome:?}",
            foreign.len(),
            foreign.first()
        ));
    }
    if outcome.is_ok() {
        problems.push(format!("page {target} was damaged, yet open, iteration and check all succeeded"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn short(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Opened(model) => format!("opened, {} entries", model.len()),
        Outcome::OpenFailed(error) => format!("open failed: {error}"),
        Outcome::ReadFailed(error, seen) => format!("read failed after {} entries: {error}", seen.len()),
        Outcome::Panicked(message) => format!("PANICKED: {message}"),
    }
}

#[test]
fn directory_of_unrelated_files_is_foreign() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not a database").unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();
    let result = Db::open(dir.path());
    assert!(matches!(result, Err(Error::ForeignDirectory { .. })), "got {:?}", result.err());
    assert!(!dir.path().join("data.mtrdb").exists(), "a refused open created a data file");
    assert_eq!(std::fs::read(dir.path().join("notes.txt")).unwrap(), b"not a database");
    // An empty directory, or a missing one, is a new database.
    let empty = tempfile::tempdir().unwrap();
    Db::open(empty.path()).unwrap().close().unwrap();
    Db::open(empty.path().join("nested/deeper")).unwrap().close().unwrap();
}

#[test]
fn second_open_of_a_live_database_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.insert(b"key", b"value").unwrap();
    let second = Db::open(dir.path());
    assert!(matches!(second, Err(Error::Locked { .. })), "got {:?}", second.err());
    let third = Db::open_with(dir.path(), Options::default().page_size(8192));
    assert!(matches!(third, Err(Error::Locked { .. })), "got {:?}", third.err());
    // The refused opens disturbed nothing.
    assert_eq!(db.get(b"key").unwrap().as_deref(), Some(&b"value"[..]));
    db.insert(b"key2", b"value2").unwrap();
    db.close().unwrap();
    let db = Db::open(dir.path()).unwrap();
    assert_eq!(db.get(b"key2").unwrap().as_deref(), Some(&b"value2"[..]));
    db.check().unwrap();
}

#[test]
fn reopening_with_another_page_size_is_a_mismatch() {
    for (created, requested) in [(4096usize, 8192usize), (65536, 4096), (8192, 16384)] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_with(dir.path(), Options::default().page_size(created)).unwrap();
        db.insert(b"key", b"value").unwrap();
        db.close().unwrap();
        let result = Db::open_with(dir.path(), Options::default().page_size(requested));
        assert!(
            matches!(result, Err(Error::PageSizeMismatch { existing, requested: r }) if existing == created && r == requested),
            "created with {created}, opened with {requested}: got {:?}",
            result.err()
        );
        let db = Db::open(dir.path()).unwrap();
        assert_eq!(db.page_size(), created);
        assert_eq!(db.get(b"key").unwrap().as_deref(), Some(&b"value"[..]));
    }
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let invalid = [
        Options::default().page_size(0),
        Options::default().page_size(2048),
        Options::default().page_size(4095),
        Options::default().page_size(6144),
        Options::default().page_size(131_072),
        Options::default().log_capacity(0),
        Options::default().log_capacity(4096),
        Options::default().log_capacity(256 * 1024 - 4096),
        Options::default().log_capacity(256 * 1024 + 1),
        Options::default().log_capacity(1_000_000),
    ];
    for options in invalid {
        let result = Db::open_with(dir.path(), options.clone());
        assert!(matches!(result, Err(Error::InvalidOption(_))), "{options:?}: got {:?}", result.err());
        assert!(!dir.path().join("data.mtrdb").exists(), "{options:?}: a refused open created a data file");
    }
    // The boundaries themselves are valid.
    for options in [
        Options::default().page_size(4096).log_capacity(256 * 1024),
        Options::default().page_size(65536).log_capacity(260 * 1024),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_with(dir.path(), options).unwrap();
        db.insert(b"k", b"v").unwrap();
        db.close().unwrap();
    }
    // Invalid options on an existing database are refused too, and harm nothing.
    let db = Db::open(dir.path()).unwrap();
    db.insert(b"k", b"v").unwrap();
    db.close().unwrap();
    let result = Db::open_with(dir.path(), Options::default().page_size(5000));
    assert!(matches!(result, Err(Error::InvalidOption(_))), "got {:?}", result.err());
    assert_eq!(Db::open(dir.path()).unwrap().get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

fn assert_contents(db: &Db, model: &Model, context: &str) {
    let got: Model = db.iter().map(|entry| entry.map(|(key, value)| (key.to_vec(), value.to_vec())).unwrap()).collect();
    assert!(&got == model, "{context}: contents differ from the model ({} vs {} entries)", got.len(), model.len());
    assert_eq!(db.check().unwrap().entries, model.len() as u64, "{context}");
}

#[test]
fn bad_keys_and_values_are_refused_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_options()).unwrap();
    let mut model = Model::new();
    for k in 0..200u32 {
        let (key, value) = (format!("key{k:04}").into_bytes(), vec![k as u8; 40]);
        db.insert(&key, &value).unwrap();
        model.insert(key, value);
    }
    let long_key = vec![b'x'; MAX_KEY_BYTES + 1];
    let max_key = vec![b'y'; MAX_KEY_BYTES];

    let result = db.insert(b"", b"value");
    assert!(matches!(result, Err(Error::KeySize { len: 0, .. })), "empty key insert: {result:?}");
    let result = db.insert(&long_key, b"value");
    assert!(
        matches!(result, Err(Error::KeySize { len, max }) if len == MAX_KEY_BYTES + 1 && max == MAX_KEY_BYTES),
        "1025-byte key insert: {result:?}"
    );
    let result = db.get(b"");
    assert!(matches!(result, Err(Error::KeySize { len: 0, .. })), "empty key get: {result:?}");
    let result = db.get(&long_key);
    assert!(matches!(result, Err(Error::KeySize { .. })), "1025-byte key get: {result:?}");
    let result = db.remove(b"");
    assert!(matches!(result, Err(Error::KeySize { len: 0, .. })), "empty key remove: {result:?}");
    let result = db.remove(&long_key);
    assert!(matches!(result, Err(Error::KeySize { .. })), "1025-byte key remove: {result:?}");

    let too_large = vec![7u8; MAX_VALUE_BYTES + 1];
    let result = db.insert(b"key0001", &too_large);
    assert!(
        matches!(result, Err(Error::ValueTooLarge { len, max }) if len == MAX_VALUE_BYTES + 1 && max == MAX_VALUE_BYTES),
        "oversized value: {result:?}"
    );
    drop(too_large);

    // A batch with one bad operation is refused whole.
    let mut batch = WriteBatch::new();
    batch.insert(b"new-in-bad-batch", b"v").remove(b"key0002").insert(b"", b"v");
    let result = db.write(batch);
    assert!(matches!(result, Err(Error::KeySize { len: 0, .. })), "batch with an empty key: {result:?}");
    let mut batch = WriteBatch::new();
    batch.insert(b"new-in-bad-batch", b"v").remove(b"key0003").remove(&long_key);
    let result = db.write(batch);
    assert!(matches!(result, Err(Error::KeySize { .. })), "batch with a long key: {result:?}");

    // A batch whose redo cannot fit in the 256 KiB log is refused whole, too.
    let mut batch = WriteBatch::new();
    batch.insert(b"new-in-huge-batch", b"v").remove(b"key0004").insert(b"huge", vec![1u8; 600 * 1024]);
    let result = db.write(batch);
    assert!(matches!(result, Err(Error::BatchTooLarge { .. })), "batch larger than the log: {result:?}");
    assert_contents(&db, &model, "after the refused calls");

    // A batch that passes the up-front estimate but whose splits outgrow the log half-way: its
    // mtrs already in the log are abandoned (an abort record), the pages put back.
    let mut batch = WriteBatch::new();
    for i in 0..160u32 {
        batch.insert(format!("split-heavy{:06}", i * 7919 % 100_000), vec![2u8; 1300]);
    }
    let result = db.write(batch);
    assert!(
        matches!(result, Err(Error::BatchTooLarge { needed, capacity }) if needed > capacity - 4096),
        "batch outgrowing the log: {result:?}"
    );
    assert_contents(&db, &model, "after a batch abandoned half-way");
    // A crash now (the files as they are, the log flushed) recovers without the abandoned batch.
    db.flush().unwrap();
    let image = tempfile::tempdir().unwrap();
    for name in FILES {
        std::fs::copy(dir.path().join(name), image.path().join(name)).unwrap();
    }
    let recovered = Db::open_with(image.path(), small_options()).unwrap();
    assert_contents(&recovered, &model, "recovered after a batch abandoned half-way");
    assert!(recovered.recovery_report().batches_aborted > 0, "{:?}", recovered.recovery_report());
    recovered.close().unwrap();

    // The limits themselves work: a maximum key, an empty value, a value that needs the log
    // to checkpoint first.
    db.insert(&max_key, b"").unwrap();
    model.insert(max_key.clone(), Vec::new());
    db.insert(b"large", vec![3u8; 100 * 1024]).unwrap();
    model.insert(b"large".to_vec(), vec![3u8; 100 * 1024]);
    let mut batch = WriteBatch::new();
    batch.insert(b"key0005", b"replaced").remove(b"key0006");
    db.write(batch).unwrap();
    model.insert(b"key0005".to_vec(), b"replaced".to_vec());
    model.remove(b"key0006".as_slice());
    assert_eq!(db.get(&max_key).unwrap().as_deref(), Some(&b""[..]));
    assert_contents(&db, &model, "after more writes");
    drop(db);
    let db = Db::open_with(dir.path(), small_options()).unwrap();
    assert_contents(&db, &model, "after reopening");
    db.close().unwrap();
}
