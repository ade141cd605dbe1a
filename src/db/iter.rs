//! Range reads: `Db::range` and `Db::iter`, the [`Iter`] they return, and the registry of open
//! snapshots, which keeps the page images an iterator (or `Db::check`) reads.
//!
//! This module owns how a scan steps, from both ends, through chunks of leaves and large values
//! at its snapshot; it must not know the leaf layout (the `btree` chunk and overflow readers do)
//! and never writes.

use std::ops::{Bound, RangeBounds};

use bytes::Bytes;

use crate::btree::{self, AtVersion, ChunkEntry, ChunkValue, LeafChunk};
use crate::catalog::KeyspaceInfo;
use crate::error::{Error, Result};
use crate::page;

use super::{Db, Inner};

impl Db {
    /// The entries of the default keyspace with keys in `range`, ascending (or descending from
    /// the back), as of the moment of this call. A range whose start lies after its end is empty.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter<'_> {
        let (low, high) = own_bounds(&range);
        Iter::new(self, &KeyspaceInfo::default_keyspace(), low, high)
    }

    /// Every entry of the default keyspace, ascending.
    pub fn iter(&self) -> Iter<'_> {
        Iter::new(self, &KeyspaceInfo::default_keyspace(), Bound::Unbounded, Bound::Unbounded)
    }
}

/// `range`'s bounds, owned.
pub(super) fn own_bounds<K: AsRef<[u8]>, R: RangeBounds<K>>(range: &R) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let own = |bound: Bound<&K>| match bound {
        Bound::Included(key) => Bound::Included(key.as_ref().to_vec()),
        Bound::Excluded(key) => Bound::Excluded(key.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (own(range.start_bound()), own(range.end_bound()))
}

/// The bounds of the keys that start with `prefix`: from it, to the first key past every
/// extension of it (unbounded when it is all `0xff`).
pub(super) fn prefix_bounds(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (Bound::Included(prefix.to_vec()), Bound::Excluded(end));
        }
    }
    (Bound::Included(prefix.to_vec()), Bound::Unbounded)
}

impl Inner {
    /// Registers a snapshot of the committed version; returns it, with the log's end at it (in
    /// the same hold of the tree's lock: batches append under its write lock, so that end is
    /// where the version's last batch ends, and no page of the version has a later LSN).
    pub(super) fn register_snapshot(&self) -> (u64, mtr::Lsn) {
        let tree = self.tree.read();
        let version = tree.version;
        *self.snapshots.lock().entry(version).or_insert(0) += 1;
        (version, self.log.end_lsn())
    }

    /// Registers a snapshot for reading `keyspace`, if it is live at this version; returns the
    /// version and the keyspace's root at it.
    fn register_snapshot_of(&self, keyspace: &KeyspaceInfo) -> Result<(u64, page::PageId)> {
        let tree = self.tree.read();
        let Some(root) = tree.keyspaces.root_of(keyspace) else {
            return Err(Error::KeyspaceDropped { name: keyspace.name.clone() });
        };
        let version = tree.version;
        *self.snapshots.lock().entry(version).or_insert(0) += 1;
        Ok((version, root))
    }

    /// Registers a snapshot as [`Inner::register_snapshot`] does, released when the guard drops.
    pub(super) fn hold_snapshot(&self) -> (SnapshotHold<'_>, mtr::Lsn) {
        let (version, lsn) = self.register_snapshot();
        (SnapshotHold { inner: self, version }, lsn)
    }

    pub(super) fn release_snapshot(&self, version: u64) {
        let mut snapshots = self.snapshots.lock();
        if let Some(count) = snapshots.get_mut(&version) {
            *count -= 1;
            if *count == 0 {
                snapshots.remove(&version);
            }
        }
    }
}

/// A registered snapshot, released when dropped (`Inner::hold_snapshot`).
pub(super) struct SnapshotHold<'a> {
    inner: &'a Inner,
    pub version: u64,
}

impl Drop for SnapshotHold<'_> {
    fn drop(&mut self) {
        self.inner.release_snapshot(self.version);
    }
}

/// An iterator over a range of entries, at the snapshot taken when it was created. Yields
/// `Result<(key, value)>`; after an error it ends.
///
/// **Items.** Keys and values are [`Bytes`]: they deref to `[u8]`, compare with byte slices and
/// vectors, and clone without copying. A fill copies one leaf page, once, and hands out slices of
/// that copy, so a scan allocates and copies once per leaf rather than twice per entry. An item
/// keeps its leaf's copy alive (one page, [`Db::page_size`] bytes; a large value is its own
/// buffer); to keep one entry while dropping the rest, copy it (`value.to_vec()`).
///
/// **Bounds.** It takes the tree's read lock only to copy one leaf page (and to descend to it, or
/// follow the previous leaf's right link at its snapshot) or up to 64 pages of one large value, so
/// a scan never holds writers off for long. Large (overflow) values are read when yielded, never
/// buffered ahead: it holds at most one leaf copy per end plus the value it yields. While it is
/// unfinished, its snapshot retains at most one page image per page changed since it began; once
/// it has returned `None`, it retains nothing.
pub struct Iter<'a> {
    db: &'a Db,
    /// The root of the keyspace's tree.
    root: page::PageId,
    version: Option<u64>,
    /// Yielded first, then the iteration ends (a keyspace dropped before the iterator began).
    pending_error: Option<Error>,
    low: Bound<Vec<u8>>,
    high: Bound<Vec<u8>>,
    front: Buffered,
    front_exhausted: bool,
    /// Where the next forward fill starts, when the last one ended at the end of its leaf.
    front_leaf: Option<page::PageId>,
    back: Buffered,
    back_exhausted: bool,
    finished: bool,
}

/// The entries one end has read but not yet yielded: the copy of their leaf, and where each
/// lies in it (sliced out only when yielded, so entries never yielded cost nothing).
#[derive(Default)]
struct Buffered {
    leaf: Bytes,
    entries: std::vec::IntoIter<ChunkEntry>,
}

/// A buffered value: a slice of its leaf's copy, or an overflow chain read when yielded.
enum ItemValue {
    Inline(Bytes),
    Overflow { len: u32, first_page: page::PageId },
}

impl Buffered {
    fn new(chunk: LeafChunk) -> Buffered {
        Buffered { leaf: Bytes::from(chunk.leaf), entries: chunk.entries.into_iter() }
    }

    fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    fn pop(&mut self) -> Option<(Bytes, ItemValue)> {
        let entry = self.entries.next()?;
        let value = match entry.value {
            ChunkValue::Inline(range) => ItemValue::Inline(self.leaf.slice(range)),
            ChunkValue::Overflow { len, first_page } => ItemValue::Overflow { len, first_page },
        };
        Some((self.leaf.slice(entry.key), value))
    }
}

/// Overflow pages an iterator reads per hold of the tree's read lock.
const OVERFLOW_PAGES_PER_LOCK: usize = 64;

pub(super) fn range_is_empty(low: &Bound<Vec<u8>>, high: &Bound<Vec<u8>>) -> bool {
    match (low, high) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l), Bound::Excluded(h))
        | (Bound::Excluded(l), Bound::Included(h))
        | (Bound::Excluded(l), Bound::Excluded(h)) => l >= h,
        _ => false,
    }
}

impl<'a> Iter<'a> {
    pub(super) fn new(db: &'a Db, keyspace: &KeyspaceInfo, low: Bound<Vec<u8>>, high: Bound<Vec<u8>>) -> Iter<'a> {
        let empty = range_is_empty(&low, &high);
        let (version, root, pending_error) = match db.inner.register_snapshot_of(keyspace) {
            Ok((version, _)) if empty => {
                db.inner.release_snapshot(version);
                (None, keyspace.root, None)
            }
            Ok((version, root)) => (Some(version), root, None),
            Err(error) => (None, keyspace.root, Some(error)),
        };
        Iter {
            db,
            root,
            version,
            pending_error,
            low,
            high,
            front: Buffered::default(),
            front_exhausted: false,
            front_leaf: None,
            back: Buffered::default(),
            back_exhausted: false,
            finished: empty,
        }
    }

    fn fill(&mut self, forward: bool) -> Result<()> {
        let Some(version) = self.version else { return Ok(()) };
        let tree = self.db.inner.tree.read();
        let source = AtVersion(&tree.pager, version);
        if forward {
            let chunk = btree::chunk_forward(&source, self.root, &self.low, &self.high, self.front_leaf)?;
            self.front_exhausted = chunk.exhausted;
            self.front_leaf = chunk.next_leaf;
            self.front = Buffered::new(chunk);
        } else {
            let chunk = btree::chunk_backward(&source, self.root, &self.low, &self.high)?;
            self.back_exhausted = chunk.exhausted;
            self.back = Buffered::new(chunk);
        }
        Ok(())
    }

    /// Ends the iteration and releases the snapshot at once: a finished iterator kept alive
    /// pins nothing.
    fn finish(&mut self) {
        self.finished = true;
        self.front = Buffered::default();
        self.back = Buffered::default();
        if let Some(version) = self.version.take() {
            self.db.inner.release_snapshot(version);
        }
    }

    fn step(&mut self, forward: bool) -> Option<Result<(Bytes, Bytes)>> {
        if let Some(error) = self.pending_error.take() {
            self.finish();
            return Some(Err(error));
        }
        if self.finished {
            return None;
        }
        let (buffer_empty, exhausted) = if forward {
            (self.front.is_empty(), self.front_exhausted)
        } else {
            (self.back.is_empty(), self.back_exhausted)
        };
        if buffer_empty && !exhausted {
            if let Err(error) = self.fill(forward) {
                self.finish();
                return Some(Err(error));
            }
        }
        let next = if forward { self.front.pop() } else { self.back.pop() };
        let Some((key, value)) = next else {
            self.finish();
            return None;
        };
        // The other end may have moved past this entry already.
        if !btree_within(&key, &self.low, &self.high) {
            self.finish();
            return None;
        }
        let value = match value {
            ItemValue::Inline(value) => value,
            ItemValue::Overflow { len, first_page } => match self.read_overflow(len, first_page) {
                Ok(value) => Bytes::from(value),
                Err(error) => {
                    self.finish();
                    return Some(Err(error));
                }
            },
        };
        let bound = if forward { &mut self.low } else { &mut self.high };
        set_excluded(bound, &key);
        Some(Ok((key, value)))
    }

    /// Reads an overflow value at the iterator's snapshot, taking the tree's read lock for
    /// [`OVERFLOW_PAGES_PER_LOCK`] pages at a time, so that a 64 MiB value never holds writers
    /// off for its whole length. The snapshot keeps the chain's pages as they were (a page
    /// freed or reused since keeps its old image for it).
    fn read_overflow(&self, len: u32, first_page: page::PageId) -> Result<Vec<u8>> {
        let Some(version) = self.version else { return Err(Error::corrupt(first_page, "no snapshot")) };
        let mut out = btree::overflow_buffer(len, first_page)?;
        let max_pages = (len as usize).div_ceil(page::overflow_capacity(self.db.inner.page_size));
        let mut next = first_page;
        let mut pages = 0;
        while next != 0 && pages < max_pages {
            let tree = self.db.inner.tree.read();
            let source = AtVersion(&tree.pager, version);
            for _ in 0..OVERFLOW_PAGES_PER_LOCK {
                if next == 0 || pages >= max_pages {
                    break;
                }
                next = btree::append_overflow_page(&source, next, &mut out)?;
                pages += 1;
            }
        }
        btree::check_overflow_read(&out, len, first_page, next)?;
        Ok(out)
    }
}

/// Makes `bound` exclude `key`, reusing the bound's allocation (one per iterator, not per step).
fn set_excluded(bound: &mut Bound<Vec<u8>>, key: &[u8]) {
    let mut owned = match std::mem::replace(bound, Bound::Unbounded) {
        Bound::Excluded(owned) | Bound::Included(owned) => owned,
        Bound::Unbounded => Vec::new(),
    };
    owned.clear();
    owned.extend_from_slice(key);
    *bound = Bound::Excluded(owned);
}

fn btree_within(key: &[u8], low: &Bound<Vec<u8>>, high: &Bound<Vec<u8>>) -> bool {
    let above = match low {
        Bound::Unbounded => true,
        Bound::Included(l) => key >= l.as_slice(),
        Bound::Excluded(l) => key > l.as_slice(),
    };
    let below = match high {
        Bound::Unbounded => true,
        Bound::Included(h) => key <= h.as_slice(),
        Bound::Excluded(h) => key < h.as_slice(),
    };
    above && below
}

impl Iterator for Iter<'_> {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl Drop for Iter<'_> {
    fn drop(&mut self) {
        if let Some(version) = self.version.take() {
            self.db.inner.release_snapshot(version);
        }
    }
}
