//! Single-byte flips anywhere in a closed database give the right data or an error: never wrong
//! data, never a panic.
//!
//! Guards every integrity check on the open and read paths: page checksums (which bind the page
//! id), page validation, the meta page, the redo log's header and checkpoint slots (a damaged slot
//! must fall back to the other one, or fail), the scan of the ring after the checkpoint, and the
//! doublewrite file (whose stale copies must never be taken as repairs). A small database (page
//! size 4096, a 256 KiB log, a few hundred keys, an overflow chain and a free page) is closed;
//! then every byte of the data file, every byte of the log's header and checkpoint blocks and a
//! strided sample of the log's ring and of the doublewrite file is flipped in turn, the database
//! opened and read in full (forward iteration, `check`, point reads), and the file restored.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use common::files::{read_files, scratch_dir, write_files, FILES};
use common::rng::Rng;
use mtrdb::{Db, Options, WriteBatch};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// The log's header block and two checkpoint blocks.
const LOG_HEADER_BYTES: usize = 12288;

/// A flip's mask: half the flips invert the byte, half xor a random nonzero mask.
fn flip_mask(rng: &mut Rng) -> u8 {
    if rng.next().is_multiple_of(2) {
        0xff
    } else {
        (rng.next() % 255) as u8 + 1
    }
}

fn options() -> Options {
    Options::default().page_size(4096).log_capacity(256 * 1024).background_checkpoints(false)
}

/// A closed database: a few hundred keys over several pages, an overflow chain, a free list.
fn build(dir: &Path) -> Model {
    let mut model = Model::new();
    let db = Db::open_with(dir, options()).unwrap();
    let mut rng = Rng(5);
    for chunk in (0..320u32).collect::<Vec<_>>().chunks(40) {
        let mut batch = WriteBatch::new();
        for &k in chunk {
            let key = format!("key{:04}", k * 7 % 320).into_bytes();
            let value: Vec<u8> = (0..rng.next() % 24).map(|_| rng.next() as u8).collect();
            batch.insert(&key, &value);
            model.insert(key, value);
        }
        db.write(batch).unwrap();
    }
    let overflow: Vec<u8> = (0..6000u32).map(|i| (i % 253) as u8).collect();
    db.insert(b"overflow", &overflow).unwrap();
    model.insert(b"overflow".to_vec(), overflow);
    db.insert(b"freed", vec![9u8; 3000]).unwrap();
    assert!(db.remove(b"freed").unwrap());
    let report = db.check().unwrap();
    assert!(report.height >= 2 && report.leaf_pages >= 3, "{report:?}");
    assert!(report.overflow_pages > 0 && report.free_pages > 0, "{report:?}");
    db.close().unwrap();
    model
}

#[derive(Debug)]
enum Verdict {
    /// Opened and read exactly the model.
    Right,
    /// An error at open, read or check.
    Refused,
    /// Wrong data, or a panic.
    Wrong(String),
}

/// Opens and reads everything. Every entry a read returns must be the model's, even if an
/// error comes later.
fn open_and_compare(dir: &Path, model: &Model) -> Verdict {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<Verdict, mtrdb::Error> {
        let db = Db::open_with(dir, options())?;
        let mut expected = model.iter();
        for entry in db.iter() {
            let (key, value) = entry?;
            match expected.next() {
                Some((k, v)) if *k == key && *v == value => {}
                Some((k, _)) => {
                    return Ok(Verdict::Wrong(format!(
                        "iteration returned {:?} ({} bytes) where the model has {:?}",
                        String::from_utf8_lossy(&key),
                        value.len(),
                        String::from_utf8_lossy(k)
                    )))
                }
                None => {
                    return Ok(Verdict::Wrong(format!(
                        "iteration returned an extra key {:?}",
                        String::from_utf8_lossy(&key)
                    )))
                }
            }
        }
        let report = db.check()?;
        if let Some((k, _)) = expected.next() {
            return Ok(Verdict::Wrong(format!("iteration ended early, before {:?}", String::from_utf8_lossy(k))));
        }
        if report.entries != model.len() as u64 {
            return Ok(Verdict::Wrong(format!("check counts {} entries, not {}", report.entries, model.len())));
        }
        for key in [b"key0000".as_slice(), b"key0319", b"overflow", b"freed"] {
            let got = db.get(key)?;
            if got.as_ref() != model.get(key) {
                return Ok(Verdict::Wrong(format!("get({:?}) differs", String::from_utf8_lossy(key))));
            }
        }
        Ok(Verdict::Right)
    }));
    match result {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(_)) => Verdict::Refused,
        Err(panic) => Verdict::Wrong(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

fn flip_byte(path: &Path, offset: usize, mask: u8, pristine: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&[pristine[offset] ^ mask], offset as u64).unwrap();
}

/// Flips each listed `(file, offset)` in turn. `must_detect`: some flip must be refused (the
/// bytes matter); otherwise (bytes a clean database no longer needs) every flip may read right.
fn campaign(name: &str, must_detect: bool, flips: impl Fn(&[Vec<u8>]) -> Vec<(usize, usize)>) {
    let started = Instant::now();
    let dir = scratch_dir();
    let model = build(dir.path());
    let pristine = read_files(dir.path());
    // The pristine database reads right (and opening it twice changes nothing it depends on).
    for _ in 0..2 {
        assert!(matches!(open_and_compare(dir.path(), &model), Verdict::Right), "{name}: the pristine database");
        write_files(dir.path(), &pristine);
    }
    let mut rng = Rng(name.len() as u64);
    let (mut right, mut refused) = (0u64, 0u64);
    let mut wrong = Vec::new();
    let list = flips(&pristine);
    for &(file, offset) in &list {
        let mask = flip_mask(&mut rng);
        flip_byte(&dir.path().join(FILES[file]), offset, mask, &pristine[file]);
        match open_and_compare(dir.path(), &model) {
            Verdict::Right => right += 1,
            Verdict::Refused => refused += 1,
            Verdict::Wrong(what) => wrong.push(format!("{} byte {offset} ^ {mask:#04x}: {what}", FILES[file])),
        }
        write_files(dir.path(), &pristine);
    }
    println!(
        "{name}: {} flips, {right} read right, {refused} refused, {} wrong, {:.1} s",
        list.len(),
        wrong.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        wrong.is_empty(),
        "{name}: {} flips gave wrong data or panicked:\n{}",
        wrong.len(),
        wrong.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
    if must_detect {
        assert!(refused > 0, "{name}: no flip was ever detected: the test reads nothing that matters");
    }
}

/// Every byte of the data file, in two halves so the two run in parallel.
fn data_file_flips(pristine: &[Vec<u8>], half: usize) -> Vec<(usize, usize)> {
    let len = pristine[0].len();
    let (start, end) = if half == 0 { (0, len / 2) } else { (len / 2, len) };
    (start..end).map(|offset| (0, offset)).collect()
}

#[test]
fn bit_flips_in_data_file_first_half() {
    campaign("data file, first half", true, |p| data_file_flips(p, 0));
}

#[test]
fn bit_flips_in_data_file_second_half() {
    campaign("data file, second half", true, |p| data_file_flips(p, 1));
}

#[test]
fn bit_flips_in_log_header_and_checkpoint_slots() {
    campaign("redo log header and checkpoint blocks", true, |_| {
        (0..LOG_HEADER_BYTES).map(|offset| (1, offset)).collect()
    });
}

#[test]
fn bit_flips_in_log_ring_and_doublewrite_sampled() {
    campaign("redo log ring and doublewrite, sampled", false, |pristine| {
        let ring = (LOG_HEADER_BYTES..pristine[1].len()).step_by(89).map(|offset| (1, offset));
        let doublewrite = (0..pristine[2].len()).step_by(13).map(|offset| (2, offset));
        ring.chain(doublewrite).collect()
    });
}
