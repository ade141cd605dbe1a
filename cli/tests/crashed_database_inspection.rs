//! Inspecting a database that crashed in the middle of a batch that splits leaves: `log` lists
//! the valid mtrs and ends at the torn tail, `stat` says recovery is needed, `check` passes after
//! an in-memory recovery, `page` and `dump` work, and none of them changes a byte or a
//! modification time of any file. Then `recover` for real makes `stat` say clean.
//!
//! Guards: the read-only promise of the inspection commands (the overlay storage), and that the
//! tools describe a crashed log truthfully.

mod common;

use common::{crashed_mid_split, mtrdb_fails, mtrdb_ok, mtrdb_result, parse_dump, snapshot};

#[test]
fn inspection_of_a_crashed_database_changes_nothing_and_recover_makes_it_clean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let (model, crashed) = crashed_mid_split(dir.path());
    let before = snapshot(dir.path());

    // log: every valid mtr, then a clear line at the torn tail.
    let log = mtrdb_ok(&["log", path]);
    let mtr_lines = log.lines().filter(|line| line.starts_with("mtr ")).count() as u64;
    assert_eq!(mtr_lines, crashed.mtrs, "{log}");
    assert!(log.contains("flags commit crc ok"), "{log}");
    assert!(log.contains("NODE_FORMAT leaf"), "a split's record is shown: {log}");
    // An insert's record with its key decoded (CELL_PUT_AT when it fits its leaf, CELL_PUT in
    // a split's mtr: which one depends on how full the page is).
    assert!(
        log.lines().any(|line| line.contains("CELL_PUT") && line.contains("key=\"key00001\" (inline 30 B)")),
        "{log}"
    );
    assert!(log.contains(&format!("end at LSN {} (", crashed.end_lsn)), "{log}");
    assert!(log.contains("torn tail"), "{log}");
    assert!(
        log.contains(&format!("the last {} mtrs", crashed.unfinished_mtrs)) && log.contains("recovery discards them"),
        "{log}"
    );

    // log --json: one object per line, the same story.
    let json = mtrdb_ok(&["log", path, "--json"]);
    let objects: Vec<serde_json::Value> = json.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(objects.first().unwrap()["type"], "log");
    let mtrs: Vec<_> = objects.iter().filter(|o| o["type"] == "mtr").collect();
    assert_eq!(mtrs.len() as u64, crashed.mtrs);
    assert!(mtrs.iter().all(|m| m["crc"] == "ok" && m["records"].as_array().is_some_and(|r| !r.is_empty())));
    let end = objects.last().unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["lsn"], crashed.end_lsn);
    assert_eq!(end["unfinished_mtrs"], crashed.unfinished_mtrs);
    assert!(end["corruption"].is_null());

    // log --from: later mtrs only.
    let second = mtrs[1]["start_lsn"].as_u64().unwrap();
    let from = mtrdb_ok(&["log", path, "--from", &second.to_string()]);
    assert_eq!(from.lines().filter(|line| line.starts_with("mtr ")).count() as u64, crashed.mtrs - 1, "{from}");

    // stat: needs recovery; the tree after recovery in memory.
    let stat = mtrdb_ok(&["stat", path]);
    assert!(stat.contains(&format!("needs recovery ({} mtrs", crashed.mtrs)), "{stat}");
    assert!(stat.contains("page size     4096 bytes"), "{stat}");
    assert!(stat.contains(&format!("tree          height 2, {} entries", model.len())), "{stat}");
    assert!(stat.contains("check         ok"), "{stat}");

    // check: passes after recovery in memory.
    let check = mtrdb_ok(&["check", path]);
    assert!(check.starts_with(&format!("ok: {} entries", model.len())), "{check}");

    // page: the meta page, a leaf (page 3: the root's first child), a page beyond the end.
    let meta = mtrdb_ok(&["page", path, "0"]);
    assert!(meta.contains("kind          meta") && meta.contains("status        valid"), "{meta}");
    let leaf = mtrdb_ok(&["page", path, "3", "--recovered"]);
    assert!(leaf.contains("key \"key"), "{leaf}");
    mtrdb_fails(&["page", path, "100000"]);

    // dump: what recovery yields, no more (the crashed batch is gone), no less.
    let dump = mtrdb_ok(&["dump", path]);
    assert_eq!(parse_dump(&dump), model);

    assert_eq!(snapshot(dir.path()), before, "an inspection command changed the directory");

    // recover, for real: then stat says clean, and the contents are the same.
    let recover = mtrdb_ok(&["recover", path]);
    assert!(recover.contains(&format!("discarded mtrs        {}", crashed.unfinished_mtrs)), "{recover}");
    let stat = mtrdb_ok(&["stat", path]);
    assert!(stat.contains("state         clean"), "{stat}");
    // `recover` closed cleanly, which gives the ring's space back: zeros after the checkpoint.
    assert!(stat.contains("zeros: nothing was written there"), "{stat}");
    assert_eq!(parse_dump(&mtrdb_ok(&["dump", path])), model);
    let log = mtrdb_ok(&["log", path]);
    assert!(log.contains("0 mtrs"), "{log}");
}

#[test]
fn a_database_open_in_another_handle_is_reported_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let db = mtrdb::Db::open(dir.path()).unwrap();
    db.insert(b"k", b"v").unwrap();
    for command in ["stat", "check", "log", "dump"] {
        let stderr = mtrdb_fails(&[command, path]);
        assert!(stderr.contains("already open"), "{command}: {stderr}");
    }
    db.close().unwrap();
    // Another test of this binary may be spawning a process at this moment: between its fork and
    // its exec the child holds a copy of every descriptor, our LOCK file's included, and an
    // flock lock lives as long as any copy. So the lock may linger for an instant after close.
    let mut attempts = 0;
    let out = loop {
        match mtrdb_result(&["stat", path]) {
            Ok(out) => break out,
            Err(stderr) if stderr.contains("already open") && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(stderr) => panic!("stat after close: {stderr}"),
        }
    };
    assert!(out.contains("state         clean"), "{out}");
}

#[test]
fn a_directory_without_a_database_is_refused_and_left_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    for args in [vec!["stat", path], vec!["check", path], vec!["log", path], vec!["dump", path], vec!["recover", path]]
    {
        let stderr = mtrdb_fails(&args);
        assert!(stderr.contains("no mtrdb database"), "{args:?}: {stderr}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was created");
    mtrdb_fails(&["stat", "/nonexistent/mtrdb/dir"]);
}
