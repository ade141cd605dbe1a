//! `dump` then `load` into a new directory yields identical contents: for a crashed database
//! (dumped as recovery leaves it), for binary keys, empty values, values in overflow chains and
//! more entries than one load batch holds, and for named keyspaces (an empty one, one with a
//! non-ASCII name), dumping the loaded database again giving the very same bytes. A version-1
//! dump loads into the default keyspace. `load` into an existing database adds to it; a damaged
//! or truncated dump of either version is refused before anything is written.
//!
//! Guards: the dump format as documented (versions 1 and 2: header, hex fields, keyspace lines,
//! trailer) and the batching of load.

mod common;

use std::path::Path;

use common::{
    contents, crashed_mid_split, mtrdb, mtrdb_fails, mtrdb_ok, parse_dump, parse_dump_keyspaces, KeyspaceModels, Model,
};

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

/// Every keyspace of a database directory and its entries (`""` the default keyspace), read
/// through the library (recovering it for real).
fn keyspace_contents(dir: &Path) -> KeyspaceModels {
    let db = mtrdb::Db::open(dir).unwrap();
    let read = |keyspace: mtrdb::Keyspace<'_>| -> Model {
        keyspace.iter().map(|entry| entry.map(|(key, value)| (key.to_vec(), value.to_vec())).unwrap()).collect()
    };
    let mut all = KeyspaceModels::new();
    all.insert(String::new(), read(db.default_keyspace()));
    for name in db.keyspaces().unwrap() {
        let model = read(db.keyspace(&name).unwrap());
        all.insert(name, model);
    }
    db.close().unwrap();
    all
}

/// Runs `mtrdb load DIR` with `input` on standard input; returns its standard error.
fn load_from_stdin(dir: &Path, input: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mtrdb"))
        .args(["load", dir.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap()
}

/// A keyspace name that needs multi-byte UTF-8, and holds a tab and a line feed besides.
const UNICODE_NAME: &str = "données/日本\t\n🦀";

#[test]
fn keyspaces_round_trip_and_the_second_dump_is_byte_identical() {
    let source = tempfile::tempdir().unwrap();
    let mut model = KeyspaceModels::new();
    {
        let db = mtrdb::Db::open(source.path()).unwrap();
        let empty = db.keyspace("empty").unwrap();
        let unicode = db.keyspace(UNICODE_NAME).unwrap();
        let mut default_model = Model::new();
        let mut unicode_model = Model::new();
        let mut batch = mtrdb::WriteBatch::new();
        // More than one load batch in all, spread over two keyspaces.
        for i in 0..1500u32 {
            let key = [&i.to_le_bytes()[..], b"\x00\t\n#\xff"].concat();
            let value = match i % 4 {
                0 => Vec::new(),
                1 => b"\r\n\t# keyspace 00".to_vec(),
                _ => i.to_le_bytes().repeat(5),
            };
            if i % 3 == 0 {
                batch.insert(&key, &value);
                default_model.insert(key, value);
            } else {
                batch.insert_in(&unicode, &key, &value);
                unicode_model.insert(key, value);
            }
        }
        let big: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
        batch.insert_in(&unicode, b"\xff", &big);
        unicode_model.insert(b"\xff".to_vec(), big);
        // The same key in two keyspaces, with different values.
        batch.insert(b"shared", b"default");
        default_model.insert(b"shared".to_vec(), b"default".to_vec());
        batch.insert_in(&unicode, b"shared", b"named");
        unicode_model.insert(b"shared".to_vec(), b"named".to_vec());
        db.write(batch).unwrap();
        assert!(empty.is_empty().unwrap());
        db.close().unwrap();
        model.insert(String::new(), default_model);
        model.insert("empty".to_string(), Model::new());
        model.insert(UNICODE_NAME.to_string(), unicode_model);
    }
    assert_eq!(keyspace_contents(source.path()), model);

    let target = tempfile::tempdir().unwrap();
    let dump_file = target.path().join("backup.dump");
    let output = mtrdb(&["dump", source.path().to_str().unwrap(), "-o", dump_file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let total: usize = model.values().map(Model::len).sum();
    assert!(
        stderr.contains(&format!("dumped {total} entries (the default keyspace and 2 named keyspaces)")),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&dump_file).unwrap();
    assert!(text.starts_with("# mtrdb dump v2\n"), "{}", &text[..40]);
    assert!(text.ends_with(&format!("\n# end entries={total} keyspaces=2\n")));
    let name_lines: Vec<&str> = text.lines().filter(|line| line.starts_with("# keyspace ")).collect();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        name_lines,
        [format!("# keyspace {}", hex(UNICODE_NAME.as_bytes())), format!("# keyspace {}", hex(b"empty"))],
        "the keyspaces, sorted by name"
    );
    assert_eq!(parse_dump_keyspaces(&text), model);

    // Into a new directory from the file, and into another from standard input.
    let from_file = target.path().join("from-file");
    let output = mtrdb(&["load", from_file.to_str().unwrap(), "-i", dump_file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("loaded {total} entries in 2 batches")), "{stderr}");
    assert!(stderr.contains("the default keyspace and 2 named keyspaces, from a version-2 dump"), "{stderr}");
    assert_eq!(keyspace_contents(&from_file), model);
    let from_stdin = target.path().join("from-stdin");
    let output = load_from_stdin(&from_stdin, &text);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(keyspace_contents(&from_stdin), model);

    // The loaded databases dump to the very same bytes.
    assert_eq!(mtrdb_ok(&["dump", from_file.to_str().unwrap()]), text);
    assert_eq!(mtrdb_ok(&["dump", from_stdin.to_str().unwrap()]), text);
    let again = target.path().join("again.dump");
    mtrdb_ok(&["dump", from_file.to_str().unwrap(), "-o", again.to_str().unwrap()]);
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&dump_file).unwrap());

    // Into an existing database with one of the keyspaces: entries are added, same keys
    // replaced, and the keyspace that is new is created.
    let extra = target.path().join("extra.dump");
    let extra_text = format!(
        "# mtrdb dump v2\n# keyspace {}\n736861726564\t6e6577\n# keyspace {}\n# end entries=1 keyspaces=2\n",
        hex(UNICODE_NAME.as_bytes()),
        hex("zzz".as_bytes())
    );
    std::fs::write(&extra, extra_text).unwrap();
    mtrdb_ok(&["load", from_file.to_str().unwrap(), "-i", extra.to_str().unwrap()]);
    model.get_mut(UNICODE_NAME).unwrap().insert(b"shared".to_vec(), b"new".to_vec());
    model.insert("zzz".to_string(), Model::new());
    assert_eq!(keyspace_contents(&from_file), model);
}

#[test]
fn a_v1_dump_loads_into_the_default_keyspace() {
    let target = tempfile::tempdir().unwrap();
    let db_dir = target.path().join("db");
    let file = target.path().join("old.dump");
    // Written by hand as an older mtrdb wrote it; in version 1 a `# keyspace` line is a comment.
    std::fs::write(
        &file,
        "# mtrdb dump v1\n6b31\t76\n# keyspace 6b73\n00ff\t\n\n# a comment\r\n6B32\tFF00\n# end entries=3\n",
    )
    .unwrap();
    let output = mtrdb(&["load", db_dir.to_str().unwrap(), "-i", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("loaded 3 entries in 1 batches"), "{stderr}");
    assert!(stderr.contains("from a version-1 dump"), "{stderr}");
    let model: Model =
        [(b"k1".to_vec(), b"v".to_vec()), (b"\x00\xff".to_vec(), Vec::new()), (b"k2".to_vec(), b"\xff\x00".to_vec())]
            .into_iter()
            .collect();
    assert_eq!(keyspace_contents(&db_dir), KeyspaceModels::from([(String::new(), model.clone())]));
    // Dumped again, it is a version-2 dump of the same entries.
    let text = mtrdb_ok(&["dump", db_dir.to_str().unwrap()]);
    assert_eq!(text, "# mtrdb dump v2\n00ff\t\n6b31\t76\n6b32\tff00\n# end entries=3 keyspaces=0\n");
    assert_eq!(parse_dump(&text), model);

    // From standard input too.
    let from_stdin = target.path().join("from-stdin");
    let output = load_from_stdin(&from_stdin, &std::fs::read_to_string(&file).unwrap());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(contents(&from_stdin), model);
}

#[test]
fn a_damaged_v2_dump_writes_nothing() {
    let target = tempfile::tempdir().unwrap();
    let new_dir = target.path().join("new");
    // An existing database, which must come out unchanged.
    let existing = target.path().join("existing");
    {
        let db = mtrdb::Db::open(&existing).unwrap();
        db.insert(b"old", b"value").unwrap();
        db.keyspace("kept").unwrap().insert(b"k", b"v").unwrap();
        db.close().unwrap();
    }
    let before = keyspace_contents(&existing);
    let good = "# mtrdb dump v2\n6b31\t76\n# keyspace 6b73\n6b32\t77\n# keyspace 656d707479\n\
                # end entries=2 keyspaces=2\n";
    // The good dump loads (so what makes the others fail is their damage).
    let good_file = target.path().join("good.dump");
    std::fs::write(&good_file, good).unwrap();
    let scratch = target.path().join("scratch");
    mtrdb_ok(&["load", scratch.to_str().unwrap(), "-i", good_file.to_str().unwrap()]);
    assert_eq!(keyspace_contents(&scratch).keys().collect::<Vec<_>>(), ["", "empty", "ks"]);

    let long_name =
        format!("# mtrdb dump v2\n6b31\t76\n# keyspace {}\n# end entries=1 keyspaces=1\n", "e697a5".repeat(85) + "61");
    for (text, expected) in [
        (good.replace("keyspaces=2", "keyspaces=3"), "the trailer counts 3 keyspaces, the dump holds 2"),
        (good.replace("keyspaces=2", "keyspaces=1"), "the trailer counts 1 keyspaces, the dump holds 2"),
        (good.replace(" keyspaces=2", ""), "line 6: a malformed trailer"),
        (good.replace("entries=2", "entries=3"), "the trailer counts 3 entries, the dump holds 2"),
        // Cut short: without the trailer, in the middle of it, after a keyspace line, mid-entry.
        (good.replace("# end entries=2 keyspaces=2\n", ""), "cut short"),
        (good.replace("# end entries=2 keyspaces=2\n", "# end entries=2 keysp"), "line 6: a malformed trailer"),
        (good[..good.find("6b32").unwrap()].to_string(), "cut short"),
        (good[..good.find("\t77").unwrap() + 2].to_string(), "line 4: the value is not hex"),
        // Names: not UTF-8, empty, longer than 255 bytes, not hex, named twice.
        (good.replace("# keyspace 6b73", "# keyspace 6bc0"), "line 3: the keyspace name is not UTF-8"),
        (good.replace("# keyspace 6b73", "# keyspace "), "line 3: a keyspace name of 0 bytes"),
        (long_name, "line 3: a keyspace name of 256 bytes"),
        (good.replace("# keyspace 6b73", "# keyspace 6b7"), "line 3: the keyspace name is not hex"),
        (good.replace("656d707479", "6b73"), "line 5: keyspace \"ks\" again (line 3 started it already)"),
        ("# mtrdb dump v9\n# end entries=0 keyspaces=0\n".to_string(), "reads versions 1 and 2"),
    ] {
        let file = target.path().join("bad.dump");
        std::fs::write(&file, &text).unwrap();
        let stderr = mtrdb_fails(&["load", new_dir.to_str().unwrap(), "-i", file.to_str().unwrap()]);
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
        assert!(!new_dir.exists(), "a refused dump created the database");
        let stderr = mtrdb_fails(&["load", existing.to_str().unwrap(), "-i", file.to_str().unwrap()]);
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
        assert_eq!(keyspace_contents(&existing), before, "a refused dump changed the database: {text:?}");
    }
}
