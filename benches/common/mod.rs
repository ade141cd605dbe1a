//! The workloads of the benchmarks, one implementation per store, shared by the criterion
//! benches (`benches/*.rs`, `mod common;`) and the table tool (`examples/bench_table.rs`,
//! included with `#[path]`). Every public name is re-exported here, so users write `common::X`.
//!
//! # The modules
//! - this file: the data (keys, values, entries) and the re-exports;
//! - [`stores`]: the stores compared, the `Store`/`Session` traits and one adapter per store;
//! - [`workloads`]: inserts, durable commits, point gets, range scans, the full scan, mtrdb's
//!   split counters;
//! - [`recovery`]: crash images and the timed reopen of one;
//! - [`device`]: what the machine reports (device bytes written, allocated bytes, peak
//!   memory), `sync -f`, benchmark directories;
//! - [`load`]: the `fdatasync` baseline and the CPU hogs that load the machine.
//!
//! # The data
//! Keys are 16 bytes, values 100 bytes of pseudo-random (incompressible) bytes. Sequential keys
//! ascend with their index (the first 8 bytes are the index, big-endian); random keys are the
//! sequential key of a bijective mix of the index, so they never repeat.

// Each bench uses a part of this module.
#![allow(dead_code)]

pub mod device;
pub mod load;
pub mod recovery;
pub mod stores;
pub mod workloads;

// The re-exports: a bench that uses nothing of a module would warn.
#[allow(unused_imports)]
pub use device::*;
#[allow(unused_imports)]
pub use load::*;
#[allow(unused_imports)]
pub use recovery::*;
#[allow(unused_imports)]
pub use stores::*;
#[allow(unused_imports)]
pub use workloads::*;

/// Key length of every workload.
pub const KEY_BYTES: usize = 16;
/// Value length of every workload.
pub const VALUE_BYTES: usize = 100;
/// User bytes of one entry.
pub const ENTRY_BYTES: u64 = (KEY_BYTES + VALUE_BYTES) as u64;
/// Keys per durable batch in the batch workloads.
pub const BATCH_KEYS: u64 = 1_000;
/// Keys per transaction in a bulk load.
pub const BULK_TXN_KEYS: u64 = 100_000;
/// Keys returned by one range scan.
pub const SCAN_KEYS: usize = 10;

/// One key-value pair of a workload.
#[derive(Clone)]
pub struct Entry {
    /// The key.
    pub key: [u8; KEY_BYTES],
    /// The value.
    pub value: [u8; VALUE_BYTES],
}

/// The order in which a workload inserts keys.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KeyOrder {
    /// Ascending: every split is at the right edge of the tree.
    Sequential,
    /// Uniformly random: splits all over the tree.
    Random,
}

impl KeyOrder {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            KeyOrder::Sequential => "sequential",
            KeyOrder::Random => "random",
        }
    }
}

/// A bijective 64-bit mix (the splitmix64 finalizer): distinct inputs give distinct outputs.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Writes `x` as 8 big-endian bytes (so byte order is numeric order), by hand: the workspace
/// denies the `to_be_bytes` family.
fn put_u64_big_endian(out: &mut [u8], x: u64) {
    for (index, byte) in out.iter_mut().take(8).enumerate() {
        *byte = (x >> (56 - 8 * index)) as u8;
    }
}

/// The `index`-th key in ascending order.
pub fn sequential_key(index: u64) -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    put_u64_big_endian(&mut key[..8], index);
    put_u64_big_endian(&mut key[8..], mix(index));
    key
}

const RANDOM_SALT: u64 = 0x5eed_0f6b_7ee5;

/// The `index`-th key of the random order: distinct for distinct indexes.
pub fn random_key(index: u64) -> [u8; KEY_BYTES] {
    sequential_key(mix(index ^ RANDOM_SALT))
}

/// The key of `index` in `order`.
pub fn key(order: KeyOrder, index: u64) -> [u8; KEY_BYTES] {
    match order {
        KeyOrder::Sequential => sequential_key(index),
        KeyOrder::Random => random_key(index),
    }
}

/// A pseudo-random, incompressible value for `index`.
pub fn value(index: u64) -> [u8; VALUE_BYTES] {
    let mut value = [0u8; VALUE_BYTES];
    for (word_index, chunk) in value.chunks_mut(8).enumerate() {
        let word = mix(index.wrapping_mul(31).wrapping_add(word_index as u64)).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    value
}

/// Entries `start .. start + count` of `order`.
pub fn entries(order: KeyOrder, start: u64, count: u64) -> Vec<Entry> {
    (start..start + count).map(|index| Entry { key: key(order, index), value: value(index) }).collect()
}
