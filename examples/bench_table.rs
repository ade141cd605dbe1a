//! The benchmark table: every workload for every store, several runs, one markdown table of
//! medians with the ratio mtrdb/peer in each peer's cell.
//!
//! ```text
//! cargo run --release --example bench_table                 # full: 3 runs, 1M-key workloads
//!                                                           # (about 11 minutes here)
//! cargo run --release --example bench_table -- --quick      # quick: 1 run, small sizes
//! cargo run --release --example bench_table -- --keys 4000000 --stores mtrdb,canopydb
//!                                                           # 4M-key workloads, two stores
//! options: --runs N   --random-runs N (of the random inserts, the longest: default = runs)
//!          --keys N (keys of the random inserts, the sequential inserts and both bulk loads,
//!                    so also of the store the reads run on; default 1M, quick 100k and 200k;
//!                    the recovery workload keeps its own size)
//!          --stores mtrdb,redb,...   --dir PATH (default target/bench-table)
//!          --raw (also every figure of every child, e.g. split counts, checkpoints, pages written)
//! ```
//! `MTRDB_BENCH_QUICK=1` is the same as `--quick`.
//!
//! Each measurement runs in a child process (this program again, with `--child`), so stores do
//! not share a heap, a page cache budget or background threads, and each child's peak resident
//! memory (`VmHWM`) is its own. The workloads are those of `benches/common/`, one
//! implementation per store shared with the criterion benches. What each row measures:
//!
//! - **random / sequential inserts**: 16-byte keys, 100-byte values, durable batches of 1,000,
//!   into an empty store. The random run is also the write-amplification run: the block
//!   device's own count of sectors written (`/proc/diskstats`, field 10, for the device that
//!   holds the directory) before it (after `sync -f`) and after it (after a clean close and
//!   `sync -f`), divided by the user bytes (keys + values). Space amplification: the bytes the
//!   files occupy on disk (`st_blocks`) after the close, over the user bytes.
//! - **bulk load**: the same entries in durable transactions of 100,000 keys into an empty
//!   store, then a clean close (deferred write-back counted); peak memory is the child's
//!   `VmHWM` right after it.
//! - **durable single commits**: one key per transaction from 1, 2, 4 and 8 threads for a fixed
//!   time; the baseline is one `pwrite` + `fdatasync` per commit on a preallocated plain file,
//!   measured in the same child just before (sync latency drifts with the machine's load). With
//!   1 thread every commit (and every baseline commit) is timed: the p50 rows are the medians of
//!   those latencies, in µs.
//! - **every core busy**: the same 1-thread commits (and the baseline before them) in a child of
//!   their own while other processes keep every core busy (`CpuHogs`: one CPU-bound `sh` loop
//!   per core, as on a server whose CPUs are taken by other work): commits/s and p50 latency.
//! - **point gets, range scans and the full scan** run on the store the random bulk load built
//!   (reopened): gets of present keys from 1 and 4 threads, scans of 10 entries from a present
//!   key, then one scan of every entry in key order (entries and key + value bytes counted, the
//!   count checked against the keys loaded), entries/s.
//! - **recovery**: random keys in durable batches of 1,000 with mtrdb's background checkpoints
//!   off (nothing checkpointed), files copied while the store is open (a crash image), then the
//!   time to open the copy and read one key. mtrdb's redo MB/s and mtrs/s come from its
//!   `RecoveryReport` (bytes and mtrs replayed over the report's duration).
//!
//! Device counters see every process writing to the disk: run on a quiet machine.

#[path = "../benches/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use common::{KeyOrder, StoreKind, Until, BATCH_KEYS, BULK_TXN_KEYS, ENTRY_BYTES};

/// Workload sizes.
#[derive(Clone, Debug)]
struct Sizes {
    runs: usize,
    /// Runs of the random-insert workload (the write-amplification run), which takes about
    /// half of the full mode's time: at most `runs`.
    random_runs: usize,
    random_keys: u64,
    sequential_keys: u64,
    bulk_keys: u64,
    commit_seconds: f64,
    read_seconds: f64,
    recovery_keys: u64,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            runs: 3,
            random_runs: 3,
            random_keys: 1_000_000,
            sequential_keys: 1_000_000,
            bulk_keys: 1_000_000,
            commit_seconds: 1.0,
            read_seconds: 1.0,
            recovery_keys: 100_000,
        }
    }

    fn quick() -> Sizes {
        Sizes {
            runs: 1,
            random_runs: 1,
            random_keys: 100_000,
            sequential_keys: 100_000,
            bulk_keys: 200_000,
            commit_seconds: 0.5,
            read_seconds: 0.5,
            recovery_keys: 50_000,
        }
    }
}

/// One measurement's figures, by name.
type Figures = BTreeMap<String, f64>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    parent(&args)
}

// ---------------------------------------------------------------------------------------------
// The parent: runs the children, prints the table.

const WORKLOADS: [&str; 7] =
    ["random", "sequential", "bulk-sorted", "bulk-random-reads", "commits", "busy-commits", "recovery"];

fn parent(args: &[String]) -> ExitCode {
    let mut quick = std::env::var("MTRDB_BENCH_QUICK").is_ok_and(|v| v != "0");
    let mut stores = StoreKind::ALL.to_vec();
    let mut root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-table"));
    let mut runs_override = None;
    let mut random_runs_override = None;
    let mut keys_override = None;
    let mut raw = false;
    let mut index = 0;
    while index < args.len() {
        let value = args.get(index + 1);
        match (args[index].as_str(), value) {
            ("--quick", _) => {
                quick = true;
                index += 1;
                continue;
            }
            ("--raw", _) => {
                raw = true;
                index += 1;
                continue;
            }
            ("--runs", Some(value)) => runs_override = Some(value.parse().expect("--runs N")),
            ("--random-runs", Some(value)) => random_runs_override = Some(value.parse().expect("--random-runs N")),
            ("--keys", Some(value)) => {
                let keys: u64 = value.parse().expect("--keys N");
                assert!(keys > 0, "--keys N needs at least one key");
                keys_override = Some(keys);
            }
            ("--stores", Some(value)) => {
                stores = value
                    .split(',')
                    .map(|name| StoreKind::from_name(name).unwrap_or_else(|| panic!("unknown store {name:?}")))
                    .collect();
            }
            ("--dir", Some(value)) => root = PathBuf::from(value),
            (other, _) => {
                eprintln!("unknown or incomplete option {other:?}; see the module doc");
                return ExitCode::from(2);
            }
        }
        index += 2;
    }
    let mut sizes = if quick { Sizes::quick() } else { Sizes::full() };
    if let Some(runs) = runs_override {
        sizes.runs = runs;
    }
    if let Some(random_runs) = random_runs_override {
        sizes.random_runs = random_runs;
    }
    if let Some(keys) = keys_override {
        sizes.random_keys = keys;
        sizes.sequential_keys = keys;
        sizes.bulk_keys = keys;
    }
    sizes.runs = sizes.runs.max(1);
    sizes.random_runs = sizes.random_runs.clamp(1, sizes.runs);
    std::fs::create_dir_all(&root).expect("create the benchmark root");
    let device = common::block_device_name(&root).unwrap_or_else(|| "unknown".into());
    eprintln!("bench_table: {} mode, {sizes:?}, files under {} (device {device})", mode(quick), root.display());

    let started = Instant::now();
    let mut results: BTreeMap<(String, String), Vec<Figures>> = BTreeMap::new();
    let mut failures = Vec::new();
    for run in 0..sizes.runs {
        for workload in WORKLOADS {
            if workload == "random" && run >= sizes.random_runs {
                continue;
            }
            for &store in &stores {
                let child_started = Instant::now();
                match run_child(&root, workload, store.name(), &sizes) {
                    Ok(figures) => {
                        results.entry((workload.into(), store.name().into())).or_default().push(figures);
                    }
                    Err(error) => failures.push(format!("{workload} {}: {error}", store.name())),
                }
                eprintln!(
                    "run {}/{}: {workload:<17} {:<13} {:>6.1} s (total {:.0} s)",
                    run + 1,
                    sizes.runs,
                    store.name(),
                    child_started.elapsed().as_secs_f64(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    print_table(&results, &stores, &sizes, quick, &device, started.elapsed());
    if raw {
        print_raw(&results);
    }
    for failure in &failures {
        println!("FAILED: {failure}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn mode(quick: bool) -> &'static str {
    if quick {
        "quick"
    } else {
        "full"
    }
}

fn run_child(root: &Path, workload: &str, store: &str, sizes: &Sizes) -> Result<Figures, String> {
    let dir = common::bench_dir(root, &format!("{workload}-{store}-"));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("--child")
        .arg(workload)
        .arg(store)
        .arg(dir.path())
        .args([
            sizes.random_keys.to_string(),
            sizes.sequential_keys.to_string(),
            sizes.bulk_keys.to_string(),
            sizes.commit_seconds.to_string(),
            sizes.read_seconds.to_string(),
            sizes.recovery_keys.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut figures = Figures::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let Some(rest) = line.strip_prefix("RESULT ") else { continue };
        for pair in rest.split_whitespace() {
            if let Some((name, value)) = pair.split_once('=') {
                figures.insert(name.to_string(), value.parse().map_err(|_| format!("bad figure {pair:?}"))?);
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("child exited with {status}"));
    }
    Ok(figures)
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 })
}

/// One row of the table: which figure of which workload, and how to print it.
struct Row {
    label: String,
    workload: &'static str,
    figure: &'static str,
    format: Format,
    mtrdb_only: bool,
    /// Whether peer cells carry the ratio mtrdb/peer.
    ratio: bool,
    /// The figure of the same workload that mtrdb's cell is compared with (`× baseline`).
    baseline: Option<&'static str>,
}

#[derive(Copy, Clone)]
enum Format {
    /// A rate or count: thousands separators, no decimals.
    Count,
    /// A ratio or a small quantity: two decimals.
    Decimal,
    /// Bytes shown as MiB.
    Mebibytes,
}

fn format_value(value: f64, format: Format) -> String {
    match format {
        Format::Count => {
            let digits = format!("{:.0}", value.max(0.0));
            let mut out = String::new();
            for (index, digit) in digits.chars().enumerate() {
                if index > 0 && (digits.len() - index) % 3 == 0 {
                    out.push(',');
                }
                out.push(digit);
            }
            out
        }
        Format::Decimal => format!("{value:.2}"),
        Format::Mebibytes => format!("{:.0} MiB", value / (1024.0 * 1024.0)),
    }
}

fn rows(sizes: &Sizes) -> Vec<Row> {
    let keys = |n: u64| {
        if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
            format!("{}M", n / 1_000_000)
        } else if n >= 1_000 && n.is_multiple_of(1_000) {
            format!("{}k", n / 1_000)
        } else {
            format_value(n as f64, Format::Count)
        }
    };
    let row = |label: String, workload, figure, format| Row {
        label,
        workload,
        figure,
        format,
        mtrdb_only: false,
        ratio: true,
        baseline: None,
    };
    let mtrdb_row =
        |label: String, workload, figure, format| Row { mtrdb_only: true, ..row(label, workload, figure, format) };
    // A commit row: mtrdb's cell also shows its ratio to the baseline figure of the same run.
    let commit_row = |label: &str, workload, figure, baseline| Row {
        baseline: Some(baseline),
        ..row(label.into(), workload, figure, Format::Count)
    };
    // The baseline itself: no ratios.
    let baseline_row =
        |label: &str, workload, figure| Row { ratio: false, ..row(label.into(), workload, figure, Format::Count) };
    vec![
        row(
            format!("random inserts, durable batches of 1,000 ({}), keys/s", keys(sizes.random_keys)),
            "random",
            "keys_per_s",
            Format::Count,
        ),
        mtrdb_row("… splits/s (leaf + branch + root, from `stats()`)".into(), "random", "splits_per_s", Format::Count),
        mtrdb_row("… splits per 1,000 keys".into(), "random", "splits_per_1000_keys", Format::Decimal),
        row(
            format!("sequential inserts, durable batches of 1,000 ({}), keys/s", keys(sizes.sequential_keys)),
            "sequential",
            "keys_per_s",
            Format::Count,
        ),
        mtrdb_row("… splits/s".into(), "sequential", "splits_per_s", Format::Count),
        mtrdb_row("… splits per 1,000 keys".into(), "sequential", "splits_per_1000_keys", Format::Decimal),
        row(
            format!("bulk load, sorted ({}, 100k-key txns + close), keys/s", keys(sizes.bulk_keys)),
            "bulk-sorted",
            "keys_per_s",
            Format::Count,
        ),
        row(
            format!("bulk load, random ({}, 100k-key txns + close), keys/s", keys(sizes.bulk_keys)),
            "bulk-random-reads",
            "keys_per_s",
            Format::Count,
        ),
        mtrdb_row("… splits/s (random bulk load)".into(), "bulk-random-reads", "splits_per_s", Format::Count),
        baseline_row(
            "baseline: pwrite + fdatasync per commit, 1 thread, commits/s (measured in each store's run)",
            "commits",
            "baseline_commits_per_s",
        ),
        baseline_row("… baseline p50 latency, µs", "commits", "baseline_p50_us"),
        commit_row(
            "durable single commits, 1 thread, commits/s",
            "commits",
            "commits_1_per_s",
            "baseline_commits_per_s",
        ),
        commit_row("… 1 thread, p50 latency, µs", "commits", "quiet_commit_p50_us", "baseline_p50_us"),
        commit_row(
            "durable single commits, 2 threads, commits/s",
            "commits",
            "commits_2_per_s",
            "baseline_commits_per_s",
        ),
        commit_row(
            "durable single commits, 4 threads, commits/s",
            "commits",
            "commits_4_per_s",
            "baseline_commits_per_s",
        ),
        commit_row(
            "durable single commits, 8 threads, commits/s",
            "commits",
            "commits_8_per_s",
            "baseline_commits_per_s",
        ),
        baseline_row(
            "every core busy: baseline pwrite + fdatasync per commit, commits/s",
            "busy-commits",
            "busy_baseline_commits_per_s",
        ),
        baseline_row("… baseline p50 latency, µs", "busy-commits", "busy_baseline_p50_us"),
        commit_row(
            "every core busy: durable single commits, 1 thread, commits/s",
            "busy-commits",
            "busy_commits_per_s",
            "busy_baseline_commits_per_s",
        ),
        commit_row("… p50 latency, µs", "busy-commits", "busy_commit_p50_us", "busy_baseline_p50_us"),
        row(
            format!("point gets, 1 thread ({} keys), gets/s", keys(sizes.bulk_keys)),
            "bulk-random-reads",
            "gets_1_per_s",
            Format::Count,
        ),
        row("point gets, 4 threads, gets/s".into(), "bulk-random-reads", "gets_4_per_s", Format::Count),
        row("range scans of 10, forward, scans/s".into(), "bulk-random-reads", "scans_forward_per_s", Format::Count),
        row("range scans of 10, backward, scans/s".into(), "bulk-random-reads", "scans_backward_per_s", Format::Count),
        row(
            format!("full ordered scan, every entry once ({} keys, 1 thread), entries/s", keys(sizes.bulk_keys)),
            "bulk-random-reads",
            "full_scan_entries_per_s",
            Format::Count,
        ),
        row(
            format!("recovery: reopen after crash ({} keys unreplayed), user MB/s", keys(sizes.recovery_keys)),
            "recovery",
            "user_mb_per_s",
            Format::Decimal,
        ),
        mtrdb_row("recovery: redo replayed, MB/s".into(), "recovery", "redo_mb_per_s", Format::Decimal),
        mtrdb_row("recovery: mtrs replayed per second".into(), "recovery", "mtrs_per_s", Format::Count),
        row(
            format!("device bytes written per user byte (random, {})", keys(sizes.random_keys)),
            "random",
            "device_bytes_per_user_byte",
            Format::Decimal,
        ),
        row(
            "space amplification (file bytes on disk / user bytes)".into(),
            "random",
            "space_amplification",
            Format::Decimal,
        ),
        row(
            "bulk load (random) peak memory (VmHWM)".into(),
            "bulk-random-reads",
            "peak_resident_bytes",
            Format::Mebibytes,
        ),
    ]
}

fn print_table(
    results: &BTreeMap<(String, String), Vec<Figures>>,
    stores: &[StoreKind],
    sizes: &Sizes,
    quick: bool,
    device: &str,
    elapsed: Duration,
) {
    let value = |workload: &str, store: &str, figure: &str| {
        let runs = results.get(&(workload.to_string(), store.to_string()))?;
        median(runs.iter().filter_map(|figures| figures.get(figure).copied()).collect())
    };
    println!();
    println!(
        "mtrdb benchmark table: {} mode, median of {} run(s) ({} for the random inserts, write and space \
         amplification), {:.0} s in all; device `{device}`. Peer cells: value (mtrdb/peer).",
        mode(quick),
        sizes.runs,
        sizes.random_runs,
        elapsed.as_secs_f64()
    );
    println!();
    let mut header = String::from("| workload |");
    let mut rule = String::from("|---|");
    for store in stores {
        let note = if store.durable_commits() { "" } else { " †" };
        header.push_str(&format!(" {}{note} |", store.name()));
        rule.push_str("---:|");
    }
    println!("{header}");
    println!("{rule}");
    for row in rows(sizes) {
        let mut line = format!("| {} |", row.label);
        let mtrdb = value(row.workload, StoreKind::Mtrdb.name(), row.figure);
        for store in stores {
            let cell = if row.mtrdb_only && *store != StoreKind::Mtrdb {
                "—".to_string()
            } else {
                match value(row.workload, store.name(), row.figure) {
                    None => "n/a".to_string(),
                    Some(v) => {
                        let ratio = if !row.ratio {
                            None
                        } else if *store == StoreKind::Mtrdb {
                            let baseline = row.baseline.and_then(|figure| value(row.workload, store.name(), figure));
                            baseline.map(|b| format!("{:.2}× baseline", v / b))
                        } else {
                            mtrdb.filter(|_| v > 0.0).map(|m| format!("{:.2}×", m / v))
                        };
                        match ratio {
                            Some(ratio) => format!("{} ({ratio})", format_value(v, row.format)),
                            None => format_value(v, row.format),
                        }
                    }
                }
            };
            line.push_str(&format!(" {cell} |"));
        }
        println!("{line}");
    }
    println!();
    println!(
        "Keys 16 B, values 100 B (incompressible). Every commit durable (fsynced) before it returns, except † \
         (SQLite WAL with synchronous=NORMAL syncs only at checkpoints; shown for reference). Rates: higher is \
         better; latencies, bytes per user byte, space amplification and memory: lower is better. Ratios are \
         mtrdb/peer (mtrdb's commit cells: mtrdb/baseline of the same run). \
         Device bytes come from the disk's own counter, which counts every process on the machine. Peak memory \
         (VmHWM) includes the pages of a memory-mapped file that the process touched."
    );
}

/// Every figure of every workload and store, medians, one line each.
fn print_raw(results: &BTreeMap<(String, String), Vec<Figures>>) {
    println!();
    for ((workload, store), runs) in results {
        let mut names: Vec<&String> = runs.iter().flat_map(|figures| figures.keys()).collect();
        names.sort();
        names.dedup();
        let figures: Vec<String> = names
            .into_iter()
            .filter_map(|name| {
                let values = runs.iter().filter_map(|figures| figures.get(name).copied()).collect();
                median(values).map(|value| format!("{name}={value:.4}"))
            })
            .collect();
        println!("raw {workload} {store} ({} runs): {}", runs.len(), figures.join(" "));
    }
}

// ---------------------------------------------------------------------------------------------
// The children: one workload on one store, figures on stdout as `RESULT name=value ...`.

fn child(args: &[String]) -> ExitCode {
    let [workload, store, dir, random_keys, sequential_keys, bulk_keys, commit_seconds, read_seconds, recovery_keys] =
        args
    else {
        eprintln!("--child WORKLOAD STORE DIR RANDOM SEQUENTIAL BULK COMMIT_S READ_S RECOVERY");
        return ExitCode::from(2);
    };
    let number = |text: &String| text.parse::<f64>().expect("a number");
    let sizes = Sizes {
        runs: 1,
        random_runs: 1,
        random_keys: number(random_keys) as u64,
        sequential_keys: number(sequential_keys) as u64,
        bulk_keys: number(bulk_keys) as u64,
        commit_seconds: number(commit_seconds),
        read_seconds: number(read_seconds),
        recovery_keys: number(recovery_keys) as u64,
    };
    let dir = Path::new(dir);
    let kind = StoreKind::from_name(store).expect("a store name");
    let figures = match workload.as_str() {
        "random" => random_inserts(kind, dir, &sizes),
        "sequential" => batches(kind, dir, KeyOrder::Sequential, sizes.sequential_keys),
        "bulk-sorted" => bulk_load(kind, dir, KeyOrder::Sequential, &sizes, false),
        "bulk-random-reads" => bulk_load(kind, dir, KeyOrder::Random, &sizes, true),
        "commits" => commits(kind, dir, &sizes),
        "busy-commits" => busy_commits(kind, dir, &sizes),
        "recovery" => recovery(kind, dir, &sizes),
        other => {
            eprintln!("unknown workload {other}");
            return ExitCode::from(2);
        }
    };
    let line: Vec<String> = figures.iter().map(|(name, value)| format!("{name}={value}")).collect();
    println!("RESULT {}", line.join(" "));
    ExitCode::SUCCESS
}

fn store_dir(dir: &Path) -> PathBuf {
    dir.join("store")
}

fn add_splits(figures: &mut Figures, splits: Option<common::Splits>, keys: u64, elapsed: Duration) {
    if let Some(splits) = splits {
        figures.insert("leaf_splits".into(), splits.leaf as f64);
        figures.insert("branch_splits".into(), splits.branch as f64);
        figures.insert("root_splits".into(), splits.root as f64);
        figures.insert("splits_per_s".into(), splits.total() as f64 / elapsed.as_secs_f64());
        figures.insert("splits_per_1000_keys".into(), splits.total() as f64 * 1000.0 / keys as f64);
    }
}

/// Durable batches of 1,000 in `order`; keys/s and splits.
fn batches(kind: StoreKind, dir: &Path, order: KeyOrder, keys: u64) -> Figures {
    let store = common::open_store(kind, &store_dir(dir));
    let elapsed = common::insert_keys(store.as_ref(), order, 0, keys, BATCH_KEYS);
    let mut figures = Figures::new();
    figures.insert("keys_per_s".into(), keys as f64 / elapsed.as_secs_f64());
    add_splits(&mut figures, common::splits(store.as_ref()), keys, elapsed);
    store.close();
    figures
}

/// Random durable batches, with the device's bytes written around it (close and sync included)
/// and the space the files take afterwards.
fn random_inserts(kind: StoreKind, dir: &Path, sizes: &Sizes) -> Figures {
    let keys = sizes.random_keys;
    let store_dir = store_dir(dir);
    let store = common::open_store(kind, &store_dir);
    common::sync_filesystem(dir);
    // What the rest of the machine writes meanwhile, for judging the device figure.
    let idle_before = common::device_bytes_written(dir);
    std::thread::sleep(Duration::from_secs(1));
    let device_before = common::device_bytes_written(dir);
    let elapsed = common::insert_keys(store.as_ref(), KeyOrder::Random, 0, keys, BATCH_KEYS);
    let mut figures = Figures::new();
    figures.insert("keys_per_s".into(), keys as f64 / elapsed.as_secs_f64());
    if let (Some(idle_before), Some(before)) = (idle_before, device_before) {
        figures.insert("device_idle_bytes_per_s".into(), (before - idle_before) as f64);
    }
    add_splits(&mut figures, common::splits(store.as_ref()), keys, elapsed);
    if let Some(db) = store.mtrdb() {
        let stats = db.stats();
        figures.insert("checkpoints".into(), stats.checkpoints as f64);
        figures.insert("pages_written".into(), stats.pages_written as f64);
        figures.insert("redo_bytes".into(), stats.redo_bytes as f64);
    }
    store.close();
    common::sync_filesystem(dir);
    let user_bytes = keys * ENTRY_BYTES;
    if let (Some(before), Some(after)) = (device_before, common::device_bytes_written(dir)) {
        figures.insert("device_bytes".into(), (after - before) as f64);
        figures.insert("device_bytes_per_user_byte".into(), (after - before) as f64 / user_bytes as f64);
    }
    let allocated = common::allocated_bytes(&store_dir);
    figures.insert("allocated_bytes".into(), allocated as f64);
    figures.insert("space_amplification".into(), allocated as f64 / user_bytes as f64);
    figures
}

/// A bulk load in transactions of 100,000 keys plus a clean close; peak memory right after.
/// With `reads`, the store is reopened and the read workloads run on it.
fn bulk_load(kind: StoreKind, dir: &Path, order: KeyOrder, sizes: &Sizes, reads: bool) -> Figures {
    let keys = sizes.bulk_keys;
    let store_dir = store_dir(dir);
    let store = common::open_store(kind, &store_dir);
    let started = Instant::now();
    common::insert_keys(store.as_ref(), order, 0, keys, BULK_TXN_KEYS);
    let splits = common::splits(store.as_ref());
    store.close();
    let elapsed = started.elapsed();
    let mut figures = Figures::new();
    figures.insert("keys_per_s".into(), keys as f64 / elapsed.as_secs_f64());
    add_splits(&mut figures, splits, keys, elapsed);
    if let Some(peak) = common::peak_resident_bytes() {
        figures.insert("peak_resident_bytes".into(), peak as f64);
    }
    if reads {
        let store = common::open_store(kind, &store_dir);
        let until = Until::Elapsed(Duration::from_secs_f64(sizes.read_seconds));
        let per_s = |(operations, elapsed): (u64, Duration)| operations as f64 / elapsed.as_secs_f64();
        figures.insert("gets_1_per_s".into(), per_s(common::point_gets(store.as_ref(), keys, 1, until, 1)));
        figures.insert("gets_4_per_s".into(), per_s(common::point_gets(store.as_ref(), keys, 4, until, 2)));
        figures.insert("scans_forward_per_s".into(), per_s(common::range_scans(store.as_ref(), keys, true, until, 3)));
        figures
            .insert("scans_backward_per_s".into(), per_s(common::range_scans(store.as_ref(), keys, false, until, 4)));
        let (scanned, elapsed) = common::full_scan(store.as_ref());
        assert_eq!(scanned.entries, keys, "{}: the full scan missed entries", kind.name());
        figures.insert("full_scan_entries_per_s".into(), per_s((scanned.entries, elapsed)));
        figures.insert("full_scan_bytes".into(), scanned.bytes as f64);
        store.close();
    }
    figures
}

/// Durable single commits from 1, 2, 4 and 8 threads, each for a fixed time, right after the
/// baseline (one `pwrite` + `fdatasync` per commit on a plain preallocated file) in the same
/// process: the disk's sync latency drifts with the machine's load, so each store is compared
/// with the baseline of its own moment.
fn commits(kind: StoreKind, dir: &Path, sizes: &Sizes) -> Figures {
    let until = Until::Elapsed(Duration::from_secs_f64(sizes.commit_seconds));
    let mut figures = Figures::new();
    let timed = common::FsyncBaseline::create(dir).run_timed(until);
    insert_timed_commits(&mut figures, "baseline_commits_per_s", "baseline_p50_us", timed);
    let store = common::open_store(kind, &store_dir(dir));
    // One thread: every commit timed, for its median latency.
    let timed = common::durable_commits_timed(store.as_ref(), until);
    insert_timed_commits(&mut figures, "commits_1_per_s", "quiet_commit_p50_us", timed);
    for threads in [2usize, 4, 8] {
        let (commits, elapsed) = common::durable_commits(store.as_ref(), threads, until);
        figures.insert(format!("commits_{threads}_per_s"), commits as f64 / elapsed.as_secs_f64());
    }
    store.close();
    figures
}

/// Durable single commits from one thread, each timed, while other processes keep every core
/// busy (`CpuHogs`, one CPU-bound process per core), right after the baseline under the same
/// load; commits/s and the median latency of each.
fn busy_commits(kind: StoreKind, dir: &Path, sizes: &Sizes) -> Figures {
    let until = Until::Elapsed(Duration::from_secs_f64(sizes.commit_seconds));
    let mut baseline = common::FsyncBaseline::create(dir);
    let store = common::open_store(kind, &store_dir(dir));
    let hogs = common::CpuHogs::on_every_core();
    let mut figures = Figures::new();
    let timed = baseline.run_timed(until);
    insert_timed_commits(&mut figures, "busy_baseline_commits_per_s", "busy_baseline_p50_us", timed);
    let timed = common::durable_commits_timed(store.as_ref(), until);
    insert_timed_commits(&mut figures, "busy_commits_per_s", "busy_commit_p50_us", timed);
    drop(hogs);
    store.close();
    figures
}

/// Commits/s and the median latency in µs of a timed commit run, as `per_s` and `p50_us`.
fn insert_timed_commits(
    figures: &mut Figures,
    per_s: &str,
    p50_us: &str,
    (commits, elapsed, latencies): (u64, Duration, common::Latencies),
) {
    figures.insert(per_s.into(), commits as f64 / elapsed.as_secs_f64());
    if let Some(p50) = latencies.p50() {
        figures.insert(p50_us.into(), p50.as_secs_f64() * 1e6);
    }
}

/// A crash image, then one timed reopen of a copy of it.
fn recovery(kind: StoreKind, dir: &Path, sizes: &Sizes) -> Figures {
    let image = common::make_crash_image(kind, &dir.join("live"), &dir.join("image"), sizes.recovery_keys);
    let recovery = common::recover(kind, &image, &dir.join("scratch"));
    let mut figures = Figures::new();
    figures.insert("reopen_s".into(), recovery.elapsed.as_secs_f64());
    figures.insert("user_mb_per_s".into(), image.user_bytes as f64 / 1e6 / recovery.elapsed.as_secs_f64());
    if let Some(report) = recovery.report {
        // The redo pass alone; reopen_s above is the whole open (repair, redo, write-back).
        let seconds = report.redo_duration.as_secs_f64();
        figures.insert("redo_bytes".into(), report.redo_bytes_replayed as f64);
        figures.insert("mtrs".into(), report.mtrs_replayed as f64);
        figures.insert("redo_mb_per_s".into(), report.redo_bytes_replayed as f64 / 1e6 / seconds);
        figures.insert("mtrs_per_s".into(), report.mtrs_replayed as f64 / seconds);
        figures.insert("report_duration_s".into(), seconds);
    }
    figures
}
