//! Keyspaces through the public API: creating, listing, reopening and dropping them; batches
//! that span them; the reads every keyspace has (`first`, `last`, `prefix`, `len`); and the
//! refusals: bad names, handles to dropped keyspaces, another database's handles, and a data
//! file of another format version.

use std::collections::BTreeMap;

use mtrdb::{Db, Error, Options, WriteBatch};

fn small_options() -> Options {
    Options::default().log_capacity(1 << 20)
}

fn contents(iter: mtrdb::Iter<'_>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    iter.map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect::<Result<_, _>>().unwrap()
}

#[test]
fn keyspaces_are_independent_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open_with(dir.path(), small_options()).unwrap();
        assert!(db.keyspaces().unwrap().is_empty());
        let users = db.keyspace("users").unwrap();
        let orders = db.keyspace("orders").unwrap();
        users.insert("k", "user").unwrap();
        orders.insert("k", "order").unwrap();
        db.insert("k", "default").unwrap();
        assert_eq!(users.get("k").unwrap().as_deref(), Some(&b"user"[..]));
        assert_eq!(orders.get("k").unwrap().as_deref(), Some(&b"order"[..]));
        assert_eq!(db.get("k").unwrap().as_deref(), Some(&b"default"[..]));
        assert_eq!(db.keyspaces().unwrap(), vec!["orders".to_string(), "users".to_string()]);
        // Opening an existing keyspace finds the same tree.
        assert_eq!(db.keyspace("users").unwrap().get("k").unwrap().as_deref(), Some(&b"user"[..]));
        // `existing_keyspace` finds it too, and never creates one.
        let found = db.existing_keyspace("users").unwrap().expect("users exists");
        assert_eq!(found.get("k").unwrap().as_deref(), Some(&b"user"[..]));
        assert!(db.existing_keyspace("absent").unwrap().is_none());
        assert!(db.drop_keyspace("orders").unwrap());
        assert!(db.existing_keyspace("orders").unwrap().is_none(), "a dropped keyspace is not found");
        assert_eq!(db.keyspaces().unwrap(), vec!["users".to_string()], "looking created nothing");
        let orders = db.keyspace("orders").unwrap();
        orders.insert("k", "order").unwrap();
        db.close().unwrap();
    }
    let db = Db::open_with(dir.path(), small_options()).unwrap();
    assert_eq!(db.keyspaces().unwrap(), vec!["orders".to_string(), "users".to_string()]);
    let users = db.keyspace("users").unwrap();
    assert_eq!(users.get("k").unwrap().as_deref(), Some(&b"user"[..]));
    assert_eq!(users.len().unwrap(), 1);
    assert_eq!(db.len().unwrap(), 1);
    let report = db.check().unwrap();
    assert_eq!(report.keyspaces.len(), 2, "{report:?}");
}

#[test]
fn a_batch_spans_keyspaces_and_counts_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_options()).unwrap();
    let a = db.keyspace("a").unwrap();
    let b = db.keyspace("b").unwrap();
    let mut model_a = BTreeMap::new();
    let mut model_b = BTreeMap::new();
    for round in 0..40u32 {
        let mut batch = WriteBatch::new();
        for i in 0..50u32 {
            let key = format!("key{:05}", (round * 37 + i * 11) % 700).into_bytes();
            let value = format!("v{round}-{i}").repeat(1 + (i % 5) as usize).into_bytes();
            if (round + i) % 4 == 0 {
                batch.remove_in(&a, &key);
                model_a.remove(&key);
            } else {
                batch.insert_in(&a, &key, &value);
                model_a.insert(key.clone(), value.clone());
            }
            if i % 3 == 0 {
                batch.insert_in(&b, &key, &value);
                model_b.insert(key, value);
            }
        }
        db.write(batch).unwrap();
        assert_eq!(a.len().unwrap(), model_a.len() as u64, "round {round}");
        assert_eq!(b.len().unwrap(), model_b.len() as u64, "round {round}");
    }
    assert_eq!(contents(a.iter()), model_a);
    assert_eq!(contents(b.iter()), model_b);
    assert!(db.is_empty().unwrap());
    let report = db.check().unwrap();
    let heights: Vec<u32> = report.keyspaces.iter().map(|k| k.height).collect();
    assert!(heights.iter().all(|&h| h >= 2), "the trees grew: {report:?}");
}

#[test]
fn first_last_prefix_and_len() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_options()).unwrap();
    let ks = db.keyspace("ks").unwrap();
    assert_eq!(ks.first().unwrap(), None);
    assert_eq!(ks.last().unwrap(), None);
    assert!(ks.is_empty().unwrap());
    for key in ["apple", "apricot", "banana", "b\u{ff}", "cherry"] {
        ks.insert(key, key.to_uppercase()).unwrap();
    }
    ks.insert([b'z', 0xff, 0xff], "edge").unwrap();
    ks.insert([b'z', 0xff, 0xff, 0], "edge2").unwrap();
    let (k, v) = ks.first().unwrap().unwrap();
    assert_eq!((&k[..], &v[..]), (&b"apple"[..], &b"APPLE"[..]));
    let (k, _) = ks.last().unwrap().unwrap();
    assert_eq!(&k[..], &[b'z', 0xff, 0xff, 0][..]);
    fn keys(iter: impl Iterator<Item = mtrdb::Result<(mtrdb::Bytes, mtrdb::Bytes)>>) -> Vec<Vec<u8>> {
        iter.map(|item| item.unwrap().0.to_vec()).collect()
    }
    assert_eq!(keys(ks.prefix("ap")), vec![b"apple".to_vec(), b"apricot".to_vec()]);
    assert_eq!(keys(ks.prefix("ap").rev()), vec![b"apricot".to_vec(), b"apple".to_vec()]);
    assert_eq!(keys(ks.prefix([b'z', 0xff])), vec![vec![b'z', 0xff, 0xff], vec![b'z', 0xff, 0xff, 0]]);
    assert!(keys(ks.prefix("x")).is_empty());
    assert_eq!(ks.len().unwrap(), 7);
    assert!(ks.remove("banana").unwrap());
    assert!(!ks.remove("banana").unwrap());
    assert_eq!(ks.len().unwrap(), 6);
    // The default keyspace has them too.
    db.insert("x1", "1").unwrap();
    db.insert("x2", "2").unwrap();
    assert_eq!(db.len().unwrap(), 2);
    assert_eq!(&db.first().unwrap().unwrap().0[..], b"x1");
    assert_eq!(&db.last().unwrap().unwrap().0[..], b"x2");
    assert_eq!(db.prefix("x").count(), 2);
}

#[test]
fn dropping_frees_pages_and_stale_handles_fail() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_options()).unwrap();
    let big = db.keyspace("big").unwrap();
    for chunk in 0..20u32 {
        let mut batch = WriteBatch::new();
        for i in 0..200u32 {
            batch.insert_in(&big, format!("{chunk:03}-{i:05}"), vec![7u8; 200]);
        }
        db.write(batch).unwrap();
    }
    // A large value: its overflow chain is freed too.
    big.insert("large", vec![3u8; 100_000]).unwrap();
    let before = db.check().unwrap();
    let big_pages = before.keyspaces[0].pages;
    assert!(big_pages > 100, "{before:?}");
    // An iterator opened before the drop reads its snapshot to the end.
    let mut open_iter = big.iter();
    let first = open_iter.next().unwrap().unwrap();
    assert!(db.drop_keyspace("big").unwrap());
    assert!(!db.drop_keyspace("big").unwrap());
    assert_eq!(open_iter.count() + 1, 4001);
    drop(first);
    assert!(matches!(big.get("000-00000"), Err(Error::KeyspaceDropped { .. })));
    assert!(matches!(big.insert("x", "y"), Err(Error::KeyspaceDropped { .. })));
    assert!(matches!(big.len(), Err(Error::KeyspaceDropped { .. })));
    assert!(matches!(big.iter().next(), Some(Err(Error::KeyspaceDropped { .. }))));
    let mut batch = WriteBatch::new();
    batch.insert("default-key", "v");
    batch.insert_in(&big, "x", "y");
    assert!(matches!(db.write(batch), Err(Error::KeyspaceDropped { .. })));
    assert_eq!(db.get("default-key").unwrap(), None, "a refused batch applied nothing");
    let after = db.check().unwrap();
    assert_eq!(after.dropped_pages, 0, "{after:?}");
    assert!(after.free_pages >= big_pages, "the dropped keyspace's pages are free: {after:?}");
    // A new keyspace of the same name is another keyspace: empty, and the old handle stays dead.
    let again = db.keyspace("big").unwrap();
    assert!(again.is_empty().unwrap());
    again.insert("k", "v").unwrap();
    assert!(matches!(big.get("k"), Err(Error::KeyspaceDropped { .. })));
    // Reusing the freed pages does not grow the file.
    for chunk in 0..20u32 {
        let mut batch = WriteBatch::new();
        for i in 0..200u32 {
            batch.insert_in(&again, format!("{chunk:03}-{i:05}"), vec![9u8; 200]);
        }
        db.write(batch).unwrap();
    }
    let reused = db.check().unwrap();
    // The file grows only by the pages the free list could not cover.
    let new_tree_pages = reused.keyspaces[0].pages;
    assert!(
        u64::from(reused.page_count) <= u64::from(after.page_count) + new_tree_pages.saturating_sub(after.free_pages),
        "freed pages reused: {after:?} then {reused:?}"
    );
    assert_eq!(reused.free_pages, after.free_pages.saturating_sub(new_tree_pages), "{reused:?}");
}

#[test]
fn bad_names_and_foreign_handles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_options()).unwrap();
    let other = Db::open_with(other_dir.path(), small_options()).unwrap();
    assert!(matches!(db.keyspace(""), Err(Error::KeyspaceName { .. })));
    assert!(matches!(db.keyspace(&"n".repeat(256)), Err(Error::KeyspaceName { .. })));
    assert!(db.keyspace(&"n".repeat(255)).is_ok());
    assert!(db.keyspace("ünïcödé ✓").is_ok());
    assert!(matches!(db.drop_keyspace(""), Err(Error::KeyspaceName { .. })));
    let foreign = other.keyspace("x").unwrap();
    let mut batch = WriteBatch::new();
    batch.insert("k", "v");
    batch.insert_in(&foreign, "k", "v");
    assert!(matches!(db.write(batch), Err(Error::ForeignKeyspace { .. })));
    assert_eq!(db.get("k").unwrap(), None);
    assert_eq!(foreign.get("k").unwrap(), None);
    db.check().unwrap();
}

#[test]
fn a_data_file_of_another_format_version_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    Db::open_with(dir.path(), small_options()).unwrap().close().unwrap();
    let path = dir.path().join("data.mtrdb");
    let mut bytes = std::fs::read(&path).unwrap();
    // The meta page's version field (offset 40, see `mtrdb::page`).
    assert_eq!(u32::from_le_bytes(bytes[40..44].try_into().unwrap()), mtrdb::page::FORMAT_VERSION);
    bytes[40..44].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    match Db::open_with(dir.path(), small_options()) {
        Err(error @ Error::FormatVersion { found: 1, supported: mtrdb::page::FORMAT_VERSION, .. }) => {
            let message = error.to_string();
            let supported = format!("version {}", mtrdb::page::FORMAT_VERSION);
            assert!(message.contains("version 1") && message.contains(&supported), "{message}");
        }
        Err(other) => panic!("expected FormatVersion, got {other}"),
        Ok(_) => panic!("a version 1 file was opened"),
    }
}

#[test]
fn concurrent_drops_never_fail_nor_free_a_live_keyspace() {
    // Each drop frees its own pages and then any other pending drop's: two at once used to pick
    // the same dropped tree, and the second then freed a root page that a new keyspace had
    // taken over (or failed on it).
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), Options::default().log_capacity(8 << 20)).unwrap();
    for round in 0..30u32 {
        for name in ["a", "b"] {
            let ks = db.keyspace(name).unwrap();
            let mut batch = WriteBatch::new();
            for i in 0..300u32 {
                batch.insert_in(&ks, format!("{round}-{i:04}"), vec![5u8; 150]);
            }
            batch.insert_in(&ks, "large", vec![6u8; 40_000]);
            db.write(batch).unwrap();
        }
        std::thread::scope(|scope| {
            let drops: Vec<_> = ["a", "b"].map(|name| scope.spawn(|| db.drop_keyspace(name))).into();
            // A keyspace created meanwhile may take a freed root page.
            let live = db.keyspace("live").unwrap();
            live.insert(format!("{round}"), vec![7u8; 20_000]).unwrap();
            for handle in drops {
                assert!(handle.join().unwrap().unwrap(), "round {round}: a drop failed or found nothing");
            }
        });
        let live = db.keyspace("live").unwrap();
        assert_eq!(live.len().unwrap(), u64::from(round) + 1, "round {round}");
        for r in 0..=round {
            assert_eq!(live.get(format!("{r}")).unwrap().as_deref(), Some(&[7u8; 20_000][..]), "round {round}");
        }
        let report = db.check().unwrap();
        assert_eq!(report.dropped_pages, 0, "round {round}: {report:?}");
    }
}

#[test]
fn a_batch_kept_after_its_database_closed_is_refused_by_the_next() {
    // The database a handle belongs to is told by an id unique per open, not by an address the
    // next database may be given.
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let mut batch = WriteBatch::new();
        {
            let first = Db::open_with(dir.path(), small_options()).unwrap();
            let ks = first.keyspace("ks").unwrap();
            batch.insert_in(&ks, "k", "written for the first database");
            first.close().unwrap();
        }
        let second_dir = tempfile::tempdir().unwrap();
        let second = Db::open_with(second_dir.path(), small_options()).unwrap();
        let ks = second.keyspace("ks").unwrap();
        assert!(matches!(second.write(batch), Err(Error::ForeignKeyspace { .. })), "round {round}");
        assert_eq!(ks.get("k").unwrap(), None, "round {round}");
    }
}
