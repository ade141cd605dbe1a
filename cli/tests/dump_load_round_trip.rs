//! `dump` then `load` into a new directory yields identical contents: for a crashed database
//! (dumped as recovery leaves it), and for binary keys, empty values, values in overflow chains
//! and more entries than one load batch holds. `load` into an existing database adds to it; a
//! damaged or truncated dump is refused before anything is written.
//!
//! Guards: the dump format as documented (header, hex fields, trailer) and the batching of load.

mod common;

use common::{contents, crashed_mid_split, mtrdb, mtrdb_fails, mtrdb_ok, parse_dump, Model};

#[test]
fn a_crashed_database_round_trips_through_a_dump_file() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let (model, _) = crashed_mid_split(source.path());
    let dump_file = target.path().join("backup.dump");
    let new_db = target.path().join("restored");
    let output = mtrdb(&["dump", source.path().to_str().unwrap(), "-o", dump_file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("dumped {} entries", model.len())));
    let text = std::fs::read_to_string(&dump_file).unwrap();
    assert_eq!(parse_dump(&text), model);
    let output = mtrdb(&["load", new_db.to_str().unwrap(), "-i", dump_file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(contents(&new_db), model);
    // And the new database dumps to the very same text.
    assert_eq!(mtrdb_ok(&["dump", new_db.to_str().unwrap()]), text);
}

#[test]
fn binary_keys_empty_and_large_values_and_many_batches_round_trip() {
    let source = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    {
        let db = mtrdb::Db::open(source.path()).unwrap();
        let mut batch = mtrdb::WriteBatch::new();
        for i in 0..2500u32 {
            let key = [&i.to_le_bytes()[..], b"\x00\t\n\xff"].concat();
            let value = match i % 5 {
                0 => Vec::new(),
                1 => vec![b'\n'; 10],
                _ => i.to_le_bytes().repeat(3),
            };
            batch.insert(&key, &value);
            model.insert(key, value);
        }
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        batch.insert(b"overflow", &big);
        model.insert(b"overflow".to_vec(), big);
        db.write(batch).unwrap();
        db.close().unwrap();
    }
    let dump = mtrdb_ok(&["dump", source.path().to_str().unwrap()]);
    assert_eq!(parse_dump(&dump), model);
    let target = tempfile::tempdir().unwrap();
    let target_db = target.path().join("db");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mtrdb"))
        .args(["load", target_db.to_str().unwrap(), "--page-size", "8192"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(dump.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("loaded 2501 entries in 3 batches"), "{stderr}");
    assert_eq!(contents(&target_db), model);
    assert!(mtrdb_ok(&["stat", target_db.to_str().unwrap()]).contains("page size     8192 bytes"));

    // Into an existing database: entries are added, same keys replaced.
    let extra = target.path().join("extra.dump");
    std::fs::write(&extra, "# mtrdb dump v1\n6f766572666c6f77\t6e6577\n7a7a\t\n# end entries=2\n").unwrap();
    mtrdb_ok(&["load", target_db.to_str().unwrap(), "-i", extra.to_str().unwrap()]);
    model.insert(b"overflow".to_vec(), b"new".to_vec());
    model.insert(b"zz".to_vec(), Vec::new());
    assert_eq!(contents(&target_db), model);
}

#[test]
fn a_damaged_dump_writes_nothing() {
    let target = tempfile::tempdir().unwrap();
    let db_dir = target.path().join("db");
    for (text, expected) in [
        ("6b\t76\n# end entries=1\n", "not an mtrdb dump"),
        ("# mtrdb dump v1\n6b31\t76\n6b32\t77\n", "cut short"),
        ("# mtrdb dump v1\n6b31\t76\n6b3\t77\n# end entries=2\n", "line 3"),
        ("# mtrdb dump v1\n6b31\t76\n# end entries=5\n", "trailer counts 5"),
    ] {
        let file = target.path().join("bad.dump");
        std::fs::write(&file, text).unwrap();
        let stderr = mtrdb_fails(&["load", db_dir.to_str().unwrap(), "-i", file.to_str().unwrap()]);
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
        assert!(!db_dir.exists(), "a refused dump created the database");
    }
}
