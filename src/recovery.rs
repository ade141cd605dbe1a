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
//! # Nothing read from the page cache is trusted to be durable
//! After a failed sync, Linux keeps the unwritten bytes in its page cache, marked clean: a
//! recovery in the same boot reads them, but the disk holds the old bytes, and no later sync will
//! write them. So recovery makes durable everything it relies on before its results can replace
//! the log:
//! - before anything else, the data file is synced (by the caller): writes that a process which
//!   died in this boot left in the cache can still tear at a power loss, and the doublewrite
//!   copies that would repair them are overwritten by recovery's own first write-back;
//! - the checkpoint slot it starts from is written again and synced
//!   ([`mtr::LogFile::rewrite_checkpoint_durably`], by the caller): a slot whose sync failed is
//!   readable but may be lost at the next power loss, which would bring back the older slot, and
//!   the doublewrite batches recovery writes name the checkpoint it started from, so a second
//!   recovery from the older slot would ignore them and find pages torn by the first;
//! - between the scans, the redo it is about to apply is rewritten and synced
//!   ([`mtr::LogFile::rewrite_durably`]), so no page built from it reaches the disk before it
//!   (write-ahead holds even for redo that existed only in the cache);
//! - a page whose records are **skipped** because it already holds them is written back all the
//!   same ([`Pager::retain_for_rewrite`]): its in-place bytes may exist only in the cache. The
//!   resumed log's checkpoint drops this redo, so every page it names must be durable first.
//!
//! # Torn pages during recovery's own write-back
//! Every page recovery writes goes through the doublewrite file: none is exempt as a "rebuilt"
//! page, because whether a format record rebuilds a page after a tear depends on every record
//! since the checkpoint for that page, not on the first one this run happened to apply (earlier
//! ones may have been skipped by the page-LSN check and would need the page's bytes next time).
//!
//! # Bounded memory
//! The redo pass holds at most [`Redo::memory_limit_bytes`] of recovered page images (plus the
//! pages of the one mtr being applied): past it, the caller's `write_back` writes the dirty pages
//! back (through the doublewrite file; the log is already durable past them) and they are dropped
//! from memory. Writing back part-way is safe: the data file then holds a prefix of committed
//! mtrs, which the page-LSN check makes idempotent, and a crash before the new checkpoint simply
//! replays from the same one. The scan itself holds a window of a few MiB ([`mtr::Scanner`]).
//!
//! Recovery time is bounded by the log capacity: the scan never reads more than one ring.
//!
//! This module owns the redo pass; it must not write the data file itself (the caller's
//! `write_back` writes the recovered pages back through the checkpoint path).

use std::time::{Duration, Instant};

use mtr::{Checkpoint, LogFile, Lsn, RecordIter, ScanMode, Scanner};
use rustc_hash::FxHashMap as HashMap;

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
    /// Times the redo pass wrote its pages back part-way, to stay within its memory limit.
    pub partial_write_backs: u64,
    /// The most recovered page images held in memory at once.
    pub peak_dirty_pages: u64,
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

/// What the redo pass reads and how much memory it may hold.
pub(crate) struct Redo<'a> {
    pub log: &'a LogFile,
    pub checkpoint: Checkpoint,
    pub journal: Option<&'a ReplayJournal>,
    /// Recovered page images held before they are written back part-way.
    pub memory_limit_bytes: u64,
}

/// Runs the redo pass into `pager` (see the module doc). Returns the report. `write_back`
/// writes every dirty page of the pager back and marks it clean (the caller's checkpoint path).
///
/// Two scans of the log: the first only verifies mtrs and finds the last commit and the
/// abandoned batches; the second applies each committed mtr straight from the scan window, so
/// no batch is held in memory waiting for its commit.
pub(crate) fn redo(
    pager: &mut Pager,
    params: Redo<'_>,
    pages_repaired: u64,
    started: Instant,
    write_back: &mut dyn FnMut(&mut Pager) -> Result<()>,
) -> Result<RecoveryReport> {
    let Redo { log, checkpoint, journal, memory_limit_bytes } = params;
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
    // What is about to be applied may exist only in the page cache (module doc).
    log.rewrite_durably(checkpoint.lsn, plan.last_commit_end)?;
    let page_limit = (memory_limit_bytes / pager.page_size() as u64).max(1);
    let mut applies: HashMap<PageId, bool> = HashMap::default();
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
        let dirty = pager.dirty_count() as u64;
        report.peak_dirty_pages = report.peak_dirty_pages.max(dirty);
        if dirty > page_limit {
            validate_dirty(pager)?;
            write_back(pager)?;
            report.partial_write_backs += 1;
        }
    }
    report.redo_duration = redo_started.elapsed();
    validate_dirty(pager)?;
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

/// Every page the pass produced must be a well-formed page before it is written back.
fn validate_dirty(pager: &Pager) -> Result<()> {
    for dirty in pager.dirty_images() {
        page::validate(dirty.page_id, &dirty.image)
            .map_err(|e| Error::corrupt(dirty.page_id, format!("after redo: {}", e.0)))?;
    }
    Ok(())
}

/// Applies one mtr's records to the pages whose LSN is older than the mtr's end LSN, and keeps
/// the pages it skips for rewriting (module doc). `applies` is scratch space, reused across mtrs.
fn apply_mtr(
    pager: &mut Pager,
    end_lsn: Lsn,
    body: &[u8],
    applies: &mut HashMap<PageId, bool>,
    report: &mut RecoveryReport,
    journal: Option<&ReplayJournal>,
) -> Result<()> {
    // Whether this mtr applies to each page it touches, decided before its first record there.
    applies.clear();
    if applies.capacity() > 4096 {
        applies.shrink_to(64); // one huge mtr must not make every later clear slow
    }
    for record in RecordIter::new(body) {
        let page_id = PageId::try_from(record.page_id)
            .map_err(|_| Error::corrupt(0, format!("redo record names page {}", record.page_id)))?;
        let fresh = redo::is_format(record.kind);
        let apply = match applies.get(&page_id) {
            Some(&apply) => apply,
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
                applies.insert(page_id, apply);
                if !apply {
                    pager.retain_for_rewrite(page_id);
                }
                apply
            }
        };
        if !apply {
            report.records_skipped += 1;
            continue;
        }
        // Never exempt from the doublewrite file (module doc).
        let page = pager.page_mut(page_id, fresh, false, false, None)?;
        redo::apply(record.kind, page_id, record.payload, page).map_err(|e| Error::corrupt(page_id, e.to_string()))?;
        report.records_applied += 1;
    }
    for (&page_id, &applied) in applies.iter() {
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
