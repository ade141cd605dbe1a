//! Checkpoint slots and the header: the two alternating slots mean a checkpoint write torn by a
//! crash (any prefix of the new bytes over the old, zeros, or garbage) leaves the previous
//! checkpoint usable in the other slot; both slots damaged is [`Error::NoCheckpoint`], never a
//! guess; a slot copied from a log with another `log_id` is not trusted; and a damaged header or a
//! truncated file is [`Error::NotALog`].
//!
//! Guards against slot selection that trusts a slot without checking its CRC, magic, parity or
//! `log_id`, against recovery that starts from garbage, and against opening a file that is not
//! (or no longer) a whole log.

mod common;

use common::{append, scan, scan_from, LoggedMtr, MtrSpec, TempLog, TestRng, LOG_FILE_NAME, LOG_ID};
use mtr::layout::{BLOCK_BYTES, MIN_CAPACITY_BYTES, RING_OFFSET};
use mtr::{Checkpoint, Error, Log, Lsn, ScanMode, FIRST_ENGINE_KIND};

/// The part of a slot or header block that holds the structure (the rest is unused).
const STRUCT_BYTES: usize = 64;

fn slot_offset(slot: u64) -> u64 {
    BLOCK_BYTES * (1 + slot)
}

fn read_at(temp: &TempLog, name: &str, offset: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; STRUCT_BYTES];
    temp.raw_file(name).read_exact_at(&mut bytes, offset).expect("read");
    bytes
}

fn write_at(temp: &TempLog, name: &str, offset: u64, bytes: &[u8]) {
    temp.raw_file(name).write_all_at(bytes, offset).expect("write");
}

fn mtr(sequence: u64) -> MtrSpec {
    MtrSpec::single(FIRST_ENGINE_KIND, sequence, vec![sequence as u8; 100], 0)
}

/// A log whose newest checkpoint (number 4, slot 0) sits over checkpoint 2, with checkpoint 3
/// in slot 1. Returns the logged mtrs, checkpoints 3 and 4, and slot 0's bytes from before
/// checkpoint 4 was written there.
struct History {
    temp: TempLog,
    logged: Vec<LoggedMtr>,
    fallback: Checkpoint,
    newest: Checkpoint,
    overwritten_slot: Vec<u8>,
}

fn log_with_four_checkpoints() -> History {
    let (temp, log_file) = TempLog::create(MIN_CAPACITY_BYTES);
    let log = Log::resume(log_file, Lsn::ZERO).expect("resume");
    let mut logged: Vec<LoggedMtr> = (0..3).map(|sequence| append(&log, &mtr(sequence))).collect();
    log.flush_all().expect("flush");
    log.checkpoint(logged[1].start_lsn).expect("checkpoint 3");
    let fallback = log.last_checkpoint();
    logged.extend((3..6).map(|sequence| append(&log, &mtr(sequence))));
    log.flush_all().expect("flush");
    let overwritten_slot = read_at(&temp, LOG_FILE_NAME, slot_offset(0));
    log.checkpoint(logged[4].start_lsn).expect("checkpoint 4");
    let newest = log.last_checkpoint();
    drop(log);
    assert_eq!((fallback.number, newest.number), (3, 4));
    assert_eq!(temp.reopen().latest_checkpoint().expect("checkpoint"), newest);
    History { temp, logged, fallback, newest, overwritten_slot }
}

/// Writes `damaged` over the newest slot and checks the fallback is chosen and usable.
fn check_falls_back(history: &History, damaged: &[u8], context: &str) {
    write_at(&history.temp, LOG_FILE_NAME, slot_offset(0), damaged);
    let log_file = history.temp.reopen();
    let slots = log_file.checkpoint_slots().expect("read slots");
    assert_eq!(slots[1], Some(history.fallback), "{context}");
    assert_ne!(slots[0], Some(history.newest), "{context}");
    assert_eq!(log_file.latest_checkpoint().expect("fallback"), history.fallback, "{context}");
}

#[test]
fn torn_newest_slot_falls_back_to_the_other_slot() {
    let history = log_with_four_checkpoints();
    let newest_bytes = read_at(&history.temp, LOG_FILE_NAME, slot_offset(0));
    let mut rng = TestRng::new(4);
    let mut damaged_count = 0;
    for tear_at in 0..STRUCT_BYTES {
        // The write of checkpoint 4 torn after `tear_at` bytes: new prefix, old suffix.
        let mut torn = newest_bytes[..tear_at].to_vec();
        torn.extend_from_slice(&history.overwritten_slot[tear_at..]);
        check_falls_back(&history, &torn, &format!("new bytes up to {tear_at}"));

        // Zeros or garbage from `tear_at` on, and in an 8-byte run from there.
        let run_end = (tear_at + 8).min(STRUCT_BYTES);
        let mut garbage = rng.bytes(STRUCT_BYTES - tear_at);
        garbage[0] = newest_bytes[tear_at] ^ (garbage[0] | 1);
        let mut variants = Vec::new();
        for (name, range_end, fill) in [
            ("zeros to the end", STRUCT_BYTES, None),
            ("zeros in a run", run_end, None),
            ("garbage to the end", STRUCT_BYTES, Some(&garbage)),
            ("garbage in a run", run_end, Some(&garbage)),
        ] {
            let mut damaged = newest_bytes.clone();
            for (index, byte) in damaged[tear_at..range_end].iter_mut().enumerate() {
                *byte = fill.map_or(0, |garbage| garbage[index]);
            }
            variants.push((name, damaged));
        }
        for (name, damaged) in variants {
            if damaged == newest_bytes {
                continue; // zeros over zeros: nothing was damaged
            }
            damaged_count += 1;
            check_falls_back(&history, &damaged, &format!("{name} from byte {tear_at}"));
        }
    }
    assert!(damaged_count > 3 * STRUCT_BYTES, "{damaged_count}");

    // Recovery scans from the fallback: every mtr from it on, with no error.
    let log_file = history.temp.reopen();
    let outcome = scan(&log_file, ScanMode::Strict);
    assert_eq!(outcome.mtrs, history.logged[1..]);
    let end_lsn = outcome.end().lsn;
    // And the log can go on: the next checkpoint takes the torn slot's place.
    let log = Log::resume(log_file, end_lsn).expect("resume");
    assert_eq!(log.last_checkpoint().number, history.fallback.number + 1);
    drop(log);
    assert_eq!(
        history.temp.reopen().latest_checkpoint().expect("checkpoint"),
        Checkpoint {
            number: history.fallback.number + 1,
            lsn: end_lsn.add(MIN_CAPACITY_BYTES),
            durable_lsn: end_lsn.add(MIN_CAPACITY_BYTES),
        }
    );
}

#[test]
fn both_slots_damaged_is_no_checkpoint() {
    let history = log_with_four_checkpoints();
    // Damaging only the older slot changes nothing.
    let mut older = read_at(&history.temp, LOG_FILE_NAME, slot_offset(1));
    older[20] ^= 0x10;
    write_at(&history.temp, LOG_FILE_NAME, slot_offset(1), &older);
    assert_eq!(history.temp.reopen().latest_checkpoint().expect("newest"), history.newest);

    let mut newest = read_at(&history.temp, LOG_FILE_NAME, slot_offset(0));
    newest[STRUCT_BYTES - 1] ^= 0x01;
    write_at(&history.temp, LOG_FILE_NAME, slot_offset(0), &newest);
    let log_file = history.temp.reopen();
    assert_eq!(log_file.checkpoint_slots().expect("read slots"), [None, None]);
    assert!(matches!(log_file.latest_checkpoint(), Err(Error::NoCheckpoint)));
    assert!(matches!(Log::resume(log_file, Lsn::ZERO), Err(Error::NoCheckpoint)));

    // Zeroed slots too.
    write_at(&history.temp, LOG_FILE_NAME, slot_offset(0), &[0; STRUCT_BYTES]);
    write_at(&history.temp, LOG_FILE_NAME, slot_offset(1), &[0; STRUCT_BYTES]);
    let log_file = history.temp.reopen();
    assert!(matches!(log_file.latest_checkpoint(), Err(Error::NoCheckpoint)));
}

#[test]
fn slot_of_a_log_with_another_log_id_is_rejected() {
    const OTHER_LOG: &str = "other.log";
    let (temp, log_file) = TempLog::create(MIN_CAPACITY_BYTES);
    let log = Log::resume(log_file, Lsn::ZERO).expect("resume");
    let ours = log.last_checkpoint();
    assert_eq!(ours.number, 2);
    drop(log);

    // Another log, in the same layout, with newer checkpoints: 4 in slot 0, 5 in slot 1.
    let other = Log::resume(temp.create_log(OTHER_LOG, MIN_CAPACITY_BYTES, LOG_ID + 1), Lsn::ZERO).expect("resume");
    append(&other, &mtr(0));
    let durable = other.flush_all().expect("flush");
    other.checkpoint(durable).expect("checkpoint");
    other.checkpoint(durable).expect("checkpoint");
    other.checkpoint(durable).expect("checkpoint");
    assert_eq!(other.last_checkpoint().number, 5);
    drop(other);

    // Its checkpoint 5 over our checkpoint 1: were it trusted, it would be our newest.
    let foreign = read_at(&temp, OTHER_LOG, slot_offset(1));
    write_at(&temp, LOG_FILE_NAME, slot_offset(1), &foreign);
    let log_file = temp.reopen();
    assert_eq!(log_file.checkpoint_slots().expect("slots")[1], None);
    assert_eq!(log_file.latest_checkpoint().expect("ours"), ours);
    let outcome = scan_from(&log_file, ours, ScanMode::Strict);
    assert_eq!(outcome.mtrs, Vec::new());

    // Both slots foreign: no checkpoint of ours at all.
    let foreign = read_at(&temp, OTHER_LOG, slot_offset(0));
    write_at(&temp, LOG_FILE_NAME, slot_offset(0), &foreign);
    assert!(matches!(temp.reopen().latest_checkpoint(), Err(Error::NoCheckpoint)));
}

fn assert_not_a_log(temp: &TempLog, context: &str) {
    match temp.try_reopen(LOG_FILE_NAME) {
        Err(Error::NotALog { .. }) => {}
        other => panic!("{context}: expected NotALog, got {other:?}"),
    }
}

/// A header with every field as given and a correct CRC.
fn sealed_header(version: u32, capacity_bytes: u64) -> Vec<u8> {
    let mut header = vec![0u8; STRUCT_BYTES];
    header[..8].copy_from_slice(b"mtrdbLOG");
    header[8..12].copy_from_slice(&version.to_le_bytes());
    header[16..24].copy_from_slice(&capacity_bytes.to_le_bytes());
    header[24..32].copy_from_slice(&LOG_ID.to_le_bytes());
    let crc = crc32c::crc32c(&header[..60]);
    header[60..].copy_from_slice(&crc.to_le_bytes());
    header
}

#[test]
fn damaged_header_is_not_a_log() {
    let (temp, _log_file) = TempLog::create(MIN_CAPACITY_BYTES);
    let original = read_at(&temp, LOG_FILE_NAME, 0);
    // The reconstruction is faithful, so the variants below differ from a real header only
    // where intended.
    assert_eq!(sealed_header(1, MIN_CAPACITY_BYTES), original);
    for index in 0..STRUCT_BYTES {
        for bit in [0x01u8, 0x80] {
            let mut damaged = original.clone();
            damaged[index] ^= bit;
            write_at(&temp, LOG_FILE_NAME, 0, &damaged);
            assert_not_a_log(&temp, &format!("bit {bit:#04x} of header byte {index}"));
        }
    }
    let sealed_but_wrong = [
        ("version 2", sealed_header(2, MIN_CAPACITY_BYTES)),
        ("capacity not a block multiple", sealed_header(1, MIN_CAPACITY_BYTES + 100)),
        ("capacity below the minimum", sealed_header(1, MIN_CAPACITY_BYTES - BLOCK_BYTES)),
        ("capacity beyond the file", sealed_header(1, 2 * MIN_CAPACITY_BYTES)),
        ("zeros", vec![0; STRUCT_BYTES]),
    ];
    for (context, header) in sealed_but_wrong {
        write_at(&temp, LOG_FILE_NAME, 0, &header);
        assert_not_a_log(&temp, context);
    }
    write_at(&temp, LOG_FILE_NAME, 0, &original);
    assert_eq!(temp.reopen().capacity(), MIN_CAPACITY_BYTES);
}

#[test]
fn truncated_file_is_not_a_log() {
    let (temp, _log_file) = TempLog::create(MIN_CAPACITY_BYTES);
    let full_len = RING_OFFSET + MIN_CAPACITY_BYTES;
    for len in [full_len - 1, full_len - BLOCK_BYTES, RING_OFFSET, RING_OFFSET - 1, 64, 0] {
        temp.raw_file(LOG_FILE_NAME).set_len(len).expect("truncate");
        assert_not_a_log(&temp, &format!("truncated to {len} bytes"));
    }
}
