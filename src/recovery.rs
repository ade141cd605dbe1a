//! The redo pass: bringing the data file's pages up to the last committed batch after a crash.
//!
//! # How it works
//! 1. **Torn pages** are repaired first, from the doublewrite file ([`crate::checkpoint`]).
//! 2. **Scan.** The log is scanned from the newest valid checkpoint, strictly: the scan stops at
//!    the first position that is not a complete, CRC-valid mtr, and a damaged mtr that the log's
//!    own records prove had been durable is an error ([`mtr::Scanner`]), never a quiet stop.
//! 3. **Whole batches only.** A first scan finds the last mtr flagged
//!    [`crate::redo::MTR_COMMIT`]; a second applies the mtrs up to it, in order. Mtrs of a batch flagged
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
    /// Wall time of the redo pass alone (both scans and every record applied).
    pub redo_duration: Duration,
    /// Wall time of the whole recovery: also torn-page repair and writing the recovered pages
    /// back (measured by [`crate::Db::open`]).
    pub duration: Duration,
}

/// What the first pass learns: where committed history ends, and which runs of mtrs belong to
/// abandoned batches.
#[derive(Default)]
struct Plan {
    last_commit_end: Lsn,
    aborted: Vec<(Lsn, Lsn)>,
}

/// Runs the redo pass into `pager` (see the module doc). Returns the report.
///
/// Two scans of the log: the first only verifies mtrs and finds the last commit and the
/// abandoned batches; the second applies each committed mtr straight from the scan window, so
/// no batch is held in memory waiting for its commit.
pub(crate) fn redo(
    pager: &mut Pager,
    log: &LogFile,
    checkpoint: Checkpoint,
    pages_repaired: u64,
    started: Instant,
    journal: Option<&ReplayJournal>,
) -> Result<RecoveryReport> {
    let _span = tracing::info_span!("recovery", checkpoint_lsn = checkpoint.lsn.0).entered();
    let redo_started = Instant::now();
    let mut report = RecoveryReport {
        checkpoint_lsn: checkpoint.lsn.0,
        recovered_end_lsn: checkpoint.lsn.0,
        pages_repaired,
        ..RecoveryReport::default()
    };
    let mut plan = Plan { last_commit_end: checkpoint.lsn, aborted: Vec::new() };
    let mut batch_start = checkpoint.lsn;
    let mut pending_mtrs = 0u64;
    let mut scanner = Scanner::new(log, checkpoint, ScanMode::Strict);
    while let Some(frame) = scanner.next_mtr()? {
        report.mtrs_scanned += 1;
        pending_mtrs += 1;
        if frame.flags & redo::MTR_ABORT != 0 {
            plan.aborted.push((batch_start, frame.end_lsn));
            report.batches_aborted += 1;
        } else if frame.flags & redo::MTR_COMMIT != 0 {
            plan.last_commit_end = frame.end_lsn;
            report.batches_committed += 1;
        } else {
            continue;
        }
        batch_start = frame.end_lsn;
        pending_mtrs = 0;
    }
    report.mtrs_discarded = pending_mtrs;
    report.recovered_end_lsn = batch_start.0;
    report.scan_end_lsn = scanner.end().map_or(batch_start.0, |end| end.lsn.0);
    let mut applies: Vec<(PageId, bool)> = Vec::new();
    let mut scanner = Scanner::new(log, checkpoint, ScanMode::Strict);
    let mut aborted = plan.aborted.iter().peekable();
    while let Some(frame) = scanner.next_mtr()? {
        if frame.end_lsn > plan.last_commit_end {
            break;
        }
        while aborted.peek().is_some_and(|&&(_, end)| end <= frame.start_lsn) {
            aborted.next();
        }
        if aborted.peek().is_some_and(|&&(start, _)| start <= frame.start_lsn) {
            continue; // part of an abandoned batch (or its abort record)
        }
        apply_mtr(pager, frame.end_lsn, frame.body, &mut applies, &mut report, journal)?;
        report.redo_bytes_replayed += frame.end_lsn.since(frame.start_lsn);
    }
    report.redo_duration = redo_started.elapsed();
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

/// Applies one mtr's records to the pages whose LSN is older than the mtr's end LSN.
/// `applies` is scratch space, reused across mtrs.
fn apply_mtr(
    pager: &mut Pager,
    end_lsn: Lsn,
    body: &[u8],
    applies: &mut Vec<(PageId, bool)>,
    report: &mut RecoveryReport,
    journal: Option<&ReplayJournal>,
) -> Result<()> {
    // Whether this mtr applies to each page it touches, decided before its first record there.
    applies.clear();
    for record in RecordIter::new(body) {
        let page_id = PageId::try_from(record.page_id)
            .map_err(|_| Error::corrupt(0, format!("redo record names page {}", record.page_id)))?;
        let fresh = redo::is_format(record.kind);
        let apply = match applies.iter().find(|(id, _)| *id == page_id) {
            Some(&(_, apply)) => apply,
            None => {
                let apply = match pager.read(page_id) {
                    Ok(page) => page::header(&page).lsn.get() < end_lsn.0,
                    Err(_) if fresh => true,
                    Err(error) => {
                        return Err(Error::corrupt(
                            page_id,
                            format!("the page is unreadable and the redo at LSN {end_lsn} needs its contents: {error}"),
                        ))
                    }
                };
                applies.push((page_id, apply));
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
    for &(page_id, applied) in applies.iter() {
        if applied {
            pager.stamp(page_id, end_lsn);
            if let Some(journal) = journal {
                journal
                    .compare(end_lsn.0, page_id, &pager.read(page_id)?)
                    .map_err(|detail| Error::corrupt(page_id, detail))?;
            }
        }
    }
    report.mtrs_replayed += 1;
    Ok(())
}
