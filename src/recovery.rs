//! The redo pass: bringing the data file's pages up to the last committed batch after a crash.
//!
//! # How it works
//! 1. **Torn pages** are repaired first, from the doublewrite file ([`crate::checkpoint`]).
//! 2. **Scan.** The log is scanned from the newest valid checkpoint, strictly: the scan stops at
//!    the first position that is not a complete, CRC-valid mtr, and a damaged mtr that the log's
//!    own records prove had been durable is an error ([`mtr::Scanner`]), never a quiet stop.
//! 3. **Whole batches only.** The mtrs of a batch are held back until the mtr flagged
//!    [`crate::redo::MTR_COMMIT`] arrives, then applied in order. Mtrs of a batch flagged
//!    [`crate::redo::MTR_ABORT`], and every mtr after the last commit (a batch cut short by the
//!    crash), are discarded. Because pages are written back only between batches (no-steal),
//!    the data file never holds a change that recovery discards.
//! 4. **Page-LSN check.** For each page an mtr touches, its records are applied only if the
//!    page's LSN is older than the mtr's end LSN; afterwards the page carries that LSN. A page
//!    already written back with the change is skipped, so recovery is idempotent: running it
//!    twice, or crashing during it and running it again, gives the same pages. A page whose old
//!    bytes are unreadable is acceptable only if the mtr rebuilds it from nothing (a format
//!    record); otherwise it is reported as corrupt.
//! 5. The recovered pages stay in the dirty table; the caller writes them back and writes a new
//!    checkpoint before the log resumes, so the next recovery starts after them.
//!
//! Recovery time is bounded by the log capacity: the scan never reads more than one ring.
//!
//! This module owns the redo pass; it must not write the data file itself (the caller writes the
//! recovered pages back through the checkpoint path).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mtr::{Checkpoint, LogFile, Lsn, RecordIter, ScanMode, Scanner};

use crate::error::{Error, Result};
use crate::page::{self, PageId};
use crate::pager::Pager;
use crate::redo;
use crate::replay::ReplayJournal;

/// What a recovery did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The checkpoint the redo pass started from.
    pub checkpoint_lsn: u64,
    /// Where the applied history ends (end of the last committed or aborted batch).
    pub recovered_end_lsn: u64,
    /// Where the valid log ended.
    pub scan_end_lsn: u64,
    /// Complete mtrs found after the checkpoint.
    pub mtrs_scanned: u64,
    /// Mtrs of committed batches, replayed.
    pub mtrs_replayed: u64,
    /// Redo bytes of the replayed mtrs.
    pub redo_bytes_replayed: u64,
    /// Records applied to a page.
    pub records_applied: u64,
    /// Records skipped because the page already had them.
    pub records_skipped: u64,
    /// Committed batches replayed.
    pub batches_committed: u64,
    /// Batches that had been aborted.
    pub batches_aborted: u64,
    /// Mtrs after the last commit, discarded.
    pub mtrs_discarded: u64,
    /// Pages restored from the doublewrite file.
    pub pages_repaired: u64,
    /// Wall time of the whole recovery.
    pub duration: Duration,
}

struct HeldMtr {
    end_lsn: Lsn,
    body: Vec<u8>,
}

/// Runs the redo pass into `pager` (see the module doc). Returns the report.
pub(crate) fn redo(
    pager: &mut Pager,
    log: &LogFile,
    checkpoint: Checkpoint,
    pages_repaired: u64,
    started: Instant,
    journal: Option<&ReplayJournal>,
) -> Result<RecoveryReport> {
    let _span = tracing::info_span!("recovery", checkpoint_lsn = checkpoint.lsn.0).entered();
    let mut report = RecoveryReport {
        checkpoint_lsn: checkpoint.lsn.0,
        recovered_end_lsn: checkpoint.lsn.0,
        pages_repaired,
        ..RecoveryReport::default()
    };
    let mut held: Vec<HeldMtr> = Vec::new();
    let mut scanner = Scanner::new(log, checkpoint, ScanMode::Strict);
    while let Some(frame) = scanner.next_mtr()? {
        report.mtrs_scanned += 1;
        if frame.flags & redo::MTR_ABORT != 0 {
            held.clear();
            report.batches_aborted += 1;
            report.recovered_end_lsn = frame.end_lsn.0;
            continue;
        }
        held.push(HeldMtr { end_lsn: frame.end_lsn, body: frame.body.to_vec() });
        if frame.flags & redo::MTR_COMMIT != 0 {
            let redo_bytes = frame.end_lsn.0 - report.recovered_end_lsn;
            for mtr in held.drain(..) {
                apply_mtr(pager, &mtr, &mut report, journal)?;
            }
            report.batches_committed += 1;
            report.redo_bytes_replayed += redo_bytes;
            report.recovered_end_lsn = frame.end_lsn.0;
        }
    }
    report.mtrs_discarded = held.len() as u64;
    report.scan_end_lsn = scanner.end().map_or(report.recovered_end_lsn, |end| end.lsn.0);
    // Every page the pass produced must be a well-formed page.
    for dirty in pager.dirty_images() {
        page::validate(dirty.page_id, &dirty.image)
            .map_err(|e| Error::corrupt(dirty.page_id, format!("after redo: {}", e.0)))?;
    }
    report.duration = started.elapsed();
    tracing::info!(
        mtrs_replayed = report.mtrs_replayed,
        redo_bytes = report.redo_bytes_replayed,
        records_applied = report.records_applied,
        records_skipped = report.records_skipped,
        batches = report.batches_committed,
        mtrs_discarded = report.mtrs_discarded,
        pages_repaired = report.pages_repaired,
        end_lsn = report.recovered_end_lsn,
        "redo pass finished"
    );
    Ok(report)
}

fn apply_mtr(
    pager: &mut Pager,
    mtr: &HeldMtr,
    report: &mut RecoveryReport,
    journal: Option<&ReplayJournal>,
) -> Result<()> {
    // Whether this mtr applies to each page it touches, decided before its first record there.
    let mut applies: HashMap<PageId, bool> = HashMap::new();
    for record in RecordIter::new(&mtr.body) {
        let page_id = PageId::try_from(record.page_id)
            .map_err(|_| Error::corrupt(0, format!("redo record names page {}", record.page_id)))?;
        let fresh = redo::is_format(record.kind);
        let apply = match applies.get(&page_id) {
            Some(&apply) => apply,
            None => {
                let apply = match pager.read(page_id) {
                    Ok(page) => page::header(&page).lsn.get() < mtr.end_lsn.0,
                    Err(_) if fresh => true,
                    Err(error) => {
                        return Err(Error::corrupt(
                            page_id,
                            format!(
                                "the page is unreadable and the redo at LSN {} needs its contents: {error}",
                                mtr.end_lsn
                            ),
                        ))
                    }
                };
                applies.insert(page_id, apply);
                apply
            }
        };
        if !apply {
            report.records_skipped += 1;
            continue;
        }
        let page = pager.page_mut(page_id, fresh, None, None)?;
        redo::apply(record.kind, page_id, record.payload, page).map_err(|e| Error::corrupt(page_id, e.to_string()))?;
        report.records_applied += 1;
    }
    for (page_id, applied) in applies {
        if applied {
            pager.stamp(page_id, mtr.end_lsn);
            if let Some(journal) = journal {
                journal
                    .compare(mtr.end_lsn.0, page_id, &pager.read(page_id)?)
                    .map_err(|detail| Error::corrupt(page_id, detail))?;
            }
        }
    }
    report.mtrs_replayed += 1;
    Ok(())
}
