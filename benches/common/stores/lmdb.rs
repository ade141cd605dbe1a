//! The LMDB adapter (through heed): the unnamed database of one environment; one write
//! transaction per batch or commit, one read transaction per read.

use std::ops::Bound;
use std::path::Path;

use super::{Scanned, Session, Store, StoreKind};
use crate::common::Entry;

type LmdbDatabase = heed::Database<heed::types::Bytes, heed::types::Bytes>;

/// LMDB through heed.
pub struct LmdbStore {
    env: heed::Env,
    db: LmdbDatabase,
}

impl LmdbStore {
    pub(super) fn open(dir: &Path) -> LmdbStore {
        // SAFETY: heed's contract for the memory map: the files are opened by this process only
        // (each benchmark store has its own directory) and nothing else modifies them while the
        // environment is open.
        let env = unsafe { heed::EnvOpenOptions::new().map_size(16 << 30).max_dbs(1).open(dir) }.expect("open lmdb");
        let mut txn = env.write_txn().expect("lmdb write_txn");
        let db: LmdbDatabase = env.create_database(&mut txn, None).expect("lmdb create_database");
        txn.commit().expect("lmdb commit");
        LmdbStore { env, db }
    }
}

impl Store for LmdbStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Lmdb
    }

    fn write_batch(&self, entries: &[Entry]) {
        let mut txn = self.env.write_txn().expect("lmdb write_txn");
        for entry in entries {
            self.db.put(&mut txn, &entry.key, &entry.value).expect("lmdb put");
        }
        txn.commit().expect("lmdb commit");
    }

    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(LmdbSession { store: self })
    }

    fn close(self: Box<Self>) {
        self.env.force_sync().expect("lmdb sync");
        let LmdbStore { env, db: _ } = *self;
        env.prepare_for_closing().wait();
    }
}

struct LmdbSession<'a> {
    store: &'a LmdbStore,
}

impl Session for LmdbSession<'_> {
    fn insert_durable(&mut self, key: &[u8], value: &[u8]) {
        let mut txn = self.store.env.write_txn().expect("lmdb write_txn");
        self.store.db.put(&mut txn, key, value).expect("lmdb put");
        txn.commit().expect("lmdb commit");
    }

    fn get(&mut self, key: &[u8]) -> Option<usize> {
        let txn = self.store.env.read_txn().expect("lmdb read_txn");
        self.store.db.get(&txn, key).expect("lmdb get").map(<[u8]>::len)
    }

    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> Scanned {
        let txn = self.store.env.read_txn().expect("lmdb read_txn");
        let read = |entry: heed::Result<(&[u8], &[u8])>| {
            let (key, value) = entry.expect("lmdb scan");
            key.len() + value.len()
        };
        if forward {
            let range = (Bound::Included(start), Bound::Unbounded);
            self.store.db.range(&txn, &range).expect("lmdb range").take(count).map(read).collect()
        } else {
            let range = (Bound::Unbounded, Bound::Included(start));
            self.store.db.rev_range(&txn, &range).expect("lmdb rev_range").take(count).map(read).collect()
        }
    }
}
