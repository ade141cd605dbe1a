//! `mtrdb compact DIR`: a database that lost most of its entries comes out with a smaller data
//! file that passes `check` and dumps exactly as before (a crashed one is recovered first); the summary's lengths are the file
//! system's; `stat`'s "could give back at most" figure bounds what the compaction gave back, and
//! is (about) nothing afterwards; a directory without a database is refused with status 1 and
//! nothing is created; a database that another handle has open is reported as locked, pointing at
//! `Db::compact`; on a standard error that is not a terminal, progress is one plain line at every
//! 10% of a pass.
//!
//! Guards: the command's contract (exit statuses, messages, progress lines, summary) over
//! `Db::compact_with`, and `stat`'s give-back line. That a compaction keeps every entry under
//! concurrent writers and crashes is the library's to prove (the root package's
//! tests/compaction.rs).

mod common;

use std::path::Path;

use common::{crashed_mid_split, fill, mtrdb, mtrdb_fails, mtrdb_ok, parse_dump};
use mtrdb::db::DATA_FILE;
use mtrdb::{Db, WriteBatch};

const PAGE_SIZE: u64 = 4096;

/// Writes `entries` entries of `value_len` bytes into the default keyspace of a new database at
/// `dir`, a few into a keyspace "alpha" and one value in an overflow chain, then removes all of
/// the default keyspace's entries but one run of `run` keys in every `every` runs, and closes it.
/// Leaves emptied whole are freed (a leaf that keeps an entry is not), and the runs kept are
/// spread over the file: many pages in use lie above the free ones, to be moved.
fn build_then_thin(dir: &Path, entries: u32, value_len: usize, run: u32, every: u32) {
    let db = Db::open(dir).unwrap();
    fill(&db, entries, value_len);
    for start in (0..entries).step_by(500) {
        let mut batch = WriteBatch::new();
        for i in (start..(start + 500).min(entries)).filter(|i| !(i / run).is_multiple_of(every)) {
            batch.remove(format!("key{i:06}"));
        }
        db.write(batch).unwrap();
    }
    db.close().unwrap();
}

fn data_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(DATA_FILE)).unwrap().len()
}

/// The number in a summary line `  <label>  <n> ...` of `compact`.
fn report_number(report: &str, label: &str) -> u64 {
    let line = report.lines().find(|line| line.starts_with(label)).unwrap_or_else(|| panic!("no {label:?}: {report}"));
    let rest = line[label.len()..].trim_start();
    rest.split(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("{line:?}"))
}

/// `stat`'s free line: the free pages, and the bytes a compaction could give back at most.
fn stat_give_back(dir: &str) -> (u64, u64) {
    let stat = mtrdb_ok(&["stat", dir]);
    let line = stat.lines().find(|line| line.starts_with("free          ")).unwrap_or_else(|| panic!("{stat}"));
    // free          123 pages; a compaction could give back at most 503808 B (492.0 KiB)
    let free = line["free          ".len()..].split(' ').next().unwrap().parse().unwrap();
    let (_, at_most) = line.split_once("; a compaction could give back at most ").unwrap_or_else(|| panic!("{line:?}"));
    let bytes: u64 = at_most.split(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("{line:?}"));
    assert!(at_most[bytes.to_string().len()..].starts_with(" B"), "{line:?}");
    (free, bytes)
}

#[test]
fn compaction_shrinks_the_file_and_keeps_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    build_then_thin(dir.path(), 4000, 1000, 20, 4);
    let dump_before = mtrdb_ok(&["dump", path]);
    let (free_before, give_back_before) = stat_give_back(path);
    assert!(free_before > 100, "the removals freed few pages: {free_before}");
    let len_before = data_len(dir.path());

    let report = mtrdb_ok(&["compact", path]);
    assert!(report.starts_with(&format!("compacted {path}\n")), "{report}");
    for line in ["  page ids ", "  pages moved ", "  passes ", "  duration ", "  longest pause "] {
        assert!(report.contains(line), "no {line:?} line: {report}");
    }
    assert!(report.contains("  file cut              done"), "{report}");
    assert!(report_number(&report, "  pages moved") > 100, "{report}");
    let len_after = data_len(dir.path());
    assert!(len_after < len_before, "the data file did not shrink: {len_before} -> {len_after}");
    assert_eq!(report_number(&report, "  data file before"), len_before, "{report}");
    assert_eq!(report_number(&report, "  data file after"), len_after, "{report}");
    let given_back = len_before - len_after;
    assert_eq!(report_number(&report, "  given back"), given_back, "{report}");

    let check = mtrdb_ok(&["check", path]);
    assert!(check.starts_with("ok: 1001 entries"), "{check}");
    assert!(check.contains("keyspace      \"alpha\": 20 entries"), "{check}");
    assert_eq!(mtrdb_ok(&["dump", path]), dump_before, "the compaction changed the entries");
    assert!(mtrdb_ok(&["stat", path]).contains("state         clean"));

    // The figure is an upper bound that the compaction came close to; afterwards, (about)
    // nothing is left to give back.
    assert!(give_back_before + 4 * PAGE_SIZE >= given_back, "stat said {give_back_before}, {given_back} given back");
    assert!(given_back + 4 * PAGE_SIZE >= give_back_before, "stat said {give_back_before}, {given_back} given back");
    let (_, give_back_after) = stat_give_back(path);
    assert!(give_back_after <= 4 * PAGE_SIZE, "{give_back_after} bytes still to give back after compaction");

    // Again: nothing left to move, and the file stays as it is.
    let again = mtrdb_ok(&["compact", path]);
    assert!(again.contains("  pages moved           0\n"), "{again}");
    assert_eq!(data_len(dir.path()), len_after, "{again}");
    assert_eq!(mtrdb_ok(&["dump", path]), dump_before);
}

#[test]
fn stat_counts_a_file_tail_beyond_the_page_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    build_then_thin(dir.path(), 600, 100, 1, 1);
    let (_, clean) = stat_give_back(path);
    // Pages past `page_count` (as a file extended ahead of its page ids, or not yet cut, holds):
    // a compaction cuts them too.
    let file = std::fs::OpenOptions::new().write(true).open(dir.path().join(DATA_FILE)).unwrap();
    file.set_len(data_len(dir.path()) + 3 * PAGE_SIZE).unwrap();
    drop(file);
    let (_, with_tail) = stat_give_back(path);
    assert_eq!(with_tail, clean + 3 * PAGE_SIZE);
    let report = mtrdb_ok(&["compact", path]);
    assert_eq!(report_number(&report, "  given back"), with_tail, "{report}");
    assert!(report.contains(" once opened (opening cuts a tail beyond the page ids"), "{report}");
    assert_eq!(stat_give_back(path).1, clean, "the tail was not cut");
}

#[test]
fn progress_on_a_non_terminal_is_a_plain_line_at_every_ten_percent_of_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    build_then_thin(dir.path(), 8000, 1000, 20, 5);
    let output = mtrdb(&["compact", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    // (pass, percent, moves planned), in order.
    let mut steps: Vec<(u32, u64, u64)> = Vec::new();
    for line in stderr.lines() {
        // compact: pass 1, 40% of 1234 moves
        let rest = line.strip_prefix("compact: pass ").unwrap_or_else(|| panic!("not a progress line: {line:?}"));
        let (pass, rest) = rest.split_once(", ").unwrap_or_else(|| panic!("{line:?}"));
        let (percent, rest) = rest.split_once("% of ").unwrap_or_else(|| panic!("{line:?}"));
        let moves = rest.strip_suffix(" moves").unwrap_or_else(|| panic!("{line:?}"));
        steps.push((pass.parse().unwrap(), percent.parse().unwrap(), moves.parse().unwrap()));
    }
    let first_pass: Vec<&(u32, u64, u64)> = steps.iter().filter(|step| step.0 == 1).collect();
    assert!(first_pass.len() >= 4, "one line per tenth reached: {stderr}");
    assert!(first_pass.iter().all(|step| step.2 == first_pass[0].2 && step.2 > 100), "{stderr}");
    assert_eq!(first_pass.last().unwrap().1, 100, "{stderr}");
    for pair in steps.windows(2) {
        let ((pass_a, percent_a, _), (pass_b, percent_b, _)) = (pair[0], pair[1]);
        assert!(
            pass_b == pass_a + 1 || (pass_b == pass_a && percent_a / 10 < percent_b / 10),
            "one line per tenth of a pass: {stderr}"
        );
    }
    assert!(steps.iter().all(|step| step.1 <= 100), "{stderr}");
}

#[test]
fn a_crashed_database_is_recovered_then_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = crashed_mid_split(dir.path());
    let path = dir.path().to_str().unwrap();
    mtrdb_ok(&["compact", path]);
    assert_eq!(parse_dump(&mtrdb_ok(&["dump", path])), model);
    mtrdb_ok(&["check", path]);
    assert!(mtrdb_ok(&["stat", path]).contains("state         clean"), "the database was not recovered");
}

#[test]
fn a_directory_without_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let stderr = mtrdb_fails(&["compact", path]);
    assert!(stderr.contains(path) && stderr.contains("holds no mtrdb database"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a refused compaction created files");

    let missing = dir.path().join("missing");
    let stderr = mtrdb_fails(&["compact", missing.to_str().unwrap()]);
    assert!(stderr.contains("is not a directory"), "{stderr}");
    assert!(!missing.exists(), "a refused compaction created its directory");
}

#[test]
fn a_database_open_elsewhere_is_reported_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.insert(b"k", b"v").unwrap();
    let stderr = mtrdb_fails(&["compact", dir.path().to_str().unwrap()]);
    assert!(stderr.contains("already open") && stderr.contains("Db::compact"), "{stderr}");
    db.close().unwrap();
}
