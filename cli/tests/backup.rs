//! `mtrdb backup SRC DST`: the copy passes `check` and dumps exactly as its source does (named
//! keyspaces, an overflow value; a source that crashed is recovered first and copied as recovery
//! leaves it); a non-empty destination is refused with status 1 and a message naming it, and
//! nothing is written into it; a source that another handle has open is reported as locked,
//! pointing at `Db::backup_to`; on a standard error that is not a terminal, progress is one plain
//! line at every 10%.
//!
//! Guards: the command's contract (exit statuses, messages, progress lines, summary) over
//! `Db::backup_to`. The copy's consistency under concurrent writers is the library's to prove
//! (the root package's tests/backup.rs).

mod common;

use std::path::Path;

use common::{crashed_mid_split, fill, mtrdb, mtrdb_fails, mtrdb_ok, parse_dump, snapshot};
use mtrdb::Db;

/// Writes `entries` entries of `value_len` bytes into the default keyspace of a new database at
/// `dir`, a few into a keyspace "alpha", and one value in an overflow chain.
fn build(dir: &Path, entries: u32, value_len: usize) {
    let db = Db::open(dir).unwrap();
    fill(&db, entries, value_len);
    db.close().unwrap();
}

#[test]
fn a_backup_passes_check_and_dumps_as_its_source() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let src = source.path().to_str().unwrap();
    let copy = target.path().join("copy");
    let dst = copy.to_str().unwrap();
    build(source.path(), 2000, 100);

    let report = mtrdb_ok(&["backup", src, dst]);
    assert!(report.starts_with(&format!("backed up {src} to {dst}\n")), "{report}");
    for line in ["  pages ", "  bytes ", "  duration ", "  longest pause ", "  as of LSN "] {
        assert!(report.contains(line), "no {line:?} line: {report}");
    }
    assert!(report.contains("  opening the copy      nothing to recover"), "{report}");

    let check = mtrdb_ok(&["check", dst]);
    assert!(check.starts_with("ok: 2001 entries"), "{check}");
    assert!(check.contains("keyspace      \"alpha\": 20 entries"), "{check}");
    let source_dump = mtrdb_ok(&["dump", src]);
    assert_eq!(mtrdb_ok(&["dump", dst]), source_dump, "the copy holds other entries than its source");
    assert!(mtrdb_ok(&["stat", dst]).contains("state         clean"));
    assert!(!copy.join(mtrdb::db::BACKUP_INCOMPLETE_FILE).exists(), "the copy is still marked incomplete");
}

#[test]
fn a_crashed_source_is_recovered_then_copied() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let (model, _) = crashed_mid_split(source.path());
    let src = source.path().to_str().unwrap();
    let dst = target.path().to_str().unwrap();
    // The destination exists and is empty: that is accepted too.
    mtrdb_ok(&["backup", src, dst]);
    assert_eq!(parse_dump(&mtrdb_ok(&["dump", dst])), model);
    assert!(mtrdb_ok(&["stat", src]).contains("state         clean"), "the source was recovered");
}

#[test]
fn a_non_empty_destination_is_refused_and_left_alone() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    build(source.path(), 100, 10);
    std::fs::write(target.path().join("notes.txt"), "not a backup").unwrap();
    let before = snapshot(target.path());
    let dst = target.path().to_str().unwrap();
    let stderr = mtrdb_fails(&["backup", source.path().to_str().unwrap(), dst]);
    assert!(stderr.contains(dst) && stderr.contains("not empty"), "{stderr}");
    assert_eq!(snapshot(target.path()), before, "the refused destination was written");
    // The source is still whole, and not locked.
    assert!(mtrdb_ok(&["check", source.path().to_str().unwrap()]).starts_with("ok: 101 entries"));
}

#[test]
fn a_source_open_elsewhere_is_reported_as_locked() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let copy = target.path().join("copy");
    let db = Db::open(source.path()).unwrap();
    db.insert(b"k", b"v").unwrap();
    let stderr = mtrdb_fails(&["backup", source.path().to_str().unwrap(), copy.to_str().unwrap()]);
    assert!(stderr.contains("already open") && stderr.contains("Db::backup_to"), "{stderr}");
    assert!(!copy.exists(), "a refused backup created its destination");
    db.close().unwrap();
}

#[test]
fn progress_on_a_non_terminal_is_a_plain_line_at_every_ten_percent() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    // About 5 MiB: several of the backup's 1 MiB chunks, so several progress steps.
    build(source.path(), 4000, 1200);
    let output = mtrdb(&["backup", source.path().to_str().unwrap(), target.path().join("copy").to_str().unwrap()]);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    let mut percents = Vec::new();
    for line in stderr.lines() {
        // backup: 40% (2.0 MiB of 5.1 MiB)
        let rest = line.strip_prefix("backup: ").unwrap_or_else(|| panic!("not a progress line: {line:?}"));
        let (percent, sizes) = rest.split_once("% (").unwrap_or_else(|| panic!("{line:?}"));
        let sizes = sizes.strip_suffix(')').unwrap_or_else(|| panic!("{line:?}"));
        let (done, total) = sizes.split_once(" of ").unwrap_or_else(|| panic!("{line:?}"));
        assert!(total.ends_with(" MiB"), "{line:?}");
        let percent: u64 = percent.parse().unwrap();
        if percent == 100 {
            assert_eq!(done, total, "{line:?}");
        }
        percents.push(percent);
    }
    assert_eq!(percents.first(), Some(&0), "{stderr}");
    assert_eq!(percents.last(), Some(&100), "{stderr}");
    assert!(percents.len() >= 4, "one line per tenth reached: {stderr}");
    assert!(percents.windows(2).all(|pair| pair[0] / 10 < pair[1] / 10), "one line per tenth: {stderr}");
}
