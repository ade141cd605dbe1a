//! Smoke test: random operations against a BTreeMap model, with reopens.
use std::collections::BTreeMap;

use mtrdb::{Db, Options, WriteBatch};

fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = BTreeMap::new();
    let mut state = 42u64;
    for round in 0..4 {
        let db = Db::open_with(dir.path(), Options::default().log_capacity(1 << 20)).unwrap();
        for _ in 0..50 {
            let mut batch = WriteBatch::new();
            for _ in 0..40 {
                let key = format!("key{:06}", rng(&mut state) % 3000).into_bytes();
                if rng(&mut state).is_multiple_of(4) {
                    batch.remove(&key);
                    model.remove(&key);
                } else {
                    let len = (rng(&mut state) % 300) as usize;
                    let value = vec![(rng(&mut state) % 251) as u8; len];
                    batch.insert(&key, &value);
                    model.insert(key, value);
                }
            }
            db.write(batch).unwrap();
        }
        let report = db.check().unwrap();
        assert_eq!(report.entries, model.len() as u64, "round {round}");
        let got: Vec<(Vec<u8>, Vec<u8>)> = db.iter().map(|e| e.unwrap()).collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "round {round}: iteration differs");
        let back: Vec<(Vec<u8>, Vec<u8>)> = db.iter().rev().map(|e| e.unwrap()).collect();
        assert!(back.iter().rev().eq(want.iter()), "reverse iteration differs");
        for (k, v) in model.iter().take(100) {
            assert_eq!(db.get(k).unwrap().as_ref(), Some(v));
        }
        println!("round {round}: {report:?} stats {:?}", db.stats());
        if round % 2 == 0 {
            db.close().unwrap();
        } else {
            drop(db);
        }
    }
}
