//! The mtrdb adapter: one `Db`, a batch is one `WriteBatch`, a session borrows the `Db`.

use std::path::Path;

use mtrdb::{Db, Options, WriteBatch};

use super::{Scanned, Session, Store, StoreKind};
use crate::common::Entry;

/// mtrdb.
pub struct MtrdbStore {
    db: Db,
}

impl MtrdbStore {
    /// Opens (creating or recovering) an mtrdb database in `dir`.
    pub fn open(dir: &Path, options: Options) -> MtrdbStore {
        MtrdbStore { db: Db::open_with(dir, options).expect("open mtrdb") }
    }
}

impl Store for MtrdbStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Mtrdb
    }

    fn write_batch(&self, entries: &[Entry]) {
        let mut batch = WriteBatch::new();
        for entry in entries {
            batch.insert(entry.key, entry.value);
        }
        self.db.write(batch).expect("mtrdb write");
    }

    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(MtrdbSession { db: &self.db })
    }

    fn mtrdb(&self) -> Option<&Db> {
        Some(&self.db)
    }

    fn close(self: Box<Self>) {
        self.db.close().expect("mtrdb close");
    }
}

struct MtrdbSession<'a> {
    db: &'a Db,
}

impl Session for MtrdbSession<'_> {
    fn insert_durable(&mut self, key: &[u8], value: &[u8]) {
        self.db.insert(key, value).expect("mtrdb insert");
    }

    fn get(&mut self, key: &[u8]) -> Option<usize> {
        self.db.get(key).expect("mtrdb get").map(|value| value.len())
    }

    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> Scanned {
        let read = |entry: mtrdb::Result<(mtrdb::Bytes, mtrdb::Bytes)>| {
            let (key, value) = entry.expect("mtrdb scan");
            key.len() + value.len()
        };
        if forward {
            self.db.range::<&[u8], _>(start..).take(count).map(read).collect()
        } else {
            self.db.range::<&[u8], _>(..=start).rev().take(count).map(read).collect()
        }
    }
}
