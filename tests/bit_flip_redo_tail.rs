//! Single-byte flips in the redo a crashed database still needs: recovery must never apply a
//! damaged record, never drop a durable batch quietly when later redo proves it was durable, and
//! never panic.
//!
//! Guards the redo pass and the scanner's torn-tail rule on real files: a database is written
//! under `Durability::Immediate`, checkpointed, then given a tail of batches that exist only in
//! the redo log; its files are copied while it is open (a crash image: every batch acknowledged,
//! nothing of the tail in the data file). Every byte of that tail (and a few bytes past it), and
//! a strided sample of the data file, is then flipped in turn and the copy recovered. Right
//! answers: the full state; an error; or, only for a flip inside the last batch (which nothing
//! after it proves durable), the state before that batch. Dropping an earlier batch, or any
//! other state, is wrong.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use common::files::{checkpoint_lsn, read_files, scratch_dir, write_files, FILES};
use mtrdb::{Db, Options, WriteBatch};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

const RING_OFFSET: u64 = 12288;
const LOG_CAPACITY: u64 = 256 * 1024;
const TAIL_BATCHES: usize = 8;

fn options() -> Options {
    Options::default().page_size(4096).log_capacity(LOG_CAPACITY).background_checkpoints(false)
}

struct Image {
    files: Vec<Vec<u8>>,
    /// `states[k]`: the contents after `k` tail batches.
    states: Vec<Model>,
    /// LSN where tail batch `k` starts; the last entry is the end of the tail.
    batch_starts: Vec<u64>,
}

/// Builds the crash image: checkpointed base, then a tail only the redo log holds.
fn build(dir: &Path) -> Image {
    let db = Db::open_with(dir, options()).unwrap();
    let mut model = Model::new();
    for chunk in (0..300u32).collect::<Vec<_>>().chunks(50) {
        let mut batch = WriteBatch::new();
        for &k in chunk {
            let (key, value) = (format!("key{:04}", k * 7 % 300).into_bytes(), vec![k as u8; (k % 30) as usize]);
            batch.insert(&key, &value);
            model.insert(key, value);
        }
        db.write(batch).unwrap();
    }
    db.checkpoint().unwrap();
    let log = std::fs::read(dir.join(FILES[1])).unwrap();
    let start = checkpoint_lsn(&log);
    let appended = |db: &Db| db.stats().log.bytes_appended;
    let base = appended(&db);
    let mut states = vec![model.clone()];
    let mut batch_starts = vec![start];
    for n in 0..TAIL_BATCHES {
        let mut batch = WriteBatch::new();
        for i in 0..4u32 {
            let key = format!("key{:04}", (n as u32 * 37 + i * 11) % 300).into_bytes();
            let value = vec![(n as u8) ^ 0xa5; 5 + i as usize * 9];
            batch.insert(&key, &value);
            model.insert(key, value);
        }
        let gone = format!("key{:04}", n * 13 + 1).into_bytes();
        batch.remove(&gone);
        model.remove(&gone);
        if n == TAIL_BATCHES / 2 {
            // A value in an overflow chain: a batch of several mtrs.
            batch.insert(b"tail-overflow", vec![7u8; 5000]);
            model.insert(b"tail-overflow".to_vec(), vec![7u8; 5000]);
        }
        db.write(batch).unwrap();
        states.push(model.clone());
        batch_starts.push(start + (appended(&db) - base));
    }
    // A crash image: the files as they are now, with every tail batch acknowledged.
    let files = read_files(dir);
    drop(db);
    Image { files, states, batch_starts }
}

enum Verdict {
    /// Opened and read exactly `states[k]`.
    State(usize),
    Refused,
    Wrong(String),
}

fn recover_and_read(dir: &Path, states: &[Model]) -> Verdict {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<Verdict, mtrdb::Error> {
        let db = Db::open_with(dir, options())?;
        let mut got = Model::new();
        for entry in db.iter() {
            let (key, value) = entry?;
            got.insert(key.to_vec(), value.to_vec());
        }
        let report = db.check()?;
        if report.entries != got.len() as u64 {
            return Ok(Verdict::Wrong(format!("check counts {} entries, iteration {}", report.entries, got.len())));
        }
        Ok(match states.iter().rposition(|state| *state == got) {
            Some(k) => Verdict::State(k),
            None => Verdict::Wrong(format!("{} entries matching no state of the batch sequence", got.len())),
        })
    }));
    match result {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(_)) => Verdict::Refused,
        Err(_) => Verdict::Wrong("panicked".into()),
    }
}

#[test]
fn bit_flips_in_redo_tail_and_data_file() {
    let started = Instant::now();
    let build_dir = scratch_dir();
    let image = build(build_dir.path());
    let last = TAIL_BATCHES;
    let dir = scratch_dir();
    write_files(dir.path(), &image.files);
    match recover_and_read(dir.path(), &image.states) {
        Verdict::State(k) if k == last => {}
        Verdict::State(k) => panic!("the intact crash image recovers to {k} of {last} tail batches"),
        Verdict::Refused => panic!("the intact crash image does not open"),
        Verdict::Wrong(what) => panic!("the intact crash image: {what}"),
    }
    let tail_end = *image.batch_starts.last().unwrap();
    let ring_position = |lsn: u64| (RING_OFFSET + lsn % LOG_CAPACITY) as usize;
    // Every byte of the tail and a little past it; every 11th byte of the data file.
    let mut flips: Vec<(usize, usize, Option<usize>)> = (image.batch_starts[0]..tail_end + 48)
        .map(|lsn| {
            let batch = image.batch_starts.windows(2).position(|w| (w[0]..w[1]).contains(&lsn));
            (1, ring_position(lsn), batch)
        })
        .collect();
    flips.extend((0..image.files[0].len()).step_by(11).map(|offset| (0, offset, None)));
    let (mut full, mut refused, mut last_lost) = (0u64, 0u64, 0u64);
    let mut wrong = Vec::new();
    for (index, &(file, offset, batch)) in flips.iter().enumerate() {
        let mask = if index % 2 == 0 { 0xff } else { 1u8 << (index % 8) };
        let mut files = image.files.clone();
        files[file][offset] ^= mask;
        write_files(dir.path(), &files);
        let place = match batch {
            Some(b) => format!("{} byte {offset} (tail batch {b}) ^ {mask:#04x}", FILES[file]),
            None => format!("{} byte {offset} ^ {mask:#04x}", FILES[file]),
        };
        match recover_and_read(dir.path(), &image.states) {
            Verdict::State(k) if k == last => full += 1,
            Verdict::Refused => refused += 1,
            // Nothing after the last batch proves it durable: a torn tail, lost quietly.
            Verdict::State(k) if k == last - 1 && batch == Some(last - 1) => last_lost += 1,
            Verdict::State(k) => wrong.push(format!(
                "{place}: recovered {k} of {last} tail batches (acknowledged batches lost without an error)"
            )),
            Verdict::Wrong(what) => wrong.push(format!("{place}: {what}")),
        }
    }
    write_files(dir.path(), &image.files);
    println!(
        "redo tail of {} bytes in {last} batches: {} flips, {full} recovered in full, {last_lost} lost only the last batch, {refused} refused, {} wrong, {:.1} s",
        tail_end - image.batch_starts[0],
        flips.len(),
        wrong.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        wrong.is_empty(),
        "{} flips gave a wrong outcome:\n{}",
        wrong.len(),
        wrong.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(refused > 0, "no flip in the redo tail was ever detected");
}
