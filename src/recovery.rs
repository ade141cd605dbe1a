//! The redo pass: bringing the data file's pages up to the last committed batch after a crash.
//!
//! # How it works
//! 1. **Torn pages** are repaired first, from the doublewrite file ([`crate::checkpoint`]).
//! 2. **Scan.** The log is scanned from the newest valid checkpoint, strictly: the scan stops at
//!    the first position that is not a complete, CRC-valid mtr, and a damaged mtr that the log's
//!    own records prove had been durable is an error ([`mtr::Scanner`]), never a quiet stop.
//! 3. **Whole batches only.** A first scan finds the last mtr flagged
//!    [`crate::redo::MTR_COMMIT`]; a second, on a thread of its own, gathers the mtrs up to it into
//!    windows sorted by page (log order kept within a page), which are applied page by page
//!    (`Window`). Mtrs of a batch flagged
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
//! - after the first scan, the redo it is about to apply is rewritten and synced
//!   ([`mtr::LogFile::rewrite_durably`]) on a thread of its own, which is waited for before any
//!   page is written back, so no page built from it reaches the disk before it (write-ahead holds
//!   even for redo that existed only in the cache);
//! - a page whose records are **skipped** because it already holds them is written back all the
//!   same ([`Pager::retain_for_rewrite`]): its in-place bytes may exist only in the cache. The
//!   resumed log's checkpoint drops this redo, so every page it names must be durable first.
//!
//! # Torn pages during recovery's own write-back
//! A page recovery writes goes through the doublewrite file unless the first record the log
//! holds for it since the checkpoint rebuilds it from nothing (a format record), as on the
//! forward path ([`DirtyImage::rebuilt`](crate::pager::DirtyImage)): a recovery after a crash
//! during this one starts from the same checkpoint (its slot was made durable first), finds the
//! torn page unreadable, and rebuilds it from that record on. It must be the first record since
//! the checkpoint, not the first this run applied: an earlier one skipped by the page-LSN check
//! would need the page's bytes next time. Windows are applied in log order and a page keeps its
//! records' order within one, so the first time the pass meets a page is that page's first
//! record; a page it met before is in the dirty table (applied, or kept for rewriting when
//! skipped), so the pager marks a page rebuilt only when a format record first brings it in.
//! After a partial write-back has dropped pages from the table that no longer tells, so from
//! then on no page is exempt.
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

use std::sync::mpsc;
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
    /// Times the redo pass wrote its pages back part-way, to stay within its memory limit.
    pub partial_write_backs: u64,
    /// Pages written back, part-way and after the redo pass (measured by [`crate::Db::open`]).
    pub pages_written_back: u64,
    /// Of those, pages first written to the doublewrite file (the others redo alone rebuilds
    /// after a tear: see the module doc).
    pub pages_doublewritten: u64,
    /// The most recovered page images held in memory at once.
    pub peak_dirty_pages: u64,
    /// Wall time of the redo pass alone (both scans and every record applied).
    pub redo_duration: Duration,
    /// Of `redo_duration`: the first scan (verifying every mtr, finding the last commit).
    pub scan_duration: Duration,
    /// Rewriting and syncing the redo about to be applied (module doc), on a thread of its own
    /// while the second scan and the applying go on.
    pub rewrite_duration: Duration,
    /// Wall time of writing the recovered pages back after the redo pass (through the
    /// doublewrite file, then in place; measured by [`crate::Db::open`]).
    pub write_back_duration: Duration,
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
    report.scan_duration = redo_started.elapsed();
    let window_bytes = Window::max_bytes_for(memory_limit_bytes);
    let page_limit =
        (memory_limit_bytes.saturating_sub(Window::budget_bytes(window_bytes)) / pager.page_size() as u64).max(1);
    let (mtrs, redo_bytes) = std::thread::scope(|scope| -> Result<(u64, u64)> {
        // What is about to be applied may exist only in the page cache (module doc): it is
        // rewritten and synced while the second scan goes on, and waited for before any page
        // is written back.
        let rewrite = scope.spawn(|| {
            let started = Instant::now();
            log.rewrite_durably(checkpoint.lsn, plan.last_commit_end).map(|()| started.elapsed()).map_err(Error::from)
        });
        let (full_sender, full) = mpsc::sync_channel::<Window>(1);
        let (empty, empty_receiver) = mpsc::channel::<Window>();
        let plan = &plan;
        let gatherer = scope.spawn(move || gather(log, checkpoint, plan, window_bytes, &full_sender, &empty_receiver));
        let mut apply =
            Apply { pager: &mut *pager, page_limit, journal, report: &mut report, write_back, rewrite: Some(rewrite) };
        for mut window in full.iter() {
            apply.window(&mut window)?;
            // The gatherer may be gone already (it sent its last window).
            let _ = empty.send(window);
        }
        apply.wait_for_rewrite()?;
        drop(apply);
        gatherer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })?;
    report.mtrs_replayed = mtrs;
    report.redo_bytes_replayed = redo_bytes;
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

/// One record of the window, located by its page: the window applies its records page by page.
#[derive(Clone, Copy)]
struct WindowRecord {
    /// `page_id << 32 | position in the window`: sorting by it groups a page's records and keeps
    /// them in log order.
    order: u64,
    /// End LSN of the record's mtr.
    end_lsn: Lsn,
    /// Where the payload lies in [`Window::bytes`].
    payload_at: u32,
    payload_len: u32,
    kind: u8,
}

impl WindowRecord {
    fn page_id(&self) -> PageId {
        (self.order >> 32) as PageId
    }
}

/// Committed mtrs gathered for applying page by page.
///
/// Applying each mtr as the scan meets it touches a different random leaf at almost every
/// record, and each touch misses the processor's caches; gathering a window of redo and
/// applying it sorted by page (as InnoDB's recovery does) touches each page once per window.
/// Reordering across pages is sound because a record's redo depends only on its own page's
/// prior state (`crate::redo`), and the page-LSN check is made per page and mtr as before.
///
/// The second scan runs on a thread of its own ([`gather`]): it fills a window and sorts it
/// while the previous one is being applied.
///
/// Sorting also copies the payloads into the order they are applied in, so the applier reads
/// them as one stream instead of missing the cache at nearly every record (on the gathering
/// thread, which has time to spare).
///
/// Memory: a window holds `max_bytes` of mtr bodies, as much again in their payloads' sorted
/// copy, and as much again in its index of records, each with [`WINDOW_SLACK_BYTES`] to spare
/// (the mtr that fills it up). Its buffers are allocated at that size and grow only by what an
/// mtr larger than the slack needs (never by doubling); emptying gives that back
/// ([`Window::empty`]). At most [`WINDOW_COUNT`] exist at once (one filling, one waiting, one
/// being applied); [`Window::budget_bytes`] of them is taken out of the recovery memory limit,
/// and one mtr larger than the slack adds at most 3 times its size while it is in a window.
struct Window {
    bytes: Vec<u8>,
    /// Where [`Window::sort`] lays the payloads out in the order they are applied in.
    sorted_bytes: Vec<u8>,
    records: Vec<WindowRecord>,
    max_bytes: usize,
    max_records: usize,
}

/// A window's share of the recovery memory limit: a 64th, from 64 KiB to 4 MiB of mtr bodies.
/// Windows past a few MiB gained nothing measurable: what a window saves is the second touch of
/// a page within it, and a few MiB of redo already touch most leaves of a large tree once.
const WINDOW_SHARE: u64 = 64;
const WINDOW_MIN_BYTES: u64 = 64 << 10;
const WINDOW_MAX_BYTES: u64 = 4 << 20;
/// Windows in existence at once: one filling, one waiting, one being applied.
const WINDOW_COUNT: u64 = 3;
/// Room each window buffer keeps beyond its share, for the mtr that fills it up.
const WINDOW_SLACK_BYTES: usize = 64 << 10;

impl Window {
    fn max_bytes_for(memory_limit_bytes: u64) -> usize {
        (memory_limit_bytes / WINDOW_SHARE).clamp(WINDOW_MIN_BYTES, WINDOW_MAX_BYTES) as usize
    }

    fn new(max_bytes: usize) -> Window {
        let max_records = max_bytes / std::mem::size_of::<WindowRecord>();
        Window {
            bytes: Vec::with_capacity(Window::byte_capacity(max_bytes)),
            sorted_bytes: Vec::with_capacity(Window::byte_capacity(max_bytes)),
            records: Vec::with_capacity(Window::record_capacity(max_records)),
            max_bytes,
            max_records,
        }
    }

    fn byte_capacity(max_bytes: usize) -> usize {
        max_bytes + WINDOW_SLACK_BYTES
    }

    fn record_capacity(max_records: usize) -> usize {
        max_records + WINDOW_SLACK_BYTES / std::mem::size_of::<WindowRecord>()
    }

    /// The most memory the windows hold together, with no mtr larger than the slack in them.
    fn budget_bytes(max_bytes: usize) -> u64 {
        WINDOW_COUNT * 3 * Window::byte_capacity(max_bytes) as u64
    }

    /// Empties the window for reuse, giving back what an mtr larger than the slack made its
    /// buffers grow by.
    fn empty(&mut self) {
        self.records.clear();
        self.bytes.clear();
        self.sorted_bytes.clear();
        self.records.shrink_to(Window::record_capacity(self.max_records));
        self.bytes.shrink_to(Window::byte_capacity(self.max_bytes));
        self.sorted_bytes.shrink_to(Window::byte_capacity(self.max_bytes));
    }

    /// The bytes its buffers hold allocated.
    #[cfg(test)]
    fn allocated_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.sorted_bytes.capacity()
            + self.records.capacity() * std::mem::size_of::<WindowRecord>()
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Sorts the records by page (log order kept within a page) and lays their payloads out in
    /// that order.
    fn sort(&mut self) {
        self.records.sort_unstable_by_key(|record| record.order);
        self.sorted_bytes.clear();
        self.sorted_bytes.reserve_exact(self.bytes.len());
        for record in &mut self.records {
            let at = record.payload_at as usize;
            record.payload_at = self.sorted_bytes.len() as u32;
            self.sorted_bytes.extend_from_slice(&self.bytes[at..at + record.payload_len as usize]);
        }
        std::mem::swap(&mut self.bytes, &mut self.sorted_bytes);
    }

    fn is_full(&self) -> bool {
        self.bytes.len() >= self.max_bytes || self.records.len() >= self.max_records
    }

    /// Adds one committed mtr's records (an mtr larger than the window makes a window of its own
    /// when the caller applies it next).
    fn push_mtr(&mut self, end_lsn: Lsn, body: &[u8]) -> Result<()> {
        let base = self.bytes.len();
        self.bytes.reserve_exact(body.len());
        self.bytes.extend_from_slice(body);
        for record in RecordIter::new(body) {
            if self.records.len() == self.records.capacity() {
                // Grown by steps, not doubled: only an mtr of many records gets here.
                self.records.reserve_exact(1024);
            }
            let page_id = PageId::try_from(record.page_id)
                .map_err(|_| Error::corrupt(0, format!("redo record names page {}", record.page_id)))?;
            let payload_at = base + (record.payload.as_ptr() as usize - body.as_ptr() as usize);
            let position = self.records.len() as u64;
            self.records.push(WindowRecord {
                order: u64::from(page_id) << 32 | position,
                end_lsn,
                payload_at: payload_at as u32,
                payload_len: record.payload.len() as u32,
                kind: record.kind,
            });
        }
        Ok(())
    }
}

/// The second scan (on a thread of its own): the committed mtrs after the checkpoint, except
/// abandoned batches, gathered into sorted windows and sent to `full`; emptied windows come back
/// through `empty`. Returns the mtrs gathered and their redo bytes.
fn gather(
    log: &LogFile,
    checkpoint: Checkpoint,
    plan: &Plan,
    window_bytes: usize,
    full: &mpsc::SyncSender<Window>,
    empty: &mpsc::Receiver<Window>,
) -> Result<(u64, u64)> {
    let (mut mtrs, mut redo_bytes) = (0u64, 0u64);
    let mut window = Window::new(window_bytes);
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
        window.push_mtr(frame.end_lsn, frame.body)?;
        mtrs += 1;
        redo_bytes += frame.end_lsn.since(frame.start_lsn);
        if window.is_full() {
            window.sort();
            if full.send(window).is_err() {
                return Ok((mtrs, redo_bytes)); // the applier stopped on an error of its own
            }
            window = empty.try_recv().unwrap_or_else(|_| Window::new(window_bytes));
        }
    }
    if !window.is_empty() {
        window.sort();
        let _ = full.send(window);
    }
    Ok((mtrs, redo_bytes))
}

/// Applies windows of redo to the pager, writing pages back part-way past the memory limit.
struct Apply<'p, 'r, 'w, 's> {
    pager: &'p mut Pager,
    page_limit: u64,
    journal: Option<&'r ReplayJournal>,
    report: &'r mut RecoveryReport,
    write_back: &'w mut dyn FnMut(&mut Pager) -> Result<()>,
    /// The redo rewrite, until it is waited for.
    rewrite: Option<std::thread::ScopedJoinHandle<'s, Result<Duration>>>,
}

impl Apply<'_, '_, '_, '_> {
    /// Waits for the redo rewrite: no page built from the redo may be written back before it.
    fn wait_for_rewrite(&mut self) -> Result<()> {
        if let Some(rewrite) = self.rewrite.take() {
            self.report.rewrite_duration = rewrite.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        }
        Ok(())
    }

    /// Applies every record of a sorted `window`, page by page, and empties it.
    fn window(&mut self, window: &mut Window) -> Result<()> {
        let mut records = &window.records[..];
        while let Some(first) = records.first() {
            let page_id = first.page_id();
            let run = records.iter().take_while(|record| record.page_id() == page_id).count();
            self.page(page_id, &records[..run], &window.bytes)?;
            records = &records[run..];
            let dirty = self.pager.dirty_count() as u64;
            self.report.peak_dirty_pages = self.report.peak_dirty_pages.max(dirty);
            if dirty > self.page_limit {
                self.wait_for_rewrite()?;
                validate_dirty(self.pager)?;
                (self.write_back)(self.pager)?;
                self.report.partial_write_backs += 1;
            }
        }
        window.empty();
        Ok(())
    }

    /// Applies one page's records of a window, mtr by mtr, each only if the page's LSN is older
    /// than the mtr's end LSN; a page it skips is kept for rewriting (module doc).
    fn page(&mut self, page_id: PageId, records: &[WindowRecord], bytes: &[u8]) -> Result<()> {
        let mut records = records;
        while let Some(first) = records.first() {
            let end_lsn = first.end_lsn;
            let run = records.iter().take_while(|record| record.end_lsn == end_lsn).count();
            let (mtr, rest) = records.split_at(run);
            records = rest;
            // Whether this mtr applies to the page is decided before its first record there.
            let fresh = redo::is_format(first.kind);
            let apply = match self.pager.read(page_id) {
                Ok(page) => page::header(&page).lsn.get() < end_lsn.0,
                Err(_) if fresh => true,
                Err(error) => {
                    return Err(Error::corrupt(
                        page_id,
                        format!("the page is unreadable and the redo at LSN {end_lsn} needs its contents: {error}"),
                    ))
                }
            };
            if !apply {
                self.pager.retain_for_rewrite(page_id);
                self.report.records_skipped += run as u64;
                continue;
            }
            // Exempt from the doublewrite file only while this is the page's first record since
            // the checkpoint (module doc): before any partial write-back, a page the pass has
            // touched (applied or skipped) is in the dirty table.
            let exempt = self.report.partial_write_backs == 0;
            let page = self.pager.page_mut(page_id, fresh, exempt, false, None)?;
            for record in mtr {
                let at = record.payload_at as usize;
                let payload = &bytes[at..at + record.payload_len as usize];
                redo::apply_to_valid_page(record.kind, page_id, payload, page)
                    .map_err(|e| Error::corrupt(page_id, e.to_string()))?;
            }
            self.pager.stamp(page_id, end_lsn);
            self.report.records_applied += run as u64;
            if let Some(journal) = self.journal {
                journal
                    .compare(end_lsn.0, page_id, &self.pager.read(page_id)?)
                    .map_err(|detail| Error::corrupt(page_id, detail))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod window_memory {
    //! A window's buffers stay at their budget: they do not double when the mtr that fills a
    //! window overshoots it, and an mtr larger than the slack is given back when the window is
    //! emptied for reuse.
    use super::*;

    /// An mtr body of `records` records of `payload` bytes each.
    fn mtr_body(records: usize, payload: usize) -> Vec<u8> {
        let mut mtr = mtr::MtrBuf::new();
        for page_id in 0..records {
            mtr.push(redo::kind::CELL_PUT, page_id as u64 + 1, &vec![7u8; payload]);
        }
        mtr.body().to_vec()
    }

    #[test]
    fn windows_stay_within_their_budget() {
        let max_bytes = Window::max_bytes_for(0);
        let mut window = Window::new(max_bytes);
        let allocated = window.allocated_bytes();
        assert!(allocated as u64 * WINDOW_COUNT <= Window::budget_bytes(max_bytes));
        // Small mtrs up to the point the window is full: no growth.
        let small = mtr_body(2, 100);
        let mut lsn = 1000;
        while !window.is_full() {
            window.push_mtr(Lsn(lsn), &small).unwrap();
            lsn += 1000;
        }
        window.sort();
        assert_eq!(window.allocated_bytes(), allocated, "a window filled by small mtrs grew");
        window.empty();
        // One mtr of 1 MiB (16 times the window): it grows by about 3 times its size, no more.
        let large = mtr_body(16 << 10, 56);
        window.push_mtr(Lsn(lsn), &large).unwrap();
        window.sort();
        let grown = window.allocated_bytes() - allocated;
        assert!(grown <= 3 * large.len(), "grew by {grown} bytes for an mtr of {}", large.len());
        window.empty();
        assert_eq!(window.allocated_bytes(), allocated, "the large mtr's room was kept after emptying");
    }
}
