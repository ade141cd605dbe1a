//! The B+trees: search, insert, delete, split, merge and overflow chains, built as mtrs.
//!
//! A database holds several trees (the catalog and one per keyspace, see [`crate::catalog`]),
//! each named by its root page, which it keeps for its whole life: every operation here takes
//! the root of the tree it acts on, and a tree's height is its root's level plus one.
//!
//! Readers descend through a `PageSource` (the newest committed state, or a snapshot).
//! Writers use a `BatchWriter`, which owns the open mtr: every page change is a [`Change`]
//! encoded into the mtr and applied by [`redo::apply`], and the page is handed out mutably only
//! inside `BatchWriter::change`. Code in this module therefore cannot change a page without
//! logging it.
//!
//! # How operations map onto mtrs
//! - An insert or replace that fits its leaf: one mtr with one `CELL_PUT_AT` (at the slot found).
//! - A leaf split, with every branch split it causes up to and including a root split (the tree
//!   grows a level): one mtr. It logs the moved cells in `NODE_FORMAT` of the new page,
//!   `TRUNCATE_FROM` and `SET_LINK` on the old one, `CELL_PUT` on the parent, and the allocation
//!   (`META_SET`, coalesced to one per mtr). A root split keeps the root's page: the root's cells
//!   move to a new child (`NODE_FORMAT`) and the root is formatted as a branch over it and the
//!   split's right page.
//! - A delete, with the merges it causes (leaf into sibling, then branches upward) and a root
//!   collapse (the tree loses a level: the root takes its only child's cells, `NODE_FORMAT`, and
//!   the child is freed): one mtr.
//! - A large value: its overflow chain is written in mtrs of at most [`OVERFLOW_MTR_BYTES`], before
//!   the mtr that puts the cell pointing to it; a replaced or removed chain is freed in mtrs after.
//! - A user batch is the sequence of mtrs of its operations; the last carries
//!   [`redo::MTR_COMMIT`]. Recovery applies a batch only once it has seen that commit.
//!
//! # Where things are
//! - here: the page sources readers descend through, the `BatchWriter` and its counters.
//! - `read`: point lookups and the leaf chunks iterators copy out.
//! - `writer`: the `BatchWriter`'s mtr: `change` (the only way a page is changed), appending
//!   mtrs, commit, abort, descending for a write, and the first mtr of a new database.
//! - `free_list`: allocating pages (from the free list or at the end of the file) and freeing them;
//!   compaction's model of the list, taking a page from its middle, and cutting free pages off the
//!   end of the page ids.
//! - `insert`: inserting or replacing a key in its leaf.
//! - `split`: leaf and branch splits, up to a root split, and where to split.
//! - `remove`: removing a key, merging underfull nodes upward, collapsing the root.
//! - `overflow`: overflow chains: reading, writing and freeing them.
//! - `reclaim`: freeing a dropped tree, a bounded part at a time.
//! - `relocate`: moving a node or an overflow page to a lower page id (compaction).
//!
//! [`Change`]: crate::redo::Change
//! [`redo::apply`]: crate::redo::apply
//! [`redo::MTR_COMMIT`]: crate::redo::MTR_COMMIT

mod free_list;
mod insert;
mod overflow;
mod read;
mod reclaim;
mod relocate;
mod remove;
mod split;
mod writer;

pub(crate) use free_list::{free_list_order, last_page_is_free, FreeListModel};
pub(crate) use overflow::{append_overflow_page, check_overflow_read, overflow_buffer};
pub(crate) use read::{chunk_backward, chunk_forward, get, ChunkEntry, ChunkValue, LeafChunk};
pub(crate) use relocate::{plan_moves, Locator};
pub(crate) use writer::FirstPages;

use mtr::{Log, MtrBuf};

use crate::error::{Error, Result};
use crate::page::{self, MetaState, Node, PageId, PageKind};
use crate::pager::{PageRef, Pager, SnapshotWindow};
use crate::replay::ReplayJournal;

/// Body bytes after which a chain of overflow pages continues in a new mtr.
pub const OVERFLOW_MTR_BYTES: usize = 256 * 1024;
/// Pages after which freeing an overflow chain continues in a new mtr: bounds the pages one mtr
/// touches (and so what recovery holds for one mtr, and the writer's per-mtr bookkeeping) even
/// for a 64 MiB chain, whose free records are a few bytes each.
pub const MTR_MAX_PAGES: usize = 256;
/// Log space kept free so that an abandoned batch can always log its abort.
pub const ABORT_RESERVE_BYTES: u64 = 4096;

/// The most levels a tree may have (far more than 2^32 pages need), so that level arithmetic
/// on a damaged root never overflows.
pub(crate) const MAX_TREE_HEIGHT: u32 = 64;

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

/// The level of a tree's root node (the tree's height minus one), from the root page's bytes.
pub(crate) fn root_level(page: &[u8], root: PageId) -> Result<u32> {
    let node = Node::new(page).ok_or_else(|| Error::corrupt(root, "a tree's root is not a node"))?;
    let level = u32::from(node.header().level);
    if level >= MAX_TREE_HEIGHT {
        return Err(Error::corrupt(
            root,
            format!("a tree's root at level {level}: more than {MAX_TREE_HEIGHT} levels"),
        ));
    }
    Ok(level)
}

/// A node page, checked to be at the expected level.
fn node_at<'p>(page: &'p [u8], page_id: PageId, level: u32) -> Result<Node<'p>> {
    let node = Node::new(page).ok_or_else(|| Error::corrupt(page_id, "expected a tree node"))?;
    if u32::from(node.header().level) != level {
        return Err(Error::corrupt(page_id, format!("node at level {}, expected level {level}", node.header().level)));
    }
    Ok(node)
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
