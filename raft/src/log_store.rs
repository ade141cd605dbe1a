//! The Raft log and vote: [`LogStore`], openraft's `RaftLogStorage` on two keyspaces, and the
//! [`PurgeGate`] that keeps a purge behind what the state machine holds durably.
//!
//! This module owns the log keyspace (`raft.{group}.log`: key the entry's index, 8 bytes
//! big-endian; value the entry, postcard) and the vote, committed and purged records of the
//! metadata keyspace. It must not touch the state machine's keyspaces or snapshot records.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use mtrdb::{Db, Durability, WriteBatch};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageIOError, Vote};
use parking_lot::Mutex;

use crate::names::{self, index_key, meta, Names};
use crate::{Error, StorageError, TypeConfig};

/// The Raft log and vote of one group, in an mtrdb database. Cheap to clone; clones share the
/// database (openraft reads the log through one while it appends through another).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    names: Arc<Names>,
    gate: Arc<PurgeGate>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("group", &self.names.group).finish()
    }
}

/// Keeps the log's purges behind the state machine's durable state while a snapshot is received.
///
/// openraft purges the log up to a received snapshot's last log id as soon as it decides to
/// install that snapshot, while the state machine is still filling it in; a crash then would
/// leave the log purged past a state machine that never got the snapshot, and the entries
/// between lost. So while a snapshot is being received or installed, a purge past what the state
/// machine holds durably (its applied log id at open, the last snapshot it built or installed
/// since) waits here, and the state machine performs it once the snapshot is durable. Otherwise
/// (openraft purging behind a snapshot this node built, which is durable) a purge runs at once.
/// A purge lost in a crash is harmless: the entries are still there.
///
/// Appends wait too while such a purge waits: openraft takes the log to end at the snapshot once
/// it decided to install it, and a new leader may send the entries after it before the install
/// is durable; written at once, a crash would leave them past a hole. (`save_committed` is
/// skipped meanwhile, for the same reason.) If the install fails, they fail.
#[derive(Debug)]
pub(crate) struct PurgeGate {
    state: Mutex<GateState>,
    /// Signalled when a waiting purge is released or an install fails.
    changed: tokio::sync::Notify,
    /// Held while a purge runs: purges never overlap, nor go back.
    running: Mutex<Option<LogId<u64>>>,
}

#[derive(Debug)]
struct GateState {
    /// The index up to which the state machine's state is durable.
    durable: u64,
    /// Snapshots being received or installed.
    receptions: usize,
    /// A purge waiting for the state machine.
    waiting: Option<LogId<u64>>,
    /// An install failed: the log must not move on past it (the node stops).
    failed: bool,
}

impl PurgeGate {
    pub(crate) fn new(durable: Option<LogId<u64>>) -> PurgeGate {
        let durable = durable.map_or(0, |id| id.index);
        PurgeGate {
            state: Mutex::new(GateState { durable, receptions: 0, waiting: None, failed: false }),
            changed: tokio::sync::Notify::new(),
            running: Mutex::new(None),
        }
    }

    /// The state machine holds its state up to `index` durably: the purge that waited for it,
    /// if any, is now due (it stays waiting, holding appends back, until [`Self::purge_done`]).
    pub(crate) fn durable_up_to(&self, index: u64) -> Option<LogId<u64>> {
        let mut state = self.state.lock();
        state.durable = state.durable.max(index);
        let durable = state.durable;
        state.waiting.filter(|waiting| waiting.index <= durable)
    }

    /// The purge up to `done` is durable: appends may go on.
    pub(crate) fn purge_done(&self, done: LogId<u64>) {
        let mut state = self.state.lock();
        state.waiting = state.waiting.filter(|waiting| waiting.index > done.index);
        drop(state);
        self.changed.notify_waiters();
    }

    /// An install failed.
    pub(crate) fn install_failed(&self) {
        self.state.lock().failed = true;
        self.changed.notify_waiters();
    }

    /// Whether an install is pending with a purge waiting for it; an error once one failed.
    fn install_pending(&self) -> Result<bool, Error> {
        let state = self.state.lock();
        if state.failed {
            return Err(Error::Corrupt { detail: "a snapshot install failed; restart the node".into() });
        }
        Ok(state.receptions > 0 && state.waiting.is_some())
    }

    /// Waits while an install is pending with a purge waiting for it.
    async fn wait_for_install(&self) -> Result<(), Error> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so that a release between the two is not missed.
            changed.as_mut().enable();
            if !self.install_pending()? {
                return Ok(());
            }
            changed.await;
        }
    }

    /// A snapshot reception began.
    pub(crate) fn reception_began(&self) {
        self.state.lock().receptions += 1;
    }

    /// A snapshot reception ended: installed, or dropped.
    pub(crate) fn reception_ended(&self) {
        let mut state = self.state.lock();
        state.receptions = state.receptions.saturating_sub(1);
        drop(state);
        self.changed.notify_waiters();
    }

    /// Whether a purge up to `upto` may run now; if not, it waits.
    fn admit(&self, upto: LogId<u64>) -> bool {
        let mut state = self.state.lock();
        if state.receptions == 0 || upto.index <= state.durable {
            return true;
        }
        if state.waiting.is_none_or(|waiting| waiting.index < upto.index) {
            state.waiting = Some(upto);
        }
        false
    }
}

/// Runs a blocking write (one that may wait for a sync) off the async runtime's worker threads.
pub(crate) async fn write_off_runtime(db: &Arc<Db>, batch: WriteBatch, durability: Durability) -> Result<(), Error> {
    let db = Arc::clone(db);
    off_runtime(move || Ok(db.write_with(batch, durability)?)).await
}

/// Runs `work` on a thread for blocking work (it writes, and may wait for a sync).
pub(crate) async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work).await.map_err(|join| Error::Panicked { detail: join.to_string() })?
}

/// Removes the log's entries in `range` of indexes, in batches of at most
/// [`names::removals_per_batch`]; `first` (if any) is written with the first batch. The batches
/// go from `range`'s start upwards, or downwards with `descending`, so that a crash between them
/// leaves a contiguous log. Not synced; the caller syncs.
fn remove_entries(
    db: &Db,
    names: &Names,
    range: (Bound<u64>, Bound<u64>),
    descending: bool,
    mut first: Option<WriteBatch>,
) -> Result<(), Error> {
    let log = names::keyspace(db, &names.log)?;
    let per_batch = names::removals_per_batch(db);
    let bounds = (range.0.map(index_key), range.1.map(index_key));
    loop {
        let mut batch = first.take().unwrap_or_default();
        let mut removed = 0;
        let mut iter = log.range(bounds);
        while removed < per_batch {
            let item = if descending { iter.next_back() } else { iter.next() };
            let Some(item) = item else { break };
            batch.remove_in(&log, item?.0);
            removed += 1;
        }
        drop(iter);
        let done = removed < per_batch;
        if !batch.is_empty() {
            db.write_with(batch, Durability::Eventual)?;
        }
        if done {
            return Ok(());
        }
    }
}

/// Purges the log up to `upto`: the purged log id goes with the first batch of removals.
pub(crate) fn purge_now(db: &Db, names: &Names, gate: &PurgeGate, upto: LogId<u64>) -> Result<(), Error> {
    let mut running = gate.running.lock();
    if running.is_some_and(|done| done.index >= upto.index) {
        return Ok(());
    }
    let meta_keyspace = names::keyspace(db, &names.meta)?;
    let mut first = WriteBatch::new();
    first.insert_in(&meta_keyspace, meta::PURGED, names::encode(&upto));
    remove_entries(db, names, (Bound::Unbounded, Bound::Included(upto.index)), false, Some(first))?;
    db.flush()?;
    *running = Some(upto);
    Ok(())
}

impl LogStore {
    pub(crate) fn open(db: Arc<Db>, names: Arc<Names>, gate: Arc<PurgeGate>) -> Result<LogStore, Error> {
        names::keyspace(&db, &names.log)?;
        names::keyspace(&db, &names.meta)?;
        Ok(LogStore { db, names, gate })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8], what: &str) -> Result<Option<T>, Error> {
        names::read(&names::keyspace(&self.db, &self.names.meta)?, key, what)
    }

    /// The entries in `range` of indexes.
    fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry<TypeConfig>>, Error> {
        let start = match range.0 {
            Bound::Included(index) => Some(index),
            Bound::Excluded(index) => index.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let Some(start) = start else { return Ok(Vec::new()) };
        let empty = match range.1 {
            Bound::Included(end) => end < start,
            Bound::Excluded(end) => end <= start,
            Bound::Unbounded => false,
        };
        if empty {
            return Ok(Vec::new());
        }
        let log = names::keyspace(&self.db, &self.names.log)?;
        let mut entries = Vec::new();
        for item in log.range((Bound::Included(index_key(start)), range.1.map(index_key))) {
            let (_, value) = item?;
            entries.push(names::decode_entry(&value)?);
        }
        Ok(entries)
    }
}

fn read_error(error: Error) -> StorageError {
    StorageIOError::read_logs(&error).into()
}

fn write_error(error: Error) -> StorageError {
    StorageIOError::write_logs(&error).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        self.entries((range.start_bound().cloned(), range.end_bound().cloned())).map_err(read_error)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let state = || -> Result<LogState<TypeConfig>, Error> {
            let last_purged_log_id: Option<LogId<u64>> = self.read_meta(meta::PURGED, "the last purged log id")?;
            let log = names::keyspace(&self.db, &self.names.log)?;
            // A crash between the batches of a large purge can leave entries at or below the
            // purged log id (removed by the next purge): the log ends at the later of the two.
            let last_log_id = match log.last()? {
                Some((_, value)) => Some(names::decode_entry(&value)?.log_id).max(last_purged_log_id),
                None => last_purged_log_id,
            };
            Ok(LogState { last_purged_log_id, last_log_id })
        };
        state().map_err(read_error)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let meta = names::keyspace(&self.db, &self.names.meta).map_err(|e| StorageIOError::write_vote(&e))?;
        let mut batch = WriteBatch::new();
        batch.insert_in(&meta, meta::VOTE, names::encode(vote));
        write_off_runtime(&self.db, batch, Durability::Immediate).await.map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        Ok(self.read_meta(meta::VOTE, "the vote").map_err(|e| StorageIOError::read_vote(&e))?)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), StorageError> {
        // Not synced: a committed log id lost in a crash is learnt again from the leader; the
        // next synced write (an append, a vote) makes it durable with itself. Not written while
        // an install is pending (see `PurgeGate`): it may name entries this log does not hold.
        if self.gate.install_pending().map_err(write_error)? {
            return Ok(());
        }
        let meta = names::keyspace(&self.db, &self.names.meta).map_err(write_error)?;
        let mut batch = WriteBatch::new();
        batch.insert_in(&meta, meta::COMMITTED, names::encode(&committed));
        write_off_runtime(&self.db, batch, Durability::Eventual).await.map_err(write_error)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError> {
        let committed: Option<Option<LogId<u64>>> =
            self.read_meta(meta::COMMITTED, "the committed log id").map_err(read_error)?;
        Ok(committed.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // After an install in progress, if it holds a purge back (see `PurgeGate`).
        if let Err(error) = self.gate.wait_for_install().await {
            callback.log_io_completed(Err(std::io::Error::other(error.to_string())));
            return Err(write_error(error));
        }
        let log = names::keyspace(&self.db, &self.names.log).map_err(write_error)?;
        let mut cut = names::BatchCut::new(&self.db);
        let mut batches = vec![WriteBatch::new()];
        for entry in entries {
            let value = names::encode_entry(&entry);
            if cut.before(value.len()) {
                batches.push(WriteBatch::new());
            }
            if let Some(batch) = batches.last_mut() {
                batch.insert_in(&log, index_key(entry.log_id.index), value);
            }
        }
        drop(log);
        // The entries in batches of bounded size, the last one synced: the callback says
        // "flushed" only once they are all durable. A crash before keeps a prefix of them.
        let db = Arc::clone(&self.db);
        let written = off_runtime(move || {
            let last = batches.len() - 1;
            for (position, batch) in batches.into_iter().enumerate() {
                let durability = if position == last { Durability::Immediate } else { Durability::Eventual };
                db.write_with(batch, durability)?;
            }
            Ok(())
        })
        .await;
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                callback.log_io_completed(Err(std::io::Error::other(error.to_string())));
                Err(write_error(error))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        // From the end backwards, so that a crash between batches leaves a contiguous log.
        let (db, names) = (Arc::clone(&self.db), Arc::clone(&self.names));
        off_runtime(move || {
            remove_entries(&db, &names, (Bound::Included(log_id.index), Bound::Unbounded), true, None)?;
            Ok(db.flush()?)
        })
        .await
        .map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        if !self.gate.admit(log_id) {
            // The state machine performs it once its snapshot is durable (see `PurgeGate`).
            return Ok(());
        }
        let (db, names, gate) = (Arc::clone(&self.db), Arc::clone(&self.names), Arc::clone(&self.gate));
        off_runtime(move || purge_now(&db, &names, &gate, log_id)).await.map_err(write_error)
    }
}
