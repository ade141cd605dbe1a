//! Round trip: every mtr appended and flushed comes back from a scan exactly as it went in (same
//! records, kinds, page ids, payloads and flags), at the LSNs `append` returned, one after the
//! other with no gap, and the scan then ends cleanly at the end of the stream.
//!
//! Guards against regressions in record and mtr framing (LEB128 lengths around the 1-, 2- and
//! 10-byte boundaries, large page ids, empty and multi-KiB payloads, the flags byte), in the
//! group-commit writer (bytes lost or written twice between flush rounds, a wrong
//! `durable_back`) and in the scanner (frames split across the ring's end, windows re-read,
//! LSNs far from zero in the CRC).

mod common;

use common::{append, scan, LoggedMtr, MtrSpec, RecordSpec, TempLog};
use mtr::{Log, Lsn, ScanMode, StopReason, FIRST_ENGINE_KIND};
use proptest::collection::vec;
use proptest::prelude::*;

/// Large enough for the largest generated case, so `append` never waits for a checkpoint.
const CAPACITY_BYTES: u64 = 2 << 20;
const MAX_MTRS: usize = 20;
const MAX_RECORDS: usize = 6;
const MAX_PAYLOAD_BYTES: usize = 4096;

fn page_id() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..128, 128u64..(1 << 21), any::<u64>(), (u64::MAX - 300)..=u64::MAX,]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..=2), vec(any::<u8>(), 120..=140), vec(any::<u8>(), 0..=MAX_PAYLOAD_BYTES),]
}

fn record() -> impl Strategy<Value = RecordSpec> {
    (FIRST_ENGINE_KIND..=u8::MAX, page_id(), payload()).prop_map(|(kind, page_id, payload)| RecordSpec {
        kind,
        page_id,
        payload,
    })
}

fn mtr() -> impl Strategy<Value = MtrSpec> {
    (any::<u8>(), vec(record(), 1..=MAX_RECORDS)).prop_map(|(flags, records)| MtrSpec { flags, records })
}

/// Where recovery said the previous run ended: small ones put the stream anywhere in the ring
/// (so frames straddle its end), large ones test LSNs far from zero.
fn recovered_end() -> impl Strategy<Value = u64> {
    prop_oneof![0..CAPACITY_BYTES, (1u64 << 40)..(1u64 << 62)]
}

/// Appends `mtrs` (flushing after those marked), flushes the rest, crashes, and checks the scan.
fn check_round_trip(recovered_end: u64, mtrs: &[(MtrSpec, bool)]) -> Result<(), TestCaseError> {
    let (temp, log_file) = TempLog::create(CAPACITY_BYTES);
    let log = Log::resume(log_file, Lsn(recovered_end)).expect("resume");
    let stream_start = log.end_lsn();
    prop_assert_eq!(stream_start, Lsn(recovered_end + CAPACITY_BYTES));
    let mut logged: Vec<LoggedMtr> = Vec::new();
    for (mtr, flush_after) in mtrs {
        let entry = append(&log, mtr);
        let expected_start = logged.last().map_or(stream_start, |last| last.end_lsn);
        prop_assert_eq!(entry.start_lsn, expected_start);
        logged.push(entry);
        if *flush_after {
            log.flush_up_to(log.end_lsn()).expect("flush");
        }
    }
    let end_lsn = log.flush_all().expect("flush");
    prop_assert_eq!(log.flushed_lsn(), end_lsn);
    drop(log);

    let log_file = temp.reopen();
    let outcome = scan(&log_file, ScanMode::Strict);
    let end = outcome.end();
    prop_assert_eq!(&outcome.mtrs, &logged);
    // Contiguous: each scanned mtr starts where the previous one ended.
    for pair in outcome.mtrs.windows(2) {
        prop_assert_eq!(pair[0].end_lsn, pair[1].start_lsn);
    }
    prop_assert_eq!(end.lsn, end_lsn);
    prop_assert_eq!(end.reason, StopReason::BadHeader);
    prop_assert_eq!(end.unsynced_after, None);
    prop_assert_eq!(&end.corruption, &None);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn appended_mtrs_scan_back_exactly(
        recovered_end in recovered_end(),
        mtrs in vec((mtr(), any::<bool>()), 1..=MAX_MTRS),
    ) {
        check_round_trip(recovered_end, &mtrs)?;
    }
}

/// The generated cases fit in the ring: otherwise `append` would wait for a checkpoint forever.
#[test]
fn largest_case_fits_the_ring() {
    let largest_record = 1 + 10 + 5 + MAX_PAYLOAD_BYTES;
    let largest_frame = mtr::frame::MAX_HEADER_BYTES + MAX_RECORDS * largest_record + mtr::frame::TRAILER_BYTES;
    assert!(((MAX_MTRS + 1) * largest_frame) as u64 <= CAPACITY_BYTES);
}

/// A frame split across the ring's end, and every record-length encoding boundary, in one
/// deterministic case (proptest may not hit each of them every run).
#[test]
fn frame_straddling_the_ring_end_and_varint_boundaries() {
    let payload_lens = [0usize, 1, 127, 128, 16383, 16384];
    let page_ids = [0u64, 127, 128, 16383, 16384, u64::MAX >> 1, u64::MAX];
    let mut mtrs = Vec::new();
    for (index, payload_len) in payload_lens.iter().enumerate() {
        let records = page_ids
            .iter()
            .map(|&page_id| RecordSpec {
                kind: FIRST_ENGINE_KIND + index as u8,
                page_id,
                payload: (0..*payload_len).map(|byte| byte as u8).collect(),
            })
            .collect();
        mtrs.push((MtrSpec { flags: 0x80 | index as u8, records }, index.is_multiple_of(2)));
    }
    // The first frame starts 100 bytes before the ring's end.
    check_round_trip(CAPACITY_BYTES - 100, &mtrs).expect("round trip");
}
