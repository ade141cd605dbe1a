//! # mtrdb-raft
//!
//! mtrdb as [openraft](https://docs.rs/openraft/0.9)'s storage: the Raft log, the vote and a
//! replicated key-value state machine, each in keyspaces of one mtrdb database, so that a
//! cluster of processes keeps one ordered map, replicated by openraft's consensus and made
//! durable by mtrdb's redo log.
//!
//! - [`LogStore`] implements [`openraft::storage::RaftLogStorage`]: entries keyed by their index,
//!   big-endian, in keyspace `raft.{group}.log`; the vote, the committed log id and the last
//!   purged log id in `raft.{group}.meta`. `append` reports its entries flushed only once they
//!   are durable (bounded batches, the last one synced; appends of concurrent groups in one
//!   database share syncs through mtrdb's group commit); `truncate` and `purge` are one atomic
//!   batch each up to 65,536 entries (at the default log size), beyond that batches that leave a
//!   contiguous log at every crash. A purge made while a snapshot is being received waits for its
//!   install to be durable (`log_store::PurgeGate`).
//! - [`StateMachine`] implements [`openraft::storage::RaftStateMachine`]: [`Request`]s applied to
//!   keyspace `raft.{group}.sm.{generation}`, with the last applied log id and the membership
//!   written in the same atomic batch as the entries' effects, so that a crash never applies an
//!   entry twice nor loses one. Snapshots are files of the state at one batch boundary
//!   ([`snapshot`] specifies them byte by byte); installing one fills a new generation's keyspace
//!   and switches to it in one atomic batch.
//!
//! A database may hold several Raft groups (`group` names them), as TiKV's multi-Raft does on
//! RocksDB: their appends share the log's syncs.
//!
//! What this crate does not do: consensus (openraft does, with its guarantees and limits), the
//! network (an application brings its own [`openraft::RaftNetwork`]), or linearizable reads by
//! itself (read through [`StateMachineReader`] after `Raft::ensure_linearizable`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use openraft::storage::{RaftLogStorage, RaftStateMachine};
//! let dir = tempfile::tempdir()?;
//! let stores = mtrdb_raft::Stores::open(dir.path())?;
//! let (mut log, mut sm) = (stores.log, stores.state_machine);
//! assert_eq!(log.get_log_state().await?.last_log_id, None);
//! assert_eq!(sm.applied_state().await?.0, None);
//! // Hand both to `openraft::Raft::new(id, config, network, log, sm)`.
//! # Ok(()) }
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::path::Path;
use std::sync::Arc;

use mtrdb::{Db, DirStorage, Storage};
use serde::{Deserialize, Serialize};

mod log_store;
mod names;
pub mod snapshot;
mod state_machine;

pub use log_store::LogStore;
pub use snapshot::SnapshotFile;
pub use state_machine::{SnapshotBuilder, StateMachine, StateMachineReader};

openraft::declare_raft_types!(
    /// The Raft types of a cluster whose state machine is an mtrdb key-value map.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = SnapshotFile,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The storage error openraft's traits return.
pub type StorageError = openraft::StorageError<u64>;

/// A change to the replicated map: what a client proposes through `Raft::client_write`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Inserts or replaces `key`.
    Set {
        /// The key: at most [`MAX_KEY_BYTES`] bytes.
        key: Vec<u8>,
        /// The value: at most [`MAX_VALUE_BYTES`] bytes.
        value: Vec<u8>,
    },
    /// Removes `key` if present.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

/// The largest key of the replicated map: one byte less than mtrdb's, for the tag that keeps
/// the state machine's own records apart from the map's keys.
pub const MAX_KEY_BYTES: usize = mtrdb::MAX_KEY_BYTES - 1;

/// The largest value of the replicated map: mtrdb's, less room for the rest of a log entry
/// (stored whole as one value). An entry must also fit in the database's redo log: the default
/// 128 MiB log holds the largest; on a database opened with a smaller `Options::log_capacity`,
/// an entry near that size fails to append (`Error::BatchTooLarge`), and openraft stops the node.
pub const MAX_VALUE_BYTES: usize = mtrdb::MAX_VALUE_BYTES - (64 << 10);

impl Request {
    /// Why the state machine would refuse this request, if it would: a key or value out of
    /// bounds. **Check before proposing.** A refused request is still committed to the log, and
    /// every replica answers it with [`Response::Refused`] alike, as long as its entry can be
    /// stored at all: one whose value exceeds mtrdb's own limit (64 MiB) cannot be appended, and
    /// the append error stops the node (openraft treats storage errors as fatal).
    pub fn refusal(&self) -> Option<String> {
        let (key, value_len) = match self {
            Request::Set { key, value } => (key, value.len()),
            Request::Delete { key } => (key, 0),
        };
        if key.len() > MAX_KEY_BYTES {
            return Some(format!("a key of {} bytes, over the {MAX_KEY_BYTES}-byte limit", key.len()));
        }
        if value_len > MAX_VALUE_BYTES {
            return Some(format!("a value of {value_len} bytes, over the {MAX_VALUE_BYTES}-byte limit"));
        }
        None
    }
}

/// What applying an entry gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Applied (also for blank and membership entries).
    Applied,
    /// Not applied, on every replica alike: see [`Request::refusal`].
    Refused {
        /// Why.
        reason: String,
    },
}

/// The errors of opening the stores.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the database.
    #[error(transparent)]
    Db(#[from] mtrdb::Error),
    /// A group name that is not 1 to 64 bytes of ASCII letters, digits, `_` and `-`.
    #[error("Raft group name {name:?}: use 1 to 64 ASCII letters, digits, '_' or '-'")]
    GroupName {
        /// The name given.
        name: String,
    },
    /// A stored record that does not decode, or a snapshot file that is missing or damaged.
    #[error("corrupt Raft storage: {detail}")]
    Corrupt {
        /// What is wrong, and where.
        detail: String,
    },
    /// A storage task panicked (a bug): the operation's outcome is unknown, as after a crash.
    #[error("a storage task panicked: {detail}")]
    Panicked {
        /// The panic.
        detail: String,
    },
    /// An I/O error on a snapshot file.
    #[error("{action} ({file})")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A Raft node's storage: the log store and the state machine to hand to `openraft::Raft::new`,
/// and the database that holds them.
pub struct Stores {
    /// The log store.
    pub log: LogStore,
    /// The state machine.
    pub state_machine: StateMachine,
    /// The database holding both (keep it to back it up or to close it once the Raft node is
    /// shut down).
    pub db: Arc<Db>,
}

/// The directory, inside the database's, that holds the snapshot files of [`Stores::open`].
pub const SNAPSHOT_DIR: &str = "raft-snapshots";

impl Stores {
    /// Opens (or creates) a node's storage in `dir`: an mtrdb database there, with Raft group
    /// `"raft"`, and the snapshot files in `dir/raft-snapshots`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Stores, Error> {
        let dir = dir.as_ref();
        let db = Arc::new(Db::open(dir)?);
        let snapshot_dir = dir.join(SNAPSHOT_DIR);
        let snapshots = DirStorage::open(&snapshot_dir, true).map_err(|source| Error::Io {
            action: "opening the snapshot directory",
            file: snapshot_dir.display().to_string(),
            source,
        })?;
        Stores::open_in(db, Arc::new(snapshots), "raft")
    }

    /// Opens (or creates) Raft group `group`'s storage in `db`, with its snapshot files in
    /// `snapshots` (which may be shared by several groups: file names carry the group). Leftovers
    /// of a crash (an install's half-filled keyspace, unfinished snapshot files) are removed.
    pub fn open_in(db: Arc<Db>, snapshots: Arc<dyn Storage>, group: &str) -> Result<Stores, Error> {
        let names = Arc::new(names::Names::new(group)?);
        let state_machine = StateMachine::open(Arc::clone(&db), snapshots, Arc::clone(&names))?;
        let log = LogStore::open(Arc::clone(&db), names, state_machine.purge_gate())?;
        Ok(Stores { log, state_machine, db })
    }
}
