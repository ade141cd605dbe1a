//! A node's storage power-cut at every I/O boundary of `append`, `truncate`, `purge`, `apply`,
//! snapshot builds and a snapshot install (the fault-injecting storage, which holds the
//! database and the snapshot files), then reopened and checked against a model:
//! - the log is exactly the log after the acknowledged operations, or after those and the one
//!   cut short (each is one atomic batch), and an acknowledged append is never lost;
//! - an acknowledged vote is kept;
//! - the applied log id is never ahead of the log and the snapshot, never behind the purged
//!   log id, and the map equals the model of the entries applied up to it;
//! - the current snapshot, installed elsewhere, gives the map of its own log id;
//! - the database passes `check()`.

use std::collections::BTreeMap;
use std::sync::Arc;

use mtrdb::fault::FaultStorage;
use mtrdb::{Db, Options};
use mtrdb_raft::{LogStore, Request, StateMachine, Stores, TypeConfig};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder, Vote};
use tokio::io::AsyncWriteExt;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

/// The canonical history: entry `index` of term 1 below 18, of term 2 from 18 on.
fn entry(index: u64) -> Entry<TypeConfig> {
    let term = if index < 18 { 1 } else { 2 };
    entry_of_term(term, index)
}

fn entry_of_term(term: u64, index: u64) -> Entry<TypeConfig> {
    let payload = if index == 1 {
        EntryPayload::Membership(Membership::new(vec![std::collections::BTreeSet::from([1, 2, 3])], ()))
    } else if index.is_multiple_of(7) {
        EntryPayload::Normal(Request::Delete { key: format!("k{:02}", index % 12).into_bytes() })
    } else {
        let value = format!("v{index}-t{term}").repeat(1 + (index as usize % 5) * 40).into_bytes();
        EntryPayload::Normal(Request::Set { key: format!("k{:02}", index % 12).into_bytes(), value })
    };
    Entry { log_id: log_id(term, index), payload }
}

fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<Entry<TypeConfig>> {
    range.map(entry).collect()
}

/// The map after applying the canonical entries up to `index`.
fn model(index: u64) -> Map {
    let mut map = Map::new();
    for entry in entries(1..=index) {
        match entry.payload {
            EntryPayload::Normal(Request::Set { key, value }) => {
                map.insert(key, value);
            }
            EntryPayload::Normal(Request::Delete { key }) => {
                map.remove(&key);
            }
            _ => {}
        }
    }
    map
}

/// What the log holds: index to log id.
type Log = BTreeMap<u64, LogId<u64>>;

#[derive(Clone, Debug, Default)]
struct LogModel {
    entries: Log,
    purged: Option<LogId<u64>>,
    /// A purge made while a snapshot was received: it waits for the install.
    waiting: Option<LogId<u64>>,
}

#[derive(Clone, Debug)]
enum Op {
    Vote(Vote<u64>),
    Append(Vec<Entry<TypeConfig>>),
    Truncate(LogId<u64>),
    Purge(LogId<u64>),
    /// A purge while a snapshot is being received, as openraft makes one before installing it.
    PurgeWhileReceiving(LogId<u64>),
    Apply(std::ops::RangeInclusive<u64>),
    Build,
    /// Begins receiving the other node's snapshot and writes it.
    Receive,
    /// Installs what was received, while an append of the entries after the snapshot (as a new
    /// leader may send them) waits for it.
    InstallWithAppend(Vec<Entry<TypeConfig>>),
}

impl LogModel {
    /// After an install: the purge that waited for it is done.
    fn installed(&self) -> LogModel {
        let mut next = self.clone();
        if let Some(id) = next.waiting.take() {
            next.purge(id);
        }
        next
    }

    /// The states an op cut short may leave: none of it, all of it, or (an install with an
    /// append) the install and its purge without the append. Never the append without the install.
    fn cut_short(&self, op: &Op) -> Vec<LogModel> {
        let mut states = vec![self.clone(), self.after(op)];
        if let Op::InstallWithAppend(_) = op {
            states.push(self.installed());
        }
        states
    }

    fn purge(&mut self, id: LogId<u64>) {
        self.entries = self.entries.split_off(&(id.index + 1));
        self.purged = Some(id);
    }

    fn after(&self, op: &Op) -> LogModel {
        let mut next = self.clone();
        match op {
            Op::Append(entries) => next.entries.extend(entries.iter().map(|e| (e.log_id.index, e.log_id))),
            Op::Truncate(id) => {
                next.entries.split_off(&id.index);
            }
            Op::Purge(id) => next.purge(*id),
            Op::PurgeWhileReceiving(id) => next.waiting = Some(*id),
            Op::InstallWithAppend(entries) => {
                next = next.installed();
                next.entries.extend(entries.iter().map(|e| (e.log_id.index, e.log_id)));
            }
            _ => {}
        }
        next
    }
}

fn script() -> Vec<Op> {
    vec![
        Op::Vote(Vote::new(1, 1)),
        Op::Append(entries(1..=5)),
        Op::Append(entries(6..=12)),
        Op::Append((13..=20).map(|i| if i < 18 { entry(i) } else { entry_of_term(1, i) }).collect()),
        Op::Apply(1..=10),
        Op::Vote(Vote::new(2, 1)),
        Op::Truncate(log_id(1, 18)),
        Op::Append(entries(18..=25)),
        Op::Build,
        Op::Purge(log_id(1, 8)),
        Op::Apply(11..=20),
        Op::Receive,
        Op::PurgeWhileReceiving(log_id(2, 30)),
        Op::InstallWithAppend(entries(31..=35)),
        Op::Apply(31..=35),
        Op::Build,
    ]
}

/// A snapshot from another node that applied the canonical entries 1..=30.
struct Received {
    meta: openraft::SnapshotMeta<u64, openraft::BasicNode>,
    bytes: Vec<u8>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn open(storage: &FaultStorage) -> Result<Stores, mtrdb_raft::Error> {
    let options = Options::default().log_capacity(256 << 10).background_checkpoints(false);
    let db = Db::open_storage(Arc::new(storage.clone()), "sim".into(), options)?;
    Stores::open_in(Arc::new(db), Arc::new(storage.clone()), "g")
}

async fn received_snapshot() -> Received {
    let storage = FaultStorage::new();
    let stores = open(&storage).expect("open");
    let (mut log, mut sm) = (stores.log, stores.state_machine);
    log.blocking_append(entries(1..=30)).await.expect("append");
    sm.apply(entries(1..=30)).await.expect("apply");
    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.expect("build");
    let mut bytes = Vec::new();
    let mut data = snapshot.snapshot;
    tokio::io::AsyncReadExt::read_to_end(&mut *data, &mut bytes).await.expect("read");
    Received { meta: snapshot.meta, bytes }
}

/// Runs `op`; `Ok` once acknowledged. `receiving` holds a snapshot between `Receive` and `Install`.
async fn run(
    op: &Op,
    log: &mut LogStore,
    sm: &mut StateMachine,
    received: &Received,
    receiving: &mut Option<Box<mtrdb_raft::SnapshotFile>>,
) -> Result<(), String> {
    let result = match op {
        Op::Vote(vote) => log.save_vote(vote).await,
        Op::Append(entries) => log.blocking_append(entries.clone()).await,
        Op::Truncate(id) => log.truncate(*id).await,
        Op::Purge(id) | Op::PurgeWhileReceiving(id) => log.purge(*id).await,
        Op::Apply(range) => sm.apply(entries(range.clone())).await.map(|_| ()),
        Op::Build => sm.get_snapshot_builder().await.build_snapshot().await.map(|_| ()),
        Op::Receive => {
            async {
                let mut data = sm.begin_receiving_snapshot().await?;
                data.write_all(&received.bytes).await.map_err(|e| openraft::StorageIOError::write(&e))?;
                *receiving = Some(data);
                Ok(())
            }
            .await
        }
        Op::InstallWithAppend(entries) => {
            let mut appender = log.clone();
            let entries = entries.clone();
            let append = tokio::spawn(async move { appender.blocking_append(entries).await });
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            assert!(!append.is_finished(), "an append went ahead of the install a purge waits for");
            let data = receiving.take().expect("InstallWithAppend follows Receive");
            let installed = sm.install_snapshot(&received.meta, data).await;
            let appended = append.await.expect("the append task");
            installed.and(appended)
        }
    };
    result.map_err(|error| error.to_string())
}

/// The workload, until the first failure; returns the acknowledged ops and the one in doubt.
async fn workload(storage: &FaultStorage, received: &Received) -> (Vec<Op>, Option<Op>) {
    let Ok(stores) = open(storage) else { return (Vec::new(), None) };
    let (mut log, mut sm) = (stores.log, stores.state_machine);
    drop(stores.db);
    let mut acked = Vec::new();
    let mut receiving = None;
    for op in script() {
        match run(&op, &mut log, &mut sm, received, &mut receiving).await {
            Ok(()) => acked.push(op),
            Err(_) => return (acked, Some(op)),
        }
    }
    (acked, None)
}

/// Map contents of a state machine.
fn contents(sm: &StateMachine) -> Map {
    let mut map = Map::new();
    sm.reader().for_each(|k, v| drop(map.insert(k.to_vec(), v.to_vec()))).expect("read the map");
    map
}

async fn check(storage: &FaultStorage, acked: &[Op], in_doubt: Option<&Op>, received: &Received, label: &str) {
    let stores = open(storage).unwrap_or_else(|e| panic!("{label}: reopen failed: {e}"));
    let (mut log, mut sm, db) = (stores.log, stores.state_machine, stores.db);
    db.check().unwrap_or_else(|e| panic!("{label}: check failed: {e}"));

    // The log: the acknowledged state, or that and the op in doubt, whole.
    let before = acked.iter().fold(LogModel::default(), |model, op| model.after(op));
    let acceptable = match in_doubt {
        Some(op) => before.cut_short(op),
        None => vec![before.clone()],
    };
    let state = log.get_log_state().await.expect("log state");
    let got: Log =
        log.try_get_log_entries(..).await.expect("entries").into_iter().map(|e| (e.log_id.index, e.log_id)).collect();
    let matches = |model: &LogModel| model.entries == got && model.purged == state.last_purged_log_id;
    assert!(
        acceptable.iter().any(matches),
        "{label}: log {got:?} purged {:?}; acknowledged {before:?}, in doubt {in_doubt:?}",
        state.last_purged_log_id
    );
    for (index, id) in &got {
        let canonical = if *index >= 18 && *index <= 20 && id.leader_id.term == 1 {
            entry_of_term(1, *index)
        } else {
            entry(*index)
        };
        let stored = log.try_get_log_entries(*index..=*index).await.expect("entry");
        assert_eq!(stored, vec![canonical], "{label}: entry {index} is not the one appended");
    }

    // The vote.
    let acked_vote = acked.iter().rev().find_map(|op| if let Op::Vote(v) = op { Some(*v) } else { None });
    let vote = log.read_vote().await.expect("vote");
    let doubt_vote = in_doubt.and_then(|op| if let Op::Vote(v) = op { Some(*v) } else { None });
    assert!(
        vote == acked_vote || (doubt_vote.is_some() && vote == doubt_vote),
        "{label}: vote {vote:?}, acknowledged {acked_vote:?}"
    );

    // The state machine.
    let (applied, _) = sm.applied_state().await.expect("applied");
    let applied_index = applied.map_or(0, |id| id.index);
    let snapshot = sm.get_current_snapshot().await.expect("current snapshot");
    let snapshot_index = snapshot.as_ref().and_then(|s| s.meta.last_log_id).map_or(0, |id| id.index);
    let last_index = state.last_log_id.map_or(0, |id| id.index);
    assert!(
        applied_index <= last_index.max(snapshot_index),
        "{label}: applied {applied_index}, log ends at {last_index}"
    );
    let purged_index = state.last_purged_log_id.map_or(0, |id| id.index);
    assert!(
        applied_index >= purged_index,
        "{label}: applied {applied_index} is behind the purged {purged_index}: entries lost"
    );
    assert!(
        applied_index >= snapshot_index,
        "{label}: applied {applied_index} is behind the snapshot {snapshot_index}"
    );
    assert_eq!(contents(&sm), model(applied_index), "{label}: the map is not the model at {applied_index}");

    // The current snapshot gives the map of its own log id, installed on another node.
    if let Some(snapshot) = snapshot {
        let other = FaultStorage::new();
        let stores = open(&other).expect("open");
        let mut other_sm = stores.state_machine;
        let mut bytes = Vec::new();
        let mut data = snapshot.snapshot;
        tokio::io::AsyncReadExt::read_to_end(&mut *data, &mut bytes).await.expect("read");
        let mut into = other_sm.begin_receiving_snapshot().await.expect("receive");
        into.write_all(&bytes).await.expect("write");
        other_sm.install_snapshot(&snapshot.meta, into).await.expect("install");
        assert_eq!(contents(&other_sm), model(snapshot_index), "{label}: the snapshot's map");
    }
    let _ = received;
}

/// Power losses per boundary: each keeps, drops or tears every unsynced write its own way.
const SEEDS: u64 = 8;

#[test]
fn a_power_cut_at_every_io_boundary_keeps_the_log_and_the_state_machine_consistent() {
    let rt = runtime();
    let received = rt.block_on(received_snapshot());
    // A clean run counts the boundaries.
    let clean = FaultStorage::new();
    let (acked, in_doubt) = rt.block_on(workload(&clean, &received));
    assert!(in_doubt.is_none(), "the clean run failed at {in_doubt:?}");
    assert_eq!(acked.len(), script().len());
    let boundaries = clean.op_count();
    rt.block_on(check(&clean.power_loss(0), &acked, None, &received, "clean run"));
    let mut cut_short = 0;
    for at in 0..boundaries {
        for seed in 1..=SEEDS {
            let storage = FaultStorage::new();
            storage.crash_at(at);
            let (acked, in_doubt) = rt.block_on(workload(&storage, &received));
            cut_short += usize::from(in_doubt.is_some());
            let after = storage.power_loss(seed);
            rt.block_on(check(&after, &acked, in_doubt.as_ref(), &received, &format!("crash at {at}, seed {seed}")));
        }
    }
    eprintln!("{boundaries} I/O boundaries × {SEEDS} power losses; {cut_short} runs cut short in an operation");
    assert!(cut_short > 0);
}
