//! Page allocation for a `BatchWriter`: a page from the free list or a new one at the end of the
//! file, and returning a page to the free list (formatted as free in the open mtr). Either way the
//! meta page's new state (free-list head, page count) is logged once, when the mtr ends.
//!
//! This module owns the free list's order; it must not format an allocated page (its caller does,
//! in the same mtr).

use crate::error::{Error, Result};
use crate::page::{self, PageId, PageKind};
use crate::redo::Change;

use super::BatchWriter;

impl<'a> BatchWriter<'a> {
    /// A page for a new node or overflow page: from the free list, or a new id at the end.
    /// The caller formats it in the same mtr.
    pub(super) fn allocate(&mut self) -> Result<PageId> {
        let mut meta = self.meta;
        let page_id = if meta.free_head != 0 {
            let page_id = meta.free_head;
            let page = self.read(page_id)?;
            let header = page::header(&page);
            if header.kind != PageKind::Free as u8 {
                return Err(Error::corrupt(page_id, "free list names a page that is not free"));
            }
            meta.free_head = header.link.get();
            page_id
        } else {
            if meta.page_count == u32::MAX {
                return Err(Error::corrupt(0, "the data file has reached 2^32 pages"));
            }
            meta.page_count += 1;
            meta.page_count - 1
        };
        self.set_meta(meta);
        Ok(page_id)
    }

    pub(super) fn free(&mut self, page_id: PageId) -> Result<()> {
        let mut meta = self.meta;
        self.change(page_id, Change::FreeFormat { link: meta.free_head })?;
        meta.free_head = page_id;
        self.set_meta(meta);
        Ok(())
    }
}
