//! The `BatchWriter`'s mtr: starting a batch, `change` (log a change in the open mtr and apply
//! it: the only way this module tree changes a page), appending mtrs to the log, the commit and
//! the abort of a batch, the path a write descends, and the first mtr of a new database.
//!
//! This module owns what goes into an mtr and when one ends; it must not decide the shape of the
//! tree (`insert`, `split`, `remove` and `overflow` do, through `change`).

use mtr::{Log, Lsn, MtrBuf};

use crate::error::{Error, Result};
use crate::page::{self, MetaState, PageId, PageKind};
use crate::pager::{PageRef, Pager, SnapshotWindow};
use crate::redo::{self, Change};
use crate::replay::ReplayJournal;

use super::{node_at, read_meta, BatchWriter, Latest, WriteCounts, ABORT_RESERVE_BYTES};

impl<'a> BatchWriter<'a> {
    pub(crate) fn new(
        pager: &'a mut Pager,
        log: &'a Log,
        mtr: &'a mut MtrBuf,
        history: Option<SnapshotWindow>,
        journal: Option<ReplayJournal>,
    ) -> Result<BatchWriter<'a>> {
        mtr.clear();
        // The caller holds the writer lock: this batch's redo starts at the log's end.
        pager.begin_batch(log.end_lsn());
        let meta = read_meta(&Latest(pager))?;
        let page_size = pager.page_size();
        Ok(BatchWriter {
            pager,
            log,
            mtr,
            touched: Vec::new(),
            history,
            meta,
            meta_dirty: false,
            appended_any: false,
            page_size,
            counts: WriteCounts::default(),
            cell: Vec::new(),
            journal,
            path_buffer: Vec::new(),
        })
    }

    pub(super) fn read(&self, page_id: PageId) -> Result<PageRef<'_>> {
        self.pager.read(page_id)
    }

    /// Logs `change` on `page_id` in the open mtr and applies it: the only way this module
    /// changes a page.
    pub(super) fn change(&mut self, page_id: PageId, change: Change<'_>) -> Result<()> {
        let kind = change.kind();
        let payload = self.mtr.push_with(kind, u64::from(page_id), |out| change.encode(out));
        let fresh = redo::is_format(kind);
        let page = self.pager.page_mut(page_id, fresh, fresh, true, self.history)?;
        redo::apply_to_valid_page(kind, page_id, payload, page)
            .map_err(|e| Error::corrupt(page_id, format!("forward apply failed: {e}")))?;
        debug_assert!(page::validate(page_id, page).is_ok(), "apply left page {page_id} invalid");
        // Linear, but an mtr touches at most a few hundred pages (MTR_MAX_PAGES, a split
        // cascade of 2 pages per level); the last page is the common repeat.
        if self.touched.last() != Some(&page_id) && !self.touched.contains(&page_id) {
            self.touched.push(page_id);
        }
        Ok(())
    }

    pub(super) fn set_meta(&mut self, meta: MetaState) {
        self.meta = meta;
        self.meta_dirty = true;
    }

    /// Closes the mtr under construction (if any) so the next change starts a new one.
    pub(super) fn begin_mtr(&mut self) -> Result<()> {
        if self.meta_dirty || !self.mtr.is_empty() {
            self.append(0)?;
        }
        Ok(())
    }

    fn append(&mut self, flags: u8) -> Result<Lsn> {
        if self.meta_dirty {
            let meta = self.meta;
            self.change(page::META_PAGE_ID, Change::MetaSet { state: meta })?;
            self.meta_dirty = false;
        }
        let frame_bytes = self.mtr.body().len() as u64 + 32;
        if self.log.free_bytes() < frame_bytes + ABORT_RESERVE_BYTES {
            return Err(Error::BatchTooLarge {
                // Live redo, the batch so far, this mtr and the reserve for the abort record.
                needed: self.log.file().capacity() - self.log.free_bytes() + frame_bytes + ABORT_RESERVE_BYTES,
                capacity: self.log.file().capacity(),
            });
        }
        let (start, end) = self.log.append(self.mtr, flags)?;
        for page_id in self.touched.drain(..) {
            self.pager.stamp(page_id, end);
            if let Some(journal) = &self.journal {
                journal.record(end.0, page_id, &self.pager.read(page_id)?);
            }
        }
        self.counts.mtrs += 1;
        self.counts.redo_bytes += end.since(start);
        self.mtr.clear();
        self.appended_any = true;
        Ok(end)
    }

    /// Appends the last mtr with the commit flag. `None` if the batch changed nothing. On an
    /// error the caller must [`BatchWriter::abort`].
    pub(crate) fn commit(&mut self) -> Result<Option<Lsn>> {
        if !self.meta_dirty && self.mtr.is_empty() {
            self.pager.commit_batch();
            return Ok(None);
        }
        let end = self.append(redo::MTR_COMMIT)?;
        self.pager.commit_batch();
        Ok(Some(end))
    }

    /// Abandons the batch: puts back every page image it replaced and, if any of its mtrs reached
    /// the log, logs an abort so recovery discards them too. An error here means the log is
    /// unusable; the caller must refuse further writes.
    pub(crate) fn abort(self) -> Result<()> {
        let BatchWriter { pager, log, mtr, appended_any, .. } = self;
        pager.abort_batch();
        mtr.clear();
        if appended_any {
            mtr.push(redo::kind::BATCH_ABORT, u64::from(page::META_PAGE_ID), &[]);
            let result = log.append(mtr, redo::MTR_ABORT);
            mtr.clear();
            result?;
        }
        Ok(())
    }

    /// The path from the root to the leaf for `key`: (page, child index taken) per level.
    /// Returns the writer's reusable path buffer: hand it back with `self.path_buffer = path`.
    pub(super) fn descend(&mut self, key: &[u8]) -> Result<Vec<(PageId, usize)>> {
        let mut path = std::mem::take(&mut self.path_buffer);
        path.clear();
        let mut page_id = self.meta.root;
        for level in (0..self.meta.height).rev() {
            let page = self.read(page_id)?;
            let node = node_at(&page, page_id, level)?;
            if level == 0 {
                path.push((page_id, 0));
                break;
            }
            let index = node.child_index_for(key);
            path.push((page_id, index));
            page_id = node.child(index);
        }
        Ok(path)
    }

    /// Creates the meta page and an empty root leaf (a new database).
    pub(crate) fn bootstrap(
        pager: &'a mut Pager,
        log: &'a Log,
        mtr: &'a mut MtrBuf,
        log_id: u64,
        journal: Option<&ReplayJournal>,
    ) -> Result<Lsn> {
        mtr.clear();
        let state = MetaState { root: 1, height: 1, page_count: 2, free_head: 0 };
        let mut payload = Vec::new();
        Change::MetaInit { log_id, state }.encode(&mut payload);
        mtr.push(redo::kind::META_INIT, 0, &payload);
        payload.clear();
        Change::NodeFormat { node_kind: PageKind::Leaf, level: 0, link: 0, cells: &[] }.encode(&mut payload);
        mtr.push(redo::kind::NODE_FORMAT, 1, &payload);
        for record in mtr.records() {
            let page_id = record.page_id as PageId;
            let page = pager.page_mut(page_id, true, true, false, None)?;
            redo::apply_to_valid_page(record.kind, page_id, record.payload, page)
                .map_err(|e| Error::corrupt(page_id, e.to_string()))?;
        }
        let (_, end) = log.append(mtr, redo::MTR_COMMIT)?;
        for page_id in [0, 1] {
            pager.stamp(page_id, end);
            if let Some(journal) = journal {
                journal.record(end.0, page_id, &pager.read(page_id)?);
            }
        }
        mtr.clear();
        Ok(end)
    }
}
