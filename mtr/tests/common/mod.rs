//! Helpers shared by the integration tests: a log in a temporary directory on the real file
//! system, mtrs described as plain values (so appended and scanned mtrs compare with `==`), a
//! scan collected into such values, raw access to the ring for damaging it, and a seeded
//! generator so every damaged byte is reproducible.
//!
//! Each test file includes this module and uses part of it.
#![allow(dead_code)]

use std::sync::Arc;

use mtr::frame::TRAILER_BYTES;
use mtr::io::OpenMode;
use mtr::{
    varint, Checkpoint, DirStorage, Log, LogFile, Lsn, MtrBuf, ScanEnd, ScanMode, Scanner, Storage, StorageFile,
};

/// The log's name inside the test directory.
pub const LOG_FILE_NAME: &str = "redo.log";
/// The `log_id` the tests create logs with, unless a test needs two.
pub const LOG_ID: u64 = 0x6d74_7264_6221;

/// A directory on the real disk holding one log. Dropping it removes everything.
pub struct TempLog {
    // Declared before `dir` so the directory lock is released before the directory goes.
    pub storage: DirStorage,
    pub dir: tempfile::TempDir,
}

impl TempLog {
    /// An empty directory, locked.
    pub fn new() -> TempLog {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let storage = DirStorage::open(dir.path(), false).expect("locking the directory");
        TempLog { storage, dir }
    }

    /// A new directory with a new log of `capacity_bytes` in it.
    pub fn create(capacity_bytes: u64) -> (TempLog, LogFile) {
        let temp = TempLog::new();
        let log_file = temp.create_log(LOG_FILE_NAME, capacity_bytes, LOG_ID);
        (temp, log_file)
    }

    /// Creates another log file `name` in this directory.
    pub fn create_log(&self, name: &str, capacity_bytes: u64, log_id: u64) -> LogFile {
        LogFile::create(self.new_file(name), capacity_bytes, log_id).expect("creating a log")
    }

    /// Creates the empty file `name`, for tests that wrap it before making a log in it.
    pub fn new_file(&self, name: &str) -> Arc<dyn StorageFile> {
        self.storage.open_file(name, OpenMode::CreateNew).expect("creating a file")
    }

    /// Opens `LOG_FILE_NAME` afresh, as recovery would after a crash.
    pub fn reopen(&self) -> LogFile {
        self.try_reopen(LOG_FILE_NAME).expect("reopening the log")
    }

    /// Opens the log file `name` afresh; the error is the test's subject.
    pub fn try_reopen(&self, name: &str) -> mtr::Result<LogFile> {
        let file = self.storage.open_file(name, OpenMode::Existing).expect("opening an existing file");
        LogFile::open(file)
    }

    /// The raw file `name`, for damaging it.
    pub fn raw_file(&self, name: &str) -> Arc<dyn StorageFile> {
        self.storage.open_file(name, OpenMode::Existing).expect("opening an existing file")
    }
}

/// One record, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSpec {
    pub kind: u8,
    pub page_id: u64,
    pub payload: Vec<u8>,
}

/// One mtr, owned: what was appended or what a scan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtrSpec {
    pub flags: u8,
    pub records: Vec<RecordSpec>,
}

impl MtrSpec {
    /// An mtr of one record.
    pub fn single(kind: u8, page_id: u64, payload: Vec<u8>, flags: u8) -> MtrSpec {
        MtrSpec { flags, records: vec![RecordSpec { kind, page_id, payload }] }
    }

    pub fn to_buf(&self) -> MtrBuf {
        let mut buf = MtrBuf::new();
        for record in &self.records {
            buf.push(record.kind, record.page_id, &record.payload);
        }
        buf
    }

    /// Bytes of the encoded records.
    pub fn body_len_bytes(&self) -> usize {
        self.records
            .iter()
            .map(|record| {
                1 + varint::len(record.page_id) + varint::len(record.payload.len() as u64) + record.payload.len()
            })
            .sum()
    }
}

/// An mtr with the LSN range it occupies in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedMtr {
    pub start_lsn: Lsn,
    pub end_lsn: Lsn,
    pub mtr: MtrSpec,
}

impl LoggedMtr {
    pub fn frame_len_bytes(&self) -> usize {
        self.end_lsn.since(self.start_lsn) as usize
    }
}

/// Appends `mtr` and returns where it went.
pub fn append(log: &Log, mtr: &MtrSpec) -> LoggedMtr {
    let (start_lsn, end_lsn) = log.append(&mtr.to_buf(), mtr.flags).expect("append");
    LoggedMtr { start_lsn, end_lsn, mtr: mtr.clone() }
}

/// What a scan found: the mtrs, then where it ended (or the error that ended it).
#[derive(Debug)]
pub struct ScanOutcome {
    pub mtrs: Vec<LoggedMtr>,
    pub end: mtr::Result<ScanEnd>,
}

impl ScanOutcome {
    /// The end, for a scan that must have ended without an error.
    pub fn end(&self) -> &ScanEnd {
        match &self.end {
            Ok(end) => end,
            Err(error) => panic!("scan failed after {} mtrs: {error}", self.mtrs.len()),
        }
    }
}

/// Scans `log_file` from its latest checkpoint.
pub fn scan(log_file: &LogFile, mode: ScanMode) -> ScanOutcome {
    let checkpoint = log_file.latest_checkpoint().expect("a valid checkpoint");
    scan_from(log_file, checkpoint, mode)
}

/// Scans `log_file` from `checkpoint`, collecting every mtr it yields.
pub fn scan_from(log_file: &LogFile, checkpoint: Checkpoint, mode: ScanMode) -> ScanOutcome {
    let mut scanner = Scanner::new(log_file, checkpoint, mode);
    let mut mtrs = Vec::new();
    loop {
        match scanner.next_mtr() {
            Ok(Some(frame)) => {
                let records = mtr::RecordIter::new(frame.body)
                    .map(|record| RecordSpec {
                        kind: record.kind,
                        page_id: record.page_id,
                        payload: record.payload.to_vec(),
                    })
                    .collect();
                mtrs.push(LoggedMtr {
                    start_lsn: frame.start_lsn,
                    end_lsn: frame.end_lsn,
                    mtr: MtrSpec { flags: frame.flags, records },
                });
            }
            Ok(None) => {
                let end = scanner.end().expect("an ended scan has an end").clone();
                return ScanOutcome { mtrs, end: Ok(end) };
            }
            Err(error) => return ScanOutcome { mtrs, end: Err(error) },
        }
    }
}

/// Writes `bytes` over the stream at `lsn`, wrapping at the ring's end, straight to the file
/// (bypassing the writer): how a test damages what is on disk.
pub fn overwrite_stream(log_file: &LogFile, lsn: Lsn, bytes: &[u8]) {
    let capacity = log_file.capacity();
    let mut done = 0;
    while done < bytes.len() {
        let at = lsn.add(done as u64);
        let to_ring_end = (capacity - at.0 % capacity) as usize;
        let chunk_len = (bytes.len() - done).min(to_ring_end);
        log_file
            .file()
            .write_all_at(&bytes[done..done + chunk_len], log_file.ring_offset(at))
            .expect("overwriting the ring");
        done += chunk_len;
    }
}

/// The stream bytes `[lsn, lsn + len_bytes)` as they are on disk.
pub fn read_stream(log_file: &LogFile, lsn: Lsn, len_bytes: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len_bytes];
    log_file.read_stream(lsn, &mut bytes).expect("reading the ring");
    bytes
}

/// A one-record mtr whose frame will be exactly `frame_len_bytes` long if it is the next one
/// appended to `log` (the header's `durable_back` depends on the stream position and on what is
/// durable, so it is computed from the log's current state). The payload starts with `tag`.
pub fn mtr_of_frame_len(log: &Log, frame_len_bytes: usize, tag: &[u8], flags: u8) -> MtrSpec {
    let durable_back = log.end_lsn().since(log.flushed_lsn());
    let header_len = varint::len(durable_back);
    // Page ids of every encoded length, so every frame length can be hit exactly although a
    // payload length crossing 127 or 16383 bytes jumps by two.
    let page_ids = (0..10).map(|group| if group == 0 { 0 } else { 1u64 << (7 * group) });
    for page_id in page_ids {
        for payload_len in tag.len()..frame_len_bytes {
            let body_len = 1 + varint::len(page_id) + varint::len(payload_len as u64) + payload_len;
            let frame_len = varint::len(body_len as u64) + header_len + body_len + TRAILER_BYTES;
            if frame_len == frame_len_bytes {
                let mut payload = tag.to_vec();
                payload.resize(payload_len, 0xA5);
                return MtrSpec::single(mtr::FIRST_ENGINE_KIND, page_id, payload, flags);
            }
            if frame_len > frame_len_bytes {
                break;
            }
        }
    }
    panic!("no one-record mtr has a frame of {frame_len_bytes} bytes here");
}

/// SplitMix64: a small seeded generator, so a failing damaged byte can be reproduced.
pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> TestRng {
        TestRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// Uniform in `0..bound` (close enough for tests).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    pub fn bytes(&mut self, len_bytes: usize) -> Vec<u8> {
        (0..len_bytes).map(|_| self.next_u64() as u8).collect()
    }
}

/// A payload that names its writer and sequence number, padded to `len_bytes` (at least 12).
pub fn tagged_payload(writer: u32, sequence: u64, len_bytes: usize) -> Vec<u8> {
    let mut payload = Vec::with_capacity(len_bytes.max(12));
    payload.extend_from_slice(&writer.to_le_bytes());
    payload.extend_from_slice(&sequence.to_le_bytes());
    let fill = (writer as u8).wrapping_mul(31) ^ (sequence as u8);
    while payload.len() < len_bytes {
        payload.push(fill.wrapping_add(payload.len() as u8));
    }
    payload
}

/// The writer and sequence number [`tagged_payload`] put in front of a payload.
pub fn payload_tag(payload: &[u8]) -> (u32, u64) {
    let writer = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes"));
    let sequence = u64::from_le_bytes(payload[4..12].try_into().expect("8 bytes"));
    (writer, sequence)
}
