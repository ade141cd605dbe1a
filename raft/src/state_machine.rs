//! The replicated map: [`StateMachine`], openraft's `RaftStateMachine`; its snapshots
//! ([`SnapshotBuilder`]); and [`StateMachineReader`] for the application's reads.
//!
//! The map lives in keyspace `raft.{group}.sm.{generation}`, its keys after a tag byte, beside
//! the state machine's own two records (the last applied log id and the membership) which every
//! apply batch rewrites with the entries' effects. Installing a snapshot fills the next
//! generation's keyspace, then switches the generation (and names the snapshot current) in one
//! durable batch of the metadata keyspace, then drops the old generation: a crash anywhere leaves
//! the old state or the new one, and the next open drops whichever keyspace is not current.
//!
//! This module owns the state machine keyspaces and the snapshot records of the metadata
//! keyspace; it must not touch the log or the vote.

use std::sync::Arc;

use mtrdb::{Db, Durability, OpenMode, Storage, StorageFile, WriteBatch};
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, StorageIOError,
    StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::log_store::{off_runtime, purge_now, write_off_runtime, PurgeGate};
use crate::names::{self, data_key, meta, sm, Names};
use crate::snapshot::{Meta, SnapshotFile, SnapshotReader, SnapshotWriter};
use crate::{Error, Request, Response, StorageError, TypeConfig};

/// The current snapshot, as the metadata keyspace records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CurrentSnapshot {
    file: u64,
    meta: Meta,
}

#[derive(Debug)]
struct SmState {
    generation: u64,
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    current: Option<CurrentSnapshot>,
}

struct Shared {
    db: Arc<Db>,
    names: Arc<Names>,
    snapshots: Arc<dyn Storage>,
    state: Mutex<SmState>,
    /// Snapshot builds and installs run one at a time: an install switches the generation a
    /// build reads, and names a current snapshot a build would replace.
    building: Mutex<()>,
    /// The next snapshot file number, behind a lock held while the number is made durable.
    next_file: Mutex<u64>,
    /// Purges of the log wait here for this state machine's snapshots (see [`PurgeGate`]).
    gate: Arc<PurgeGate>,
}

/// The replicated key-value map of one Raft group: openraft's `RaftStateMachine`.
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine").field("group", &self.shared.names.group).finish()
    }
}

/// Builds snapshots of a [`StateMachine`] (openraft runs it beside the applies).
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
}

/// Reads of the replicated map, for the application: cheap to clone, usable while openraft owns
/// the [`StateMachine`]. Reads see what this replica has applied; for a linearizable read, call
/// `Raft::ensure_linearizable` on the leader first.
#[derive(Clone)]
pub struct StateMachineReader {
    shared: Arc<Shared>,
}

fn sm_error(error: Error) -> StorageError {
    StorageIOError::write_state_machine(&error).into()
}

fn snapshot_error(error: Error) -> StorageError {
    StorageIOError::write_snapshot(None, &error).into()
}

fn io_error(action: &'static str, file: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { action, file, source }
}

impl StateMachine {
    pub(crate) fn open(db: Arc<Db>, snapshots: Arc<dyn Storage>, names: Arc<Names>) -> Result<StateMachine, Error> {
        let meta_keyspace = names::keyspace(&db, &names.meta)?;
        let generation =
            names::read_u64(&meta_keyspace, meta::SM_GENERATION, "the state machine generation")?.unwrap_or(0);
        // An install cut short left its half-filled keyspace; one that completed may have left
        // the generation before it.
        for keyspace in db.keyspaces()? {
            if names.is_sm(&keyspace) && keyspace != names.sm(generation) {
                db.drop_keyspace(&keyspace)?;
            }
        }
        let sm_keyspace = names::keyspace(&db, &names.sm(generation))?;
        let applied: Option<Option<LogId<u64>>> = names::read(&sm_keyspace, sm::APPLIED, "the last applied log id")?;
        let membership = names::read(&sm_keyspace, sm::MEMBERSHIP, "the last membership")?.unwrap_or_default();
        let mut current: Option<CurrentSnapshot> = names::read(&meta_keyspace, meta::SNAPSHOT, "the current snapshot")?;
        let next_file = names::read_u64(&meta_keyspace, meta::SNAPSHOT_NEXT, "the next snapshot file")?.unwrap_or(0);
        let clean_from =
            names::read_u64(&meta_keyspace, meta::SNAPSHOT_CLEAN_FROM, "the first snapshot file")?.unwrap_or(0);
        if let Some(file) = current.as_ref().map(|current| current.file) {
            let name = names.snapshot_file(file);
            if !snapshots.exists(&name).map_err(io_error("looking for the current snapshot", name.clone()))? {
                // A database restored from a backup of its own, without the snapshot directory:
                // no snapshot, then. openraft builds one at startup if the log was purged.
                let mut batch = WriteBatch::new();
                batch.remove_in(&meta_keyspace, meta::SNAPSHOT);
                db.write_with(batch, Durability::Immediate)?;
                current = None;
            }
        }
        let current_file = current.as_ref().map(|current| current.file);
        // Files numbered from `clean_from` on, but the current one, are unfinished builds and
        // receptions, or current snapshots since replaced whose removal a crash cut short.
        let mut removed = false;
        for file in clean_from..next_file {
            let name = names.snapshot_file(file);
            if Some(file) != current_file
                && snapshots.exists(&name).map_err(io_error("looking for a snapshot", name.clone()))?
            {
                snapshots.remove_file(&name).map_err(io_error("removing an unused snapshot", name))?;
                removed = true;
            }
        }
        if removed {
            snapshots.sync_dir().map_err(io_error("syncing the snapshot directory", String::new()))?;
        }
        let new_clean_from = current_file.map_or(next_file, |file| file.min(next_file));
        if new_clean_from != clean_from {
            let mut batch = WriteBatch::new();
            batch.insert_in(&meta_keyspace, meta::SNAPSHOT_CLEAN_FROM, new_clean_from.to_le_bytes());
            db.write_with(batch, Durability::Immediate)?;
        }
        drop((meta_keyspace, sm_keyspace));
        let applied = applied.flatten();
        let state = SmState { generation, applied, membership, current };
        Ok(StateMachine {
            shared: Arc::new(Shared {
                db,
                names,
                snapshots,
                state: Mutex::new(state),
                building: Mutex::new(()),
                next_file: Mutex::new(next_file),
                // What open finds is durable.
                gate: Arc::new(PurgeGate::new(applied)),
            }),
        })
    }

    pub(crate) fn purge_gate(&self) -> Arc<PurgeGate> {
        Arc::clone(&self.shared.gate)
    }

    /// A reader of the map, for the application.
    pub fn reader(&self) -> StateMachineReader {
        StateMachineReader { shared: Arc::clone(&self.shared) }
    }

    /// Applies `entries` in batches of at most 4 MiB of keys and values (less on a small redo
    /// log, see `names::batch_bytes`) plus one entry, each with its last applied
    /// log id and membership. Not synced: the entries are durable in the log, and a crash that
    /// loses an apply batch loses its applied log id with it, so the entries are applied again,
    /// once.
    async fn apply_entries(&mut self, entries: Vec<Entry<TypeConfig>>) -> Result<Vec<Response>, Error> {
        let shared = &self.shared;
        let (generation, mut membership) = {
            let state = shared.state.lock();
            (state.generation, state.membership.clone())
        };
        // Applies and installs are never concurrent (openraft calls both through `&mut self`):
        // the generation stays the same throughout.
        let keyspace = names::keyspace(&shared.db, &shared.names.sm(generation))?;
        let mut cut = names::BatchCut::new(&shared.db);
        let mut responses = Vec::with_capacity(entries.len());
        let mut batch = WriteBatch::new();
        let mut applied = None;
        for entry in entries {
            let request = match &entry.payload {
                EntryPayload::Normal(request) => match request.refusal() {
                    Some(reason) => Err(reason),
                    None => Ok(Some(request)),
                },
                _ => Ok(None),
            };
            let size = match request {
                Ok(Some(Request::Set { key, value })) => key.len() + value.len(),
                Ok(Some(Request::Delete { key })) => key.len(),
                _ => 0,
            };
            // The batch so far goes first if this entry would take it over the limit.
            if cut.before(size) {
                self.commit_apply(&keyspace, std::mem::take(&mut batch), applied, &membership).await?;
            }
            match request {
                Ok(Some(Request::Set { key, value })) => {
                    batch.insert_in(&keyspace, data_key(key), value);
                }
                Ok(Some(Request::Delete { key })) => {
                    batch.remove_in(&keyspace, data_key(key));
                }
                _ => {}
            }
            responses.push(match request {
                Err(reason) => Response::Refused { reason },
                Ok(_) => Response::Applied,
            });
            if let EntryPayload::Membership(new) = &entry.payload {
                membership = StoredMembership::new(Some(entry.log_id), new.clone());
            }
            applied = Some(entry.log_id);
        }
        if applied.is_some() {
            self.commit_apply(&keyspace, batch, applied, &membership).await?;
        }
        Ok(responses)
    }

    /// Writes an apply batch with the applied log id and membership it brings the state to.
    async fn commit_apply(
        &self,
        keyspace: &mtrdb::Keyspace<'_>,
        mut batch: WriteBatch,
        applied: Option<LogId<u64>>,
        membership: &StoredMembership<u64, BasicNode>,
    ) -> Result<(), Error> {
        let shared = &self.shared;
        batch.insert_in(keyspace, sm::APPLIED, names::encode(&applied));
        batch.insert_in(keyspace, sm::MEMBERSHIP, names::encode(membership));
        write_off_runtime(&shared.db, batch, Durability::Eventual).await?;
        let mut state = shared.state.lock();
        state.applied = applied;
        state.membership = membership.clone();
        Ok(())
    }
}

impl Shared {
    /// A new snapshot file: its number is made durable first, so that the next open finds the
    /// file if a crash leaves it unfinished.
    fn allocate_file(&self) -> Result<(u64, Arc<dyn StorageFile>), Error> {
        let mut next = self.next_file.lock();
        let number = *next;
        let meta_keyspace = names::keyspace(&self.db, &self.names.meta)?;
        let mut batch = WriteBatch::new();
        batch.insert_in(&meta_keyspace, meta::SNAPSHOT_NEXT, (number + 1).to_le_bytes());
        self.db.write_with(batch, Durability::Immediate)?;
        *next = number + 1;
        let name = self.names.snapshot_file(number);
        let file =
            self.snapshots.open_file(&name, OpenMode::CreateNew).map_err(io_error("creating a snapshot", name))?;
        Ok((number, file))
    }

    fn snapshot_file(&self, file: Arc<dyn StorageFile>, number: u64) -> Result<SnapshotFile, Error> {
        let name = self.names.snapshot_file(number);
        SnapshotFile::new(file, number, name.clone(), Arc::clone(&self.snapshots))
            .map_err(io_error("reading a snapshot's length", name))
    }

    /// The current snapshot, opened under the state lock: a build that replaces it removes the
    /// file it replaced only after taking that lock, so the file opened here is never one
    /// already removed (an open file stays readable after its removal).
    fn current_snapshot(&self) -> Result<Option<Snapshot<TypeConfig>>, Error> {
        let state = self.state.lock();
        let Some(current) = &state.current else { return Ok(None) };
        let name = self.names.snapshot_file(current.file);
        let file = self.snapshots.open_file(&name, OpenMode::Existing).map_err(io_error("opening a snapshot", name))?;
        let data = self.snapshot_file(file, current.file)?;
        Ok(Some(Snapshot { meta: current.meta.clone(), snapshot: Box::new(data) }))
    }

    /// The state machine's state is durable up to `index`: performs the purge that waited for it.
    fn durable_up_to(&self, index: u64) -> Result<(), Error> {
        if let Some(purge) = self.gate.durable_up_to(index) {
            purge_now(&self.db, &self.names, &self.gate, purge)?;
            self.gate.purge_done(purge);
        }
        Ok(())
    }

    /// Names `current` the current snapshot (one durable batch), and removes the file it replaces.
    fn make_current(&self, current: CurrentSnapshot) -> Result<(), Error> {
        let meta_keyspace = names::keyspace(&self.db, &self.names.meta)?;
        let mut batch = WriteBatch::new();
        batch.insert_in(&meta_keyspace, meta::SNAPSHOT, names::encode(&current));
        self.db.write_with(batch, Durability::Immediate)?;
        let (file, index) = (current.file, current.meta.last_log_id.map_or(0, |id| id.index));
        let replaced = self.state.lock().current.replace(current);
        self.remove_replaced(replaced, file);
        self.durable_up_to(index)
    }

    fn remove_replaced(&self, replaced: Option<CurrentSnapshot>, current_file: u64) {
        if let Some(replaced) = replaced.filter(|replaced| replaced.file != current_file) {
            // A file that fails to go is only space: the next open removes it (its number is at
            // or above the first number that open checks).
            let _ = self.snapshots.remove_file(&self.names.snapshot_file(replaced.file));
        }
    }

    /// Writes a snapshot of the map as of one batch boundary, and names it current.
    fn build(&self) -> Result<Snapshot<TypeConfig>, Error> {
        let _building = self.building.lock();
        let generation = self.state.lock().generation;
        let keyspace = names::keyspace(&self.db, &self.names.sm(generation))?;
        let mut iter = keyspace.iter();
        let (mut applied, mut membership, mut first) = (None, StoredMembership::default(), None);
        for item in iter.by_ref() {
            let (key, value) = item?;
            if key.first() == Some(&sm::DATA_TAG) {
                first = Some((key, value));
                break;
            } else if &key[..] == sm::APPLIED {
                applied = names::decode::<Option<LogId<u64>>>(&value, "the last applied log id")?;
            } else if &key[..] == sm::MEMBERSHIP {
                membership = names::decode(&value, "the last membership")?;
            }
        }
        let unchanged = self.state.lock().current.as_ref().is_some_and(|current| current.meta.last_log_id == applied);
        if unchanged && applied.is_some() {
            if let Some(current) = self.current_snapshot()? {
                return Ok(current);
            }
        }
        let (number, file) = self.allocate_file()?;
        let name = self.names.snapshot_file(number);
        let snapshot_id = match applied {
            Some(log_id) => format!("{}-{}-{number}", log_id.leader_id.term, log_id.index),
            None => format!("0-0-{number}"),
        };
        let meta = Meta { last_log_id: applied, last_membership: membership, snapshot_id };
        let write = |iter: &mut mtrdb::Iter<'_>| -> Result<(), Error> {
            let io = |source| Error::Io { action: "writing a snapshot", file: name.clone(), source };
            let mut writer = SnapshotWriter::start(Arc::clone(&file), &meta).map_err(io)?;
            if let Some((key, value)) = &first {
                writer.record(&key[1..], value).map_err(io)?;
            }
            for item in iter {
                let (key, value) = item?;
                writer.record(&key[1..], &value).map_err(io)?;
            }
            writer.finish().map_err(io)?;
            file.sync_data().map_err(io)?;
            self.snapshots.sync_dir().map_err(io)
        };
        let written = write(&mut iter);
        drop(iter);
        if let Err(error) = written {
            let _ = self.snapshots.remove_file(&name);
            return Err(error);
        }
        // The state this file holds must be durable in the database before openraft, told of
        // the snapshot, purges the log behind it: `make_current`'s synced batch comes after
        // every apply batch in the redo log, so its sync makes them durable too.
        self.make_current(CurrentSnapshot { file: number, meta: meta.clone() })?;
        let data = self.snapshot_file(file, number)?;
        Ok(Snapshot { meta, snapshot: Box::new(data) })
    }

    /// Installs the snapshot in `data`, which `meta` describes.
    fn install(&self, meta: &Meta, data: SnapshotFile) -> Result<(), Error> {
        // A reception ends when this install does, whatever its outcome; a failure is marked
        // first, so that appends held back behind it fail rather than go on past it.
        let mut reception = ReceptionEnd(None);
        let installed = self.install_received(meta, data, &mut reception);
        if installed.is_err() {
            self.gate.install_failed();
        }
        drop(reception);
        installed
    }

    fn install_received(&self, meta: &Meta, mut data: SnapshotFile, reception: &mut ReceptionEnd) -> Result<(), Error> {
        let _building = self.building.lock();
        let current_file = self.state.lock().current.as_ref().map(|current| current.file);
        let (number, file) = if data.is(&self.snapshots, &self.names.snapshot_file(data.number)) {
            // Received into this node's storage: installed in place, so this install decides
            // what becomes of the file, not its handle's drop.
            data.unclaimed = false;
            reception.0 = data.reception.take();
            (data.number, Arc::clone(data.file()))
        } else {
            // Another storage's (the suite hands one node's snapshot to another): a copy.
            let (number, file) = self.allocate_file()?;
            let name = self.names.snapshot_file(number);
            if let Err(error) = copy(&data, &file, &name) {
                let _ = self.snapshots.remove_file(&name);
                return Err(error);
            }
            (number, file)
        };
        drop(data);
        let name = self.names.snapshot_file(number);
        let old_generation = self.state.lock().generation;
        let generation = old_generation + 1;
        if let Err(error) = self.fill(meta, &file, &name, generation) {
            // Nothing was switched: the old state stands. What was filled goes now (or at the
            // next open), and the file too unless it is the current snapshot.
            let _ = self.db.drop_keyspace(&self.names.sm(generation));
            if Some(number) != current_file {
                let _ = self.snapshots.remove_file(&name);
            }
            return Err(error);
        }
        // The switch: one durable batch, which makes the fill batches before it durable too. If
        // it fails, whether it reached the disk is unknown: nothing is cleaned up here, and the
        // next open keeps whichever generation and snapshot the database names.
        let meta_keyspace = names::keyspace(&self.db, &self.names.meta)?;
        let mut switch = WriteBatch::new();
        switch.insert_in(&meta_keyspace, meta::SM_GENERATION, generation.to_le_bytes());
        let current = CurrentSnapshot { file: number, meta: meta.clone() };
        switch.insert_in(&meta_keyspace, meta::SNAPSHOT, names::encode(&current));
        self.db.write_with(switch, Durability::Immediate)?;
        let replaced = {
            let mut state = self.state.lock();
            state.generation = generation;
            state.applied = meta.last_log_id;
            state.membership = meta.last_membership.clone();
            state.current.replace(current)
        };
        self.remove_replaced(replaced, number);
        self.db.drop_keyspace(&self.names.sm(old_generation))?;
        self.durable_up_to(meta.last_log_id.map_or(0, |id| id.index))
    }

    /// Fills generation `generation`'s keyspace from snapshot file `file`, and syncs the file.
    fn fill(&self, meta: &Meta, file: &Arc<dyn StorageFile>, name: &str, generation: u64) -> Result<(), Error> {
        let mut reader = SnapshotReader::open(Arc::clone(file), name.to_string())?;
        if reader.meta.last_log_id != meta.last_log_id || reader.meta.last_membership != meta.last_membership {
            return Err(Error::Corrupt {
                detail: format!(
                    "snapshot {name} holds the state at {:?}, but came as the state at {:?}",
                    reader.meta.last_log_id, meta.last_log_id
                ),
            });
        }
        let target = self.names.sm(generation);
        if self.db.existing_keyspace(&target)?.is_some() {
            self.db.drop_keyspace(&target)?;
        }
        let keyspace = names::keyspace(&self.db, &target)?;
        let mut cut = names::BatchCut::new(&self.db);
        let mut batch = WriteBatch::new();
        while let Some((key, value)) = reader.next_record()? {
            if cut.before(key.len() + value.len()) {
                self.db.write_with(std::mem::take(&mut batch), Durability::Eventual)?;
            }
            batch.insert_in(&keyspace, data_key(&key), &value);
        }
        batch.insert_in(&keyspace, sm::APPLIED, names::encode(&meta.last_log_id));
        batch.insert_in(&keyspace, sm::MEMBERSHIP, names::encode(&meta.last_membership));
        self.db.write_with(batch, Durability::Eventual)?;
        file.sync_data().map_err(io_error("syncing a received snapshot", name.to_string()))?;
        self.snapshots.sync_dir().map_err(io_error("syncing the snapshot directory", name.to_string()))
    }
}

/// Ends a snapshot reception (lets purges run at once again) when dropped.
struct ReceptionEnd(Option<Arc<PurgeGate>>);

impl Drop for ReceptionEnd {
    fn drop(&mut self) {
        if let Some(gate) = self.0.take() {
            gate.reception_ended();
        }
    }
}

/// Copies snapshot `data` into `file` (named `name`), 1 MiB at a time.
fn copy(data: &SnapshotFile, file: &Arc<dyn StorageFile>, name: &str) -> Result<(), Error> {
    let mut buf = vec![0; 1 << 20];
    let mut offset = 0;
    while offset < data.len() {
        let n = (data.len() - offset).min(buf.len() as u64) as usize;
        data.file()
            .read_exact_at(&mut buf[..n], offset)
            .map_err(io_error("reading a received snapshot", name.to_string()))?;
        file.write_all_at(&buf[..n], offset).map_err(io_error("copying a received snapshot", name.to_string()))?;
        offset += n as u64;
    }
    Ok(())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError> {
        let state = self.shared.state.lock();
        Ok((state.applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        self.apply_entries(entries).await.map_err(sm_error)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { shared: Arc::clone(&self.shared) }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        let shared = Arc::clone(&self.shared);
        let data = off_runtime(move || {
            let (number, file) = shared.allocate_file()?;
            let mut data = shared.snapshot_file(file, number)?;
            data.unclaimed = true;
            shared.gate.reception_began();
            data.reception = Some(Arc::clone(&shared.gate));
            Ok(data)
        })
        .await
        .map_err(snapshot_error)?;
        Ok(Box::new(data))
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<SnapshotFile>) -> Result<(), StorageError> {
        let shared = Arc::clone(&self.shared);
        let meta = meta.clone();
        off_runtime(move || shared.install(&meta, *snapshot)).await.map_err(snapshot_error)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.shared.current_snapshot().map_err(|e| StorageIOError::read_snapshot(None, &e).into())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let shared = Arc::clone(&self.shared);
        off_runtime(move || shared.build()).await.map_err(snapshot_error)
    }
}

impl StateMachineReader {
    /// Runs `read` on the current generation's keyspace, again if an install switched it away
    /// meanwhile.
    fn with_keyspace<T>(&self, mut read: impl FnMut(&mtrdb::Keyspace<'_>) -> mtrdb::Result<T>) -> Result<T, Error> {
        let shared = &self.shared;
        loop {
            let generation = shared.state.lock().generation;
            let Some(keyspace) = shared.db.existing_keyspace(&shared.names.sm(generation))? else {
                if shared.state.lock().generation == generation {
                    return Err(Error::Corrupt { detail: format!("state machine keyspace {generation} is missing") });
                }
                continue;
            };
            match read(&keyspace) {
                Err(mtrdb::Error::KeyspaceDropped { .. }) => continue,
                other => return Ok(other?),
            }
        }
    }

    /// The value of `key`, as this replica has applied it.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, Error> {
        let key = data_key(key.as_ref());
        self.with_keyspace(|keyspace| keyspace.get(&key))
    }

    /// Calls `visit` with every key and value of the map, in key order, as of one batch
    /// boundary; returns how many.
    pub fn for_each(&self, mut visit: impl FnMut(&[u8], &[u8])) -> Result<u64, Error> {
        let mut visited = 0;
        // An iterator opened on a keyspace that an install then drops goes on reading its
        // snapshot; only opening one on a dropped keyspace fails, before any visit.
        self.with_keyspace(|keyspace| {
            for item in keyspace.prefix([sm::DATA_TAG]) {
                let (key, value) = item?;
                visit(&key[1..], &value);
                visited += 1;
            }
            Ok(())
        })?;
        Ok(visited)
    }

    /// The current snapshot (what `get_current_snapshot` gives openraft): to copy it elsewhere,
    /// say. Its file stays readable while it is open, even once a newer snapshot replaces it.
    pub fn current_snapshot(&self) -> Result<Option<Snapshot<TypeConfig>>, Error> {
        self.shared.current_snapshot()
    }

    /// The last log id this replica applied.
    pub fn applied(&self) -> Option<LogId<u64>> {
        self.shared.state.lock().applied
    }
}
