//! Writing pages back to the data file through the doublewrite file, and repairing torn pages
//! from it.
//!
//! # Torn pages: doublewrite (as InnoDB)
//! A page write interrupted by a crash can leave a page that is half old, half new; its checksum
//! then fails, and redo cannot repair it because redo needs the page's prior state. So a page is
//! first written, in batches of up to [`DOUBLEWRITE_BATCH_BYTES`], to the doublewrite file
//! (`dblwr`), which is synced; only then are the batch's pages written in place and the data file
//! synced, before the next batch reuses the doublewrite file. A page torn in place therefore
//! always has an intact copy in the doublewrite file.
//!
//! The exception: a page whose redo since it last became dirty starts with a format record (a
//! page created by a split, an overflow page, a freed page) does not need its old bytes, so redo
//! alone rebuilds it from the checkpoint recovery starts at; it is written in place only (as
//! PostgreSQL needs no full-page image for a page its WAL initialises). This halves the page
//! writes of a tree grown since the last checkpoint. With fuzzy checkpoints one more condition
//! holds it: none of the page's *older* redo may lie after that checkpoint. A checkpoint can
//! stay behind a page that an earlier write-back cleaned (other pages are older), and replaying
//! that page's redo from before its format record would need the bytes a tear destroyed; such a
//! page goes through the doublewrite file until a checkpoint passes the write-back that cleaned
//! it ([`crate::pager::Pager::oldest_dirty_images`]).
//!
//! # Doublewrite file format
//! One header block of `page_size` bytes, then the batch's page images, image `i` at byte
//! `(i + 1) * page_size`, each exactly as it is written in place (its header names its page id;
//! its checksum covers that id). The header (little-endian):
//!
//! | offset | size | field                                                                  |
//! |--------|------|------------------------------------------------------------------------|
//! | 0      | 8    | magic `b"mtrdbDWR"`                                                    |
//! | 8      | 8    | `log_id`: the database's redo log id                                   |
//! | 16     | 8    | `base_checkpoint`: the number of the last completed checkpoint when the batch was written; its images belong to the checkpoint after it |
//! | 24     | 4    | `pages`: images in the batch                                           |
//! | 28     | 4    | `page_size`                                                            |
//! | 32     | 4    | CRC-32C of bytes 0..32                                                 |
//!
//! Recovery uses the images only if the header is intact, names this database's log, and its
//! `base_checkpoint` is the checkpoint recovery starts from: only the checkpoint that was
//! interrupted can have torn a page. Of those images, only valid ones whose LSN is newer than that
//! checkpoint are used, the newest per page, and only where the page in place is damaged or
//! missing. A doublewrite file from another database, or left by an earlier checkpoint, can
//! therefore never replace a page.
//!
//! # Order of a checkpoint ([`crate::db`] drives it)
//! Checkpoints are fuzzy, as InnoDB's: the pager keeps a flush list of the dirty pages by their
//! oldest change (where the redo of the batch that made each dirty starts), and a checkpoint
//! writes back only the pages whose oldest change is older than a target, so a page changed
//! often stays in memory while the log has room and each page write carries many changes.
//! 1. Between batches, take the chosen dirty page images (shared, no copy) and the log's end
//!    LSN `L`.
//! 2. Flush the redo log up to `L` (write-ahead: every image's LSN is at most `L`).
//! 3. Write the images through the doublewrite file (this module).
//! 4. Between batches again: mark the pages clean unless a batch changed them meanwhile (those
//!    stay dirty with oldest change `L`), and take the oldest change of any dirty page, or the
//!    log's end if none is dirty: every change before it is in the data file.
//! 5. Write the checkpoint there (synced): redo before it is no longer needed.
//!
//! A checkpoint therefore always lies on a batch boundary, never inside a batch, and never
//! after a change that is only in memory.
//!
//! This module owns the write-back I/O and the doublewrite format; it must not decide when to
//! checkpoint or touch the redo log.

use std::sync::Arc;

use mtr::{Checkpoint, StorageFile};

use crate::error::{Error, Result};
use crate::page::{self, PageId};
use crate::pager::DirtyImage;

/// Identifies the checkpoint a doublewrite batch belongs to (see the module doc).
#[derive(Copy, Clone, Debug)]
pub(crate) struct DoublewriteTag {
    pub log_id: u64,
    pub base_checkpoint: u64,
}

const DOUBLEWRITE_MAGIC: [u8; 8] = *b"mtrdbDWR";
const DOUBLEWRITE_HEADER_BYTES: usize = 36;

fn encode_doublewrite_header(out: &mut [u8], tag: DoublewriteTag, pages: u32, page_size: usize) {
    out[..8].copy_from_slice(&DOUBLEWRITE_MAGIC);
    out[8..16].copy_from_slice(&tag.log_id.to_le_bytes());
    out[16..24].copy_from_slice(&tag.base_checkpoint.to_le_bytes());
    out[24..28].copy_from_slice(&pages.to_le_bytes());
    out[28..32].copy_from_slice(&(page_size as u32).to_le_bytes());
    let crc = crc32c::crc32c(&out[..32]);
    out[32..36].copy_from_slice(&crc.to_le_bytes());
}

/// `(tag, pages, page_size)` from an intact header.
fn decode_doublewrite_header(bytes: &[u8]) -> Option<(DoublewriteTag, u32, usize)> {
    let header = bytes.get(..DOUBLEWRITE_HEADER_BYTES)?;
    let u64_at = |at: usize| header.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let u32_at = |at: usize| header.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    if header[..8] != DOUBLEWRITE_MAGIC || crc32c::crc32c(&header[..32]) != u32_at(32)? {
        return None;
    }
    let tag = DoublewriteTag { log_id: u64_at(8)?, base_checkpoint: u64_at(16)? };
    Some((tag, u32_at(24)?, u32_at(28)? as usize))
}

/// The page size a doublewrite file's header records (a fallback when page 0's first sector
/// tore while the database was being created).
pub(crate) fn doublewrite_page_size(doublewrite: &Arc<dyn StorageFile>) -> Option<usize> {
    let mut header = [0u8; DOUBLEWRITE_HEADER_BYTES];
    doublewrite.read_exact_at(&mut header, 0).ok()?;
    decode_doublewrite_header(&header)
        .map(|(_, _, page_size)| page_size)
        .filter(|size| size.is_power_of_two() && (page::MIN_PAGE_SIZE..=page::MAX_PAGE_SIZE).contains(size))
}

/// Bytes of pages written to the doublewrite file per batch.
pub const DOUBLEWRITE_BATCH_BYTES: usize = 2 << 20;

/// Counters of one write-back.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WriteBack {
    pub pages: u64,
    /// Pages that went through the doublewrite file.
    pub doublewritten: u64,
    pub batches: u64,
    pub syncs: u64,
}

fn io<'a>(action: &'static str, path: &'a str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { action, path: path.to_string(), source }
}

/// Writes page images (ascending ids) to the data file: through the doublewrite file, except
/// pages that redo alone can rebuild ([`DirtyImage::rebuilt`]).
pub(crate) fn write_pages(
    data: &Arc<dyn StorageFile>,
    data_name: &str,
    doublewrite: &Arc<dyn StorageFile>,
    doublewrite_name: &str,
    page_size: usize,
    images: &[DirtyImage],
    tag: DoublewriteTag,
) -> Result<WriteBack> {
    let mut counts = WriteBack::default();
    let per_batch = (DOUBLEWRITE_BATCH_BYTES / page_size).max(1);
    let mut sealed = Vec::with_capacity(per_batch * page_size);
    let mut staged = Vec::with_capacity(per_batch * page_size);
    for batch in images.chunks(per_batch) {
        sealed.clear();
        staged.clear();
        staged.resize(page_size, 0); // the header block, filled in below
        for dirty in batch {
            let start = sealed.len();
            sealed.extend_from_slice(&dirty.image);
            page::seal(dirty.page_id, &mut sealed[start..]);
            debug_assert!(page::validate(dirty.page_id, &sealed[start..]).is_ok());
            if !dirty.rebuilt {
                staged.extend_from_slice(&sealed[start..]);
            }
        }
        let staged_pages = staged.len() / page_size - 1;
        if staged_pages > 0 {
            encode_doublewrite_header(&mut staged[..page_size], tag, staged_pages as u32, page_size);
            doublewrite.write_all_at(&staged, 0).map_err(io("writing the doublewrite file", doublewrite_name))?;
            doublewrite.sync_data().map_err(io("syncing the doublewrite file", doublewrite_name))?;
            counts.syncs += 1;
            counts.doublewritten += staged_pages as u64;
        }
        // In place, one write per run of consecutive page ids.
        let mut run_start = 0;
        while run_start < batch.len() {
            let mut run_end = run_start + 1;
            while run_end < batch.len() && batch[run_end].page_id == batch[run_end - 1].page_id + 1 {
                run_end += 1;
            }
            let bytes = &sealed[run_start * page_size..run_end * page_size];
            let offset = u64::from(batch[run_start].page_id) * page_size as u64;
            data.write_all_at(bytes, offset).map_err(io("writing pages", data_name))?;
            run_start = run_end;
        }
        data.sync_data().map_err(io("syncing the data file", data_name))?;
        counts.pages += batch.len() as u64;
        counts.batches += 1;
        counts.syncs += 1;
    }
    Ok(counts)
}

/// Restores pages that are damaged in place from their doublewrite copies (see the module doc
/// for which copies qualify). Returns the ids repaired; syncs the data file if it wrote.
pub(crate) fn repair_torn_pages(
    data: &Arc<dyn StorageFile>,
    data_name: &str,
    doublewrite: &Arc<dyn StorageFile>,
    doublewrite_name: &str,
    page_size: usize,
    checkpoint: Checkpoint,
    log_id: u64,
) -> Result<Vec<PageId>> {
    let checkpoint_lsn = checkpoint.lsn;
    let len = doublewrite.len().map_err(io("reading the doublewrite file's length", doublewrite_name))?;
    let mut header = [0u8; DOUBLEWRITE_HEADER_BYTES];
    if len < page_size as u64 || doublewrite.read_exact_at(&mut header, 0).is_err() {
        return Ok(Vec::new());
    }
    let slots = match decode_doublewrite_header(&header) {
        Some((tag, pages, size))
            if tag.log_id == log_id && tag.base_checkpoint == checkpoint.number && size == page_size =>
        {
            u64::from(pages).min(len / page_size as u64 - 1)
        }
        _ => return Ok(Vec::new()),
    };
    let mut best: std::collections::BTreeMap<PageId, Vec<u8>> = std::collections::BTreeMap::new();
    let mut image = vec![0u8; page_size];
    for slot in 0..slots {
        doublewrite
            .read_exact_at(&mut image, (slot + 1) * page_size as u64)
            .map_err(io("reading the doublewrite file", doublewrite_name))?;
        let page_id = page::header(&image).page_id.get();
        if !page::checksum_ok(page_id, &image) || page::validate(page_id, &image).is_err() {
            continue;
        }
        let lsn = page::header(&image).lsn.get();
        if lsn <= checkpoint_lsn.0 {
            continue;
        }
        let newer = best.get(&page_id).is_none_or(|kept| page::header(kept).lsn.get() < lsn);
        if newer {
            best.insert(page_id, image.clone());
        }
    }
    let data_len = data.len().map_err(io("reading the data file's length", data_name))?;
    let mut repaired = Vec::new();
    let mut in_place = vec![0u8; page_size];
    for (page_id, copy) in best {
        let offset = u64::from(page_id) * page_size as u64;
        let intact = offset + page_size as u64 <= data_len
            && data.read_exact_at(&mut in_place, offset).is_ok()
            && page::checksum_ok(page_id, &in_place)
            && page::validate(page_id, &in_place).is_ok();
        if !intact {
            data.write_all_at(&copy, offset).map_err(io("repairing a torn page", data_name))?;
            repaired.push(page_id);
        }
    }
    if !repaired.is_empty() {
        data.sync_data().map_err(io("syncing repaired pages", data_name))?;
    }
    Ok(repaired)
}
