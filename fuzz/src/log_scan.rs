//! Target `log_scan`: the redo log reader on arbitrary or damaged log files.
//!
//! A log is laid out with the real `LogFile::create` (minimum ring, 64 KiB) on a
//! [`FaultStorage`] file, then filled in one of two ways, chosen by the low bit of byte 0:
//!
//! **Raw** (bit clear): fuzz bytes over the ring and, optionally, the header and slots.
//!
//! | field              | meaning                                                             |
//! |--------------------|---------------------------------------------------------------------|
//! | `u8` mode          | bit 0 clear                                                         |
//! | `u64` log_id       | the id `LogFile::create` writes into the header                     |
//! | `u8` ×3 structures | header, slot 0, slot 1, each `% 4`: 0 keep; 1 overwrite its first 64 bytes with a 64-byte run (unsealed); 2 overwrite bytes 0..60 with a 60-byte run and seal it (CRC-32C at 60); 3 (slots only) a sealed checkpoint `number: u64, lsn: u64, durable_lsn: u64` from the input, with the right magic and log id |
//! | (their runs)       | for each structure in that order, the bytes mode 1, 2 or 3 needs    |
//! | `u8` resize        | bit 0: set the file's length to the next `u32` (at most 1 MiB)       |
//! | `u32` ring_offset  | where in the ring the rest of the input is written (wrapping)       |
//! | rest               | ring bytes (at most one ring)                                       |
//!
//! **Written** (bit set): the real writer (`Log::resume`, `append`, `flush_up_to`, `checkpoint`)
//! writes mtrs built from the input, then the ring is damaged.
//!
//! | field              | meaning                                                             |
//! |--------------------|---------------------------------------------------------------------|
//! | `u8` mode          | bit 0 set                                                           |
//! | `u64` log_id       |                                                                     |
//! | `u64` resume_at    | `Log::resume` point (`% 2^40`): the stream starts one ring later    |
//! | `u8` steps         | `% 49` steps, each an opcode `u8 % 4` and its fields:               |
//! |                    | 0 append: `flags: u8`, `records: u8` (`% 4 + 1`), each `kind: u8` (`max 16`), `page_id: u32`, payload blob (≤ 1500) |
//! |                    | 1 flush everything appended                                         |
//! |                    | 2 checkpoint: `pick: u8` chooses an mtr boundary of the durable log |
//! |                    | 3 append a filler mtr: `len: u16` (`% 4000 + 1` payload bytes)      |
//! | `u8` damages       | `% 9` damages of the ring, each `what: u8 % 3` (0 zero a run of `u16 % 1024 + 1` bytes; 1 xor one byte with a non-zero mask `u8`; 2 zero the 512-byte sector), then `at: u32`, an offset from the checkpoint LSN modulo the live log plus 1 KiB |
//!
//! Mtrs appended after the last flush never reach the file: a crash before their sync.
//!
//! # Properties
//! Always: `LogFile::open`, `checkpoint_slots`, `latest_checkpoint` and a scan from every valid
//! slot in both modes never panic and terminate; each yielded mtr starts where the previous one
//! ended (the first at the checkpoint), lies within one ring, has `durable_lsn <= start`, its
//! records re-encode to exactly its body (so `RecordIter` consumes it) with engine kinds, and
//! its bytes re-read from the file verify as a frame at its LSN (`decode_header` +
//! `verify_frame`) with the same body, flags and durable LSN. Strict and lenient scans yield
//! the same mtrs; strict fails (only ever with `CorruptMiddle` at the end of the yielded mtrs)
//! exactly when the lenient scan reports corruption, and otherwise both end alike.
//!
//! Written mode, knowing what was written and which bytes the damage changed: the scan yields
//! exactly the durable mtrs after the checkpoint up to the first damaged one; it ends at the
//! durable end when nothing live was damaged (with no error, no corruption and no unsynced mtr
//! reported); a damaged mtr the checkpoint proves durable is `CorruptMiddle`; damage confined to
//! the last flush round (a torn tail) is not; claimed evidence is real (a later intact mtr, or
//! the checkpoint, proves durability past the damaged mtr, and never past the real durable
//! end); a reported unsynced mtr is an intact later one; and one is reported whenever an intact
//! later mtr lies within the probe window.

use std::sync::Arc;

use mtr::frame::{decode_header, verify_frame};
use mtr::layout::{BLOCK_BYTES, MIN_CAPACITY_BYTES, RING_OFFSET};
use mtr::scan::PROBE_WINDOW_BYTES;
use mtr::{Checkpoint, Log, LogFile, Lsn, MtrBuf, OpenMode, RecordIter, ScanEnd, ScanMode, Scanner, Storage};
use mtr::{StorageFile, FIRST_ENGINE_KIND};
use mtrdb::fault::FaultStorage;

use crate::input::Reader;

const CAPACITY: u64 = MIN_CAPACITY_BYTES;
const MAX_STEPS: u8 = 48;
const MAX_PAYLOAD: usize = 1500;
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Magic bytes of the log header.
pub const HEADER_MAGIC: &[u8; 8] = b"mtrdbLOG";
/// Magic bytes of a checkpoint slot.
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"mtrdbCKP";

/// Runs one input (see the module doc).
pub fn run(data: &[u8]) {
    let mut input = Reader::new(data);
    let mode = input.u8();
    let log_id = input.u64();
    let storage = FaultStorage::new();
    let file = storage.open_file("redo.log", OpenMode::CreateNew).expect("create the log file");
    LogFile::create(Arc::clone(&file), CAPACITY, log_id).expect("lay out a log");
    if mode & 1 == 0 {
        raw(&mut input, &file, log_id);
    } else {
        written(&mut input, &file);
    }
}

fn seal(block: &mut [u8; 64]) {
    let crc = crc32c::crc32c(&block[..60]);
    block[60..].copy_from_slice(&crc.to_le_bytes());
}

fn raw(input: &mut Reader<'_>, file: &Arc<dyn StorageFile>, log_id: u64) {
    for (index, offset) in [0, BLOCK_BYTES, 2 * BLOCK_BYTES].into_iter().enumerate() {
        let mut block = [0u8; 64];
        match input.u8() % 4 {
            0 => continue,
            1 => {
                let run = input.bytes(64);
                block[..run.len()].copy_from_slice(run);
            }
            2 => {
                let run = input.bytes(60);
                block[..run.len()].copy_from_slice(run);
                seal(&mut block);
            }
            _ if index == 0 => continue,
            _ => {
                block[..8].copy_from_slice(CHECKPOINT_MAGIC);
                block[8..16].copy_from_slice(&input.u64().to_le_bytes());
                block[16..24].copy_from_slice(&input.u64().to_le_bytes());
                block[24..32].copy_from_slice(&input.u64().to_le_bytes());
                block[32..40].copy_from_slice(&log_id.to_le_bytes());
                seal(&mut block);
            }
        }
        file.write_all_at(&block, offset).expect("in-memory write");
    }
    if input.u8() & 1 == 1 {
        let len = u64::from(input.u32()) % (MAX_FILE_BYTES + 1);
        file.set_len(len).expect("in-memory set_len");
    }
    let ring_offset = u64::from(input.u32()) % CAPACITY;
    let ring_bytes = input.rest();
    let ring_bytes = &ring_bytes[..ring_bytes.len().min(CAPACITY as usize)];
    let first = ring_bytes.len().min((CAPACITY - ring_offset) as usize);
    let file_len = file.len().expect("in-memory len");
    // Ring writes stay inside the file as it is now (a shortened file stays short).
    let write_clipped = |bytes: &[u8], offset: u64| {
        let end = (offset + bytes.len() as u64).min(file_len);
        if end > offset {
            file.write_all_at(&bytes[..(end - offset) as usize], offset).expect("in-memory write");
        }
    };
    write_clipped(&ring_bytes[..first], RING_OFFSET + ring_offset);
    write_clipped(&ring_bytes[first..], RING_OFFSET);

    let Ok(log) = LogFile::open(Arc::clone(file)) else { return };
    assert!(log.capacity() >= MIN_CAPACITY_BYTES && log.capacity().is_multiple_of(BLOCK_BYTES));
    let latest = log.latest_checkpoint();
    let Ok(slots) = log.checkpoint_slots() else { return };
    match (&latest, slots) {
        (Ok(latest), [a, b]) => {
            assert!(a == Some(*latest) || b == Some(*latest), "latest checkpoint {latest:?} is in no slot");
            for slot in [a, b].into_iter().flatten() {
                assert!(slot.number <= latest.number);
                assert!(slot.lsn <= slot.durable_lsn);
            }
        }
        (Err(_), [a, b]) => assert!(a.is_none() && b.is_none(), "no latest checkpoint, yet a valid slot"),
    }
    for checkpoint in slots.into_iter().flatten() {
        scan_both(&log, checkpoint);
    }
}

/// An mtr as yielded by a scan, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Yielded {
    start: Lsn,
    end: Lsn,
    durable: Lsn,
    flags: u8,
    body: Vec<u8>,
}

struct Scan {
    mtrs: Vec<Yielded>,
    result: Result<ScanEnd, mtr::Error>,
}

/// Scans from `checkpoint` in one mode, checking every yielded mtr.
fn scan(log: &LogFile, checkpoint: Checkpoint, mode: ScanMode) -> Scan {
    let limit = checkpoint.lsn.add(log.capacity());
    let mut scanner = Scanner::new(log, checkpoint, mode);
    let mut mtrs: Vec<Yielded> = Vec::new();
    let mut expected_start = checkpoint.lsn;
    let error = loop {
        let frame = match scanner.next_mtr() {
            Ok(Some(frame)) => frame,
            Ok(None) => break None,
            Err(error) => break Some(error),
        };
        assert_eq!(frame.start_lsn, expected_start, "mtrs must be contiguous from the checkpoint");
        assert!(frame.end_lsn > frame.start_lsn && frame.end_lsn <= limit, "mtr {frame:?} outside the ring");
        assert!(frame.durable_lsn <= frame.start_lsn, "durable LSN after the mtr's start");
        assert!(!frame.body.is_empty());
        expected_start = frame.end_lsn;
        let yielded = Yielded {
            start: frame.start_lsn,
            end: frame.end_lsn,
            durable: frame.durable_lsn,
            flags: frame.flags,
            body: frame.body.to_vec(),
        };
        check_yielded(log, &yielded);
        mtrs.push(yielded);
        assert!(mtrs.len() as u64 <= log.capacity(), "the scan does not terminate");
    };
    // A second call after the end stays at the end.
    if error.is_none() {
        assert!(scanner.next_mtr().expect("a finished scan stays finished").is_none());
    }
    assert_eq!(scanner.mtrs_scanned(), mtrs.len() as u64);
    assert_eq!(scanner.bytes_scanned(), expected_start.since(checkpoint.lsn));
    let result = match error {
        Some(error) => {
            assert!(scanner.end().is_none(), "a failed scan has no end");
            match &error {
                mtr::Error::CorruptMiddle { at, durable_to, .. } => {
                    assert_eq!(mode, ScanMode::Strict, "only a strict scan fails on corruption");
                    assert_eq!(*at, expected_start, "corruption reported away from the end of the valid mtrs");
                    assert!(*durable_to > *at, "evidence {durable_to} does not reach past {at}");
                }
                other => panic!("the scan failed with an unexpected error: {other}"),
            }
            Err(error)
        }
        None => {
            let end = scanner.end().expect("a finished scan has an end").clone();
            assert_eq!(end.lsn, expected_start, "the scan ends after the last mtr it yielded");
            assert!(end.lsn <= limit);
            if let Some(after) = end.unsynced_after {
                assert!(after > end.lsn && after < limit, "unsynced mtr at {after} outside ({}, {limit})", end.lsn);
            }
            if mode == ScanMode::Strict {
                assert!(end.corruption.is_none(), "a strict scan ended quietly on corruption");
            }
            Ok(end)
        }
    };
    Scan { mtrs, result }
}

/// The records of a yielded mtr re-encode to its body, and its bytes re-verify at its LSN.
fn check_yielded(log: &LogFile, mtr: &Yielded) {
    let mut rebuilt = MtrBuf::new();
    for record in RecordIter::new(&mtr.body) {
        assert!(record.kind >= FIRST_ENGINE_KIND, "record kind {} reserved", record.kind);
        rebuilt.push(record.kind, record.page_id, record.payload);
    }
    assert!(!rebuilt.is_empty(), "an mtr without records");
    assert_eq!(rebuilt.body(), &mtr.body[..], "records do not re-encode to the body");
    let mut bytes = vec![0u8; mtr.end.since(mtr.start) as usize];
    log.read_stream(mtr.start, &mut bytes).expect("re-read a yielded mtr");
    let header = decode_header(&bytes, mtr.start).expect("a yielded mtr's header decodes");
    assert_eq!(header.frame_len(), bytes.len());
    let frame = verify_frame(&bytes, header, mtr.start).expect("a yielded mtr re-verifies at its LSN");
    assert_eq!(frame.body, &mtr.body[..]);
    assert_eq!(frame.flags, mtr.flags);
    assert_eq!(frame.durable_lsn, mtr.durable);
    assert_eq!(frame.end_lsn, mtr.end);
}

/// Scans strictly and leniently and checks that they agree.
fn scan_both(log: &LogFile, checkpoint: Checkpoint) -> (Scan, ScanEnd) {
    let strict = scan(log, checkpoint, ScanMode::Strict);
    let lenient = scan(log, checkpoint, ScanMode::Lenient);
    assert_eq!(strict.mtrs, lenient.mtrs, "strict and lenient scans yielded different mtrs");
    let lenient_end = match &lenient.result {
        Ok(end) => end.clone(),
        Err(error) => panic!("a lenient scan failed: {error}"),
    };
    match &strict.result {
        Ok(end) => {
            assert_eq!(*end, lenient_end, "strict and lenient scans ended differently");
            assert!(lenient_end.corruption.is_none());
        }
        Err(mtr::Error::CorruptMiddle { at, .. }) => {
            assert_eq!(*at, lenient_end.lsn);
            assert!(lenient_end.corruption.is_some(), "strict found corruption, lenient did not");
        }
        Err(other) => panic!("unexpected scan error {other}"),
    }
    (strict, lenient_end)
}

/// An mtr the writer made durable.
#[derive(Clone, Debug)]
struct Written {
    start: Lsn,
    end: Lsn,
    flags: u8,
    body: Vec<u8>,
    /// The log was durable up to here when it was appended.
    durable: Lsn,
}

fn written(input: &mut Reader<'_>, file: &Arc<dyn StorageFile>) {
    let resume_at = Lsn(input.u64() % (1 << 40));
    let log = Log::resume(LogFile::open(Arc::clone(file)).expect("open a new log"), resume_at).expect("resume");
    let mut appended: Vec<Written> = Vec::new();
    let mut flushed = 0usize; // appended[..flushed] are durable
    let mut last_round_start = log.flushed_lsn();
    let mut mtr = MtrBuf::new();
    let steps = input.u8() % (MAX_STEPS + 1);
    for _ in 0..steps {
        mtr.clear();
        let flags;
        match input.u8() % 4 {
            0 => {
                flags = input.u8();
                let records = input.u8() % 4 + 1;
                for _ in 0..records {
                    let kind = input.u8().max(FIRST_ENGINE_KIND);
                    let page_id = u64::from(input.u32());
                    mtr.push(kind, page_id, input.blob(MAX_PAYLOAD));
                }
            }
            1 => {
                flush(&log, &appended, &mut flushed, &mut last_round_start);
                continue;
            }
            2 => {
                let pick = input.u8();
                let last = log.last_checkpoint().lsn;
                let mut boundaries = vec![last];
                boundaries.extend(appended[..flushed].iter().map(|m| m.end).filter(|&end| end > last));
                let lsn = boundaries[pick as usize % boundaries.len()];
                log.checkpoint(lsn).expect("checkpoint at a durable mtr boundary");
                continue;
            }
            _ => {
                flags = 0;
                let len = input.u16() as usize % 4000 + 1;
                let filler: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31)).collect();
                mtr.push(FIRST_ENGINE_KIND + 7, len as u64, &filler);
            }
        }
        // `append` would wait for a checkpoint that this single thread never writes: make room.
        let frame_max = (mtr::frame::MAX_HEADER_BYTES + mtr.body().len() + mtr::frame::TRAILER_BYTES) as u64;
        if log.free_bytes() < frame_max {
            flush(&log, &appended, &mut flushed, &mut last_round_start);
            log.checkpoint(log.flushed_lsn()).expect("checkpoint at the durable end");
        }
        let durable = log.flushed_lsn();
        let (start, end) = log.append(&mtr, flags).expect("append");
        appended.push(Written { start, end, flags, body: mtr.body().to_vec(), durable });
    }
    let checkpoint = log.last_checkpoint();
    let durable_end = log.flushed_lsn();
    drop(log);

    let log = LogFile::open(Arc::clone(file)).expect("reopen the log");
    assert_eq!(log.latest_checkpoint().expect("the written checkpoint"), checkpoint);
    let live: Vec<Written> =
        appended[..flushed].iter().filter(|m| m.start >= checkpoint.lsn && m.end <= durable_end).cloned().collect();
    assert_eq!(live.first().map_or(durable_end, |m| m.start), checkpoint.lsn, "the checkpoint is an mtr boundary");

    // Damage the ring.
    let mut ring = vec![0u8; CAPACITY as usize];
    file.read_exact_at(&mut ring, RING_OFFSET).expect("read the ring");
    let before = ring.clone();
    let live_len = durable_end.since(checkpoint.lsn);
    let damages = input.u8() % 9;
    for _ in 0..damages {
        let what = input.u8() % 3;
        let (len, mask) = match what {
            0 => (input.u16() as usize % 1024 + 1, 0),
            1 => (1, input.u8().max(1)),
            _ => (512, 0),
        };
        let lsn = checkpoint.lsn.add(u64::from(input.u32()) % (live_len + 1024));
        let mut at = (lsn.0 % CAPACITY) as usize;
        if what == 2 {
            at -= at % 512;
        }
        for i in 0..len {
            let byte = &mut ring[(at + i) % CAPACITY as usize];
            *byte = if what == 1 { *byte ^ mask } else { 0 };
        }
    }
    file.write_all_at(&ring, RING_OFFSET).expect("in-memory write");
    // Stream LSNs in the live log whose bytes changed.
    let changed = |mtr: &Written| {
        (mtr.start.0..mtr.end.0).any(|lsn| ring[(lsn % CAPACITY) as usize] != before[(lsn % CAPACITY) as usize])
    };
    let intact: Vec<bool> = live.iter().map(|m| !changed(m)).collect();
    let first_damaged = intact.iter().position(|ok| !ok);

    let (strict, lenient_end) = scan_both(&log, checkpoint);
    let expected = &live[..first_damaged.unwrap_or(live.len())];
    assert_eq!(strict.mtrs.len(), expected.len(), "the scan yielded a different number of mtrs than are intact");
    for (got, want) in strict.mtrs.iter().zip(expected) {
        assert_eq!((got.start, got.end, got.flags, got.durable), (want.start, want.end, want.flags, want.durable));
        assert_eq!(got.body, want.body, "an mtr's records changed");
    }
    let Some(damaged) = first_damaged else {
        assert_eq!(lenient_end.lsn, durable_end, "an undamaged log must scan to its durable end");
        assert!(strict.result.is_ok() && lenient_end.corruption.is_none(), "corruption in an undamaged log");
        assert_eq!(lenient_end.unsynced_after, None, "a valid mtr past the durable end");
        return;
    };
    let bad = live[damaged].start;
    assert_eq!(lenient_end.lsn, bad);
    let later_intact = || live.iter().zip(&intact).skip(damaged + 1).filter(|(_, ok)| **ok).map(|(m, _)| m);
    if checkpoint.durable_lsn > bad {
        assert!(strict.result.is_err(), "a damaged mtr before the checkpoint's durable LSN was skipped quietly");
    }
    if let Err(mtr::Error::CorruptMiddle { durable_to, .. }) = &strict.result {
        assert!(*durable_to <= durable_end, "evidence claims the log durable to {durable_to}, beyond {durable_end}");
        let real = checkpoint.durable_lsn > bad || later_intact().any(|m| m.durable > bad);
        assert!(real, "corruption reported at {bad} without evidence");
    }
    if bad >= last_round_start && checkpoint.durable_lsn <= last_round_start {
        assert!(strict.result.is_ok(), "damage confined to the last flush round (a torn tail) reported as corruption");
    }
    if let Some(after) = lenient_end.unsynced_after {
        assert!(later_intact().any(|m| m.start == after), "unsynced mtr at {after} is not an intact later mtr");
    }
    let window_end = bad.add(PROBE_WINDOW_BYTES).min(checkpoint.lsn.add(CAPACITY));
    if checkpoint.durable_lsn <= bad && later_intact().any(|m| m.start < window_end) {
        assert!(lenient_end.unsynced_after.is_some(), "an intact mtr beyond the damage was not found");
    }
}

fn flush(log: &Log, appended: &[Written], flushed: &mut usize, last_round_start: &mut Lsn) {
    if *flushed == appended.len() {
        return;
    }
    *last_round_start = log.flushed_lsn();
    log.flush_all().expect("flush");
    *flushed = appended.len();
}
