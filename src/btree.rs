//! The B+tree: search, insert, delete, split, merge and overflow chains, built as mtrs.
//!
//! Readers descend through a `PageSource` (the newest committed state, or a snapshot).
//! Writers use a `BatchWriter`, which owns the open mtr: every page change is a [`Change`]
//! encoded into the mtr and applied by [`redo::apply`], and the page is handed out mutably only
//! inside `BatchWriter::change`. Code in this module therefore cannot change a page without
//! logging it.
//!
//! # How operations map onto mtrs
//! - An insert or replace that fits its leaf: one mtr with one `CELL_PUT`.
//! - A leaf split, with every branch split it causes up to and including a root split (the tree
//!   grows a level): one mtr. It logs the moved cells in `NODE_FORMAT` of the new page,
//!   `TRUNCATE_FROM` and `SET_LINK` on the old one, `CELL_PUT` on the parent, and the allocation
//!   (`META_SET`, coalesced to one per mtr).
//! - A delete, with the merges it causes (leaf into sibling, then branches upward) and a root
//!   collapse (the tree loses a level): one mtr.
//! - A large value: its overflow chain is written in mtrs of at most [`OVERFLOW_MTR_BYTES`], before
//!   the mtr that puts the cell pointing to it; a replaced or removed chain is freed in mtrs after.
//! - A user batch is the sequence of mtrs of its operations; the last carries
//!   [`redo::MTR_COMMIT`]. Recovery applies a batch only once it has seen that commit.

use std::ops::Bound;

use mtr::{Log, Lsn, MtrBuf};

use crate::error::{Error, Result};
use crate::page::{self, LeafValue, MetaState, Node, PageId, PageKind, SLOT_BYTES};
use crate::pager::{PageRef, Pager, SnapshotWindow, UndoImages};
use crate::redo::{self, Change};
use crate::replay::ReplayJournal;

/// Body bytes after which a chain of overflow pages continues in a new mtr.
pub const OVERFLOW_MTR_BYTES: usize = 256 * 1024;
/// Pages after which freeing an overflow chain continues in a new mtr: bounds the pages one mtr
/// touches (and so what recovery holds for one mtr, and the writer's per-mtr bookkeeping) even
/// for a 64 MiB chain, whose free records are a few bytes each.
pub const MTR_MAX_PAGES: usize = 256;
/// Log space kept free so that an abandoned batch can always log its abort.
pub const ABORT_RESERVE_BYTES: u64 = 4096;

/// Somewhere to read pages from.
pub(crate) trait PageSource {
    fn page(&self, page_id: PageId) -> Result<PageRef<'_>>;
}

/// The newest committed state (the caller holds the tree's read or write lock).
pub(crate) struct Latest<'a>(pub &'a Pager);

impl PageSource for Latest<'_> {
    fn page(&self, page_id: PageId) -> Result<PageRef<'_>> {
        self.0.read(page_id)
    }
}

/// The state as of a snapshot version.
pub(crate) struct AtVersion<'a>(pub &'a Pager, pub u64);

impl PageSource for AtVersion<'_> {
    fn page(&self, page_id: PageId) -> Result<PageRef<'_>> {
        self.0.read_at(page_id, self.1)
    }
}

pub(crate) fn read_meta(source: &impl PageSource) -> Result<MetaState> {
    let page = source.page(page::META_PAGE_ID)?;
    if page::header(&page).kind != PageKind::Meta as u8 {
        return Err(Error::corrupt(page::META_PAGE_ID, "page 0 is not the meta page"));
    }
    Ok(page::meta_state(&page))
}

/// A node page, checked to be at the expected level.
fn node_at<'p>(page: &'p [u8], page_id: PageId, level: u32) -> Result<Node<'p>> {
    let node = Node::new(page).ok_or_else(|| Error::corrupt(page_id, "expected a tree node"))?;
    if u32::from(node.header().level) != level {
        return Err(Error::corrupt(page_id, format!("node at level {}, expected level {level}", node.header().level)));
    }
    Ok(node)
}

/// A buffer for an overflow value of `len` bytes, refusing lengths no value can have (the
/// length comes from the page, so it is not trusted with an allocation).
pub(crate) fn overflow_buffer(len: u32, first_page: PageId) -> Result<Vec<u8>> {
    if len as usize > crate::db::MAX_VALUE_BYTES {
        return Err(Error::corrupt(first_page, format!("an overflow value claims {len} bytes")));
    }
    Ok(Vec::with_capacity(len as usize))
}

/// Appends the data of overflow page `page_id` to `out`; returns the next page of the chain.
pub(crate) fn append_overflow_page(source: &impl PageSource, page_id: PageId, out: &mut Vec<u8>) -> Result<PageId> {
    let page = source.page(page_id)?;
    let header = page::header(&page);
    if header.kind != PageKind::Overflow as u8 {
        return Err(Error::corrupt(page_id, "expected an overflow page"));
    }
    let data_len = header.content_start.get() as usize;
    let data = page
        .get(page::HEADER_BYTES..page::HEADER_BYTES + data_len)
        .ok_or_else(|| Error::corrupt(page_id, "overflow data out of bounds"))?;
    if out.len() + data.len() > out.capacity() {
        return Err(Error::corrupt(page_id, "the overflow chain holds more than its cell says"));
    }
    out.extend_from_slice(data);
    Ok(header.link.get())
}

/// Checks a finished overflow read: the chain ended exactly at the claimed length.
pub(crate) fn check_overflow_read(out: &[u8], len: u32, first_page: PageId, next: PageId) -> Result<()> {
    if out.len() != len as usize || next != 0 {
        return Err(Error::corrupt(
            first_page,
            format!("overflow chain holds {} bytes, the cell says {len}", out.len()),
        ));
    }
    Ok(())
}

/// Reads a whole value, following its overflow chain if it has one.
pub(crate) fn read_value(source: &impl PageSource, value: LeafValue<'_>, page_size: usize) -> Result<Vec<u8>> {
    match value {
        LeafValue::Inline(bytes) => Ok(bytes.to_vec()),
        LeafValue::Overflow { len, first_page } => {
            let mut out = overflow_buffer(len, first_page)?;
            let mut next = first_page;
            for _ in 0..(len as usize).div_ceil(page::overflow_capacity(page_size)) {
                if next == 0 {
                    break;
                }
                next = append_overflow_page(source, next, &mut out)?;
            }
            check_overflow_read(&out, len, first_page, next)?;
            Ok(out)
        }
    }
}

/// Bytes of values one iterator fill copies out at most (beyond its first entry). Overflow
/// values are not copied in a fill: the iterator reads each when it yields it.
pub const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// A value as an iterator fill copies it: inline bytes, or where its overflow chain starts.
pub(crate) enum ChunkValue {
    Loaded(Vec<u8>),
    Overflow { len: u32, first_page: PageId },
}

fn chunk_value(value: LeafValue<'_>) -> (ChunkValue, usize) {
    match value {
        LeafValue::Inline(bytes) => (ChunkValue::Loaded(bytes.to_vec()), bytes.len()),
        LeafValue::Overflow { len, first_page } => (ChunkValue::Overflow { len, first_page }, 0),
    }
}

/// Point lookup.
pub(crate) fn get(source: &impl PageSource, key: &[u8], page_size: usize) -> Result<Option<Vec<u8>>> {
    let meta = read_meta(source)?;
    let mut page_id = meta.root;
    for level in (0..meta.height).rev() {
        let page = source.page(page_id)?;
        let node = node_at(&page, page_id, level)?;
        if level == 0 {
            return match node.search(key) {
                Ok(index) => read_value(source, node.leaf_value(index), page_size).map(Some),
                Err(_) => Ok(None),
            };
        }
        page_id = node.child(node.child_index_for(key));
    }
    Err(Error::corrupt(meta.root, "tree of height 0"))
}

/// The entries of one leaf that lie within `(low, high)`, read for an iterator: collected
/// `forward` from the first key after `low`, or backward from the last key before `high`.
pub(crate) struct LeafChunk {
    /// Keys and values, in iteration order.
    pub entries: Vec<(Vec<u8>, ChunkValue)>,
    /// Whether the range has no entries beyond this chunk (in its direction).
    pub exhausted: bool,
}

fn within_low(key: &[u8], low: &Bound<Vec<u8>>) -> bool {
    match low {
        Bound::Unbounded => true,
        Bound::Included(bound) => key >= bound.as_slice(),
        Bound::Excluded(bound) => key > bound.as_slice(),
    }
}

fn within_high(key: &[u8], high: &Bound<Vec<u8>>) -> bool {
    match high {
        Bound::Unbounded => true,
        Bound::Included(bound) => key <= bound.as_slice(),
        Bound::Excluded(bound) => key < bound.as_slice(),
    }
}

/// The next entries after `low` (and within `high`): at most `limit`, from one leaf.
pub(crate) fn chunk_forward(
    source: &impl PageSource,
    low: &Bound<Vec<u8>>,
    high: &Bound<Vec<u8>>,
    limit: usize,
) -> Result<LeafChunk> {
    let meta = read_meta(source)?;
    let mut page_id = meta.root;
    for level in (1..meta.height).rev() {
        let page = source.page(page_id)?;
        let node = node_at(&page, page_id, level)?;
        page_id = match low {
            Bound::Unbounded => node.child(0),
            Bound::Included(key) | Bound::Excluded(key) => node.child(node.child_index_for(key)),
        };
    }
    // Follow right links past leaves with nothing in range (at most the whole level).
    let mut hops = 0u64;
    loop {
        let page = source.page(page_id)?;
        let node = node_at(&page, page_id, 0)?;
        let mut entries = Vec::new();
        let mut exhausted = false;
        let first = match low {
            Bound::Unbounded => 0,
            Bound::Included(key) => node.search(key).unwrap_or_else(|index| index),
            Bound::Excluded(key) => node.search(key).map_or_else(|index| index, |index| index + 1),
        };
        let mut index = first;
        let mut bytes = 0;
        while index < node.len() && entries.len() < limit && bytes < SCAN_CHUNK_BYTES {
            let key = node.key(index);
            if !within_high(key, high) {
                exhausted = true;
                break;
            }
            let (value, value_bytes) = chunk_value(node.leaf_value(index));
            bytes += key.len() + value_bytes;
            entries.push((key.to_vec(), value));
            index += 1;
        }
        let next = node.link();
        if next == 0 && index == node.len() {
            exhausted = true;
        }
        if !entries.is_empty() || exhausted {
            return Ok(LeafChunk { entries, exhausted });
        }
        page_id = next;
        hops += 1;
        if hops > u64::from(meta.page_count) {
            return Err(Error::corrupt(page_id, "leaf chain loops"));
        }
    }
}

/// The previous entries before `high` (and within `low`), last key first: at most `limit`, from
/// one leaf.
pub(crate) fn chunk_backward(
    source: &impl PageSource,
    low: &Bound<Vec<u8>>,
    high: &Bound<Vec<u8>>,
    limit: usize,
) -> Result<LeafChunk> {
    let meta = read_meta(source)?;
    let mut high = high.clone();
    // Each round descends to the leaf that would hold the largest key within `high`; if that leaf
    // has none, everything in it is at or above its lower fence, so search again below the fence.
    for _ in 0..=meta.page_count {
        let mut page_id = meta.root;
        let mut fence: Option<Vec<u8>> = None;
        for level in (1..meta.height).rev() {
            let page = source.page(page_id)?;
            let node = node_at(&page, page_id, level)?;
            let index = match &high {
                Bound::Unbounded => node.len(),
                Bound::Included(key) => node.child_index_for(key),
                // The child holding keys just below `key`: separators strictly below it.
                Bound::Excluded(key) => match node.search(key) {
                    Ok(index) | Err(index) => index,
                },
            };
            if index > 0 {
                fence = Some(node.key(index - 1).to_vec());
            }
            page_id = node.child(index);
        }
        let page = source.page(page_id)?;
        let node = node_at(&page, page_id, 0)?;
        let mut entries = Vec::new();
        let mut exhausted = false;
        // One past the last index within `high`.
        let end = match &high {
            Bound::Unbounded => node.len(),
            Bound::Included(key) => node.search(key).map_or_else(|index| index, |index| index + 1),
            Bound::Excluded(key) => node.search(key).unwrap_or_else(|index| index),
        };
        let mut index = end;
        let mut bytes = 0;
        while index > 0 && entries.len() < limit && bytes < SCAN_CHUNK_BYTES {
            let key = node.key(index - 1);
            if !within_low(key, low) {
                exhausted = true;
                break;
            }
            let (value, value_bytes) = chunk_value(node.leaf_value(index - 1));
            bytes += key.len() + value_bytes;
            entries.push((key.to_vec(), value));
            index -= 1;
        }
        let stopped_by_limit = index > 0 && (entries.len() == limit || bytes >= SCAN_CHUNK_BYTES) && !exhausted;
        // Keys below the fence can still be in range only if the low bound lies below it.
        let more_below = match (&fence, low) {
            (None, _) => false,
            (Some(_), Bound::Unbounded) => true,
            (Some(fence), Bound::Included(bound) | Bound::Excluded(bound)) => bound < fence,
        };
        if !more_below && !stopped_by_limit {
            exhausted = true;
        }
        if !entries.is_empty() || exhausted {
            return Ok(LeafChunk { entries, exhausted });
        }
        if let Some(fence) = fence {
            high = Bound::Excluded(fence);
        }
    }
    Err(Error::corrupt(meta.root, "backward search does not terminate"))
}

/// The smallest key `s` with `left < s <= right`: a prefix of `right` (suffix truncation keeps
/// branch keys short, so branches fan out further).
fn separator(left: &[u8], right: &[u8]) -> Vec<u8> {
    let common = left.iter().zip(right).take_while(|(a, b)| a == b).count();
    right[..(common + 1).min(right.len())].to_vec()
}

/// Counters a batch adds to.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WriteCounts {
    pub mtrs: u64,
    pub redo_bytes: u64,
    pub leaf_splits: u64,
    pub branch_splits: u64,
    pub root_splits: u64,
    pub merges: u64,
    pub root_collapses: u64,
    pub overflow_pages_written: u64,
    pub overflow_pages_freed: u64,
}

/// Builds the mtrs of one batch. Holds the tree's write lock (through `pager`) for its life.
pub(crate) struct BatchWriter<'a> {
    pager: &'a mut Pager,
    log: &'a Log,
    mtr: &'a mut MtrBuf,
    /// Pages changed by the mtr under construction.
    touched: Vec<PageId>,
    undo: UndoImages,
    history: Option<SnapshotWindow>,
    meta: MetaState,
    meta_dirty: bool,
    appended_any: bool,
    page_size: usize,
    pub(crate) counts: WriteCounts,
    cell: Vec<u8>,
    journal: Option<ReplayJournal>,
    path_buffer: Vec<(PageId, usize)>,
}

impl<'a> BatchWriter<'a> {
    pub(crate) fn new(
        pager: &'a mut Pager,
        log: &'a Log,
        mtr: &'a mut MtrBuf,
        history: Option<SnapshotWindow>,
        journal: Option<ReplayJournal>,
    ) -> Result<BatchWriter<'a>> {
        mtr.clear();
        let meta = read_meta(&Latest(pager))?;
        let page_size = pager.page_size();
        Ok(BatchWriter {
            pager,
            log,
            mtr,
            touched: Vec::new(),
            undo: UndoImages::default(),
            history,
            meta,
            meta_dirty: false,
            appended_any: false,
            page_size,
            counts: WriteCounts::default(),
            cell: Vec::new(),
            journal,
            path_buffer: Vec::new(),
        })
    }

    fn read(&self, page_id: PageId) -> Result<PageRef<'_>> {
        self.pager.read(page_id)
    }

    /// Logs `change` on `page_id` in the open mtr and applies it: the only way this module
    /// changes a page.
    fn change(&mut self, page_id: PageId, change: Change<'_>) -> Result<()> {
        let kind = change.kind();
        let payload = self.mtr.push_with(kind, u64::from(page_id), |out| change.encode(out));
        let fresh = redo::is_format(kind);
        let page = self.pager.page_mut(page_id, fresh, fresh, Some(&mut self.undo), self.history)?;
        redo::apply(kind, page_id, payload, page)
            .map_err(|e| Error::corrupt(page_id, format!("forward apply failed: {e}")))?;
        debug_assert!(page::validate(page_id, page).is_ok(), "apply left page {page_id} invalid");
        // Linear, but an mtr touches at most a few hundred pages (MTR_MAX_PAGES, a split
        // cascade of 2 pages per level); the last page is the common repeat.
        if self.touched.last() != Some(&page_id) && !self.touched.contains(&page_id) {
            self.touched.push(page_id);
        }
        Ok(())
    }

    fn set_meta(&mut self, meta: MetaState) {
        self.meta = meta;
        self.meta_dirty = true;
    }

    /// Closes the mtr under construction (if any) so the next change starts a new one.
    fn begin_mtr(&mut self) -> Result<()> {
        if self.meta_dirty || !self.mtr.is_empty() {
            self.append(0)?;
        }
        Ok(())
    }

    fn append(&mut self, flags: u8) -> Result<Lsn> {
        if self.meta_dirty {
            let meta = self.meta;
            self.change(page::META_PAGE_ID, Change::MetaSet { state: meta })?;
            self.meta_dirty = false;
        }
        let frame_bytes = self.mtr.body().len() as u64 + 32;
        if self.log.free_bytes() < frame_bytes + ABORT_RESERVE_BYTES {
            return Err(Error::BatchTooLarge {
                // Live redo, the batch so far, this mtr and the reserve for the abort record.
                needed: self.log.file().capacity() - self.log.free_bytes() + frame_bytes + ABORT_RESERVE_BYTES,
                capacity: self.log.file().capacity(),
            });
        }
        let (start, end) = self.log.append(self.mtr, flags)?;
        for page_id in self.touched.drain(..) {
            self.pager.stamp(page_id, end);
            if let Some(journal) = &self.journal {
                journal.record(end.0, page_id, &self.pager.read(page_id)?);
            }
        }
        self.counts.mtrs += 1;
        self.counts.redo_bytes += end.since(start);
        self.mtr.clear();
        self.appended_any = true;
        Ok(end)
    }

    /// Appends the last mtr with the commit flag. `None` if the batch changed nothing. On an
    /// error the caller must [`BatchWriter::abort`].
    pub(crate) fn commit(&mut self) -> Result<Option<Lsn>> {
        if !self.meta_dirty && self.mtr.is_empty() {
            return Ok(None);
        }
        self.append(redo::MTR_COMMIT).map(Some)
    }

    /// Abandons the batch: puts back every page image it replaced and, if any of its mtrs reached
    /// the log, logs an abort so recovery discards them too. An error here means the log is
    /// unusable; the caller must refuse further writes.
    pub(crate) fn abort(self) -> Result<()> {
        let BatchWriter { pager, log, mtr, undo, appended_any, .. } = self;
        pager.restore(undo);
        mtr.clear();
        if appended_any {
            mtr.push(redo::kind::BATCH_ABORT, u64::from(page::META_PAGE_ID), &[]);
            let result = log.append(mtr, redo::MTR_ABORT);
            mtr.clear();
            result?;
        }
        Ok(())
    }

    /// A page for a new node or overflow page: from the free list, or a new id at the end.
    /// The caller formats it in the same mtr.
    fn allocate(&mut self) -> Result<PageId> {
        let mut meta = self.meta;
        let page_id = if meta.free_head != 0 {
            let page_id = meta.free_head;
            let page = self.read(page_id)?;
            let header = page::header(&page);
            if header.kind != PageKind::Free as u8 {
                return Err(Error::corrupt(page_id, "free list names a page that is not free"));
            }
            meta.free_head = header.link.get();
            page_id
        } else {
            if meta.page_count == u32::MAX {
                return Err(Error::corrupt(0, "the data file has reached 2^32 pages"));
            }
            meta.page_count += 1;
            meta.page_count - 1
        };
        self.set_meta(meta);
        Ok(page_id)
    }

    fn free(&mut self, page_id: PageId) -> Result<()> {
        let mut meta = self.meta;
        self.change(page_id, Change::FreeFormat { link: meta.free_head })?;
        meta.free_head = page_id;
        self.set_meta(meta);
        Ok(())
    }

    /// The path from the root to the leaf for `key`: (page, child index taken) per level.
    /// Returns the writer's reusable path buffer: hand it back with `self.path_buffer = path`.
    fn descend(&mut self, key: &[u8]) -> Result<Vec<(PageId, usize)>> {
        let mut path = std::mem::take(&mut self.path_buffer);
        path.clear();
        let mut page_id = self.meta.root;
        for level in (0..self.meta.height).rev() {
            let page = self.read(page_id)?;
            let node = node_at(&page, page_id, level)?;
            if level == 0 {
                path.push((page_id, 0));
                break;
            }
            let index = node.child_index_for(key);
            path.push((page_id, index));
            page_id = node.child(index);
        }
        Ok(path)
    }

    /// Inserts or replaces `key`.
    pub(crate) fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let max_cell = page::max_cell_bytes(self.page_size);
        let inline = page::leaf_cell_len(key.len(), Some(value.len())) <= max_cell;
        let value_form = if inline {
            LeafValue::Inline(value)
        } else {
            LeafValue::Overflow { len: value.len() as u32, first_page: self.write_overflow(value)? }
        };
        let mut cell = std::mem::take(&mut self.cell);
        cell.clear();
        page::encode_leaf_cell(&mut cell, key, value_form);
        let result = self.put_cell(key, &cell);
        self.cell = cell;
        if let Some(old_chain) = result? {
            self.free_overflow(old_chain)?;
        }
        Ok(())
    }

    /// Puts a leaf cell; returns the overflow chain of a replaced value, to free.
    fn put_cell(&mut self, key: &[u8], cell: &[u8]) -> Result<Option<PageId>> {
        self.begin_mtr()?;
        let path = self.descend(key)?;
        let Some(&(leaf_id, _)) = path.last() else {
            return Err(Error::corrupt(self.meta.root, "empty path"));
        };
        let (fits, old_chain) = {
            let page = self.read(leaf_id)?;
            let node = node_at(&page, leaf_id, 0)?;
            match node.search(key) {
                Ok(index) => {
                    let old_len = node.cell(index).len();
                    let chain = match node.leaf_value(index) {
                        LeafValue::Overflow { first_page, .. } => Some(first_page),
                        LeafValue::Inline(_) => None,
                    };
                    (node.free_bytes() + old_len >= cell.len(), chain)
                }
                Err(_) => (node.free_bytes() >= cell.len() + SLOT_BYTES, None),
            }
        };
        if fits {
            self.change(leaf_id, Change::CellPut { cell })?;
        } else {
            self.split_leaf(&path, cell)?;
        }
        self.path_buffer = path;
        Ok(old_chain)
    }

    /// Splits the leaf at the end of `path` to make room for `cell`, and inserts the separator
    /// into the parent (splitting upward as needed). Part of the caller's mtr.
    fn split_leaf(&mut self, path: &[(PageId, usize)], cell: &[u8]) -> Result<()> {
        let Some(&(leaf_id, _)) = path.last() else { return Ok(()) };
        let key = page::cell_key(cell);
        let (cells, new_index, link, appending) = {
            let page = self.read(leaf_id)?;
            let node = node_at(&page, leaf_id, 0)?;
            let mut cells: Vec<Vec<u8>> = (0..node.len()).map(|i| node.cell(i).to_vec()).collect();
            let (new_index, appending) = match node.search(key) {
                Ok(index) => {
                    cells[index] = cell.to_vec();
                    (index, false)
                }
                Err(index) => {
                    cells.insert(index, cell.to_vec());
                    (index, index == node.len() && node.link() == 0)
                }
            };
            (cells, new_index, node.link(), appending)
        };
        // Ascending inserts at the right edge leave the old leaf full; otherwise halve by bytes.
        let split = if appending { cells.len() - 1 } else { balanced_split(&cells, 1) };
        let right_id = self.allocate()?;
        let right_cells: Vec<u8> = cells[split..].concat();
        self.change(right_id, Change::NodeFormat { node_kind: PageKind::Leaf, level: 0, link, cells: &right_cells })?;
        let first_right = page::cell_key(&cells[split]).to_vec();
        self.change(leaf_id, Change::TruncateFrom { key: &first_right })?;
        if new_index < split {
            self.change(leaf_id, Change::CellPut { cell })?;
        }
        self.change(leaf_id, Change::SetLink { link: right_id })?;
        let separator = separator(page::cell_key(&cells[split - 1]), &first_right);
        self.counts.leaf_splits += 1;
        self.insert_into_parent(&path[..path.len() - 1], &separator, right_id, 1)
    }

    /// Adds `(separator, right_child)` to the branch at the end of `path` (at `level`), splitting
    /// it, or growing a new root when `path` is empty.
    fn insert_into_parent(
        &mut self,
        path: &[(PageId, usize)],
        separator: &[u8],
        right_child: PageId,
        level: u8,
    ) -> Result<()> {
        let mut cell = Vec::with_capacity(page::BRANCH_CELL_PREFIX + separator.len());
        page::encode_branch_cell(&mut cell, separator, right_child);
        let Some(&(parent_id, _)) = path.last() else {
            let new_root = self.allocate()?;
            let old_root = self.meta.root;
            self.change(
                new_root,
                Change::NodeFormat { node_kind: PageKind::Branch, level, link: old_root, cells: &cell },
            )?;
            let mut meta = self.meta;
            meta.root = new_root;
            meta.height += 1;
            self.set_meta(meta);
            self.counts.root_splits += 1;
            return Ok(());
        };
        let (cells, new_index, fits) = {
            let page = self.read(parent_id)?;
            let node = node_at(&page, parent_id, u32::from(level))?;
            let fits = node.free_bytes() >= cell.len() + SLOT_BYTES;
            let new_index = match node.search(separator) {
                Ok(_) => return Err(Error::corrupt(parent_id, "separator already in parent")),
                Err(index) => index,
            };
            let mut cells: Vec<Vec<u8>> =
                if fits { Vec::new() } else { (0..node.len()).map(|i| node.cell(i).to_vec()).collect() };
            if !fits {
                cells.insert(new_index, cell.clone());
            }
            (cells, new_index, fits)
        };
        if fits {
            return self.change(parent_id, Change::CellPut { cell: &cell });
        }
        // The middle cell moves up: its key becomes the separator, its child the new right
        // page's leftmost child.
        // At the right edge of the tree, ascending inserts leave the old branch full.
        let middle = if new_index == cells.len() - 1 && self.is_rightmost(&path[..path.len() - 1]) {
            cells.len() - 1
        } else {
            balanced_split(&cells, 0).min(cells.len() - 1)
        };
        let up_key = page::cell_key(&cells[middle]).to_vec();
        let up_child = u32::from_le_bytes([cells[middle][2], cells[middle][3], cells[middle][4], cells[middle][5]]);
        let right_id = self.allocate()?;
        let right_cells: Vec<u8> = cells[middle + 1..].concat();
        self.change(
            right_id,
            Change::NodeFormat { node_kind: PageKind::Branch, level, link: up_child, cells: &right_cells },
        )?;
        self.change(parent_id, Change::TruncateFrom { key: &up_key })?;
        if new_index < middle {
            self.change(parent_id, Change::CellPut { cell: &cell })?;
        }
        self.counts.branch_splits += 1;
        self.insert_into_parent(&path[..path.len() - 1], &up_key, right_id, level + 1)
    }

    /// Whether every branch on `ancestors` took its last child.
    fn is_rightmost(&self, ancestors: &[(PageId, usize)]) -> bool {
        ancestors.iter().all(|&(page_id, index)| {
            self.read(page_id).ok().and_then(|page| Node::new(&page).map(|n| n.len() == index)).unwrap_or(false)
        })
    }

    /// Removes `key`; whether it was there.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Result<bool> {
        let path = self.descend(key)?;
        let Some(&(leaf_id, _)) = path.last() else { return Ok(false) };
        let old_chain = {
            let page = self.read(leaf_id)?;
            let node = node_at(&page, leaf_id, 0)?;
            match node.search(key) {
                Err(_) => return Ok(false),
                Ok(index) => match node.leaf_value(index) {
                    LeafValue::Overflow { first_page, .. } => Some(first_page),
                    LeafValue::Inline(_) => None,
                },
            }
        };
        self.begin_mtr()?;
        self.change(leaf_id, Change::CellDelete { key })?;
        self.rebalance(&path)?;
        self.path_buffer = path;
        if let Some(chain) = old_chain {
            self.free_overflow(chain)?;
        }
        Ok(true)
    }

    /// After a delete at the end of `path`: merges underfull nodes into a sibling, upward, and
    /// collapses a root left with one child. Part of the caller's mtr.
    fn rebalance(&mut self, path: &[(PageId, usize)]) -> Result<()> {
        let usable = page::usable_bytes(self.page_size);
        let mut depth = path.len() - 1;
        loop {
            let (page_id, _) = path[depth];
            if depth == 0 {
                return self.collapse_root();
            }
            let level = self.meta.height - 1 - depth as u32;
            let used = {
                let page = self.read(page_id)?;
                node_at(&page, page_id, level)?.used_bytes() - page::HEADER_BYTES
            };
            if used >= usable / 4 {
                return Ok(());
            }
            let (parent_id, child_index) = path[depth - 1];
            let (left_id, right_id, separator) = {
                let page = self.read(parent_id)?;
                let parent = node_at(&page, parent_id, level + 1)?;
                if child_index < parent.len() {
                    (page_id, parent.child(child_index + 1), parent.key(child_index).to_vec())
                } else if child_index > 0 {
                    (parent.child(child_index - 1), page_id, parent.key(child_index - 1).to_vec())
                } else {
                    return Ok(());
                }
            };
            if !self.merge(left_id, right_id, &separator, level)? {
                return Ok(());
            }
            self.change(parent_id, Change::CellDelete { key: &separator })?;
            self.counts.merges += 1;
            depth -= 1;
        }
    }

    /// Moves every cell of `right_id` into `left_id` and frees `right_id`, if they fit in one
    /// page. The parent's separator is the caller's to remove.
    fn merge(&mut self, left_id: PageId, right_id: PageId, separator: &[u8], level: u32) -> Result<bool> {
        let (left_used, moved, right_link) = {
            let left = self.read(left_id)?;
            let left_used = node_at(&left, left_id, level)?.used_bytes();
            let right = self.read(right_id)?;
            let right_node = node_at(&right, right_id, level)?;
            let mut moved = Vec::new();
            let mut slots = right_node.len();
            if level > 0 {
                // The separator comes down, pointing at the right page's leftmost child.
                page::encode_branch_cell(&mut moved, separator, right_node.link());
                slots += 1;
            }
            for index in 0..right_node.len() {
                moved.extend_from_slice(right_node.cell(index));
            }
            (left_used + moved.len() + slots * SLOT_BYTES, moved, right_node.link())
        };
        if left_used > self.page_size {
            return Ok(false);
        }
        if !moved.is_empty() {
            self.change(left_id, Change::CellsAppend { cells: &moved })?;
        }
        if level == 0 {
            self.change(left_id, Change::SetLink { link: right_link })?;
        }
        self.free(right_id)?;
        Ok(true)
    }

    fn collapse_root(&mut self) -> Result<()> {
        loop {
            let root = self.meta.root;
            let only_child = {
                let page = self.read(root)?;
                let node = node_at(&page, root, self.meta.height - 1)?;
                if node.is_leaf() || !node.is_empty() {
                    return Ok(());
                }
                node.child(0)
            };
            let mut meta = self.meta;
            meta.root = only_child;
            meta.height -= 1;
            self.set_meta(meta);
            self.free(root)?;
            self.counts.root_collapses += 1;
        }
    }

    /// Writes `value` into a new overflow chain; returns its first page.
    fn write_overflow(&mut self, value: &[u8]) -> Result<PageId> {
        let capacity = page::overflow_capacity(self.page_size);
        let mut next: PageId = 0;
        self.begin_mtr()?;
        // Last piece first, so every page's link is known when it is formatted.
        for piece in value.chunks(capacity).rev() {
            if self.mtr.body().len() >= OVERFLOW_MTR_BYTES {
                self.begin_mtr()?;
            }
            let page_id = self.allocate()?;
            self.change(page_id, Change::OverflowFormat { link: next, data: piece })?;
            self.counts.overflow_pages_written += 1;
            next = page_id;
        }
        Ok(next)
    }

    /// Returns the pages of an overflow chain to the free list.
    fn free_overflow(&mut self, first_page: PageId) -> Result<()> {
        self.begin_mtr()?;
        let mut next = first_page;
        let mut freed = 0u64;
        while next != 0 {
            if self.mtr.body().len() >= OVERFLOW_MTR_BYTES || self.touched.len() >= MTR_MAX_PAGES {
                self.begin_mtr()?;
            }
            let link = {
                let page = self.read(next)?;
                let header = page::header(&page);
                if header.kind != PageKind::Overflow as u8 {
                    return Err(Error::corrupt(next, "expected an overflow page while freeing a chain"));
                }
                header.link.get()
            };
            self.free(next)?;
            freed += 1;
            if freed > u64::from(self.meta.page_count) {
                return Err(Error::corrupt(first_page, "overflow chain loops"));
            }
            next = link;
        }
        self.counts.overflow_pages_freed += freed;
        Ok(())
    }

    /// Creates the meta page and an empty root leaf (a new database).
    pub(crate) fn bootstrap(
        pager: &'a mut Pager,
        log: &'a Log,
        mtr: &'a mut MtrBuf,
        log_id: u64,
        journal: Option<&ReplayJournal>,
    ) -> Result<Lsn> {
        mtr.clear();
        let state = MetaState { root: 1, height: 1, page_count: 2, free_head: 0 };
        let mut payload = Vec::new();
        Change::MetaInit { log_id, state }.encode(&mut payload);
        mtr.push(redo::kind::META_INIT, 0, &payload);
        payload.clear();
        Change::NodeFormat { node_kind: PageKind::Leaf, level: 0, link: 0, cells: &[] }.encode(&mut payload);
        mtr.push(redo::kind::NODE_FORMAT, 1, &payload);
        for record in mtr.records() {
            let page_id = record.page_id as PageId;
            let page = pager.page_mut(page_id, true, true, None, None)?;
            redo::apply(record.kind, page_id, record.payload, page)
                .map_err(|e| Error::corrupt(page_id, e.to_string()))?;
        }
        let (_, end) = log.append(mtr, redo::MTR_COMMIT)?;
        for page_id in [0, 1] {
            pager.stamp(page_id, end);
            if let Some(journal) = journal {
                journal.record(end.0, page_id, &pager.read(page_id)?);
            }
        }
        mtr.clear();
        Ok(end)
    }
}

/// The index that splits `cells` into two runs of about equal bytes; at least `min_left` cells go
/// left and at least one goes right.
fn balanced_split(cells: &[Vec<u8>], min_left: usize) -> usize {
    let total: usize = cells.iter().map(|c| c.len() + SLOT_BYTES).sum();
    let mut left = 0;
    for (index, cell) in cells.iter().enumerate() {
        if left + (cell.len() + SLOT_BYTES) / 2 >= total / 2 && index >= min_left {
            return index.min(cells.len() - 1).max(min_left);
        }
        left += cell.len() + SLOT_BYTES;
    }
    (cells.len() - 1).max(min_left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_is_shortest_between() {
        assert_eq!(separator(b"apple", b"banana"), b"b");
        assert_eq!(separator(b"abc", b"abd"), b"abd");
        assert_eq!(separator(b"ab", b"abc"), b"abc");
        assert_eq!(separator(b"a", b"a\x00"), b"a\x00");
    }

    #[test]
    fn balanced_split_leaves_both_sides_non_empty() {
        let cells: Vec<Vec<u8>> = vec![vec![0; 1000], vec![0; 10], vec![0; 10]];
        let split = balanced_split(&cells, 1);
        assert!(split >= 1 && split < cells.len());
        let cells: Vec<Vec<u8>> = vec![vec![0; 10], vec![0; 1000]];
        assert_eq!(balanced_split(&cells, 1), 1);
    }
}
