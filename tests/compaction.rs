//! Compaction (`Db::compact`): the file shrinks, the contents stay, and it stays so across
//! writers running beside it, an iterator kept open, overflow chains, keyspaces, reopens, a crash
//! at every I/O boundary of a compaction, and an I/O error at every one.
//!
//! - `compaction_gives_space_back`: random keys, most removed; `compact` must shrink the data
//!   file to at most 1.3 times the pages the trees hold (the floor: compaction moves pages, it
//!   does not merge them), keep every entry, pass `check()`, and reopen the same.
//! - `compaction_beside_writers_and_an_open_iterator`: two writer threads and a reader go on
//!   during `compact`; an iterator opened before it reads its snapshot whole; afterwards the
//!   database equals the writers' models and passes `check()`.
//! - `compaction_moves_chains_and_keyspaces`: large values (overflow chains) and several
//!   keyspaces, most removed, then compacted.
//! - `a_crash_at_every_io_boundary_of_a_compaction` and `an_io_error_at_every_boundary_of_a_compaction`
//!   (fault-injecting storage): each recovery passes `check()` and holds exactly the contents.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::rng::Rng;
use mtrdb::fault::FaultStorage;
use mtrdb::{Db, Options, ReplayJournal, WriteBatch};

use common::{all_contents as contents, AllContents as Contents};

fn value(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    rng.bytes(len)
}

/// Fills `db`: `keys` random 16-byte keys with `value_len`-byte values in the default keyspace
/// (and, with `keyspaces`, spread over three more), some values large; then removes all but
/// `keep_one_in` of them. Returns the model.
fn fill_and_thin(db: &Db, keys: u64, value_len: usize, keyspaces: bool, keep_one_in: u64, seed: u64) -> Contents {
    let names = ["", "alpha", "beta", "gamma"];
    let mut model = Contents::new();
    let mut rng = Rng(seed);
    let mut all = Vec::new();
    for start in (0..keys).step_by(100) {
        let mut batch = WriteBatch::new();
        for _ in start..(start + 100).min(keys) {
            let key = rng.bytes(16);
            let name = if keyspaces { names[rng.below(4) as usize] } else { "" };
            let len = if rng.below(200) == 0 { 3000 + rng.below(40_000) as usize } else { value_len };
            let value = value(rng.next(), len);
            if name.is_empty() {
                batch.insert(&key, &value);
            } else {
                batch.insert_in(&db.keyspace(name).unwrap(), &key, &value);
            }
            model.insert((name.to_string(), key.clone()), value);
            all.push((name, key));
        }
        db.write(batch).unwrap();
    }
    for chunk in all.chunks(100) {
        let mut batch = WriteBatch::new();
        for (name, key) in chunk {
            if rng.below(keep_one_in) == 0 {
                continue;
            }
            if name.is_empty() {
                batch.remove(key);
            } else {
                batch.remove_in(&db.keyspace(name).unwrap(), key);
            }
            model.remove(&(name.to_string(), key.clone()));
        }
        db.write(batch).unwrap();
    }
    model
}

fn data_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("data.mtrdb")).unwrap().len()
}

/// Pages the trees hold, with the meta page: the least a compaction can shrink the file to.
fn live_pages(db: &Db) -> u64 {
    let check = db.check().unwrap();
    check.leaf_pages + check.branch_pages + check.overflow_pages + 1
}

#[test]
fn compaction_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let model = fill_and_thin(&db, 100_000, 100, false, 10, 1);
    db.checkpoint().unwrap();
    let before = data_len(dir.path());
    let report = db.compact().unwrap();
    let after = data_len(dir.path());
    let live = live_pages(&db) * db.page_size() as u64;
    println!("{report:?}\nfile {before} -> {after} bytes; the trees hold {live} bytes");
    assert_eq!(report.file_bytes_after, after);
    assert!(!report.cut_deferred);
    assert!(after as f64 <= live as f64 * 1.3, "the file holds {after} bytes for {live} bytes of pages");
    assert!(contents(&db) == model);
    db.close().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.check().unwrap();
    assert!(contents(&db) == model);
    assert_eq!(data_len(dir.path()), after);
    // A second compaction has nothing to do.
    let again = db.compact().unwrap();
    assert_eq!(again.pages_moved, 0, "{again:?}");
    assert_eq!(again.file_bytes_after, after);
}

#[test]
fn compaction_moves_chains_and_keyspaces() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let model = fill_and_thin(&db, 20_000, 300, true, 5, 2);
    let report = db.compact().unwrap();
    println!("{report:?}");
    assert!(report.pages_moved > 0);
    db.check().unwrap();
    assert!(contents(&db) == model);
    let live = live_pages(&db) * db.page_size() as u64;
    // Keyspace roots do not move, so allow for them.
    assert!(report.file_bytes_after as f64 <= live as f64 * 1.3 + 4.0 * 4096.0, "{report:?}, live {live}");
    db.close().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.check().unwrap();
    assert!(contents(&db) == model);
}

#[test]
fn compaction_beside_writers_and_an_open_iterator() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path()).unwrap());
    let base = fill_and_thin(&db, 60_000, 100, false, 10, 3);
    // An iterator opened before: reads its snapshot whole, whatever compaction does meanwhile.
    let mut early = db.iter();
    let first = early.next().unwrap().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u8)
        .map(|writer| {
            let (db, stop) = (Arc::clone(&db), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut rng = Rng(100 + u64::from(writer));
                let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
                let mut batches = 0;
                while !stop.load(Ordering::Relaxed) || batches < 50 {
                    let mut batch = WriteBatch::new();
                    for _ in 0..20 {
                        let key = [&[b'w', writer][..], &rng.below(5000).to_le_bytes()[..]].concat();
                        if rng.below(3) == 0 {
                            batch.remove(&key);
                            model.remove(&key);
                        } else {
                            let value = value(rng.next(), 50 + rng.below(200) as usize);
                            batch.insert(&key, &value);
                            model.insert(key, value);
                        }
                    }
                    db.write(batch).unwrap();
                    batches += 1;
                }
                model
            })
        })
        .collect();
    let reader = {
        let (db, stop) = (Arc::clone(&db), Arc::clone(&stop));
        let sample: Vec<(Vec<u8>, Vec<u8>)> =
            base.iter().step_by(97).map(|((_, k), v)| (k.clone(), v.clone())).collect();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (key, value) in &sample {
                    assert_eq!(db.get(key).unwrap().as_deref(), Some(&value[..]));
                    reads += 1;
                }
            }
            reads
        })
    };
    let report = db.compact().unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut expected = base.clone();
    for writer in writers {
        for (key, value) in writer.join().unwrap() {
            expected.insert((String::new(), key), value);
        }
    }
    let reads = reader.join().unwrap();
    println!("{report:?}; {reads} reads beside it");
    assert!(report.pages_moved > 0);
    assert!(report.cut_deferred, "the open iterator should keep the file's tail");
    // The early iterator: exactly the base contents.
    let mut seen = vec![first];
    for entry in early {
        seen.push(entry.unwrap());
    }
    let seen: Vec<(Vec<u8>, Vec<u8>)> = seen.into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    let base_entries: Vec<(Vec<u8>, Vec<u8>)> = base.iter().map(|((_, k), v)| (k.clone(), v.clone())).collect();
    assert!(seen == base_entries, "the iterator opened before compaction saw other contents");
    db.check().unwrap();
    assert!(contents(&db) == expected);
    // With the iterator gone, the next checkpoint cuts the file.
    let page_count = db.check().unwrap().page_count;
    db.checkpoint().unwrap();
    assert_eq!(data_len(dir.path()), u64::from(page_count) * db.page_size() as u64);
    let db = Arc::try_unwrap(db).ok().unwrap();
    db.close().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.check().unwrap();
    assert!(contents(&db) == expected);
}

/// The database the fault-injection tests compact: small, with most of its pages free, an
/// overflow chain and a keyspace; built once and copied into each run's storage.
fn thinned_files() -> (Vec<(String, Vec<u8>)>, Contents) {
    let storage = FaultStorage::new();
    // A small log: compaction's batches fill it, so checkpoints come in the middle of it.
    let options = Options::default().background_checkpoints(false).log_capacity(256 << 10);
    let db = Db::open_storage(Arc::new(storage.clone()), "sim".into(), options).unwrap();
    let model = fill_and_thin(&db, 4_000, 200, true, 6, 4);
    db.close().unwrap();
    let files = ["data.mtrdb", "redo.log", "dblwr"]
        .iter()
        .map(|name| (name.to_string(), storage.file_bytes(name).unwrap()))
        .collect();
    (files, model)
}

fn storage_with(files: &[(String, Vec<u8>)]) -> FaultStorage {
    let storage = FaultStorage::new();
    for (name, bytes) in files {
        storage.set_file_bytes(name, bytes.clone());
    }
    storage
}

fn fault_options() -> Options {
    Options::default().background_checkpoints(false)
}

/// Opens, compacts and closes, recording every page the forward path makes in `journal`;
/// whether all of it succeeded.
fn open_compact_close(storage: &FaultStorage, journal: &ReplayJournal) -> bool {
    let options = fault_options().replay_check(journal.clone());
    let Ok(db) = Db::open_storage(Arc::new(storage.clone()), "sim".into(), options) else { return false };
    db.compact().is_ok() && db.close().is_ok()
}

/// Recovers `storage` (every replayed page compared with the one the forward path made, in
/// `journal`: redo must rebuild each move's pages exactly) and checks it; returns its page count
/// and the checkpoint it recovered from.
fn verify(storage: FaultStorage, model: &Contents, what: &str, journal: &ReplayJournal) -> (u32, u64) {
    let db = Db::open_storage(Arc::new(storage), "sim".into(), fault_options().replay_check(journal.clone()))
        .unwrap_or_else(|e| panic!("{what}: recovery failed: {e}"));
    let check = db.check().unwrap_or_else(|e| panic!("{what}: check failed: {e}"));
    assert!(contents(&db) == *model, "{what}: the contents changed");
    (check.page_count, db.recovery_report().checkpoint_lsn)
}

#[test]
fn a_crash_at_every_io_boundary_of_a_compaction() {
    let (files, model) = thinned_files();
    let reference = storage_with(&files);
    assert!(open_compact_close(&reference, &ReplayJournal::new()));
    let total = reference.op_count();
    let compacted = verify(reference.clone(), &model, "after a clean compaction", &ReplayJournal::new()).0;
    let original = verify(storage_with(&files), &model, "before", &ReplayJournal::new()).0;
    assert!(compacted < original, "the workload should shrink the database ({original} -> {compacted} pages)");
    let (mut page_counts, mut checkpoints) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    let mut pages_compared = 0u64;
    for crash_at in 0..=total {
        for seed in [0, 1, 7] {
            let storage = storage_with(&files);
            let journal = ReplayJournal::new();
            storage.crash_at(crash_at);
            open_compact_close(&storage, &journal);
            let (pages, checkpoint) =
                verify(storage.power_loss(seed), &model, &format!("crash at {crash_at}, seed {seed}"), &journal);
            page_counts.insert(pages);
            checkpoints.insert(checkpoint);
            pages_compared += journal.pages_compared();
        }
    }
    println!(
        "{total} I/O boundaries; page counts recovered: {page_counts:?}; from {} checkpoints; {pages_compared} replayed pages compared",
        checkpoints.len()
    );
    assert!(pages_compared > 0, "recovery should replay compaction's redo and compare its pages");
    assert!(page_counts.len() >= 2, "crashes should land before and after the cut");
    // The small log makes compaction's own batches checkpoint: crashes land between them.
    assert!(checkpoints.len() >= 4, "crashes should land inside the compaction: {checkpoints:?}");
}

#[test]
fn an_io_error_at_every_boundary_of_a_compaction() {
    let (files, model) = thinned_files();
    let reference = storage_with(&files);
    assert!(open_compact_close(&reference, &ReplayJournal::new()));
    let total = reference.op_count();
    let mut failed = 0;
    for fail_at in 0..total {
        let storage = storage_with(&files);
        storage.fail_at(fail_at);
        let outcome = Db::open_storage(Arc::new(storage.clone()), "sim".into(), fault_options()).and_then(|db| {
            let compacted = db.compact();
            let after = contents(&db);
            let closed = db.close();
            compacted.and(closed).map(|_| after)
        });
        match outcome {
            Ok(after) => assert!(after == model, "fail at {fail_at}: contents changed"),
            Err(error) => {
                failed += 1;
                assert!(!error.to_string().is_empty());
            }
        }
        verify(storage.power_loss(1), &model, &format!("error at {fail_at}"), &ReplayJournal::new());
    }
    println!("{total} I/O operations, {failed} failed the compaction with an error");
    assert!(failed > 0);
}

/// A keyspace created when the file was large gets its root at the end of the file; compaction
/// moves that root too, and a handle made before, an iterator opened before, and the catalog all
/// follow.
#[test]
fn a_keyspace_root_moves_and_its_handles_follow() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let mut rng = Rng(9);
    let mut keys = Vec::new();
    for _ in 0..40 {
        let mut batch = WriteBatch::new();
        for _ in 0..500 {
            let key = rng.bytes(16);
            batch.insert(&key, value(rng.next(), 100));
            keys.push(key);
        }
        db.write(batch).unwrap();
    }
    // No free page yet: the new keyspace's root is the last page.
    let late = db.keyspace("late").unwrap();
    let mut late_model = BTreeMap::new();
    for k in 0..50u32 {
        late.insert(k.to_le_bytes(), value(u64::from(k), 30)).unwrap();
        late_model.insert(k.to_le_bytes().to_vec(), value(u64::from(k), 30));
    }
    for chunk in keys.chunks(500) {
        let mut batch = WriteBatch::new();
        for key in chunk.iter().skip(1) {
            batch.remove(key);
        }
        db.write(batch).unwrap();
    }
    let model = contents(&db);
    let mut early = late.iter();
    let first = early.next().unwrap().unwrap();
    let report = db.compact().unwrap();
    println!("{report:?}");
    // The handle made before the move reads and writes the moved tree.
    assert_eq!(late.get(7u32.to_le_bytes()).unwrap(), Some(value(7, 30)));
    late.insert(b"after", b"the move").unwrap();
    // The iterator opened before reads its snapshot, through the old root.
    let mut seen = vec![(first.0.to_vec(), first.1.to_vec())];
    seen.extend(early.map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()));
    assert!(seen == late_model.clone().into_iter().collect::<Vec<_>>());
    db.checkpoint().unwrap();
    let live = live_pages(&db) * db.page_size() as u64;
    let after = data_len(dir.path());
    assert!(
        after as f64 <= live as f64 * 1.3,
        "the file holds {after} bytes for {live} bytes of pages: the root stayed"
    );
    let mut expected = model;
    expected.insert(("late".to_string(), b"after".to_vec()), b"the move".to_vec());
    assert!(contents(&db) == expected);
    db.close().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.check().unwrap();
    assert!(contents(&db) == expected);
}

/// A compaction on a full file system (a small tmpfs, so the kernel's own `ENOSPC`, here in the
/// redo log's ring, which is sparse until written): it either completes or fails with a typed
/// error naming the OS error; either way, once the file system has room again, the database
/// reopens with every entry and passes `check()`. Needs root to mount the tmpfs; otherwise
/// prints `skipped: ...` and passes.
#[test]
fn compaction_on_a_full_disk_loses_nothing() {
    if let Err(why) = common::tmpfs::tmpfs_available() {
        println!("skipped: {why}");
        return;
    }
    let tmpfs = common::tmpfs::Tmpfs::mount(64 << 20).unwrap();
    let dir = tmpfs.path.join("db");
    let options = Options::default().log_capacity(4 << 20);
    let model = {
        let db = Db::open_with(&dir, options.clone()).unwrap();
        let model = fill_and_thin(&db, 20_000, 100, false, 10, 5);
        db.close().unwrap();
        model
    };
    let mut outcomes = Vec::new();
    for room in [16u64 << 10, 256 << 10, 1 << 20] {
        tmpfs.resize(tmpfs.used() + room);
        let outcome = Db::open_with(&dir, options.clone()).and_then(|db| {
            let compacted = db.compact();
            let closed = db.close();
            compacted.and_then(|report| closed.map(|()| report))
        });
        match &outcome {
            Ok(report) => outcomes.push(format!("{room} bytes of room: compacted, {} pages moved", report.pages_moved)),
            Err(error) => {
                let os_error = std::iter::successors(Some(error as &dyn std::error::Error), |e| e.source())
                    .find_map(|e| e.downcast_ref::<std::io::Error>())
                    .and_then(std::io::Error::raw_os_error);
                let message = error.to_string();
                assert!(os_error == Some(28) || message.contains("os error 28"), "expected ENOSPC: {message}");
                outcomes.push(format!("{room} bytes of room: {message}"));
            }
        }
        tmpfs.resize(256 << 20);
        let db = Db::open_with(&dir, options.clone()).unwrap();
        db.check().unwrap();
        assert!(contents(&db) == model, "entries lost after: {}", outcomes.last().unwrap());
        db.close().unwrap();
        // Back to nearly full for the next round, from the state this one left.
    }
    println!("{}", outcomes.join("\n"));
    assert!(outcomes.iter().any(|o| o.contains("os error 28")), "no round hit a full disk: {outcomes:?}");
}

/// Without `compact`: free pages at the end of the page ids (a dropped keyspace created last)
/// are cut off by `checkpoint` and by `close`, and the data file shrinks.
#[test]
fn a_checkpoint_cuts_free_pages_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let model = fill_and_thin(&db, 5_000, 100, false, 1, 6);
    db.checkpoint().unwrap();
    let before = data_len(dir.path());
    let last = db.keyspace("last").unwrap();
    for start in (0..20_000u32).step_by(1000) {
        let mut batch = WriteBatch::new();
        for k in start..start + 1000 {
            batch.insert_in(&last, k.to_le_bytes(), value(u64::from(k), 100));
        }
        db.write(batch).unwrap();
    }
    db.checkpoint().unwrap();
    let grown = data_len(dir.path());
    assert!(grown > before + (1 << 20), "{before} -> {grown}");
    db.drop_keyspace("last").unwrap();
    db.checkpoint().unwrap();
    let cut = data_len(dir.path());
    println!("{before} -> {grown} -> {cut} bytes");
    assert!(
        cut <= before + 4096,
        "the dropped keyspace's pages at the end should be cut: {before} -> {grown} -> {cut}"
    );
    db.check().unwrap();
    assert!(contents(&db) == model);
    // And by close, with an iterator open at the checkpoint.
    let again = db.keyspace("again").unwrap();
    let mut batch = WriteBatch::new();
    for k in 0..5_000u32 {
        batch.insert_in(&again, k.to_le_bytes(), value(u64::from(k), 100));
    }
    db.write(batch).unwrap();
    db.checkpoint().unwrap();
    db.drop_keyspace("again").unwrap();
    let iterator = db.iter();
    db.checkpoint().unwrap();
    assert!(data_len(dir.path()) > cut + 4096, "an open iterator keeps the file's tail");
    drop(iterator);
    db.close().unwrap();
    assert!(data_len(dir.path()) <= cut + 4096);
    let db = Db::open(dir.path()).unwrap();
    db.check().unwrap();
    assert!(contents(&db) == model);
}
