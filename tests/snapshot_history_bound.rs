//! An open iterator must not make memory grow with every later write.
//!
//! Guards review finding 4. Spec: an open snapshot retains at most one page image per page
//! changed since it began (`Stats::snapshot_images`), and an iterator that has returned `None`
//! no longer pins its snapshot.
//!
//! Today the pager keeps a page's previous image on the first change of *every* batch while any
//! snapshot is open, tagged with the version it was current for, and drops images only once no
//! open snapshot is older than them. One iterator left open while a hot key is rewritten therefore
//! retains one page image per write (4 KiB each, ~80 MiB for 20,000 single-key updates). And an
//! iterator releases its snapshot only when dropped, so a finished-but-kept iterator pins it too.
//!
//! - `open_iterator_retains_at_most_one_image_per_page`: 2,000 keys; an iterator takes one entry;
//!   20,000 single-key updates rewrite 100 of the keys; `snapshot_images` must not exceed the
//!   pages in the database (`check().page_count`, every page id in use or free; a snapshot can
//!   need at most one image of each); then the iterator must still yield exactly the contents as
//!   of its creation.
//! - `finished_iterator_pins_nothing`: iterators run to `None` (one forward, one backward) but
//!   not dropped; 1,000 updates; `snapshot_images` must be 0.
//!
//! Both print the heap growth over the updates, measured with a counting global allocator.

mod common_alloc;

use std::sync::Mutex;

use common_alloc::mib;
use mtrdb::{Db, Durability, Options};

#[global_allocator]
static ALLOCATOR: common_alloc::Counting = common_alloc::Counting;

/// The heap figures are process-wide: one test measures at a time.
static MEASURING: Mutex<()> = Mutex::new(());

const KEYS: u32 = 2_000;

fn key(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

fn value(i: u32, generation: u32) -> Vec<u8> {
    let mut value = format!("value {i} generation {generation} ").into_bytes();
    value.resize(100, b'.');
    value
}

/// A database of `KEYS` keys at generation 0. `Eventual`: the test measures memory, not fsyncs.
fn loaded() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), Options::default().durability(Durability::Eventual)).expect("open");
    let mut batch = mtrdb::WriteBatch::new();
    for i in 0..KEYS {
        batch.insert(key(i), value(i, 0));
    }
    db.write(batch).expect("load");
    (dir, db)
}

#[test]
fn open_iterator_retains_at_most_one_image_per_page() {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let (_dir, db) = loaded();
    let pages = db.check().expect("check").page_count as u64;

    let mut iter = db.iter();
    let (first_key, first_value) = iter.next().expect("an entry").expect("read");
    assert_eq!((first_key.to_vec(), first_value.to_vec()), (key(0), value(0, 0)));

    let baseline = common_alloc::reset_peak();
    let updates = 20_000u32;
    let mut max_images = 0;
    for n in 0..updates {
        // 100 keys spread over the whole key space (so over many leaves), rewritten in turn.
        let i = (n % 100) * (KEYS / 100) + 7;
        db.insert(key(i), value(i, n + 1)).expect("update");
        if n % 1000 == 999 {
            max_images = max_images.max(db.stats().snapshot_images);
        }
    }
    let stats = db.stats();
    max_images = max_images.max(stats.snapshot_images);
    let grown = common_alloc::current().saturating_sub(baseline);
    let peak = common_alloc::peak().saturating_sub(baseline);
    let pages_now = db.check().expect("check").page_count as u64;
    println!(
        "open iterator, {updates} single-key updates of 100 keys: snapshot_images {} (max seen {max_images}), \
         database pages {pages} before / {pages_now} after, heap +{:.1} MiB now (peak +{:.1} MiB)",
        stats.snapshot_images,
        mib(grown),
        mib(peak)
    );
    // The iterator still reads its snapshot: every value as it was before the updates. (Checked
    // before the bound, so a failure shows whether the snapshot is also wrong.)
    let mut expected = 1..KEYS;
    for entry in iter {
        let (k, v) = entry.expect("iterating the snapshot");
        let i = expected.next().unwrap_or_else(|| panic!("extra entry {:?}", String::from_utf8_lossy(&k)));
        assert_eq!(k, key(i), "the snapshot's keys");
        assert!(
            v == value(i, 0),
            "key {i}: the snapshot yields {:?}, not its generation-0 value",
            String::from_utf8_lossy(&v)
        );
    }
    assert_eq!(expected.next(), None, "the snapshot iterator stopped early");

    let bound = pages.max(pages_now);
    assert!(
        max_images <= bound,
        "one open iterator retained {max_images} page images after {updates} single-key updates, more than the \
         {bound} pages of the database (at most one image per changed page may be kept); heap grew by {:.1} MiB",
        mib(grown)
    );
}

#[test]
fn finished_iterator_pins_nothing() {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let (_dir, db) = loaded();

    let mut forward = db.iter();
    let mut count = 0;
    for entry in forward.by_ref() {
        entry.expect("read");
        count += 1;
    }
    assert_eq!(count, KEYS);
    let mut backward = db.range(key(100)..key(200)).rev();
    let mut count = 0;
    for entry in backward.by_ref() {
        entry.expect("read");
        count += 1;
    }
    assert_eq!(count, 100);

    let baseline = common_alloc::reset_peak();
    for n in 0..1_000u32 {
        let i = (n % 100) * (KEYS / 100);
        db.insert(key(i), value(i, n + 1)).expect("update");
    }
    let images = db.stats().snapshot_images;
    let grown = common_alloc::current().saturating_sub(baseline);
    println!(
        "two finished (not dropped) iterators, 1000 updates: snapshot_images {images}, heap +{:.1} MiB now (peak \
         +{:.1} MiB)",
        mib(grown),
        mib(common_alloc::peak().saturating_sub(baseline))
    );
    assert_eq!(
        images,
        0,
        "iterators that had returned None still pinned their snapshots: {images} page images retained over 1,000 \
         updates (heap +{:.1} MiB)",
        mib(grown)
    );
    // Still finished, and still usable as iterators.
    assert!(forward.next().is_none());
    assert!(backward.next().is_none());
}
