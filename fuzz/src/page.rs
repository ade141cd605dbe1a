//! Target `page`: page validation, the checksum, the `Node` view and `redo::apply` on arbitrary
//! page bytes.
//!
//! | field          | meaning                                                                 |
//! |----------------|-------------------------------------------------------------------------|
//! | `u8` flags     | bit 0: 65536-byte page (else 4096); bit 1: check the page as the id its header claims (else `page_id`); bit 2: seal the checksum first |
//! | `u32` page_id  |                                                                         |
//! | `u8` records   | `% 9` redo records, applied in order, each:                             |
//! |   `u8` kind    | below `0xF0`: `16 + kind % 11` (the engine's kinds 16..=26); else the byte itself (reserved and unknown kinds) |
//! |   blob payload | `u16` length, then the payload (at most a page and 64 bytes)            |
//! | rest           | the page's bytes, zero-padded or truncated to the page size             |
//!
//! # Properties
//! Never a panic, whatever the bytes. `validate`, `checksum_ok` and the meta accessors run on
//! every page; sealing makes `checksum_ok` true exactly when the header names the page id. On a
//! page `validate` accepts as a node, the `Node` view walks every cell: each key is found at its
//! own index by `search`, a branch routes each key to the child after it, leaf values decode
//! (inline values have the length their cell records), and the used bytes fit the page. Every
//! record is applied with `redo::apply` (an error is fine); after a successful apply to a page
//! `validate` accepted, `validate` must accept it again, and after a successful node, overflow
//! or free format record it must accept the page whatever it held before.
//!
//! Found so far: `apply` accepted `META_INIT`/`META_SET` with an implausible state and
//! `NODE_FORMAT`/`SET_LINK` giving a branch leftmost child 0, leaving pages `validate` rejects
//! (fixed in 16748a9; inputs in `fuzz/regressions/page/`).

use mtrdb::page::{self, LeafValue, Node, PageId, PageKind};
use mtrdb::redo::{self, kind};

use crate::input::Reader;

/// Apply non-format records to pages `validate` rejects too. `apply` refuses a node whose slots
/// or content area lie outside the page (`page::node_layout_in_bounds`), so it must not panic
/// on any page; the engine's own `apply_to_valid_page` skips that check and is only given pages
/// `validate` accepted.
pub const APPLY_TO_INVALID_PAGES: bool = true;

/// Runs one input (see the module doc).
pub fn run(data: &[u8]) {
    let mut input = Reader::new(data);
    let flags = input.u8();
    let page_size = if flags & 1 == 1 { page::MAX_PAGE_SIZE } else { page::MIN_PAGE_SIZE };
    let mut page_id: PageId = input.u32();
    let record_count = input.u8() % 9;
    let records: Vec<(u8, &[u8])> = (0..record_count)
        .map(|_| {
            let byte = input.u8();
            let record_kind = if byte < 0xF0 { kind::NODE_FORMAT + byte % 11 } else { byte };
            (record_kind, input.blob(page_size + 64))
        })
        .collect();
    let mut bytes = input.rest().to_vec();
    bytes.resize(page_size, 0);
    if flags & 2 == 2 {
        page_id = page::header(&bytes).page_id.get();
    }
    if flags & 4 == 4 {
        page::seal(page_id, &mut bytes);
        assert_eq!(page::checksum_ok(page_id, &bytes), page::header(&bytes).page_id.get() == page_id);
    }
    inspect(page_id, &bytes);
    for (record_kind, payload) in records {
        let valid_before = page::validate(page_id, &bytes).is_ok();
        if !valid_before && !redo::is_format(record_kind) && !APPLY_TO_INVALID_PAGES {
            // `apply`'s precondition: the page is valid, or the record rebuilds it from nothing.
            continue;
        }
        let mut after = bytes.clone();
        let applied = redo::apply(record_kind, page_id, payload, &mut after);
        if applied.is_ok() {
            if valid_before || redo::is_format(record_kind) {
                if let Err(error) = page::validate(page_id, &after) {
                    panic!(
                        "apply of record kind {record_kind} (payload {} bytes) to page {page_id} succeeded, \
                         but the page no longer validates: {error}",
                        payload.len()
                    );
                }
            }
            assert!(!redo::is_format(record_kind) || page::header(&after).page_id.get() == page_id);
            bytes = after;
        } else {
            // A failed apply may leave the page half changed (recovery then reports corruption);
            // go on from the page as it was.
        }
        inspect(page_id, &bytes);
    }
}

/// Everything a reader may do with a page's bytes.
fn inspect(page_id: PageId, bytes: &[u8]) {
    let _ = page::checksum_ok(page_id, bytes);
    let _ = page::compute_checksum(page_id, bytes);
    let _ = page::meta_state(bytes);
    let _ = page::meta_log_id(bytes);
    let _ = page::claimed_page_size(bytes);
    let Ok(page_kind) = page::validate(page_id, bytes) else { return };
    if !matches!(page_kind, PageKind::Leaf | PageKind::Branch) {
        assert!(Node::new(bytes).is_none(), "a {page_kind:?} page viewed as a node");
        return;
    }
    let node = Node::new(bytes).expect("a validated node page has a node view");
    assert_eq!(node.kind(), page_kind);
    assert!(node.used_bytes() <= bytes.len(), "used bytes beyond the page");
    assert_eq!(node.used_bytes() + node.free_bytes(), bytes.len());
    let count = node.len();
    assert_eq!(node.is_empty(), count == 0);
    for index in 0..count {
        let cell = node.cell(index);
        assert_eq!(page::cell_len(page_kind, cell), Some(cell.len()), "cell {index} is not one whole cell");
        let key = node.key(index);
        assert!(!key.is_empty() && key.len() <= page::MAX_KEY_BYTES);
        assert_eq!(node.search(key), Ok(index), "key {index} not found at its own index");
        if node.is_leaf() {
            match node.leaf_value(index) {
                LeafValue::Inline(value) => {
                    assert_eq!(page::leaf_cell_len(key.len(), Some(value.len())), cell.len());
                }
                LeafValue::Overflow { first_page, .. } => {
                    assert_eq!(page::leaf_cell_len(key.len(), None), cell.len());
                    let _ = first_page;
                }
            }
        } else {
            assert_eq!(node.child_index_for(key), index + 1, "a separator does not route to its own child");
            let _ = node.child(index + 1);
        }
    }
    if !node.is_leaf() {
        assert_ne!(node.child(0), 0, "a validated branch has a leftmost child");
    }
    // Keys between and around the stored ones land in order.
    let _ = node.search(&[]);
    let _ = node.search(&[0xff; 8]);
}
