//! The engine's redo record kinds, their encodings, and [`apply`] (with [`apply_to_valid_page`]
//! behind it): the one function that changes a page.
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
//! | 25   | `META_SET`      | `catalog_root: u32`, `page_count: u32`, `free_head: u32`, `next_tree_id: u64` |
//! | 26   | `BATCH_ABORT`   | empty, on page 0, in an mtr flagged [`MTR_ABORT`]: never applied |
//! | 27   | `CELL_PUT_AT`   | `slot: u16`, `replace: u8` (0 or 1), one cell: with `replace` 1 it replaces the cell at `slot`, which must hold the same key; with 0 it is inserted at `slot`, which must lie between the keys below and above it. A put whose slot the writer already found, so neither the forward path nor recovery searches the page again |
//! | 28   | `CELL_VALUE_PATCH` | `slot: u16`, `offset: u16`, bytes (at least one): they overwrite the inline value of the leaf cell at `slot` from `offset`, inside the value; the cell keeps its size (a counter in a catalog entry) |
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
    /// Insert a cell at a given slot, or replace the cell there.
    pub const CELL_PUT_AT: u8 = 27;
    /// Overwrite bytes inside a leaf cell's inline value.
    pub const CELL_VALUE_PATCH: u8 = 28;
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
    /// See [`kind::CELL_PUT_AT`].
    CellPutAt {
        /// The slot the cell goes to (or whose cell it replaces).
        slot: u16,
        /// Whether it replaces the cell at `slot` (same key).
        replace: bool,
        /// The encoded cell.
        cell: &'a [u8],
    },
    /// See [`kind::CELL_VALUE_PATCH`].
    CellValuePatch {
        /// The cell's slot.
        slot: u16,
        /// Where in its value the bytes go.
        offset: u16,
        /// The new bytes.
        bytes: &'a [u8],
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
            Change::CellPutAt { .. } => kind::CELL_PUT_AT,
            Change::CellValuePatch { .. } => kind::CELL_VALUE_PATCH,
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
            Change::CellPutAt { slot, replace, cell } => {
                out.extend_from_slice(&slot.to_le_bytes());
                out.push(u8::from(replace));
                out.extend_from_slice(cell);
            }
            Change::CellValuePatch { slot, offset, bytes } => {
                out.extend_from_slice(&slot.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
                out.extend_from_slice(bytes);
            }
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
    for field in [state.catalog_root, state.page_count, state.free_head] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(&state.next_tree_id.to_le_bytes());
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

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Applies one record to `page` (which must be `page_size` bytes), whatever the page holds.
/// Never panics on any payload or page: a record that does not fit the page is an
/// [`ApplyError`]. Does not touch the page LSN.
///
/// A record that edits a node in place relies on the node's layout, so on such a record this
/// first checks that the page's slots and content area lie inside it (a walk over every slot).
/// The engine itself calls [`apply_to_valid_page`], which knows the layout is sound.
pub fn apply(record_kind: u8, page_id: PageId, payload: &[u8], page: &mut [u8]) -> Result<(), ApplyError> {
    if matches!(
        record_kind,
        kind::CELL_PUT
            | kind::CELL_PUT_AT
            | kind::CELL_VALUE_PATCH
            | kind::CELL_DELETE
            | kind::TRUNCATE_FROM
            | kind::CELLS_APPEND
    ) && !page::node_layout_in_bounds(page)
    {
        return Err(ApplyError {
            kind: record_kind,
            page_id,
            detail: "the node's slots or content area lie outside the page".to_string(),
        });
    }
    apply_to_valid_page(record_kind, page_id, payload, page)
}

/// [`apply`] to a page that [`page::validate`] accepts (or that this function built from one),
/// or by a record that rebuilds its page from nothing ([`is_format`]): the pages the pager hands
/// out, which it validates when it reads them from the data file. Skips [`apply`]'s walk over
/// the slots (7% of the samples in `apply` in a profile of the recovery bench); still never
/// panics on any payload, and on such a page a successful apply leaves a page `validate`
/// accepts (the `page` fuzz target checks both).
pub(crate) fn apply_to_valid_page(
    record_kind: u8,
    page_id: PageId,
    payload: &[u8],
    page: &mut [u8],
) -> Result<(), ApplyError> {
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
            if node_kind == PageKind::Branch && link == 0 {
                return Err(fail("a branch needs a leftmost child"));
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
        kind::CELL_VALUE_PATCH => {
            let (Some(slot), Some(offset), Some(bytes)) = (payload.get(..2), payload.get(2..4), payload.get(4..))
            else {
                return Err(fail("no slot or offset"));
            };
            let slot = usize::from(u16::from_le_bytes([slot[0], slot[1]]));
            let offset = usize::from(u16::from_le_bytes([offset[0], offset[1]]));
            page::patch_inline_value(page, slot, offset, bytes).map_err(|e| fail(&e.0))?;
        }
        kind::CELL_PUT_AT => {
            let kind = node_kind()?;
            let (Some(slot), Some(&replace), Some(cell)) = (payload.get(..2), payload.get(2), payload.get(3..)) else {
                return Err(fail("no slot"));
            };
            let slot = usize::from(u16::from_le_bytes([slot[0], slot[1]]));
            if page::cell_len(kind, cell) != Some(cell.len()) {
                return Err(fail("malformed cell"));
            }
            if cell.len() > page::max_cell_bytes(page.len()) {
                return Err(fail("cell larger than a page allows"));
            }
            let key = page::cell_key(cell);
            let node = Node::new(page).ok_or_else(|| fail("not a node"))?;
            let len = node.len();
            // The slot is checked against its neighbours: a hint that does not fit the page is
            // refused, never applied out of order.
            match replace {
                1 if kind == PageKind::Leaf && slot < len && node.key(slot) == key => {
                    page::remove_cell(page, slot);
                }
                0 if slot <= len
                    && (slot == 0 || page::compare_keys(node.key(slot - 1), key).is_lt())
                    && (slot == len || page::compare_keys(key, node.key(slot)).is_lt()) => {}
                0 | 1 => return Err(fail("the slot does not fit the page's keys")),
                _ => return Err(fail("bad replace flag")),
            }
            page::insert_cell(page, slot, cell).map_err(|e| fail(&e.0))?;
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
            if kind == Some(PageKind::Branch) && link == 0 {
                return Err(fail("a branch needs a leftmost child"));
            }
            page::header_mut(page).link.set(link);
        }
        kind::META_INIT => {
            if page_id != page::META_PAGE_ID || payload.len() != 8 + META_STATE_BYTES {
                return Err(fail("meta init off page 0 or of the wrong size"));
            }
            let log_id = u64::from_le_bytes(payload[..8].try_into().map_err(|_| fail("log id"))?);
            let state =
                decode_meta_state(&payload[8..]).filter(MetaState::is_plausible).ok_or_else(|| fail("meta state"))?;
            page::format(page, page_id, PageKind::Meta, 0, 0);
            page::init_meta(page, log_id);
            page::set_meta_state(page, state);
        }
        kind::META_SET => {
            if page_id != page::META_PAGE_ID || page::header(page).kind != PageKind::Meta as u8 {
                return Err(fail("meta set on a page that is not the meta page"));
            }
            let state = decode_meta_state(payload).filter(MetaState::is_plausible).ok_or_else(|| fail("meta state"))?;
            page::set_meta_state(page, state);
        }
        _ => return Err(fail("unknown record kind")),
    }
    Ok(())
}

/// Bytes of an encoded [`MetaState`].
const META_STATE_BYTES: usize = 20;

fn decode_meta_state(bytes: &[u8]) -> Option<MetaState> {
    if bytes.len() != META_STATE_BYTES {
        return None;
    }
    Some(MetaState {
        catalog_root: u32_at(bytes, 0)?,
        page_count: u32_at(bytes, 4)?,
        free_head: u32_at(bytes, 8)?,
        next_tree_id: u64::from_le_bytes(bytes[12..20].try_into().ok()?),
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

/// The name of a record kind (`"CELL_PUT"`), or `None` for a kind this engine does not define.
#[must_use]
pub fn kind_name(record_kind: u8) -> Option<&'static str> {
    Some(match record_kind {
        kind::NODE_FORMAT => "NODE_FORMAT",
        kind::OVERFLOW_FORMAT => "OVERFLOW_FORMAT",
        kind::FREE_FORMAT => "FREE_FORMAT",
        kind::CELL_PUT => "CELL_PUT",
        kind::CELL_PUT_AT => "CELL_PUT_AT",
        kind::CELL_VALUE_PATCH => "CELL_VALUE_PATCH",
        kind::CELL_DELETE => "CELL_DELETE",
        kind::TRUNCATE_FROM => "TRUNCATE_FROM",
        kind::CELLS_APPEND => "CELLS_APPEND",
        kind::SET_LINK => "SET_LINK",
        kind::META_INIT => "META_INIT",
        kind::META_SET => "META_SET",
        kind::BATCH_ABORT => "BATCH_ABORT",
        _ => return None,
    })
}

/// A one-line, human-readable description of a record, for inspection tools (`mtrdb log`): the
/// kind's name and a short summary of the change, such as
/// `CELL_PUT key="user42" (inline 100 B)`, `NODE_FORMAT leaf level=0 link=0 cells=17` or
/// `META_SET catalog_root=1 pages=40 free_head=0 next_tree_id=2`. Keys are shown escaped and shortened.
///
/// Never panics, whatever the payload: a payload that does not decode is described as
/// malformed. Only the record's own bytes are read, so a cell's form (leaf or branch) is inferred
/// from its shape where the record does not say it.
#[must_use]
pub fn describe_record(record_kind: u8, payload: &[u8]) -> String {
    let Some(name) = kind_name(record_kind) else {
        return format!("UNKNOWN(kind={record_kind}) {} B", payload.len());
    };
    let summary = match record_kind {
        kind::NODE_FORMAT => describe_node_format(payload),
        kind::OVERFLOW_FORMAT => u32_at(payload, 0).map(|link| format!("link={link} data={} B", payload.len() - 4)),
        kind::FREE_FORMAT | kind::SET_LINK => {
            u32_at(payload, 0).filter(|_| payload.len() == 4).map(|link| format!("link={link}"))
        }
        kind::CELL_PUT => describe_cell(payload),
        kind::CELL_PUT_AT => match (payload.get(..2), payload.get(2), payload.get(3..).and_then(describe_cell)) {
            (Some(slot), Some(&replace @ (0 | 1)), Some(cell)) => Some(format!(
                "slot={}{} {cell}",
                u16::from_le_bytes([slot[0], slot[1]]),
                if replace == 1 { " replace" } else { "" }
            )),
            _ => None,
        },
        kind::CELL_VALUE_PATCH => match (u16_at(payload, 0), u16_at(payload, 2)) {
            (Some(slot), Some(offset)) if payload.len() > 4 => {
                Some(format!("slot={slot} offset={offset} bytes={}", payload.len() - 4))
            }
            _ => None,
        },
        kind::CELL_DELETE | kind::TRUNCATE_FROM => {
            (!payload.is_empty()).then(|| format!("key={}", describe_key(payload)))
        }
        kind::CELLS_APPEND => describe_cells(payload).map(|cells| format!("{cells} ({} B)", payload.len())),
        kind::META_INIT => match (payload.get(..8), payload.get(8..).and_then(decode_meta_state)) {
            (Some(log_id), Some(state)) => {
                let mut id = [0u8; 8];
                id.copy_from_slice(log_id);
                Some(format!("log_id={:#018x} {}", u64::from_le_bytes(id), describe_meta_state(state)))
            }
            _ => None,
        },
        kind::META_SET => decode_meta_state(payload).map(describe_meta_state),
        kind::BATCH_ABORT => Some(if payload.is_empty() { String::new() } else { format!("{} B", payload.len()) }),
        _ => None,
    };
    match summary {
        Some(summary) if summary.is_empty() => name.to_string(),
        Some(summary) => format!("{name} {summary}"),
        None => format!("{name} <malformed payload: {} B>", payload.len()),
    }
}

/// Keys longer than this are shown shortened.
const DESCRIBED_KEY_BYTES: usize = 40;

/// A key, shortened to [`DESCRIBED_KEY_BYTES`], as [`escape_bytes`] shows it.
fn describe_key(key: &[u8]) -> String {
    escape_bytes(key, DESCRIBED_KEY_BYTES)
}

/// Bytes in double quotes: printable ASCII as is, `"` and `\` escaped, other bytes as `\xNN`; at
/// most `max` bytes are shown, then the full length. For inspection tools.
#[must_use]
pub fn escape_bytes(bytes: &[u8], max: usize) -> String {
    let shown = bytes.get(..max).unwrap_or(bytes);
    let mut out = String::with_capacity(shown.len() + 2);
    out.push('"');
    for &byte in shown {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push('"');
    if shown.len() < bytes.len() {
        out.push_str(&format!("...({} B)", bytes.len()));
    }
    out
}

fn describe_meta_state(state: MetaState) -> String {
    format!(
        "catalog_root={} pages={} free_head={} next_tree_id={}",
        state.catalog_root, state.page_count, state.free_head, state.next_tree_id
    )
}

fn describe_node_format(payload: &[u8]) -> Option<String> {
    let (&kind_byte, rest) = payload.split_first()?;
    let (&level, rest) = rest.split_first()?;
    let link = u32_at(rest, 0)?;
    let node_kind = match PageKind::from_byte(kind_byte) {
        Some(kind @ (PageKind::Leaf | PageKind::Branch)) => kind,
        _ => return None,
    };
    let name = if node_kind == PageKind::Leaf { "leaf" } else { "branch" };
    let cells = rest.get(4..)?;
    let count = match page::split_cells(node_kind, cells) {
        Some(split) => {
            let keys = match (split.first(), split.last()) {
                (Some(first), Some(last)) => {
                    format!(" keys {}..{}", describe_key(page::cell_key(first)), describe_key(page::cell_key(last)))
                }
                _ => String::new(),
            };
            format!("cells={}{keys}", split.len())
        }
        None => format!("cells=<malformed {} B>", cells.len()),
    };
    Some(format!("{name} level={level} link={link} {count}"))
}

/// One cell, leaf or branch, told apart by its shape: a branch cell is exactly its prefix and key
/// with a nonzero child id; a leaf cell carries its inline value or an overflow page id after the
/// key.
fn describe_cell(cell: &[u8]) -> Option<String> {
    let key_len = usize::from(u16::from_le_bytes([*cell.first()?, *cell.get(1)?]));
    let word = u32_at(cell, 2)?;
    let key = cell.get(page::LEAF_CELL_PREFIX..page::LEAF_CELL_PREFIX + key_len)?;
    if key.is_empty() {
        return None;
    }
    let rest = cell.len() - page::LEAF_CELL_PREFIX - key_len;
    let key = describe_key(key);
    if word & 0x8000_0000 != 0 && rest == 4 {
        let first_page = u32_at(cell, page::LEAF_CELL_PREFIX + key_len)?;
        return Some(format!("key={key} (overflow {} B from page {first_page})", word & !0x8000_0000));
    }
    if rest == 0 && word != 0 {
        return Some(format!("key={key} child={word}"));
    }
    (word as usize == rest).then(|| format!("key={key} (inline {rest} B)"))
}

// Leaf and branch cells both start with `key_len: u16` and a `u32`; `describe_cell` relies on it.
const _: () = assert!(page::LEAF_CELL_PREFIX == page::BRANCH_CELL_PREFIX);

/// A run of cells: counted as leaf cells if they parse as such, else as branch cells.
fn describe_cells(cells: &[u8]) -> Option<String> {
    let (form, split) = match page::split_cells(PageKind::Leaf, cells) {
        Some(split) => ("leaf", split),
        None => ("branch", page::split_cells(PageKind::Branch, cells)?),
    };
    let keys = match (split.first(), split.last()) {
        (Some(first), Some(last)) => {
            format!(" keys {}..{}", describe_key(page::cell_key(first)), describe_key(page::cell_key(last)))
        }
        _ => String::new(),
    };
    Some(format!("{} {form} cells{keys}", split.len()))
}

#[cfg(test)]
mod describe_tests {
    use super::*;

    fn payload(change: &Change<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        change.encode(&mut out);
        out
    }

    #[test]
    fn describes_each_kind() {
        let mut leaf_cell = Vec::new();
        page::encode_leaf_cell(&mut leaf_cell, b"user42", LeafValue::Inline(&[0; 100]));
        assert_eq!(describe_record(kind::CELL_PUT, &leaf_cell), "CELL_PUT key=\"user42\" (inline 100 B)");
        let mut branch_cell = Vec::new();
        page::encode_branch_cell(&mut branch_cell, b"m\x01", 12);
        assert_eq!(describe_record(kind::CELL_PUT, &branch_cell), "CELL_PUT key=\"m\\x01\" child=12");
        let mut overflow_cell = Vec::new();
        page::encode_leaf_cell(&mut overflow_cell, b"big", LeafValue::Overflow { len: 9000, first_page: 7 });
        assert_eq!(
            describe_record(kind::CELL_PUT, &overflow_cell),
            "CELL_PUT key=\"big\" (overflow 9000 B from page 7)"
        );
        let cells = [leaf_cell.clone(), overflow_cell.clone()].concat();
        let format = payload(&Change::NodeFormat { node_kind: PageKind::Leaf, level: 0, link: 0, cells: &cells });
        assert_eq!(
            describe_record(kind::NODE_FORMAT, &format),
            "NODE_FORMAT leaf level=0 link=0 cells=2 keys \"user42\"..\"big\""
        );
        let state = MetaState { catalog_root: 1, page_count: 40, free_head: 0, next_tree_id: 2 };
        assert_eq!(
            describe_record(kind::META_SET, &payload(&Change::MetaSet { state })),
            "META_SET catalog_root=1 pages=40 free_head=0 next_tree_id=2"
        );
        assert_eq!(describe_record(kind::SET_LINK, &payload(&Change::SetLink { link: 9 })), "SET_LINK link=9");
        assert_eq!(describe_record(kind::CELL_DELETE, b"k"), "CELL_DELETE key=\"k\"");
        assert_eq!(describe_record(kind::BATCH_ABORT, &[]), "BATCH_ABORT");
        assert_eq!(describe_record(kind::META_SET, &[1, 2]), "META_SET <malformed payload: 2 B>");
        assert_eq!(describe_record(200, &[1, 2, 3]), "UNKNOWN(kind=200) 3 B");
        let long_key = vec![b'a'; 100];
        assert!(describe_record(kind::CELL_DELETE, &long_key).ends_with("...(100 B)"));
    }

    #[test]
    fn never_panics_on_arbitrary_payloads() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let record_kind = (next() % 20) as u8 + 14;
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let text = describe_record(record_kind, &bytes);
            assert!(!text.is_empty());
        }
    }
}

#[cfg(test)]
mod apply_refusals {
    //! Records that would leave a page `page::validate` rejects are refused by `apply` (found by
    //! the `page` fuzz target): recovery must never build an invalid page from a CRC-valid record.
    use super::*;

    fn encoded(change: &Change<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        change.encode(&mut out);
        out
    }

    #[test]
    fn a_branch_without_a_leftmost_child_is_refused() {
        let mut page = vec![0u8; 4096];
        let format = encoded(&Change::NodeFormat { node_kind: PageKind::Branch, level: 1, link: 0, cells: &[] });
        assert!(apply(kind::NODE_FORMAT, 5, &format, &mut page).is_err());
        let format = encoded(&Change::NodeFormat { node_kind: PageKind::Branch, level: 1, link: 9, cells: &[] });
        apply(kind::NODE_FORMAT, 5, &format, &mut page).unwrap();
        assert!(apply(kind::SET_LINK, 5, &encoded(&Change::SetLink { link: 0 }), &mut page).is_err());
        assert!(page::validate(5, &page).is_ok());
    }

    #[test]
    fn an_implausible_meta_state_is_refused() {
        let mut page = vec![0u8; 4096];
        let good = MetaState { catalog_root: 1, page_count: 3, free_head: 0, next_tree_id: 2 };
        apply(kind::META_INIT, 0, &encoded(&Change::MetaInit { log_id: 7, state: good }), &mut page).unwrap();
        for state in [
            MetaState { catalog_root: 0, ..good },
            MetaState { catalog_root: 3, ..good },
            MetaState { page_count: 2, ..good },
            MetaState { next_tree_id: 1, ..good },
            MetaState { free_head: 3, ..good },
        ] {
            assert!(apply(kind::META_SET, 0, &encoded(&Change::MetaSet { state }), &mut page).is_err(), "{state:?}");
            let mut fresh = vec![0u8; 4096];
            assert!(apply(kind::META_INIT, 0, &encoded(&Change::MetaInit { log_id: 7, state }), &mut fresh).is_err());
        }
        assert!(page::validate(0, &page).is_ok());
    }
}

#[cfg(test)]
mod cell_put_at {
    //! `CELL_PUT_AT` applies at its slot only where the slot fits the page's keys: a hint that
    //! does not is refused (never a cell out of order), and any payload is refused or applied,
    //! never a panic.
    use super::*;

    fn leaf_cell(key: &[u8]) -> Vec<u8> {
        let mut cell = Vec::new();
        page::encode_leaf_cell(&mut cell, key, LeafValue::Inline(b"v"));
        cell
    }

    fn put_at(page: &mut [u8], slot: u16, replace: bool, key: &[u8]) -> Result<(), ApplyError> {
        let cell = leaf_cell(key);
        let mut payload = Vec::new();
        Change::CellPutAt { slot, replace, cell: &cell }.encode(&mut payload);
        apply(kind::CELL_PUT_AT, 3, &payload, page)
    }

    fn keys(page: &[u8]) -> Vec<Vec<u8>> {
        let node = Node::new(page).unwrap();
        (0..node.len()).map(|i| node.key(i).to_vec()).collect()
    }

    /// Page 3 as a leaf holding "a" and "c".
    fn leaf_a_c() -> Vec<u8> {
        let mut page = vec![0u8; 4096];
        let cells = [leaf_cell(b"a"), leaf_cell(b"c")].concat();
        let mut format = Vec::new();
        Change::NodeFormat { node_kind: PageKind::Leaf, level: 0, link: 0, cells: &cells }.encode(&mut format);
        apply(kind::NODE_FORMAT, 3, &format, &mut page).unwrap();
        page
    }

    #[test]
    fn applies_at_fitting_slots_and_refuses_the_others() {
        let mut page = leaf_a_c();
        put_at(&mut page, 1, false, b"b").unwrap();
        put_at(&mut page, 3, false, b"d").unwrap();
        put_at(&mut page, 0, true, b"a").unwrap();
        assert_eq!(keys(&page), [b"a", b"b", b"c", b"d"]);
        let before = page.clone();
        for (slot, replace, key) in [
            (0, false, &b"e"[..]), // below "a"
            (4, false, b"a"),      // above "d"
            (1, false, b"b"),      // equal to the key there
            (5, false, b"z"),      // beyond the slots
            (1, true, b"x"),       // a replace of another key
            (4, true, b"d"),       // a replace beyond the slots
        ] {
            assert!(put_at(&mut page, slot, replace, key).is_err(), "slot {slot} replace {replace} {key:?}");
            assert_eq!(page, before, "a refused record changed the page");
        }
        assert!(page::validate(3, &page).is_ok());
    }

    /// `apply` (unlike the engine's `apply_to_valid_page`) takes any page: a node whose slot
    /// points past the page is refused by every record that edits it in place, never a panic.
    #[test]
    fn a_node_whose_slots_lie_outside_the_page_is_refused() {
        let mut page = leaf_a_c();
        page[page::HEADER_BYTES..page::HEADER_BYTES + 2].copy_from_slice(&5000u16.to_le_bytes());
        let cell = leaf_cell(b"b");
        let mut put_at = Vec::new();
        Change::CellPutAt { slot: 1, replace: false, cell: &cell }.encode(&mut put_at);
        for (record_kind, payload) in [
            (kind::CELL_PUT, cell.clone()),
            (kind::CELL_PUT_AT, put_at),
            (kind::CELL_DELETE, b"c".to_vec()),
            (kind::TRUNCATE_FROM, b"a".to_vec()),
            (kind::CELLS_APPEND, leaf_cell(b"d")),
        ] {
            let error = apply(record_kind, 3, &payload, &mut page).unwrap_err();
            assert!(error.detail.contains("outside the page"), "kind {record_kind}: {error}");
        }
    }

    #[test]
    fn short_or_odd_payloads_are_refused() {
        let mut page = vec![0u8; 4096];
        let mut format = Vec::new();
        Change::NodeFormat { node_kind: PageKind::Leaf, level: 0, link: 0, cells: &[] }.encode(&mut format);
        apply(kind::NODE_FORMAT, 3, &format, &mut page).unwrap();
        let cell = leaf_cell(b"k");
        for payload in
            [vec![], vec![0], vec![0, 0], [&[0, 0, 2][..], &cell].concat(), [&[0, 0, 0][..], &cell[..3]].concat()]
        {
            assert!(apply(kind::CELL_PUT_AT, 3, &payload, &mut page).is_err(), "{payload:?}");
        }
    }
}

#[cfg(test)]
mod cell_value_patch {
    //! `CELL_VALUE_PATCH` writes only inside the inline value of the cell at its slot: a patch
    //! past the value's end, at a slot the page lacks, on a branch, on an overflow value, or
    //! empty is refused, and the page is then unchanged.
    use super::*;

    fn leaf_with(values: &[(&[u8], LeafValue<'_>)]) -> Vec<u8> {
        let mut cells = Vec::new();
        for (key, value) in values {
            page::encode_leaf_cell(&mut cells, key, *value);
        }
        let mut page = vec![0u8; 4096];
        let mut format = Vec::new();
        Change::NodeFormat { node_kind: PageKind::Leaf, level: 0, link: 0, cells: &cells }.encode(&mut format);
        apply(kind::NODE_FORMAT, 3, &format, &mut page).unwrap();
        page
    }

    fn patch(page: &mut [u8], slot: u16, offset: u16, bytes: &[u8]) -> Result<(), ApplyError> {
        let mut payload = Vec::new();
        Change::CellValuePatch { slot, offset, bytes }.encode(&mut payload);
        apply(kind::CELL_VALUE_PATCH, 3, &payload, page)
    }

    #[test]
    fn patches_inside_the_value_and_refuses_anything_else() {
        let overflow = LeafValue::Overflow { len: 10_000, first_page: 9 };
        let mut page = leaf_with(&[(b"a", LeafValue::Inline(b"0123456789")), (b"b", overflow)]);
        patch(&mut page, 0, 6, b"ABCD").unwrap();
        let node = Node::new(&page).unwrap();
        assert!(matches!(node.leaf_value(0), LeafValue::Inline(v) if v == b"012345ABCD"));
        assert_eq!(node.key(0), b"a");
        let before = page.clone();
        for (slot, offset, bytes) in
            [(0, 7, &b"ABCD"[..]), (0, 10, b"x"), (0, u16::MAX, b"x"), (0, 0, b""), (2, 0, b"x"), (1, 0, b"x")]
        {
            assert!(patch(&mut page, slot, offset, bytes).is_err(), "slot {slot} offset {offset} {bytes:?}");
            assert_eq!(page, before, "a refused patch changed the page");
        }
        for payload in [vec![], vec![0], vec![0, 0, 0]] {
            assert!(apply(kind::CELL_VALUE_PATCH, 3, &payload, &mut page).is_err(), "{payload:?}");
        }
        let mut branch = vec![0u8; 4096];
        let mut cell = Vec::new();
        page::encode_branch_cell(&mut cell, b"m", 7);
        let mut format = Vec::new();
        Change::NodeFormat { node_kind: PageKind::Branch, level: 1, link: 5, cells: &cell }.encode(&mut format);
        apply(kind::NODE_FORMAT, 3, &format, &mut branch).unwrap();
        assert!(patch(&mut branch, 0, 0, b"x").is_err(), "a branch cell has no value");
    }
}
