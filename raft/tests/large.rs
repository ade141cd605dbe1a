//! Large entries and large state: an append of many large entries, a value near the limit, and
//! a snapshot many times the size of the redo log, all through the stores' own batching (each
//! batch bounded by the log's capacity), on real directories.

use std::sync::Arc;

use mtrdb::{Db, DirStorage, Options};
use mtrdb_raft::{Request, Stores, TypeConfig, MAX_VALUE_BYTES};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn set(index: u64, key: String, value: Vec<u8>) -> Entry<TypeConfig> {
    let log_id = LogId::new(CommittedLeaderId::new(1, 1), index);
    Entry { log_id, payload: EntryPayload::Normal(Request::Set { key: key.into_bytes(), value }) }
}

fn open(dir: &std::path::Path, log_capacity: u64) -> Stores {
    let db = Db::open_with(dir, Options::default().log_capacity(log_capacity)).expect("open");
    let snapshots = DirStorage::open(&dir.join("snapshots"), true).expect("snapshot dir");
    Stores::open_in(Arc::new(db), Arc::new(snapshots), "large").expect("stores")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_larger_than_the_log_is_split_and_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let stores = open(dir.path(), 8 << 20);
    let (mut log, mut sm) = (stores.log, stores.state_machine);
    // 300 entries of 128 KiB (openraft's default `max_payload_entries`): 39 MB, five times the log.
    let entries: Vec<_> = (1..=300).map(|i| set(i, format!("k{i:04}"), vec![i as u8; 128 << 10])).collect();
    log.blocking_append(entries.clone()).await.expect("append");
    assert_eq!(log.get_log_state().await.unwrap().last_log_id.map(|id| id.index), Some(300));
    assert_eq!(log.try_get_log_entries(1..=300).await.unwrap(), entries);
    sm.apply(entries).await.expect("apply");
    assert_eq!(sm.reader().get("k0300").unwrap(), Some(vec![44; 128 << 10]));
    assert_eq!(sm.reader().for_each(|_, _| {}).unwrap(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_at_the_limit_is_stored_and_one_over_it_is_refused_alike_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let stores = open(dir.path(), 128 << 20);
    let (mut log, mut sm) = (stores.log, stores.state_machine);
    let big = set(1, "big".into(), vec![7; MAX_VALUE_BYTES]);
    let over = set(2, "over".into(), vec![7; MAX_VALUE_BYTES + 1]);
    log.blocking_append([big.clone(), over.clone()]).await.expect("append");
    let responses = sm.apply([big, over]).await.expect("apply");
    assert_eq!(responses[0], mtrdb_raft::Response::Applied);
    assert!(
        matches!(&responses[1], mtrdb_raft::Response::Refused { reason } if reason.contains("limit")),
        "{responses:?}"
    );
    assert_eq!(sm.reader().get("big").unwrap().map(|v| v.len()), Some(MAX_VALUE_BYTES));
    assert_eq!(sm.reader().get("over").unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_many_times_the_log_is_built_and_installed() {
    let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // 1 MiB logs, 12 MB of state.
    let stores = open(from.path(), 1 << 20);
    let (mut log, mut sm) = (stores.log, stores.state_machine);
    let entries: Vec<_> = (1..=3000).map(|i| set(i, format!("k{i:05}"), vec![(i % 251) as u8; 4096])).collect();
    for chunk in entries.chunks(100) {
        log.blocking_append(chunk.to_vec()).await.expect("append");
        sm.apply(chunk.to_vec()).await.expect("apply");
    }
    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.expect("build");
    let mut bytes = Vec::new();
    let mut data = snapshot.snapshot;
    data.read_to_end(&mut bytes).await.unwrap();
    assert!(bytes.len() > 12_000_000, "{} bytes", bytes.len());

    let other = open(to.path(), 1 << 20);
    let mut other_sm = other.state_machine;
    let mut into = other_sm.begin_receiving_snapshot().await.unwrap();
    // In chunks, as openraft sends it.
    for chunk in bytes.chunks(3 << 20) {
        into.write_all(chunk).await.unwrap();
    }
    other_sm.install_snapshot(&snapshot.meta, into).await.expect("install");
    let (a, b) = (sm.reader(), other_sm.reader());
    let (mut left, mut right) = (Vec::new(), Vec::new());
    a.for_each(|k, v| left.push((k.to_vec(), v.to_vec()))).unwrap();
    b.for_each(|k, v| right.push((k.to_vec(), v.to_vec()))).unwrap();
    assert_eq!(left.len(), 3000);
    assert!(left == right, "the installed map differs");
    assert_eq!(other_sm.applied_state().await.unwrap().0, Some(LogId::new(CommittedLeaderId::new(1, 1), 3000)));
    other.db.check().expect("check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_starts_a_new_batch_before_an_entry_that_would_overflow_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // A 1 MiB log: batches of 128 KiB. An entry of 127 KiB, then one of 900 KiB, which fits in the log
    // alone but not with the first.
    let stores = open(dir.path(), 1 << 20);
    let (mut log, mut sm) = (stores.log, stores.state_machine);
    let entries = vec![set(1, "small".into(), vec![1; 127 << 10]), set(2, "large".into(), vec![2; 900 << 10])];
    for entry in &entries {
        log.blocking_append([entry.clone()]).await.expect("append");
    }
    sm.apply(entries).await.expect("apply");
    assert_eq!(sm.reader().get("large").unwrap().map(|v| v.len()), Some(900 << 10));
    assert_eq!(sm.applied_state().await.unwrap().0.map(|id| id.index), Some(2));
}
