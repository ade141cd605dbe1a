//! Where a Raft group's records live: its keyspace and snapshot file names, the keys of its
//! metadata, and the encoding of every stored record (postcard for log entries, JSON for the
//! other records of openraft's types, little-endian for counters, big-endian for log indexes so
//! that keys sort as the indexes do); and the size of the batches this crate writes.
//!
//! This module owns names and encodings only; it reads and writes nothing.

use mtrdb::{Db, Keyspace};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// The metadata keyspace's keys.
pub(crate) mod meta {
    /// The vote (JSON `Vote`), written durably by `save_vote`.
    pub const VOTE: &[u8] = b"vote";
    /// The committed log id (JSON `LogId`), by `save_committed`.
    pub const COMMITTED: &[u8] = b"committed";
    /// The last purged log id (JSON `LogId`), in `purge`'s batch.
    pub const PURGED: &[u8] = b"purged";
    /// The state machine's generation (u64 LE): its keyspace is `raft.{group}.sm.{generation}`.
    pub const SM_GENERATION: &[u8] = b"sm.generation";
    /// The current snapshot (JSON `CurrentSnapshot`: its file number and metadata).
    pub const SNAPSHOT: &[u8] = b"snapshot";
    /// The next snapshot file number (u64 LE), written durably before a file is created.
    pub const SNAPSHOT_NEXT: &[u8] = b"snapshot.next";
    /// Below this file number (u64 LE), every snapshot file but the current one is removed.
    pub const SNAPSHOT_CLEAN_FROM: &[u8] = b"snapshot.clean_from";
}

/// The state machine keyspace's own records, apart from the map's keys by their first byte.
pub(crate) mod sm {
    /// The last applied log id (JSON `Option<LogId>`).
    pub const APPLIED: &[u8] = b"\x00applied";
    /// The last membership (JSON `StoredMembership`).
    pub const MEMBERSHIP: &[u8] = b"\x00membership";
    /// The first byte of every key of the map.
    pub const DATA_TAG: u8 = 1;
}

/// A group's names.
#[derive(Debug)]
pub(crate) struct Names {
    pub group: String,
    pub log: String,
    pub meta: String,
    sm_prefix: String,
}

impl Names {
    pub fn new(group: &str) -> Result<Names, Error> {
        let valid = (1..=64).contains(&group.len())
            && group.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(Error::GroupName { name: group.to_string() });
        }
        Ok(Names {
            group: group.to_string(),
            log: format!("raft.{group}.log"),
            meta: format!("raft.{group}.meta"),
            sm_prefix: format!("raft.{group}.sm."),
        })
    }

    /// The state machine keyspace of `generation`.
    pub fn sm(&self, generation: u64) -> String {
        format!("{}{generation}", self.sm_prefix)
    }

    /// Whether `keyspace` is a state machine keyspace of this group (of any generation).
    pub fn is_sm(&self, keyspace: &str) -> bool {
        keyspace.strip_prefix(&self.sm_prefix).is_some_and(|rest| rest.parse::<u64>().is_ok())
    }

    /// Snapshot file number `number`.
    pub fn snapshot_file(&self, number: u64) -> String {
        format!("raft.{}.snapshot.{number}", self.group)
    }
}

/// The log keyspace's key of `index`: big-endian, so that keys sort as indexes.
#[allow(clippy::big_endian_bytes)] // the one big-endian encoding: the keys' order is the indexes'.
pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The map key `key` as stored in the state machine keyspace.
pub(crate) fn data_key(key: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(key.len() + 1);
    stored.push(sm::DATA_TAG);
    stored.extend_from_slice(key);
    stored
}

/// A log entry as stored: postcard (compact; a value's bytes stay bytes).
pub(crate) fn encode_entry(entry: &openraft::Entry<crate::TypeConfig>) -> Vec<u8> {
    postcard::to_stdvec(entry).unwrap_or_else(|error| unreachable!("postcard encoding failed: {error}"))
}

pub(crate) fn decode_entry(bytes: &[u8]) -> Result<openraft::Entry<crate::TypeConfig>, Error> {
    postcard::from_bytes(bytes)
        .map_err(|error| Error::Corrupt { detail: format!("a log entry does not decode: {error}") })
}

/// The keys and values one batch of this crate carries at most: 4 MiB, or an eighth of the
/// database's redo log if that is less, so that a batch always fits in the log with room to spare.
pub(crate) fn batch_bytes(db: &Db) -> usize {
    (4 << 20).min(db.log_capacity() / 8) as usize
}

/// Where a run of writes is cut into batches of at most [`batch_bytes`] (or one write alone):
/// the one rule for appends, applies and snapshot fills.
pub(crate) struct BatchCut {
    limit: usize,
    bytes: usize,
}

impl BatchCut {
    pub fn new(db: &Db) -> BatchCut {
        BatchCut { limit: batch_bytes(db), bytes: 0 }
    }

    /// Counts a write of `bytes`; whether the batch so far must go first.
    pub fn before(&mut self, bytes: usize) -> bool {
        let cut = self.bytes > 0 && self.bytes + bytes > self.limit;
        if cut {
            self.bytes = 0;
        }
        self.bytes += bytes;
        cut
    }
}

/// The removals one batch carries at most (a removal's redo is about its key and a header).
pub(crate) fn removals_per_batch(db: &Db) -> usize {
    (batch_bytes(db) / 64).max(64)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // openraft's types and ours serialize to JSON without fail (no maps with non-string keys).
    serde_json::to_vec(value).unwrap_or_else(|error| unreachable!("JSON encoding failed: {error}"))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|error| Error::Corrupt { detail: format!("{what} does not decode: {error}") })
}

pub(crate) fn decode_u64(bytes: &[u8], what: &str) -> Result<u64, Error> {
    let bytes: [u8; 8] =
        bytes.try_into().map_err(|_| Error::Corrupt { detail: format!("{what} is {} bytes, not 8", bytes.len()) })?;
    Ok(u64::from_le_bytes(bytes))
}

/// Reads and decodes `key` of `keyspace`.
pub(crate) fn read<T: DeserializeOwned>(keyspace: &Keyspace<'_>, key: &[u8], what: &str) -> Result<Option<T>, Error> {
    keyspace.get(key)?.map(|bytes| decode(&bytes, what)).transpose()
}

pub(crate) fn read_u64(keyspace: &Keyspace<'_>, key: &[u8], what: &str) -> Result<Option<u64>, Error> {
    keyspace.get(key)?.map(|bytes| decode_u64(&bytes, what)).transpose()
}

/// The keyspace `name`, created if missing.
pub(crate) fn keyspace<'db>(db: &'db Db, name: &str) -> Result<Keyspace<'db>, Error> {
    Ok(db.keyspace(name)?)
}
