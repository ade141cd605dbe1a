//! The fjall adapter: one keyspace, `bench`; one synced write batch per batch or commit.

use std::path::Path;
use std::time::Duration;

use super::{Scanned, Session, Store, StoreKind};
use crate::common::Entry;

/// fjall.
pub struct FjallStore {
    db: fjall::Database,
    keyspace: fjall::Keyspace,
}

impl FjallStore {
    pub(super) fn open(dir: &Path) -> FjallStore {
        let db = fjall::Database::builder(dir).open().expect("open fjall");
        let keyspace = db.keyspace("bench", fjall::KeyspaceCreateOptions::default).expect("fjall keyspace");
        FjallStore { db, keyspace }
    }

    fn commit(&self, entries: impl Iterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>) {
        let mut batch = self.db.batch().durability(Some(fjall::PersistMode::SyncData));
        for (key, value) in entries {
            batch.insert(&self.keyspace, key.as_ref(), value.as_ref());
        }
        batch.commit().expect("fjall commit");
    }
}

impl Store for FjallStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Fjall
    }

    fn write_batch(&self, entries: &[Entry]) {
        self.commit(entries.iter().map(|entry| (entry.key, entry.value)));
    }

    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(FjallSession { store: self })
    }

    fn quiesce(&self) {
        while self.db.outstanding_flushes() > 0 || self.db.active_compactions() > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn close(self: Box<Self>) {
        self.quiesce();
        self.db.persist(fjall::PersistMode::SyncAll).expect("fjall persist");
    }
}

struct FjallSession<'a> {
    store: &'a FjallStore,
}

impl Session for FjallSession<'_> {
    fn insert_durable(&mut self, key: &[u8], value: &[u8]) {
        self.store.commit(std::iter::once((key, value)));
    }

    fn get(&mut self, key: &[u8]) -> Option<usize> {
        self.store.keyspace.get(key).expect("fjall get").map(|value| value.len())
    }

    fn scan(&mut self, start: &[u8], count: usize, forward: bool) -> Scanned {
        let read = |guard: fjall::Guard| {
            let (key, value) = guard.into_inner().expect("fjall scan");
            key.len() + value.len()
        };
        if forward {
            self.store.keyspace.range::<&[u8], _>(start..).take(count).map(read).collect()
        } else {
            self.store.keyspace.range::<&[u8], _>(..=start).rev().take(count).map(read).collect()
        }
    }
}
