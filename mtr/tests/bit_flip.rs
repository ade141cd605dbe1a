//! Bit flips: one flipped bit anywhere in mtr `k` (header, records, end marker, flags or CRC)
//! must make the scan yield exactly mtrs `0..k`, never the damaged mtr and never one after it.
//! What the scan then says depends on whether the damaged bytes had been synced:
//!
//! - (a) all mtrs went out in one flush round: the later mtrs may have reached the disk before
//!   mtr `k` did (a crash with writes persisted out of order), so strict and lenient scans end
//!   quietly at mtr `k`'s start and report the later valid mtr in `unsynced_after`;
//! - (b) each mtr was flushed before the next was appended: mtr `k + 1` records that the log was
//!   durable past mtr `k`, so the loss is corruption in the middle: strict returns
//!   [`mtr::Error::CorruptMiddle`], lenient ends at `k` and reports the evidence;
//! - (c) the checkpoint records the log durable past mtr `k`: corruption, proven by the
//!   checkpoint, even for the last mtr.
//!
//! Guards against a CRC that misses part of the frame, a scanner that resynchronises on a later
//! mtr (silently skipping the damaged one), and evidence rules that either drop committed work
//! quietly or turn a normal crash into an error.

mod common;

use common::{append, overwrite_stream, read_stream, scan, LoggedMtr, MtrSpec, TempLog};
use mtr::layout::MIN_CAPACITY_BYTES;
use mtr::{Error, Log, LogFile, Lsn, ScanMode, FIRST_ENGINE_KIND};

const MTR_COUNT: usize = 8;

/// How the mtrs reached the disk.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Flushing {
    /// Appended all, then one flush round.
    OneRound,
    /// A flush after every append.
    EachMtr,
}

fn write_log(flushing: Flushing) -> (TempLog, Log, Vec<LoggedMtr>) {
    let (temp, log_file) = TempLog::create(MIN_CAPACITY_BYTES);
    let log = Log::resume(log_file, Lsn::ZERO).expect("resume");
    let mut logged = Vec::new();
    for index in 0..MTR_COUNT {
        // Sizes from 33 to 250 bytes, so lengths take one and two bytes.
        let payload_len = 20 + (index * 37) % 230;
        let mtr = MtrSpec::single(
            FIRST_ENGINE_KIND + index as u8,
            (index as u64) << (7 * index),
            (0..payload_len).map(|byte| (byte * 7 + index) as u8).collect(),
            index as u8,
        );
        logged.push(append(&log, &mtr));
        if flushing == Flushing::EachMtr {
            log.flush_all().expect("flush");
        }
    }
    log.flush_all().expect("flush");
    (temp, log, logged)
}

/// Bits to flip in byte `index` of a frame: all eight in every fifth byte, one elsewhere
/// (rotating, so every bit position is covered across the frame).
fn bits_to_flip(index: usize) -> Vec<u8> {
    if index.is_multiple_of(5) {
        (0..8).map(|bit| 1 << bit).collect()
    } else {
        vec![1 << ((index * 3) % 8)]
    }
}

/// Flips each sampled bit of mtr `k` in turn, calls `check` with the damaged log, and restores
/// the byte. Returns how many flips were checked.
fn for_each_flip(log_file: &LogFile, damaged: &LoggedMtr, mut check: impl FnMut(&str)) -> usize {
    let original = read_stream(log_file, damaged.start_lsn, damaged.frame_len_bytes());
    let mut flips = 0;
    for (index, &byte) in original.iter().enumerate() {
        let at = damaged.start_lsn.add(index as u64);
        for bit in bits_to_flip(index) {
            overwrite_stream(log_file, at, &[byte ^ bit]);
            check(&format!("bit {bit:#04x} of byte {index} of the mtr at LSN {}", damaged.start_lsn));
            flips += 1;
        }
        overwrite_stream(log_file, at, &[byte]);
    }
    flips
}

/// The start LSNs of the mtrs after `k`.
fn later_starts(logged: &[LoggedMtr], k: usize) -> Vec<Lsn> {
    logged[k + 1..].iter().map(|mtr| mtr.start_lsn).collect()
}

#[test]
fn flip_in_one_unsynced_round_ends_quietly_before_the_damaged_mtr() {
    let (temp, log, logged) = write_log(Flushing::OneRound);
    drop(log);
    let log_file = temp.reopen();
    for k in 0..MTR_COUNT {
        let later = later_starts(&logged, k);
        let flips = for_each_flip(&log_file, &logged[k], |context| {
            for mode in [ScanMode::Strict, ScanMode::Lenient] {
                let outcome = scan(&log_file, mode);
                let end = outcome.end();
                assert_eq!(outcome.mtrs, logged[..k], "{context} ({mode:?})");
                assert_eq!(end.lsn, logged[k].start_lsn, "{context} ({mode:?})");
                assert_eq!(end.corruption, None, "{context} ({mode:?})");
                match end.unsynced_after {
                    Some(lsn) => assert!(later.contains(&lsn), "{context}: {lsn} is no mtr"),
                    None => assert!(later.is_empty(), "{context}: the later mtrs went unseen"),
                }
            }
        });
        assert!(flips >= logged[k].frame_len_bytes());
    }
    // Every flip was undone.
    assert_eq!(scan(&log_file, ScanMode::Strict).mtrs, logged);
}

#[test]
fn flip_in_a_synced_mtr_followed_by_a_later_one_is_corruption_in_the_middle() {
    let (temp, log, logged) = write_log(Flushing::EachMtr);
    drop(log);
    let log_file = temp.reopen();
    for k in 0..MTR_COUNT - 1 {
        let later = later_starts(&logged, k);
        for_each_flip(&log_file, &logged[k], |context| {
            let strict = scan(&log_file, ScanMode::Strict);
            assert_eq!(strict.mtrs, logged[..k], "{context}");
            match strict.end {
                Err(Error::CorruptMiddle { at, durable_to, evidence }) => {
                    assert_eq!(at, logged[k].start_lsn, "{context}");
                    assert!(durable_to > at, "{context}: durable to {durable_to}");
                    assert_eq!(evidence, "a later valid mtr", "{context}");
                }
                other => panic!("{context}: expected CorruptMiddle, got {other:?}"),
            }

            let lenient = scan(&log_file, ScanMode::Lenient);
            let end = lenient.end();
            assert_eq!(lenient.mtrs, logged[..k], "{context}");
            assert_eq!(end.lsn, logged[k].start_lsn, "{context}");
            assert!(end.corruption.is_some(), "{context}");
            let unsynced = end.unsynced_after.expect("the later mtr is reported");
            assert!(later.contains(&unsynced), "{context}: {unsynced} is no mtr");
        });
    }
    assert_eq!(scan(&log_file, ScanMode::Strict).mtrs, logged);
}

#[test]
fn flip_before_the_checkpoints_durable_lsn_is_corruption_even_in_the_last_mtr() {
    let (temp, log, logged) = write_log(Flushing::OneRound);
    // A checkpoint at the stream's start, taken once everything was durable: it records that
    // the log was durable to the end.
    let durable_end = log.flushed_lsn();
    log.checkpoint(logged[0].start_lsn).expect("checkpoint");
    drop(log);
    let log_file = temp.reopen();
    assert_eq!(log_file.latest_checkpoint().expect("checkpoint").durable_lsn, durable_end);
    for k in [0, MTR_COUNT - 1] {
        for_each_flip(&log_file, &logged[k], |context| {
            let strict = scan(&log_file, ScanMode::Strict);
            assert_eq!(strict.mtrs, logged[..k], "{context}");
            match strict.end {
                Err(Error::CorruptMiddle { at, durable_to, evidence }) => {
                    assert_eq!(at, logged[k].start_lsn, "{context}");
                    assert_eq!(durable_to, durable_end, "{context}");
                    assert_eq!(evidence, "the checkpoint", "{context}");
                }
                other => panic!("{context}: expected CorruptMiddle, got {other:?}"),
            }
            let lenient = scan(&log_file, ScanMode::Lenient);
            assert_eq!(lenient.mtrs, logged[..k], "{context}");
            assert_eq!(lenient.end().lsn, logged[k].start_lsn, "{context}");
            assert!(lenient.end().corruption.is_some(), "{context}");
        });
    }
}

/// When several mtrs in a row are damaged, the error claims only what the evidence proves: the
/// durable LSN recorded in the later valid mtr, not that mtr's own start (which it may lie well
/// beyond).
#[test]
fn corruption_claims_only_the_durable_lsn_the_evidence_records() {
    let (temp, log_file) = TempLog::create(MIN_CAPACITY_BYTES);
    let log = Log::resume(log_file, Lsn::ZERO).expect("resume");
    let mtr = |sequence: u64| MtrSpec::single(FIRST_ENGINE_KIND, sequence, vec![9; 60], 0);
    let mut logged = Vec::new();
    for sequence in 0..3 {
        logged.push(append(&log, &mtr(sequence)));
        log.flush_all().expect("flush");
    }
    // Two mtrs in one round: both record the log durable to the end of mtr 2.
    logged.push(append(&log, &mtr(3)));
    logged.push(append(&log, &mtr(4)));
    log.flush_all().expect("flush");
    drop(log);

    let log_file = temp.reopen();
    for damaged in &logged[1..4] {
        overwrite_stream(&log_file, damaged.start_lsn.add(4), &[0xFF; 8]);
    }
    match scan(&log_file, ScanMode::Strict).end {
        Err(Error::CorruptMiddle { at, durable_to, .. }) => {
            assert_eq!(at, logged[1].start_lsn);
            assert_eq!(durable_to, logged[2].end_lsn);
        }
        other => panic!("expected CorruptMiddle, got {other:?}"),
    }
    let lenient = scan(&log_file, ScanMode::Lenient);
    assert_eq!(lenient.mtrs, logged[..1]);
    assert_eq!(lenient.end().unsynced_after, Some(logged[4].start_lsn));
}
