//! Moving a page to a lower page id, for compaction: a tree node below its root, or a page of an
//! overflow chain, copied to a free page with every pointer to it changed, as one mtr.
//!
//! A move is planned from a walk of the trees at a snapshot ([`Locator`]) and made later, under
//! the writer lock, when writers may have changed the tree: the move first finds the page again
//! from its locator (a descent from its tree's root, or its chain predecessor's link) and gives
//! up, changing nothing, if the page is no longer there.
//!
//! The mtr of a move of page `from` to free page `to`:
//! - `to` taken off the free list: `SET_LINK` on the free page before it, or the meta page's
//!   `free_head`;
//! - `NODE_FORMAT` (or `OVERFLOW_FORMAT`) of `to` with `from`'s cells (or data) and link: a
//!   self-contained copy;
//! - the pointer to `from` changed to `to`: the parent's leftmost child (`SET_LINK`) or separator
//!   cell (`CELL_DELETE`, `CELL_PUT`); the left neighbour leaf's link (`SET_LINK`); or, for an
//!   overflow page, the chain predecessor's link (`SET_LINK`) or the leaf cell naming the chain
//!   (`CELL_PUT_AT`, replacing it);
//! - `FREE_FORMAT` of `from`, put on the free list's head, and the meta page (`META_SET`).
//!
//! A keyspace's root moves the same way ([`BatchWriter::relocate_root`]), its pointer being the
//! root named in its catalog entry, which the caller (`crate::catalog::move_root`) changes in the
//! same mtr. The catalog's root and the default keyspace's (pages 1 and 2) never move.
//!
//! This module must not decide which pages move or where (the caller does, from its plan).

use crate::error::{Error, Result};
use crate::page::{self, LeafValue, Node, PageId, PageKind};
use crate::redo::Change;

use super::free_list::FreeListModel;
use super::{node_at, root_level, BatchWriter};

/// Where a page that compaction may move hangs, as found at a snapshot.
#[derive(Clone, Debug)]
pub(crate) enum Locator {
    /// A node below its tree's root: the root, the node's level, and a key that routes to it
    /// from the root (its low fence; empty for the leftmost node of its level).
    Node { root: PageId, level: u32, route: Vec<u8> },
    /// The first page of an overflow chain: its tree's root and the key of the leaf cell that
    /// names the chain.
    ChainStart { root: PageId, key: Vec<u8> },
    /// A later page of an overflow chain: the chain page before it.
    ChainNext { previous: PageId },
}

impl Locator {
    /// The root of the tree it descends from, if it descends from one.
    pub(crate) fn root(&self) -> Option<PageId> {
        match self {
            Locator::Node { root, .. } | Locator::ChainStart { root, .. } => Some(*root),
            Locator::ChainNext { .. } => None,
        }
    }

    /// The same locator, descending from `root` (the tree's root now, if it moved).
    pub(crate) fn with_root(&self, root: PageId) -> Locator {
        match self {
            Locator::Node { level, route, .. } => Locator::Node { root, level: *level, route: route.clone() },
            Locator::ChainStart { key, .. } => Locator::ChainStart { root, key: key.clone() },
            Locator::ChainNext { previous } => Locator::ChainNext { previous: *previous },
        }
    }
}

/// What points to the page being moved, found again at the time of the move.
enum Pointer {
    /// A branch's leftmost child (its link).
    Leftmost(PageId),
    /// A branch's child after separator `key`.
    Separator(PageId, Vec<u8>),
    /// A leaf cell's overflow chain: the leaf, the cell's slot, key and value length.
    Cell(PageId, usize, Vec<u8>, u32),
    /// A page's link: a chain's previous page, or a leaf's left neighbour.
    Link(PageId),
}

impl<'a> BatchWriter<'a> {
    /// Moves page `from` to free page `to`, in an mtr of its own, if `from` is still where
    /// `locator` says; returns whether it moved. `model` is the free list as compaction knows it
    /// (synced by the caller in this batch): `to` is taken off it and `from` put on it.
    pub(crate) fn relocate(
        &mut self,
        model: &mut FreeListModel,
        from: PageId,
        to: PageId,
        locator: &Locator,
    ) -> Result<bool> {
        let Some(pointers) = self.find_pointers(from, locator)? else { return Ok(false) };
        self.begin_mtr()?;
        self.take_free_page(model, to)?;
        let (format_kind, level, link, body) = {
            let page = self.read(from)?;
            let header = page::header(&page);
            let body = if header.kind == PageKind::Overflow as u8 {
                let len = header.content_start.get() as usize;
                page.get(page::HEADER_BYTES..page::HEADER_BYTES + len)
                    .ok_or_else(|| Error::corrupt(from, "overflow data out of bounds"))?
                    .to_vec()
            } else {
                Node::new(&page).ok_or_else(|| Error::corrupt(from, "expected a tree node"))?.cells_bytes()
            };
            (header.kind, header.level, header.link.get(), body)
        };
        if format_kind == PageKind::Overflow as u8 {
            self.change(to, Change::OverflowFormat { link, data: &body })?;
        } else {
            let node_kind = PageKind::from_byte(format_kind).ok_or_else(|| Error::corrupt(from, "unknown kind"))?;
            self.change(to, Change::NodeFormat { node_kind, level, link, cells: &body })?;
        }
        for pointer in pointers {
            match pointer {
                Pointer::Leftmost(page_id) | Pointer::Link(page_id) => {
                    self.change(page_id, Change::SetLink { link: to })?;
                }
                Pointer::Separator(page_id, key) => {
                    let mut cell = Vec::with_capacity(page::BRANCH_CELL_PREFIX + key.len());
                    page::encode_branch_cell(&mut cell, &key, to);
                    self.change(page_id, Change::CellDelete { key: &key })?;
                    self.change(page_id, Change::CellPut { cell: &cell })?;
                }
                Pointer::Cell(page_id, slot, key, len) => {
                    let mut cell = Vec::new();
                    page::encode_leaf_cell(&mut cell, &key, LeafValue::Overflow { len, first_page: to });
                    let slot = u16::try_from(slot).map_err(|_| Error::corrupt(page_id, "slot out of range"))?;
                    self.change(page_id, Change::CellPutAt { slot, replace: true, cell: &cell })?;
                }
            }
        }
        self.free_into(model, from)?;
        Ok(true)
    }

    /// Moves a tree's root `from` to free page `to`, in an mtr of its own: `to` is taken off the
    /// free list, formatted as a copy of `from`, `repoint` changes what names the root (in the
    /// same mtr), and `from` is freed.
    pub(crate) fn relocate_root(
        &mut self,
        model: &mut FreeListModel,
        from: PageId,
        to: PageId,
        repoint: impl FnOnce(&mut Self) -> Result<()>,
    ) -> Result<()> {
        self.begin_mtr()?;
        self.take_free_page(model, to)?;
        let (node_kind, level, link, cells) = {
            let page = self.read(from)?;
            let node = Node::new(&page).ok_or_else(|| Error::corrupt(from, "a tree's root is not a node"))?;
            (node.kind(), node.header().level, node.link(), node.cells_bytes())
        };
        self.change(to, Change::NodeFormat { node_kind, level, link, cells: &cells })?;
        repoint(self)?;
        self.free_into(model, from)
    }

    /// The pointers to `from` that a move must change, if `from` is still where `locator` says.
    fn find_pointers(&mut self, from: PageId, locator: &Locator) -> Result<Option<Vec<Pointer>>> {
        match locator {
            Locator::ChainNext { previous } => {
                let page = self.read(*previous)?;
                let header = page::header(&page);
                let is_chain = header.kind == PageKind::Overflow as u8 && header.link.get() == from;
                let from_is_overflow = page::header(&self.read(from)?).kind == PageKind::Overflow as u8;
                Ok((is_chain && from_is_overflow).then(|| vec![Pointer::Link(*previous)]))
            }
            Locator::ChainStart { root, key } => {
                let path = self.descend(*root, key)?;
                let leaf = path.last().map(|&(page_id, _)| page_id);
                self.path_buffer = path;
                let Some(leaf) = leaf else { return Ok(None) };
                let page = self.read(leaf)?;
                let node = node_at(&page, leaf, 0)?;
                let Ok(slot) = node.search(key) else { return Ok(None) };
                match node.leaf_value(slot) {
                    LeafValue::Overflow { len, first_page } if first_page == from => {
                        Ok(Some(vec![Pointer::Cell(leaf, slot, key.clone(), len)]))
                    }
                    _ => Ok(None),
                }
            }
            Locator::Node { root, level, route } => self.find_node_pointers(from, *root, *level, route),
        }
    }

    /// Descends from `root` along `route` to the node at `level` below it; if that is `from`,
    /// returns its parent's pointer and, for a leaf, its left neighbour's link.
    fn find_node_pointers(
        &mut self,
        from: PageId,
        root: PageId,
        level: u32,
        route: &[u8],
    ) -> Result<Option<Vec<Pointer>>> {
        let root_level = root_level(&self.read(root)?, root)?;
        if level >= root_level || from == root {
            return Ok(None);
        }
        // (branch, child index taken) from the root down to `from`'s parent.
        let mut path: Vec<(PageId, usize)> = Vec::new();
        let mut page_id = root;
        let mut at = root_level;
        while at > level {
            let page = self.read(page_id)?;
            let node = node_at(&page, page_id, at)?;
            let index = node.child_index_for(route);
            path.push((page_id, index));
            page_id = node.child(index);
            at -= 1;
        }
        if page_id != from {
            return Ok(None);
        }
        node_at(&self.read(from)?, from, level)?;
        let Some(&(parent, index)) = path.last() else { return Ok(None) };
        let mut pointers = vec![if index == 0 {
            Pointer::Leftmost(parent)
        } else {
            let page = self.read(parent)?;
            let node = node_at(&page, parent, level + 1)?;
            Pointer::Separator(parent, node.key(index - 1).to_vec())
        }];
        if level == 0 {
            if let Some(left) = self.left_neighbour(&path)? {
                pointers.push(Pointer::Link(left));
            }
        }
        Ok(Some(pointers))
    }

    /// The leaf before the one `path` leads to (a path of branches from the root down to a
    /// leaf's parent), if there is one: down the child to the left at the lowest branch where
    /// the path did not take the leftmost child, then rightmost to level 0.
    fn left_neighbour(&self, path: &[(PageId, usize)]) -> Result<Option<PageId>> {
        let Some(depth) = path.iter().rposition(|&(_, index)| index > 0) else { return Ok(None) };
        let (branch, index) = path[depth];
        // `path[i]` is at level `path.len() - i`.
        let mut level = (path.len() - depth) as u32;
        let mut page_id = {
            let page = self.read(branch)?;
            node_at(&page, branch, level)?.child(index - 1)
        };
        while level > 1 {
            level -= 1;
            let page = self.read(page_id)?;
            let node = node_at(&page, page_id, level)?;
            page_id = node.child(node.len());
        }
        Ok(Some(page_id))
    }
}

/// The moves that would bring every page in use below `target`: each node (not a root) and
/// overflow page at or above it in the trees at `roots`, with its locator, highest page first.
/// Reads every page of those trees through `source` (a snapshot).
///
/// **Memory:** one locator per page to move (a key of up to [`page::MAX_KEY_BYTES`] for a node or
/// a chain's first page), and a stack of at most the fan-out of one node per level.
pub(crate) fn plan_moves(
    source: &impl super::PageSource,
    roots: &[PageId],
    target: PageId,
) -> Result<Vec<(PageId, Locator)>> {
    let mut moves = Vec::new();
    for &root in roots {
        let height = root_level(&source.page(root)?, root)?;
        // (page, level, low fence)
        let mut stack: Vec<(PageId, u32, Vec<u8>)> = vec![(root, height, Vec::new())];
        while let Some((page_id, level, low)) = stack.pop() {
            let page = source.page(page_id)?;
            let node = node_at(&page, page_id, level)?;
            if page_id >= target && page_id != root {
                moves.push((page_id, Locator::Node { root, level, route: low.clone() }));
            }
            if node.is_leaf() {
                for index in 0..node.len() {
                    let LeafValue::Overflow { len, first_page } = node.leaf_value(index) else { continue };
                    let key = node.key(index).to_vec();
                    let mut previous: Option<PageId> = None;
                    let mut next = first_page;
                    let mut pages = 0u64;
                    while next != 0 {
                        pages += 1;
                        if pages > u64::from(len) + 1 {
                            return Err(Error::corrupt(first_page, "an overflow chain longer than its value"));
                        }
                        if next >= target {
                            let locator = match previous {
                                None => Locator::ChainStart { root, key: key.clone() },
                                Some(previous) => Locator::ChainNext { previous },
                            };
                            moves.push((next, locator));
                        }
                        let chain_page = source.page(next)?;
                        if page::header(&chain_page).kind != PageKind::Overflow as u8 {
                            return Err(Error::corrupt(next, "expected an overflow page"));
                        }
                        previous = Some(next);
                        next = page::header(&chain_page).link.get();
                    }
                }
                continue;
            }
            for index in (0..=node.len()).rev() {
                let child_low = if index == 0 { low.clone() } else { node.key(index - 1).to_vec() };
                stack.push((node.child(index), level - 1, child_low));
            }
        }
    }
    moves.sort_unstable_by_key(|&(page_id, _)| std::cmp::Reverse(page_id));
    Ok(moves)
}
