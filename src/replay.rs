//! Replay consistency checking, after PostgreSQL's `wal_consistency_checking`: a debugging aid
//! that proves redo reproduces the forward path byte for byte.
//!
//! Give the same [`ReplayJournal`] to a database through [`crate::Options::replay_check`] before
//! a crash and to the recovery after it. On the forward path, after each mtr, the journal keeps
//! the image of every page the mtr changed, keyed by (mtr end LSN, page id). During recovery,
//! every page an mtr is replayed onto is compared with the image recorded for that mtr and page;
//! any difference (outside the checksum field, which is only set when a page is written back)
//! fails recovery with [`crate::Error::Corrupt`]. Memory grows with every mtr: for tests only.
//!
//! This module owns the journal; it must not change pages.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::page::PageId;

#[derive(Default)]
struct Journal {
    images: HashMap<(u64, PageId), Vec<u8>>,
    pages_compared: u64,
}

/// Page images by (mtr end LSN, page id), shared across a crash (see the module doc).
#[derive(Clone, Default)]
pub struct ReplayJournal {
    journal: Arc<Mutex<Journal>>,
}

impl std::fmt::Debug for ReplayJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let journal = self.journal.lock();
        f.debug_struct("ReplayJournal")
            .field("images", &journal.images.len())
            .field("pages_compared", &journal.pages_compared)
            .finish()
    }
}

/// Bytes compared: all but the checksum, which the forward path sets only on write-back.
const COMPARED_FROM: usize = 4;

impl ReplayJournal {
    /// An empty journal.
    #[must_use]
    pub fn new() -> ReplayJournal {
        ReplayJournal::default()
    }

    /// Pages compared during recoveries so far.
    #[must_use]
    pub fn pages_compared(&self) -> u64 {
        self.journal.lock().pages_compared
    }

    /// Images recorded so far.
    #[must_use]
    pub fn images_recorded(&self) -> usize {
        self.journal.lock().images.len()
    }

    pub(crate) fn record(&self, end_lsn: u64, page_id: PageId, image: &[u8]) {
        self.journal.lock().images.insert((end_lsn, page_id), image.to_vec());
    }

    /// Compares a replayed page with the forward path's image; `Err` describes the first
    /// differing byte. Pages the journal never saw (another run's mtrs) pass.
    pub(crate) fn compare(&self, end_lsn: u64, page_id: PageId, replayed: &[u8]) -> Result<(), String> {
        let mut journal = self.journal.lock();
        let Some(forward) = journal.images.get(&(end_lsn, page_id)) else { return Ok(()) };
        let differs = forward.len() != replayed.len()
            || forward[COMPARED_FROM..] != replayed.get(COMPARED_FROM..).unwrap_or_default()[..];
        if differs {
            let at =
                (COMPARED_FROM..forward.len().min(replayed.len())).find(|&i| forward[i] != replayed[i]).unwrap_or(0);
            return Err(format!(
                "replay of the mtr ending at LSN {end_lsn} left page {page_id} different from the forward path at byte {at}"
            ));
        }
        journal.pages_compared += 1;
        Ok(())
    }
}
