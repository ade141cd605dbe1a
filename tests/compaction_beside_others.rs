//! Compaction meeting the rest of the database: trees whose root moves before its pages, a
//! keyspace dropped while a compaction runs, iterators, writes and a backup between its batches,
//! a cut deferred by an iterator and made by the next checkpoint, and a dropped keyspace whose
//! freeing fails. (Found by a review of the first compaction: each failed before its fix.)
//!
//! - `keyspace_root_above_its_children_is_compacted`: a keyspace's root at the file's end with
//!   its pages below it: moves go highest first, so the root moves before its pages, whose
//!   locators must then descend from its new page (failed: "a tree's root is not a node").
//! - `dropping_a_keyspace_beside_a_compaction`: dropped from the progress callback; the moves
//!   of its pages are given up (failed the same way).
//! - `a_deferred_cut_is_made_by_the_next_checkpoint`: with nothing written after the
//!   compaction, the next checkpoint and close still cut the file (failed: only the next open
//!   cut it).
//! - `compaction_with_a_damaged_dropped_keyspace`: a dropped keyspace whose freeing fails on a
//!   damaged page stays where it is, and the rest is compacted (failed: every compaction
//!   returned the damage).
//! - `iterators_writes_and_a_backup_between_compaction_batches`: from the progress callback.

mod common;

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use common::all_contents as contents;
use mtrdb::fault::FaultStorage;
use mtrdb::{Db, Iter, Keyspace, Options, WriteBatch};

/// Big-endian, so that keys sort as their numbers and sequential inserts fill leaves at
/// increasing page ids (the layouts below depend on it).
#[allow(clippy::big_endian_bytes)]
fn key(i: u32) -> [u8; 4] {
    i.to_be_bytes()
}

/// Iterators held across the compaction's batches, with what each must yield.
type HeldIterators<'a> = RefCell<Vec<(Iter<'a>, Vec<(Vec<u8>, Vec<u8>)>)>>;

/// Inserts `keys` in batches of 500 (into `keyspace`, or the default keyspace).
fn insert_keys(db: &Db, keyspace: Option<&Keyspace<'_>>, keys: std::ops::Range<u32>, value: impl Fn(u32) -> Vec<u8>) {
    for start in keys.clone().step_by(500) {
        let mut batch = WriteBatch::new();
        for i in start..(start + 500).min(keys.end) {
            match keyspace {
                Some(keyspace) => batch.insert_in(keyspace, key(i), value(i)),
                None => batch.insert(key(i), value(i)),
            };
        }
        db.write(batch).unwrap();
    }
}

/// Removes `keys` from the default keyspace in batches of 500, but every `keep_one_in`-th
/// (none kept for 0).
fn remove_keys(db: &Db, keys: std::ops::Range<u32>, keep_one_in: u32) {
    for start in keys.clone().step_by(500) {
        let mut batch = WriteBatch::new();
        for i in (start..(start + 500).min(keys.end)).filter(|i| keep_one_in == 0 || i % keep_one_in != 0) {
            batch.remove(key(i));
        }
        db.write(batch).unwrap();
    }
}

fn data_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("data.mtrdb")).unwrap().len()
}

fn drain(iter: Iter<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    iter.map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()).collect()
}

fn options() -> Options {
    Options::default().background_checkpoints(false)
}

#[test]
fn keyspace_root_above_its_children_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    // Sequential keys: leaves are allocated at increasing page ids.
    insert_keys(&db, None, 0..20_000, |_| vec![7u8; 100]);
    // No free page: the new keyspace's root is the last page.
    let late = db.keyspace("late").unwrap();
    // Free the default keyspace's highest leaves (the highest page ids, just below the root).
    remove_keys(&db, 18_000..20_000, 0);
    // The keyspace grows: its root splits, children come from the free list (below the root).
    insert_keys(&db, Some(&late), 0..3_000, |_| vec![9u8; 100]);
    // Most of the default keyspace goes: the target falls far below all of the keyspace's pages.
    remove_keys(&db, 0..18_000, 100);
    db.check().unwrap();
    let model = contents(&db);
    let report = db.compact();
    println!("{report:?}");
    if report.is_err() {
        let again = db.compact();
        println!("second compaction: {again:?}");
        db.check().unwrap();
        assert!(contents(&db) == model, "contents after the failed and the second compaction");
    }
    let report = report.expect("compaction failed");
    db.check().unwrap();
    assert!(contents(&db) == model);
    assert_eq!(late.get(key(5)).unwrap(), Some(vec![9u8; 100]));
    println!("{report:?}");
}

#[test]
fn dropping_a_keyspace_beside_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    insert_keys(&db, None, 0..20_000, |_| vec![7u8; 100]);
    {
        let b = db.keyspace("b").unwrap();
        insert_keys(&db, Some(&b), 0..6_000, |_| vec![9u8; 100]);
    }
    remove_keys(&db, 0..20_000, 100);
    db.check().unwrap();
    let dropped = Cell::new(false);
    let report = db.compact_with(|progress| {
        if progress.moved > 0 && !dropped.get() {
            dropped.set(true);
            assert!(db.drop_keyspace("b").unwrap());
        }
    });
    println!("{report:?}");
    assert!(dropped.get());
    report.expect("compaction beside a keyspace drop failed");
    db.check().unwrap();
    let model = contents(&db);
    assert_eq!(model.len(), 200);
}

#[test]
fn a_deferred_cut_is_made_by_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    insert_keys(&db, None, 0..20_000, |_| vec![7u8; 100]);
    remove_keys(&db, 0..20_000, 50);
    db.checkpoint().unwrap();
    let mut early = db.iter();
    early.next().unwrap().unwrap();
    let report = db.compact().unwrap();
    println!("{report:?}");
    assert!(report.cut_deferred);
    println!("len with iterator {}", data_len(dir.path()));
    drop(early);
    println!("stats {:?}", db.stats());
    db.checkpoint().unwrap();
    let page_count = db.check().unwrap().page_count;
    let expected = u64::from(page_count) * db.page_size() as u64;
    let after_checkpoint = data_len(dir.path());
    db.close().unwrap();
    let after_close = data_len(dir.path());
    assert_eq!(
        (after_checkpoint, after_close),
        (expected, expected),
        "data file after the checkpoint and after close, with the iterator gone ({page_count} pages)"
    );
}

#[test]
fn compaction_with_a_damaged_dropped_keyspace() {
    let storage = FaultStorage::new();
    {
        let db = Db::open_storage(Arc::new(storage.clone()), "sim".into(), options()).unwrap();
        insert_keys(&db, None, 0..20_000, |_| vec![7u8; 100]);
        let x = db.keyspace("x").unwrap();
        let mut batch = WriteBatch::new();
        for i in 0..2_000u32 {
            batch.insert_in(&x, key(i), *b"DAMAGE-ME-DAMAGE-ME-DAMAGE-ME-DAMAGE-ME");
        }
        db.write(batch).unwrap();
        remove_keys(&db, 0..20_000, 50);
        db.close().unwrap();
    }
    // Damage one leaf of keyspace x in the data file.
    let mut data = storage.file_bytes("data.mtrdb").unwrap();
    let page_size = 4096;
    let marker = b"DAMAGE-ME-DAMAGE-ME";
    let page = (0..data.len() / page_size)
        .find(|&p| data[p * page_size..(p + 1) * page_size].windows(marker.len()).any(|w| w == marker))
        .expect("a leaf of x");
    data[page * page_size + page_size / 2] ^= 0xff;
    storage.set_file_bytes("data.mtrdb", data);
    let db = Db::open_storage(Arc::new(storage.clone()), "sim".into(), options()).unwrap();
    // The drop commits; freeing its pages fails on the damaged leaf and stays pending.
    let dropped = db.drop_keyspace("x");
    println!("drop: {dropped:?}");
    assert!(db.keyspaces().unwrap().is_empty());
    let report = db.compact();
    println!("compact: {report:?}");
    report.expect("a compaction should leave the damaged dropped keyspace where it is");
}

#[test]
fn iterators_writes_and_a_backup_between_compaction_batches() {
    let dir = tempfile::tempdir().unwrap();
    let backup_parent = tempfile::tempdir().unwrap();
    let backup_dir = backup_parent.path().join("copy");
    let db = Db::open(dir.path()).unwrap();
    insert_keys(&db, None, 0..20_000, |_| vec![7u8; 100]);
    // Root at the end, children above it.
    let late = db.keyspace("late").unwrap();
    insert_keys(&db, Some(&late), 0..3_000, |i| vec![9u8; 100 + (i % 7) as usize]);
    remove_keys(&db, 0..20_000, 50);
    let held: HeldIterators<'_> = RefCell::new(Vec::new());
    let calls = RefCell::new(0u32);
    let backup_model = RefCell::new(None);
    let report = db
        .compact_with(|progress| {
            let mut calls = calls.borrow_mut();
            *calls += 1;
            if progress.moved == 0 || *calls > 3 {
                return;
            }
            // An iterator of each tree, with what it must see.
            let late = db.keyspace("late").unwrap();
            let expect_late = drain(late.iter());
            let expect_default = drain(db.iter());
            held.borrow_mut().push((late.iter(), expect_late));
            held.borrow_mut().push((db.iter(), expect_default));
            // Writes that split leaves of the keyspace being moved and free pages.
            let mut batch = WriteBatch::new();
            for i in 0..400u32 {
                batch.insert_in(&late, [&b"mid"[..], &key(*calls * 1000 + i)[..]].concat(), [1u8; 150]);
            }
            for i in (0..3_000u32).step_by(3) {
                batch.remove_in(&late, key(i + *calls % 3));
            }
            db.write(batch).unwrap();
            if *calls == 2 {
                backup_model.replace(Some(contents(&db)));
                db.backup_to(&backup_dir, |_| {}).unwrap();
            }
        })
        .unwrap();
    println!("{report:?}");
    db.check().unwrap();
    for (index, (iter, expected)) in held.into_inner().into_iter().enumerate() {
        assert!(drain(iter) == expected, "iterator {index} opened between batches saw other contents");
    }
    let model = contents(&db);
    db.checkpoint().unwrap();
    db.close().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.check().unwrap();
    assert!(contents(&db) == model);
    let copy = Db::open(&backup_dir).unwrap();
    copy.check().unwrap();
    assert!(Some(contents(&copy)) == backup_model.into_inner(), "the backup differs");
}
