//! The canopydb adapter: the `default` database of one environment, one tree, `bench`; one
//! exclusive write transaction per batch or commit, synced in the WAL; one read transaction per
//! read.

use std::path::Path;

use canopydb::{Database, DbOptions, EnvOptions};

use super::{Scanned, Session, Store, StoreKind};
use crate::common::Entry;

/// The one tree every workload uses.
const CANOPYDB_TREE: &[u8] = b"bench";

/// canopydb.
pub struct CanopydbStore {
    db: Database,
}

impl CanopydbStore {
    pub(super) fn open(dir: &Path) -> CanopydbStore {
        // Why these options: every commit must be durable when it returns, as for every other
        // store. canopydb's default is the WAL on with commits not synced
        // (`default_commit_sync: false`); with it true, `commit()` fsyncs the WAL up to the
        // commit before it returns. canopydb refuses synced commits without the WAL, so
        // `use_wal` (also the default) is stated with it. Everything else is the default (1 GB
        // page cache, a checkpoint every 64 MB of changes or 30 s). `DbOptions` is
        // `#[non_exhaustive]`: no struct literal outside its crate, hence field by field.
        let mut options = DbOptions::new();
        options.use_wal = true;
        options.default_commit_sync = true;
        let db = Database::with_options(EnvOptions::new(dir), options).expect("open canopydb");
        let txn = db.begin_write().expect("canopydb begin_write");
        txn.get_or_create_tree(CANOPYDB_TREE).expect("canopydb create tree");
        txn.commit().expect("canopydb commit");
        CanopydbStore { db }
    }

    /// One exclusive write transaction (canopydb's default kind, like the plain write
    /// transactions of the other stores), synced on commit.
    fn commit<'a>(&self, entries: impl Iterator<Item = (&'a [u8], &'a [u8])>) {
        let txn = self.db.begin_write().expect("canopydb begin_write");
        {
            let mut tree = txn.get_or_create_tree(CANOPYDB_TREE).expect("canopydb tree");
            for (key, value) in entries {
                tree.insert(key, value).expect("canopydb insert");
            }
        }
        txn.commit().expect("canopydb commit");
    }
}

impl Store for CanopydbStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Canopydb
    }

    fn write_batch(&self, entries: &[Entry]) {
        self.commit(entries.iter().map(|entry| (&entry.key[..], &entry.value[..])));
    }

    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(CanopydbSession { store: self })
    }

    fn close(self: Box<Self>) {
        // A clean close leaves the data file complete: checkpoint, so a reopen replays nothing.
        self.db.checkpoint().expect("canopydb checkpoint");
        drop(self.db);
    }
}

struct CanopydbSession<'a> {
    store: &'a CanopydbStore,
}

impl Session for CanopydbSession<'_> {
    fn insert_durable(&mut self, key: &[u8], value: &[u8]) {
        self.store.commit(std::iter::once((key, value)));
    }

    fn get(&mut self, key: &[u8]) -> Option<usize> {
        let txn = self.store.db.begin_read().expect("canopydb begin_read");
        let tree = txn.get_tree(CANOPYDB_TREE).expect("canopydb get_tree").expect("the bench tree");
        tree.get(key).expect("canopydb get").map(|value| value.len())
    }

    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> Scanned {
        let txn = self.store.db.begin_read().expect("canopydb begin_read");
        let tree = txn.get_tree(CANOPYDB_TREE).expect("canopydb get_tree").expect("the bench tree");
        let read = |entry: Result<(canopydb::Bytes, canopydb::Bytes), canopydb::Error>| {
            let (key, value) = entry.expect("canopydb scan");
            key.len() + value.len()
        };
        if forward {
            tree.range::<&[u8]>(start..).expect("canopydb range").take(count).map(read).collect()
        } else {
            tree.range::<&[u8]>(..=start).expect("canopydb range").rev().take(count).map(read).collect()
        }
    }
}
