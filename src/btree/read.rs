//! The read paths: a point lookup, and the chunks of one leaf that an iterator copies out,
//! forward or backward, through any `PageSource` (the newest state or a snapshot).
//!
//! This module only reads; it must not change a page nor take a lock (the caller holds the
//! tree's read or write lock).

use std::ops::{Bound, Range};

use crate::error::{Error, Result};
use crate::page::{LeafValue, PageId};

use super::overflow::read_value;
use super::{node_at, read_meta, root_level, PageSource};

/// A value as an iterator fill finds it: inline bytes (a range of the chunk's copy of its leaf),
/// or where its overflow chain starts (the iterator reads the chain when it yields the entry).
pub(crate) enum ChunkValue {
    Inline(Range<usize>),
    Overflow { len: u32, first_page: PageId },
}

/// One entry of a chunk: its key's range in the chunk's copy of its leaf, and its value.
pub(crate) struct ChunkEntry {
    pub key: Range<usize>,
    pub value: ChunkValue,
}

/// Where `part`, a slice of `page`, lies in it.
fn range_in(page: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - page.as_ptr() as usize;
    debug_assert!(start + part.len() <= page.len());
    start..start + part.len()
}

/// A leaf entry's key and value, as ranges of `page` (the copy they were read from).
fn entry_in(page: &[u8], key: &[u8], value: LeafValue<'_>) -> ChunkEntry {
    let value = match value {
        LeafValue::Inline(inline) => ChunkValue::Inline(range_in(page, inline)),
        LeafValue::Overflow { len, first_page } => ChunkValue::Overflow { len, first_page },
    };
    ChunkEntry { key: range_in(page, key), value }
}

/// Point lookup in the tree rooted at `root`.
pub(crate) fn get(source: &impl PageSource, root: PageId, key: &[u8], page_size: usize) -> Result<Option<Vec<u8>>> {
    let mut page_id = root;
    let mut page = source.page(root)?;
    let mut level = root_level(&page, root)?;
    loop {
        let node = node_at(&page, page_id, level)?;
        if level == 0 {
            return match node.search(key) {
                Ok(index) => read_value(source, node.leaf_value(index), page_size).map(Some),
                Err(_) => Ok(None),
            };
        }
        page_id = node.child(node.child_index_for(key));
        level -= 1;
        page = source.page(page_id)?;
    }
}

/// The entries of one leaf that lie within `(low, high)`, read for an iterator: collected
/// `forward` from the first key after `low`, or backward from the last key before `high`.
pub(crate) struct LeafChunk {
    /// A copy of the leaf the entries are in: one allocation and one sequential copy per chunk,
    /// whose slices are the entries' keys and inline values.
    pub leaf: Vec<u8>,
    /// The entries, in iteration order.
    pub entries: Vec<ChunkEntry>,
    /// Whether the range has no entries beyond this chunk (in its direction).
    pub exhausted: bool,
    /// Forward chunks that ended at the end of their leaf: the leaf to the right, where the next
    /// chunk starts (at the same version) without descending from the root again.
    pub next_leaf: Option<PageId>,
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

/// The next entries after `low` (and within `high`): all those of one leaf. The leaf is
/// `from_leaf` if given (the previous chunk's `next_leaf`, read from the same `source`, so the
/// link is consistent with it), else the one a descent from the root finds.
pub(crate) fn chunk_forward(
    source: &impl PageSource,
    root: PageId,
    low: &Bound<Vec<u8>>,
    high: &Bound<Vec<u8>>,
    from_leaf: Option<PageId>,
) -> Result<LeafChunk> {
    let meta = read_meta(source)?;
    let mut page_id = root;
    if let Some(leaf) = from_leaf {
        page_id = leaf;
    } else {
        let height = root_level(&source.page(root)?, root)? + 1;
        for level in (1..height).rev() {
            let page = source.page(page_id)?;
            let node = node_at(&page, page_id, level)?;
            page_id = match low {
                Bound::Unbounded => node.child(0),
                Bound::Included(key) | Bound::Excluded(key) => node.child(node.child_index_for(key)),
            };
        }
    }
    // Follow right links past leaves with nothing in range (at most the whole level).
    let mut hops = 0u64;
    loop {
        let leaf = source.page(page_id)?.to_vec();
        let node = node_at(&leaf, page_id, 0)?;
        let mut exhausted = false;
        let first = match low {
            Bound::Unbounded => 0,
            Bound::Included(key) => node.search(key).unwrap_or_else(|index| index),
            Bound::Excluded(key) => node.search(key).map_or_else(|index| index, |index| index + 1),
        };
        let mut entries = Vec::with_capacity(node.len().saturating_sub(first));
        let mut index = first;
        while index < node.len() {
            let key = node.key(index);
            if !within_high(key, high) {
                exhausted = true;
                break;
            }
            entries.push(entry_in(&leaf, key, node.leaf_value(index)));
            index += 1;
        }
        let next = node.link();
        if next == 0 && index == node.len() {
            exhausted = true;
        }
        if !entries.is_empty() || exhausted {
            let next_leaf = (index == node.len() && next != 0).then_some(next);
            return Ok(LeafChunk { leaf, entries, exhausted, next_leaf });
        }
        page_id = next;
        hops += 1;
        if hops > u64::from(meta.page_count) {
            return Err(Error::corrupt(page_id, "leaf chain loops"));
        }
    }
}

/// The previous entries before `high` (and within `low`), last key first: all those of one leaf.
pub(crate) fn chunk_backward(
    source: &impl PageSource,
    root: PageId,
    low: &Bound<Vec<u8>>,
    high: &Bound<Vec<u8>>,
) -> Result<LeafChunk> {
    let meta = read_meta(source)?;
    let height = root_level(&source.page(root)?, root)? + 1;
    let mut high = high.clone();
    // Each round descends to the leaf that would hold the largest key within `high`; if that leaf
    // has none, everything in it is at or above its lower fence, so search again below the fence.
    for _ in 0..=meta.page_count {
        let mut page_id = root;
        // Where the leaf's lower fence is (the deepest separator below the path): read once,
        // after the descent, rather than copied at every level.
        let mut fence_at: Option<(PageId, u32, usize)> = None;
        for level in (1..height).rev() {
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
                fence_at = Some((page_id, level, index - 1));
            }
            page_id = node.child(index);
        }
        let fence_page = match fence_at {
            Some((branch_id, level, index)) => Some((source.page(branch_id)?, branch_id, level, index)),
            None => None,
        };
        let fence: Option<&[u8]> = match &fence_page {
            Some((page, branch_id, level, index)) => Some(node_at(page, *branch_id, *level)?.key(*index)),
            None => None,
        };
        let leaf = source.page(page_id)?.to_vec();
        let node = node_at(&leaf, page_id, 0)?;
        let mut exhausted = false;
        // One past the last index within `high`.
        let end = match &high {
            Bound::Unbounded => node.len(),
            Bound::Included(key) => node.search(key).map_or_else(|index| index, |index| index + 1),
            Bound::Excluded(key) => node.search(key).unwrap_or_else(|index| index),
        };
        let mut entries = Vec::with_capacity(end);
        let mut index = end;
        while index > 0 {
            let key = node.key(index - 1);
            if !within_low(key, low) {
                exhausted = true;
                break;
            }
            entries.push(entry_in(&leaf, key, node.leaf_value(index - 1)));
            index -= 1;
        }
        // Keys below the fence can still be in range only if the low bound lies below it.
        let more_below = match (&fence, low) {
            (None, _) => false,
            (Some(_), Bound::Unbounded) => true,
            (Some(fence), Bound::Included(bound) | Bound::Excluded(bound)) => bound.as_slice() < *fence,
        };
        if !more_below {
            exhausted = true;
        }
        if !entries.is_empty() || exhausted {
            return Ok(LeafChunk { leaf, entries, exhausted, next_leaf: None });
        }
        if let Some(fence) = fence {
            high = Bound::Excluded(fence.to_vec());
        }
    }
    Err(Error::corrupt(root, "backward search does not terminate"))
}
