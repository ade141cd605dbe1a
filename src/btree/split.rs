//! Splits: a full leaf into two, the separator put in the parent, and every branch split that
//! causes, up to a root split (the tree grows a level), all in the caller's mtr; and where to
//! split (by bytes, or at the right edge for ascending inserts) and the shortest separator.
//!
//! This module must not start or end an mtr (a split is part of the insert's).

use crate::error::{Error, Result};
use crate::page::{self, Node, PageId, PageKind, SLOT_BYTES};
use crate::redo::Change;

use super::{node_at, BatchWriter};

/// The smallest key `s` with `left < s <= right`: a prefix of `right` (suffix truncation keeps
/// branch keys short, so branches fan out further).
fn separator(left: &[u8], right: &[u8]) -> Vec<u8> {
    let common = left.iter().zip(right).take_while(|(a, b)| a == b).count();
    right[..(common + 1).min(right.len())].to_vec()
}

impl<'a> BatchWriter<'a> {
    /// Splits the leaf at the end of `path` to make room for `cell`, and inserts the separator
    /// into the parent (splitting upward as needed). Part of the caller's mtr.
    pub(super) fn split_leaf(&mut self, path: &[(PageId, usize)], cell: &[u8]) -> Result<()> {
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
        self.insert_into_parent(&path[..path.len() - 1], &separator, leaf_id, right_id, 1)
    }

    /// Adds `(separator, right_child)` to the branch at the end of `path` (at `level`), splitting
    /// it; `left_child` is the node that split. When `path` is empty, `left_child` is the root:
    /// the tree grows a level.
    fn insert_into_parent(
        &mut self,
        path: &[(PageId, usize)],
        separator: &[u8],
        left_child: PageId,
        right_child: PageId,
        level: u8,
    ) -> Result<()> {
        let mut cell = Vec::with_capacity(page::BRANCH_CELL_PREFIX + separator.len());
        page::encode_branch_cell(&mut cell, separator, right_child);
        let Some(&(parent_id, _)) = path.last() else {
            return self.raise_root(left_child, &cell, level);
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
        self.insert_into_parent(&path[..path.len() - 1], &up_key, parent_id, right_id, level + 1)
    }

    /// A root split: the root (its left half, after a split at `level - 1`) keeps its page, so
    /// that nothing naming it changes. Its cells move to a new child, and it becomes a branch at
    /// `level` over that child and the split's right page (`cell`). The moved cells are logged
    /// whole (a `NODE_FORMAT`): the record stays self-contained, and root splits are rare.
    fn raise_root(&mut self, root: PageId, cell: &[u8], level: u8) -> Result<()> {
        let (node_kind, link, cells) = {
            let page = self.read(root)?;
            let node = node_at(&page, root, u32::from(level) - 1)?;
            let kind = if node.is_leaf() { PageKind::Leaf } else { PageKind::Branch };
            (kind, node.link(), node.cells_bytes())
        };
        let moved = self.allocate()?;
        self.change(moved, Change::NodeFormat { node_kind, level: level - 1, link, cells: &cells })?;
        self.change(root, Change::NodeFormat { node_kind: PageKind::Branch, level, link: moved, cells: cell })?;
        self.counts.root_splits += 1;
        Ok(())
    }

    /// Whether every branch on `ancestors` took its last child.
    fn is_rightmost(&self, ancestors: &[(PageId, usize)]) -> bool {
        ancestors.iter().all(|&(page_id, index)| {
            self.read(page_id).ok().and_then(|page| Node::new(&page).map(|n| n.len() == index)).unwrap_or(false)
        })
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
