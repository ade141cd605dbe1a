//! The pager: page ids to bytes, the dirty-page table, snapshot images, and writing pages back.
//!
//! # How pages are held
//! - A **clean** page is read from the data file through the read-only mapping (module `map`),
//!   or, on storage that cannot be mapped (the fault-injecting test storage), through positioned
//!   reads into a cache. Before its first use it is checksummed and validated.
//! - A **dirty** page is a private copy (`Arc<[u8]>`) in the dirty table; readers find it there
//!   first. Copies are shared, copy-on-write: a checkpoint writing a page and a reader's snapshot
//!   may hold the same image without copying it.
//! - A batch's **undo** (what its first change to each page replaced, put back if the batch is
//!   abandoned) is the old image itself when that is shared anyway, and otherwise a copy of its
//!   bytes in a recycled buffer while the batch changes the image in place: one page copy per
//!   page per batch either way, but no allocation and free of a page each time.
//!
//! # Write-ahead and no-steal
//! Pages are written back only by [`crate::checkpoint`], which takes its images between batches
//! (so they hold only committed changes) and flushes the redo log past their LSNs before writing
//! any of them. The mapping is read-only, so nothing else can put a page into the file.
//!
//! # The flush list
//! Every dirty page has an oldest LSN: where the redo of the batch that made it dirty starts
//! (the batch writer sets it before its first change). The flush list orders dirty pages by it;
//! fuzzy checkpoints write back the oldest ones and checkpoint at the oldest that stays dirty
//! ([`Pager::oldest_dirty_lsn`]). A page a write-back finds changed since its image was taken
//! stays dirty with the image's LSN as its oldest.
//!
//! # Snapshots
//! Iterators read at a snapshot version (the number of batches committed when they started). When
//! a batch first changes a page while a snapshot is open, the pager keeps the page's previous image
//! in `history`, tagged with the last version it was current for, **if an open snapshot needs
//! it**: one whose version is newer than the page's last kept image (older snapshots read that
//! one or an older one). A snapshot reader takes the oldest image that is still valid for its
//! version. Images no open snapshot needs are dropped.
//!
//! **Memory bound:** each open snapshot retains at most one image per page changed since it
//! began, however many batches change the page (N snapshots open at distinct versions: at most N
//! images per page). The images are shared with the dirty table until a writer changes the page.
//!
//! This module owns page bytes in memory and their movement to and from the data file. It must not
//! interpret node contents beyond validation, and must not change page bytes except by handing a
//! mutable page to the caller that applies a redo record.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mtr::StorageFile;
use parking_lot::Mutex;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::error::{Error, Result};
use crate::map::Mapping;
use crate::page::{self, PageId};

/// Clean pages kept for storage that cannot be mapped.
const UNMAPPED_CACHE_PAGES: usize = 16 * 1024;

/// A page's bytes as a reader sees them.
pub(crate) enum PageRef<'a> {
    Borrowed(&'a [u8]),
    Shared(Arc<[u8]>),
}

impl std::ops::Deref for PageRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            PageRef::Borrowed(bytes) => bytes,
            PageRef::Shared(bytes) => bytes,
        }
    }
}

/// A dirty page as a checkpoint takes it.
pub(crate) struct DirtyImage {
    pub page_id: PageId,
    /// Shared with the dirty table until a writer changes the page again.
    pub image: Arc<[u8]>,
    /// The page's redo since it last became dirty starts by rebuilding it from nothing (a format
    /// record), so a torn write of it is repaired by redo alone and needs no doublewrite copy.
    pub rebuilt: bool,
}

/// What a batch needs to know to keep images for open snapshots.
#[derive(Copy, Clone, Debug)]
pub(crate) struct SnapshotWindow {
    /// The committed version the batch starts from: the last version its old images serve.
    pub version: u64,
    /// The newest open snapshot's version.
    pub newest_open: u64,
}

/// Images kept for snapshots: (last version the image was current for, image), ascending.
type SnapshotImages = Vec<(u64, Arc<[u8]>)>;

/// What a batch's first change to a page replaced, to put back if the batch is abandoned.
enum Undo {
    /// The page was clean: abandoning drops its dirty image.
    Clean,
    /// Its previous dirty image, still shared with a checkpoint or a snapshot: the batch
    /// changes a copy (copy on write), and abandoning puts this one back.
    Shared(Arc<[u8]>),
    /// A copy of its previous dirty image, in a recycled buffer: the batch changes the image in
    /// place (nobody else holds it), and abandoning copies these bytes back.
    Copied(Box<[u8]>),
}

/// Undo buffers kept for the next batches: a batch of N first changes to dirty pages reuses
/// them instead of allocating and freeing N pages. At most this many bytes of them (4,096 pages
/// of 4 KiB, 256 of 64 KiB) stay allocated between batches.
const UNDO_POOL_BYTES: usize = 16 << 20;

pub(crate) struct Pager {
    page_size: usize,
    data: Arc<dyn StorageFile>,
    data_name: String,
    map: Option<Mapping>,
    /// Whole pages in the data file.
    file_pages: u64,
    /// One bit per mapped page: checksummed and validated since it was last written.
    verified: Vec<AtomicU64>,
    /// Clean pages read without a mapping.
    unmapped_cache: Mutex<HashMap<PageId, Arc<[u8]>>>,
    dirty: HashMap<PageId, Arc<[u8]>>,
    /// Dirty pages whose first change since they were last clean was a format record.
    rebuilt: HashSet<PageId>,
    /// The flush list: every dirty page under its oldest LSN (see [`Pager::oldest_dirty_lsn`]),
    /// in that order, and the same by page.
    flush_list: BTreeSet<(u64, PageId)>,
    oldest: HashMap<PageId, u64>,
    /// The oldest LSN a page that becomes dirty now is given: where the current batch's redo
    /// starts.
    dirtying_lsn: u64,
    /// Pages a write-back made clean, with the LSN its images were taken at (all of the page's
    /// redo so far is before it), while that is after the last checkpoint known here: redo of
    /// theirs may still be replayed, so their next format record does not make them
    /// [`DirtyImage::rebuilt`] until a checkpoint passes it.
    cleaned_at: HashMap<PageId, u64>,
    history: HashMap<PageId, SnapshotImages>,
    /// The open batch's undo: each page's state before the batch first changed it.
    undo: HashMap<PageId, Undo>,
    /// Recycled undo buffers (see [`UNDO_POOL_BYTES`]).
    undo_pool: Vec<Box<[u8]>>,
}

fn io_error<'a>(action: &'static str, path: &'a str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { action, path: path.to_string(), source }
}

impl Pager {
    pub(crate) fn open(data: Arc<dyn StorageFile>, data_name: String, page_size: usize) -> Result<Pager> {
        let mut pager = Pager {
            page_size,
            data,
            data_name,
            map: None,
            file_pages: 0,
            verified: Vec::new(),
            unmapped_cache: Mutex::new(HashMap::default()),
            dirty: HashMap::default(),
            rebuilt: HashSet::default(),
            flush_list: BTreeSet::new(),
            oldest: HashMap::default(),
            dirtying_lsn: 0,
            cleaned_at: HashMap::default(),
            undo: HashMap::default(),
            undo_pool: Vec::new(),
            history: HashMap::default(),
        };
        pager.remap()?;
        Ok(pager)
    }

    pub(crate) fn page_size(&self) -> usize {
        self.page_size
    }

    pub(crate) fn data_file(&self) -> &Arc<dyn StorageFile> {
        &self.data
    }

    /// Re-reads the file length and maps all whole pages of it. Needs `&mut self`: no reader
    /// holds a slice of the old mapping.
    pub(crate) fn remap(&mut self) -> Result<()> {
        let len = self.data.len().map_err(io_error("reading the data file's length", &self.data_name))?;
        self.file_pages = len / self.page_size as u64;
        let mapped_len = self.file_pages * self.page_size as u64;
        self.map = match self.data.os_file() {
            Some(file) => {
                Some(Mapping::new(file, mapped_len).map_err(io_error("mapping the data file", &self.data_name))?)
            }
            None => None,
        };
        self.verified = (0..self.file_pages.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        self.unmapped_cache.lock().clear();
        Ok(())
    }

    /// After pages were written: maps the file's new length if it grew, and forgets that the
    /// written pages were verified (the others keep their verification: a fuzzy write-back
    /// writes a few thousand pages of a large file, and re-verifying every page after each one
    /// would cost a checksum per page read).
    fn refresh_after_write(&mut self, written: &[DirtyImage]) -> Result<()> {
        let len = self.data.len().map_err(io_error("reading the data file's length", &self.data_name))?;
        if len / self.page_size as u64 != self.file_pages {
            let verified = std::mem::take(&mut self.verified);
            self.remap()?;
            for (new, old) in self.verified.iter().zip(verified) {
                new.store(old.into_inner(), Ordering::Relaxed);
            }
        }
        let mut cache = self.unmapped_cache.lock();
        for dirty in written {
            let (word, bit) = (dirty.page_id as usize / 64, 1u64 << (dirty.page_id % 64));
            if let Some(w) = self.verified.get(word) {
                w.fetch_and(!bit, Ordering::AcqRel);
            }
            cache.remove(&dirty.page_id);
        }
        Ok(())
    }

    /// The newest image of a page.
    pub(crate) fn read(&self, page_id: PageId) -> Result<PageRef<'_>> {
        if let Some(image) = self.dirty.get(&page_id) {
            return Ok(PageRef::Borrowed(image));
        }
        self.read_clean(page_id)
    }

    /// The image of a page as of snapshot `version`.
    pub(crate) fn read_at(&self, page_id: PageId, version: u64) -> Result<PageRef<'_>> {
        if let Some(images) = self.history.get(&page_id) {
            // Images are in ascending version order; the first one still current at `version`.
            if let Some((_, image)) = images.iter().find(|(last_version, _)| *last_version >= version) {
                return Ok(PageRef::Shared(Arc::clone(image)));
            }
        }
        self.read(page_id)
    }

    /// The page as the data file has it, validated.
    pub(crate) fn read_clean(&self, page_id: PageId) -> Result<PageRef<'_>> {
        if u64::from(page_id) >= self.file_pages {
            return Err(Error::corrupt(
                page_id,
                format!("the page lies beyond the end of {} ({} pages)", self.data_name, self.file_pages),
            ));
        }
        let offset = u64::from(page_id) as usize * self.page_size;
        if let Some(map) = &self.map {
            let bytes = map
                .get(offset, self.page_size)
                .ok_or_else(|| Error::corrupt(page_id, "the page lies outside the mapping"))?;
            let (word, bit) = (page_id as usize / 64, 1u64 << (page_id % 64));
            let verified = self.verified.get(word).is_some_and(|w| w.load(Ordering::Acquire) & bit != 0);
            if !verified {
                check_page(page_id, bytes)?;
                if let Some(w) = self.verified.get(word) {
                    w.fetch_or(bit, Ordering::AcqRel);
                }
            }
            return Ok(PageRef::Borrowed(bytes));
        }
        if let Some(image) = self.unmapped_cache.lock().get(&page_id) {
            return Ok(PageRef::Shared(Arc::clone(image)));
        }
        let mut bytes = vec![0u8; self.page_size];
        self.data.read_exact_at(&mut bytes, offset as u64).map_err(io_error("reading a page", &self.data_name))?;
        check_page(page_id, &bytes)?;
        let image: Arc<[u8]> = bytes.into();
        let mut cache = self.unmapped_cache.lock();
        if cache.len() >= UNMAPPED_CACHE_PAGES {
            // Bounded memory for storage that cannot be mapped (inspection overlays of large
            // databases): start over rather than track recency; these paths are not hot.
            cache.clear();
        }
        cache.insert(page_id, Arc::clone(&image));
        Ok(PageRef::Shared(image))
    }

    /// The page as the data file has it, if it is valid; `None` if it is damaged or missing.
    pub(crate) fn read_clean_if_valid(&self, page_id: PageId) -> Option<PageRef<'_>> {
        self.read_clean(page_id).ok()
    }

    /// A mutable image of the page for a redo record to change. With `in_batch`, on the first
    /// change in the open batch the page's previous state is kept as the batch's undo (see
    /// [`Pager::abort_batch`]), and `history` (when snapshots are open) keeps its previous image
    /// for snapshot readers if one needs it (see the module doc). `fresh`: the record rebuilds
    /// the page, so damaged or missing old bytes are fine. `exempt`: if the page becomes dirty
    /// with this record, it may skip the doublewrite copy ([`DirtyImage::rebuilt`]); the caller
    /// says so only when this is the page's first record since the checkpoint (recovery: see
    /// [`crate::recovery`] for when it knows that).
    pub(crate) fn page_mut(
        &mut self,
        page_id: PageId,
        fresh: bool,
        exempt: bool,
        in_batch: bool,
        history: Option<SnapshotWindow>,
    ) -> Result<&mut [u8]> {
        let first_in_batch = !in_batch || !self.undo.contains_key(&page_id);
        if first_in_batch {
            // The current image serves the versions since the last kept one (or since ever);
            // it is needed only if an open snapshot lies among them.
            let needed = history.filter(|window| {
                self.history
                    .get(&page_id)
                    .and_then(|images| images.last())
                    .is_none_or(|(last, _)| window.newest_open > *last)
            });
            if let Some(window) = needed {
                let previous: Option<Arc<[u8]>> = match self.dirty.get(&page_id) {
                    Some(image) => Some(Arc::clone(image)),
                    None => self.read_clean_if_valid(page_id).map(|bytes| Arc::from(&*bytes)),
                };
                if let Some(previous) = previous {
                    self.history.entry(page_id).or_default().push((window.version, previous));
                }
            }
            if in_batch {
                let undo = match self.dirty.get(&page_id) {
                    None => Undo::Clean,
                    // Shared already (a checkpoint or a snapshot holds it): the change below
                    // copies on write anyway, so the old image itself is the undo.
                    Some(image) if Arc::strong_count(image) > 1 => Undo::Shared(Arc::clone(image)),
                    // Held by nobody else: keep a copy in a recycled buffer and change the
                    // image in place, rather than allocate a new image and free the old one.
                    Some(image) => {
                        let mut copy = match self.undo_pool.pop() {
                            Some(buffer) if buffer.len() == image.len() => buffer,
                            _ => vec![0u8; image.len()].into_boxed_slice(),
                        };
                        copy.copy_from_slice(image);
                        Undo::Copied(copy)
                    }
                };
                self.undo.insert(page_id, undo);
            }
        }
        if !self.dirty.contains_key(&page_id) {
            let image: Arc<[u8]> = match self.read_clean(page_id) {
                Ok(bytes) => Arc::from(&*bytes),
                // Built in place: a zeroed `Vec` converted into an `Arc` would be copied once more.
                Err(_) if fresh => std::iter::repeat_n(0u8, self.page_size).collect(),
                Err(error) => return Err(error),
            };
            self.dirty.insert(page_id, image);
            self.enlist(page_id, self.dirtying_lsn);
            // The meta page is never exempt from the doublewrite file: it names the page size,
            // which recovery needs before redo can rebuild anything.
            if fresh && exempt && page_id != page::META_PAGE_ID {
                self.rebuilt.insert(page_id);
            } else {
                self.rebuilt.remove(&page_id);
            }
        }
        let Some(image) = self.dirty.get_mut(&page_id) else {
            return Err(Error::corrupt(page_id, "dirty page vanished"));
        };
        if Arc::get_mut(image).is_none() {
            // Shared with a checkpoint, an undo image or a snapshot: copy on write.
            *image = Arc::from(&**image);
        }
        Arc::get_mut(image).ok_or_else(|| Error::corrupt(page_id, "page image still shared after copy"))
    }

    /// Keeps the page in the dirty table as it reads now, unchanged, so that the next
    /// write-back writes it again (recovery: a page whose redo was skipped because it already
    /// holds the change may hold it only in the operating system's cache, see
    /// [`crate::recovery`]). A page that cannot be read is left alone.
    pub(crate) fn retain_for_rewrite(&mut self, page_id: PageId) {
        if self.dirty.contains_key(&page_id) {
            return;
        }
        if let Ok(bytes) = self.read_clean(page_id) {
            let image: Arc<[u8]> = Arc::from(&*bytes);
            self.dirty.insert(page_id, image);
            self.enlist(page_id, self.dirtying_lsn);
            self.rebuilt.remove(&page_id);
        }
    }

    /// Starts a batch: its redo starts at `lsn` (the log's end; the caller holds the writer
    /// lock, so no other mtr comes first), which a page it makes dirty is given as its oldest
    /// LSN; its undo starts empty.
    pub(crate) fn begin_batch(&mut self, lsn: mtr::Lsn) {
        self.dirtying_lsn = lsn.0;
        self.end_batch_undo();
    }

    /// The batch committed: its undo is dropped (buffers recycled).
    pub(crate) fn commit_batch(&mut self) {
        self.end_batch_undo();
    }

    /// Abandons the open batch: puts back every page's state from before its first change.
    pub(crate) fn abort_batch(&mut self) {
        let undo = std::mem::take(&mut self.undo);
        for (page_id, previous) in undo {
            match previous {
                Undo::Clean => {
                    self.rebuilt.remove(&page_id);
                    self.delist(page_id);
                    self.dirty.remove(&page_id);
                }
                Undo::Shared(image) => {
                    self.dirty.insert(page_id, image);
                }
                Undo::Copied(bytes) => {
                    match self.dirty.get_mut(&page_id).and_then(Arc::get_mut) {
                        Some(image) => image.copy_from_slice(&bytes),
                        None => {
                            self.dirty.insert(page_id, Arc::from(&*bytes));
                        }
                    }
                    self.recycle(bytes);
                }
            }
        }
    }

    fn end_batch_undo(&mut self) {
        let mut undo = std::mem::take(&mut self.undo);
        for (_, previous) in undo.drain() {
            if let Undo::Copied(bytes) = previous {
                self.recycle(bytes);
            }
        }
        // Keep the table's allocation for the next batch, unless one huge batch grew it.
        if undo.capacity() <= 4 * (UNDO_POOL_BYTES / self.page_size) {
            self.undo = undo;
        }
    }

    fn recycle(&mut self, buffer: Box<[u8]>) {
        if (self.undo_pool.len() + 1) * self.page_size <= UNDO_POOL_BYTES {
            self.undo_pool.push(buffer);
        }
    }

    /// Stamps a changed page with the end LSN of the mtr that changed it.
    pub(crate) fn stamp(&mut self, page_id: PageId, lsn: mtr::Lsn) {
        if let Some(image) = self.dirty.get_mut(&page_id) {
            if Arc::get_mut(image).is_none() {
                *image = Arc::from(&**image);
            }
            if let Some(bytes) = Arc::get_mut(image) {
                page::header_mut(bytes).lsn.set(lsn.0);
            }
        }
    }

    /// Every dirty page, by id, sharing the images (a checkpoint's copy costs nothing until a
    /// writer changes a page again).
    pub(crate) fn dirty_images(&self) -> Vec<DirtyImage> {
        self.images_of(self.dirty.keys().copied(), mtr::Lsn::ZERO)
    }

    /// The dirty pages whose oldest LSN is before `before`, oldest first, at most `max_pages` of
    /// them; by id, sharing the images as [`Pager::dirty_images`] does. `checkpoint`: the last
    /// completed checkpoint, where recovery starts if this write-back tears a page.
    pub(crate) fn oldest_dirty_images(
        &self,
        before: mtr::Lsn,
        max_pages: usize,
        checkpoint: mtr::Lsn,
    ) -> Vec<DirtyImage> {
        let ids = self.flush_list.iter().take_while(|(oldest, _)| *oldest < before.0).take(max_pages);
        self.images_of(ids.map(|&(_, page_id)| page_id), checkpoint)
    }

    /// A page is written without a doublewrite copy only if redo from `checkpoint` rebuilds it:
    /// its redo since it became dirty starts with a format record, and none of its older redo
    /// lies after `checkpoint` (a fuzzy checkpoint can stay behind a page's earlier write-back;
    /// replaying that older redo would need the page's bytes).
    fn images_of(&self, ids: impl Iterator<Item = PageId>, checkpoint: mtr::Lsn) -> Vec<DirtyImage> {
        let mut images: Vec<_> = ids
            .filter_map(|id| {
                let image = self.dirty.get(&id)?;
                let rebuilt = self.rebuilt.contains(&id)
                    && self.cleaned_at.get(&id).is_none_or(|&cleaned| cleaned <= checkpoint.0);
                Some(DirtyImage { page_id: id, image: Arc::clone(image), rebuilt })
            })
            .collect();
        images.sort_unstable_by_key(|dirty| dirty.page_id);
        images
    }

    /// The oldest LSN of any dirty page: every change logged before it is in the data file (no
    /// dirty page holds one that is not), so a checkpoint may be written there. A page's oldest
    /// LSN is where the redo of the batch that made it dirty starts, always a batch boundary, so
    /// recovery from it never starts inside a batch. `None` if no page is dirty.
    ///
    /// Invariant: no dirty page's oldest LSN is before the last checkpoint (a page dirty when a
    /// checkpoint is computed bounds it; one made dirty later gets a later LSN).
    pub(crate) fn oldest_dirty_lsn(&self) -> Option<mtr::Lsn> {
        self.flush_list.first().map(|&(oldest, _)| mtr::Lsn(oldest))
    }

    fn enlist(&mut self, page_id: PageId, oldest: u64) {
        if let Some(previous) = self.oldest.insert(page_id, oldest) {
            self.flush_list.remove(&(previous, page_id));
        }
        self.flush_list.insert((oldest, page_id));
    }

    fn delist(&mut self, page_id: PageId) {
        if let Some(previous) = self.oldest.remove(&page_id) {
            self.flush_list.remove(&(previous, page_id));
        }
    }

    pub(crate) fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// After a checkpoint wrote `written`: pages not changed since are clean again (readers now
    /// find them in the file), and every written page is validated afresh on its next read. The
    /// images were taken between batches when the log ended at `taken_at`: a page changed since
    /// holds on disk everything before it, so its oldest LSN becomes `taken_at`.
    pub(crate) fn mark_written(&mut self, written: &[DirtyImage], taken_at: mtr::Lsn) -> Result<()> {
        self.refresh_after_write(written)?;
        for dirty in written {
            match self.dirty.get(&dirty.page_id) {
                Some(current) if Arc::ptr_eq(current, &dirty.image) => {
                    self.dirty.remove(&dirty.page_id);
                    self.delist(dirty.page_id);
                    self.cleaned_at.insert(dirty.page_id, taken_at.0);
                }
                Some(_) => self.enlist(dirty.page_id, taken_at.0),
                None => {}
            }
            // Clean now, or changed since the image was taken: either way its redo from the
            // checkpoint being written does not start with a format record.
            self.rebuilt.remove(&dirty.page_id);
        }
        Ok(())
    }

    /// Forgets when pages were cleaned, for those cleaned at or before `checkpoint` (none of
    /// their earlier redo is replayed any more).
    pub(crate) fn forget_cleaned_up_to(&mut self, checkpoint: mtr::Lsn) {
        self.cleaned_at.retain(|_, cleaned| *cleaned > checkpoint.0);
    }

    /// Drops snapshot images no open snapshot (the oldest being `oldest_open`) needs.
    pub(crate) fn trim_history(&mut self, oldest_open: Option<u64>) {
        match oldest_open {
            None => self.history.clear(),
            Some(oldest) => self.history.retain(|_, images| {
                images.retain(|(last_version, _)| *last_version >= oldest);
                !images.is_empty()
            }),
        }
    }

    /// Cuts the data file to its first `page_count` pages, if it is longer, and maps it anew;
    /// returns the bytes cut. The caller guarantees that nothing will read or write a page at
    /// or beyond `page_count` (no snapshot is open, no redo that recovery may replay names one)
    /// and holds the tree's write lock (no reader holds a slice of the old mapping, whose tail
    /// would no longer be backed by the file).
    pub(crate) fn cut_file(&mut self, page_count: u32) -> Result<u64> {
        let keep = u64::from(page_count) * self.page_size as u64;
        let len = self.data.len().map_err(io_error("reading the data file's length", &self.data_name))?;
        if len <= keep {
            return Ok(0);
        }
        self.data.set_len(keep).map_err(io_error("cutting free pages off the data file", &self.data_name))?;
        self.data.sync_data().map_err(io_error("syncing the data file after cutting it", &self.data_name))?;
        self.remap()?;
        Ok(len - keep)
    }

    pub(crate) fn history_pages(&self) -> usize {
        self.history.values().map(Vec::len).sum()
    }
}

/// Checksum and structure of a page read from a file.
pub(crate) fn check_page(page_id: PageId, bytes: &[u8]) -> Result<()> {
    if !page::checksum_ok(page_id, bytes) {
        return Err(Error::corrupt(page_id, "checksum mismatch (a torn or damaged page)"));
    }
    page::validate(page_id, bytes).map_err(|e| Error::corrupt(page_id, e.0))?;
    Ok(())
}

#[cfg(test)]
mod undo_pool_bound {
    //! The undo buffers kept between batches stay within [`UNDO_POOL_BYTES`], whatever the page
    //! size and however many pages one batch changed.
    use super::*;
    use mtr::{OpenMode, Storage};

    #[test]
    fn recycled_buffers_stay_within_the_bound() {
        for page_size in [4096usize, 65536] {
            let storage = crate::fault::FaultStorage::new();
            let file = storage.open_file("data", OpenMode::CreateNew).unwrap();
            let mut pager = Pager::open(file, "data".into(), page_size).unwrap();
            for _ in 0..(2 * UNDO_POOL_BYTES / page_size + 10) {
                pager.recycle(vec![0u8; page_size].into_boxed_slice());
            }
            let kept = pager.undo_pool.len() * page_size;
            assert!(kept <= UNDO_POOL_BYTES, "{kept} bytes kept with {page_size}-byte pages");
            assert!(kept + page_size > UNDO_POOL_BYTES, "the pool should fill up to its bound");
        }
    }
}
