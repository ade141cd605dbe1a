//! A damaged data file makes `check` and `stat` fail with a message naming the page, exit 1,
//! and never panic; `page` still decodes the damaged page and names the defect. Covers a damaged
//! leaf (the tree is unreadable there), a damaged meta page (the database cannot be opened at
//! all), and garbage instead of a data file.
//!
//! Guards: "corrupt bytes are an error, never a panic", through the whole CLI.

mod common;

use std::os::unix::fs::FileExt;

use common::{crashed_mid_split, mtrdb_fails, mtrdb_ok, snapshot};

fn overwrite(path: &std::path::Path, offset: u64, bytes: &[u8]) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

#[test]
fn damaged_pages_are_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    crashed_mid_split(dir.path());
    mtrdb_ok(&["recover", path]);
    let data = dir.path().join("data.mtrdb");

    // A leaf in the middle of the tree: page 3 is a leaf in this fixture (page 1 is the
    // catalog, page 2 the root).
    assert!(mtrdb_ok(&["page", path, "3"]).contains("kind          leaf"));
    overwrite(&data, 3 * 4096 + 3000, b"not what the checksum covers");
    let before = snapshot(dir.path());
    let stderr = mtrdb_fails(&["check", path]);
    assert!(stderr.contains("page 3") && stderr.contains("checksum"), "{stderr}");
    let stderr = mtrdb_fails(&["stat", path]);
    assert!(stderr.contains("page 3"), "{stderr}");
    let stat = common::mtrdb(&["stat", path]);
    let stdout = String::from_utf8(stat.stdout).unwrap();
    assert!(stdout.contains("page 3 damaged: checksum"), "stat shows what it could: {stdout}");
    let page = mtrdb_ok(&["page", path, "3"]);
    assert!(page.contains("DAMAGED") && page.contains("MISMATCH"), "{page}");
    mtrdb_fails(&["dump", path]);
    assert_eq!(snapshot(dir.path()), before, "inspecting a damaged database changed it");

    // The meta page: nothing can be opened.
    overwrite(&data, 60, &[0xff; 16]);
    for command in ["check", "stat", "dump"] {
        let stderr = mtrdb_fails(&[command, path]);
        assert!(stderr.contains("meta page") || stderr.contains("page 0"), "{command}: {stderr}");
    }
    mtrdb_ok(&["page", path, "0"]);

    // Not a data file at all, and no copy of its meta page in the doublewrite file either: no
    // page size can be read anywhere.
    std::fs::write(&data, vec![0x5a; 3 * 4096]).unwrap();
    std::fs::write(dir.path().join("dblwr"), vec![0xa5; 4096]).unwrap();
    for command in ["check", "stat", "dump", "recover"] {
        mtrdb_fails(&[command, path]);
    }
    let stderr = mtrdb_fails(&["page", path, "1"]);
    assert!(stderr.contains("--page-size"), "{stderr}");
    assert!(mtrdb_ok(&["page", path, "1", "--page-size", "4096"]).contains("DAMAGED"));
}

#[test]
fn a_damaged_redo_log_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    crashed_mid_split(dir.path());
    // The log header: the log cannot be opened, so neither can the database.
    overwrite(&dir.path().join("redo.log"), 0, b"garbage!");
    for command in ["log", "check", "dump"] {
        let stderr = mtrdb_fails(&[command, path]);
        assert!(stderr.contains("log"), "{command}: {stderr}");
    }
    let stderr = mtrdb_fails(&["stat", path]);
    assert!(stderr.contains("redo log"), "{stderr}");
}
