//! Wrap-around: the ring is reused lap after lap, so behind the end of the stream there are
//! always bytes from an earlier lap (or an earlier run), often whole mtrs whose CRC is correct for
//! the LSN they were written at. A scan from the latest checkpoint must yield exactly the mtrs
//! written after it and never one of those stale mtrs, including:
//!
//! - after many laps of the smallest ring, checkpointing as it fills, then a crash;
//! - when the bytes right after the end are a complete, valid-looking mtr of the previous lap,
//!   starting exactly where the next mtr would;
//! - after recovery resumes the log and new mtrs overwrite part of a discarded tail, whose
//!   remaining whole mtr sits exactly where the next new mtr would start.
//!
//! Guards against an mtr's CRC that does not bind its LSN (MariaDB's wrap bit, SQLite's salts),
//! a resume that reuses LSNs of a discarded tail, and a writer that overwrites live redo or
//! loses the checkpoint boundary when the ring fills.

mod common;

use common::{
    append, mtr_of_frame_len, overwrite_stream, read_stream, scan, tagged_payload, LoggedMtr, MtrSpec, TempLog, TestRng,
};
use mtr::frame::{decode_header, verify_frame};
use mtr::layout::MIN_CAPACITY_BYTES;
use mtr::{Log, LogFile, Lsn, ScanMode, FIRST_ENGINE_KIND};

const CAPACITY_BYTES: u64 = MIN_CAPACITY_BYTES;

/// Appends `mtr`, first making room if the ring is nearly full: flushes everything and
/// checkpoints at the start of the oldest mtr that began less than a third of a ring ago, so a
/// good part of the ring stays live redo (the scan must then skip it exactly).
fn append_making_room(log: &Log, logged: &[LoggedMtr], mtr: &MtrSpec) -> LoggedMtr {
    let frame_bound = (mtr.body_len_bytes() + 32) as u64;
    if log.free_bytes() < frame_bound {
        log.flush_all().expect("flush");
        let keep_from = log.end_lsn().0 - CAPACITY_BYTES / 3;
        let checkpoint_lsn =
            logged.iter().map(|logged| logged.start_lsn).find(|&start| start.0 >= keep_from).unwrap_or(log.end_lsn());
        log.checkpoint(checkpoint_lsn).expect("checkpoint");
        assert!(log.free_bytes() >= frame_bound);
    }
    append(log, mtr)
}

/// The logged mtrs a scan from `checkpoint_lsn` must yield, given the log was durable to
/// `durable_end`.
fn expected_after(logged: &[LoggedMtr], checkpoint_lsn: Lsn, durable_end: Lsn) -> Vec<LoggedMtr> {
    logged.iter().filter(|mtr| mtr.start_lsn >= checkpoint_lsn && mtr.end_lsn <= durable_end).cloned().collect()
}

#[test]
fn many_laps_then_a_crash_yield_exactly_the_mtrs_after_the_checkpoint() {
    let (temp, log_file) = TempLog::create(CAPACITY_BYTES);
    let log = Log::resume(log_file, Lsn::ZERO).expect("resume");
    let stream_start = log.end_lsn();
    let mut rng = TestRng::new(7);
    let mut logged: Vec<LoggedMtr> = Vec::new();
    let mut sequence = 0u64;
    while log.end_lsn().since(stream_start) < 12 * CAPACITY_BYTES {
        let payload_len = 12 + rng.below(700) as usize;
        let mtr =
            MtrSpec::single(FIRST_ENGINE_KIND, sequence, tagged_payload(0, sequence, payload_len), sequence as u8);
        let entry = append_making_room(&log, &logged, &mtr);
        logged.push(entry);
        sequence += 1;
        if sequence.is_multiple_of(9) {
            log.flush_all().expect("flush");
        }
    }
    let durable_end = log.flush_all().expect("flush");
    let checkpoint = log.last_checkpoint();
    assert!(log.stats().checkpoints >= 12, "{:?}", log.stats());
    // Appended but never flushed: lost in the crash, so never scanned either.
    for unflushed in 0..3 {
        append(&log, &MtrSpec::single(FIRST_ENGINE_KIND, unflushed, vec![1; 300], 0));
    }
    drop(log);

    let log_file = temp.reopen();
    assert_eq!(log_file.latest_checkpoint().expect("checkpoint"), checkpoint);
    let outcome = scan(&log_file, ScanMode::Strict);
    let expected = expected_after(&logged, checkpoint.lsn, durable_end);
    assert!(expected.len() > 10, "the checkpoint left live redo to scan");
    assert_eq!(outcome.mtrs, expected);
    let end = outcome.end();
    assert_eq!(end.lsn, durable_end);
    assert_eq!(end.unsynced_after, None);
    assert_eq!(end.corruption, None);
}

/// Checks the test's setup: the bytes on disk at `lsn` are, byte for byte, the whole frame of
/// `stale`, written at an earlier LSN in the same place of the ring and valid for that LSN. Only
/// the LSN bound into the CRC tells it from an mtr at `lsn`.
fn assert_stale_frame_at(log_file: &LogFile, lsn: Lsn, stale: &LoggedMtr) {
    assert_eq!(log_file.ring_offset(stale.start_lsn), log_file.ring_offset(lsn));
    let bytes = read_stream(log_file, lsn, stale.frame_len_bytes());
    let header = decode_header(&bytes, stale.start_lsn).expect("stale header decodes");
    let frame = verify_frame(&bytes, header, stale.start_lsn).expect("stale frame is whole");
    assert_eq!(frame.end_lsn, stale.end_lsn);
}

#[test]
fn a_whole_mtr_of_the_previous_lap_right_after_the_end_is_not_yielded() {
    // Frames of 256 bytes tile the ring, so every lap's frames start at the same offsets and
    // the bytes after the end are always a whole frame of the previous lap.
    const FRAME_BYTES: usize = 256;
    let (temp, log_file) = TempLog::create(CAPACITY_BYTES);
    let log = Log::resume(log_file, Lsn::ZERO).expect("resume");
    let frames_per_lap = CAPACITY_BYTES as usize / FRAME_BYTES;
    let mut logged: Vec<LoggedMtr> = Vec::new();
    for sequence in 0..(3 * frames_per_lap + frames_per_lap / 3) as u64 {
        if log.free_bytes() < FRAME_BYTES as u64 + 32 {
            log.flush_all().expect("flush");
            let checkpoint_lsn = log.end_lsn().0 - CAPACITY_BYTES / 2;
            log.checkpoint(Lsn(checkpoint_lsn)).expect("checkpoint");
        }
        let tag = tagged_payload(1, sequence, 12);
        let mtr = mtr_of_frame_len(&log, FRAME_BYTES, &tag, sequence as u8);
        let entry = append(&log, &mtr);
        assert_eq!(entry.frame_len_bytes(), FRAME_BYTES);
        logged.push(entry);
        if sequence.is_multiple_of(5) {
            log.flush_all().expect("flush");
        }
    }
    let durable_end = log.flush_all().expect("flush");
    let checkpoint = log.last_checkpoint();
    drop(log);

    let log_file = temp.reopen();
    let stale = logged
        .iter()
        .find(|mtr| mtr.start_lsn.0 + CAPACITY_BYTES == durable_end.0)
        .expect("an mtr of the previous lap starts where the next would");
    assert_stale_frame_at(&log_file, durable_end, stale);

    let outcome = scan(&log_file, ScanMode::Strict);
    assert_eq!(outcome.mtrs, expected_after(&logged, checkpoint.lsn, durable_end));
    let end = outcome.end();
    assert_eq!(end.lsn, durable_end);
    assert_eq!(end.unsynced_after, None);
    assert_eq!(end.corruption, None);
}

#[test]
fn resume_after_a_scan_never_yields_a_stale_tail_of_the_previous_run() {
    let (temp, log_file) = TempLog::create(CAPACITY_BYTES);
    let mut log = Log::resume(log_file, Lsn::ZERO).expect("resume");
    // The previous run's discarded tail: its torn mtr and the whole one after it.
    let mut stale_tail: Option<(LoggedMtr, LoggedMtr)> = None;
    for run in 0..4u32 {
        if let Some((torn, whole)) = &stale_tail {
            // One mtr exactly as long as the torn one, then a crash: the stale whole mtr now
            // sits right where the next mtr would start. Had the log resumed at the torn mtr's
            // LSN instead of a lap later, it would verify there and be yielded.
            let tag = tagged_payload(run, 0, 12);
            let first = append(&log, &mtr_of_frame_len(&log, torn.frame_len_bytes(), &tag, 0));
            let durable_end = log.flush_all().expect("flush");
            drop(log);
            let log_file = temp.reopen();
            assert_stale_frame_at(&log_file, durable_end, whole);
            let outcome = scan(&log_file, ScanMode::Strict);
            assert_eq!(outcome.mtrs, vec![first], "run {run}");
            assert_eq!(outcome.end().lsn, durable_end, "run {run}");
            assert_eq!(outcome.end().unsynced_after, None, "run {run}");
            log = Log::resume(log_file, durable_end).expect("resume");
        }

        let mut logged: Vec<LoggedMtr> = Vec::new();
        for sequence in 1..6 {
            let mtr = MtrSpec::single(
                FIRST_ENGINE_KIND,
                u64::from(run),
                tagged_payload(run, sequence, 40 + 50 * sequence as usize),
                run as u8,
            );
            logged.push(append(&log, &mtr));
            log.flush_all().expect("flush");
        }
        // The tail: two mtrs in one round, the first of which the crash tears while the second
        // reached the disk whole (writes persisted out of order).
        let torn = append(&log, &MtrSpec::single(FIRST_ENGINE_KIND, 1, tagged_payload(run, 98, 100), 0));
        let whole = append(&log, &MtrSpec::single(FIRST_ENGINE_KIND, 2, tagged_payload(run, 99, 140), 0));
        log.flush_all().expect("flush");
        drop(log);

        let log_file = temp.reopen();
        overwrite_stream(&log_file, torn.start_lsn.add(5), &[0; 20]);
        let outcome = scan(&log_file, ScanMode::Strict);
        assert_eq!(outcome.mtrs, logged, "run {run}");
        let end = outcome.end();
        assert_eq!(end.lsn, torn.start_lsn, "run {run}");
        assert_eq!(end.unsynced_after, Some(whole.start_lsn), "run {run}");
        assert_eq!(end.corruption, None, "run {run}");
        // Recovery applied everything before the torn mtr; the log goes on from there.
        log = Log::resume(log_file, end.lsn).expect("resume");
        stale_tail = Some((torn, whole));
    }
    // A run that appends nothing: the scan from its checkpoint finds only stale bytes.
    let resumed_at = log.end_lsn();
    drop(log);
    let outcome = scan(&temp.reopen(), ScanMode::Strict);
    assert_eq!(outcome.mtrs, Vec::new());
    assert_eq!(outcome.end().lsn, resumed_at);
    assert_eq!(outcome.end().unsynced_after, None);
}
