//! `Db::transaction`: reads of its own writes (point and range), atomic commit across keyspaces,
//! nothing applied on `Err` or panic, serializable read-modify-write from many threads while
//! readers see only committed values and are not held off, and the refusals (nested
//! transactions, writes around the transaction on its own thread, a transaction larger than the
//! log).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use mtrdb::{Db, Error, Options};

fn small_options() -> Options {
    Options::default().log_capacity(1 << 20)
}

fn counter(value: Option<Vec<u8>>) -> u64 {
    value.map_or(0, |bytes| u64::from_le_bytes(bytes.try_into().expect("an 8-byte counter")))
}

#[test]
fn eight_threads_incrementing_one_counter_lose_nothing_and_readers_see_only_commits() {
    const THREADS: u64 = 8;
    const INCREMENTS: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open_with(dir.path(), small_options()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (db, stop) = (Arc::clone(&db), Arc::clone(&stop));
        std::thread::spawn(move || {
            let ks = db.keyspace("counters").unwrap();
            let mut last = 0;
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let seen = counter(ks.get("c").unwrap());
                // The counter and its shadow are written in one transaction: a reader never sees
                // one without the other.
                let shadow = counter(db.get("shadow").unwrap());
                assert!(seen >= last, "the counter went back from {last} to {seen}");
                assert!(shadow >= seen, "a reader saw half a transaction: counter {seen}, shadow {shadow}");
                last = seen;
                reads += 1;
            }
            reads
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|_| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                let ks = db.keyspace("counters").unwrap();
                let default = db.default_keyspace();
                for _ in 0..INCREMENTS {
                    db.transaction(|tx| -> mtrdb::Result<()> {
                        let next = counter(tx.get(&ks, "c")?) + 1;
                        // Read-your-own-write inside the transaction.
                        tx.insert(&ks, "c", next.to_le_bytes())?;
                        assert_eq!(counter(tx.get(&ks, "c")?), next);
                        tx.insert(&default, "shadow", next.to_le_bytes())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    let ks = db.keyspace("counters").unwrap();
    assert_eq!(counter(ks.get("c").unwrap()), THREADS * INCREMENTS);
    drop(ks);
    let db = Arc::into_inner(db).unwrap();
    db.close().unwrap();
    let db = Db::open_with(dir.path(), small_options()).unwrap();
    assert_eq!(counter(db.keyspace("counters").unwrap().get("c").unwrap()), THREADS * INCREMENTS);
    db.check().unwrap();
}

#[test]
fn a_transaction_reads_its_own_writes_in_gets_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_options()).unwrap();
    let ks = db.keyspace("ks").unwrap();
    let other = db.keyspace("other").unwrap();
    for key in ["a", "c", "e", "g"] {
        ks.insert(key, format!("old-{key}")).unwrap();
    }
    other.insert("b", "other").unwrap();
    let seen = db
        .transaction(|tx| -> mtrdb::Result<Vec<(String, String)>> {
            tx.insert(&ks, "b", "new-b")?;
            tx.insert(&ks, "c", "new-c")?;
            assert!(tx.remove(&ks, "e")?);
            assert!(!tx.remove(&ks, "zz")?);
            tx.insert(&ks, "h", "new-h")?;
            tx.insert(&other, "x", "other-x")?;
            assert_eq!(tx.get(&ks, "e")?, None);
            assert_eq!(tx.get(&ks, "c")?.as_deref(), Some(&b"new-c"[..]));
            // Outside the transaction nothing shows yet.
            assert_eq!(ks.get("c").unwrap().as_deref(), Some(&b"old-c"[..]));
            assert_eq!(ks.get("b").unwrap(), None);
            let in_range: Vec<(String, String)> = tx
                .range(&ks, "b".."h")
                .map(|item| {
                    let (k, v) = item.unwrap();
                    (String::from_utf8(k.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap())
                })
                .collect();
            let all = tx.range::<&str, _>(&ks, ..).count();
            assert_eq!(all, 5, "a b c g h, not e");
            Ok(in_range)
        })
        .unwrap();
    assert_eq!(seen, vec![("b".into(), "new-b".into()), ("c".into(), "new-c".into()), ("g".into(), "old-g".into())]);
    let after: BTreeMap<Vec<u8>, Vec<u8>> =
        ks.iter().map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()).collect();
    let expected: BTreeMap<Vec<u8>, Vec<u8>> =
        [("a", "old-a"), ("b", "new-b"), ("c", "new-c"), ("g", "old-g"), ("h", "new-h")]
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
    assert_eq!(after, expected);
    assert_eq!(ks.len().unwrap(), 5);
    assert_eq!(other.get("x").unwrap().as_deref(), Some(&b"other-x"[..]));
    db.check().unwrap();
}

#[derive(Debug)]
enum AppError {
    Db(Error),
    Declined,
}

impl From<Error> for AppError {
    fn from(error: Error) -> AppError {
        AppError::Db(error)
    }
}

#[test]
fn an_err_or_a_panic_applies_nothing_and_the_database_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_options()).unwrap();
    let ks = db.keyspace("ks").unwrap();
    let outcome = db.transaction(|tx| -> Result<(), AppError> {
        tx.insert(&ks, "k", "v")?;
        Err(AppError::Declined)
    });
    assert!(matches!(outcome, Err(AppError::Declined)));
    assert_eq!(ks.get("k").unwrap(), None);
    // An engine error inside converts into the closure's error type, and discards the rest.
    let outcome = db.transaction(|tx| -> Result<(), AppError> {
        tx.insert(&ks, "k", "v")?;
        tx.insert(&ks, "", "an empty key")?;
        Ok(())
    });
    assert!(matches!(outcome, Err(AppError::Db(Error::KeySize { .. }))), "{outcome:?}");
    assert_eq!(ks.get("k").unwrap(), None);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = db.transaction(|tx| -> mtrdb::Result<()> {
            tx.insert(&ks, "k", "v")?;
            panic!("the closure panics");
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(ks.get("k").unwrap(), None);
    assert_eq!(ks.len().unwrap(), 0);
    // Usable: the writer lock was released and this thread is no longer marked as inside.
    db.transaction(|tx| tx.insert(&ks, "k", "v")).unwrap();
    db.insert("plain", "write").unwrap();
    assert_eq!(ks.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    db.check().unwrap();
}

#[test]
fn nested_transactions_and_writes_inside_one_are_refused_not_hung() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_options()).unwrap();
    let ks = db.keyspace("ks").unwrap();
    db.transaction(|tx| -> mtrdb::Result<()> {
        tx.insert(&ks, "outer", "1")?;
        let nested = db.transaction(|inner| inner.insert(&ks, "inner", "1"));
        assert!(matches!(nested, Err(Error::InsideTransaction)), "{nested:?}");
        assert!(matches!(db.insert("direct", "1"), Err(Error::InsideTransaction)));
        assert!(matches!(ks.remove("outer"), Err(Error::InsideTransaction)));
        assert!(matches!(db.keyspace("new one"), Err(Error::InsideTransaction)));
        assert!(matches!(db.drop_keyspace("ks"), Err(Error::InsideTransaction)));
        // Reads and an existing keyspace's handle are fine.
        assert_eq!(db.get("direct").unwrap(), None);
        assert_eq!(db.keyspace("ks").unwrap().name(), "ks");
        Ok(())
    })
    .unwrap();
    assert_eq!(ks.get("outer").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(ks.get("inner").unwrap(), None);
    // Another database's transaction on the same thread is independent.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Db::open_with(other_dir.path(), small_options()).unwrap();
    db.transaction(|_| other.transaction(|tx| tx.insert(&other.default_keyspace(), "k", "v"))).unwrap();
    assert_eq!(other.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    // A handle of another database is refused.
    let foreign = other.default_keyspace();
    let refused = db.transaction(|tx| tx.insert(&foreign, "k", "v"));
    assert!(matches!(refused, Err(Error::ForeignKeyspace { .. })));
}

#[test]
fn a_transaction_larger_than_the_log_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), Options::default().log_capacity(256 * 1024)).unwrap();
    let ks = db.keyspace("ks").unwrap();
    let outcome = db.transaction(|tx| -> mtrdb::Result<()> {
        for i in 0..100u32 {
            tx.insert(&ks, format!("key{i:04}"), vec![1u8; 4000])?;
        }
        Ok(())
    });
    assert!(matches!(outcome, Err(Error::BatchTooLarge { .. })), "{outcome:?}");
    assert_eq!(ks.len().unwrap(), 0);
    ks.insert("after", "ok").unwrap();
    db.check().unwrap();
}

#[test]
fn an_open_transaction_holds_writers_off_but_never_readers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open_with(dir.path(), small_options()).unwrap());
    db.insert("k", "committed").unwrap();
    let (inside_tx, inside_rx) = mpsc::channel();
    let release = Arc::new(Barrier::new(2));
    let holder = {
        let (db, release) = (Arc::clone(&db), Arc::clone(&release));
        std::thread::spawn(move || {
            db.transaction(|tx| -> mtrdb::Result<()> {
                tx.insert(&db.default_keyspace(), "k", "uncommitted")?;
                inside_tx.send(()).unwrap();
                release.wait();
                Ok(())
            })
            .unwrap();
        })
    };
    inside_rx.recv().unwrap();
    // Readers go on, and see the committed value only.
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(db.get("k").unwrap().as_deref(), Some(&b"committed"[..]));
        assert_eq!(db.iter().count(), 1);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // A writer waits for the transaction.
    let writer = {
        let db = Arc::clone(&db);
        std::thread::spawn(move || {
            db.insert("w", "1").unwrap();
            Instant::now()
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(db.get("w").unwrap(), None, "a writer went past an open transaction");
    let released_at = Instant::now();
    release.wait();
    holder.join().unwrap();
    assert!(writer.join().unwrap() >= released_at);
    assert_eq!(db.get("k").unwrap().as_deref(), Some(&b"uncommitted"[..]));
}

#[test]
fn a_refused_range_ends_after_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), small_options()).unwrap();
    let other = Db::open_with(other_dir.path(), small_options()).unwrap();
    other.insert("secret", "of the other database").unwrap();
    let foreign = other.default_keyspace();
    let dropped = db.keyspace("dropped").unwrap();
    dropped.insert("k", "v").unwrap();
    assert!(db.drop_keyspace("dropped").unwrap());
    db.transaction(|tx| -> mtrdb::Result<()> {
        let items: Vec<_> = tx.range::<&str, _>(&foreign, ..).collect();
        assert!(matches!(items.as_slice(), [Err(Error::ForeignKeyspace { .. })]), "{items:?}");
        let items: Vec<_> = tx.range::<&str, _>(&dropped, ..).collect();
        assert!(matches!(items.as_slice(), [Err(Error::KeyspaceDropped { .. })]), "{items:?}");
        Ok(())
    })
    .unwrap();
}
