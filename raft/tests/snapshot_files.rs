//! Snapshot files under concurrency, abandonment and loss: the current snapshot stays readable
//! while builds replace it, a reception openraft abandons leaves no file behind, and a database
//! restored without its snapshot files opens without a snapshot.

use std::sync::Arc;

use mtrdb::{Db, DirStorage};
use mtrdb_raft::{Request, Stores, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use tokio::io::AsyncWriteExt;

fn set(index: u64) -> Entry<TypeConfig> {
    let log_id = LogId::new(CommittedLeaderId::new(1, 1), index);
    let request = Request::Set { key: format!("k{}", index % 50).into_bytes(), value: vec![index as u8; 1000] };
    Entry { log_id, payload: EntryPayload::Normal(request) }
}

fn open(dir: &std::path::Path) -> Stores {
    let db = Db::open(dir).expect("open");
    let snapshots = DirStorage::open(&dir.join("snapshots"), true).expect("snapshot dir");
    Stores::open_in(Arc::new(db), Arc::new(snapshots), "files").expect("stores")
}

fn snapshot_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".snapshot."))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_snapshot_opens_while_builds_replace_it() {
    let dir = tempfile::tempdir().unwrap();
    let stores = open(dir.path());
    let mut sm = stores.state_machine;
    sm.apply([set(1)]).await.unwrap();
    let mut builder = sm.get_snapshot_builder().await;
    builder.build_snapshot().await.unwrap();
    // Builds replace the current snapshot (and remove the file they replace) in a task of their
    // own, as openraft runs them, while `get_current_snapshot` opens the current one.
    let (done, mut finished) = tokio::sync::oneshot::channel::<()>();
    let readers = {
        let reader = sm.reader();
        tokio::spawn(async move {
            let mut opened = 0;
            while finished.try_recv().is_err() {
                let current = reader.current_snapshot().expect("the current snapshot opens");
                assert!(current.is_some());
                opened += 1;
                tokio::task::yield_now().await;
            }
            opened
        })
    };
    for index in 2..=150 {
        sm.apply([set(index)]).await.unwrap();
        builder.build_snapshot().await.unwrap();
    }
    done.send(()).unwrap();
    let opened = readers.await.unwrap();
    assert!(opened > 0);
    assert_eq!(snapshot_files(dir.path()).len(), 1, "only the current snapshot's file stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_reception_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let stores = open(dir.path());
    let mut sm = stores.state_machine;
    for _ in 0..5 {
        let mut data = sm.begin_receiving_snapshot().await.unwrap();
        data.write_all(b"part of a snapshot that never completes").await.unwrap();
        drop(data); // as openraft drops it when a newer snapshot begins or the leader changes
    }
    assert_eq!(snapshot_files(dir.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restored_without_its_snapshot_files_opens_without_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let stores = open(dir.path());
        let mut sm = stores.state_machine;
        sm.apply((1..=60).map(set)).await.unwrap();
        sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        assert!(sm.get_current_snapshot().await.unwrap().is_some());
    }
    // As a restore of the database's own backup (`Db::backup_to`) would leave it.
    for name in snapshot_files(dir.path()) {
        std::fs::remove_file(dir.path().join("snapshots").join(name)).unwrap();
    }
    let stores = open(dir.path());
    let mut sm = stores.state_machine;
    assert!(sm.get_current_snapshot().await.unwrap().is_none());
    assert_eq!(sm.applied_state().await.unwrap().0.map(|id| id.index), Some(60));
    assert_eq!(sm.reader().for_each(|_, _| {}).unwrap(), 50);
}
