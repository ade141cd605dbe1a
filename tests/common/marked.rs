//! The batch sequences of the tests whose child process writes while the parent kills it or
//! limits its files (crash_sigkill, real_os_errors). Batch `n` follows from a seed and `n` alone,
//! so the child and the parent build the same one; every batch sets a marker key to the number of
//! batches written, so a database tells how many it holds, and the model after exactly that many
//! says what it must hold.

use std::collections::BTreeMap;

use mtrdb::{Db, WriteBatch};

use super::rng::Rng;

/// The marker key: its value is `n + 1` after batch `n` (little-endian `u64`).
pub const MARKER: &[u8] = b"__next_batch";
const KEY_SPACE: u64 = 40_000;

pub enum Op {
    Insert(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
}

fn key_for(k: u64) -> Vec<u8> {
    let mut key = format!("key{k:05}").into_bytes();
    if k.is_multiple_of(5) {
        // Some longer keys: fewer per page, more splits.
        key.push(b'-');
        key.extend(std::iter::repeat_n(b'L', (k % 13) as usize * 20));
    }
    key
}

/// A sequence of batches.
#[derive(Clone, Copy)]
pub struct Batches {
    pub seed: u64,
    /// Whether every seventh batch also removes a run of 40 neighbouring keys, to merge pages.
    pub neighbour_runs: bool,
}

impl Batches {
    /// Batch `n`: split-heavy inserts over a large key space, some removes (now and then a run of
    /// neighbours, with `neighbour_runs`), occasional large values (overflow pages), and the
    /// marker set to `n + 1`. Applying a batch twice leaves the same state as applying it once.
    pub fn ops(self, n: u64) -> Vec<Op> {
        let mut rng = Rng(self.seed ^ n.wrapping_mul(0xd6e8_feb8_6659_fd93));
        let mut ops = Vec::new();
        for _ in 0..20 + rng.below(60) {
            let key = key_for(rng.below(KEY_SPACE));
            let len = match rng.below(100) {
                0..90 => 10 + rng.below(190),
                90..98 => 200 + rng.below(2800),
                _ => 5000 + rng.below(55_000),
            } as usize;
            let mut value = Vec::with_capacity(len + 8);
            value.extend_from_slice(&n.to_le_bytes());
            while value.len() < len {
                value.extend_from_slice(&rng.next().to_le_bytes());
            }
            value.truncate(len.max(8));
            ops.push(Op::Insert(key, value));
        }
        for _ in 0..rng.below(10) {
            ops.push(Op::Remove(key_for(rng.below(KEY_SPACE))));
        }
        if self.neighbour_runs && n % 7 == 3 {
            let start = rng.below(KEY_SPACE - 40);
            for k in start..start + 40 {
                ops.push(Op::Remove(key_for(k)));
            }
        }
        ops.push(Op::Insert(MARKER.to_vec(), (n + 1).to_le_bytes().to_vec()));
        ops
    }

    /// Batch `n` as a [`WriteBatch`].
    pub fn batch(self, n: u64) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for op in self.ops(n) {
            match op {
                Op::Insert(key, value) => batch.insert(key, value),
                Op::Remove(key) => batch.remove(key),
            };
        }
        batch
    }
}

/// The number of batches the database holds, from its marker.
pub fn read_marker(db: &Db) -> mtrdb::Result<u64> {
    Ok(match db.get(MARKER)? {
        None => 0,
        Some(bytes) => u64::from_le_bytes(bytes.as_slice().try_into().expect("an 8-byte marker")),
    })
}

/// The model after exactly `batches` batches of a sequence, built incrementally.
pub struct Model {
    sequence: Batches,
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
    pub batches: u64,
}

impl Model {
    pub fn new(sequence: Batches) -> Model {
        Model { sequence, map: BTreeMap::new(), batches: 0 }
    }

    pub fn advance_to(&mut self, batches: u64) {
        assert!(batches >= self.batches, "the database went back from {} to {batches} batches", self.batches);
        while self.batches < batches {
            for op in self.sequence.ops(self.batches) {
                match op {
                    Op::Insert(key, value) => self.map.insert(key, value),
                    Op::Remove(key) => self.map.remove(&key),
                };
            }
            self.batches += 1;
        }
    }
}
