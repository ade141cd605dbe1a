//! Random operations against a `BTreeMap` model, with reopens and checkpoints.
//!
//! Guards against regressions anywhere on the ordinary read/write path: splits and merges at every
//! page size (4096, 8192, 65536), keys from 1 to 1024 bytes (maximum-size keys and keys sharing
//! long prefixes, which stress separator truncation), values from 0 bytes to several MiB (overflow
//! chains, and their freeing on replace and remove), batches that touch one key several times,
//! iteration in both directions and over every kind of range bound (including empty and inverted
//! ranges, which must yield nothing and not panic), and the state surviving `close()`, a plain drop
//! and explicit checkpoints. After every round the structural check must pass and count exactly
//! the model's entries.
//!
//! Also: one value of exactly `MAX_VALUE_BYTES` (64 MiB) stored, read back, replaced and removed
//! without the data file growing without bound, and a churn test proving that freed pages are
//! reused (the data file stops growing) and that removing everything collapses the tree back to a
//! single leaf.

mod common;

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::path::Path;

use common::rng::Rng;
use mtrdb::{Db, Durability, Options, WriteBatch, MAX_KEY_BYTES, MAX_VALUE_BYTES};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
type Entries = Vec<(Vec<u8>, Vec<u8>)>;
type RangeOfKeys = (Bound<Vec<u8>>, Bound<Vec<u8>>);

fn short(key: &[u8]) -> String {
    let shown: Vec<u8> = key.iter().take(24).copied().collect();
    format!("{:?}{} ({} bytes)", String::from_utf8_lossy(&shown), if key.len() > 24 { "…" } else { "" }, key.len())
}

/// Panics with a compact description of the first difference.
fn assert_same(got: &[(Vec<u8>, Vec<u8>)], want: &[(Vec<u8>, Vec<u8>)], what: &str) {
    for (index, (g, w)) in got.iter().zip(want).enumerate() {
        if g.0 != w.0 {
            panic!("{what}: entry {index}: got key {}, expected key {}", short(&g.0), short(&w.0));
        }
        if g.1 != w.1 {
            panic!(
                "{what}: entry {index} (key {}): got a {}-byte value, expected {} bytes{}",
                short(&g.0),
                g.1.len(),
                w.1.len(),
                if g.1.len() == w.1.len() { " with different content" } else { "" }
            );
        }
    }
    if got.len() != want.len() {
        let extra = if got.len() > want.len() { &got[want.len()] } else { &want[got.len()] };
        panic!("{what}: got {} entries, expected {}; first unmatched key {}", got.len(), want.len(), short(&extra.0));
    }
}

struct KeyGen {
    /// Every key ever generated, to pick again (replaces, removes of present keys).
    pool: Vec<Vec<u8>>,
}

impl KeyGen {
    fn key(&mut self, rng: &mut Rng) -> Vec<u8> {
        if !self.pool.is_empty() && rng.below(100) < 55 {
            let index = rng.below(self.pool.len() as u64) as usize;
            return self.pool[index].clone();
        }
        let key = match rng.below(100) {
            0..30 => format!("k{:05}", rng.below(6000)).into_bytes(),
            30..42 => {
                // Tiny keys over an alphabet with the extreme bytes.
                const ALPHABET: [u8; 5] = [0x00, 0x01, b'a', b'b', 0xff];
                let len = rng.range(1, 4);
                (0..len).map(|_| ALPHABET[rng.below(5) as usize]).collect()
            }
            42..62 => {
                // Long shared prefixes: separators must be cut near the end of the key.
                let prefix_len = [100, 500, 1000, 1014][rng.below(4) as usize];
                let mut key = vec![b'P'; prefix_len];
                key.extend_from_slice(format!("{:04}", rng.below(3000)).as_bytes());
                key.truncate(MAX_KEY_BYTES);
                key
            }
            62..75 => {
                // Maximum-size keys that differ only in their last bytes.
                let mut key = vec![b'M'; MAX_KEY_BYTES - 4];
                key.extend_from_slice(&(rng.below(2000) as u32).to_le_bytes());
                key
            }
            _ => {
                let len = rng.range(1, MAX_KEY_BYTES);
                let mut key = vec![0u8; len];
                rng.fill(&mut key);
                key
            }
        };
        self.pool.push(key.clone());
        key
    }
}

/// Value lengths from 0 to a few MiB; `big_allowed` admits the MiB-sized ones.
fn value(rng: &mut Rng, big_allowed: bool) -> Vec<u8> {
    let len = match rng.below(1000) {
        0..100 => 0,
        100..500 => rng.range(1, 100),
        500..700 => rng.range(100, 1000),
        700..850 => rng.range(1000, 4200),
        850..970 => rng.range(4200, 64 << 10),
        970..992 => rng.range(64 << 10, 512 << 10),
        _ if big_allowed => rng.range(512 << 10, 3 << 20),
        _ => rng.range(1, 50),
    };
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    bytes
}

/// A range bound: a key, a prefix of one (as branch separators are) or a key with a zero byte
/// appended (its immediate successor).
fn bound(rng: &mut Rng, keys: &mut KeyGen) -> Bound<Vec<u8>> {
    let mut key = keys.key(rng);
    match rng.below(4) {
        0 => key.truncate(rng.range(1, key.len())),
        1 if key.len() < MAX_KEY_BYTES => key.push(0),
        _ => {}
    }
    match rng.below(5) {
        0 => Bound::Unbounded,
        1 | 2 => Bound::Included(key),
        _ => Bound::Excluded(key),
    }
}

fn within(key: &[u8], low: &Bound<Vec<u8>>, high: &Bound<Vec<u8>>) -> bool {
    RangeBounds::<[u8]>::contains(&(low.as_ref().map(Vec::as_slice), high.as_ref().map(Vec::as_slice)), key)
}

fn collect(iter: impl Iterator<Item = mtrdb::Result<(mtrdb::Bytes, mtrdb::Bytes)>>, what: &str) -> Entries {
    iter.map(|entry| owned(entry.unwrap_or_else(|e| panic!("{what}: iteration failed: {e}")))).collect()
}

fn owned((key, value): (mtrdb::Bytes, mtrdb::Bytes)) -> (Vec<u8>, Vec<u8>) {
    (key.to_vec(), value.to_vec())
}

fn model_entries(model: &Model) -> Entries {
    model.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn describe_bound(b: &Bound<Vec<u8>>) -> String {
    match b {
        Bound::Unbounded => "..".into(),
        Bound::Included(k) => format!("Included({})", short(k)),
        Bound::Excluded(k) => format!("Excluded({})", short(k)),
    }
}

/// The whole comparison: check, forward, reverse, ranges (all bound kinds, inverted ones,
/// consumed from both ends), and point reads.
fn verify(db: &Db, model: &Model, rng: &mut Rng, keys: &mut KeyGen, context: &str) {
    let report = db.check().unwrap_or_else(|e| panic!("{context}: check failed: {e}"));
    assert_eq!(report.entries, model.len() as u64, "{context}: check counts entries");
    let want = model_entries(model);
    assert_same(&collect(db.iter(), context), &want, &format!("{context}: forward iteration"));
    let mut backward = collect(db.iter().rev(), context);
    backward.reverse();
    assert_same(&backward, &want, &format!("{context}: reverse iteration"));

    for query in 0..8 {
        let (low, high) = (bound(rng, keys), bound(rng, keys));
        let what = format!("{context}: range #{query} {}..{}", describe_bound(&low), describe_bound(&high));
        let want: Entries =
            model.iter().filter(|(k, _)| within(k, &low, &high)).map(|(k, v)| (k.clone(), v.clone())).collect();
        let got = collect(db.range((low.clone(), high.clone())), &what);
        assert_same(&got, &want, &what);
        let mut back = collect(db.range((low.clone(), high.clone())).rev(), &what);
        back.reverse();
        assert_same(&back, &want, &format!("{what} reversed"));
        // Consumed from both ends at random until they meet.
        let mut iter = db.range((low, high));
        let (mut front, mut tail) = (Vec::new(), Vec::new());
        loop {
            let next =
                if rng.below(2) == 0 { iter.next().map(|e| (true, e)) } else { iter.next_back().map(|e| (false, e)) };
            match next {
                None => break,
                Some((true, entry)) => front.push(owned(entry.unwrap())),
                Some((false, entry)) => tail.push(owned(entry.unwrap())),
            }
        }
        assert!(iter.next().is_none() && iter.next_back().is_none(), "{what}: a finished iterator yields again");
        tail.reverse();
        front.extend(tail);
        assert_same(&front, &want, &format!("{what} from both ends"));
    }

    // Inverted and empty ranges: nothing, and no panic.
    if model.len() >= 2 {
        let first = model.keys().next().cloned().unwrap();
        let last = model.keys().next_back().cloned().unwrap();
        let inverted: [RangeOfKeys; 4] = [
            (Bound::Included(last.clone()), Bound::Included(first.clone())),
            (Bound::Excluded(last.clone()), Bound::Excluded(first.clone())),
            (Bound::Included(first.clone()), Bound::Excluded(first.clone())),
            (Bound::Excluded(first.clone()), Bound::Excluded(first.clone())),
        ];
        for (low, high) in inverted {
            let what = format!("{context}: empty range {}..{}", describe_bound(&low), describe_bound(&high));
            assert!(collect(db.range((low.clone(), high.clone())), &what).is_empty(), "{what} yields entries");
            assert!(collect(db.range((low, high)).rev(), &what).is_empty(), "{what} reversed yields entries");
        }
        let what = format!("{context}: single-key range");
        assert_same(
            &collect(db.range((Bound::Included(first.clone()), Bound::Included(first.clone()))), &what),
            &[(first.clone(), model[&first].clone())],
            &what,
        );
    }

    for _ in 0..20 {
        let key = keys.key(rng);
        let got = db.get(&key).unwrap_or_else(|e| panic!("{context}: get failed: {e}"));
        assert!(got.as_ref() == model.get(&key), "{context}: get({}) differs from the model", short(&key));
    }
}

fn options(page_size: usize, durability: Durability) -> Options {
    Options::default().page_size(page_size).log_capacity(32 << 20).durability(durability)
}

/// Structural events summed over the sessions of one test.
#[derive(Default, Debug)]
struct Events {
    leaf_splits: u64,
    root_splits: u64,
    merges: u64,
    overflow_pages_written: u64,
    overflow_pages_freed: u64,
}

impl Events {
    fn add(&mut self, stats: &mtrdb::Stats) {
        self.leaf_splits += stats.leaf_splits;
        self.root_splits += stats.root_splits;
        self.merges += stats.merges;
        self.overflow_pages_written += stats.overflow_pages_written;
        self.overflow_pages_freed += stats.overflow_pages_freed;
    }
}

/// `MTRDB_TEST_SEED` (a number) varies the seeds, for longer hunts outside the suite.
fn seed_offset() -> u64 {
    std::env::var("MTRDB_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn random_ops(page_size: usize, durability: Durability, seed: u64, rounds: usize, ops_per_round: usize) {
    let seed = seed ^ seed_offset().wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed);
    let mut keys = KeyGen { pool: Vec::new() };
    let mut model = Model::new();
    let options = || options(page_size, durability);
    let mut db = Db::open_with(dir.path(), options()).unwrap();
    let mut reopens = 0;
    let mut events = Events::default();
    for round in 0..rounds {
        let context = format!("page size {page_size}, seed {seed}, round {round}");
        for _ in 0..ops_per_round {
            match rng.below(100) {
                0..35 => {
                    let (key, value) = (keys.key(&mut rng), value(&mut rng, true));
                    db.insert(&key, &value).unwrap_or_else(|e| panic!("{context}: insert failed: {e}"));
                    model.insert(key, value);
                }
                35..50 => {
                    let key = keys.key(&mut rng);
                    let existed = db.remove(&key).unwrap_or_else(|e| panic!("{context}: remove failed: {e}"));
                    assert_eq!(existed, model.remove(&key).is_some(), "{context}: remove({}) result", short(&key));
                }
                50..75 => {
                    let mut batch = WriteBatch::new();
                    let mut big_used = false;
                    for _ in 0..rng.range(1, 40) {
                        let key = keys.key(&mut rng);
                        match rng.below(10) {
                            0..5 => {
                                let value = value(&mut rng, !big_used);
                                big_used |= value.len() > 512 << 10;
                                batch.insert(&key, &value);
                                model.insert(key, value);
                            }
                            5..7 => {
                                batch.remove(&key);
                                model.remove(&key);
                            }
                            7 => {
                                // Insert, then remove, the same key in one batch.
                                batch.insert(&key, value(&mut rng, false)).remove(&key);
                                model.remove(&key);
                            }
                            8 => {
                                // Remove, then insert.
                                let value = value(&mut rng, false);
                                batch.remove(&key).insert(&key, &value);
                                model.insert(key, value);
                            }
                            _ => {
                                // Two inserts: the second wins.
                                let (first, second) = (value(&mut rng, false), value(&mut rng, false));
                                batch.insert(&key, first).insert(&key, &second);
                                model.insert(key, second);
                            }
                        }
                    }
                    db.write(batch).unwrap_or_else(|e| panic!("{context}: batch failed: {e}"));
                }
                _ => {
                    let key = keys.key(&mut rng);
                    let got = db.get(&key).unwrap_or_else(|e| panic!("{context}: get failed: {e}"));
                    assert!(got.as_ref() == model.get(&key), "{context}: get({}) differs", short(&key));
                }
            }
        }
        verify(&db, &model, &mut rng, &mut keys, &context);
        match rng.below(4) {
            0 => {}
            1 => db.checkpoint().unwrap(),
            2 => {
                events.add(&db.stats());
                db.close().unwrap();
                db = Db::open_with(dir.path(), options()).unwrap();
                reopens += 1;
            }
            _ => {
                events.add(&db.stats());
                drop(db);
                db = Db::open_with(dir.path(), options()).unwrap();
                reopens += 1;
            }
        }
    }
    verify(&db, &model, &mut rng, &mut keys, &format!("page size {page_size}: after the last round"));
    events.add(&db.stats());
    db.close().unwrap();
    // Reopened without a page size: the database's own is used.
    let db = Db::open_with(dir.path(), Options::default()).unwrap();
    assert_eq!(db.page_size(), page_size);
    verify(&db, &model, &mut rng, &mut keys, &format!("page size {page_size}: final reopen"));
    let report = db.check().unwrap();
    println!("page size {page_size}: {} entries, {reopens} reopens, {events:?}, {report:?}", model.len());
    // The workload must have exercised what it is meant to.
    assert!(report.height >= 2, "page size {page_size}: the tree never grew a level");
    assert!(events.leaf_splits > 0 && events.root_splits > 0 && events.merges > 0, "{events:?}");
    assert!(events.overflow_pages_written > 0 && events.overflow_pages_freed > 0, "{events:?}");
    assert!(reopens > 0);
}

#[test]
fn random_ops_page_4096() {
    random_ops(4096, Durability::Immediate, 0x4096, 14, 260);
}

#[test]
fn random_ops_page_8192() {
    random_ops(8192, Durability::Eventual, 0x8192, 10, 260);
}

#[test]
fn random_ops_page_65536() {
    random_ops(65536, Durability::Immediate, 0x65536, 10, 260);
}

fn data_file_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("data.mtrdb")).unwrap().len()
}

/// Content that differs per `tag`, cheap to build and to compare.
fn big_value(len: usize, tag: u64) -> Vec<u8> {
    let mut rng = Rng(tag);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    bytes
}

#[test]
fn max_value_64_mib_roundtrip_and_space_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.insert(b"before", b"small").unwrap();
    db.insert(b"zafter", b"small").unwrap();

    let first = big_value(MAX_VALUE_BYTES, 1);
    db.insert(b"huge", &first).unwrap();
    assert!(db.get(b"huge").unwrap().as_deref() == Some(&first[..]), "64 MiB value read back differs");
    let report = db.check().unwrap();
    assert_eq!(report.entries, 3);
    assert!(report.overflow_pages as usize * 4096 >= MAX_VALUE_BYTES, "the value is not in an overflow chain");
    db.checkpoint().unwrap();
    let size_one = data_file_len(dir.path());
    assert!(size_one as usize >= MAX_VALUE_BYTES);

    // Replacing writes the new chain before freeing the old: at most two chains' worth of pages.
    let mut sizes = Vec::new();
    let mut current = first;
    for tag in 2..5u64 {
        drop(current);
        current = big_value(MAX_VALUE_BYTES, tag);
        db.insert(b"huge", &current).unwrap();
        db.checkpoint().unwrap();
        sizes.push(data_file_len(dir.path()));
        assert!(db.get(b"huge").unwrap().as_deref() == Some(&current[..]), "replaced value (tag {tag}) differs");
    }
    let report = db.check().unwrap();
    assert_eq!(report.entries, 3);
    println!("64 MiB value: data file {size_one} bytes with one chain, {sizes:?} after each replace; {report:?}");
    assert!(
        sizes[2] <= sizes[0] && sizes[1] <= sizes[0],
        "the data file keeps growing as a 64 MiB value is replaced: {sizes:?}"
    );
    assert!(sizes[0] <= 2 * size_one + (1 << 20), "replacing used more than two chains of pages: {sizes:?}");

    // Across a reopen (a drop: the shutdown path), then removal frees the whole chain.
    drop(db);
    let db = Db::open(dir.path()).unwrap();
    let entries: Entries = collect(db.iter(), "after reopen");
    assert_eq!(entries.len(), 3);
    assert!(entries[1].0 == b"huge" && entries[1].1 == current, "64 MiB value differs after reopen");
    drop(entries);
    assert!(db.remove(b"huge").unwrap());
    assert_eq!(db.get(b"huge").unwrap(), None);
    let report = db.check().unwrap();
    assert_eq!((report.entries, report.overflow_pages), (2, 0));
    assert!(
        report.free_pages as usize * 4096 >= MAX_VALUE_BYTES,
        "removing a 64 MiB value did not free its chain: {report:?}"
    );
    // Storing it again reuses the freed pages.
    db.insert(b"huge", &current).unwrap();
    db.checkpoint().unwrap();
    assert!(data_file_len(dir.path()) <= sizes[2], "re-inserting after remove grew the file");
    db.close().unwrap();
    let db = Db::open(dir.path()).unwrap();
    assert!(db.get(b"huge").unwrap().as_deref() == Some(&current[..]));
    assert_eq!(db.get(b"before").unwrap().as_deref(), Some(&b"small"[..]));
    db.check().unwrap();
}

#[test]
fn churn_reuses_pages_and_shrinks_to_one_level() {
    let dir = tempfile::tempdir().unwrap();
    // Eventual: the point here is page reuse, not thousands of syncs.
    let options = || Options::default().log_capacity(8 << 20).durability(Durability::Eventual);
    let mut db = Db::open_with(dir.path(), options()).unwrap();
    let mut rng = Rng(7);
    let key_count = 3000u64;
    let mut sizes = Vec::new();
    let (mut merges, mut collapses, mut root_splits) = (0, 0, 0);
    for round in 0..12 {
        // Insert every key in a shuffled order, with a value size that varies by round.
        let mut order: Vec<u64> = (0..key_count).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for chunk in order.chunks(100) {
            let mut batch = WriteBatch::new();
            for &k in chunk {
                let len = 20 + ((k + round) % 7) as usize * 30;
                batch.insert(format!("churn{k:06}"), vec![(k % 251) as u8; len]);
            }
            // A value in an overflow chain now and then.
            batch.insert(format!("churn{:06}", chunk[0]), vec![round as u8; 9000]);
            db.write(batch).unwrap();
        }
        let full = db.check().unwrap();
        assert_eq!(full.entries, key_count);
        assert!(full.height >= 2, "round {round}: {key_count} keys fit in one leaf? {full:?}");
        // Remove them all, in another order, some singly and some in batches.
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for (index, chunk) in order.chunks(50).enumerate() {
            if index % 4 == 0 {
                for &k in chunk {
                    assert!(db.remove(format!("churn{k:06}")).unwrap(), "round {round}: key {k} missing");
                }
            } else {
                let mut batch = WriteBatch::new();
                for &k in chunk {
                    batch.remove(format!("churn{k:06}"));
                }
                db.write(batch).unwrap();
            }
        }
        let empty = db.check().unwrap();
        assert_eq!(empty.entries, 0, "round {round}");
        assert_eq!(empty.height, 1, "round {round}: removing everything left a tree of height {}", empty.height);
        assert_eq!(
            empty.free_pages,
            u64::from(empty.page_count) - 3,
            "round {round}: every page but the meta page, the catalog and the root leaf should be free: {empty:?}"
        );
        assert!(db.iter().next().is_none());
        db.checkpoint().unwrap();
        sizes.push(data_file_len(dir.path()));
        // Reopen now and then, so the free list is also reused across sessions.
        if round % 3 != 0 || round == 11 {
            let stats = db.stats();
            merges += stats.merges;
            collapses += stats.root_collapses;
            root_splits += stats.root_splits;
            if round % 3 == 2 {
                db.close().unwrap();
            } else {
                drop(db);
            }
            db = Db::open_with(dir.path(), options()).unwrap();
        }
    }
    println!("churn: data file sizes per round {sizes:?}; merges {merges}, root collapses {collapses}, root splits {root_splits}");
    assert!(merges > 0 && collapses > 0, "removing everything merged nothing or never collapsed the root");
    assert!(root_splits > 0);
    // Each round needs about the same pages; the free list must supply them after the first.
    let settled = sizes[2];
    assert!(
        sizes[3..].iter().all(|&size| size <= settled + settled / 10),
        "the data file keeps growing although every round frees all its pages: {sizes:?}"
    );
    assert!(sizes[11] <= sizes[1] + sizes[1] / 5, "the data file grew across rounds: {sizes:?}");
}
