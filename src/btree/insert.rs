//! Inserting or replacing a key: its value inline or in an overflow chain, the cell put in its
//! leaf in one mtr (`CELL_PUT_AT`, at the slot found), or the leaf split (`split`) when it does not fit.
//!
//! This module must not split or free pages itself (`split`, `overflow`).

use crate::error::{Error, Result};
use crate::page::{self, LeafValue, PageId, SLOT_BYTES};
use crate::redo::Change;

use super::{node_at, BatchWriter};

impl<'a> BatchWriter<'a> {
    /// Inserts or replaces `key` in the tree at `root`; whether the key is new.
    pub(crate) fn insert(&mut self, root: PageId, key: &[u8], value: &[u8]) -> Result<bool> {
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
        let result = self.put_cell(root, key, &cell);
        self.cell = cell;
        let (new, old_chain) = result?;
        if let Some(old_chain) = old_chain {
            self.free_overflow(old_chain)?;
        }
        Ok(new)
    }

    /// Overwrites `bytes` of the inline value of `key` (present in the tree at `root`) from
    /// `offset`, in the open mtr: a small fixed-size field such as a catalog entry's count. The
    /// cell keeps its size, so it never splits and needs no mtr of its own.
    pub(crate) fn patch_value(&mut self, root: PageId, key: &[u8], offset: usize, bytes: &[u8]) -> Result<()> {
        let path = self.descend(root, key)?;
        let Some(&(leaf_id, _)) = path.last() else {
            return Err(Error::corrupt(root, "empty path"));
        };
        self.path_buffer = path;
        let slot = {
            let page = self.read(leaf_id)?;
            let node = node_at(&page, leaf_id, 0)?;
            match node.search(key) {
                Ok(index) if matches!(node.leaf_value(index), LeafValue::Inline(old) if offset + bytes.len() <= old.len()) => {
                    index
                }
                _ => return Err(Error::corrupt(leaf_id, "the value to patch is absent or too short")),
            }
        };
        let slot = u16::try_from(slot).map_err(|_| Error::corrupt(leaf_id, "more slots than a page holds"))?;
        let offset = u16::try_from(offset).map_err(|_| Error::corrupt(leaf_id, "a patch beyond a page"))?;
        self.change(leaf_id, Change::CellValuePatch { slot, offset, bytes })
    }

    /// Puts a leaf cell; returns whether the key is new, and the overflow chain of a replaced
    /// value, to free.
    fn put_cell(&mut self, root: PageId, key: &[u8], cell: &[u8]) -> Result<(bool, Option<PageId>)> {
        self.begin_mtr()?;
        let path = self.descend(root, key)?;
        let Some(&(leaf_id, _)) = path.last() else {
            return Err(Error::corrupt(root, "empty path"));
        };
        let (fits, old_chain, found) = {
            let page = self.read(leaf_id)?;
            let node = node_at(&page, leaf_id, 0)?;
            let found = node.search(key);
            match found {
                Ok(index) => {
                    let old_len = node.cell(index).len();
                    let chain = match node.leaf_value(index) {
                        LeafValue::Overflow { first_page, .. } => Some(first_page),
                        LeafValue::Inline(_) => None,
                    };
                    (node.free_bytes() + old_len >= cell.len(), chain, found)
                }
                Err(_) => (node.free_bytes() >= cell.len() + SLOT_BYTES, None, found),
            }
        };
        if fits {
            // The slot just found goes into the record: applying it (here and in recovery)
            // checks the slot's neighbours instead of searching the page again.
            let (slot, replace) = match found {
                Ok(index) => (index, true),
                Err(index) => (index, false),
            };
            let slot = u16::try_from(slot).map_err(|_| Error::corrupt(leaf_id, "more slots than a page holds"))?;
            self.change(leaf_id, Change::CellPutAt { slot, replace, cell })?;
        } else {
            self.split_leaf(&path, cell)?;
        }
        self.path_buffer = path;
        Ok((found.is_err(), old_chain))
    }
}
