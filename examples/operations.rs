//! The operations figures of the README: compaction after most keys were removed, and an online
//! backup against a plain copy of the closed files, measured in the same run.
//!
//! ```text
//! cargo run --release --example operations                     # 1M keys (about a minute here)
//! cargo run --release --example operations -- --keys 200000 --dir /path/on/the/disk/to/test
//! ```
//!
//! 1. Loads `--keys` random 16-byte keys with 100-byte values (durable batches of 1,000), removes
//!    90% of them (chosen at random), checkpoints, and runs `Db::compact`: the data file's
//!    length before and after, the pages the trees hold (`check()`: leaves, branches and overflow
//!    pages, plus the meta page: the floor, since compaction moves pages and does not merge
//!    them), the ratio, the time and the longest pause.
//! 2. Loads `--keys` keys again into a new database, closes and reopens it, then
//!    `Db::backup_to` a new directory (MB/s of the data file), then `cp` of the closed
//!    database's files to another directory followed by `sync` of the copies (the same
//!    durability as the backup's), MB/s; each the median of 3.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use mtrdb::{Db, WriteBatch};

struct Args {
    keys: u64,
    dir: PathBuf,
}

fn args() -> Args {
    let mut args = Args { keys: 1_000_000, dir: PathBuf::from("target/operations") };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--keys" => args.keys = it.next().and_then(|v| v.parse().ok()).expect("--keys N"),
            "--dir" => args.dir = PathBuf::from(it.next().expect("--dir PATH")),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// SplitMix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn load(db: &Db, keys: u64, seed: u64) -> Vec<[u8; 16]> {
    let mut rng = Rng(seed);
    let mut all = Vec::with_capacity(keys as usize);
    let value = [7u8; 100];
    for start in (0..keys).step_by(1000) {
        let mut batch = WriteBatch::new();
        for _ in start..(start + 1000).min(keys) {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&rng.next().to_le_bytes());
            key[8..].copy_from_slice(&rng.next().to_le_bytes());
            batch.insert(key, value);
            all.push(key);
        }
        db.write(batch).unwrap();
    }
    all
}

fn fresh(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir.to_path_buf()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let args = args();
    std::fs::create_dir_all(&args.dir).unwrap();

    // 1. Compaction.
    let dir = fresh(&args.dir.join("compact"));
    let db = Db::open(&dir).unwrap();
    let started = Instant::now();
    let keys = load(&db, args.keys, 1);
    let loaded = started.elapsed();
    let mut rng = Rng(2);
    for chunk in keys.chunks(1000) {
        let mut batch = WriteBatch::new();
        for key in chunk {
            if !rng.next().is_multiple_of(10) {
                batch.remove(key);
            }
        }
        db.write(batch).unwrap();
    }
    db.checkpoint().unwrap();
    let before = std::fs::metadata(dir.join("data.mtrdb")).unwrap().len();
    let report = db.compact().unwrap();
    let after = std::fs::metadata(dir.join("data.mtrdb")).unwrap().len();
    let check = db.check().unwrap();
    let floor = (check.leaf_pages + check.branch_pages + check.overflow_pages + 1) * db.page_size() as u64;
    println!(
        "compaction: {} keys loaded in {:.1} s, 90% removed; {} entries left",
        args.keys,
        loaded.as_secs_f64(),
        check.entries
    );
    println!(
        "  data file {:.1} MiB -> {:.1} MiB ({:.1}x smaller); the trees hold {:.1} MiB: file/floor = {:.3}",
        mib(before),
        mib(after),
        before as f64 / after as f64,
        mib(floor),
        after as f64 / floor as f64
    );
    println!(
        "  leaf fill {:.0}%; {} pages moved in {} passes, {:.2} s; longest pause {:.1} ms",
        check.fill_by_level.first().copied().unwrap_or(0.0) * 100.0,
        report.pages_moved,
        report.passes,
        report.duration.as_secs_f64(),
        report.longest_pause.as_secs_f64() * 1e3
    );
    db.close().unwrap();

    // 2. Backup against cp.
    let source = fresh(&args.dir.join("source"));
    {
        let db = Db::open(&source).unwrap();
        load(&db, args.keys, 3);
        db.close().unwrap();
    }
    let data_bytes = std::fs::metadata(source.join("data.mtrdb")).unwrap().len();
    let db = Db::open(&source).unwrap();
    let (mut backup_rates, mut pauses, mut cp_rates) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..3 {
        let target = fresh(&args.dir.join(format!("backup-{run}")));
        let report = db.backup_to(&target, |_| {}).unwrap();
        backup_rates.push(report.bytes as f64 / report.duration.as_secs_f64() / 1e6);
        pauses.push(report.longest_pause.as_secs_f64() * 1e3);
    }
    db.close().unwrap();
    for run in 0..3 {
        let target = fresh(&args.dir.join(format!("cp-{run}")));
        std::fs::create_dir_all(&target).unwrap();
        let started = Instant::now();
        let files: Vec<PathBuf> = ["data.mtrdb", "redo.log", "dblwr"].iter().map(|name| source.join(name)).collect();
        let status = Command::new("cp").args(&files).arg(&target).status().unwrap();
        assert!(status.success());
        let copies: Vec<PathBuf> = ["data.mtrdb", "redo.log", "dblwr"].iter().map(|name| target.join(name)).collect();
        let status = Command::new("sync").args(&copies).status().unwrap();
        assert!(status.success());
        cp_rates.push(data_bytes as f64 / started.elapsed().as_secs_f64() / 1e6);
    }
    let (backup, cp) = (median(backup_rates), median(cp_rates));
    println!(
        "backup: data file {:.1} MiB; backup_to {:.0} MB/s (median of 3, longest writer pause {:.2} ms); \
         cp + sync of the closed files {:.0} MB/s; ratio {:.2}",
        mib(data_bytes),
        backup,
        median(pauses),
        cp,
        backup / cp
    );
    for name in ["compact", "source", "backup-0", "backup-1", "backup-2", "cp-0", "cp-1", "cp-2"] {
        let _ = std::fs::remove_dir_all(args.dir.join(name));
    }
}
