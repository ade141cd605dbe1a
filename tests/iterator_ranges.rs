//! Iterators against a `BTreeMap` model: random trees (several leaves and levels, removals that
//! leave sparse leaves), every kind of bound including empty and inverted ranges, and random
//! interleavings of `next` and `next_back`. Guards the chunked leaf reads (short first chunks
//! growing to whole leaves, binary-searched starts, fence-guided backward steps).

use std::collections::BTreeMap;
use std::ops::Bound;

use mtrdb::{Db, Options, WriteBatch};
use proptest::prelude::*;

fn bound(kind: u8, key: Vec<u8>) -> Bound<Vec<u8>> {
    match kind % 3 {
        0 => Bound::Unbounded,
        1 => Bound::Included(key),
        _ => Bound::Excluded(key),
    }
}

fn key_of(index: u16) -> Vec<u8> {
    // Shared prefixes of varying length make separators of varying length.
    format!("{}{index:05}", "k".repeat((index % 7) as usize)).into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn ranges_and_interleavings_match_the_model(
        inserts in prop::collection::vec(0u16..3000, 1..1500),
        removes in prop::collection::vec(0u16..3000, 0..1200),
        queries in prop::collection::vec((0u8..3, 0u16..3000, 0u8..3, 0u16..3000, any::<u64>()), 1..12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_with(dir.path(), Options::default().background_checkpoints(false)).unwrap();
        let mut model = BTreeMap::new();
        let mut batch = WriteBatch::new();
        for &i in &inserts {
            let value = vec![(i % 251) as u8; (i % 90) as usize];
            batch.insert(key_of(i), &value);
            model.insert(key_of(i), value);
        }
        db.write(batch).unwrap();
        let mut batch = WriteBatch::new();
        for &i in &removes {
            batch.remove(key_of(i));
            model.remove(&key_of(i));
        }
        db.write(batch).unwrap();
        for (low_kind, low_key, high_kind, high_key, choices) in queries {
            let low = bound(low_kind, key_of(low_key));
            let high = bound(high_kind, key_of(high_key));
            let inverted = match (&low, &high) {
                (Bound::Included(l), Bound::Included(h)) => l > h,
                (Bound::Included(l) | Bound::Excluded(l), Bound::Included(h) | Bound::Excluded(h)) => l >= h,
                _ => false,
            };
            let expected: Vec<(Vec<u8>, Vec<u8>)> = if inverted {
                Vec::new()
            } else {
                model.range((low.clone(), high.clone())).map(|(k, v)| (k.clone(), v.clone())).collect()
            };
            let mut iter = db.range((low.clone(), high.clone()));
            let (mut front, mut back) = (Vec::new(), Vec::new());
            let mut bits = choices;
            loop {
                let step = if bits & 1 == 0 { iter.next() } else { iter.next_back() };
                let forward = bits & 1 == 0;
                bits = bits.rotate_right(1) ^ 0x9e37;
                match step {
                    Some(entry) => {
                        let (key, value) = entry.unwrap();
                        let entry = (key.to_vec(), value.to_vec());
                        if forward { front.push(entry) } else { back.push(entry) }
                    }
                    None => break,
                }
            }
            back.reverse();
            front.extend(back);
            prop_assert_eq!(&front, &expected, "range {:?}..{:?}", low, high);
        }
    }
}
