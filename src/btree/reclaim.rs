//! Freeing a dropped tree, a bounded part at a time: from the left, the first overflow chain of
//! the leftmost leaf, or the leftmost leaf itself, unlinked from its parent (and every branch
//! that leaves childless, upward), until the root goes too.
//!
//! What is left after each part is still a tree (every key inside its fences, every page
//! reachable once), so `check` can account for a tree that is half freed, and a crash between
//! parts resumes where the last committed one ended.
//!
//! This module must not touch the catalog (the caller removes the dropped tree's entry in the
//! batch that frees its root).

use crate::error::{Error, Result};
use crate::page::{LeafValue, Node, PageId};
use crate::redo::Change;

use super::BatchWriter;

impl<'a> BatchWriter<'a> {
    /// Frees pages of the tree at `root`, whole leaves and whole overflow chains at a time, until
    /// at least `budget` pages are freed or the tree is gone. Returns whether the root itself was
    /// freed (the tree is gone). Each part is one mtr (an overflow chain: as many as freeing it
    /// takes); the caller commits them as one batch.
    pub(crate) fn free_tree_part(&mut self, root: PageId, budget: u64) -> Result<bool> {
        let mut freed = 0u64;
        let mut path: Vec<PageId> = Vec::new();
        while freed < budget {
            self.begin_mtr()?;
            path.clear();
            let mut page_id = root;
            let leaf_overflow = loop {
                path.push(page_id);
                if path.len() > super::MAX_TREE_HEIGHT as usize {
                    return Err(Error::corrupt(root, "a dropped tree deeper than 64 levels"));
                }
                let page = self.read(page_id)?;
                let node = Node::new(&page).ok_or_else(|| Error::corrupt(page_id, "expected a tree node"))?;
                if node.is_leaf() {
                    break (0..node.len()).find_map(|index| match node.leaf_value(index) {
                        LeafValue::Overflow { first_page, .. } => Some((node.key(index).to_vec(), first_page)),
                        LeafValue::Inline(_) => None,
                    });
                }
                page_id = node.link();
            };
            let leaf = page_id;
            if let Some((key, chain)) = leaf_overflow {
                let before = self.counts.overflow_pages_freed;
                self.change(leaf, Change::CellDelete { key: &key })?;
                self.free_overflow(chain)?;
                freed += self.counts.overflow_pages_freed - before;
                continue;
            }
            // Free the leaf, then each ancestor it leaves without children.
            let mut depth = path.len() - 1;
            loop {
                self.free(path[depth])?;
                freed += 1;
                if depth == 0 {
                    return Ok(true);
                }
                let parent = path[depth - 1];
                let next_leftmost = {
                    let page = self.read(parent)?;
                    let node = Node::new(&page).ok_or_else(|| Error::corrupt(parent, "expected a tree node"))?;
                    (!node.is_empty()).then(|| (node.child(1), node.key(0).to_vec()))
                };
                match next_leftmost {
                    Some((child, key)) => {
                        self.change(parent, Change::SetLink { link: child })?;
                        self.change(parent, Change::CellDelete { key: &key })?;
                        break;
                    }
                    None => depth -= 1,
                }
            }
        }
        Ok(false)
    }
}
