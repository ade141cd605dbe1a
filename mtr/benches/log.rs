//! Benchmarks of the redo log on the real disk (files under `CARGO_TARGET_TMPDIR`, not tmpfs):
//!
//! - `append/*`: append throughput (record bytes per second) for small (64-byte body) and
//!   large (16 KiB body) mtrs into a large log, flushing every few MiB and checkpointing as the
//!   ring fills, as an engine streaming changes would;
//! - `durable_commit/*`: durable commits per second with 1, 2, 4 and 8 threads, each appending a
//!   small mtr and waiting for `flush_up_to` its own end (group commit), against the baseline of
//!   one `fdatasync` per commit: one thread doing a `pwrite` of a frame-sized buffer and
//!   `File::sync_data` per commit on a plain file;
//! - `durable_commit_busy/*`: the same with every core kept busy by spinning threads of the same
//!   process (a server whose other work holds the CPUs): what a commit costs when the
//!   committing thread competes for a core, measured against the baseline under the same load.
//!
//! Both logs and the baseline file are written through one whole lap before measuring, so every
//! measured write overwrites allocated blocks (a circular log's steady state) instead of filling
//! a sparse file, whose block allocation would make each sync also commit metadata.
//!
//! Run with `cargo bench -p mtr --bench log`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mtr::io::OpenMode;
use mtr::{DirStorage, Log, LogFile, Lsn, MtrBuf, Storage, FIRST_ENGINE_KIND};
use tempfile::TempDir;

const LOG_CAPACITY_BYTES: u64 = 64 << 20;
/// The append benchmark flushes whenever this much is buffered.
const FLUSH_EVERY_BYTES: u64 = 4 << 20;
const PAGE_ID: u64 = 12_345;

/// A log in its own directory on the real disk. Fields drop in order: log, lock, directory.
struct BenchLog {
    log: Log,
    _storage: DirStorage,
    _dir: TempDir,
}

fn bench_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("mtr-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a directory under the target directory")
}

fn open_log() -> BenchLog {
    let dir = bench_dir();
    let storage = DirStorage::open(dir.path(), false).expect("lock the directory");
    let file = storage.open_file("redo.log", OpenMode::CreateNew).expect("create the log file");
    let log_file = LogFile::create(file, LOG_CAPACITY_BYTES, 1).expect("create the log");
    let log = Log::resume(log_file, Lsn::ZERO).expect("open the log");
    fill_one_lap(&log);
    BenchLog { log, _storage: storage, _dir: dir }
}

/// Writes one whole lap of the ring, so that later writes land on allocated blocks.
fn fill_one_lap(log: &Log) {
    let stream_start = log.end_lsn();
    let filler = mtr_with_body_len(60_000);
    while log.end_lsn().since(stream_start) < LOG_CAPACITY_BYTES {
        make_room(log, 2 * 60_000);
        log.append(&filler, 0).expect("append");
        if log.unflushed_bytes() >= FLUSH_EVERY_BYTES {
            log.flush_all().expect("flush");
        }
    }
    make_room(log, LOG_CAPACITY_BYTES);
}

/// Flushes and checkpoints at the durable end when fewer than `needed_bytes` of the ring are
/// free: the benchmark's stand-in for the engine writing its pages back.
fn make_room(log: &Log, needed_bytes: u64) {
    if log.free_bytes() < needed_bytes {
        let durable_end = log.flush_all().expect("flush");
        log.checkpoint(durable_end).expect("checkpoint");
    }
}

/// An mtr of one record whose body (kind, page id, length, payload) is `body_len_bytes` long.
fn mtr_with_body_len(body_len_bytes: usize) -> MtrBuf {
    let record_len =
        |payload_len: usize| 1 + mtr::varint::len(PAGE_ID) + mtr::varint::len(payload_len as u64) + payload_len;
    let payload_len = (0..body_len_bytes)
        .rev()
        .find(|&payload_len| record_len(payload_len) <= body_len_bytes)
        .expect("a body holds at least a record header");
    let payload: Vec<u8> = (0..payload_len).map(|index| (index * 31) as u8).collect();
    let mut mtr = MtrBuf::new();
    mtr.push(FIRST_ENGINE_KIND, PAGE_ID, &payload);
    assert_eq!(mtr.body().len(), body_len_bytes);
    mtr
}

fn bench_append(c: &mut Criterion) {
    let bench_log = open_log();
    let log = &bench_log.log;
    let mut group = c.benchmark_group("append");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    for (name, body_len_bytes) in [("small_64B_body", 64), ("large_16KiB_body", 16 << 10)] {
        let mtr = mtr_with_body_len(body_len_bytes);
        group.throughput(Throughput::Bytes(body_len_bytes as u64));
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                if log.unflushed_bytes() >= FLUSH_EVERY_BYTES {
                    make_room(log, LOG_CAPACITY_BYTES / 2);
                    log.flush_all().expect("flush");
                }
                log.append(&mtr, 0).expect("append")
            });
        });
    }
    group.finish();
}

/// Body of a commit's mtr: a small change, as a single-key insert would log.
const COMMIT_BODY_BYTES: usize = 64;

/// `commits` durable commits spread over `threads` threads; returns the wall time from the
/// moment all threads start until the last one finishes.
fn group_commits(log: &Log, threads: u64, commits: u64) -> Duration {
    make_room(log, LOG_CAPACITY_BYTES / 2);
    let per_thread = commits.div_ceil(threads);
    let start_together = Barrier::new(threads as usize + 1);
    let elapsed = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let start_together = &start_together;
                scope.spawn(move || {
                    let mtr = mtr_with_body_len(COMMIT_BODY_BYTES);
                    start_together.wait();
                    for _ in 0..per_thread {
                        let (_, end_lsn) = log.append(&mtr, 0).expect("append");
                        log.flush_up_to(end_lsn).expect("flush");
                    }
                })
            })
            .collect();
        start_together.wait();
        let started = Instant::now();
        for worker in workers {
            worker.join().expect("commit thread");
        }
        started.elapsed()
    });
    // Rounding up gave each thread the same share; report the time for `commits` exactly.
    elapsed.mul_f64(commits as f64 / (per_thread * threads) as f64)
}

/// A plain file, written through once, for the one-fdatasync-per-commit baseline.
fn baseline_file(dir: &TempDir) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join("baseline.dat"))
        .expect("create the baseline file");
    let chunk = vec![0u8; 1 << 20];
    for index in 0..LOG_CAPACITY_BYTES / chunk.len() as u64 {
        file.write_all_at(&chunk, index * chunk.len() as u64).expect("fill the baseline file");
    }
    file.sync_all().expect("sync the baseline file");
    file
}

/// Threads that spin on every core until dropped.
struct CpuLoad {
    stop: Arc<AtomicBool>,
    spinners: Vec<std::thread::JoinHandle<()>>,
}

impl CpuLoad {
    fn on_every_core() -> CpuLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let spinners = (0..cores)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
                    }
                })
            })
            .collect();
        CpuLoad { stop, spinners }
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for spinner in self.spinners.drain(..) {
            let _ = spinner.join();
        }
    }
}

/// Group commit with 1..8 threads and the one-fdatasync-per-commit baseline, in group `name`.
fn durable_commit_group(c: &mut Criterion, name: &str, log: &Log, thread_counts: &[u64]) {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(1));
    for &threads in thread_counts {
        group.bench_with_input(BenchmarkId::new("group_commit_threads", threads), &threads, |bencher, &threads| {
            bencher.iter_custom(|commits| group_commits(log, threads, commits))
        });
    }

    // The baseline: what each commit costs without grouping.
    let dir = bench_dir();
    let file = baseline_file(&dir);
    // The frame a commit of COMMIT_BODY_BYTES appends: two header bytes, body, six trailer bytes.
    let frame: Vec<u8> = (0..COMMIT_BODY_BYTES + 8).map(|index| index as u8).collect();
    let mut offset = 0u64;
    group.bench_function("fdatasync_per_commit_1_thread", |bencher| {
        bencher.iter(|| {
            file.write_all_at(&frame, offset).expect("pwrite");
            file.sync_data().expect("fdatasync");
            offset = (offset + frame.len() as u64) % (LOG_CAPACITY_BYTES - frame.len() as u64);
        });
    });
    group.finish();
}

fn bench_durable_commit(c: &mut Criterion) {
    let bench_log = open_log();
    durable_commit_group(c, "durable_commit", &bench_log.log, &[1, 2, 4, 8]);
    let _load = CpuLoad::on_every_core();
    durable_commit_group(c, "durable_commit_busy", &bench_log.log, &[1, 2]);
}

criterion_group!(benches, bench_append, bench_durable_commit);
criterion_main!(benches);
