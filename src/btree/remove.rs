//! Removing a key: the cell deleted from its leaf, underfull nodes merged into a sibling upward,
//! and a root left with one child collapsed (the tree loses a level), all in one mtr; the
//! removed value's overflow chain freed after.
//!
//! This module must not start an mtr in the middle of a rebalance (a remove and its merges are
//! one mtr).

use crate::error::{Error, Result};
use crate::page::{self, LeafValue, Node, PageId, PageKind, SLOT_BYTES};
use crate::redo::Change;

use super::{node_at, BatchWriter};

impl<'a> BatchWriter<'a> {
    /// Removes `key` from the tree at `root`; whether it was there.
    pub(crate) fn remove(&mut self, root: PageId, key: &[u8]) -> Result<bool> {
        let path = self.descend(root, key)?;
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
                return self.collapse_root(page_id);
            }
            let level = (path.len() - 1 - depth) as u32;
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

    /// While the root is a branch with one child and no keys, takes that child's cells into the
    /// root (which keeps its page) and frees the child: the tree loses a level.
    fn collapse_root(&mut self, root: PageId) -> Result<()> {
        loop {
            let only_child = {
                let page = self.read(root)?;
                let node = Node::new(&page).ok_or_else(|| Error::corrupt(root, "a tree's root is not a node"))?;
                if node.is_leaf() || !node.is_empty() {
                    return Ok(());
                }
                node.child(0)
            };
            let (node_kind, level, link, cells) = {
                let page = self.read(only_child)?;
                let node = Node::new(&page).ok_or_else(|| Error::corrupt(only_child, "expected a tree node"))?;
                let kind = if node.is_leaf() { PageKind::Leaf } else { PageKind::Branch };
                (kind, node.header().level, node.link(), node.cells_bytes())
            };
            self.change(root, Change::NodeFormat { node_kind, level, link, cells: &cells })?;
            self.free(only_child)?;
            self.counts.root_collapses += 1;
        }
    }
}
