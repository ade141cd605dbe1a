//! Transactions: `Db::transaction` and the [`Transaction`] its closure gets, reading its own
//! writes, committed as one batch.
//!
//! # Concurrency model
//! One writer at a time, as in LMDB and redb: a transaction holds the database's writer lock from
//! its start to its commit, so batches, keyspace changes and other transactions wait for it, and
//! whatever it read stays true until it commits: transactions are serializable. Readers
//! (`get`, iterators, `len`) never wait for it: its writes are buffered in the transaction and
//! reach the tree only at the commit, which is one batch (readers wait at most for that batch's
//! page operations, as for any batch). Checkpoints go on while it runs.
//!
//! This module owns the transaction's buffer and its reads through it; it must not change a page
//! (the commit is an ordinary batch, `batch::apply_ops`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use bytes::Bytes;

use crate::btree::{self, Latest};
use crate::catalog::KeyspaceInfo;
use crate::error::{Error, Result};

use super::batch::{check_key, check_value, Durable, WriteBatch};
use super::iter::own_bounds;
use super::keyspace::Keyspace;
use super::{Db, Inner, Iter};

thread_local! {
    /// The databases whose writer lock this thread holds for a transaction: a write through
    /// them on this thread would wait for itself.
    static IN_TRANSACTION: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Marks this thread as inside a transaction of one database, until dropped (also when the
/// closure panics).
struct TransactionMark(u64);

impl TransactionMark {
    fn enter(identity: u64) -> Result<TransactionMark> {
        IN_TRANSACTION.with(|open| {
            let mut open = open.borrow_mut();
            if open.contains(&identity) {
                return Err(Error::InsideTransaction);
            }
            open.push(identity);
            Ok(TransactionMark(identity))
        })
    }
}

impl Drop for TransactionMark {
    fn drop(&mut self) {
        IN_TRANSACTION.with(|open| open.borrow_mut().retain(|&identity| identity != self.0));
    }
}

impl Inner {
    /// Refuses a write from the thread that holds this database's writer lock for a transaction.
    pub(super) fn refuse_inside_transaction(&self) -> Result<()> {
        let identity = self.identity();
        if IN_TRANSACTION.with(|open| open.borrow().contains(&identity)) {
            return Err(Error::InsideTransaction);
        }
        Ok(())
    }
}

/// A write buffered in a transaction: the value, or `None` for a remove.
type Buffered = Option<Vec<u8>>;

/// The transaction a [`Db::transaction`] closure runs in: reads see its own writes, and its
/// writes are applied together when the closure returns `Ok`.
pub struct Transaction<'db> {
    db: &'db Db,
    /// Its writes, by keyspace id and key (the last write of a key wins).
    writes: BTreeMap<(u64, Vec<u8>), Buffered>,
    /// The keyspaces it wrote to, by id.
    keyspaces: BTreeMap<u64, Arc<KeyspaceInfo>>,
}

impl Db {
    /// Runs `f` in a transaction and commits what it wrote, atomically: all of it or nothing,
    /// also across a crash, and durable when this returns under
    /// [`Durability::Immediate`](crate::Durability::Immediate). If `f` returns `Err`, or panics, nothing of it is applied and the
    /// database stays usable (a panic goes on unwinding).
    ///
    /// Transactions are serializable: one runs at a time, holding the writer lock from its
    /// start to its commit (see the module doc), so a long transaction holds every other writer
    /// off for as long as it runs, but never a reader.
    ///
    /// **Bounds.** Its writes are held in memory until the commit (keys and values, as in a
    /// [`WriteBatch`]), and the commit must fit in the redo log like any batch
    /// ([`Error::BatchTooLarge`] otherwise, with nothing applied).
    ///
    /// **Errors.** Calling `transaction`, or any write of this database (`insert`, `write`,
    /// creating or dropping a keyspace), inside `f` on the same thread fails with
    /// [`Error::InsideTransaction`] instead of waiting for itself; write through the
    /// [`Transaction`] instead.
    pub fn transaction<T, E>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<Error>,
    {
        let inner = &*self.inner;
        let mark = TransactionMark::enter(inner.identity())?;
        inner.check_writable()?;
        let mut mtr = inner.writer.lock();
        let mut transaction = Transaction { db: self, writes: BTreeMap::new(), keyspaces: BTreeMap::new() };
        let value = f(&mut transaction)?;
        let batch = transaction.into_batch();
        let Some(estimate) = inner.prepare(&batch)? else { return Ok(value) };
        let (commit, _) = inner.run_batch_locked(
            &mut mtr,
            estimate,
            |writer, keyspaces| super::batch::apply_ops(writer, keyspaces, &batch),
            |_, _| {},
        )?;
        drop(mtr);
        drop(mark);
        inner.finish_commit(commit, Durable::AsOptioned)?;
        Ok(value)
    }
}

impl<'db> Transaction<'db> {
    /// Checks that `keyspace` is this database's and still live; its id.
    fn keyspace_id(&self, keyspace: &Keyspace<'_>) -> Result<u64> {
        if keyspace.db_identity() != self.db.inner.identity() {
            return Err(Error::ForeignKeyspace { name: keyspace.name().to_string() });
        }
        // Keyspaces are created and dropped under the writer lock, which this transaction
        // holds: what is live now stays live until it commits.
        if !self.db.inner.tree.read().keyspaces.is_live(keyspace.info()) {
            return Err(Error::KeyspaceDropped { name: keyspace.name().to_string() });
        }
        Ok(keyspace.info().id)
    }

    /// The value of `key` in `keyspace`, as this transaction has left it.
    pub fn get(&self, keyspace: &Keyspace<'_>, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let key = key.as_ref();
        check_key(key)?;
        let id = self.keyspace_id(keyspace)?;
        if let Some(buffered) = self.writes.get(&(id, key.to_vec())) {
            return Ok(buffered.clone());
        }
        let tree = self.db.inner.tree.read();
        let Some(root) = tree.keyspaces.root_of(keyspace.info()) else {
            return Err(Error::KeyspaceDropped { name: keyspace.name().to_string() });
        };
        btree::get(&Latest(&tree.pager), root, key, self.db.inner.page_size)
    }

    /// Inserts or replaces `key` in `keyspace` (applied when the transaction commits).
    pub fn insert(&mut self, keyspace: &Keyspace<'_>, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let (key, value) = (key.as_ref(), value.as_ref());
        check_key(key)?;
        check_value(value)?;
        let id = self.keyspace_id(keyspace)?;
        self.keyspaces.entry(id).or_insert_with(|| Arc::clone(keyspace.info()));
        self.writes.insert((id, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    /// Removes `key` from `keyspace` (applied when the transaction commits); whether it was
    /// present, as this transaction saw it.
    pub fn remove(&mut self, keyspace: &Keyspace<'_>, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        let present = self.get(keyspace, key)?.is_some();
        let id = keyspace.info().id;
        self.keyspaces.entry(id).or_insert_with(|| Arc::clone(keyspace.info()));
        self.writes.insert((id, key.to_vec()), None);
        Ok(present)
    }

    /// The entries of `keyspace` with keys in `range`, ascending, as this transaction has left
    /// them: the database's entries with the transaction's writes laid over them.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, keyspace: &Keyspace<'db>, range: R) -> TransactionRange<'_> {
        let (low, high) = own_bounds(&range);
        let id = match self.keyspace_id(keyspace) {
            Ok(id) => id,
            Err(error) => {
                return TransactionRange { tree: None, buffered: Vec::new().into_iter().peekable(), error: Some(error) }
            }
        };
        let start = match &low {
            Bound::Included(key) => Bound::Included((id, key.clone())),
            Bound::Excluded(key) => Bound::Excluded((id, key.clone())),
            Bound::Unbounded => Bound::Included((id, Vec::new())),
        };
        let end = match &high {
            Bound::Included(key) => Bound::Included((id, key.clone())),
            Bound::Excluded(key) => Bound::Excluded((id, key.clone())),
            Bound::Unbounded => match id.checked_add(1) {
                Some(next) => Bound::Excluded((next, Vec::new())),
                None => Bound::Unbounded,
            },
        };
        let buffered: Vec<(Vec<u8>, Buffered)> = if super::iter::range_is_empty(&low, &high) {
            Vec::new()
        } else {
            self.writes.range((start, end)).map(|((_, key), value)| (key.clone(), value.clone())).collect()
        };
        TransactionRange {
            tree: Some(Iter::new(self.db, keyspace.info(), low, high).peekable()),
            buffered: buffered.into_iter().peekable(),
            error: None,
        }
    }

    fn into_batch(self) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for ((id, key), value) in self.writes {
            let Some(info) = self.keyspaces.get(&id) else { continue };
            let keyspace = Keyspace::from_info(self.db, Arc::clone(info));
            match value {
                Some(value) => batch.insert_in(&keyspace, key, value),
                None => batch.remove_in(&keyspace, key),
            };
        }
        batch
    }
}

/// The entries [`Transaction::range`] yields: `Result<(key, value)>`, ascending; after an error
/// it ends. It reads the tree through an [`Iter`] (one leaf at a time) and holds a copy of the
/// transaction's writes within the range.
pub struct TransactionRange<'t> {
    /// `None` when the range was refused (`error`): nothing follows the error.
    tree: Option<Peekable<Iter<'t>>>,
    buffered: Peekable<std::vec::IntoIter<(Vec<u8>, Buffered)>>,
    error: Option<Error>,
}

impl Iterator for TransactionRange<'_> {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
        let tree = self.tree.as_mut()?;
        loop {
            let order = match (tree.peek(), self.buffered.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => {
                    self.buffered = Vec::new().into_iter().peekable();
                    return tree.next();
                }
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (Some(Ok((tree_key, _))), Some((buffered_key, _))) => buffered_key[..].cmp(&tree_key[..]),
            };
            if order == std::cmp::Ordering::Equal {
                // The transaction's write replaces the tree's entry.
                tree.next();
            }
            let take_buffered = order != std::cmp::Ordering::Greater;
            if !take_buffered {
                return tree.next();
            }
            let (key, value) = self.buffered.next()?;
            if let Some(value) = value {
                return Some(Ok((Bytes::from(key), Bytes::from(value))));
            }
            // A remove: the tree's entry (skipped above) is gone.
        }
    }
}
