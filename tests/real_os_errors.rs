//! Real operating-system write failures, not simulated ones: a file-size limit (`EFBIG`) and a
//! full file system (`ENOSPC`, a small tmpfs).
//!
//! The fault-injecting storage (`tests/injected_io_errors.rs`) proves the engine's handling of an
//! error at every I/O boundary, but only through the `StorageFile` trait as the simulation
//! implements it. This test runs the real `DirStorage` against the real kernel, where a failing
//! `pwrite` may first write part of its buffer (up to the limit or the last free block), where
//! `ftruncate` can fail while preallocating the log, and where the data file is memory-mapped.
//!
//! A child process (this test binary, running the ignored test `child_writer`) opens a database
//! and writes durable batches (`Durability::Immediate`, every batch also advancing a marker key,
//! as in `crash_sigkill.rs`), printing `ACK n` after each `write` returns, until a write (or the
//! open, or the final `close`) fails. It prints the error's `Display`, its variant, and the
//! `raw_os_error()` of the `std::io::Error` among its sources, then retries the failed write a few
//! times. The parent asserts:
//! - the child exited normally (no panic, no signal such as SIGXFSZ or SIGBUS) and did not hang;
//! - the first error is a typed `mtrdb::Error` whose message names the OS error (`os error 27` /
//!   `os error 28`), and every later write fails with the poisoned error (none succeeds);
//! - where the failing I/O is necessarily the failing call's own (creating, reopening, the redo
//!   log flush of a write's own commit, `close`), its error carries the `std::io::Error` among its
//!   `source()`s with that `raw_os_error()`, so a program can tell a full disk from other
//!   failures (a failure in the background checkpoint thread reaches the next write only as the
//!   poisoned error's text, which is accepted there); these are reported after all scenarios ran;
//! - `close` after a failure reports an error rather than a clean shutdown;
//! - reopened without the limit (or after growing the tmpfs), the database opens, `check()`
//!   passes, and its contents equal the model after exactly the acknowledged batches, or one
//!   more (the batch whose write failed); it then accepts and keeps a new batch.
//!
//! The limits and sizes are chosen so that the failure lands in different places: while creating
//! the database (the log's preallocation; on the tmpfs the first doublewrite), in the checkpoint
//! slot written by reopening, in the redo log's writes, in the data file's growth at a (background)
//! checkpoint, in the doublewrite file, in the final checkpoint of `close` (once with the limit in
//! the middle of a changed leaf, so the kernel tears that page in place and recovery must restore
//! it from the doublewrite file), and in the write-back of recovery at open. Each
//! scenario names where it is meant to fail and the test checks that it did, so a change that
//! moves the failure elsewhere is noticed rather than silently leaving a path untested.
//!
//! Guards against regressions such as: an I/O error that panics or aborts (an `unwrap` on a real
//! write, an unhandled SIGXFSZ), a failure that is not sticky (a later write succeeding on top of
//! lost data), a partially written page or log block at the limit that recovery cannot cope with,
//! an acknowledged batch lost, a half-created database that will not open again, or an error
//! message that no longer says what the OS refused.
//!
//! The `EFBIG` part starts the child through `sh -c 'ulimit -f BLOCKS; trap "" XFSZ; exec ...'`
//! (no extra dependency); the block size of `ulimit -f` (512 in dash and POSIX sh, 1024 in bash)
//! is probed first, and the child checks its limit and that SIGXFSZ is ignored. The `ENOSPC` part
//! needs root and permission to mount a tmpfs; otherwise it prints `skipped: ...` and passes.

#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::child::{self_command, test_args, ChildProcess};
use common::marked::{read_marker, Batches, Model};
use common::tmpfs::{tmpfs_available, Tmpfs};
use mtrdb::{Db, Durability, Error, Options};

const DIR_VAR: &str = "MTRDB_OSERR_DIR";
const LOG_CAPACITY_VAR: &str = "MTRDB_OSERR_LOG_CAPACITY";
const BACKGROUND_VAR: &str = "MTRDB_OSERR_BACKGROUND";
const PAGE_SIZE_VAR: &str = "MTRDB_OSERR_PAGE_SIZE";
const CLOSE_AFTER_VAR: &str = "MTRDB_OSERR_CLOSE_AFTER";
const EXIT_AFTER_VAR: &str = "MTRDB_OSERR_EXIT_AFTER";
/// Batches of inserts (splits), some removes, now and then a large value (overflow pages).
const SEQUENCE: Batches = Batches { seed: 0x05e5_e44a_11ee_0001, neighbour_runs: false };
/// Every line the child means for the parent starts with this (libtest may print its own text
/// on the same line first).
const TAG: &str = "@@ ";
/// Failed writes the child retries after the first failure.
const RETRIES: u32 = 3;
/// A child that runs longer than this is killed and the test fails.
const CHILD_TIMEOUT: Duration = Duration::from_secs(90);
/// A child stops writing (and reports that no error came) after this many batches.
const MAX_BATCHES: u64 = 3000;

const EFBIG: i32 = 27;
const ENOSPC: i32 = 28;

/// How a scenario opens its database (the child and the parent alike).
#[derive(Clone, Copy, Debug)]
struct Config {
    /// `None`: the default (128 MiB).
    log_capacity: Option<u64>,
    background_checkpoints: bool,
    /// `None`: the default (4 KiB).
    page_size: Option<usize>,
}

impl Config {
    const DEFAULT: Config = Config { log_capacity: None, background_checkpoints: true, page_size: None };

    fn small_log(bytes: u64) -> Config {
        Config { log_capacity: Some(bytes), background_checkpoints: true, page_size: None }
    }

    fn options(self) -> Options {
        let mut options = Options::default().background_checkpoints(self.background_checkpoints);
        if let Some(bytes) = self.log_capacity {
            options = options.log_capacity(bytes);
        }
        if let Some(bytes) = self.page_size {
            options = options.page_size(bytes);
        }
        options
    }

    fn describe(self) -> String {
        let log = match self.log_capacity {
            None => "default 128 MiB log".to_string(),
            Some(bytes) => format!("{} KiB log", bytes >> 10),
        };
        let log = match self.page_size {
            None => log,
            Some(bytes) => format!("{log}, {} KiB pages", bytes >> 10),
        };
        if self.background_checkpoints {
            log
        } else {
            format!("{log}, no background checkpoints")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The child.

fn say(line: &str) {
    common::child::say(&format!("{TAG}{line}"));
}

/// The variant of an error, naming the action for I/O errors.
fn variant(error: &Error) -> String {
    match error {
        Error::Io { action, .. } => format!("Io[{action}]"),
        Error::Log(mtr::Error::Io { action, .. }) => format!("Log::Io[{action}]"),
        Error::Log(mtr::Error::Poisoned { .. }) => "Log::Poisoned".into(),
        Error::Log(other) => format!("Log::other[{other:?}]"),
        Error::Poisoned { .. } => "Poisoned".into(),
        other => format!("other[{other:?}]"),
    }
}

/// The raw OS error of the first `std::io::Error` among the error's sources (itself included).
fn raw_os_error(error: &Error) -> Option<i32> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if let Some(code) = io.raw_os_error() {
                return Some(code);
            }
        }
        source = current.source();
    }
    None
}

/// `ERR <phase> <batch> <raw os error or -> :: <variant> :: <display>`, then the debug form.
fn report(phase: &str, n: u64, error: &Error) {
    let raw = raw_os_error(error).map_or("-".to_string(), |code| code.to_string());
    say(&format!("ERR {phase} {n} {raw} :: {} :: {error}", variant(error)));
    say(&format!("DEBUG {phase} {n} {error:?}"));
}

/// Reads this process's file-size limit and whether SIGXFSZ is ignored, from /proc.
fn own_limits() -> (String, bool) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let fsize = limits
        .lines()
        .find(|line| line.starts_with("Max file size"))
        .and_then(|line| line.split_whitespace().nth(3))
        .unwrap_or("?")
        .to_string();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let ignored = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (25 - 1)) != 0); // SIGXFSZ is 25 on Linux
    (fsize, ignored)
}

/// The child: opens the database, writes batches from its marker on until something fails (or
/// `CLOSE_AFTER` batches, then closes), retries, reports. With `EXIT_AFTER` it instead exits
/// after that many batches without closing (leaving redo for the next open to recover).
#[test]
#[ignore = "run by the real_os_errors tests in a child process"]
fn child_writer() {
    let Ok(dir) = std::env::var(DIR_VAR) else { return };
    let config = Config {
        log_capacity: std::env::var(LOG_CAPACITY_VAR).ok().map(|v| v.parse().unwrap()),
        background_checkpoints: std::env::var(BACKGROUND_VAR).map_or(true, |v| v != "off"),
        page_size: std::env::var(PAGE_SIZE_VAR).ok().map(|v| v.parse().unwrap()),
    };
    let close_after: Option<u64> = std::env::var(CLOSE_AFTER_VAR).ok().map(|v| v.parse().unwrap());
    let exit_after: Option<u64> = std::env::var(EXIT_AFTER_VAR).ok().map(|v| v.parse().unwrap());
    let (fsize, xfsz_ignored) = own_limits();
    say(&format!("LIMIT {fsize}"));
    say(&format!("XFSZ {}", if xfsz_ignored { "ignored" } else { "not-ignored" }));

    let db = match Db::open_with(&dir, config.options()) {
        Ok(db) => db,
        Err(error) => {
            report("open", 0, &error);
            for _ in 0..RETRIES {
                match Db::open_with(&dir, config.options()) {
                    Ok(db) => {
                        // Not wrong in itself (the failure may not repeat), but note it.
                        say("REOPEN_OK");
                        drop(db);
                    }
                    Err(error) => report("reopen", 0, &error),
                }
            }
            say("DONE");
            return;
        }
    };
    let start = read_marker(&db).expect("child: reading the marker");
    say(&format!("START {start}"));
    let started = Instant::now();
    let mut failed = None;
    let mut n = start;
    while n < start + MAX_BATCHES && started.elapsed() < Duration::from_secs(60) {
        if close_after.is_some_and(|count| n == start + count) {
            break;
        }
        if exit_after.is_some_and(|count| n == start + count) {
            say("EXIT");
            // No close, no final checkpoint: like a crash after the last acknowledged batch.
            std::process::exit(0);
        }
        match db.write(SEQUENCE.batch(n)) {
            Ok(()) => say(&format!("ACK {n}")),
            Err(error) => {
                report("write", n, &error);
                failed = Some(n);
                break;
            }
        }
        n += 1;
    }
    if let Some(n) = failed {
        for _ in 0..RETRIES {
            match db.write(SEQUENCE.batch(n)) {
                Ok(()) => say(&format!("RETRY_OK {n}")),
                Err(error) => report("retry", n, &error),
            }
        }
        match read_marker(&db) {
            Ok(marker) => say(&format!("READ marker={marker}")),
            Err(error) => report("read", n, &error),
        }
    } else if close_after.is_none() {
        say("NO_ERROR");
    }
    let stats = db.stats();
    say(&format!(
        "STATS batches={} checkpoints={} pages_written={} doublewritten={} log_syncs={}",
        stats.batches, stats.checkpoints, stats.pages_written, stats.pages_doublewritten, stats.log.syncs
    ));
    match db.close() {
        Ok(()) => say("CLOSE_OK"),
        Err(error) => report("close", n, &error),
    }
    say("DONE");
}

// ---------------------------------------------------------------------------------------------
// The parent.

/// One error line of the child.
#[derive(Clone, Debug)]
struct Reported {
    phase: String,
    batch: u64,
    variant: String,
    raw_os: Option<i32>,
    display: String,
}

/// What a child run printed and how it ended.
#[derive(Debug, Default)]
struct ChildRun {
    limit: Option<String>,
    xfsz_ignored: Option<bool>,
    start: Option<u64>,
    acks: Vec<u64>,
    errors: Vec<Reported>,
    retry_ok: Vec<u64>,
    no_error: bool,
    close_ok: bool,
    done: bool,
    exited_early: bool,
    /// What a read of the marker returned after the failure.
    read_after_failure: Option<String>,
    other_lines: Vec<String>,
    stderr: String,
    status: Option<ExitStatus>,
    elapsed: Duration,
}

impl ChildRun {
    fn first_error(&self) -> Option<&Reported> {
        self.errors.iter().find(|e| matches!(e.phase.as_str(), "open" | "write" | "close"))
    }

    fn errors_in<'a>(&'a self, phase: &'a str) -> impl Iterator<Item = &'a Reported> + 'a {
        self.errors.iter().filter(move |e| e.phase == phase)
    }
}

fn parse_line(run: &mut ChildRun, line: &str) {
    let Some(at) = line.find(TAG) else { return };
    let line = &line[at + TAG.len()..];
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "LIMIT" => run.limit = Some(rest.to_string()),
        "XFSZ" => run.xfsz_ignored = Some(rest == "ignored"),
        "START" => run.start = Some(rest.parse().unwrap()),
        "ACK" => run.acks.push(rest.parse().unwrap()),
        "RETRY_OK" => run.retry_ok.push(rest.parse().unwrap()),
        "NO_ERROR" => run.no_error = true,
        "CLOSE_OK" => run.close_ok = true,
        "DONE" => run.done = true,
        "EXIT" => run.exited_early = true,
        "READ" => run.read_after_failure = Some(rest.to_string()),
        "ERR" => {
            let mut parts = rest.splitn(3, " :: ");
            let (head, variant, display) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            let fields: Vec<&str> = head.split(' ').collect();
            run.errors.push(Reported {
                phase: fields[0].to_string(),
                batch: fields[1].parse().unwrap(),
                raw_os: fields[2].parse().ok(),
                variant: variant.to_string(),
                display: display.to_string(),
            });
        }
        _ => run.other_lines.push(line.to_string()),
    }
}

/// What the child does besides writing until a failure.
#[derive(Clone, Copy, Debug, Default)]
struct Plan {
    /// Write this many batches, then close.
    close_after: Option<u64>,
    /// Write this many batches, then exit without closing.
    exit_after: Option<u64>,
}

/// The child test, run directly.
fn child_command() -> Command {
    self_command("child_writer")
}

/// Runs the child through `command` (already pointed at the binary or at `sh`), with the
/// scenario's environment; kills it after [`CHILD_TIMEOUT`].
fn run_child(mut command: Command, dir: &Path, config: Config, plan: Plan) -> ChildRun {
    command
        .env(DIR_VAR, dir)
        .env(BACKGROUND_VAR, if config.background_checkpoints { "on" } else { "off" })
        .env_remove(LOG_CAPACITY_VAR)
        .env_remove(PAGE_SIZE_VAR)
        .env_remove(CLOSE_AFTER_VAR)
        .env_remove(EXIT_AFTER_VAR)
        .stdin(Stdio::null());
    if let Some(bytes) = config.log_capacity {
        command.env(LOG_CAPACITY_VAR, bytes.to_string());
    }
    if let Some(bytes) = config.page_size {
        command.env(PAGE_SIZE_VAR, bytes.to_string());
    }
    if let Some(count) = plan.close_after {
        command.env(CLOSE_AFTER_VAR, count.to_string());
    }
    if let Some(count) = plan.exit_after {
        command.env(EXIT_AFTER_VAR, count.to_string());
    }
    let started = Instant::now();
    let mut child = ChildProcess::spawn(command);
    let mut run = ChildRun::default();
    let status = loop {
        for line in child.lines.try_iter() {
            parse_line(&mut run, &line);
        }
        if let Some(status) = child.try_wait() {
            break Some(status);
        }
        if started.elapsed() > CHILD_TIMEOUT {
            // SIGKILL; the child is the test binary itself (`sh` exec'd it).
            child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    for line in child.remaining_lines() {
        parse_line(&mut run, &line);
    }
    run.stderr = child.stderr();
    run.status = status;
    run.elapsed = started.elapsed();
    run
}

/// What is in the directory before the child runs under the limit (prepared without one).
#[derive(Clone, Copy, Debug)]
enum Prepare {
    /// Nothing: the child creates the database.
    Nothing,
    /// A database holding this many batches, closed cleanly.
    Closed(u64),
    /// A database holding `closed` batches, closed cleanly, then `unclosed` more written by a
    /// child that exits without closing: the next open recovers them and writes them back.
    Crashed { closed: u64, unclosed: u64 },
}

/// Prepares the directory (no limit) and advances the model to what it holds.
fn prepare(dir: &Path, config: Config, prepare: Prepare, model: &mut Model) {
    let closed = match prepare {
        Prepare::Nothing => return,
        Prepare::Closed(count) | Prepare::Crashed { closed: count, .. } => count,
    };
    // Fast: eventual durability, synced by close.
    let db = Db::open_with(dir, config.options().durability(Durability::Eventual)).expect("preparing: open");
    for n in 0..closed {
        db.write(SEQUENCE.batch(n)).expect("preparing: write");
    }
    db.close().expect("preparing: close");
    model.advance_to(closed);
    if let Prepare::Crashed { unclosed, .. } = prepare {
        let run = run_child(child_command(), dir, config, Plan { exit_after: Some(unclosed), close_after: None });
        assert!(
            run.status.is_some_and(|s| s.success()) && run.exited_early && run.acks.len() as u64 == unclosed,
            "preparing: the child writing {unclosed} unclosed batches failed: {run:?}"
        );
        model.advance_to(closed + unclosed);
    }
}

fn file_len(dir: &Path, name: &str) -> Option<u64> {
    std::fs::metadata(dir.join(name)).ok().map(|m| m.len())
}

fn file_sizes(dir: &Path) -> String {
    let show = |name: &str| file_len(dir, name).map_or("-".to_string(), |len| len.to_string());
    format!("data {} B, redo.log {} B, dblwr {} B", show("data.mtrdb"), show("redo.log"), show("dblwr"))
}

/// Where a scenario's failure must land, and what its first error must carry.
#[derive(Clone, Copy, Debug)]
struct Expect {
    /// A word of the first error's phase (`open`, `write`, `close`), variant or message.
    at: &'static str,
    /// The failing I/O is necessarily the failing call's own (not a background checkpoint's),
    /// so its error must carry the `std::io::Error` as a source, with the OS error code.
    typed_source: bool,
    /// The failure tears a page in place that recovery must restore from the doublewrite file.
    repairs: bool,
}

/// The checks on a child run and the reopened database. Returns a summary, and the failures of
/// [`Expect::typed_source`], which the caller reports after running every scenario.
fn verify(
    what: &str,
    dir: &Path,
    config: Config,
    errno: i32,
    expect: Expect,
    run: &ChildRun,
    model: &mut Model,
) -> (String, Option<String>) {
    let sizes = file_sizes(dir);
    let context = format!(
        "{what}: child ran {:.2} s, status {:?}, {} ACKs, files {sizes}\nerrors: {:#?}\nother lines: {:?}\nstderr:\n{}",
        run.elapsed.as_secs_f64(),
        run.status,
        run.acks.len(),
        run.errors,
        run.other_lines,
        run.stderr
    );
    let Some(status) = run.status else {
        panic!("{what}: the child hung (killed after {CHILD_TIMEOUT:?})\n{context}");
    };
    assert!(!run.stderr.contains("panicked"), "{what}: the child panicked\n{context}");
    assert!(status.success(), "{what}: the child did not exit normally ({status})\n{context}");
    assert!(run.done, "{what}: the child did not finish its report\n{context}");
    assert!(!run.no_error, "{what}: no write failed within {MAX_BATCHES} batches\n{context}");
    let first = run.first_error().unwrap_or_else(|| panic!("{what}: the child reported no error\n{context}"));
    let errno_text = format!("os error {errno}");
    let typed = ["Io[", "Log::Io[", "Poisoned", "Log::Poisoned"].iter().any(|v| first.variant.starts_with(v));
    assert!(typed, "{what}: the first error is not an I/O or poisoned error: {first:?}\n{context}");
    assert!(
        first.display.contains(&errno_text),
        "{what}: the first error does not say what the OS refused ({errno_text}): {first:?}\n{context}"
    );
    assert!(
        first.phase == expect.at || first.variant.contains(expect.at) || first.display.contains(expect.at),
        "{what}: meant to fail at {:?}, but the first error was {first:?}; adjust the scenario\n{context}",
        expect.at
    );
    let untyped = (expect.typed_source && first.raw_os != Some(errno)).then(|| {
        format!(
            "{what}: the failing I/O was this call's own ({} of batch {}), yet its error does not carry the OS \
             error as a typed source (no std::io::Error with raw_os_error {errno} among its sources, only text), \
             and says the failure was an earlier one: {} / {}",
            first.phase, first.batch, first.variant, first.display
        )
    });
    // After a failed write: every retry fails, with the sticky poisoned error naming the cause,
    // and close reports an error instead of a clean shutdown.
    if first.phase == "write" {
        assert!(run.retry_ok.is_empty(), "{what}: a write succeeded after a failed one\n{context}");
        let retries: Vec<&Reported> = run.errors_in("retry").collect();
        assert_eq!(retries.len(), RETRIES as usize, "{what}: retries\n{context}");
        for retry in retries {
            assert!(
                retry.batch == first.batch && retry.variant.ends_with("Poisoned") && retry.display.contains(&errno_text),
                "{what}: a write after the failure did not fail with the poisoned error naming the cause: {retry:?}\n{context}"
            );
        }
        assert!(!run.close_ok, "{what}: close reported success after a failed write\n{context}");
        assert!(run.errors_in("close").next().is_some(), "{what}: close after the failure\n{context}");
    }
    let last_ack = run.acks.last().copied();
    if let Some(last) = last_ack {
        assert_eq!(
            run.acks,
            (run.start.unwrap()..=last).collect::<Vec<_>>(),
            "{what}: the ACKs are not consecutive\n{context}"
        );
    }
    if let Some(start) = run.start {
        assert_eq!(start, model.batches, "{what}: the child started at the wrong batch\n{context}");
    }
    // What the database must hold: every acknowledged batch, and at most the one whose write
    // failed (its redo may have reached the disk before the failure).
    let floor = last_ack.map_or(model.batches, |last| last + 1);
    let ceiling = if first.phase == "write" { floor + 1 } else { floor };

    let db = Db::open_with(dir, config.options())
        .unwrap_or_else(|e| panic!("{what}: reopening without the limit failed: {e}\n{context}"));
    let recovery = db.recovery_report().clone();
    let report = db.check().unwrap_or_else(|e| panic!("{what}: check after reopening failed: {e}\n{context}"));
    let m = read_marker(&db).unwrap_or_else(|e| panic!("{what}: reading the marker failed: {e}\n{context}"));
    assert!(
        m >= floor,
        "{what}: the database holds {m} batches, but batch {} had been acknowledged (lost)\n{context}",
        floor.saturating_sub(1)
    );
    assert!(m <= ceiling, "{what}: the database holds {m} batches, more than the {ceiling} ever attempted\n{context}");
    if expect.repairs {
        assert!(
            recovery.pages_repaired >= 1,
            "{what}: a page was torn in place, yet recovery repaired none: {recovery:?}\n{context}"
        );
    }
    model.advance_to(m);
    assert_eq!(report.entries, model.map.len() as u64, "{what}: entries after reopening");
    let mut expected = model.map.iter();
    for (count, entry) in db.iter().enumerate() {
        let (key, value) = entry.unwrap_or_else(|e| panic!("{what}: iteration failed: {e}"));
        let Some((want_key, want_value)) = expected.next() else {
            panic!("{what} ({m} batches): extra key {:?}", String::from_utf8_lossy(&key));
        };
        assert!(
            key == want_key && value == want_value,
            "{what} ({m} batches): entry {count} is {:?} ({} bytes), the model has {:?} ({} bytes)",
            String::from_utf8_lossy(&key),
            value.len(),
            String::from_utf8_lossy(want_key),
            want_value.len()
        );
    }
    assert!(expected.next().is_none(), "{what} ({m} batches): keys missing");
    // Usable again: a new batch is kept across a clean close.
    db.write(SEQUENCE.batch(m)).unwrap_or_else(|e| panic!("{what}: writing after reopening failed: {e}"));
    db.close().unwrap_or_else(|e| panic!("{what}: closing after reopening failed: {e}"));
    let db = Db::open_with(dir, config.options()).unwrap_or_else(|e| panic!("{what}: second reopen failed: {e}"));
    assert_eq!(read_marker(&db).unwrap(), m + 1, "{what}: the batch written after reopening");
    db.close().unwrap();
    model.advance_to(m + 1);

    let mut acked = match (run.acks.first(), last_ack) {
        (Some(a), Some(b)) => format!("{} batches ACKed ({a}..={b})", run.acks.len()),
        _ => "no batch ACKed".to_string(),
    };
    if let Some(read) = &run.read_after_failure {
        acked += &format!(", the failed handle then read {read}");
    }
    let source = match first.raw_os {
        Some(code) => format!("raw_os_error {code} among its sources"),
        None => "no io::Error among its sources, the OS error in the message only".to_string(),
    };
    let summary = format!(
        "{what}\n    first error at {} of batch {}: {} ({source}): {}\n    {acked}; reopened: {m} batches \
         (floor {floor}, ceiling {ceiling}; recovery replayed {} batches, repaired {} pages), check ok, {} keys\n    \
         files after the child: {sizes}; child {:.2} s",
        first.phase,
        first.batch,
        first.variant,
        first.display,
        recovery.batches_committed,
        recovery.pages_repaired,
        report.entries,
        run.elapsed.as_secs_f64()
    );
    (summary, untyped)
}

// ---------------------------------------------------------------------------------------------
// Part 1: a file-size limit (EFBIG).

/// See [`Size::MidChangedLeaf`]: writes batches `from..from + count` and closes, on a copy of
/// `dir`, and returns the byte offset of the middle of the lowest page from 3 MiB on that was a
/// leaf before and after and whose bytes changed in both halves, in place.
fn mid_changed_leaf(dir: &Path, config: Config, from: u64, count: u64) -> u64 {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    let db = Db::open_with(copy.path(), config.options()).expect("dry run: open");
    let page_size = db.page_size();
    for n in from..from + count {
        db.write(SEQUENCE.batch(n)).expect("dry run: write");
    }
    db.close().expect("dry run: close");
    let before = std::fs::read(dir.join("data.mtrdb")).unwrap();
    let after = std::fs::read(copy.path().join("data.mtrdb")).unwrap();
    let leaf = |page: &[u8]| mtrdb::page::header(page).kind == mtrdb::page::PageKind::Leaf as u8;
    let page_id = ((3 * MIB) as usize / page_size..before.len() / page_size)
        .find(|&id| {
            let range = id * page_size..(id + 1) * page_size;
            let (old, new) = (&before[range.clone()], &after[range]);
            // Changed in both halves, so that a write cut in the middle leaves a page that is
            // neither image (a page whose changes all lie in its first half is not torn by it);
            // and with the same last cell bytes: changed in place (inserts go below the content
            // area's start), not rebuilt by a split's format record. A rebuilt page skips the
            // doublewrite file (redo rebuilds it), so tearing it would test no repair.
            let (half, tail) = (page_size / 2, page_size - 64);
            leaf(old)
                && leaf(new)
                && old[..half] != new[..half]
                && old[half..] != new[half..]
                && old[tail..] == new[tail..]
        })
        .expect("dry run: no existing leaf beyond 3 MiB changed in place");
    (page_id * page_size + page_size / 2) as u64
}

/// The bytes of one block of `ulimit -f` in `sh` (512 in dash and POSIX mode, 1024 in bash).
fn ulimit_block_bytes() -> u64 {
    let output = Command::new("sh")
        .args(["-c", "ulimit -f 2 && exec cat /proc/self/limits"])
        .output()
        .expect("running sh to probe ulimit -f");
    let text = String::from_utf8_lossy(&output.stdout);
    let bytes: u64 = text
        .lines()
        .find(|line| line.starts_with("Max file size"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|field| field.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the file-size limit sh set: {text}"));
    assert!(bytes == 1024 || bytes == 2048, "ulimit -f 2 gave {bytes} bytes");
    bytes / 2
}

/// A limit or a size, in bytes.
#[derive(Clone, Copy, Debug)]
enum Size {
    Bytes(u64),
    /// The redo log file's length after preparation, plus this.
    AboveLog(u64),
    /// The data file's length after preparation, minus this.
    BelowData(u64),
    /// (tmpfs) The bytes in use after preparation, plus this.
    AboveUsed(u64),
    /// The middle of the first existing leaf page beyond 3 MiB (so beyond the redo log and the
    /// doublewrite file) that the child's first `n` batches and its close change (found by doing
    /// the same on a copy): the close's in-place write stops there, tearing that page, which was
    /// doublewritten before.
    MidChangedLeaf(u64),
}

struct Scenario {
    name: &'static str,
    config: Config,
    prepare: Prepare,
    /// The file-size limit, or the tmpfs size.
    size: Size,
    plan: Plan,
    expect: Expect,
}

const KIB: u64 = 1024;
const MIB: u64 = 1 << 20;
const WRITE_AFTER_BACKGROUND: Expect = Expect { at: "write", typed_source: false, repairs: false };

fn limit_scenarios() -> Vec<Scenario> {
    let one_mib_log = Config::small_log(MIB);
    let foreground = Config { log_capacity: Some(MIB), background_checkpoints: false, page_size: None };
    vec![
        Scenario {
            name: "log creation: 128 MiB log, limit 64 MiB",
            config: Config::DEFAULT,
            prepare: Prepare::Nothing,
            size: Size::Bytes(64 * MIB),
            plan: Plan::default(),
            expect: Expect { at: "sizing a new log file", typed_source: true, repairs: false },
        },
        Scenario {
            name: "log creation: 1 MiB log, limit 768 KiB",
            config: one_mib_log,
            prepare: Prepare::Nothing,
            size: Size::Bytes(768 * KIB),
            plan: Plan::default(),
            expect: Expect { at: "sizing a new log file", typed_source: true, repairs: false },
        },
        Scenario {
            name: "reopening: limit 4 KiB, below the log's checkpoint slots",
            config: Config::DEFAULT,
            prepare: Prepare::Closed(0),
            size: Size::Bytes(4 * KIB),
            plan: Plan::default(),
            expect: Expect { at: "checkpoint slot", typed_source: true, repairs: false },
        },
        Scenario {
            name: "redo log writes: 128 MiB log, limit 2 MiB + 512 B",
            config: Config::DEFAULT,
            prepare: Prepare::Closed(0),
            size: Size::Bytes(2 * MIB + 512),
            plan: Plan::default(),
            expect: Expect { at: "redo log", typed_source: true, repairs: false },
        },
        Scenario {
            name: "data file growth: 1 MiB log, limit 3 MiB + 1.5 KiB",
            config: one_mib_log,
            prepare: Prepare::Nothing,
            size: Size::Bytes(3 * MIB + 1536),
            plan: Plan::default(),
            expect: Expect { at: "writing pages", typed_source: false, repairs: false },
        },
        Scenario {
            name: "data file growth: 1 MiB log, limit 6 MiB",
            config: one_mib_log,
            prepare: Prepare::Nothing,
            size: Size::Bytes(6 * MIB),
            plan: Plan::default(),
            expect: Expect { at: "writing pages", typed_source: false, repairs: false },
        },
        Scenario {
            // 16 KiB pages: the doublewrite file's first batch passes the limit with its 34th
            // page that is not rebuilt. With 4 KiB pages and a 256 KiB log it took 67, more than
            // the first write-back after the reopen held once slots grew key heads (the write in
            // place failed first, and the scenario tested the data file again).
            name: "doublewrite file: 512 KiB log, 16 KiB pages, 300 batches, limit log file + 16.5 KiB",
            config: Config { page_size: Some(16 * KIB as usize), ..Config::small_log(512 * KIB) },
            prepare: Prepare::Closed(300),
            size: Size::AboveLog(16 * KIB + 512),
            plan: Plan::default(),
            expect: Expect { at: "doublewrite", typed_source: false, repairs: false },
        },
        Scenario {
            name: "close's checkpoint: 300 batches, limit data file - 1 MiB, 3 batches then close",
            config: foreground,
            prepare: Prepare::Closed(300),
            size: Size::BelowData(MIB),
            plan: Plan { close_after: Some(3), exit_after: None },
            expect: Expect { at: "close", typed_source: true, repairs: false },
        },
        Scenario {
            name: "torn page at close: 300 batches, limit mid-page of the first changed leaf, 3 batches then close",
            config: foreground,
            prepare: Prepare::Closed(300),
            size: Size::MidChangedLeaf(3),
            plan: Plan { close_after: Some(3), exit_after: None },
            expect: Expect { at: "close", typed_source: true, repairs: true },
        },
        Scenario {
            name: "recovery at open: 300 batches + 5 unclosed, limit data file - 1 MiB",
            config: foreground,
            prepare: Prepare::Crashed { closed: 300, unclosed: 5 },
            size: Size::BelowData(MIB),
            plan: Plan::default(),
            expect: Expect { at: "open", typed_source: true, repairs: false },
        },
    ]
}

#[test]
fn file_size_limit_efbig() {
    let started = Instant::now();
    let block = ulimit_block_bytes();
    let exe = std::env::current_exe().unwrap();
    let mut summaries = Vec::new();
    let mut untyped_errors = Vec::new();
    for scenario in limit_scenarios() {
        let dir = tempfile::tempdir().unwrap();
        let db_dir = dir.path().join("db");
        let mut model = Model::new(SEQUENCE);
        prepare(&db_dir, scenario.config, scenario.prepare, &mut model);
        let bytes = match scenario.size {
            Size::Bytes(bytes) => bytes,
            Size::AboveLog(extra) => file_len(&db_dir, "redo.log").unwrap() + extra,
            Size::BelowData(less) => file_len(&db_dir, "data.mtrdb").unwrap() - less,
            Size::MidChangedLeaf(count) => mid_changed_leaf(&db_dir, scenario.config, model.batches, count),
            Size::AboveUsed(_) => unreachable!("a tmpfs size"),
        } / block
            * block;
        let blocks = bytes / block;
        let mut command = Command::new("sh");
        command
            .args(["-c", &format!("ulimit -f {blocks} && trap '' XFSZ && exec \"$0\" \"$@\""), exe.to_str().unwrap()])
            .args(test_args("child_writer"));
        let run = run_child(command, &db_dir, scenario.config, scenario.plan);
        let what = format!("EFBIG [{}] ({}, limit {bytes} B)", scenario.name, scenario.config.describe());
        assert_eq!(
            run.limit.as_deref(),
            Some(bytes.to_string().as_str()),
            "{what}: the child's file-size limit; stderr: {}",
            run.stderr
        );
        assert_eq!(run.xfsz_ignored, Some(true), "{what}: SIGXFSZ is not ignored in the child");
        let (summary, untyped) = verify(&what, &db_dir, scenario.config, EFBIG, scenario.expect, &run, &mut model);
        println!("{summary}");
        summaries.push(summary);
        untyped_errors.extend(untyped);
    }
    println!("file_size_limit_efbig: {} scenarios in {:.1} s", summaries.len(), started.elapsed().as_secs_f64());
    assert!(untyped_errors.is_empty(), "untyped errors:\n{}", untyped_errors.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Part 2: a full file system (ENOSPC) on a small tmpfs.

fn full_scenarios() -> Vec<Scenario> {
    let one_mib_log = Config::small_log(MIB);
    let foreground = Config { log_capacity: Some(MIB), background_checkpoints: false, page_size: None };
    vec![
        Scenario {
            name: "creation: 16 KiB tmpfs",
            config: Config::DEFAULT,
            prepare: Prepare::Nothing,
            size: Size::Bytes(16 * KIB),
            plan: Plan::default(),
            expect: Expect { at: "open", typed_source: true, repairs: false },
        },
        Scenario {
            name: "redo log writes: 128 MiB (sparse) log on a 2 MiB tmpfs",
            config: Config::DEFAULT,
            prepare: Prepare::Nothing,
            size: Size::Bytes(2 * MIB),
            plan: Plan::default(),
            expect: Expect { at: "redo log", typed_source: true, repairs: false },
        },
        Scenario {
            name: "checkpoint growth: 1 MiB log on a 4 MiB tmpfs",
            config: one_mib_log,
            prepare: Prepare::Nothing,
            size: Size::Bytes(4 * MIB),
            plan: Plan::default(),
            expect: WRITE_AFTER_BACKGROUND,
        },
        Scenario {
            name: "checkpoint growth: 256 KiB log, 300 batches, then 64 KiB free",
            config: Config::small_log(256 * KIB),
            prepare: Prepare::Closed(300),
            size: Size::AboveUsed(64 * KIB),
            plan: Plan::default(),
            expect: WRITE_AFTER_BACKGROUND,
        },
        Scenario {
            // 256 KiB: the close before gave the log's ring back, so the 3 batches' redo needs
            // blocks of its own; the checkpoint's doublewrite batch then finds none.
            name: "close's checkpoint: 300 batches, then 256 KiB free, 3 batches then close",
            config: foreground,
            prepare: Prepare::Closed(300),
            size: Size::AboveUsed(256 * KIB),
            plan: Plan { close_after: Some(3), exit_after: None },
            expect: Expect { at: "close", typed_source: true, repairs: false },
        },
        Scenario {
            name: "recovery at open: 300 batches + 5 unclosed, then no free space",
            config: foreground,
            prepare: Prepare::Crashed { closed: 300, unclosed: 5 },
            size: Size::AboveUsed(0),
            plan: Plan::default(),
            expect: Expect { at: "open", typed_source: true, repairs: false },
        },
    ]
}

#[test]
fn full_file_system_enospc() {
    if let Err(why) = tmpfs_available() {
        println!("full_file_system_enospc: skipped: cannot mount a tmpfs here ({why})");
        return;
    }
    let started = Instant::now();
    let mut summaries = Vec::new();
    let mut untyped_errors = Vec::new();
    for scenario in full_scenarios() {
        let fixed = match scenario.size {
            Size::Bytes(bytes) => Some(bytes),
            _ => None,
        };
        // Large while preparing; then the scenario's size.
        let tmpfs = Tmpfs::mount(fixed.unwrap_or(512 * MIB)).unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        let db_dir = tmpfs.path.join("db");
        let mut model = Model::new(SEQUENCE);
        prepare(&db_dir, scenario.config, scenario.prepare, &mut model);
        let size = match scenario.size {
            Size::Bytes(bytes) => bytes,
            // Whole pages: tmpfs counts its size in pages.
            Size::AboveUsed(extra) => (tmpfs.used() + extra).div_ceil(4096) * 4096,
            other => panic!("unsupported tmpfs size {other:?}"),
        };
        if fixed.is_none() {
            tmpfs.resize(size);
        }
        let run = run_child(child_command(), &db_dir, scenario.config, scenario.plan);
        // Room again, then verify in place.
        tmpfs.resize(512 * MIB);
        let what = format!("ENOSPC [{}] ({}, tmpfs {size} B)", scenario.name, scenario.config.describe());
        let (summary, untyped) = verify(&what, &db_dir, scenario.config, ENOSPC, scenario.expect, &run, &mut model);
        println!("{summary}");
        summaries.push(summary);
        untyped_errors.extend(untyped);
        drop(tmpfs);
    }
    println!("full_file_system_enospc: {} scenarios in {:.1} s", summaries.len(), started.elapsed().as_secs_f64());
    assert!(untyped_errors.is_empty(), "untyped errors:\n{}", untyped_errors.join("\n"));
}
