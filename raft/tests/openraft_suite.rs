//! openraft's own storage test suite (`openraft::testing::Suite::test_all`) against the mtrdb
//! stores: on a directory, and on the fault-injecting storage (in memory, no faults injected).

use std::sync::Arc;

use mtrdb::fault::FaultStorage;
use mtrdb::Db;
use mtrdb_raft::{LogStore, StateMachine, StorageError, Stores, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageIOError;

fn storage_error(error: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write(&error).into()
}

/// Each build: a new database in a new temporary directory (the guard keeps the directory).
struct OnDirectory;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for OnDirectory {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(storage_error)?;
        let stores = Stores::open(dir.path()).map_err(storage_error)?;
        Ok((dir, stores.log, stores.state_machine))
    }
}

/// Each build: a new database on a new fault-injecting storage, which also holds the snapshots.
struct OnFaultStorage;

impl StoreBuilder<TypeConfig, LogStore, StateMachine> for OnFaultStorage {
    async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError> {
        let storage = FaultStorage::new();
        let db =
            Db::open_storage(Arc::new(storage.clone()), "sim".into(), Default::default()).map_err(storage_error)?;
        let stores = Stores::open_in(Arc::new(db), Arc::new(storage), "suite").map_err(storage_error)?;
        Ok(((), stores.log, stores.state_machine))
    }
}

#[test]
fn openraft_suite_passes_on_a_directory() {
    Suite::test_all(OnDirectory).expect("openraft's storage suite");
}

#[test]
fn openraft_suite_passes_on_the_fault_injecting_storage() {
    Suite::test_all(OnFaultStorage).expect("openraft's storage suite");
}
