//! Checkpoints, and the threads that run beside writers: the checkpoint thread (once the log is
//! half full), the log flusher under [`Durability::Eventual`], and stopping both on close.
//!
//! This module owns when and how a checkpoint is taken (one at a time, between batches, the
//! redo flushed first); it must not write pages itself (that is [`crate::checkpoint`]) nor apply
//! batches (`batch`).
//!
//! [`Durability::Eventual`]: super::Durability::Eventual

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::{self, DoublewriteTag};
use crate::error::{Error, Result};

use super::{Db, Inner, DATA_FILE, DOUBLEWRITE_FILE, EVENTUAL_FLUSH_INTERVAL};

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
        self.inner.checkpoint()?;
        self.inner.release_space()
    }
}

impl Inner {
    pub(super) fn checkpoint(&self) -> Result<()> {
        let _one_at_a_time = self.checkpoint_lock.lock();
        self.check_writable()?;
        let _span = tracing::info_span!("checkpoint").entered();
        // Between batches (a batch holds the write lock from its first mtr to its commit), so
        // the images hold only committed changes and `lsn` covers all of them.
        let (images, lsn) = {
            let tree = self.tree.read();
            (tree.pager.dirty_images(), self.log.end_lsn())
        };
        // Checkpoints are serialised, so the last completed one cannot change under this one.
        let tag =
            DoublewriteTag { log_id: self.log.file().log_id(), base_checkpoint: self.log.last_checkpoint().number };
        if images.is_empty() && lsn == self.log.last_checkpoint().lsn {
            return Ok(());
        }
        self.log.flush_up_to(lsn).map_err(|e| self.fail(e.into()))?;
        let data_name = self.storage.describe(DATA_FILE);
        let data = { Arc::clone(self.tree.read().pager.data_file()) };
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
        self.tree.write().pager.mark_written(&images).map_err(|e| self.fail(e))?;
        self.log.checkpoint(lsn).map_err(|e| self.fail(e.into()))?;
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.counters.pages_written.fetch_add(written.pages, Ordering::Relaxed);
        self.counters.pages_doublewritten.fetch_add(written.doublewritten, Ordering::Relaxed);
        tracing::info!(lsn = lsn.0, pages = written.pages, doublewrite_batches = written.batches, "checkpoint written");
        Ok(())
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
            if self.log.free_bytes() < self.log.file().capacity() / 2 {
                let _ = self.checkpoint();
            }
        }
    }

    /// The log flusher under [`Durability::Eventual`]: every [`EVENTUAL_FLUSH_INTERVAL`], makes
    /// the buffered redo durable, whatever else is going on.
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
            if self.failure.lock().is_some() || self.log.unflushed_bytes() == 0 {
                continue;
            }
            if let Err(error) = self.log.flush_all() {
                self.fail(error.into());
            }
        }
    }
}
