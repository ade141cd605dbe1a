//! Torn tail: a crash while the last mtr was being written leaves only a prefix of it on disk,
//! followed by zeros (never written) or garbage (whatever the sectors held). Whatever byte the
//! tear falls on, a strict scan must yield exactly the mtrs before the torn one and end quietly
//! at its start: no error, no "unsynced" mtr, no corruption claim.
//!
//! Guards against a scanner that yields a partial mtr, reads past a torn length field, mistakes a
//! normal crash for corruption in the middle (which would make every crash unrecoverable in
//! strict mode), or drops an intact mtr before the tear.

mod common;

use common::{append, overwrite_stream, read_stream, scan, LoggedMtr, MtrSpec, RecordSpec, TempLog, TestRng};
use mtr::layout::MIN_CAPACITY_BYTES;
use mtr::{Log, LogFile, Lsn, ScanMode, FIRST_ENGINE_KIND};

/// Five small mtrs and a last one of about 400 bytes with records whose lengths take one and
/// two bytes.
fn mtrs_to_log() -> Vec<MtrSpec> {
    let mut mtrs: Vec<MtrSpec> = (0..5u8)
        .map(|index| {
            MtrSpec::single(
                FIRST_ENGINE_KIND + index,
                u64::from(index) * 1000,
                vec![index; 20 + 30 * usize::from(index)],
                index,
            )
        })
        .collect();
    mtrs.push(MtrSpec {
        flags: 0xC3,
        records: vec![
            RecordSpec { kind: 200, page_id: 1 << 40, payload: (0..200u8).collect() },
            RecordSpec { kind: 17, page_id: 3, payload: Vec::new() },
            RecordSpec { kind: 255, page_id: u64::MAX, payload: vec![0xEE; 150] },
        ],
    });
    mtrs
}

/// Writes [`mtrs_to_log`] starting at `recovered_end + capacity`, flushing after each if
/// `flush_each` (else once at the end), then "crashes" and reopens the file.
fn write_log(recovered_end: u64, flush_each: bool) -> (TempLog, LogFile, Vec<LoggedMtr>) {
    let (temp, log_file) = TempLog::create(MIN_CAPACITY_BYTES);
    let log = Log::resume(log_file, Lsn(recovered_end)).expect("resume");
    let mut logged = Vec::new();
    for mtr in mtrs_to_log() {
        logged.push(append(&log, &mtr));
        if flush_each {
            log.flush_all().expect("flush");
        }
    }
    log.flush_all().expect("flush");
    drop(log);
    let log_file = temp.reopen();
    (temp, log_file, logged)
}

/// The content a tear leaves in `[from, to)`.
#[derive(Copy, Clone, Debug)]
enum TornBytes {
    Zeros,
    Garbage,
}

/// For every `k` in `[from, to)`, replaces the stream `[k, to)` with `torn` bytes and checks a
/// scan yields exactly the logged mtrs that end at or before `k`; restores the bytes after each.
fn check_every_tear(log_file: &LogFile, logged: &[LoggedMtr], from: Lsn, to: Lsn, torn: TornBytes) {
    let original = read_stream(log_file, from, to.since(from) as usize);
    let mut rng = TestRng::new(from.0 ^ to.0);
    for tear_at in from.0..to.0 {
        let tear_at = Lsn(tear_at);
        let keep = tear_at.since(from) as usize;
        let mut damaged = match torn {
            TornBytes::Zeros => vec![0u8; original.len() - keep],
            TornBytes::Garbage => rng.bytes(original.len() - keep),
        };
        // A tear changes at least the byte it falls on (a zero tear on a zero byte is the same
        // as a tear one byte later, which the loop covers).
        if damaged[0] == original[keep] {
            if let TornBytes::Zeros = torn {
                continue;
            }
            damaged[0] ^= 0x5A;
        }
        overwrite_stream(log_file, tear_at, &damaged);

        let expected: Vec<LoggedMtr> = logged.iter().filter(|mtr| mtr.end_lsn <= tear_at).cloned().collect();
        let torn_start =
            logged.iter().find(|mtr| mtr.end_lsn > tear_at).expect("the tear falls inside a logged mtr").start_lsn;
        for mode in [ScanMode::Strict, ScanMode::Lenient] {
            let outcome = scan(log_file, mode);
            let context = format!("{torn:?} tear at LSN {tear_at} ({mode:?})");
            let end = outcome.end();
            assert_eq!(outcome.mtrs, expected, "{context}");
            assert_eq!(end.lsn, torn_start, "{context}");
            assert_eq!(end.unsynced_after, None, "{context}");
            assert_eq!(end.corruption, None, "{context}");
        }
        overwrite_stream(log_file, tear_at, &original[keep..]);
    }
    // Restored: everything is back.
    assert_eq!(scan(log_file, ScanMode::Strict).mtrs, logged);
}

fn check_torn_last_mtr(recovered_end: u64) {
    let (_temp, log_file, logged) = write_log(recovered_end, true);
    assert_eq!(scan(&log_file, ScanMode::Strict).mtrs, logged);
    let last = logged.last().expect("mtrs were logged");
    for torn in [TornBytes::Zeros, TornBytes::Garbage] {
        check_every_tear(&log_file, &logged, last.start_lsn, last.end_lsn, torn);
    }
}

#[test]
fn tear_at_every_byte_of_the_last_mtr_yields_the_mtrs_before_it() {
    check_torn_last_mtr(0);
}

#[test]
fn tear_at_every_byte_of_a_last_mtr_straddling_the_ring_end() {
    // Learn where the last mtr falls, then start the stream so that it straddles the ring end.
    let (_temp, _log_file, logged) = write_log(0, true);
    let last = logged.last().expect("mtrs were logged");
    let last_offset = last.start_lsn.since(logged[0].start_lsn);
    let recovered_end = MIN_CAPACITY_BYTES - last_offset - last.frame_len_bytes() as u64 / 2;
    let (_temp, _log_file, moved) = write_log(recovered_end, true);
    let moved_last = moved.last().expect("mtrs were logged");
    assert!(moved_last.start_lsn.0 % MIN_CAPACITY_BYTES > moved_last.end_lsn.0 % MIN_CAPACITY_BYTES);
    check_torn_last_mtr(recovered_end);
}

/// One flush round carried every mtr, so a tear anywhere in it is a torn tail: the scan keeps
/// the whole mtrs before the tear and ends quietly.
#[test]
fn tear_at_every_byte_of_the_last_flush_round_yields_the_whole_mtrs_before_it() {
    let (_temp, log_file, logged) = write_log(0, false);
    let first = logged.first().expect("mtrs were logged");
    let last = logged.last().expect("mtrs were logged");
    for torn in [TornBytes::Zeros, TornBytes::Garbage] {
        check_every_tear(&log_file, &logged, first.start_lsn, last.end_lsn, torn);
    }
}
