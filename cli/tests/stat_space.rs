//! `mtrdb stat` shows where the space goes: each file's length and the bytes it takes on disk
//! (`st_blocks` × 512, as the file system reports it: less than the length for the log's sparse
//! ring), and the free pages with the most a compaction could give back (the data file less the
//! pages in use).
//!
//! Guards: the space lines of `stat` (their labels and that their numbers are the file system's
//! and the check's).

mod common;

use std::os::unix::fs::MetadataExt;

use common::mtrdb_ok;
use mtrdb::{Db, WriteBatch};

#[test]
fn stat_shows_allocated_sizes_and_free_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    {
        // Many leaves, then most entries removed: their pages go to the free list. The last
        // entries stay, so the last pages stay in use (close cuts free pages at the very end).
        let db = Db::open(dir.path()).unwrap();
        let mut batch = WriteBatch::new();
        for i in 0..3000u32 {
            batch.insert(format!("key{i:06}"), [b'v'; 200]);
        }
        db.write(batch).unwrap();
        let mut batch = WriteBatch::new();
        for i in 100..2900u32 {
            batch.remove(format!("key{i:06}"));
        }
        db.write(batch).unwrap();
        db.close().unwrap();
    }
    let stat = mtrdb_ok(&["stat", path]);

    for (label, name) in [("data file     ", "data.mtrdb"), ("log file      ", "redo.log"), ("dblwr file    ", "dblwr")]
    {
        let metadata = std::fs::metadata(dir.path().join(name)).unwrap();
        let line = stat.lines().find(|line| line.starts_with(label)).unwrap_or_else(|| panic!("no {label:?}: {stat}"));
        assert!(line.contains(&format!("{} B", metadata.len())), "{name}'s length: {line}");
        assert!(line.contains(&format!("; {} B", metadata.blocks() * 512)), "{name}'s allocated size: {line}");
        assert!(line.ends_with(" allocated on disk"), "{line}");
    }

    let check = mtrdb_ok(&["check", path]);
    let free: u64 = check.split(" overflow, ").nth(1).and_then(|rest| rest.split(' ').next()).unwrap().parse().unwrap();
    let page_ids: u64 =
        check.split(" page ids").next().and_then(|head| head.rsplit(' ').next()).unwrap().parse().unwrap();
    assert!(free > 0 && free * 4096 < 1 << 20, "the removals freed no page, or 1 MiB or more: {check}");
    // The data file less the pages in use: the free pages, and any tail beyond the page ids.
    let data_len = std::fs::metadata(dir.path().join("data.mtrdb")).unwrap().len();
    let give_back = data_len - (page_ids - free) * 4096;
    assert!(give_back >= free * 4096, "{give_back} {check}");
    let free_line = format!(
        "free          {free} pages; a compaction could give back at most {give_back} B ({:.1} KiB)",
        give_back as f64 / 1024.0
    );
    assert!(stat.contains(&free_line), "no {free_line:?}: {stat}");
}
