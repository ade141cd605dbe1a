//! Keyspaces: named, independent ordered maps in one database. [`Keyspace`] handles, and
//! `Db::keyspace`, `Db::keyspaces`, `Db::drop_keyspace` with the freeing of a dropped keyspace's
//! pages; and the reads every keyspace has (`first`, `last`, `prefix`, `len`, `is_empty`), on
//! [`Db`] for the default keyspace.
//!
//! This module owns the handles and the order of creating and dropping; it must not change the
//! catalog's bytes itself (`crate::catalog` does, through the batch writer).

use std::ops::RangeBounds;
use std::sync::Arc;

use bytes::Bytes;

use crate::btree::{self, Latest};
use crate::catalog::{self, KeyspaceInfo};
use crate::error::{Error, Result};

use super::batch::{check_key, Durable, WriteBatch};
use super::iter::{own_bounds, prefix_bounds};
use super::{Db, Inner, Iter};

/// A keyspace: a named, independent ordered map in a [`Db`], each its own B+tree. Batches may
/// span keyspaces ([`WriteBatch::insert_in`]) and stay atomic across them, also across a crash.
///
/// A handle is cheap to clone and may be shared between threads; it borrows its `Db`. Once its
/// keyspace is dropped ([`Db::drop_keyspace`]), every call through it fails with
/// [`Error::KeyspaceDropped`], even after a keyspace of the same name is created again: handles
/// name a keyspace by an id that is never reused.
#[derive(Clone)]
pub struct Keyspace<'db> {
    db: &'db Db,
    info: Arc<KeyspaceInfo>,
}

impl std::fmt::Debug for Keyspace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyspace").field("name", &self.info.name).field("id", &self.info.id).finish()
    }
}

// Handles are shared between threads; keep them so.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Keyspace<'static>>();
};

/// An entry as iterators and `first`/`last` return it.
type Entry = (Bytes, Bytes);

impl Db {
    /// Opens keyspace `name`, creating it (durably, like a batch) if it does not exist. Names
    /// are 1 to 255 bytes of UTF-8 ([`Error::KeyspaceName`] otherwise).
    pub fn keyspace(&self, name: &str) -> Result<Keyspace<'_>> {
        catalog::check_name(name)?;
        if let Some(info) = self.inner.tree.read().keyspaces.get(name) {
            return Ok(Keyspace { db: self, info: Arc::clone(info) });
        }
        self.inner.check_writable()?;
        let info = self.inner.run_batch(
            4096,
            Durable::AsOptioned,
            |writer, keyspaces| match keyspaces.get(name) {
                // Created by another thread since the look above.
                Some(info) => Ok((Arc::clone(info), false)),
                None => Ok((Arc::new(catalog::create(writer, name)?), true)),
            },
            |keyspaces, (info, created)| {
                if *created {
                    keyspaces.add(Arc::clone(info));
                }
            },
        )?;
        Ok(Keyspace { db: self, info: info.0 })
    }

    /// Keyspace `name` if it exists, without creating it: `None` once it is dropped, where
    /// [`Db::keyspace`] would create an empty one of that name.
    pub fn existing_keyspace(&self, name: &str) -> Result<Option<Keyspace<'_>>> {
        catalog::check_name(name)?;
        Ok(self.inner.tree.read().keyspaces.get(name).map(|info| Keyspace { db: self, info: Arc::clone(info) }))
    }

    /// The default keyspace: the one `Db::get`, `Db::insert` and the other methods of `Db` act
    /// on. It has no name and cannot be dropped.
    #[must_use]
    pub fn default_keyspace(&self) -> Keyspace<'_> {
        Keyspace { db: self, info: Arc::new(KeyspaceInfo::default_keyspace()) }
    }

    /// The names of the keyspaces (not the default one), sorted.
    pub fn keyspaces(&self) -> Result<Vec<String>> {
        Ok(self.inner.tree.read().keyspaces.names())
    }

    /// Drops keyspace `name` and frees its pages for reuse; whether it existed. The drop is
    /// atomic and durable like a batch; handles to it fail from then on, and iterators over it
    /// that were already open go on reading their snapshot.
    ///
    /// **Cost.** The pages are freed after the drop, in batches of about
    /// [`FREE_PAGES_PER_BATCH`](crate::FREE_PAGES_PER_BATCH) pages (one large value's overflow
    /// chain at a time), so memory and log space stay bounded however large the keyspace; the
    /// time is proportional to its pages. Other writers run between those batches. If the
    /// process stops meanwhile, the next open finishes the freeing. An error from the freeing
    /// (a damaged page of the dropped keyspace, a failed write) comes after the drop itself has
    /// committed: the keyspace stays dropped, and its remaining pages are freed by a later drop
    /// or open.
    pub fn drop_keyspace(&self, name: &str) -> Result<bool> {
        catalog::check_name(name)?;
        self.inner.check_writable()?;
        let dropped = self.inner.run_batch(
            4096,
            Durable::AsOptioned,
            |writer, keyspaces| match keyspaces.get(name) {
                None => Ok(None),
                Some(info) => {
                    let root = keyspaces.root_of(info).unwrap_or(info.root);
                    catalog::drop(writer, info, root)?;
                    Ok(Some(Arc::clone(info)))
                }
            },
            |keyspaces, dropped| {
                if dropped.is_some() {
                    keyspaces.remove(name);
                }
            },
        )?;
        if dropped.is_none() {
            return Ok(false);
        }
        self.inner.reclaim_dropped()?;
        Ok(true)
    }

    /// The first entry of the default keyspace (smallest key).
    pub fn first(&self) -> Result<Option<Entry>> {
        self.iter().next().transpose()
    }

    /// The last entry of the default keyspace (largest key).
    pub fn last(&self) -> Result<Option<Entry>> {
        self.iter().next_back().transpose()
    }

    /// The entries of the default keyspace whose keys start with `prefix`, ascending (or
    /// descending from the back).
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Iter<'_> {
        let (low, high) = prefix_bounds(prefix.as_ref());
        Iter::new(self, &KeyspaceInfo::default_keyspace(), low, high)
    }

    /// The number of entries in the default keyspace: exact, and read from the catalog (not
    /// counted), so it costs a lookup.
    pub fn len(&self) -> Result<u64> {
        self.default_keyspace().len()
    }

    /// Whether the default keyspace is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl<'db> Keyspace<'db> {
    /// Its name (empty for the default keyspace).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.info.name
    }

    pub(super) fn from_info(db: &'db Db, info: Arc<KeyspaceInfo>) -> Keyspace<'db> {
        Keyspace { db, info }
    }

    pub(super) fn info(&self) -> &Arc<KeyspaceInfo> {
        &self.info
    }

    pub(super) fn db_identity(&self) -> u64 {
        self.db.inner.identity()
    }

    fn dropped(&self) -> Error {
        Error::KeyspaceDropped { name: self.info.name.clone() }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let key = key.as_ref();
        check_key(key)?;
        let tree = self.db.inner.tree.read();
        let Some(root) = tree.keyspaces.root_of(&self.info) else { return Err(self.dropped()) };
        btree::get(&Latest(&tree.pager), root, key, self.db.inner.page_size)
    }

    /// Inserts or replaces `key` (atomic and, under `Immediate`, durable when it returns).
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.insert_in(self, key, value);
        self.db.write(batch)
    }

    /// Removes `key`; whether it was present.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let mut batch = WriteBatch::new();
        batch.remove_in(self, key);
        self.db.inner.write(&batch, Durable::AsOptioned)
    }

    /// The entries with keys in `range`, ascending (or descending from the back), at the
    /// snapshot of this call (see [`Iter`]).
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter<'db> {
        let (low, high) = own_bounds(&range);
        Iter::new(self.db, &self.info, low, high)
    }

    /// Every entry, ascending.
    pub fn iter(&self) -> Iter<'db> {
        self.range::<&[u8], _>(..)
    }

    /// The entries whose keys start with `prefix`.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Iter<'db> {
        let (low, high) = prefix_bounds(prefix.as_ref());
        Iter::new(self.db, &self.info, low, high)
    }

    /// The first entry (smallest key).
    pub fn first(&self) -> Result<Option<Entry>> {
        self.iter().next().transpose()
    }

    /// The last entry (largest key).
    pub fn last(&self) -> Result<Option<Entry>> {
        self.iter().next_back().transpose()
    }

    /// The number of entries: exact, kept in the catalog by every batch, so it costs one lookup.
    pub fn len(&self) -> Result<u64> {
        let tree = self.db.inner.tree.read();
        if !tree.keyspaces.is_live(&self.info) {
            return Err(self.dropped());
        }
        let source = Latest(&tree.pager);
        let catalog_root = btree::read_meta(&source)?.catalog_root;
        catalog::entry_count(&source, catalog_root, &self.info, self.db.inner.page_size)
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl Inner {
    /// Frees the pages of every dropped keyspace, in bounded batches that are not synced (a
    /// freeing lost in a crash is done again at the next open). A keyspace whose freeing fails
    /// (a damaged page) does not hold the others up: each is tried, and the first error is
    /// returned; its entry stays for a later try.
    pub(super) fn reclaim_dropped(&self) -> Result<()> {
        let pending: Vec<u64> = self.tree.read().keyspaces.dropped.iter().map(|&(id, _)| id).collect();
        let mut first_error = None;
        for id in pending {
            if let Err(error) = self.free_dropped_keyspace(id) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Frees dropped keyspace `id` to the end. Which root it has is read in each batch, under
    /// the writer lock, from the table that batch sees: another thread may have freed it (and
    /// its root page been reused) since this one looked.
    fn free_dropped_keyspace(&self, id: u64) -> Result<()> {
        loop {
            let gone = self.run_batch(
                catalog::FREE_PAGES_PER_BATCH * 64,
                Durable::No,
                |writer, keyspaces| match keyspaces.dropped.iter().find(|&&(dropped, _)| dropped == id) {
                    // Freed by another thread meanwhile: nothing to do (an empty batch).
                    None => Ok(true),
                    Some(&(_, root)) => catalog::free_dropped(writer, id, root),
                },
                |keyspaces, gone| {
                    if *gone {
                        keyspaces.dropped.retain(|&(dropped, _)| dropped != id);
                    }
                },
            )?;
            if gone {
                return Ok(());
            }
        }
    }
}
