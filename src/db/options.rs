//! How to open a database: [`Options`], [`Durability`], and the defaults and intervals they
//! name.
//!
//! This module owns the option values and their validation; it must not act on them (`open`
//! opens with them, `batch` and `background` keep the durability they promise).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::page;
use crate::replay::ReplayJournal;

/// The default page size.
pub const DEFAULT_PAGE_SIZE: usize = 4096;
/// The default redo log capacity: 128 MiB (a batch's redo must fit in it).
pub const DEFAULT_LOG_CAPACITY: u64 = 128 << 20;
/// The default for [`Options::recovery_memory`]: 256 MiB of recovered page images, twice the
/// default log: a full default log replayed into a tree of up to 256 MiB needs no partial
/// write-back (with 64 MiB, a full log over a 100 MB tree took 2.29 s to open instead of 1.09 s:
/// each partial write-back goes through the doublewrite file and two syncs, and later redo dirties
/// the same pages again).
pub const DEFAULT_RECOVERY_MEMORY: u64 = 256 << 20;
/// Under [`Durability::Eventual`], buffered redo is synced at least this often, by a thread of
/// its own.
pub const EVENTUAL_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Under [`Durability::Eventual`], buffered redo beyond this is synced at once.
pub const EVENTUAL_FLUSH_BYTES: u64 = 4 << 20;

/// When a write is durable.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// A write returns once its redo is durable (fsynced). Concurrent writers share syncs.
    #[default]
    Immediate,
    /// A write returns once its redo is buffered; a thread of the database's own syncs it within
    /// about a second ([`EVENTUAL_FLUSH_INTERVAL`]), with or without background checkpoints. A crash may
    /// lose the latest writes, but never leaves a hole or a partial batch.
    Eventual,
}

/// How to open a database.
#[derive(Clone, Debug)]
pub struct Options {
    pub(super) page_size: Option<usize>,
    pub(super) durability: Durability,
    pub(super) log_capacity: u64,
    pub(super) background_checkpoints: bool,
    pub(super) recovery_memory_bytes: u64,
    pub(super) replay_journal: Option<ReplayJournal>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            page_size: None,
            durability: Durability::Immediate,
            log_capacity: DEFAULT_LOG_CAPACITY,
            background_checkpoints: true,
            recovery_memory_bytes: DEFAULT_RECOVERY_MEMORY,
            replay_journal: None,
        }
    }
}

impl Options {
    /// Page size for a new database: a power of two from 4096 to 65536 (default 4096). An
    /// existing database keeps its own; asking for another is [`Error::PageSizeMismatch`].
    #[must_use]
    pub fn page_size(mut self, bytes: usize) -> Options {
        self.page_size = Some(bytes);
        self
    }

    /// When writes are durable (default [`Durability::Immediate`]).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Options {
        self.durability = durability;
        self
    }

    /// Redo log capacity for a new database, a multiple of 4096 of at least 256 KiB (default
    /// 128 MiB). It bounds recovery time and the size of one batch.
    #[must_use]
    pub fn log_capacity(mut self, bytes: u64) -> Options {
        self.log_capacity = bytes;
        self
    }

    /// Whether a background thread checkpoints as the log fills (default true). Without it,
    /// writers checkpoint themselves when the log runs short.
    #[must_use]
    pub fn background_checkpoints(mut self, enabled: bool) -> Options {
        self.background_checkpoints = enabled;
        self
    }

    /// The most memory recovery may hold in recovered page images (default 256 MiB, at least one
    /// page). Past it, recovery writes the pages it has recovered so far back to the data file
    /// (through the doublewrite file) and goes on, so opening a database after a crash needs at
    /// most this much for pages, plus the pages one mtr touches (a few hundred at most) and the
    /// log scanner's window of a few MiB, whatever the size of the tree or of the log.
    #[must_use]
    pub fn recovery_memory(mut self, bytes: u64) -> Options {
        self.recovery_memory_bytes = bytes;
        self
    }

    /// Replay consistency checking (a testing aid, see [`crate::replay`]): records every page
    /// image the forward path produces, and makes recovery compare its replay with them.
    #[must_use]
    pub fn replay_check(mut self, journal: ReplayJournal) -> Options {
        self.replay_journal = Some(journal);
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        if let Some(size) = self.page_size {
            if !size.is_power_of_two() || !(page::MIN_PAGE_SIZE..=page::MAX_PAGE_SIZE).contains(&size) {
                return Err(Error::InvalidOption(format!("page size {size} is not a power of two from 4096 to 65536")));
            }
        }
        if self.log_capacity < 256 * 1024
            || self.log_capacity > mtr::layout::MAX_CAPACITY_BYTES
            || !self.log_capacity.is_multiple_of(4096)
        {
            return Err(Error::InvalidOption(format!(
                "log capacity {} is not a multiple of 4096 from 256 KiB to {} bytes",
                self.log_capacity,
                mtr::layout::MAX_CAPACITY_BYTES
            )));
        }
        Ok(())
    }
}
