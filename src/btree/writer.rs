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

use super::{node_at, read_meta, root_level, BatchWriter, Latest, WriteCounts, ABORT_RESERVE_BYTES};

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

    /// The value of `key` in the tree at `root`, as this batch has left it so far.
    pub(crate) fn get(&self, root: PageId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        super::get(&Latest(self.pager), root, key, self.page_size)
    }

    /// The catalog's root page.
    pub(crate) fn catalog_root(&self) -> PageId {
        self.meta.catalog_root
    }

    /// A new, empty tree, in an mtr of its own: its root leaf, and the id its keyspace gets.
    pub(crate) fn create_tree(&mut self) -> Result<(u64, PageId)> {
        self.begin_mtr()?;
        let root = self.allocate()?;
        self.change(root, Change::NodeFormat { node_kind: PageKind::Leaf, level: 0, link: 0, cells: &[] })?;
        let mut meta = self.meta;
        let id = meta.next_tree_id;
        meta.next_tree_id = id.checked_add(1).ok_or_else(|| Error::corrupt(0, "keyspace ids exhausted"))?;
        self.set_meta(meta);
        Ok((id, root))
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

    /// The path from `root` to the leaf for `key`: (page, child index taken) per level, the
    /// root first. Returns the writer's reusable path buffer: hand it back with
    /// `self.path_buffer = path`.
    pub(super) fn descend(&mut self, root: PageId, key: &[u8]) -> Result<Vec<(PageId, usize)>> {
        let mut path = std::mem::take(&mut self.path_buffer);
        path.clear();
        let mut page_id = root;
        let mut level = root_level(&self.read(root)?, root)?;
        loop {
            let page = self.read(page_id)?;
            let node = node_at(&page, page_id, level)?;
            if level == 0 {
                path.push((page_id, 0));
                break;
            }
            let index = node.child_index_for(key);
            path.push((page_id, index));
            page_id = node.child(index);
            level -= 1;
        }
        Ok(path)
    }

    /// Creates a new database's first pages: the meta page, the catalog's root leaf holding
    /// `catalog_cells`, and the default keyspace's empty root leaf.
    pub(crate) fn bootstrap(
        pager: &'a mut Pager,
        log: &'a Log,
        mtr: &'a mut MtrBuf,
        log_id: u64,
        journal: Option<&ReplayJournal>,
        first_pages: FirstPages<'_>,
    ) -> Result<Lsn> {
        mtr.clear();
        let state = first_pages.meta;
        let mut payload = Vec::new();
        Change::MetaInit { log_id, state }.encode(&mut payload);
        mtr.push(redo::kind::META_INIT, 0, &payload);
        let leaf = |cells| Change::NodeFormat { node_kind: PageKind::Leaf, level: 0, link: 0, cells };
        for (page_id, cells) in [(state.catalog_root, first_pages.catalog_cells), (first_pages.default_root, &[][..])] {
            payload.clear();
            leaf(cells).encode(&mut payload);
            mtr.push(redo::kind::NODE_FORMAT, u64::from(page_id), &payload);
        }
        let mut touched = Vec::new();
        for record in mtr.records() {
            let page_id = record.page_id as PageId;
            let page = pager.page_mut(page_id, true, true, false, None)?;
            redo::apply_to_valid_page(record.kind, page_id, record.payload, page)
                .map_err(|e| Error::corrupt(page_id, e.to_string()))?;
            touched.push(page_id);
        }
        let (_, end) = log.append(mtr, redo::MTR_COMMIT)?;
        for page_id in touched {
            pager.stamp(page_id, end);
            if let Some(journal) = journal {
                journal.record(end.0, page_id, &pager.read(page_id)?);
            }
        }
        mtr.clear();
        Ok(end)
    }
}

/// What a new database starts with (see [`BatchWriter::bootstrap`]).
pub(crate) struct FirstPages<'c> {
    pub meta: MetaState,
    pub catalog_cells: &'c [u8],
    pub default_root: PageId,
}
