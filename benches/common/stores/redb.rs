//! The redb adapter: one table, `bench`; one write transaction per batch or commit, one read
//! transaction per read.

use std::path::Path;

use super::{Scanned, Session, Store, StoreKind};
use crate::common::Entry;

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("bench");

/// redb.
pub struct RedbStore {
    db: redb::Database,
}

impl RedbStore {
    pub(super) fn open(dir: &Path) -> RedbStore {
        let db = redb::Database::create(dir.join("data.redb")).expect("open redb");
        let txn = db.begin_write().expect("redb begin_write");
        txn.open_table(REDB_TABLE).expect("redb create table");
        txn.commit().expect("redb commit");
        RedbStore { db }
    }
}

impl Store for RedbStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Redb
    }

    fn write_batch(&self, entries: &[Entry]) {
        let txn = self.db.begin_write().expect("redb begin_write");
        {
            let mut table = txn.open_table(REDB_TABLE).expect("redb open_table");
            for entry in entries {
                table.insert(&entry.key[..], &entry.value[..]).expect("redb insert");
            }
        }
        txn.commit().expect("redb commit");
    }

    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(RedbSession { db: &self.db })
    }

    fn close(self: Box<Self>) {
        drop(self.db);
    }
}

/// One entry of a redb range.
type RedbEntry<'a> = Result<(redb::AccessGuard<'a, &'a [u8]>, redb::AccessGuard<'a, &'a [u8]>), redb::StorageError>;

struct RedbSession<'a> {
    db: &'a redb::Database,
}

impl Session for RedbSession<'_> {
    fn insert_durable(&mut self, key: &[u8], value: &[u8]) {
        let txn = self.db.begin_write().expect("redb begin_write");
        {
            let mut table = txn.open_table(REDB_TABLE).expect("redb open_table");
            table.insert(key, value).expect("redb insert");
        }
        txn.commit().expect("redb commit");
    }

    fn get(&mut self, key: &[u8]) -> Option<usize> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read().expect("redb begin_read");
        let table = txn.open_table(REDB_TABLE).expect("redb open_table");
        table.get(key).expect("redb get").map(|value| value.value().len())
    }

    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> Scanned {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read().expect("redb begin_read");
        let table = txn.open_table(REDB_TABLE).expect("redb open_table");
        let read = |entry: RedbEntry<'_>| {
            let (key, value) = entry.expect("redb scan");
            key.value().len() + value.value().len()
        };
        if forward {
            table.range::<&[u8]>(start..).expect("redb range").take(count).map(read).collect()
        } else {
            table.range::<&[u8]>(..=start).expect("redb range").rev().take(count).map(read).collect()
        }
    }
}
