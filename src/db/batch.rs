//! Writes: [`WriteBatch`], `Db::insert`, `Db::remove` and `Db::write`, and the write path behind
//! them: checking keys and values, making room in the log, applying the batch under the writer
//! and tree locks, and waiting for its redo as the database's [`Durability`] asks.
//!
//! This module owns the order of a write (refusals up front, then one batch at a time, commit,
//! sync); it must not change a page itself (only `btree::BatchWriter` does, logging each change)
//! nor write pages back (it asks `background` for a checkpoint).

use std::sync::atomic::Ordering;

use mtr::{Lsn, MtrBuf};

use crate::btree::{self, BatchWriter};
use crate::error::{Error, Result};
use crate::page::MAX_KEY_BYTES;
use crate::pager::SnapshotWindow;

use super::{Db, Durability, Inner, EVENTUAL_FLUSH_BYTES, MAX_VALUE_BYTES};

enum BatchOp {
    Insert(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
}

/// Inserts and removes applied together: all of them or none, also across a crash.
#[derive(Default)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Inserts or replaces `key`.
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut WriteBatch {
        self.ops.push(BatchOp::Insert(key.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Removes `key` (nothing if it is absent).
    pub fn remove(&mut self, key: impl AsRef<[u8]>) -> &mut WriteBatch {
        self.ops.push(BatchOp::Remove(key.as_ref().to_vec()));
        self
    }

    /// Operations in the batch.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

pub(super) fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::KeySize { len: key.len(), max: MAX_KEY_BYTES });
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge { len: value.len(), max: MAX_VALUE_BYTES });
    }
    Ok(())
}

impl Db {
    /// Inserts or replaces `key` (atomic and, under `Immediate`, durable when it returns).
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.insert(key, value);
        self.inner.write(&batch.ops).map(|_| ())
    }

    /// Removes `key`; whether it was present.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let mut batch = WriteBatch::new();
        batch.remove(key);
        self.inner.write(&batch.ops)
    }

    /// Applies a batch atomically: all of it or nothing, also across a crash.
    ///
    /// **When it fails.** A refusal checked up front ([`Error::KeySize`],
    /// [`Error::ValueTooLarge`], [`Error::BatchTooLarge`]) applied nothing. Any other error means
    /// the outcome is unknown: the batch may or may not survive a crash, and readers of this
    /// handle may already see it (batches are visible to readers before their redo is durable,
    /// as in every group-commit engine). After a failed write or sync the handle refuses writes
    /// ([`Error::Poisoned`]) but still serves reads of what it holds in memory; close and reopen
    /// it to see exactly what is durable, which recovery then makes safe to build on.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.inner.write(&batch.ops).map(|_| ())
    }
}

impl Inner {
    fn write(&self, ops: &[BatchOp]) -> Result<bool> {
        self.check_writable()?;
        let mut payload_bytes: u64 = 0;
        for op in ops {
            match op {
                BatchOp::Insert(key, value) => {
                    check_key(key)?;
                    check_value(value)?;
                    payload_bytes += (key.len() + value.len()) as u64;
                }
                BatchOp::Remove(key) => {
                    check_key(key)?;
                    payload_bytes += key.len() as u64;
                }
            }
        }
        if ops.is_empty() {
            return Ok(false);
        }
        let capacity = self.log.file().capacity();
        if payload_bytes + btree::ABORT_RESERVE_BYTES > capacity {
            // The keys and values alone are more than the log holds: no room-making can help.
            return Err(Error::BatchTooLarge { needed: payload_bytes + btree::ABORT_RESERVE_BYTES, capacity });
        }
        let (commit, removed) = {
            // The writer lock is held from the room check to the commit, so no other writer can
            // use the room this batch made.
            let mut mtr = self.writer.lock();
            self.make_log_room(payload_bytes + 64 * ops.len() as u64)?;
            let log_was_empty = self.log.free_bytes() == capacity;
            match self.apply_batch(&mut mtr, ops) {
                // The estimate was short (merges can log most of a page per remove): the batch
                // was abandoned whole. Checkpoint until the log is empty and try once more; only
                // a batch whose own redo exceeds the log fails then.
                Err(Error::BatchTooLarge { .. }) if !log_was_empty => {
                    self.checkpoint()?;
                    self.apply_batch(&mut mtr, ops)?
                }
                outcome => outcome?,
            }
        };
        if let Some(end) = commit {
            match self.options.durability {
                Durability::Immediate => self.log.flush_up_to(end).map_err(|e| self.fail(e.into()))?,
                Durability::Eventual => {
                    if self.log.unflushed_bytes() >= EVENTUAL_FLUSH_BYTES {
                        self.log.flush_up_to(end).map_err(|e| self.fail(e.into()))?;
                    }
                }
            }
        }
        if self.flush_wanted() {
            self.request_checkpoint();
        }
        Ok(removed)
    }

    /// Applies a batch under the tree's write lock (the caller holds the writer lock): commits it
    /// whole, or abandons it whole and returns the error. Returns the commit LSN (`None` if it
    /// changed nothing) and whether a remove found its key.
    fn apply_batch(&self, mtr: &mut MtrBuf, ops: &[BatchOp]) -> Result<(Option<Lsn>, bool)> {
        let mut tree = self.tree.write();
        let (oldest_snapshot, newest_snapshot) = {
            let snapshots = self.snapshots.lock();
            (snapshots.keys().next().copied(), snapshots.keys().next_back().copied())
        };
        tree.pager.trim_history(oldest_snapshot);
        let history = newest_snapshot.map(|newest_open| SnapshotWindow { version: tree.version, newest_open });
        let mut writer =
            BatchWriter::new(&mut tree.pager, &self.log, mtr, history, self.options.replay_journal.clone())?;
        let mut removed = false;
        let mut failed = None;
        for op in ops {
            let result = match op {
                BatchOp::Insert(key, value) => writer.insert(key, value),
                BatchOp::Remove(key) => writer.remove(key).map(|existed| removed |= existed),
            };
            if let Err(error) = result {
                failed = Some(error);
                break;
            }
        }
        let outcome = match failed {
            None => writer.commit(),
            Some(error) => Err(error),
        };
        let commit = match outcome {
            Ok(commit) => {
                self.counters.add(&writer.counts);
                commit
            }
            Err(error) => {
                if let Err(abort_error) = writer.abort() {
                    self.fail(abort_error);
                }
                return Err(error);
            }
        };
        if commit.is_some() {
            tree.version += 1;
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
        }
        Ok((commit, removed))
    }

    /// Makes sure about `estimate` bytes of redo fit, checkpointing if the log is short of room.
    fn make_log_room(&self, estimate: u64) -> Result<()> {
        let capacity = self.log.file().capacity();
        // Leave room for the batch (twice its payload covers splits) and a margin.
        let wanted = (estimate.saturating_mul(2) + capacity / 8).min(capacity - btree::ABORT_RESERVE_BYTES);
        for _ in 0..3 {
            if self.log.free_bytes() >= wanted {
                break;
            }
            // Only as many pages as it takes: those whose oldest change is in the part of the
            // ring this batch needs.
            let needed = self.log.end_lsn().0.saturating_add(wanted).saturating_sub(capacity);
            self.write_back(Lsn(needed.saturating_add(1)), usize::MAX)?;
        }
        Ok(())
    }
}
