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

/// The free list's order as compaction knows it, in memory, so that a page in the middle of the
/// list can be taken off (one `SET_LINK` on the page before it) without walking the list.
///
/// Built from a walk of the list at a snapshot, and brought up to date at the start of each
/// compaction batch ([`FreeListModel::sync`]) by walking only what writers changed since: a
/// writer takes pages off the head and puts freed pages on the head, and never touches the rest
/// of the list; every page it puts there carries the LSN of the mtr that freed it, newer than the
/// model's. So the list now is some new pages (LSN newer than the model's), then the model's list
/// less the pages taken from its head, unchanged: the first page with an older LSN is where the
/// two meet.
///
/// **Memory:** about 40 bytes per free page (a map entry and a set entry).
pub(crate) struct FreeListModel {
    head: PageId,
    /// Per member: (the page before it, 0 for the head; the page after it, 0 for the last).
    links: rustc_hash::FxHashMap<PageId, (PageId, PageId)>,
    members: std::collections::BTreeSet<PageId>,
    /// Every change to a page of the list up to this LSN is known here.
    lsn: u64,
}

impl FreeListModel {
    /// The list `order` (head first), as of `lsn`.
    pub(crate) fn new(order: &[PageId], lsn: u64) -> FreeListModel {
        let mut links = rustc_hash::FxHashMap::default();
        for (index, &page) in order.iter().enumerate() {
            let previous = if index == 0 { 0 } else { order[index - 1] };
            links.insert(page, (previous, order.get(index + 1).copied().unwrap_or(0)));
        }
        FreeListModel {
            head: order.first().copied().unwrap_or(0),
            links,
            members: order.iter().copied().collect(),
            lsn,
        }
    }

    pub(crate) fn contains(&self, page: PageId) -> bool {
        self.members.contains(&page)
    }

    /// The lowest free page below `bound`.
    pub(crate) fn lowest_below(&self, bound: PageId) -> Option<PageId> {
        self.members.range(..bound).next().copied()
    }

    /// Records that every change so far, up to `lsn`, is known (after a batch that kept the
    /// model in step committed there).
    pub(crate) fn known_up_to(&mut self, lsn: u64) {
        self.lsn = lsn;
    }

    /// The members in list order.
    fn in_order(&self) -> impl Iterator<Item = PageId> + '_ {
        let mut next = self.head;
        std::iter::from_fn(move || {
            let page = next;
            if page == 0 {
                return None;
            }
            next = self.links.get(&page).map_or(0, |&(_, after)| after);
            Some(page)
        })
    }

    fn remove(&mut self, page: PageId) {
        let Some((before, after)) = self.links.remove(&page) else { return };
        self.members.remove(&page);
        if before == 0 {
            self.head = after;
        } else if let Some(entry) = self.links.get_mut(&before) {
            entry.1 = after;
        }
        if let Some(entry) = self.links.get_mut(&after) {
            entry.0 = before;
        }
    }

    fn push_front(&mut self, page: PageId) {
        let old_head = self.head;
        if let Some(entry) = self.links.get_mut(&old_head) {
            entry.0 = page;
        }
        self.links.insert(page, (0, old_head));
        self.members.insert(page);
        self.head = page;
    }

    /// Brings the model up to date with the list as `writer` sees it (see the type's doc).
    pub(crate) fn sync(&mut self, writer: &BatchWriter<'_>) -> Result<()> {
        let mut fresh = Vec::new();
        let mut page_id = writer.meta.free_head;
        let junction = loop {
            if page_id == 0 {
                break 0;
            }
            let page = writer.read(page_id)?;
            let header = page::header(&page);
            if header.kind != PageKind::Free as u8 {
                return Err(Error::corrupt(page_id, "free list names a page that is not free"));
            }
            if header.lsn.get() <= self.lsn {
                break page_id;
            }
            fresh.push(page_id);
            if fresh.len() > writer.meta.page_count as usize {
                return Err(Error::corrupt(page_id, "the free list loops"));
            }
            page_id = header.link.get();
        };
        if junction != 0 && !self.contains(junction) {
            return Err(Error::corrupt(junction, "the free list changed below its head while compaction ran"));
        }
        // Taken from the head since: the model's pages before the junction.
        while self.head != junction && self.head != 0 {
            let head = self.head;
            self.remove(head);
        }
        for &page in fresh.iter().rev() {
            if self.contains(page) {
                return Err(Error::corrupt(page, "a page is on the free list twice"));
            }
            self.push_front(page);
        }
        Ok(())
    }
}

impl<'a> BatchWriter<'a> {
    /// Takes free page `page_id` off the free list, wherever it is in it (`model` says what is
    /// before and after it), in the open mtr. The caller formats it in the same mtr.
    pub(super) fn take_free_page(&mut self, model: &mut FreeListModel, page_id: PageId) -> Result<()> {
        let Some(&(before, after)) = model.links.get(&page_id) else {
            return Err(Error::corrupt(page_id, "compaction took a page that is not on the free list"));
        };
        let header_link = |page: &[u8]| (page::header(page).kind, page::header(page).link.get());
        if header_link(&self.read(page_id)?) != (PageKind::Free as u8, after) {
            return Err(Error::corrupt(page_id, "the free list is not as compaction recorded it"));
        }
        if before == 0 {
            if self.meta.free_head != page_id {
                return Err(Error::corrupt(page_id, "the free list's head is not as compaction recorded it"));
            }
            let mut meta = self.meta;
            meta.free_head = after;
            self.set_meta(meta);
        } else {
            if header_link(&self.read(before)?) != (PageKind::Free as u8, page_id) {
                return Err(Error::corrupt(before, "the free list is not as compaction recorded it"));
            }
            self.change(before, Change::SetLink { link: after })?;
        }
        model.remove(page_id);
        Ok(())
    }

    /// Returns `page_id` to the free list (its head) and records it in `model`.
    pub(super) fn free_into(&mut self, model: &mut FreeListModel, page_id: PageId) -> Result<()> {
        self.free(page_id)?;
        model.push_front(page_id);
        Ok(())
    }

    /// Cuts free pages off the end of the page ids: lowers `page_count` past the free pages at
    /// the end, taking them off the free list, in the open batch. Only the free pages that stay
    /// and come just before a page cut off are changed (their link): as many of the free pages
    /// at the end are cut as that changes at most `max_relinks` pages (at least one page is cut).
    /// Returns `page_count` before and after, or `None` if the last page is in use.
    pub(crate) fn cut_free_tail(
        &mut self,
        model: &mut FreeListModel,
        max_relinks: usize,
    ) -> Result<Option<(u32, u32)>> {
        model.sync(self)?;
        let count = self.meta.page_count;
        let mut lowest = count;
        while lowest > 1 && model.contains(lowest - 1) {
            lowest -= 1;
        }
        if lowest == count {
            return Ok(None);
        }
        let order: Vec<PageId> = model.in_order().collect();
        // The pages to relink for a cut at `cut`, and the pages kept (the list's new order).
        let plan = |cut: PageId| {
            let mut kept: Vec<PageId> = Vec::new();
            let mut relinks: Vec<(PageId, PageId)> = Vec::new();
            // The last page kept and its position in the old order: it is relinked only if the
            // next page kept did not follow it there.
            let mut last_kept: Option<(PageId, usize)> = None;
            for (index, &page) in order.iter().enumerate() {
                if page >= cut {
                    continue;
                }
                if let Some((previous, previous_index)) = last_kept {
                    if previous_index + 1 != index {
                        relinks.push((previous, page));
                    }
                }
                kept.push(page);
                last_kept = Some((page, index));
            }
            if let Some((last, index)) = last_kept {
                if index + 1 != order.len() {
                    relinks.push((last, 0));
                }
            }
            (kept, relinks)
        };
        // The whole free end if that relinks few pages (after compaction's moves, nearly no
        // free page stays below it); otherwise half of what is left, and so on.
        let mut cut = lowest;
        let (kept, relinks) = loop {
            let (kept, relinks) = plan(cut);
            if relinks.len() <= max_relinks || cut + 1 == count {
                break (kept, relinks);
            }
            cut += (count - cut).div_ceil(2);
        };
        self.begin_mtr()?;
        for (page_id, link) in relinks {
            self.relink_free(page_id, link)?;
        }
        let mut meta = self.meta;
        meta.free_head = kept.first().copied().unwrap_or(0);
        meta.page_count = cut;
        self.set_meta(meta);
        *model = FreeListModel::new(&kept, model.lsn);
        Ok(Some((count, cut)))
    }

    /// Sets a free page's link (cutting the tail of the list), in mtrs of at most
    /// [`MTR_MAX_PAGES`](super::MTR_MAX_PAGES) pages.
    fn relink_free(&mut self, page_id: PageId, link: PageId) -> Result<()> {
        if self.touched.len() >= super::MTR_MAX_PAGES {
            self.begin_mtr()?;
        }
        if page::header(&self.read(page_id)?).kind != PageKind::Free as u8 {
            return Err(Error::corrupt(page_id, "the free list is not as compaction recorded it"));
        }
        self.change(page_id, Change::SetLink { link })
    }
}

/// Whether the last page id (`page_count - 1`) is a free page: then free pages can be cut off
/// the end ([`BatchWriter::cut_free_tail`]).
pub(crate) fn last_page_is_free(source: &impl super::PageSource) -> Result<bool> {
    let meta = super::read_meta(source)?;
    if meta.page_count <= 1 {
        return Ok(false);
    }
    Ok(page::header(&source.page(meta.page_count - 1)?).kind == PageKind::Free as u8)
}

/// The free list's pages in order (head first), read through `source` (a snapshot) from
/// `free_head`; at most `page_count` of them.
pub(crate) fn free_list_order(
    source: &impl super::PageSource,
    free_head: PageId,
    page_count: u32,
) -> Result<Vec<PageId>> {
    let mut order = Vec::new();
    let mut next = free_head;
    while next != 0 {
        if order.len() >= page_count as usize {
            return Err(Error::corrupt(next, "the free list loops"));
        }
        let page = source.page(next)?;
        if page::header(&page).kind != PageKind::Free as u8 {
            return Err(Error::corrupt(next, "free list names a page that is not free"));
        }
        order.push(next);
        next = page::header(&page).link.get();
    }
    Ok(order)
}
