//! The main job: write, crash, recover, verify.
//!
//! `cargo run --release --example demo [-- DIR] [--kills N] [--seed S]`
//!
//! A child process (this program, re-run with `--child`) writes a split-heavy workload in durable
//! batches and prints `ACK n` after each batch is acknowledged. The parent kills it with SIGKILL
//! at a random moment, reopens the database (recovery), and verifies it against a model: every
//! acknowledged batch must be there, whole, and nothing that was never written. Then it starts
//! the next child on the same database. At the end it prints a report whose figures come from
//! the engine's own counters, and exits non-zero if any verification failed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mtrdb::{Db, WriteBatch};

/// The key every batch sets to its own number + 1, so a child knows where to resume.
const NEXT_BATCH_KEY: &[u8] = b"\x00next-batch";
const OPS_PER_BATCH: u64 = 250;

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Batch `n` of the workload: random keys from a key space that grows with `n` (splits all over
/// the tree), values of 20 to 400 bytes, one in ten operations a remove, and the resume marker.
fn batch_ops(seed: u64, n: u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut ops = Vec::with_capacity(OPS_PER_BATCH as usize + 1);
    let key_space = 2_000 + n * 120;
    for i in 0..OPS_PER_BATCH {
        let r = mix(seed ^ mix(n * 1_000_003 + i));
        let key = format!("user{:012}", r % key_space).into_bytes();
        if r.is_multiple_of(10) {
            ops.push((key, None));
        } else {
            let len = 20 + (r >> 20) as usize % 380;
            let value: Vec<u8> = (0..len).map(|j| (r >> (j % 56)) as u8 ^ j as u8).collect();
            ops.push((key, Some(value)));
        }
    }
    ops.push((NEXT_BATCH_KEY.to_vec(), Some((n + 1).to_le_bytes().to_vec())));
    ops
}

fn apply(model: &mut BTreeMap<Vec<u8>, Vec<u8>>, ops: &[(Vec<u8>, Option<Vec<u8>>)]) {
    for (key, value) in ops {
        match value {
            Some(value) => model.insert(key.clone(), value.clone()),
            None => model.remove(key),
        };
    }
}

fn next_batch(db: &Db) -> mtrdb::Result<u64> {
    Ok(db.get(NEXT_BATCH_KEY)?.and_then(|bytes| bytes.try_into().ok()).map_or(0, u64::from_le_bytes))
}

/// The child: write batches until killed.
fn child(dir: &Path, seed: u64) -> mtrdb::Result<()> {
    let db = Db::open(dir)?;
    let mut n = next_batch(&db)?;
    let stdout = std::io::stdout();
    loop {
        let mut batch = WriteBatch::new();
        for (key, value) in batch_ops(seed, n) {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            };
        }
        db.write(batch)?;
        let stats = db.stats();
        let mut out = stdout.lock();
        let splits = stats.leaf_splits + stats.branch_splits + stats.root_splits;
        let _ = writeln!(out, "ACK {n} {splits} {}", stats.mtrs);
        let _ = out.flush();
        n += 1;
    }
}

struct Args {
    dir: Option<PathBuf>,
    kills: u32,
    seed: u64,
}

fn parse_args() -> Result<(Args, Option<(PathBuf, u64)>), String> {
    let mut args = Args { dir: None, kills: 8, seed: 0x5eed };
    let mut raw = std::env::args().skip(1);
    let mut child = None;
    while let Some(arg) = raw.next() {
        match arg.as_str() {
            "--child" => {
                let dir = raw.next().ok_or("--child needs DIR SEED")?;
                let seed = raw.next().ok_or("--child needs DIR SEED")?.parse().map_err(|e| format!("seed: {e}"))?;
                child = Some((PathBuf::from(dir), seed));
            }
            "--kills" => {
                args.kills = raw.next().ok_or("--kills needs N")?.parse().map_err(|e| format!("--kills: {e}"))?
            }
            "--seed" => args.seed = raw.next().ok_or("--seed needs S")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "-h" | "--help" => return Err("usage: demo [DIR] [--kills N] [--seed S]".into()),
            other if !other.starts_with('-') => args.dir = Some(PathBuf::from(other)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((args, child))
}

#[derive(Default)]
struct Totals {
    acknowledged: u64,
    recovered_batches: u64,
    mtrs_replayed: u64,
    redo_bytes_replayed: u64,
    mtrs_discarded: u64,
    pages_repaired: u64,
    recovery_times: Vec<Duration>,
    writing_time: Duration,
    inserts: u64,
    splits: u64,
    mtrs: u64,
}

fn file_size(dir: &Path, name: &str) -> u64 {
    std::fs::metadata(dir.join(name)).map_or(0, |m| m.len())
}

fn main() -> ExitCode {
    let (args, child_mode) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if let Some((dir, seed)) = child_mode {
        return match child(&dir, seed) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("child: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let _temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            _temp = tempfile::Builder::new().prefix("mtrdb-demo-").tempdir().expect("a temporary directory");
            _temp.path().to_path_buf()
        }
    };
    match run(&dir, &args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path, args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    println!("mtrdb demo: {} SIGKILLs of a writing child, database in {}", args.kills, dir.display());
    let exe = std::env::current_exe()?;
    let mut model = BTreeMap::new();
    let mut model_batches = 0u64;
    let mut totals = Totals::default();
    let mut failures = 0u32;
    let mut previous_present = 0u64;
    let bar = ProgressBar::new(u64::from(args.kills));
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} kills  {msg}")?);
    for round in 0..args.kills {
        let mut child = Command::new(&exe)
            .args(["--child", &dir.display().to_string(), &args.seed.to_string()])
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        let (sender, receiver) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        // Kill at a random moment: sometimes at once, mostly in the middle of a run of batches.
        let delay = Duration::from_millis(match mix(args.seed ^ u64::from(round)) % 10 {
            0 => 5,
            r => 150 + r * 120,
        });
        let started = Instant::now();
        std::thread::sleep(delay);
        child.kill()?;
        child.wait()?;
        totals.writing_time += started.elapsed();
        let _ = reader.join();
        let mut last_ack: Option<u64> = None;
        for line in receiver.try_iter() {
            let mut words = line.split_whitespace().skip(1);
            let parse = |word: Option<&str>| word.and_then(|w| w.parse::<u64>().ok()).unwrap_or(0);
            let (n, splits, mtrs) = (parse(words.next()), parse(words.next()), parse(words.next()));
            last_ack = Some(n);
            totals.acknowledged += 1;
            totals.inserts += OPS_PER_BATCH;
            totals.splits = totals.splits.max(splits);
            totals.mtrs = totals.mtrs.max(mtrs);
        }
        // Recover and verify.
        let db = Db::open(dir)?;
        let report = db.recovery_report().clone();
        totals.recovery_times.push(report.duration);
        totals.mtrs_replayed += report.mtrs_replayed;
        totals.redo_bytes_replayed += report.redo_bytes_replayed;
        totals.mtrs_discarded += report.mtrs_discarded;
        totals.pages_repaired += report.pages_repaired;
        let present = next_batch(&db)?;
        while model_batches < present {
            apply(&mut model, &batch_ops(args.seed, model_batches));
            model_batches += 1;
        }
        totals.recovered_batches = present;
        let mut verdict = Vec::new();
        // Every acknowledged batch survives; beyond them at most the one batch in flight.
        let floor = last_ack.map_or(previous_present, |acked| acked + 1);
        if present < floor {
            verdict.push(format!("{floor} batches were acknowledged but only {present} survived"));
        }
        if present > floor + 1 {
            verdict.push(format!("{present} batches present, but at most {} were ever written", floor + 1));
        }
        previous_present = present;
        let check = db.check()?;
        let mut found = BTreeMap::new();
        for entry in db.iter() {
            let (key, value) = entry?;
            found.insert(key.to_vec(), value.to_vec());
        }
        if found != model {
            verdict.push(format!(
                "contents differ from the model after {present} batches ({} vs {} entries)",
                found.len(),
                model.len()
            ));
        }
        if check.entries != model.len() as u64 {
            verdict.push(format!("check counted {} entries, the model has {}", check.entries, model.len()));
        }
        db.close()?;
        if verdict.is_empty() {
            bar.set_message(format!(
                "recovered {present} batches ({} mtrs replayed) in {:.1?}",
                report.mtrs_replayed, report.duration
            ));
        } else {
            failures += 1;
            bar.println(format!("round {round}: VERIFICATION FAILED: {}", verdict.join("; ")));
        }
        bar.inc(1);
    }
    bar.finish();
    let db = Db::open(dir)?;
    let check = db.check()?;
    db.close()?;
    let mut times = totals.recovery_times.clone();
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let max = times.last().copied().unwrap_or_default();
    println!();
    println!("batches acknowledged   {:>12}   ({} operations each)", totals.acknowledged, OPS_PER_BATCH + 1);
    println!("batches recovered      {:>12}   (all acknowledged ones, whole)", totals.recovered_batches);
    println!(
        "mtrs replayed          {:>12}   ({} discarded: uncommitted tails)",
        totals.mtrs_replayed, totals.mtrs_discarded
    );
    println!("redo replayed          {:>12}   bytes", totals.redo_bytes_replayed);
    println!("pages repaired         {:>12}   (from the doublewrite file)", totals.pages_repaired);
    println!("recovery time          {:>12.1?}   median, {max:.1?} max", median);
    println!(
        "durable inserts/s      {:>12.0}   (child writers, every batch fsynced)",
        totals.inserts as f64 / totals.writing_time.as_secs_f64()
    );
    println!("splits (last child)    {:>12}   over {} mtrs", totals.splits, totals.mtrs);
    println!(
        "tree                   {:>12}   entries, height {}, {} pages",
        check.entries, check.height, check.page_count
    );
    println!(
        "files                  {:>12}   bytes data, {} log, {} doublewrite",
        file_size(dir, "data.mtrdb"),
        file_size(dir, "redo.log"),
        file_size(dir, "dblwr")
    );
    if failures == 0 {
        println!("verification: OK after every one of {} kills", args.kills);
        Ok(true)
    } else {
        println!("verification: FAILED in {failures} of {} rounds", args.kills);
        Ok(false)
    }
}
