//! Checkpoints, and the threads that run beside writers: the checkpoint thread (once the log is
//! 3/4 full, fuzzy write-backs of the oldest dirty pages), the log flusher under
//! [`Durability::Eventual`], and stopping both on close.
//!
//! This module owns when and how a checkpoint is taken (one at a time, between batches, the
//! redo flushed first); it must not write pages itself (that is [`crate::checkpoint`]) nor apply
//! batches (`batch`).
//!
//! [`Durability::Eventual`]: super::Durability::Eventual

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mtr::Lsn;

use crate::checkpoint::{self, DoublewriteTag};
use crate::error::{Error, Result};

use super::{Db, Inner, DATA_FILE, DOUBLEWRITE_FILE, EVENTUAL_FLUSH_INTERVAL};

/// Pages the checkpoint thread writes back per checkpoint it writes (16 MiB of 4 KiB pages).
const ROUND_PAGES: usize = 4096;
/// Live redo, in eighths of the ring, above which the checkpoint thread starts writing back...
const FLUSH_START_EIGHTHS: u64 = 6;
/// ...and down to which it writes back: each page is written once its oldest change is this old.
const FLUSH_TARGET_EIGHTHS: u64 = 5;

#[derive(Default)]
pub(super) struct Background {
    stop: bool,
    requested: bool,
}

impl Db {
    pub(super) fn shutdown(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        {
            let mut background = self.inner.background.lock();
            background.stop = true;
            self.inner.background_signal.notify_all();
            self.inner.log_flush_signal.notify_all();
        }
        for handle in [self.background.take(), self.log_flusher.take()].into_iter().flatten() {
            let _ = handle.join();
        }
        // An error here (the database failed) is the final checkpoint's to report.
        let _ = self.inner.cut_free_end();
        self.inner.checkpoint()?;
        self.inner.release_space()
    }
}

impl Inner {
    /// Writes every dirty page back and a checkpoint at the end of the log (at the oldest
    /// change made meanwhile, if writers went on).
    pub(super) fn checkpoint(&self) -> Result<()> {
        self.write_back(Lsn(u64::MAX), usize::MAX)
    }

    /// A fuzzy checkpoint (InnoDB's flush list): writes back the dirty pages whose oldest change
    /// is before `before`, oldest first and at most `max_pages` of them, then writes a checkpoint
    /// at the oldest change still held only in memory. Pages changed often stay dirty while the
    /// log has room, so each page write carries many changes.
    pub(super) fn write_back(&self, before: Lsn, max_pages: usize) -> Result<()> {
        let _one_at_a_time = self.checkpoint_lock.lock();
        self.check_writable()?;
        let _span = tracing::info_span!("checkpoint").entered();
        // Between batches (a batch holds the write lock from its first mtr to its commit), so
        // the images hold only committed changes, and none is newer than `taken_at`.
        // Checkpoints are serialised, so the last completed one cannot change under this one: it
        // is where recovery starts if this write-back is cut short.
        let base = self.log.last_checkpoint();
        let (images, taken_at, data) = {
            let tree = self.tree.read();
            let images = tree.pager.oldest_dirty_images(before, max_pages, base.lsn);
            (images, self.log.end_lsn(), Arc::clone(tree.pager.data_file()))
        };
        let tag = DoublewriteTag { log_id: self.log.file().log_id(), base_checkpoint: base.number };
        if !images.is_empty() {
            // Write-ahead: every image's LSN is at most `taken_at`.
            self.log.flush_up_to(taken_at).map_err(|e| self.fail(e.into()))?;
            let data_name = self.storage.describe(DATA_FILE);
            let written = checkpoint::write_pages(
                &data,
                &data_name,
                &self.doublewrite,
                &self.storage.describe(DOUBLEWRITE_FILE),
                self.page_size,
                &images,
                tag,
            )
            .map_err(|e| self.fail(e))?;
            self.counters.pages_written.fetch_add(written.pages, Ordering::Relaxed);
            self.counters.pages_doublewritten.fetch_add(written.doublewritten, Ordering::Relaxed);
            tracing::info!(pages = written.pages, doublewrite_batches = written.batches, "pages written back");
        }
        // Under the write lock, between batches: the log's end is a batch boundary, and every
        // page changed since `taken_at` is dirty with an oldest LSN at or after it.
        let (lsn, partial) = {
            let mut tree = self.tree.write();
            if !images.is_empty() {
                tree.pager.mark_written(&images, taken_at).map_err(|e| self.fail(e))?;
            }
            tree.pager.forget_cleaned_up_to(base.lsn);
            match tree.pager.oldest_dirty_lsn() {
                Some(oldest) => (oldest, true),
                None => (self.log.end_lsn(), false),
            }
        };
        if lsn == base.lsn {
            // Nothing new to checkpoint; a cut an open iterator deferred may be due now.
            return self.cut_data_file(lsn).map_err(|e| self.fail(e));
        }
        self.log.flush_up_to(lsn).map_err(|e| self.fail(e.into()))?;
        self.log.checkpoint(lsn).map_err(|e| self.fail(e.into()))?;
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.cut_data_file(lsn).map_err(|e| self.fail(e))?;
        if partial {
            self.counters.partial_checkpoints.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(lsn = lsn.0, partial, "checkpoint written");
        Ok(())
    }

    /// Whether live redo exceeds [`FLUSH_START_EIGHTHS`] of the ring.
    pub(super) fn flush_wanted(&self) -> bool {
        let capacity = self.log.file().capacity();
        capacity - self.log.free_bytes() > capacity / 8 * FLUSH_START_EIGHTHS
    }

    /// After the final checkpoint of a clean close: nothing in the log's ring or the doublewrite
    /// file is needed any more (the next open finds no redo after the checkpoint, and a
    /// doublewrite batch is used only to repair a checkpoint that was cut short), so their disk
    /// space goes back to the file system. A closed database then occupies its data file and a
    /// few blocks, not a preallocated log.
    fn release_space(&self) -> Result<()> {
        if self.log.release_ring_space().map_err(|e| self.fail(e.into()))? {
            let name = self.storage.describe(DOUBLEWRITE_FILE);
            let len = self.doublewrite.len().map_err(|source| Error::Io {
                action: "reading the doublewrite file's length",
                path: name.clone(),
                source,
            })?;
            self.doublewrite.punch_hole(0, len).map_err(|source| Error::Io {
                action: "giving back the doublewrite file's space",
                path: name,
                source,
            })?;
        }
        Ok(())
    }

    pub(super) fn request_checkpoint(&self) {
        let mut background = self.background.lock();
        background.requested = true;
        self.background_signal.notify_all();
    }

    pub(super) fn background_loop(&self) {
        loop {
            {
                let mut background = self.background.lock();
                if !background.stop && !background.requested {
                    self.background_signal.wait_for(&mut background, Duration::from_secs(1));
                }
                if background.stop {
                    return;
                }
                background.requested = false;
            }
            if self.failure.lock().is_some() {
                continue;
            }
            // Down to 5/8 of the ring, a round at a time: the pages whose oldest change is
            // oldest go first, and the log keeps between 5/8 and 3/4 of a ring of redo.
            let capacity = self.log.file().capacity();
            while self.flush_wanted() && self.failure.lock().is_none() {
                let target = self.log.end_lsn().0.saturating_sub(capacity / 8 * FLUSH_TARGET_EIGHTHS);
                if self.write_back(Lsn(target), ROUND_PAGES).is_err() {
                    break;
                }
            }
        }
    }

    /// The log flusher for [`Durability::Eventual`] writes: every [`EVENTUAL_FLUSH_INTERVAL`],
    /// makes the buffered redo durable, whatever else is going on.
    ///
    /// [`Durability::Eventual`]: super::Durability::Eventual
    pub(super) fn log_flush_loop(&self) {
        loop {
            {
                let mut background = self.background.lock();
                if !background.stop {
                    self.log_flush_signal.wait_for(&mut background, EVENTUAL_FLUSH_INTERVAL);
                }
                if background.stop {
                    return;
                }
            }
            if !self.eventual_writes.load(std::sync::atomic::Ordering::Relaxed)
                || self.failure.lock().is_some()
                || self.log.unflushed_bytes() == 0
            {
                continue;
            }
            if let Err(error) = self.log.flush_all() {
                self.fail(error.into());
            }
        }
    }
}
