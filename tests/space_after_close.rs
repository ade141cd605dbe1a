//! A cleanly closed database gives back its log's and doublewrite file's disk space: it occupies
//! its data file and a few blocks, not a preallocated ring. And the punched ring works: a reopen
//! finds nothing to recover, later writes go into the holes, and the next crash recovers them.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::rng::Rng;
use common::Model;
use mtrdb::{Db, Options, WriteBatch};

const LOG_CAPACITY: u64 = 1 << 20;

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

fn options() -> Options {
    Options::default().log_capacity(LOG_CAPACITY)
}

/// Batches of random keys until the redo written is `laps` times the ring.
fn write_laps(db: &Db, model: &mut Model, rng: &mut Rng, laps: u64) {
    let start = db.stats().redo_bytes;
    while db.stats().redo_bytes - start < laps * LOG_CAPACITY {
        let mut batch = WriteBatch::new();
        for _ in 0..50 {
            let key = format!("key{:07}", rng.below(1_000_000)).into_bytes();
            let value = vec![rng.below(256) as u8; 60];
            batch.insert(&key, &value);
            model.insert(key, value);
        }
        db.write(batch).unwrap();
    }
}

fn assert_matches(db: &Db, model: &Model) {
    let found: Model = db.iter().map(|entry| entry.unwrap()).map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    assert_eq!(found.len(), model.len());
    assert!(found == *model, "the database differs from the model");
}

#[test]
fn a_closed_database_occupies_no_log_or_doublewrite_space() {
    let dir = tempfile::tempdir().unwrap();
    let (log, dblwr) = (dir.path().join("redo.log"), dir.path().join("dblwr"));
    let mut model = Model::new();
    let mut rng = Rng(11);

    let db = Db::open_with(dir.path(), options()).unwrap();
    write_laps(&db, &mut model, &mut rng, 3);
    db.checkpoint().unwrap();
    // Open, after three laps and a checkpoint: the ring is allocated (this is what close frees).
    let open_log = allocated(&log);
    assert!(open_log >= LOG_CAPACITY, "the ring should be allocated while open: {open_log} bytes");
    db.close().unwrap();

    let (closed_log, closed_dblwr) = (allocated(&log), allocated(&dblwr));
    eprintln!("log: {open_log} bytes allocated while open, {closed_log} after close; dblwr: {closed_dblwr}");
    // The header and two checkpoint slots (12 KiB), and a block of slack.
    assert!(closed_log <= 16 * 1024, "a closed database's log occupies {closed_log} bytes");
    assert!(closed_dblwr <= 4 * 1024, "a closed database's doublewrite file occupies {closed_dblwr} bytes");
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 3 * 4096 + LOG_CAPACITY, "the log keeps its length");

    // Reopen: nothing to recover; writes go into the holes, a crash (no close) recovers them.
    let db = Db::open_with(dir.path(), options()).unwrap();
    assert_eq!(db.recovery_report().mtrs_replayed, 0);
    assert_matches(&db, &model);
    write_laps(&db, &mut model, &mut rng, 2);
    let crash_image = common::files::read_files(dir.path());
    db.close().unwrap();
    common::files::write_files(dir.path(), &crash_image);
    let db = Db::open_with(dir.path(), options()).unwrap();
    assert!(db.recovery_report().mtrs_replayed > 0, "the crash image should need recovery");
    assert_matches(&db, &model);
    db.close().unwrap();
    assert!(allocated(&log) <= 16 * 1024);
}
