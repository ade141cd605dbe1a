//! `mtrdb page`: one page of the data file, decoded field by field.
//!
//! The page is decoded defensively: a damaged page (bad checksum, broken slots, malformed cells)
//! is shown as far as its bytes allow, with each defect named, never trusted and never a panic.
//! This module reads; it never writes the data file.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use mtr::{OpenMode, Storage, StorageFile};
use mtrdb::db::DATA_FILE;
use mtrdb::page::{self, PageId, PageKind};

use crate::show::{self, PageClass};
use crate::{Failure, Outcome};

/// Key bytes shown per cell.
const KEY_SHOWN_BYTES: usize = 48;
/// Value bytes shown per cell.
const VALUE_SHOWN_BYTES: usize = 24;
const OVERFLOW_FLAG: u32 = 0x8000_0000;

/// `mtrdb page DIR ID [--recovered] [--page-size BYTES]`.
pub fn run(dir: &Path, page_id: PageId, recovered: bool, page_size: Option<usize>) -> Outcome {
    let overlay = show::open_overlay(dir)?;
    let page_size = match page_size {
        Some(size) if size.is_power_of_two() && (page::MIN_PAGE_SIZE..=page::MAX_PAGE_SIZE).contains(&size) => size,
        Some(size) => return Err(Failure::new(format!("page size {size} is not a power of two from 4096 to 65536"))),
        None => show::claimed_page_size(&overlay)?.ok_or_else(|| {
            Failure::new("the meta page does not tell the page size (it is damaged); pass --page-size")
        })?,
    };
    // Keep the recovered database open while its pages are read: dropping it would checkpoint
    // (into the overlay) first, which is harmless but pointless.
    let (file, _db): (Arc<dyn StorageFile>, _) = if recovered {
        let db = overlay.recover().map_err(|e| Failure::new(format!("recovery (in memory) failed: {e}")))?;
        let file = overlay
            .open_file(DATA_FILE, OpenMode::Existing)
            .map_err(|e| Failure::new(format!("reading the recovered data file: {e}")))?;
        (file, Some(db))
    } else {
        (show::original(&overlay, DATA_FILE)?.ok_or_else(|| Failure::new("the data file is missing"))?, None)
    };
    let len = file.len().map_err(|e| Failure::new(format!("reading the data file's length: {e}")))?;
    let pages = len / page_size as u64;
    if u64::from(page_id) >= pages {
        return Err(Failure::new(format!(
            "page {page_id} is beyond the end of the data file ({pages} whole pages of {page_size} bytes)"
        )));
    }
    let bytes = show::read_page(&file, page_id, page_size)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let source = if recovered { "after recovery in memory" } else { "as on disk" };
    writeln!(
        out,
        "page {page_id} of {} ({page_size} bytes at offset {}), {source}",
        dir.join(DATA_FILE).display(),
        u64::from(page_id) * page_size as u64
    )?;
    print_page(&mut out, page_id, &bytes)?;
    out.flush()?;
    Ok(())
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn print_page(out: &mut impl Write, page_id: PageId, bytes: &[u8]) -> Outcome {
    let header = page::header(bytes);
    let class = show::classify(page_id, bytes);
    let stored = header.checksum.get();
    let computed = page::compute_checksum(page_id, bytes);
    let checksum = if stored == computed { "ok".to_string() } else { format!("MISMATCH (computed {computed:#010x})") };
    let status = match &class {
        PageClass::Valid(_) => "valid".to_string(),
        PageClass::Zeroed => "never written (all zeros)".to_string(),
        PageClass::Damaged(detail) => format!("DAMAGED: {detail}"),
    };
    let kind = PageKind::from_byte(header.kind);
    let kind_name = kind.map_or("unknown", show::kind_name);
    writeln!(out, "  status        {status}")?;
    writeln!(out, "  checksum      {stored:#010x} {checksum}")?;
    writeln!(out, "  kind          {kind_name} ({})", header.kind)?;
    writeln!(out, "  lsn           {}", header.lsn.get())?;
    let claimed = header.page_id.get();
    let id_note = if claimed == page_id { "" } else { "  (WRONG: a misdirected or stale page)" };
    writeln!(out, "  page_id       {claimed}{id_note}")?;
    if matches!(class, PageClass::Zeroed) {
        return Ok(());
    }
    match kind {
        Some(PageKind::Meta) => print_meta(out, bytes),
        Some(node_kind @ (PageKind::Leaf | PageKind::Branch)) => print_node(out, node_kind, bytes),
        Some(PageKind::Overflow) => {
            let data = header.content_start.get() as usize;
            writeln!(out, "  link          {} (next page of the chain; 0 = last)", header.link.get())?;
            writeln!(out, "  data          {data} bytes")?;
            let shown = bytes.get(page::HEADER_BYTES..page::HEADER_BYTES + data.min(VALUE_SHOWN_BYTES * 2));
            if let Some(shown) = shown {
                writeln!(out, "  starts with   {}", show::escaped(shown, VALUE_SHOWN_BYTES * 2))?;
            }
            Ok(())
        }
        Some(PageKind::Free) => {
            writeln!(out, "  link          {} (next free page; 0 = last)", header.link.get())?;
            Ok(())
        }
        None => {
            let head = bytes.get(..64).unwrap_or(bytes);
            writeln!(out, "  first bytes   {}", show::hex(head))?;
            Ok(())
        }
    }
}

fn print_meta(out: &mut impl Write, bytes: &[u8]) -> Outcome {
    let at = page::HEADER_BYTES;
    let magic = bytes.get(at..at + 8).unwrap_or_default();
    let state = page::meta_state(bytes);
    writeln!(out, "  magic         {}", show::escaped(magic, 8))?;
    writeln!(out, "  version       {}", u32_at(bytes, at + 8).unwrap_or(0))?;
    writeln!(out, "  page_size     {}", u32_at(bytes, at + 12).unwrap_or(0))?;
    writeln!(out, "  log_id        {:#018x}", page::meta_log_id(bytes))?;
    writeln!(out, "  catalog_root  {}", state.catalog_root)?;
    writeln!(out, "  page_count    {}", state.page_count)?;
    writeln!(out, "  free_head     {}", state.free_head)?;
    writeln!(out, "  next_tree_id  {}", state.next_tree_id)?;
    Ok(())
}

fn print_node(out: &mut impl Write, kind: PageKind, bytes: &[u8]) -> Outcome {
    let header = page::header(bytes);
    let page_size = bytes.len();
    let count = usize::from(header.cell_count.get());
    let content_start = header.content_start.get() as usize;
    let frag = usize::from(header.frag_bytes.get());
    writeln!(out, "  level         {}", header.level)?;
    let link_role = if kind == PageKind::Leaf { "right sibling; 0 = none" } else { "leftmost child" };
    writeln!(out, "  link          {} ({link_role})", header.link.get())?;
    writeln!(out, "  cells         {count}")?;
    let slots_end = page::HEADER_BYTES + page::SLOT_BYTES * count;
    let content = page_size.checked_sub(content_start).filter(|_| content_start >= slots_end.min(page_size));
    match content.and_then(|content| content.checked_sub(frag)) {
        Some(live) => {
            let used = slots_end + live;
            let usable = page::usable_bytes(page_size);
            writeln!(
                out,
                "  space         content from {content_start}, {frag} dead bytes, {} free, fill {:.1}%",
                page_size.saturating_sub(used),
                (used - page::HEADER_BYTES) as f64 * 100.0 / usable as f64
            )?;
        }
        None => writeln!(out, "  space         content from {content_start}, {frag} dead bytes: INCONSISTENT")?,
    }
    let slots_shown = count.min((page_size - page::HEADER_BYTES) / page::SLOT_BYTES);
    if kind == PageKind::Branch {
        writeln!(out, "  [   -]         leftmost child {}", header.link.get())?;
    }
    for index in 0..slots_shown {
        let offset = u16_at(bytes, page::HEADER_BYTES + page::SLOT_BYTES * index).map_or(0, usize::from);
        let Some(rest) = bytes.get(offset..).filter(|_| offset >= page::HEADER_BYTES) else {
            writeln!(out, "  [{index:>4}] @{offset:<5} slot points outside the page")?;
            continue;
        };
        let Some(len) = page::cell_len(kind, rest) else {
            writeln!(out, "  [{index:>4}] @{offset:<5} malformed cell")?;
            continue;
        };
        let cell = &rest[..len];
        let key = show::escaped(page::cell_key(cell), KEY_SHOWN_BYTES);
        let word = u32_at(cell, 2).unwrap_or(0);
        let key_len = page::cell_key(cell).len();
        let what = if kind == PageKind::Branch {
            format!("child {word}")
        } else if word & OVERFLOW_FLAG != 0 {
            let first_page = u32_at(cell, page::LEAF_CELL_PREFIX + key_len).unwrap_or(0);
            format!("value {} B in overflow pages from {first_page}", word & !OVERFLOW_FLAG)
        } else {
            let value = cell.get(page::LEAF_CELL_PREFIX + key_len..).unwrap_or_default();
            format!("value {} B {}", value.len(), show::escaped(value, VALUE_SHOWN_BYTES))
        };
        writeln!(out, "  [{index:>4}] @{offset:<5} key {key}  {what}")?;
    }
    if slots_shown < count {
        writeln!(out, "  ... {} more slots than the page can hold", count - slots_shown)?;
    }
    Ok(())
}
