//! Writes: [`WriteBatch`], `Db::insert`, `Db::remove` and `Db::write`, and the write path behind
//! them: checking keys and values, making room in the log, applying the batch under the writer
//! and tree locks, and waiting for its redo as the database's [`Durability`] asks.
//!
//! This module owns the order of a write (refusals up front, then one batch at a time, commit,
//! sync); it must not change a page itself (only `btree::BatchWriter` does, logging each change)
//! nor write pages back (it asks `background` for a checkpoint).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use mtr::{Lsn, MtrBuf};

use crate::btree::{self, BatchWriter};
use crate::catalog::{self, KeyspaceInfo, Keyspaces};
use crate::error::{Error, Result};
use crate::page::{PageId, MAX_KEY_BYTES};
use crate::pager::SnapshotWindow;

use super::keyspace::Keyspace;
use super::{Db, Durability, Inner, EVENTUAL_FLUSH_BYTES, MAX_VALUE_BYTES};

/// Whether a batch's commit waits for its redo to be durable.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Durable {
    /// As the database's [`Durability`] says (every user write).
    AsOptioned,
    /// As the writer asked for this write ([`Db::write_with`]).
    Given(Durability),
    /// Never: work that is redone if lost (freeing a dropped keyspace's pages).
    No,
}

/// Which keyspace an operation is for: an index into the batch's `keyspaces`, or the default.
type KeyspaceSlot = u32;
const DEFAULT_SLOT: KeyspaceSlot = u32::MAX;

pub(super) enum BatchOp {
    Insert(KeyspaceSlot, Vec<u8>, Vec<u8>),
    Remove(KeyspaceSlot, Vec<u8>),
}

/// Inserts and removes applied together: all of them or none, also across a crash. A batch may
/// span keyspaces ([`WriteBatch::insert_in`]); it is atomic across them.
#[derive(Default)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
    /// The keyspaces its operations name (other than the default), each once, with the
    /// database each belongs to.
    keyspaces: Vec<(u64, Arc<KeyspaceInfo>)>,
}

impl WriteBatch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Inserts or replaces `key` in the default keyspace.
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut WriteBatch {
        self.ops.push(BatchOp::Insert(DEFAULT_SLOT, key.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Removes `key` from the default keyspace (nothing if it is absent).
    pub fn remove(&mut self, key: impl AsRef<[u8]>) -> &mut WriteBatch {
        self.ops.push(BatchOp::Remove(DEFAULT_SLOT, key.as_ref().to_vec()));
        self
    }

    /// Inserts or replaces `key` in `keyspace`.
    pub fn insert_in(
        &mut self,
        keyspace: &Keyspace<'_>,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> &mut WriteBatch {
        let slot = self.slot(keyspace);
        self.ops.push(BatchOp::Insert(slot, key.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Removes `key` from `keyspace` (nothing if it is absent).
    pub fn remove_in(&mut self, keyspace: &Keyspace<'_>, key: impl AsRef<[u8]>) -> &mut WriteBatch {
        let slot = self.slot(keyspace);
        self.ops.push(BatchOp::Remove(slot, key.as_ref().to_vec()));
        self
    }

    fn slot(&mut self, keyspace: &Keyspace<'_>) -> KeyspaceSlot {
        let owner = keyspace.db_identity();
        let info = keyspace.info();
        if let Some(index) = self.keyspaces.iter().position(|(o, k)| *o == owner && Arc::ptr_eq(k, info)) {
            return index as KeyspaceSlot;
        }
        self.keyspaces.push((owner, Arc::clone(info)));
        (self.keyspaces.len() - 1) as KeyspaceSlot
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

pub(super) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge { len: value.len(), max: MAX_VALUE_BYTES });
    }
    Ok(())
}

impl Db {
    /// Inserts or replaces `key` in the default keyspace (atomic and, under `Immediate`, durable
    /// when it returns).
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.insert(key, value);
        self.write(batch)
    }

    /// Removes `key` from the default keyspace; whether it was present.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let mut batch = WriteBatch::new();
        batch.remove(key);
        self.inner.write(&batch, Durable::AsOptioned)
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
    ///
    /// A batch naming a keyspace that was dropped fails with [`Error::KeyspaceDropped`], and one
    /// naming another database's keyspace with [`Error::ForeignKeyspace`]; either applied nothing.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.inner.write(&batch, Durable::AsOptioned).map(|_| ())
    }

    /// [`Db::write`] with the durability of this one write instead of the database's: an
    /// `Immediate` write on an `Eventual` database returns once it (and every write before it) is
    /// durable; an `Eventual` write on an `Immediate` database returns once it is buffered, and
    /// becomes durable with the next sync of the log (any `Immediate` write's, [`Db::flush`], or
    /// the database's own within about a second). Either way a crash keeps a prefix of the
    /// batches in commit order: never a later one without an earlier one.
    pub fn write_with(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        self.inner.write(&batch, Durable::Given(durability)).map(|_| ())
    }
}

impl Inner {
    pub(super) fn write(&self, batch: &WriteBatch, durable: Durable) -> Result<bool> {
        let Some(estimate) = self.prepare(batch)? else { return Ok(false) };
        self.run_batch(estimate, durable, |writer, keyspaces| apply_ops(writer, keyspaces, batch), |_, _| {})
    }

    /// The refusals checked before a batch takes any lock: the database failed, a keyspace of
    /// another database, a key or value out of bounds, keys and values larger than the log.
    /// Returns the estimate of the batch's redo, or `None` for an empty batch.
    pub(super) fn prepare(&self, batch: &WriteBatch) -> Result<Option<u64>> {
        self.check_writable()?;
        let identity = self.identity();
        if let Some((_, info)) = batch.keyspaces.iter().find(|(owner, _)| *owner != identity) {
            return Err(Error::ForeignKeyspace { name: info.name.clone() });
        }
        let mut payload_bytes: u64 = 0;
        for op in &batch.ops {
            match op {
                BatchOp::Insert(_, key, value) => {
                    check_key(key)?;
                    check_value(value)?;
                    payload_bytes += (key.len() + value.len()) as u64;
                }
                BatchOp::Remove(_, key) => {
                    check_key(key)?;
                    payload_bytes += key.len() as u64;
                }
            }
        }
        if batch.ops.is_empty() {
            return Ok(None);
        }
        let capacity = self.log.file().capacity();
        if payload_bytes + btree::ABORT_RESERVE_BYTES > capacity {
            // The keys and values alone are more than the log holds: no room-making can help.
            return Err(Error::BatchTooLarge { needed: payload_bytes + btree::ABORT_RESERVE_BYTES, capacity });
        }
        Ok(Some(payload_bytes + 64 * batch.ops.len() as u64))
    }

    /// Runs `body` as one batch under the writer and tree locks, after making room in the log for
    /// about `estimate` bytes of redo, and commits it: whole, or abandoned whole with the error
    /// returned. `on_commit` updates the in-memory keyspace table once the batch has committed.
    /// Waits for the commit's redo as `durable` says, then asks for a checkpoint if one is due.
    pub(super) fn run_batch<R>(
        &self,
        estimate: u64,
        durable: Durable,
        body: impl FnMut(&mut BatchWriter<'_>, &Keyspaces) -> Result<R>,
        on_commit: impl FnMut(&mut Keyspaces, &R),
    ) -> Result<R> {
        self.refuse_inside_transaction()?;
        let (commit, outcome) = {
            let mut mtr = self.writer.lock();
            self.run_batch_locked(&mut mtr, estimate, body, on_commit)?
        };
        self.finish_commit(commit, durable)?;
        Ok(outcome)
    }

    /// [`Inner::run_batch`] up to the commit, for a caller that holds the writer lock (`mtr`),
    /// held from the room check to the commit so that no other writer can use the room this
    /// batch made. Returns the commit LSN (`None` if the batch changed nothing).
    pub(super) fn run_batch_locked<R>(
        &self,
        mtr: &mut MtrBuf,
        estimate: u64,
        mut body: impl FnMut(&mut BatchWriter<'_>, &Keyspaces) -> Result<R>,
        mut on_commit: impl FnMut(&mut Keyspaces, &R),
    ) -> Result<(Option<Lsn>, R)> {
        let capacity = self.log.file().capacity();
        self.check_writable()?;
        self.make_log_room(estimate)?;
        let log_was_empty = self.log.free_bytes() == capacity;
        match self.apply_batch(mtr, &mut body, &mut on_commit) {
            // The estimate was short (merges can log most of a page per remove): the batch
            // was abandoned whole. Checkpoint until the log is empty and try once more; only
            // a batch whose own redo exceeds the log fails then.
            Err(Error::BatchTooLarge { .. }) if !log_was_empty => {
                self.checkpoint()?;
                self.apply_batch(mtr, &mut body, &mut on_commit)
            }
            outcome => outcome,
        }
    }

    /// After a commit, with the writer lock released (so that others append meanwhile and
    /// share the sync): waits for the commit's redo as `durable` says, then asks for a
    /// checkpoint if one is due.
    pub(super) fn finish_commit(&self, commit: Option<Lsn>, durable: Durable) -> Result<()> {
        if let Some(end) = commit {
            let durability = match durable {
                Durable::No => None,
                Durable::AsOptioned => Some(self.options.durability),
                Durable::Given(durability) => Some(durability),
            };
            let sync = match durability {
                None => false,
                Some(Durability::Immediate) => true,
                Some(Durability::Eventual) => {
                    // Read first: a store on every commit would bounce the cache line.
                    if !self.eventual_writes.load(std::sync::atomic::Ordering::Relaxed) {
                        self.eventual_writes.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    self.log.unflushed_bytes() >= EVENTUAL_FLUSH_BYTES
                }
            };
            if sync {
                self.log.flush_up_to(end).map_err(|e| self.fail(e.into()))?;
            }
        }
        if self.flush_wanted() {
            self.request_checkpoint();
        }
        Ok(())
    }

    /// Applies a batch under the tree's write lock (the caller holds the writer lock): commits it
    /// whole, or abandons it whole and returns the error. Returns the commit LSN (`None` if it
    /// changed nothing) and what `body` returned.
    pub(super) fn apply_batch<R>(
        &self,
        mtr: &mut MtrBuf,
        body: &mut impl FnMut(&mut BatchWriter<'_>, &Keyspaces) -> Result<R>,
        on_commit: &mut impl FnMut(&mut Keyspaces, &R),
    ) -> Result<(Option<Lsn>, R)> {
        let mut guard = self.tree.write();
        let tree = &mut *guard;
        let (oldest_snapshot, newest_snapshot) = {
            let snapshots = self.snapshots.lock();
            (snapshots.keys().next().copied(), snapshots.keys().next_back().copied())
        };
        tree.pager.trim_history(oldest_snapshot);
        let history = newest_snapshot.map(|newest_open| SnapshotWindow { version: tree.version, newest_open });
        let mut writer =
            BatchWriter::new(&mut tree.pager, &self.log, mtr, history, self.options.replay_journal.clone())?;
        let outcome = body(&mut writer, &tree.keyspaces).and_then(|value| Ok((writer.commit()?, value)));
        let (commit, value) = match outcome {
            Ok(done) => {
                self.counters.add(&writer.counts);
                done
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
            on_commit(&mut tree.keyspaces, &value);
        }
        Ok((commit, value))
    }

    /// Makes sure about `estimate` bytes of redo fit, checkpointing if the log is short of room.
    pub(super) fn make_log_room(&self, estimate: u64) -> Result<()> {
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

/// The body of a user batch: its operations, each on its keyspace's tree, then the entry count
/// of each keyspace it changed. Refuses (before changing anything) a batch naming a keyspace
/// dropped since its handle was made.
pub(super) fn apply_ops(writer: &mut BatchWriter<'_>, keyspaces: &Keyspaces, batch: &WriteBatch) -> Result<bool> {
    let default = KeyspaceInfo::default_keyspace();
    let infos: Vec<&KeyspaceInfo> = batch.keyspaces.iter().map(|(_, info)| &**info).collect();
    if let Some(dropped) = infos.iter().find(|info| !keyspaces.is_live(info)) {
        return Err(Error::KeyspaceDropped { name: dropped.name.clone() });
    }
    // Entries added per keyspace: the batch's slots, then the default keyspace.
    let mut added = vec![0i64; infos.len() + 1];
    let mut removed = false;
    // Roots as the table has them now (a compaction may have moved one since a handle was made).
    let roots: Vec<PageId> = infos.iter().map(|info| keyspaces.root_of(info).unwrap_or(info.root)).collect();
    for op in &batch.ops {
        let (slot, tree) = match op {
            BatchOp::Insert(slot, ..) | BatchOp::Remove(slot, _) => match roots.get(*slot as usize) {
                Some(&root) => (*slot as usize, root),
                None => (infos.len(), default.root),
            },
        };
        match op {
            BatchOp::Insert(_, key, value) => {
                if writer.insert(tree, key, value)? {
                    added[slot] += 1;
                }
            }
            BatchOp::Remove(_, key) => {
                if writer.remove(tree, key)? {
                    added[slot] -= 1;
                    removed = true;
                }
            }
        }
    }
    for (slot, &delta) in added.iter().enumerate() {
        if delta != 0 {
            catalog::add_entries(writer, infos.get(slot).copied().unwrap_or(&default), delta)?;
        }
    }
    Ok(removed)
}
