//! Readers and writers sharing one `Arc<Db>`: atomic visibility of batches, snapshot iterators,
//! and writers never held off by a long scan.
//!
//! Guards the concurrency contract: a reader never sees half a batch; an iterator reads one
//! snapshot from its first entry to its last even while leaves split and merge under it (it
//! takes the tree lock only per leaf); iterators yield strictly ascending keys (descending
//! reversed); every value a reader gets is one some batch wrote; and a half-consumed iterator
//! held open does not block writers, yet still yields exactly the state of the moment it was
//! created.
//!
//! Each batch writes one fresh generation number to every key of a group of keys, with deltas
//! that sum to zero over the group (or removes the whole group), plus some filler inserts and
//! removes that keep pages splitting and merging. Every value carries a checksum of itself and
//! its key.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::rng::Rng;
use mtrdb::{Bytes, Db, Durability, Options, WriteBatch};

const GROUPS: u64 = 10;
const KEYS_PER_GROUP: usize = 12;
const FILLER_KEYS: u64 = 4000;

fn fnv(parts: &[&[u8]]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for &byte in *part {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        hash = (hash ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn group_key(group: u64, index: usize) -> Vec<u8> {
    format!("g{group:02}/{index:02}").into_bytes()
}

fn group_prefix(group: u64) -> Vec<u8> {
    format!("g{group:02}/").into_bytes()
}

fn filler_key(n: u64) -> Vec<u8> {
    // Before and after the groups, so group ranges sit among pages that change.
    if n.is_multiple_of(2) {
        format!("a{n:05}").into_bytes()
    } else {
        format!("m{n:05}").into_bytes()
    }
}

/// `generation, delta, padding, checksum(key, everything before)`.
fn encode_value(key: &[u8], generation: u64, delta: i64, padding: usize) -> Vec<u8> {
    let mut value = Vec::with_capacity(24 + padding);
    value.extend_from_slice(&generation.to_le_bytes());
    value.extend_from_slice(&delta.to_le_bytes());
    value.extend((0..padding).map(|i| (generation as usize).wrapping_add(i) as u8));
    let checksum = fnv(&[key, &value]);
    value.extend_from_slice(&checksum.to_le_bytes());
    value
}

/// `(generation, delta)` of a value some writer built for `key`; `Err` if it is not one.
fn decode_value(key: &[u8], value: &[u8], issued: u64) -> Result<(u64, i64), String> {
    let shown = String::from_utf8_lossy(key);
    if value.len() < 24 {
        return Err(format!("{shown}: a {}-byte value no writer wrote", value.len()));
    }
    let (body, checksum) = value.split_at(value.len() - 8);
    if fnv(&[key, body]).to_le_bytes() != checksum {
        return Err(format!("{shown}: the value's checksum fails (torn, mixed or misplaced value)"));
    }
    let generation = u64::from_le_bytes(body[..8].try_into().unwrap());
    let delta = i64::from_le_bytes(body[8..16].try_into().unwrap());
    if generation == 0 || generation > issued {
        return Err(format!("{shown}: generation {generation} was never issued (issued up to {issued})"));
    }
    Ok((generation, delta))
}

/// Checks one consistent view (an iterator's whole output, or a group range): keys strictly
/// ordered, every value valid, and each group either absent or complete at one generation
/// with deltas summing to zero.
fn check_view(entries: &[(Vec<u8>, Vec<u8>)], descending: bool, issued: u64, what: &str) -> Result<(), String> {
    for pair in entries.windows(2) {
        let ordered = if descending { pair[0].0 > pair[1].0 } else { pair[0].0 < pair[1].0 };
        if !ordered {
            return Err(format!(
                "{what}: keys not strictly {}: {:?} then {:?}",
                if descending { "descending" } else { "ascending" },
                String::from_utf8_lossy(&pair[0].0),
                String::from_utf8_lossy(&pair[1].0)
            ));
        }
    }
    let mut groups: BTreeMap<Vec<u8>, Vec<(u64, i64)>> = BTreeMap::new();
    for (key, value) in entries {
        let decoded = decode_value(key, value, issued).map_err(|e| format!("{what}: {e}"))?;
        if key.first() == Some(&b'g') {
            groups.entry(key[..4].to_vec()).or_default().push(decoded);
        }
    }
    for (prefix, members) in groups {
        let group = String::from_utf8_lossy(&prefix);
        if members.len() != KEYS_PER_GROUP {
            return Err(format!(
                "{what}: group {group} has {} of its {KEYS_PER_GROUP} keys (half a batch)",
                members.len()
            ));
        }
        let generation = members[0].0;
        if members.iter().any(|m| m.0 != generation) {
            let generations: Vec<u64> = members.iter().map(|m| m.0).collect();
            return Err(format!("{what}: group {group} mixes generations {generations:?} (half a batch)"));
        }
        let sum = members.iter().fold(0i64, |sum, m| sum.wrapping_add(m.1));
        if sum != 0 {
            return Err(format!("{what}: group {group} at generation {generation} sums to {sum}, not 0"));
        }
    }
    Ok(())
}

/// One writer batch: a group rewritten at a fresh generation (or removed), and filler churn.
fn write_batch(db: &Db, rng: &mut Rng, generations: &AtomicU64) {
    let group = rng.below(GROUPS);
    // Issued before the write, so a reader that sees it has already seen it issued.
    let generation = generations.fetch_add(1, Ordering::SeqCst) + 1;
    let mut batch = WriteBatch::new();
    if rng.below(10) == 0 {
        for index in 0..KEYS_PER_GROUP {
            batch.remove(group_key(group, index));
        }
    } else {
        let mut sum = 0i64;
        for index in 0..KEYS_PER_GROUP {
            let delta = if index + 1 == KEYS_PER_GROUP { sum.wrapping_neg() } else { rng.next() as i64 >> 8 };
            sum = sum.wrapping_add(delta);
            let key = group_key(group, index);
            let padding = rng.below(400) as usize;
            batch.insert(&key, encode_value(&key, generation, delta, padding));
        }
    }
    for _ in 0..rng.below(12) {
        let key = filler_key(rng.below(FILLER_KEYS));
        if rng.below(3) == 0 {
            batch.remove(&key);
        } else {
            let padding = rng.below(700) as usize;
            batch.insert(&key, encode_value(&key, generation, 0, padding));
        }
    }
    db.write(batch).expect("writer: write failed");
}

fn collect(iter: impl Iterator<Item = mtrdb::Result<(Bytes, Bytes)>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    iter.map(|entry| owned(entry.expect("reader: iteration failed"))).collect()
}

fn owned((key, value): (Bytes, Bytes)) -> (Vec<u8>, Vec<u8>) {
    (key.to_vec(), value.to_vec())
}

fn reader(db: &Db, id: u64, stop: &AtomicBool, generations: &AtomicU64) -> [u64; 4] {
    let mut rng = Rng(1000 + id);
    let mut counts = [0u64; 4];
    while !stop.load(Ordering::Relaxed) {
        let kind = rng.below(4) as usize;
        // Generations issued before the read began bound what it may see.
        match kind {
            0 | 1 => {
                let descending = kind == 1;
                let entries = if descending { collect(db.iter().rev()) } else { collect(db.iter()) };
                let issued = generations.load(Ordering::SeqCst);
                check_view(&entries, descending, issued, &format!("reader {id}: full scan"))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            2 => {
                let group = rng.below(GROUPS);
                let (low, mut high) = (group_prefix(group), group_prefix(group));
                *high.last_mut().unwrap() += 1;
                let descending = rng.below(2) == 0;
                let range = db.range(low.as_slice()..high.as_slice());
                let entries = if descending { collect(range.rev()) } else { collect(range) };
                let issued = generations.load(Ordering::SeqCst);
                check_view(&entries, descending, issued, &format!("reader {id}: group {group} range"))
                    .unwrap_or_else(|e| panic!("{e}"));
                if !entries.is_empty() && entries.len() != KEYS_PER_GROUP {
                    panic!("reader {id}: group {group} range yields {} entries", entries.len());
                }
            }
            _ => {
                // Separate reads may straddle a batch; each value must still be a real one.
                let group = rng.below(GROUPS);
                for index in [rng.below(KEYS_PER_GROUP as u64) as usize, KEYS_PER_GROUP - 1] {
                    let key = group_key(group, index);
                    let value = db.get(&key).expect("reader: get failed");
                    let issued = generations.load(Ordering::SeqCst);
                    if let Some(value) = value {
                        decode_value(&key, &value, issued).unwrap_or_else(|e| panic!("reader {id}: get: {e}"));
                    }
                }
                let key = filler_key(rng.below(FILLER_KEYS));
                if let Some(value) = db.get(&key).expect("reader: get failed") {
                    decode_value(&key, &value, generations.load(Ordering::SeqCst))
                        .unwrap_or_else(|e| panic!("reader {id}: get: {e}"));
                }
            }
        }
        counts[kind] += 1;
    }
    counts
}

#[test]
fn concurrent_readers_and_writers() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options::default().log_capacity(1 << 20).durability(Durability::Immediate);
    let db = Arc::new(Db::open_with(dir.path(), options()).unwrap());
    let generations = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut seed_rng = Rng(77);
    // Every group present at first, and some filler.
    for _ in 0..200 {
        write_batch(&db, &mut seed_rng, &generations);
    }

    let started = Instant::now();
    let writers: Vec<_> = (0..2u64)
        .map(|id| {
            let (db, stop, generations) = (Arc::clone(&db), Arc::clone(&stop), Arc::clone(&generations));
            std::thread::spawn(move || {
                let mut rng = Rng(id + 1);
                let mut batches = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    write_batch(&db, &mut rng, &generations);
                    batches += 1;
                }
                batches
            })
        })
        .collect();
    // Checkpoints now and then, so pages move between the dirty table, the file and the
    // snapshot images while readers hold iterators.
    let checkpointer = {
        let (db, stop) = (Arc::clone(&db), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut checkpoints = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(40));
                db.checkpoint().expect("checkpoint failed");
                checkpoints += 1;
            }
            checkpoints
        })
    };
    let readers: Vec<_> = (0..3u64)
        .map(|id| {
            let (db, stop, generations) = (Arc::clone(&db), Arc::clone(&stop), Arc::clone(&generations));
            std::thread::spawn(move || reader(&db, id, &stop, &generations))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let batches: Vec<u64> = writers.into_iter().map(|w| w.join().expect("a writer panicked")).collect();
    let reads: Vec<[u64; 4]> = readers.into_iter().map(|r| r.join().expect("a reader panicked")).collect();
    let checkpoints = checkpointer.join().expect("the checkpointer panicked");
    println!(
        "{:.1} s: writer batches {batches:?}, reader [forward, backward, group range, gets] {reads:?}, {:?}",
        started.elapsed().as_secs_f64(),
        db.stats()
    );
    assert!(batches.iter().all(|&b| b >= 20), "a writer made little progress: {batches:?}");
    for (id, counts) in reads.iter().enumerate() {
        assert!(counts.iter().all(|&c| c >= 3), "reader {id} made little progress: {counts:?}");
    }
    let stats = db.stats();
    assert!(stats.leaf_splits > 0 && stats.merges > 0, "the workload never split or merged: {stats:?}");
    assert!(checkpoints > 10 && stats.pages_written > 0, "{checkpoints} checkpoints: {stats:?}");

    long_scan_does_not_block_writers(&db, &generations);

    // Final consistency, then across a reopen.
    let issued = generations.load(Ordering::SeqCst);
    let final_state = collect(db.iter());
    check_view(&final_state, false, issued, "final state").unwrap_or_else(|e| panic!("{e}"));
    let report = db.check().unwrap();
    assert_eq!(report.entries, final_state.len() as u64);
    let db = Arc::into_inner(db).expect("every thread has let go of the database");
    db.close().unwrap();
    let db = Db::open_with(dir.path(), options()).unwrap();
    assert!(collect(db.iter()) == final_state, "the state after reopening differs from the state before close");
    db.check().unwrap();
}

/// A half-consumed iterator stays open while another thread commits 100 batches (and
/// checkpoints): the writes complete, and the iterator still yields exactly the snapshot of its
/// creation.
fn long_scan_does_not_block_writers(db: &Arc<Db>, generations: &Arc<AtomicU64>) {
    let before = collect(db.iter());
    let mut iter = db.iter();
    let half = before.len() / 2;
    let mut seen: Vec<(Vec<u8>, Vec<u8>)> = iter.by_ref().take(half).map(|e| owned(e.unwrap())).collect();
    let mut back: Vec<(Vec<u8>, Vec<u8>)> = iter.by_ref().rev().take(10).map(|e| owned(e.unwrap())).collect();

    let (done, finished) = mpsc::channel();
    let writer = {
        let (db, generations) = (Arc::clone(db), Arc::clone(generations));
        std::thread::spawn(move || {
            let mut rng = Rng(4242);
            for n in 0..100 {
                write_batch(&db, &mut rng, &generations);
                if n % 30 == 29 {
                    // Pages the snapshot still needs are written back and the file remapped.
                    db.checkpoint().expect("checkpoint failed");
                }
            }
            done.send(()).unwrap();
        })
    };
    let waited = Instant::now();
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("100 batches did not complete while an iterator was open: writers are blocked by a scan");
    writer.join().unwrap();
    println!("100 batches committed in {:?} while a scan was held open", waited.elapsed());
    assert!(db.stats().snapshot_images > 0, "the open iterator kept no snapshot images");

    // Readers still work meanwhile, and see the new state.
    let after = collect(db.iter());
    assert!(after != before, "100 batches changed nothing?");
    check_view(&after, false, generations.load(Ordering::SeqCst), "after the 100 batches").unwrap();

    // The old iterator finishes its snapshot: exactly the state when it was created.
    seen.extend(iter.map(|e| owned(e.unwrap())));
    back.reverse();
    seen.extend(back);
    assert_eq!(seen.len(), before.len(), "the held iterator's snapshot lost or gained entries");
    assert!(seen == before, "the held iterator did not yield the snapshot of its creation");
    // With no snapshot open, the next batch drops the kept images.
    write_batch(db, &mut Rng(9), generations);
    assert_eq!(db.stats().snapshot_images, 0, "snapshot images outlive every iterator");
}
