//! Concurrent commits: eight threads each append an mtr and wait until it is durable
//! (`flush_up_to` its own end), many times over. Afterwards the log holds every mtr exactly once,
//! in LSN order, each at the LSNs its `append` returned, and group commit shared the syncs: fewer
//! syncs than commits. And when the ring is full, `append` waits, without failing, until another
//! thread's checkpoint frees space.
//!
//! Guards against lost or duplicated bytes between overlapping flush rounds, a flush that returns
//! before the caller's LSN is durable, a leader that syncs only its own bytes (one sync per
//! commit), and an `append` that overwrites live redo, errors or never wakes when the ring fills.

mod common;

use std::collections::BTreeMap;
use std::io;
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use common::{append, payload_tag, scan, tagged_payload, MtrSpec, TempLog, LOG_FILE_NAME, LOG_ID};
use mtr::layout::MIN_CAPACITY_BYTES;
use mtr::{Log, LogFile, Lsn, ScanMode, StorageFile, FIRST_ENGINE_KIND};

const THREADS: u32 = 8;
const COMMITS_PER_THREAD: u64 = 250;

/// A real file whose syncs take at least `extra` longer, like a slower disk. Group commit only
/// has something to group while a sync is under way; on tmpfs or a fast NVMe a sync can be
/// quicker than a thread switch, and the syncs-versus-commits assertion would depend on the
/// scheduler.
struct SlowSync {
    inner: Arc<dyn StorageFile>,
    extra: Duration,
}

impl StorageFile for SlowSync {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()?;
        std::thread::sleep(self.extra);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

/// A new 1 MiB log in `temp` whose syncs take `extra` longer.
fn slow_sync_log(temp: &TempLog, extra: Duration) -> Log {
    let slow = SlowSync { inner: temp.new_file(LOG_FILE_NAME), extra };
    let log_file = LogFile::create(Arc::new(slow), 1 << 20, LOG_ID).expect("create");
    Log::resume(log_file, Lsn::ZERO).expect("resume")
}

/// `threads` threads, started together, each appending `commits_per_thread` mtrs made by
/// `mtr_for(thread, sequence)` and waiting until each is durable. Returns each thread's
/// `(start, end)` LSNs in its order.
fn commit_from_threads(
    log: &Log,
    threads: u32,
    commits_per_thread: u64,
    mtr_for: impl Fn(u32, u64) -> MtrSpec + Sync,
) -> Vec<Vec<(Lsn, Lsn)>> {
    let start_together = Barrier::new(threads as usize);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread_id| {
                let (start_together, mtr_for) = (&start_together, &mtr_for);
                scope.spawn(move || {
                    start_together.wait();
                    (0..commits_per_thread)
                        .map(|sequence| {
                            let entry = append(log, &mtr_for(thread_id, sequence));
                            log.flush_up_to(entry.end_lsn).expect("flush");
                            assert!(log.flushed_lsn() >= entry.end_lsn, "flush returned early");
                            (entry.start_lsn, entry.end_lsn)
                        })
                        .collect()
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().expect("worker")).collect()
    })
}

#[test]
fn group_commit_keeps_every_mtr_exactly_once_with_fewer_syncs_than_commits() {
    let temp = TempLog::new();
    let log = slow_sync_log(&temp, Duration::from_millis(1));
    let stream_start = log.end_lsn();
    // Per thread: the LSN range of each commit, in the thread's order.
    let committed = commit_from_threads(&log, THREADS, COMMITS_PER_THREAD, |thread_id, sequence| {
        let payload_len = 12 + (sequence as usize * 13) % 200;
        MtrSpec::single(
            FIRST_ENGINE_KIND + thread_id as u8,
            sequence,
            tagged_payload(thread_id, sequence, payload_len),
            thread_id as u8,
        )
    });

    let commits = u64::from(THREADS) * COMMITS_PER_THREAD;
    let stats = log.stats();
    assert_eq!(stats.mtrs_appended, commits);
    assert!(stats.syncs < commits, "group commit shared no sync: {stats:?} for {commits} commits");
    let durable_end = log.flushed_lsn();
    assert_eq!(durable_end, log.end_lsn());
    drop(log);

    let outcome = scan(&temp.reopen(), ScanMode::Strict);
    assert_eq!(outcome.end().lsn, durable_end);
    assert_eq!(outcome.mtrs.len() as u64, commits);
    let mut previous_end = stream_start;
    let mut seen: BTreeMap<(u32, u64), (Lsn, Lsn)> = BTreeMap::new();
    for scanned in &outcome.mtrs {
        assert_eq!(scanned.start_lsn, previous_end, "LSNs are contiguous and increasing");
        assert!(scanned.end_lsn > scanned.start_lsn);
        previous_end = scanned.end_lsn;
        let tag = payload_tag(&scanned.mtr.records[0].payload);
        let duplicate = seen.insert(tag, (scanned.start_lsn, scanned.end_lsn));
        assert_eq!(duplicate, None, "mtr {tag:?} scanned twice");
    }
    for (thread_id, ranges) in committed.iter().enumerate() {
        for (sequence, range) in ranges.iter().enumerate() {
            let tag = (thread_id as u32, sequence as u64);
            assert_eq!(seen.get(&tag), Some(range), "mtr {tag:?}");
        }
        // A thread's own commits are in its order.
        assert!(ranges.windows(2).all(|pair| pair[0].1 <= pair[1].0));
    }
}

#[test]
fn append_waits_for_a_checkpoint_when_the_ring_is_full() {
    let (temp, log_file) = TempLog::create(MIN_CAPACITY_BYTES);
    let log = Log::resume(log_file, Lsn::ZERO).expect("resume");
    let big = MtrSpec::single(FIRST_ENGINE_KIND, 1, vec![0xB1; 4000], 7);
    // `append` reserves room for the longest possible header.
    let reserved_bytes = (mtr::frame::MAX_HEADER_BYTES + big.body_len_bytes() + mtr::frame::TRAILER_BYTES) as u64;
    let mut filled = 0;
    while log.free_bytes() >= reserved_bytes {
        append(&log, &big);
        filled += 1;
    }
    assert!(filled >= 10);
    let full_end = log.flush_all().expect("flush");
    assert_eq!(log.stats().space_waits, 0);

    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        let (log, big) = (&log, &big);
        scope.spawn(move || {
            let result = log.append(&big.to_buf(), big.flags);
            sender.send(result).expect("send");
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while log.stats().space_waits == 0 {
            assert!(Instant::now() < deadline, "append never waited for space");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Still waiting a while later, and nothing was appended meanwhile.
        assert!(receiver.recv_timeout(Duration::from_millis(200)).is_err());
        assert_eq!(log.end_lsn(), full_end);

        log.checkpoint(full_end).expect("checkpoint");
        let appended = receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("append proceeds once a checkpoint frees space")
            .expect("append succeeds");
        assert_eq!(appended.0, full_end);
    });
    let durable_end = log.flush_all().expect("flush");
    drop(log);

    // The scan from the new checkpoint finds exactly the mtr that waited.
    let outcome = scan(&temp.reopen(), ScanMode::Strict);
    assert_eq!(outcome.mtrs.len(), 1);
    assert_eq!(outcome.mtrs[0].start_lsn, full_end);
    assert_eq!(outcome.mtrs[0].end_lsn, durable_end);
    assert_eq!(outcome.mtrs[0].mtr, big);
}

/// A lone committer never waits for company: every commit is one round of its own, led at
/// once, with no gathering. And once several threads commit in a loop, leaders do wait for the
/// group the previous round carried (so one sync keeps carrying them all) and the syncs are
/// shared. Guards against a leader that delays a lone commit to grow a group (on a busy machine
/// such a wait costs a scheduler slice per commit) and against gathering that never happens.
#[test]
fn a_lone_committer_never_waits_and_a_group_is_gathered() {
    let temp = TempLog::new();
    let log = slow_sync_log(&temp, Duration::from_micros(300));

    const LONE_COMMITS: u64 = 200;
    for sequence in 0..LONE_COMMITS {
        let entry = append(&log, &MtrSpec::single(FIRST_ENGINE_KIND, sequence, vec![0x10; 40], 1));
        log.flush_up_to(entry.end_lsn).expect("flush");
    }
    let lone = log.stats();
    assert_eq!(lone.flush_rounds, LONE_COMMITS, "one round per lone commit: {lone:?}");
    assert_eq!(lone.gather_waits, 0, "a lone committer waited for others: {lone:?}");

    const THREADS: u32 = 4;
    const COMMITS_PER_THREAD: u64 = 200;
    commit_from_threads(&log, THREADS, COMMITS_PER_THREAD, |thread_id, sequence| {
        MtrSpec::single(FIRST_ENGINE_KIND, sequence, vec![thread_id as u8; 40], 1)
    });
    let group = log.stats();
    let group_commits = u64::from(THREADS) * COMMITS_PER_THREAD;
    let group_rounds = group.flush_rounds - lone.flush_rounds;
    assert!(group.gather_waits > 0, "no leader gathered: {group:?}");
    assert!(group_rounds < group_commits, "{group_rounds} rounds for {group_commits} commits");
}
