//! `Db::write_with`: one write's durability instead of the database's, on a power loss
//! (the fault-injecting storage).

use std::sync::Arc;
use std::time::Duration;

use mtrdb::fault::FaultStorage;
use mtrdb::{Db, Durability, Options, WriteBatch};

fn open(storage: &FaultStorage, durability: Durability) -> Db {
    let options = Options::default().durability(durability).background_checkpoints(false);
    Db::open_storage(Arc::new(storage.clone()), "sim".into(), options).expect("open")
}

fn batch(key: &[u8]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.insert(key, b"value");
    batch
}

/// Power losses tried after each crash: each keeps, drops or tears unsynced writes its own way.
const POWER_LOSSES: u64 = 16;

/// Cuts the power now; for each of `keys`, in how many of [`POWER_LOSSES`] power losses the
/// reopened database holds it.
fn kept_after_power_loss(storage: &FaultStorage, db: Db, keys: &[&[u8]]) -> Vec<u64> {
    storage.crash_at(storage.op_count());
    drop(db);
    let mut kept = vec![0; keys.len()];
    for seed in 0..POWER_LOSSES {
        let db = open(&storage.power_loss(seed), Durability::Immediate);
        for (kept, key) in kept.iter_mut().zip(keys) {
            *kept += u64::from(db.get(key).expect("get").is_some());
        }
    }
    kept
}

#[test]
fn an_immediate_write_on_an_eventual_database_survives_a_power_loss_with_the_writes_before_it() {
    let storage = FaultStorage::new();
    let db = open(&storage, Durability::Eventual);
    db.write(batch(b"before")).expect("write");
    db.write_with(batch(b"immediate"), Durability::Immediate).expect("write");
    let all = POWER_LOSSES;
    assert_eq!(kept_after_power_loss(&storage, db, &[b"before", b"immediate"]), [all, all]);
}

#[test]
fn an_eventual_write_on_an_immediate_database_is_not_synced_by_itself() {
    let storage = FaultStorage::new();
    let db = open(&storage, Durability::Immediate);
    db.write(batch(b"immediate")).expect("write");
    db.write_with(batch(b"eventual"), Durability::Eventual).expect("write");
    // Unsynced, its redo may or may not reach the disk: some power loss loses it, and none loses
    // the durable write before it.
    let kept = kept_after_power_loss(&storage, db, &[b"immediate", b"eventual"]);
    assert_eq!(kept[0], POWER_LOSSES, "a power loss lost a durable write");
    assert!(kept[1] < POWER_LOSSES, "no power loss lost the eventual write: it was synced");
}

#[test]
fn an_eventual_write_on_an_immediate_database_is_synced_within_the_flush_interval() {
    let storage = FaultStorage::new();
    let db = open(&storage, Durability::Immediate);
    db.write_with(batch(b"eventual"), Durability::Eventual).expect("write");
    std::thread::sleep(mtrdb::db::EVENTUAL_FLUSH_INTERVAL + Duration::from_millis(500));
    // Synced by the database's own flusher: no power loss loses it.
    assert_eq!(kept_after_power_loss(&storage, db, &[b"eventual"]), [POWER_LOSSES], "nothing synced it");
}
