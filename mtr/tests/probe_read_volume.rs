//! Read volume of the torn-tail probe: after the end of the valid log the scanner tries every
//! byte position of the next [`PROBE_WINDOW_BYTES`] as the start of an mtr. Random bytes there
//! often decode as a header claiming a frame of up to 4 MiB; the scan must still read each byte
//! of the log a bounded number of times, not re-read a megabyte-sized window per candidate.
//!
//! Guards against a probe that costs a large read per candidate position (a crash recovery of
//! seconds to minutes over a few kilobytes of garbage, and a slow fuzz target), while keeping
//! its answer: garbage after the durable end is a torn tail, with nothing valid after it.

mod common;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{append, overwrite_stream, scan, MtrSpec, TempLog, TestRng};
use mtr::frame::{MAX_HEADER_BYTES, TRAILER_BYTES};
use mtr::scan::PROBE_WINDOW_BYTES;
use mtr::{Log, LogFile, Lsn, ScanMode, StorageFile, FIRST_ENGINE_KIND, MAX_MTR_BODY_BYTES};

/// A file that counts the bytes read from it.
struct CountingFile {
    inner: Arc<dyn StorageFile>,
    read_bytes: AtomicU64,
}

impl StorageFile for CountingFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

/// A ring large enough that a claimed frame of several MiB fits in it.
const CAPACITY: u64 = 64 << 20;
const LONGEST_FRAME: u64 = (MAX_HEADER_BYTES + MAX_MTR_BODY_BYTES + TRAILER_BYTES) as u64;

/// Ten small mtrs, flushed, then `garbage` bytes of seeded random data right after the durable
/// end (what an earlier use of the disk left there). Returns the log, the reads counter, and
/// where the valid log ends.
fn log_with_garbage_tail(seed: u64, garbage: usize) -> (TempLog, LogFile, Arc<CountingFile>, Lsn) {
    let temp = TempLog::new();
    let counting =
        Arc::new(CountingFile { inner: temp.new_file(common::LOG_FILE_NAME), read_bytes: AtomicU64::new(0) });
    let file: Arc<dyn StorageFile> = counting.clone();
    let log_file = LogFile::create(file, CAPACITY, common::LOG_ID).expect("creating a log");
    let log = Log::resume(log_file.clone(), Lsn::ZERO).expect("resume");
    for index in 0..10u8 {
        append(&log, &MtrSpec::single(FIRST_ENGINE_KIND + index, u64::from(index), vec![index; 100], 0));
    }
    log.flush_all().expect("flush");
    let durable_end = log.flushed_lsn();
    drop(log);
    overwrite_stream(&log_file, durable_end, &TestRng::new(seed).bytes(garbage));
    (temp, log_file, counting, durable_end)
}

#[test]
fn a_garbage_tail_is_read_a_bounded_number_of_times() {
    for (seed, garbage) in [(1, PROBE_WINDOW_BYTES as usize), (2, 4096), (3, 3 * PROBE_WINDOW_BYTES as usize)] {
        let (_temp, log_file, counting, durable_end) = log_with_garbage_tail(seed, garbage);
        counting.read_bytes.store(0, Ordering::Relaxed);
        for mode in [ScanMode::Strict, ScanMode::Lenient] {
            let outcome = scan(&log_file, mode);
            assert_eq!(outcome.mtrs.len(), 10, "seed {seed}: the valid mtrs before the garbage");
            let end = outcome.end();
            assert_eq!(end.lsn, durable_end, "seed {seed}: the scan ends at the durable end");
            assert_eq!((end.unsynced_after, &end.corruption), (None, &None), "seed {seed}: random bytes are no mtr");
        }
        // Each scan reads the valid log, the probe window, the longest frame a candidate in it
        // can claim and a read-ahead chunk, about 5 MiB; allow twice that. A window re-read
        // whenever a candidate's claimed frame ends beyond it read about 30 MB per scan here.
        let read = counting.read_bytes.load(Ordering::Relaxed);
        let live = durable_end.since(log_file.latest_checkpoint().expect("a checkpoint").lsn);
        let bound = 2 * 2 * (live + PROBE_WINDOW_BYTES + LONGEST_FRAME + (1 << 20));
        assert!(read <= bound, "seed {seed}: two scans read {read} bytes, more than {bound}");
    }
}
