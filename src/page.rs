//! Page formats: the header every page shares, the slotted node page (leaf and branch), overflow
//! pages, free pages and the meta page; encoding, decoding and validation.
//!
//! This module owns the byte layout of a page and the primitive edits of it. It must not decide
//! *when* a page changes: only [`crate::redo::apply`] calls the editing functions here, so every
//! change to a page is the application of a logged redo record. Readers get [`Node`] views of
//! validated bytes.
//!
//! # Common page header (32 bytes, little-endian)
//!
//! | offset | size | field           | meaning                                                      |
//! |--------|------|-----------------|--------------------------------------------------------------|
//! | 0      | 4    | `checksum`      | CRC-32C of the page id (4 bytes LE) followed by bytes 4..page_size |
//! | 4      | 1    | `kind`          | 1 meta, 2 leaf, 3 branch, 4 overflow, 5 free                 |
//! | 5      | 1    | `level`         | 0 for leaves, parent level = child level + 1; 0 otherwise    |
//! | 6      | 2    | `cell_count`    | cells (nodes); 0 otherwise                                   |
//! | 8      | 8    | `lsn`           | end LSN of the last mtr that changed the page                |
//! | 16     | 4    | `page_id`       | the page's own id: a page written to the wrong place fails   |
//! | 20     | 4    | `link`          | leaf: right sibling; branch: leftmost child; overflow: next page of the chain; free: next free page; 0 = none |
//! | 24     | 4    | `content_start` | node: offset of the cell content area; overflow: data bytes  |
//! | 28     | 2    | `frag_bytes`    | node: bytes of dead cells inside the content area            |
//! | 30     | 2    | reserved        | zero                                                         |
//!
//! The checksum covers the page id, so a page image that is intact but belongs elsewhere (a
//! misdirected write) fails it too. A page is **valid** when its checksum matches and its
//! structure passes [`validate`]. Page 0 is the meta page; page ids are `u32`.
//!
//! # Node page (leaf or branch): a slotted page
//!
//! | offset                 | content                                                      |
//! |------------------------|--------------------------------------------------------------|
//! | 32                     | slot array: `cell_count` × 6-byte slots, in key order         |
//! | ...                    | free gap                                                     |
//! | `content_start`..end   | cell content, in any order, with `frag_bytes` of dead cells  |
//!
//! Slot (6 bytes): the cell's offset in the page (u16 LE), then the **key head**: the first 4
//! bytes of the cell's key, zero-padded if it is shorter (see [`key_head`]). A binary search
//! compares heads inside the slot array, which a few cache lines hold, and reads a cell only
//! where heads tie: a lookup misses the cache on about one cell per node instead of one per
//! probe. [`validate`] checks every head against its key.
//!
//! Leaf cell: `key_len: u16`, `value_word: u32`, key, then either the value inline
//! (`value_word` = its length, high bit clear) or, for a value in an overflow chain, the first
//! overflow page id as u32 (`value_word` = total value length | `0x8000_0000`).
//!
//! Branch cell: `key_len: u16`, `child: u32`, key. A branch with cells `(k1, c1) .. (kn, cn)` and
//! leftmost child `c0 = link` sends keys `< k1` to `c0` and keys `>= ki` (and `< ki+1`) to `ci`.
//!
//! Keys are 1..=[`MAX_KEY_BYTES`] bytes, strictly ascending within a page.
//!
//! # Overflow page
//! Header, then `content_start` bytes of value data from offset 32. `link` names the next page of
//! the chain (0 ends it).
//!
//! # Free page
//! Header only (`link` = next free page); the rest is zero.
//!
//! # Meta page (page 0)
//!
//! | offset | size | field          |                                                          |
//! |--------|------|----------------|----------------------------------------------------------|
//! | 32     | 8    | magic          | `b"mtrdbDAT"`                                            |
//! | 40     | 4    | version        | [`FORMAT_VERSION`] (3); version 2 had 2-byte slots without key heads, version 1 also one tree and no catalog |
//! | 44     | 4    | `page_size`    | bytes, a power of two in 4096..=65536                    |
//! | 48     | 8    | `log_id`       | the id in the redo log's header: the pair belongs together |
//! | 56     | 4    | `catalog_root` | root page of the catalog tree ([`crate::catalog`])       |
//! | 60     | 4    | `page_count`   | pages in use or free: ids 0..page_count                  |
//! | 64     | 4    | `free_head`    | first page of the free list, 0 = empty                   |
//! | 68     | 8    | `next_tree_id` | the id the next keyspace created gets (ids are never reused) |
//!
//! # Trees
//! Every tree (the catalog and each keyspace) keeps its root page for its whole life: a root
//! split moves the root's cells into a new child and the root becomes a branch one level up, and
//! a root left with one child takes that child's cells back. A tree's height is its root's level
//! plus one, so nothing outside the root page changes when a tree grows or shrinks a level.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// A page's number; page `id` lives at byte `id * page_size` of the data file.
pub type PageId = u32;

/// Bytes of the common header.
pub const HEADER_BYTES: usize = 32;
/// Bytes of one slot: the cell's offset (u16) and its key's head (see [`key_head`]).
pub const SLOT_BYTES: usize = 6;
/// Where in a slot the key head lies.
const SLOT_HEAD_AT: usize = 2;
/// The longest key.
pub const MAX_KEY_BYTES: usize = 1024;
/// The smallest and largest page sizes.
pub const MIN_PAGE_SIZE: usize = 4096;
/// See [`MIN_PAGE_SIZE`].
pub const MAX_PAGE_SIZE: usize = 65536;
/// The meta page's id.
pub const META_PAGE_ID: PageId = 0;
/// Bytes of a leaf cell before its key.
pub const LEAF_CELL_PREFIX: usize = 6;
/// Bytes of a branch cell before its key.
pub const BRANCH_CELL_PREFIX: usize = 6;
const _: () = assert!(LEAF_CELL_PREFIX == BRANCH_CELL_PREFIX, "Node::key reads both cell kinds alike");
const OVERFLOW_FLAG: u32 = 0x8000_0000;
const META_MAGIC: [u8; 8] = *b"mtrdbDAT";
/// The data file format this build reads and writes (the meta page's `version`).
pub const FORMAT_VERSION: u32 = 3;
const META_VERSION: u32 = FORMAT_VERSION;

/// The header every page starts with.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct PageHeader {
    /// See the module doc.
    pub checksum: U32,
    /// See [`PageKind`].
    pub kind: u8,
    /// Tree level (0 for leaves).
    pub level: u8,
    /// Cells of a node.
    pub cell_count: U16,
    /// End LSN of the last mtr that changed the page.
    pub lsn: U64,
    /// The page's own id.
    pub page_id: U32,
    /// Sibling, leftmost child, next overflow or next free page.
    pub link: U32,
    /// Node: content area start; overflow: data bytes.
    pub content_start: U32,
    /// Node: dead bytes in the content area.
    pub frag_bytes: U16,
    /// Zero.
    pub reserved: U16,
}
const _: () = assert!(std::mem::size_of::<PageHeader>() == HEADER_BYTES);

/// The meta page's body, after the common header.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct MetaBody {
    /// `b"mtrdbDAT"`.
    pub magic: [u8; 8],
    /// Format version.
    pub version: U32,
    /// Page size in bytes.
    pub page_size: U32,
    /// Pairs the data file with its redo log.
    pub log_id: U64,
    /// Root page of the catalog.
    pub catalog_root: U32,
    /// Page ids in use: `0..page_count`.
    pub page_count: U32,
    /// First free page, 0 = none.
    pub free_head: U32,
    /// The next keyspace's id.
    pub next_tree_id: U64,
}
const _: () = assert!(std::mem::size_of::<MetaBody>() == 44);
/// Bytes from the start of the data file that hold the meta page's fixed fields.
pub const META_PREFIX_BYTES: usize = HEADER_BYTES + std::mem::size_of::<MetaBody>();

/// What a page is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PageKind {
    /// Page 0.
    Meta = 1,
    /// A leaf node.
    Leaf = 2,
    /// A branch (interior) node.
    Branch = 3,
    /// A piece of a large value.
    Overflow = 4,
    /// On the free list.
    Free = 5,
}

impl PageKind {
    /// Decodes a kind byte.
    #[must_use]
    pub fn from_byte(byte: u8) -> Option<PageKind> {
        Some(match byte {
            1 => PageKind::Meta,
            2 => PageKind::Leaf,
            3 => PageKind::Branch,
            4 => PageKind::Overflow,
            5 => PageKind::Free,
            _ => return None,
        })
    }
}

/// The decoded fields of the meta page that change.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct MetaState {
    /// Root page of the catalog tree.
    pub catalog_root: PageId,
    /// Page ids `0..page_count` are in use or free.
    pub page_count: u32,
    /// First free page, 0 = none.
    pub free_head: PageId,
    /// The id the next keyspace created gets.
    pub next_tree_id: u64,
}

impl MetaState {
    /// Whether the fields are consistent: a catalog root inside the file, a free list head
    /// inside the file, tree ids past the default keyspace's. [`validate`] and the redo records
    /// that set them both require it.
    #[must_use]
    pub fn is_plausible(&self) -> bool {
        self.page_count >= 3
            && self.catalog_root != 0
            && self.catalog_root < self.page_count
            && self.free_head < self.page_count
            && self.next_tree_id >= 2
    }
}

/// Why a page is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PageError(pub String);

fn bad(detail: impl Into<String>) -> PageError {
    PageError(detail.into())
}

/// The header of a page (any page at least [`HEADER_BYTES`] long).
#[must_use]
pub fn header(page: &[u8]) -> &PageHeader {
    // A page slice is always at least MIN_PAGE_SIZE bytes long (the pager guarantees it).
    match PageHeader::ref_from_prefix(page) {
        Ok((header, _)) => header,
        Err(_) => unreachable_short_page(),
    }
}

/// The header of a page, mutable (for [`crate::redo`] only).
pub(crate) fn header_mut(page: &mut [u8]) -> &mut PageHeader {
    match PageHeader::mut_from_prefix(page) {
        Ok((header, _)) => header,
        Err(_) => unreachable_short_page(),
    }
}

#[cold]
fn unreachable_short_page() -> ! {
    panic!("page buffer shorter than a page header: a pager invariant is broken")
}

/// The checksum a page should carry.
#[must_use]
pub fn compute_checksum(page_id: PageId, page: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&page_id.to_le_bytes());
    crc32c::crc32c_append(crc, page.get(4..).unwrap_or_default())
}

/// Stores the checksum (just before a page is written out).
pub fn seal(page_id: PageId, page: &mut [u8]) {
    let checksum = compute_checksum(page_id, page);
    header_mut(page).checksum.set(checksum);
}

/// Whether the stored checksum matches the bytes and the id.
#[must_use]
pub fn checksum_ok(page_id: PageId, page: &[u8]) -> bool {
    header(page).checksum.get() == compute_checksum(page_id, page) && header(page).page_id.get() == page_id
}

/// The usable bytes of a node page: everything after the header.
#[must_use]
pub fn usable_bytes(page_size: usize) -> usize {
    page_size - HEADER_BYTES
}

/// The largest cell (without its slot) a node page accepts: a third of the usable space, so a
/// split always leaves both halves with room, and a branch always holds at least two keys.
#[must_use]
pub fn max_cell_bytes(page_size: usize) -> usize {
    usable_bytes(page_size) / 3 - SLOT_BYTES
}

/// Value bytes one overflow page holds.
#[must_use]
pub fn overflow_capacity(page_size: usize) -> usize {
    page_size - HEADER_BYTES
}

/// How a leaf holds a value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LeafValue<'a> {
    /// The bytes, in the cell.
    Inline(&'a [u8]),
    /// In an overflow chain.
    Overflow {
        /// Total value length.
        len: u32,
        /// First page of the chain.
        first_page: PageId,
    },
}

/// Encodes a leaf cell into `out`.
pub fn encode_leaf_cell(out: &mut Vec<u8>, key: &[u8], value: LeafValue<'_>) {
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    match value {
        LeafValue::Inline(bytes) => {
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(bytes);
        }
        LeafValue::Overflow { len, first_page } => {
            out.extend_from_slice(&(len | OVERFLOW_FLAG).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&first_page.to_le_bytes());
        }
    }
}

/// Encodes a branch cell into `out`.
pub fn encode_branch_cell(out: &mut Vec<u8>, key: &[u8], child: PageId) {
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(&child.to_le_bytes());
    out.extend_from_slice(key);
}

/// Bytes of a leaf cell for this key and value form.
#[must_use]
pub fn leaf_cell_len(key_len: usize, inline_value_len: Option<usize>) -> usize {
    LEAF_CELL_PREFIX + key_len + inline_value_len.unwrap_or(4)
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The length of the cell at the front of `bytes` on a page of `kind`, if it is well formed.
#[must_use]
pub fn cell_len(kind: PageKind, bytes: &[u8]) -> Option<usize> {
    let key_len = read_u16(bytes, 0)? as usize;
    let len = match kind {
        PageKind::Leaf => {
            let word = read_u32(bytes, 2)?;
            if word & OVERFLOW_FLAG != 0 {
                LEAF_CELL_PREFIX + key_len + 4
            } else {
                LEAF_CELL_PREFIX + key_len + word as usize
            }
        }
        PageKind::Branch => BRANCH_CELL_PREFIX + key_len,
        _ => return None,
    };
    ((1..=MAX_KEY_BYTES).contains(&key_len) && len <= bytes.len()).then_some(len)
}

/// The key of a well-formed cell.
#[must_use]
pub fn cell_key(cell: &[u8]) -> &[u8] {
    let key_len = read_u16(cell, 0).unwrap_or(0) as usize;
    cell.get(6..6 + key_len).unwrap_or_default()
}

/// Splits a run of concatenated cells into cells. `None` if any is malformed.
#[must_use]
pub fn split_cells(kind: PageKind, mut bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut cells = Vec::new();
    while !bytes.is_empty() {
        let len = cell_len(kind, bytes)?;
        cells.push(&bytes[..len]);
        bytes = &bytes[len..];
    }
    Some(cells)
}

/// A read-only view of a node page whose structure [`validate`] accepted.
#[derive(Copy, Clone, Debug)]
pub struct Node<'a> {
    bytes: &'a [u8],
    kind: PageKind,
}

impl<'a> Node<'a> {
    /// A view of a validated node page; `None` if the page is not a node.
    #[must_use]
    pub fn new(bytes: &'a [u8]) -> Option<Node<'a>> {
        let kind = PageKind::from_byte(header(bytes).kind)?;
        matches!(kind, PageKind::Leaf | PageKind::Branch).then_some(Node { bytes, kind })
    }

    /// Leaf or branch.
    #[must_use]
    pub fn kind(&self) -> PageKind {
        self.kind
    }

    /// Whether this is a leaf.
    #[must_use]
    pub fn is_leaf(&self) -> bool {
        self.kind == PageKind::Leaf
    }

    /// The page header.
    #[must_use]
    pub fn header(&self) -> &'a PageHeader {
        header(self.bytes)
    }

    /// The whole page.
    #[must_use]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of cells.
    #[must_use]
    pub fn len(&self) -> usize {
        self.header().cell_count.get() as usize
    }

    /// Whether the node has no cells.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Right sibling (leaf) or leftmost child (branch).
    #[must_use]
    pub fn link(&self) -> PageId {
        self.header().link.get()
    }

    fn cell_offset(&self, index: usize) -> usize {
        read_u16(self.bytes, HEADER_BYTES + SLOT_BYTES * index).unwrap_or(0) as usize
    }

    /// The key head slot `index` keeps, as an integer in key order.
    #[inline]
    fn head(&self, index: usize) -> u32 {
        let at = HEADER_BYTES + SLOT_BYTES * index + SLOT_HEAD_AT;
        let bytes = self.bytes.get(at..at + 4).and_then(|bytes| bytes.try_into().ok()).unwrap_or([0; 4]);
        // Big-endian, so that integer order is byte order (the slot holds key bytes as they are).
        #[allow(clippy::big_endian_bytes)]
        u32::from_be_bytes(bytes)
    }

    /// The cell at `index` (< len).
    #[must_use]
    pub fn cell(&self, index: usize) -> &'a [u8] {
        let offset = self.cell_offset(index);
        let rest = self.bytes.get(offset..).unwrap_or_default();
        let len = cell_len(self.kind, rest).unwrap_or(0);
        &rest[..len]
    }

    /// Every cell, concatenated in key order (as a `NODE_FORMAT` record carries them).
    #[must_use]
    pub fn cells_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len());
        for index in 0..self.len() {
            out.extend_from_slice(self.cell(index));
        }
        out
    }

    /// The key of the cell at `index`.
    #[must_use]
    pub fn key(&self, index: usize) -> &'a [u8] {
        // Leaf and branch cells both keep the key right after a 6-byte prefix that starts with
        // its length; reading it directly keeps binary search cheap.
        let offset = self.cell_offset(index);
        let key_len = read_u16(self.bytes, offset).unwrap_or(0) as usize;
        self.bytes.get(offset + LEAF_CELL_PREFIX..offset + LEAF_CELL_PREFIX + key_len).unwrap_or_default()
    }

    /// Binary search: `Ok(index)` of the key, or `Err(index)` where it would go.
    pub fn search(&self, key: &[u8]) -> Result<usize, usize> {
        #[allow(clippy::big_endian_bytes)]
        let head = u32::from_be_bytes(key_head(key));
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            // The slot's head decides most probes without reading the cell (module doc).
            let order = match self.head(mid).cmp(&head) {
                std::cmp::Ordering::Equal => compare_keys(self.key(mid), key),
                decided => decided,
            };
            match order {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    /// The value of the leaf cell at `index`.
    #[must_use]
    pub fn leaf_value(&self, index: usize) -> LeafValue<'a> {
        let cell = self.cell(index);
        let key_len = read_u16(cell, 0).unwrap_or(0) as usize;
        let word = read_u32(cell, 2).unwrap_or(0);
        let rest = cell.get(LEAF_CELL_PREFIX + key_len..).unwrap_or_default();
        if word & OVERFLOW_FLAG != 0 {
            LeafValue::Overflow { len: word & !OVERFLOW_FLAG, first_page: read_u32(rest, 0).unwrap_or(0) }
        } else {
            LeafValue::Inline(rest)
        }
    }

    /// Child `index` of a branch, 0..=len: 0 is the leftmost child, `i` the child of cell `i-1`.
    #[must_use]
    pub fn child(&self, index: usize) -> PageId {
        if index == 0 {
            self.link()
        } else {
            read_u32(self.cell(index - 1), 2).unwrap_or(0)
        }
    }

    /// Which child of a branch covers `key`.
    #[must_use]
    pub fn child_index_for(&self, key: &[u8]) -> usize {
        match self.search(key) {
            Ok(index) => index + 1,
            Err(index) => index,
        }
    }

    /// Bytes used: header, slots and live cells.
    #[must_use]
    pub fn used_bytes(&self) -> usize {
        let content_start = self.header().content_start.get() as usize;
        let frag = self.header().frag_bytes.get() as usize;
        // Saturating: a view of bytes that were never validated must not panic.
        HEADER_BYTES + SLOT_BYTES * self.len() + self.bytes.len().saturating_sub(content_start).saturating_sub(frag)
    }

    /// Bytes a new cell (with its slot) could use after a defragmentation.
    #[must_use]
    pub fn free_bytes(&self) -> usize {
        self.bytes.len() - self.used_bytes()
    }
}

/// The head a slot keeps of its key: the first 4 bytes, zero-padded, read as a big-endian
/// integer, so that integer order is byte order. `key_head(a) < key_head(b)` implies `a < b`
/// (a shorter key padded with zeros never sorts after a longer one it is a prefix of); equal
/// heads decide nothing.
#[inline]
#[must_use]
pub fn key_head(key: &[u8]) -> [u8; 4] {
    let mut head = [0u8; 4];
    let len = key.len().min(4);
    head[..len].copy_from_slice(&key[..len]);
    head
}

/// Byte-wise lexicographic order of keys, as `<[u8]>::cmp`, but comparing the first 8 bytes as
/// one integer first: most comparisons in a binary search are decided there, without a call to
/// `memcmp` (which the profile of point gets showed at 13% of their time).
#[inline]
#[must_use]
pub fn compare_keys(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    if let (Some(a_head), Some(b_head)) = (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        // Big-endian, so that integer order is byte order (not an on-disk encoding).
        #[allow(clippy::big_endian_bytes)]
        let (a_word, b_word) = (u64::from_be_bytes(*a_head), u64::from_be_bytes(*b_head));
        if a_word != b_word {
            return a_word.cmp(&b_word);
        }
        return a[8..].cmp(&b[8..]);
    }
    a.cmp(b)
}

/// Checks a page's structure (not its checksum). Cheap enough to run on every page read from
/// the file, and after every redo application in debug builds.
pub fn validate(page_id: PageId, page: &[u8]) -> Result<PageKind, PageError> {
    let page_size = page.len();
    let header = header(page);
    let kind = PageKind::from_byte(header.kind).ok_or_else(|| bad(format!("unknown page kind {}", header.kind)))?;
    if header.page_id.get() != page_id {
        return Err(bad(format!("page claims to be page {}", header.page_id.get())));
    }
    match kind {
        PageKind::Meta => {
            if page_id != META_PAGE_ID {
                return Err(bad("a meta page away from page 0"));
            }
            let meta = meta_body(page).ok_or_else(|| bad("meta page too short"))?;
            if meta.magic != META_MAGIC || meta.version.get() != META_VERSION {
                return Err(bad("meta page magic or version mismatch"));
            }
            if meta.page_size.get() as usize != page_size {
                return Err(bad(format!("meta page records page size {}", meta.page_size.get())));
            }
            let state = meta_state(page);
            if !state.is_plausible() {
                return Err(bad(format!("implausible meta state {state:?}")));
            }
        }
        PageKind::Leaf | PageKind::Branch => {
            if (kind == PageKind::Leaf) != (header.level == 0) {
                return Err(bad(format!("{kind:?} at level {}", header.level)));
            }
            let count = header.cell_count.get() as usize;
            let content_start = header.content_start.get() as usize;
            let slots_end = HEADER_BYTES + SLOT_BYTES * count;
            if content_start < slots_end || content_start > page_size {
                return Err(bad(format!("content area starts at {content_start}, slots end at {slots_end}")));
            }
            let mut live = 0usize;
            let mut previous: Option<&[u8]> = None;
            for index in 0..count {
                let offset = read_u16(page, HEADER_BYTES + SLOT_BYTES * index).unwrap_or(0) as usize;
                if offset < content_start || offset >= page_size {
                    return Err(bad(format!("slot {index} points at {offset}, outside the content area")));
                }
                let len = cell_len(kind, &page[offset..]).ok_or_else(|| bad(format!("cell {index} is malformed")))?;
                live += len;
                let key = cell_key(&page[offset..offset + len]);
                let head_at = HEADER_BYTES + SLOT_BYTES * index + SLOT_HEAD_AT;
                if page[head_at..head_at + 4] != key_head(key) {
                    return Err(bad(format!("slot {index}'s key head does not match its key")));
                }
                if let Some(previous) = previous {
                    if previous >= key {
                        return Err(bad(format!("keys out of order at cell {index}")));
                    }
                }
                previous = Some(key);
            }
            let frag = header.frag_bytes.get() as usize;
            if live + frag != page_size - content_start {
                return Err(bad(format!(
                    "cells take {live} bytes and {frag} are dead, but the content area is {} bytes",
                    page_size - content_start
                )));
            }
            if kind == PageKind::Branch && header.link.get() == 0 {
                return Err(bad("branch without a leftmost child"));
            }
        }
        PageKind::Overflow => {
            let data = header.content_start.get() as usize;
            if data == 0 || data > overflow_capacity(page_size) {
                return Err(bad(format!("overflow page with {data} data bytes")));
            }
        }
        PageKind::Free => {}
    }
    Ok(kind)
}

fn meta_body(page: &[u8]) -> Option<&MetaBody> {
    MetaBody::ref_from_prefix(page.get(HEADER_BYTES..)?).ok().map(|(meta, _)| meta)
}

pub(crate) fn meta_body_mut(page: &mut [u8]) -> &mut MetaBody {
    match page.get_mut(HEADER_BYTES..).map(MetaBody::mut_from_prefix) {
        Some(Ok((meta, _))) => meta,
        _ => unreachable_short_page(),
    }
}

/// The changing fields of a meta page.
#[must_use]
pub fn meta_state(page: &[u8]) -> MetaState {
    match meta_body(page) {
        Some(meta) => MetaState {
            catalog_root: meta.catalog_root.get(),
            page_count: meta.page_count.get(),
            free_head: meta.free_head.get(),
            next_tree_id: meta.next_tree_id.get(),
        },
        None => MetaState::default(),
    }
}

/// The log id recorded in a meta page.
#[must_use]
pub fn meta_log_id(page: &[u8]) -> u64 {
    meta_body(page).map_or(0, |meta| meta.log_id.get())
}

/// Writes the constant fields of a meta page (for [`crate::redo`]).
pub(crate) fn init_meta(page: &mut [u8], log_id: u64) {
    let page_size = page.len() as u32;
    let meta = meta_body_mut(page);
    meta.magic = META_MAGIC;
    meta.version.set(META_VERSION);
    meta.page_size.set(page_size);
    meta.log_id.set(log_id);
}

/// Sets the changing fields of a meta page (for [`crate::redo`]).
pub(crate) fn set_meta_state(page: &mut [u8], state: MetaState) {
    let meta = meta_body_mut(page);
    meta.catalog_root.set(state.catalog_root);
    meta.page_count.set(state.page_count);
    meta.free_head.set(state.free_head);
    meta.next_tree_id.set(state.next_tree_id);
}

/// Reads the page size a data file claims, from the first bytes of its meta page, before the
/// meta page can be checksummed (its size is needed for that).
#[must_use]
pub fn claimed_page_size(first_bytes: &[u8]) -> Option<usize> {
    let meta = meta_body(first_bytes)?;
    (meta.magic == META_MAGIC).then_some(meta.page_size.get() as usize)
}

/// Reads the format version a data file claims, from the first bytes of its meta page (see
/// [`claimed_page_size`]): `None` if they do not start like an mtrdb meta page.
#[must_use]
pub fn claimed_format_version(first_bytes: &[u8]) -> Option<u32> {
    let meta = meta_body(first_bytes)?;
    (meta.magic == META_MAGIC).then_some(meta.version.get())
}

/// A cheap check that the editing primitives can work on `page` without going out of bounds:
/// the slot array ends before the content area, which ends inside the page, and every slot
/// points into the content area. (Full [`validate`] also checks every cell and the key order.)
#[must_use]
pub fn node_layout_in_bounds(page: &[u8]) -> bool {
    let header = header(page);
    let count = header.cell_count.get() as usize;
    let content_start = header.content_start.get() as usize;
    let frag = header.frag_bytes.get() as usize;
    let slots_end = HEADER_BYTES + SLOT_BYTES * count;
    if slots_end > content_start || content_start > page.len() || frag > page.len() - content_start {
        return false;
    }
    (0..count).all(|index| {
        let offset = read_u16(page, HEADER_BYTES + SLOT_BYTES * index).unwrap_or(0) as usize;
        offset >= content_start && offset < page.len()
    })
}

// ---- Editing primitives. Only `crate::redo::apply` calls these. -------------------------------

/// Resets a page to an empty page of `kind` (all bytes after the header zeroed).
pub(crate) fn format(page: &mut [u8], page_id: PageId, kind: PageKind, level: u8, link: PageId) {
    let page_size = page.len();
    page.fill(0);
    let header = header_mut(page);
    header.kind = kind as u8;
    header.level = level;
    header.page_id.set(page_id);
    header.link.set(link);
    if matches!(kind, PageKind::Leaf | PageKind::Branch) {
        header.content_start.set(page_size as u32);
    }
}

/// Inserts `cell` at slot `index` of a node page. The caller has checked that it fits
/// ([`Node::free_bytes`] >= cell + slot).
pub(crate) fn insert_cell(page: &mut [u8], index: usize, cell: &[u8]) -> Result<(), PageError> {
    let need = cell.len() + SLOT_BYTES;
    let (count, content_start) = {
        let header = header(page);
        (header.cell_count.get() as usize, header.content_start.get() as usize)
    };
    let slots_end = HEADER_BYTES + SLOT_BYTES * count;
    if content_start - slots_end < need {
        let node = Node::new(page).ok_or_else(|| bad("insert into a page that is not a node"))?;
        if node.free_bytes() < need {
            return Err(bad(format!("no room for a cell of {} bytes", cell.len())));
        }
        defragment(page);
    }
    let content_start = header(page).content_start.get() as usize;
    if content_start < slots_end + need || content_start > page.len() {
        // Only a page whose cells overlap (never a validated one) gets here.
        return Err(bad("the content area has no room left after defragmenting"));
    }
    let cell_at = content_start - cell.len();
    page[cell_at..content_start].copy_from_slice(cell);
    let slot_at = HEADER_BYTES + SLOT_BYTES * index;
    page.copy_within(slot_at..slots_end, slot_at + SLOT_BYTES);
    page[slot_at..slot_at + SLOT_HEAD_AT].copy_from_slice(&(cell_at as u16).to_le_bytes());
    page[slot_at + SLOT_HEAD_AT..slot_at + SLOT_BYTES].copy_from_slice(&key_head(cell_key(cell)));
    let header = header_mut(page);
    header.content_start.set(cell_at as u32);
    header.cell_count.set((count + 1) as u16);
    Ok(())
}

/// Overwrites `bytes` of the inline value of the leaf cell at slot `index`, from `offset` within
/// the value; the cell keeps its size, so nothing else on the page moves.
pub(crate) fn patch_inline_value(page: &mut [u8], index: usize, offset: usize, bytes: &[u8]) -> Result<(), PageError> {
    let node = Node::new(page).ok_or_else(|| bad("not a node"))?;
    if !node.is_leaf() || index >= node.len() {
        return Err(bad(format!("no leaf cell at slot {index}")));
    }
    let LeafValue::Inline(value) = node.leaf_value(index) else {
        return Err(bad("the value is in an overflow chain"));
    };
    if bytes.is_empty() || offset.checked_add(bytes.len()).is_none_or(|end| end > value.len()) {
        return Err(bad(format!("{} bytes at {offset} do not lie inside a {}-byte value", bytes.len(), value.len())));
    }
    let start = value.as_ptr() as usize - page.as_ptr() as usize + offset;
    page[start..start + bytes.len()].copy_from_slice(bytes);
    Ok(())
}

/// Removes the cell at slot `index` of a node page.
pub(crate) fn remove_cell(page: &mut [u8], index: usize) {
    let node_kind = PageKind::from_byte(header(page).kind).unwrap_or(PageKind::Leaf);
    let count = header(page).cell_count.get() as usize;
    let slot_at = HEADER_BYTES + SLOT_BYTES * index;
    let offset = read_u16(page, slot_at).unwrap_or(0) as usize;
    let len = cell_len(node_kind, &page[offset..]).unwrap_or(0);
    let slots_end = HEADER_BYTES + SLOT_BYTES * count;
    page.copy_within(slot_at + SLOT_BYTES..slots_end, slot_at);
    page[slots_end - SLOT_BYTES..slots_end].fill(0);
    page[offset..offset + len].fill(0);
    let header = header_mut(page);
    header.cell_count.set((count - 1) as u16);
    if offset == header.content_start.get() as usize {
        header.content_start.set((offset + len) as u32);
        // Dead cells right behind the removed one stay counted as fragments until the next
        // defragmentation; the accounting stays exact either way.
    } else {
        header.frag_bytes.set(header.frag_bytes.get().saturating_add(len as u16));
    }
}

/// Rewrites the content area so the live cells are contiguous at the page's end, in slot order.
pub(crate) fn defragment(page: &mut [u8]) {
    let Some(node) = Node::new(page) else { return };
    let page_size = page.len();
    let mut cells: Vec<u8> = Vec::with_capacity(page_size);
    let mut offsets = Vec::with_capacity(node.len());
    for index in 0..node.len() {
        offsets.push(cells.len());
        cells.extend_from_slice(node.cell(index));
    }
    let count = node.len();
    let slots_end = HEADER_BYTES + SLOT_BYTES * count;
    if cells.len() > page_size - slots_end.min(page_size) {
        return; // overlapping cells: a damaged page, which `validate` would have refused
    }
    let content_start = page_size - cells.len();
    // Only the gap needs clearing: the content area is overwritten whole.
    page[slots_end..content_start].fill(0);
    page[content_start..].copy_from_slice(&cells);
    for (index, offset) in offsets.into_iter().enumerate() {
        let at = HEADER_BYTES + SLOT_BYTES * index;
        page[at..at + SLOT_HEAD_AT].copy_from_slice(&((content_start + offset) as u16).to_le_bytes());
    }
    let header = header_mut(page);
    header.content_start.set(content_start as u32);
    header.frag_bytes.set(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(page_size: usize) -> Vec<u8> {
        let mut page = vec![0u8; page_size];
        format(&mut page, 7, PageKind::Leaf, 0, 0);
        page
    }

    fn cell(key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_leaf_cell(&mut out, key, LeafValue::Inline(value));
        out
    }

    proptest::proptest! {
        /// `compare_keys` is byte-wise lexicographic order, whatever the lengths and shared
        /// prefixes (short alphabets make equal 8-byte heads and prefixes of each other common).
        #[test]
        fn compare_keys_is_byte_order(
            a in proptest::collection::vec(0u8..3, 0..20),
            b in proptest::collection::vec(0u8..3, 0..20),
            high_bit in proptest::bool::ANY,
        ) {
            let flip = |key: &[u8]| -> Vec<u8> { key.iter().map(|&byte| if high_bit { byte | 0x80 } else { byte }).collect() };
            let (a, b) = (flip(&a), flip(&b));
            proptest::prop_assert_eq!(compare_keys(&a, &b), a.cmp(&b));
            proptest::prop_assert_eq!(compare_keys(&b, &a), b.cmp(&a));
            proptest::prop_assert_eq!(compare_keys(&a, &a), std::cmp::Ordering::Equal);
        }

        /// A search through the slots' key heads finds what a search of the keys themselves
        /// finds, for present and absent keys, with keys that are prefixes of each other, shorter
        /// than a head, or share their head (short alphabets with zero bytes make all of these
        /// common); the page keeps its heads valid through removals and defragmentation.
        #[test]
        fn search_by_heads_is_search_by_keys(
            keys in proptest::collection::btree_set(proptest::collection::vec(0u8..3, 1..7), 1..60),
            probes in proptest::collection::vec(proptest::collection::vec(0u8..3, 1..7), 1..40),
            remove_every in 2usize..5,
        ) {
            let mut page = leaf(4096);
            let mut sorted: Vec<Vec<u8>> = Vec::new();
            for key in &keys {
                let index = Node::new(&page).unwrap().search(key).unwrap_err();
                insert_cell(&mut page, index, &cell(key, b"v")).unwrap();
                sorted.push(key.clone());
            }
            for index in (0..sorted.len()).step_by(remove_every).rev() {
                remove_cell(&mut page, index);
                sorted.remove(index);
            }
            defragment(&mut page);
            validate(7, &page).unwrap();
            let node = Node::new(&page).unwrap();
            for probe in probes.iter().chain(keys.iter()) {
                let expected = sorted.binary_search_by(|key| key.as_slice().cmp(probe.as_slice()));
                proptest::prop_assert_eq!(node.search(probe), expected, "probe {:?}", probe);
            }
        }
    }

    #[test]
    fn validate_refuses_a_slot_whose_key_head_is_not_its_key() {
        let mut page = leaf(4096);
        for (index, key) in [&b"apple"[..], b"banana", b"cherry"].into_iter().enumerate() {
            insert_cell(&mut page, index, &cell(key, b"v")).unwrap();
        }
        validate(7, &page).unwrap();
        // The second slot's head claims "bb..": a search for "bb" would land on "banana".
        page[HEADER_BYTES + SLOT_BYTES + SLOT_HEAD_AT + 1] = b'b';
        let error = validate(7, &page).unwrap_err();
        assert!(error.0.contains("key head"), "{}", error.0);
    }

    #[test]
    fn insert_remove_defragment_keep_the_page_valid() {
        let mut page = leaf(4096);
        for i in 0..40u32 {
            let key = format!("key{:05}", i * 7 % 40);
            let node = Node::new(&page).unwrap();
            let index = node.search(key.as_bytes()).unwrap_err();
            insert_cell(&mut page, index, &cell(key.as_bytes(), &[i as u8; 50])).unwrap();
            validate(7, &page).unwrap();
        }
        for i in (0..40).step_by(3) {
            let key = format!("key{i:05}");
            let index = Node::new(&page).unwrap().search(key.as_bytes()).unwrap();
            remove_cell(&mut page, index);
            validate(7, &page).unwrap();
        }
        let before: Vec<Vec<u8>> =
            (0..Node::new(&page).unwrap().len()).map(|i| Node::new(&page).unwrap().cell(i).to_vec()).collect();
        defragment(&mut page);
        validate(7, &page).unwrap();
        let node = Node::new(&page).unwrap();
        assert_eq!(node.header().frag_bytes.get(), 0);
        let after: Vec<Vec<u8>> = (0..node.len()).map(|i| node.cell(i).to_vec()).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn full_page_refuses_a_cell() {
        let mut page = leaf(4096);
        let mut i = 0u32;
        loop {
            let key = format!("k{i:08}");
            let c = cell(key.as_bytes(), &[0; 100]);
            if Node::new(&page).unwrap().free_bytes() < c.len() + SLOT_BYTES {
                assert!(insert_cell(&mut page, i as usize, &c).is_err());
                break;
            }
            insert_cell(&mut page, i as usize, &c).unwrap();
            i += 1;
        }
        assert!(i > 30);
    }

    #[test]
    fn checksum_binds_the_page_id() {
        let mut page = leaf(4096);
        seal(7, &mut page);
        assert!(checksum_ok(7, &page));
        assert!(!checksum_ok(8, &page));
        page[100] ^= 1;
        assert!(!checksum_ok(7, &page));
    }

    #[test]
    fn validate_rejects_garbage_without_panicking() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut page = leaf(4096);
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % 4096) as usize;
                page[at] = (state >> 32) as u8;
            }
            let _ = validate(7, &page);
        }
    }
}
