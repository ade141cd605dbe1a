//! Poisoning: after a failed write or sync of the log, the kernel may have dropped the dirty data,
//! so a retried sync could report success for bytes that are gone. The log must enter a sticky
//! failed state: every later append, flush and checkpoint returns [`Error::Poisoned`] (even once
//! the disk would work again), no sync is ever retried, and appenders waiting for ring space
//! are woken with the error rather than left hanging. Reopening (recovery) is the way out.
//!
//! Guards against retrying fsync (PostgreSQL's "fsyncgate"), a log that keeps accepting commits it
//! can no longer make durable, and waiters that deadlock on a log that will never flush again.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{append, scan, MtrSpec, TempLog, LOG_FILE_NAME, LOG_ID};
use mtr::layout::MIN_CAPACITY_BYTES;
use mtr::{Error, Log, LogFile, Lsn, ScanMode, StorageFile, FIRST_ENGINE_KIND};

/// A real file whose next write or sync can be made to fail, once.
struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    fail_next_write: AtomicBool,
    fail_next_sync: AtomicBool,
    syncs_attempted: AtomicU64,
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl StorageFile for FaultyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.fail_next_write.swap(false, Ordering::SeqCst) {
            return Err(injected("write"));
        }
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.syncs_attempted.fetch_add(1, Ordering::SeqCst);
        if self.fail_next_sync.swap(false, Ordering::SeqCst) {
            return Err(injected("fdatasync"));
        }
        self.inner.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

fn faulty_log() -> (TempLog, Arc<FaultyFile>, Log) {
    let temp = TempLog::new();
    let faulty = Arc::new(FaultyFile {
        inner: temp.new_file(LOG_FILE_NAME),
        fail_next_write: AtomicBool::new(false),
        fail_next_sync: AtomicBool::new(false),
        syncs_attempted: AtomicU64::new(0),
    });
    let log_file = LogFile::create(faulty.clone(), MIN_CAPACITY_BYTES, LOG_ID).expect("create");
    let log = Log::resume(log_file, Lsn::ZERO).expect("resume");
    (temp, faulty, log)
}

fn mtr(sequence: u64) -> MtrSpec {
    MtrSpec::single(FIRST_ENGINE_KIND, sequence, vec![sequence as u8; 200], 0)
}

fn assert_poisoned<T: std::fmt::Debug>(result: mtr::Result<T>, context: &str) {
    match result {
        Err(Error::Poisoned { cause }) => assert!(cause.contains("injected"), "{context}: {cause}"),
        other => panic!("{context}: expected Poisoned, got {other:?}"),
    }
}

/// The call whose own I/O failed gets the operating system's error, typed; later calls get
/// `Poisoned`.
fn assert_own_io_error<T: std::fmt::Debug>(result: mtr::Result<T>, context: &str) {
    match result {
        Err(Error::Io { source, .. }) => assert!(source.to_string().contains("injected"), "{context}: {source}"),
        other => panic!("{context}: expected the I/O error itself, got {other:?}"),
    }
}

/// Every kind of call fails, and none of them touches the disk's sync again.
fn assert_sticky(log: &Log, faulty: &FaultyFile, durable_lsn: Lsn) {
    let syncs_before = faulty.syncs_attempted.load(Ordering::SeqCst);
    assert!(log.poisoned().is_some());
    for attempt in 0..3 {
        assert_poisoned(log.append(&mtr(100).to_buf(), 0), &format!("append #{attempt}"));
        assert_poisoned(log.flush_up_to(log.end_lsn()), &format!("flush #{attempt}"));
        // Even a flush that asks for nothing new, and a checkpoint at a durable LSN.
        assert_poisoned(log.flush_up_to(durable_lsn), &format!("no-op flush #{attempt}"));
        assert_poisoned(log.flush_all(), &format!("flush_all #{attempt}"));
        assert_poisoned(log.checkpoint(durable_lsn), &format!("checkpoint #{attempt}"));
    }
    assert_eq!(faulty.syncs_attempted.load(Ordering::SeqCst), syncs_before, "a sync was retried after the failure");
}

#[test]
fn failed_flush_sync_poisons_every_later_call_until_reopen() {
    let (temp, faulty, log) = faulty_log();
    let first = append(&log, &mtr(1));
    log.flush_up_to(first.end_lsn).expect("flush");

    faulty.fail_next_sync.store(true, Ordering::SeqCst);
    let second = append(&log, &mtr(2));
    assert_own_io_error(log.flush_up_to(second.end_lsn), "the failing flush");
    assert_eq!(log.flushed_lsn(), first.end_lsn, "the failed flush made nothing durable");
    assert_sticky(&log, &faulty, first.end_lsn);
    drop(log);

    // Reopening is the way out: recovery finds the durable mtr (the unsynced one may or may not
    // have reached the disk) and the log goes on.
    let log_file = temp.reopen();
    let outcome = scan(&log_file, ScanMode::Strict);
    assert_eq!(outcome.mtrs.first(), Some(&first));
    assert!(outcome.mtrs.len() <= 2);
    let log = Log::resume(log_file, outcome.end().lsn).expect("resume");
    let third = append(&log, &mtr(3));
    log.flush_up_to(third.end_lsn).expect("flush after reopen");
}

#[test]
fn failed_flush_write_poisons_without_syncing() {
    let (_temp, faulty, log) = faulty_log();
    let first = append(&log, &mtr(1));
    log.flush_all().expect("flush");
    let syncs_before = faulty.syncs_attempted.load(Ordering::SeqCst);

    faulty.fail_next_write.store(true, Ordering::SeqCst);
    append(&log, &mtr(2));
    assert_own_io_error(log.flush_all(), "the failing flush");
    assert_eq!(
        faulty.syncs_attempted.load(Ordering::SeqCst),
        syncs_before,
        "a sync after a failed write would claim durability for bytes never written"
    );
    assert_sticky(&log, &faulty, first.end_lsn);
}

#[test]
fn failed_checkpoint_sync_poisons_the_log() {
    let (_temp, faulty, log) = faulty_log();
    let first = append(&log, &mtr(1));
    log.flush_all().expect("flush");
    let checkpoint_before = log.last_checkpoint();

    faulty.fail_next_sync.store(true, Ordering::SeqCst);
    assert_own_io_error(log.checkpoint(first.end_lsn), "the failing checkpoint");
    assert_eq!(log.last_checkpoint(), checkpoint_before);
    assert_sticky(&log, &faulty, first.end_lsn);
}

#[test]
fn failed_flush_wakes_appenders_waiting_for_space() {
    let (_temp, faulty, log) = faulty_log();
    let big = MtrSpec::single(FIRST_ENGINE_KIND, 1, vec![0xB1; 4000], 0);
    let reserved_bytes = (mtr::frame::MAX_HEADER_BYTES + big.body_len_bytes() + mtr::frame::TRAILER_BYTES) as u64;
    while log.free_bytes() >= reserved_bytes {
        append(&log, &big);
    }

    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        let (log, big) = (&log, &big);
        scope.spawn(move || {
            sender.send(log.append(&big.to_buf(), 0)).expect("send");
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.stats().space_waits == 0 {
            assert!(Instant::now() < deadline, "append never waited for space");
            std::thread::sleep(Duration::from_millis(1));
        }
        faulty.fail_next_sync.store(true, Ordering::SeqCst);
        assert_own_io_error(log.flush_all(), "the failing flush");
        let woken = receiver.recv_timeout(Duration::from_secs(10)).expect("the waiting append was woken");
        assert_poisoned(woken, "the waiting append");
    });
}
