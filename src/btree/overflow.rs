//! Overflow chains, the pages of a value too large for its leaf: reading one (checked against
//! the length its cell claims), writing one in mtrs of at most [`OVERFLOW_MTR_BYTES`], and freeing
//! one in mtrs of at most [`MTR_MAX_PAGES`] pages.
//!
//! This module owns the walk along a chain's links; it must not put or delete the leaf cell that
//! points to a chain (`insert`, `remove`).

use crate::error::{Error, Result};
use crate::page::{self, LeafValue, PageId, PageKind};
use crate::redo::Change;

use super::{BatchWriter, PageSource, MTR_MAX_PAGES, OVERFLOW_MTR_BYTES};

/// A buffer for an overflow value of `len` bytes, refusing lengths no value can have (the
/// length comes from the page, so it is not trusted with an allocation).
pub(crate) fn overflow_buffer(len: u32, first_page: PageId) -> Result<Vec<u8>> {
    if len as usize > crate::db::MAX_VALUE_BYTES {
        return Err(Error::corrupt(first_page, format!("an overflow value claims {len} bytes")));
    }
    Ok(Vec::with_capacity(len as usize))
}

/// Appends the data of overflow page `page_id` to `out`; returns the next page of the chain.
pub(crate) fn append_overflow_page(source: &impl PageSource, page_id: PageId, out: &mut Vec<u8>) -> Result<PageId> {
    let page = source.page(page_id)?;
    let header = page::header(&page);
    if header.kind != PageKind::Overflow as u8 {
        return Err(Error::corrupt(page_id, "expected an overflow page"));
    }
    let data_len = header.content_start.get() as usize;
    let data = page
        .get(page::HEADER_BYTES..page::HEADER_BYTES + data_len)
        .ok_or_else(|| Error::corrupt(page_id, "overflow data out of bounds"))?;
    if out.len() + data.len() > out.capacity() {
        return Err(Error::corrupt(page_id, "the overflow chain holds more than its cell says"));
    }
    out.extend_from_slice(data);
    Ok(header.link.get())
}

/// Checks a finished overflow read: the chain ended exactly at the claimed length.
pub(crate) fn check_overflow_read(out: &[u8], len: u32, first_page: PageId, next: PageId) -> Result<()> {
    if out.len() != len as usize || next != 0 {
        return Err(Error::corrupt(
            first_page,
            format!("overflow chain holds {} bytes, the cell says {len}", out.len()),
        ));
    }
    Ok(())
}

/// Reads a whole value, following its overflow chain if it has one.
pub(crate) fn read_value(source: &impl PageSource, value: LeafValue<'_>, page_size: usize) -> Result<Vec<u8>> {
    match value {
        LeafValue::Inline(bytes) => Ok(bytes.to_vec()),
        LeafValue::Overflow { len, first_page } => {
            let mut out = overflow_buffer(len, first_page)?;
            let mut next = first_page;
            for _ in 0..(len as usize).div_ceil(page::overflow_capacity(page_size)) {
                if next == 0 {
                    break;
                }
                next = append_overflow_page(source, next, &mut out)?;
            }
            check_overflow_read(&out, len, first_page, next)?;
            Ok(out)
        }
    }
}

impl<'a> BatchWriter<'a> {
    /// Writes `value` into a new overflow chain; returns its first page.
    pub(super) fn write_overflow(&mut self, value: &[u8]) -> Result<PageId> {
        let capacity = page::overflow_capacity(self.page_size);
        let mut next: PageId = 0;
        self.begin_mtr()?;
        // Last piece first, so every page's link is known when it is formatted.
        for piece in value.chunks(capacity).rev() {
            if self.mtr.body().len() >= OVERFLOW_MTR_BYTES {
                self.begin_mtr()?;
            }
            let page_id = self.allocate()?;
            self.change(page_id, Change::OverflowFormat { link: next, data: piece })?;
            self.counts.overflow_pages_written += 1;
            next = page_id;
        }
        Ok(next)
    }

    /// Returns the pages of an overflow chain to the free list.
    pub(super) fn free_overflow(&mut self, first_page: PageId) -> Result<()> {
        self.begin_mtr()?;
        let mut next = first_page;
        let mut freed = 0u64;
        while next != 0 {
            if self.mtr.body().len() >= OVERFLOW_MTR_BYTES || self.touched.len() >= MTR_MAX_PAGES {
                self.begin_mtr()?;
            }
            let link = {
                let page = self.read(next)?;
                let header = page::header(&page);
                if header.kind != PageKind::Overflow as u8 {
                    return Err(Error::corrupt(next, "expected an overflow page while freeing a chain"));
                }
                header.link.get()
            };
            self.free(next)?;
            freed += 1;
            if freed > u64::from(self.meta.page_count) {
                return Err(Error::corrupt(first_page, "overflow chain loops"));
            }
            next = link;
        }
        self.counts.overflow_pages_freed += freed;
        Ok(())
    }
}
