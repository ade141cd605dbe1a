//! The read paths: a point lookup, and the chunks of one leaf that an iterator copies out,
//! forward or backward, through any `PageSource` (the newest state or a snapshot).
//!
//! This module only reads; it must not change a page nor take a lock (the caller holds the
//! tree's read or write lock).

use std::ops::Bound;

use crate::error::{Error, Result};
use crate::page::{LeafValue, PageId};

use super::overflow::read_value;
use super::{node_at, read_meta, PageSource};

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
