//! The engine's redo record kinds, their encodings, and [`apply`]: the one function that changes
//! a page.
//!
//! Every page change, on the forward path and in recovery alike, is made by encoding a
//! [`Change`] into the open mtr and then running [`apply`] on the encoded bytes. Forward path and
//! redo pass are one code path, so they cannot disagree, and a record that is not self-contained
//! fails at once in every test. Each record's effect depends only on the prior state of its own
//! page and its own bytes: a split logs the entries it moves, never "copy from page A".
//!
//! This module owns the record formats and their application; it must not decide which changes
//! to make (that is [`crate::btree`]) or stamp page LSNs (the mtr does that once per page per mtr,
//! so that several records of one mtr on one page all apply).
//!
//! # Record payloads (after the mtr crate's `kind`, `page_id`, `payload_len`)
//!
//! Integers are little-endian. "cells" is a run of concatenated cells in the page format of
//! [`crate::page`], in ascending key order.
//!
//! | kind | name            | payload                                                          |
//! |------|-----------------|------------------------------------------------------------------|
//! | 16   | `NODE_FORMAT`   | `node_kind: u8` (2 leaf, 3 branch), `level: u8`, `link: u32`, cells: the page becomes exactly this node |
//! | 17   | `OVERFLOW_FORMAT` | `link: u32`, data: the page becomes an overflow page         |
//! | 18   | `FREE_FORMAT`   | `link: u32`: the page becomes a free page                        |
//! | 19   | `CELL_PUT`      | one cell: inserted in key order; on a leaf it replaces a cell with the same key |
//! | 20   | `CELL_DELETE`   | a key: its cell is removed (it must exist)                       |
//! | 21   | `TRUNCATE_FROM` | a key: every cell with a key >= it is removed                    |
//! | 22   | `CELLS_APPEND`  | cells, all greater than the page's keys: appended (merges)       |
//! | 23   | `SET_LINK`      | `link: u32`                                                      |
//! | 24   | `META_INIT`     | `log_id: u64`, then the `META_SET` payload: page 0 becomes a meta page |
//! | 25   | `META_SET`      | `root: u32`, `height: u32`, `page_count: u32`, `free_head: u32` |
//! | 26   | `BATCH_ABORT`   | empty, on page 0, in an mtr flagged [`MTR_ABORT`]: never applied |
//!
//! # Mtr flags (the mtr crate's flags byte)
//! - [`MTR_COMMIT`]: this mtr ends a user batch. Recovery applies the mtrs of a batch only once
//!   it has seen its commit; mtrs after the last commit are discarded.
//! - [`MTR_ABORT`]: the batch in progress was abandoned in memory; recovery discards its mtrs.

use crate::page::{self, LeafValue, MetaState, Node, PageId, PageKind};

/// Flag: the mtr commits the batch it ends.
pub const MTR_COMMIT: u8 = 0x01;
/// Flag: the batch in progress is abandoned.
pub const MTR_ABORT: u8 = 0x02;

/// Record kinds (see the module doc).
pub mod kind {
    /// The page becomes exactly the given node.
    pub const NODE_FORMAT: u8 = 16;
    /// The page becomes an overflow page.
    pub const OVERFLOW_FORMAT: u8 = 17;
    /// The page becomes a free page.
    pub const FREE_FORMAT: u8 = 18;
    /// Insert (or, on a leaf, replace) a cell.
    pub const CELL_PUT: u8 = 19;
    /// Remove a key's cell.
    pub const CELL_DELETE: u8 = 20;
    /// Remove every cell from a key on.
    pub const TRUNCATE_FROM: u8 = 21;
    /// Append cells greater than all present.
    pub const CELLS_APPEND: u8 = 22;
    /// Set the page's link.
    pub const SET_LINK: u8 = 23;
    /// Initialise the meta page.
    pub const META_INIT: u8 = 24;
    /// Set the meta page's changing fields.
    pub const META_SET: u8 = 25;
    /// Marks an abandoned batch; never applied.
    pub const BATCH_ABORT: u8 = 26;
}

/// A change to one page, before encoding.
#[derive(Clone, Debug)]
pub enum Change<'a> {
    /// See [`kind::NODE_FORMAT`]. `cells` are concatenated cells.
    NodeFormat {
        /// Leaf or branch.
        node_kind: PageKind,
        /// Tree level.
        level: u8,
        /// Right sibling or leftmost child.
        link: PageId,
        /// Concatenated cells, ascending.
        cells: &'a [u8],
    },
    /// See [`kind::OVERFLOW_FORMAT`].
    OverflowFormat {
        /// Next page of the chain, 0 = last.
        link: PageId,
        /// Value bytes held by this page.
        data: &'a [u8],
    },
    /// See [`kind::FREE_FORMAT`].
    FreeFormat {
        /// Next free page.
        link: PageId,
    },
    /// See [`kind::CELL_PUT`].
    CellPut {
        /// The encoded cell.
        cell: &'a [u8],
    },
    /// See [`kind::CELL_DELETE`].
    CellDelete {
        /// The key.
        key: &'a [u8],
    },
    /// See [`kind::TRUNCATE_FROM`].
    TruncateFrom {
        /// The first key removed.
        key: &'a [u8],
    },
    /// See [`kind::CELLS_APPEND`].
    CellsAppend {
        /// Concatenated cells, ascending, all above the page's keys.
        cells: &'a [u8],
    },
    /// See [`kind::SET_LINK`].
    SetLink {
        /// The new link.
        link: PageId,
    },
    /// See [`kind::META_INIT`].
    MetaInit {
        /// The redo log's id.
        log_id: u64,
        /// Initial state.
        state: MetaState,
    },
    /// See [`kind::META_SET`].
    MetaSet {
        /// New state.
        state: MetaState,
    },
}

impl Change<'_> {
    /// The record kind.
    #[must_use]
    pub fn kind(&self) -> u8 {
        match self {
            Change::NodeFormat { .. } => kind::NODE_FORMAT,
            Change::OverflowFormat { .. } => kind::OVERFLOW_FORMAT,
            Change::FreeFormat { .. } => kind::FREE_FORMAT,
            Change::CellPut { .. } => kind::CELL_PUT,
            Change::CellDelete { .. } => kind::CELL_DELETE,
            Change::TruncateFrom { .. } => kind::TRUNCATE_FROM,
            Change::CellsAppend { .. } => kind::CELLS_APPEND,
            Change::SetLink { .. } => kind::SET_LINK,
            Change::MetaInit { .. } => kind::META_INIT,
            Change::MetaSet { .. } => kind::META_SET,
        }
    }

    /// Appends the payload encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Change::NodeFormat { node_kind, level, link, cells } => {
                out.push(node_kind as u8);
                out.push(level);
                out.extend_from_slice(&link.to_le_bytes());
                out.extend_from_slice(cells);
            }
            Change::OverflowFormat { link, data } => {
                out.extend_from_slice(&link.to_le_bytes());
                out.extend_from_slice(data);
            }
            Change::FreeFormat { link } | Change::SetLink { link } => out.extend_from_slice(&link.to_le_bytes()),
            Change::CellPut { cell } => out.extend_from_slice(cell),
            Change::CellDelete { key } | Change::TruncateFrom { key } => out.extend_from_slice(key),
            Change::CellsAppend { cells } => out.extend_from_slice(cells),
            Change::MetaInit { log_id, state } => {
                out.extend_from_slice(&log_id.to_le_bytes());
                encode_meta_state(out, state);
            }
            Change::MetaSet { state } => encode_meta_state(out, state),
        }
    }
}

fn encode_meta_state(out: &mut Vec<u8>, state: MetaState) {
    for field in [state.root, state.height, state.page_count, state.free_head] {
        out.extend_from_slice(&field.to_le_bytes());
    }
}

/// Whether a record kind rebuilds its page from nothing, so the page's prior bytes (even torn
/// or never written ones) do not matter.
#[must_use]
pub fn is_format(record_kind: u8) -> bool {
    matches!(record_kind, kind::NODE_FORMAT | kind::OVERFLOW_FORMAT | kind::FREE_FORMAT | kind::META_INIT)
}

/// Why a record could not be applied: the log holds a record that does not fit its page. On the
/// forward path this is a bug; in recovery, corruption that slipped past the CRC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redo record kind {kind} does not apply to page {page_id}: {detail}")]
pub struct ApplyError {
    /// The record kind.
    pub kind: u8,
    /// The page.
    pub page_id: PageId,
    /// What did not fit.
    pub detail: String,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Applies one record to `page` (which must be `page_size` bytes). Never panics on any payload:
/// a record that does not fit the page is an [`ApplyError`]. Does not touch the page LSN.
pub fn apply(record_kind: u8, page_id: PageId, payload: &[u8], page: &mut [u8]) -> Result<(), ApplyError> {
    let fail = |detail: &str| ApplyError { kind: record_kind, page_id, detail: detail.to_string() };
    let node_kind = || -> Result<PageKind, ApplyError> {
        Node::new(page).map(|node| node.kind()).ok_or_else(|| fail("not a node page"))
    };
    match record_kind {
        kind::NODE_FORMAT => {
            let (&kind_byte, rest) = payload.split_first().ok_or_else(|| fail("empty payload"))?;
            let (&level, rest) = rest.split_first().ok_or_else(|| fail("no level"))?;
            let link = u32_at(rest, 0).ok_or_else(|| fail("no link"))?;
            let node_kind = match PageKind::from_byte(kind_byte) {
                Some(kind @ (PageKind::Leaf | PageKind::Branch)) => kind,
                _ => return Err(fail("not a node kind")),
            };
            if (node_kind == PageKind::Leaf) != (level == 0) {
                return Err(fail("level does not match the node kind"));
            }
            let cells = page::split_cells(node_kind, &rest[4..]).ok_or_else(|| fail("malformed cells"))?;
            page::format(page, page_id, node_kind, level, link);
            append_cells(page, &cells).map_err(|e| fail(&e))?;
        }
        kind::OVERFLOW_FORMAT => {
            let link = u32_at(payload, 0).ok_or_else(|| fail("no link"))?;
            let data = &payload[4..];
            if data.is_empty() || data.len() > page::overflow_capacity(page.len()) {
                return Err(fail("overflow data size out of range"));
            }
            page::format(page, page_id, PageKind::Overflow, 0, link);
            page::header_mut(page).content_start.set(data.len() as u32);
            page[page::HEADER_BYTES..page::HEADER_BYTES + data.len()].copy_from_slice(data);
        }
        kind::FREE_FORMAT => {
            let link = u32_at(payload, 0).filter(|_| payload.len() == 4).ok_or_else(|| fail("bad link"))?;
            page::format(page, page_id, PageKind::Free, 0, link);
        }
        kind::CELL_PUT => {
            let kind = node_kind()?;
            if page::cell_len(kind, payload) != Some(payload.len()) {
                return Err(fail("malformed cell"));
            }
            if payload.len() > page::max_cell_bytes(page.len()) {
                return Err(fail("cell larger than a page allows"));
            }
            let key = page::cell_key(payload);
            let found = Node::new(page).ok_or_else(|| fail("not a node"))?.search(key);
            let index = match found {
                Ok(index) if kind == PageKind::Leaf => {
                    page::remove_cell(page, index);
                    index
                }
                Ok(_) => return Err(fail("branch key already present")),
                Err(index) => index,
            };
            page::insert_cell(page, index, payload).map_err(|e| fail(&e.0))?;
        }
        kind::CELL_DELETE => {
            let node = Node::new(page).ok_or_else(|| fail("not a node"))?;
            let index = node.search(payload).map_err(|_| fail("key not present"))?;
            page::remove_cell(page, index);
        }
        kind::TRUNCATE_FROM => {
            let node = Node::new(page).ok_or_else(|| fail("not a node"))?;
            let (from, count) = match node.search(payload) {
                Ok(index) | Err(index) => (index, node.len()),
            };
            for index in (from..count).rev() {
                page::remove_cell(page, index);
            }
        }
        kind::CELLS_APPEND => {
            let kind = node_kind()?;
            let cells = page::split_cells(kind, payload).ok_or_else(|| fail("malformed cells"))?;
            append_cells(page, &cells).map_err(|e| fail(&e))?;
        }
        kind::SET_LINK => {
            let link = u32_at(payload, 0).filter(|_| payload.len() == 4).ok_or_else(|| fail("bad link"))?;
            let kind = PageKind::from_byte(page::header(page).kind);
            if !matches!(kind, Some(PageKind::Leaf | PageKind::Branch | PageKind::Overflow | PageKind::Free)) {
                return Err(fail("page has no link"));
            }
            page::header_mut(page).link.set(link);
        }
        kind::META_INIT => {
            if page_id != page::META_PAGE_ID || payload.len() != 8 + 16 {
                return Err(fail("meta init off page 0 or of the wrong size"));
            }
            let log_id = u64::from_le_bytes(payload[..8].try_into().map_err(|_| fail("log id"))?);
            let state = decode_meta_state(&payload[8..]).ok_or_else(|| fail("meta state"))?;
            page::format(page, page_id, PageKind::Meta, 0, 0);
            page::init_meta(page, log_id);
            page::set_meta_state(page, state);
        }
        kind::META_SET => {
            if page_id != page::META_PAGE_ID || page::header(page).kind != PageKind::Meta as u8 {
                return Err(fail("meta set on a page that is not the meta page"));
            }
            let state = decode_meta_state(payload).ok_or_else(|| fail("meta state"))?;
            page::set_meta_state(page, state);
        }
        _ => return Err(fail("unknown record kind")),
    }
    Ok(())
}

fn decode_meta_state(bytes: &[u8]) -> Option<MetaState> {
    if bytes.len() != 16 {
        return None;
    }
    Some(MetaState {
        root: u32_at(bytes, 0)?,
        height: u32_at(bytes, 4)?,
        page_count: u32_at(bytes, 8)?,
        free_head: u32_at(bytes, 12)?,
    })
}

fn append_cells(page: &mut [u8], cells: &[&[u8]]) -> Result<(), String> {
    let max_cell = page::max_cell_bytes(page.len());
    for cell in cells {
        if cell.len() > max_cell {
            return Err("cell larger than a page allows".into());
        }
        let node = Node::new(page).ok_or("not a node")?;
        let count = node.len();
        if count > 0 && node.key(count - 1) >= page::cell_key(cell) {
            return Err("cells not above the page's keys".into());
        }
        page::insert_cell(page, count, cell).map_err(|e| e.0)?;
    }
    Ok(())
}

/// The value held by a decoded leaf cell, for callers that only need to know its form.
#[must_use]
pub fn describe_value(value: LeafValue<'_>) -> String {
    match value {
        LeafValue::Inline(bytes) => format!("{} bytes inline", bytes.len()),
        LeafValue::Overflow { len, first_page } => format!("{len} bytes from overflow page {first_page}"),
    }
}
