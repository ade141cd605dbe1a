//! Load and references for the commit workloads: the one-`fdatasync`-per-commit baseline on a
//! plain file, and the CPU hogs that keep every core busy.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Latencies, Until, KEY_BYTES, VALUE_BYTES};

/// A plain file for the one-`fdatasync`-per-commit baseline: 64 MiB written through once, so
/// later writes overwrite allocated blocks (as a circular log does in its steady state).
pub struct FsyncBaseline {
    file: File,
    offset: u64,
}

const BASELINE_FILE_BYTES: u64 = 64 << 20;
/// Bytes one baseline commit writes: about the frame of a single-key insert.
const BASELINE_COMMIT_BYTES: usize = KEY_BYTES + VALUE_BYTES + 32;

impl FsyncBaseline {
    /// Creates the file in `dir`.
    pub fn create(dir: &Path) -> FsyncBaseline {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("baseline.dat"))
            .expect("create the baseline file");
        let chunk = vec![0u8; 1 << 20];
        for index in 0..BASELINE_FILE_BYTES / chunk.len() as u64 {
            file.write_all_at(&chunk, index * chunk.len() as u64).expect("fill the baseline file");
        }
        file.sync_all().expect("sync the baseline file");
        FsyncBaseline { file, offset: 0 }
    }

    /// One commit: a `pwrite` of a commit-sized record and an `fdatasync`.
    pub fn commit(&mut self) {
        let record = [0x5au8; BASELINE_COMMIT_BYTES];
        self.file.write_all_at(&record, self.offset).expect("pwrite");
        self.file.sync_data().expect("fdatasync");
        self.offset =
            (self.offset + BASELINE_COMMIT_BYTES as u64) % (BASELINE_FILE_BYTES - BASELINE_COMMIT_BYTES as u64);
    }

    /// Commits until `until`; returns commits and wall time.
    pub fn run(&mut self, until: Until) -> (u64, Duration) {
        let (commits, elapsed, _) = self.run_timed(until);
        (commits, elapsed)
    }

    /// Commits until `until`, each one timed; returns commits, wall time and every latency.
    pub fn run_timed(&mut self, until: Until) -> (u64, Duration, Latencies) {
        let started = Instant::now();
        let mut commits = 0;
        let mut latencies = Latencies::default();
        loop {
            let stop = match until {
                Until::Operations(total) => commits >= total,
                Until::Elapsed(duration) => started.elapsed() >= duration,
            };
            if stop {
                return (commits, started.elapsed(), latencies);
            }
            let commit_started = Instant::now();
            self.commit();
            latencies.record(commit_started.elapsed());
            commits += 1;
        }
    }
}

/// Other processes keeping every core busy until dropped (`sh` busy loops), as on a server
/// whose CPUs are taken by other work: the "both cores busy" rows and benches.
pub struct CpuHogs {
    children: Vec<std::process::Child>,
}

impl CpuHogs {
    pub fn on_every_core() -> CpuHogs {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let children = (0..cores)
            .map(|_| {
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("start a CPU-bound sh loop")
            })
            .collect();
        // Let the scheduler see them as running before anything is measured.
        std::thread::sleep(Duration::from_millis(100));
        CpuHogs { children }
    }
}

impl Drop for CpuHogs {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
