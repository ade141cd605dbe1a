//! `mtrdb dump` and `mtrdb load`: export and import in a plain text format, for backup and
//! migration.
//!
//! `dump` writes version 2, which carries keyspaces. `load` reads version 1 or 2, as line 1
//! says; a version-1 dump loads into the default keyspace.
//!
//! # Dump format, version 2
//! ```text
//! # mtrdb dump v2
//! <hex key>\t<hex value>            the default keyspace's entries
//! ...
//! # keyspace <hex name>             a named keyspace starts ...
//! <hex key>\t<hex value>            ... and these are its entries
//! ...
//! # keyspace <hex name>
//! ...
//! # end entries=<N> keyspaces=<K>
//! ```
//! - Line 1 is exactly `# mtrdb dump v2`.
//! - An *entry line* is the key in hex, one tab (0x09), the value in hex: lowercase pairs of hex
//!   digits as `dump` writes them (`load` reads either case); an empty value is an empty field.
//!   Keys are 1 to [`mtrdb::MAX_KEY_BYTES`] bytes, values at most [`mtrdb::MAX_VALUE_BYTES`].
//! - The entry lines before the first keyspace line are the default keyspace's.
//! - A *keyspace line* is the 11 bytes `# keyspace ` (`#`, space, `keyspace`, space) then the
//!   keyspace's name: its UTF-8 bytes in hex (lowercase from `dump`, either case for `load`), 1
//!   to [`mtrdb::MAX_KEYSPACE_NAME_BYTES`] bytes (2 to 510 hex digits). The entry lines after it,
//!   up to the next keyspace line or the trailer, are that keyspace's. `load` creates the
//!   keyspace (or opens it, if the database has it) when it reads the line, so a keyspace line
//!   without entries still makes the keyspace. A name that is not hex, not UTF-8, or not 1 to 255
//!   bytes is refused, and so is a name that an earlier keyspace line named already. Every line
//!   starting with `# keyspace` followed by a space, a tab or the line's end is a keyspace line,
//!   and must be well formed (`load` ignores whitespace around the hex).
//! - `dump` writes the default keyspace, then the named keyspaces sorted by name (bytewise), each
//!   with its keys ascending. `load` accepts any order of keyspaces and of entries, and a later
//!   line for the same key in the same keyspace wins.
//! - The last line is `# end entries=<N> keyspaces=<K>`: `N` the number of entry lines (in all
//!   keyspaces), `K` the number of keyspace lines, both decimal, separated by one space (`load`
//!   accepts more spaces). It is required: a dump cut short (a full disk, an interrupted copy) is
//!   refused instead of loaded in part, and so is one whose counts disagree with its lines. Every
//!   line starting with `# end` followed by a space, a tab or the line's end is taken for the
//!   trailer, and must be well formed; only blank lines may follow it.
//! - Other lines starting with `#`, and blank lines, are comments.
//! - Lines end with `\n` (a `\r` before it is tolerated); `dump` ends every line, the last one
//!   too, with `\n`. All of a dump `dump` writes is ASCII.
//!
//! The name is hex, like keys and values, because a name may hold any UTF-8: tabs, line breaks,
//! a leading `#` or trailing spaces would not survive a plain-text field.
//!
//! # Dump format, version 1
//! ```text
//! # mtrdb dump v1
//! <hex key>\t<hex value>
//! ...
//! # end entries=<N>
//! ```
//! - Line 1 is exactly `# mtrdb dump v1`.
//! - One line per entry, keys ascending (as `dump` wrote them; `load` accepts any order, and a
//!   later line for the same key wins). Key and value are lowercase hex (either case is read),
//!   separated by one tab; an empty value is an empty field.
//! - The last line is `# end entries=<N>`, `N` the number of entry lines. It is required: a dump
//!   cut short (a full disk, an interrupted copy) is refused instead of loaded in part.
//! - Other lines starting with `#` (`# keyspace ...` too), and blank lines, are comments. Lines
//!   end with `\n` (a `\r` before it is tolerated).
//!
//! All entries of a version-1 dump go to the default keyspace.
//!
//! Text, so that a dump can be read, diffed, grepped and edited with ordinary tools, and hex, so
//! that any key, value and name bytes survive any tool. It doubles the size; compress it if that
//! matters.
//!
//! `dump` reads the database as recovery (in memory) would leave it and never modifies it. `load`
//! writes in atomic batches of up to [`LOAD_BATCH_ENTRIES`] entries or [`LOAD_BATCH_BYTES`]
//! bytes (a batch may span keyspaces), and creates each keyspace as it reaches its line; a dump
//! file is parsed whole before its first batch is written or its first keyspace created, so a
//! damaged file writes nothing. From standard input, which cannot be read twice, the batches and
//! keyspaces before a damaged line stay loaded.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use mtrdb::{Db, Keyspace, Options, WriteBatch};

use crate::show;
use crate::{io_failure, Failure, Outcome};

/// The first line of a version-1 dump.
pub const DUMP_HEADER_V1: &str = "# mtrdb dump v1";
/// The first line of a version-2 dump: the version `dump` writes.
pub const DUMP_HEADER_V2: &str = "# mtrdb dump v2";
/// The version-1 trailer line's prefix; the entry count follows.
pub const DUMP_TRAILER_PREFIX_V1: &str = "# end entries=";
/// The word that starts a version-2 trailer line (`# end entries=<N> keyspaces=<K>`).
const TRAILER_V2: &str = "# end";
/// The word that starts a version-2 keyspace line; a space and the name in hex follow.
const KEYSPACE_V2: &str = "# keyspace";
/// Entries per batch when loading.
pub const LOAD_BATCH_ENTRIES: usize = 1000;
/// Key and value bytes per batch when loading, so a batch of large values stays well inside the
/// redo log.
pub const LOAD_BATCH_BYTES: usize = 8 << 20;

/// `mtrdb dump DIR [-o FILE]`.
pub fn dump(dir: &Path, output: Option<&Path>) -> Outcome {
    let overlay = show::open_overlay(dir)?;
    let db = overlay.recover().map_err(|e| Failure::new(format!("recovery (in memory) failed: {e}")))?;
    let names = db.keyspaces().map_err(|e| Failure::new(format!("listing the keyspaces: {e}")))?;
    let sink: Box<dyn Write> = match output {
        Some(path) => Box::new(File::create(path).map_err(io_failure("creating", path))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(sink);
    writeln!(out, "{DUMP_HEADER_V2}")?;
    let mut entries = 0u64;
    let mut write_entries = |out: &mut BufWriter<Box<dyn Write>>, keyspace: &Keyspace<'_>| -> Outcome {
        let mut in_keyspace = 0u64;
        for entry in keyspace.iter() {
            let (key, value) = entry.map_err(|e| {
                let which = match keyspace.name() {
                    "" => "the default keyspace".to_string(),
                    name => format!("keyspace {name:?}"),
                };
                Failure::new(format!("reading entry {} of {which}: {e}", in_keyspace + 1))
            })?;
            writeln!(out, "{}\t{}", show::hex(&key), show::hex(&value))?;
            in_keyspace += 1;
        }
        entries += in_keyspace;
        Ok(())
    };
    write_entries(&mut out, &db.default_keyspace())?;
    for name in &names {
        let keyspace = db.keyspace(name).map_err(|e| Failure::new(format!("opening keyspace {name:?}: {e}")))?;
        writeln!(out, "{KEYSPACE_V2} {}", show::hex(name.as_bytes()))?;
        write_entries(&mut out, &keyspace)?;
    }
    writeln!(out, "{TRAILER_V2} entries={entries} keyspaces={}", names.len())?;
    out.flush()?;
    if let Some(path) = output {
        out.into_inner().map_err(|e| Failure::new(format!("writing {}: {}", path.display(), e.error())))?.flush()?;
        eprintln!(
            "dumped {entries} entries ({}) from {} to {}",
            keyspaces_phrase(names.len() as u64),
            dir.display(),
            path.display()
        );
    }
    Ok(())
}

/// "the default keyspace and 2 named keyspaces", for the summaries.
fn keyspaces_phrase(named: u64) -> String {
    match named {
        0 => "the default keyspace".to_string(),
        1 => "the default keyspace and 1 named keyspace".to_string(),
        n => format!("the default keyspace and {n} named keyspaces"),
    }
}

/// What a dump holds, in the order of its lines.
#[derive(Debug, PartialEq, Eq)]
enum Item {
    /// A keyspace line (version 2): the entries after it, up to the next one, are this keyspace's.
    Keyspace(String),
    /// An entry: of the default keyspace before the first `Keyspace`, else of the latest one.
    Entry(Vec<u8>, Vec<u8>),
}

/// What a whole dump held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    version: u8,
    entries: u64,
    /// Keyspace lines (none in version 1).
    keyspaces: u64,
}

/// A dump's lines as text, numbered from 1.
struct Lines<R> {
    lines: std::io::Split<R>,
    /// The number of the line `next` returned last.
    number: u64,
}

impl<R: BufRead> Lines<R> {
    fn new(input: R) -> Lines<R> {
        Lines { lines: input.split(b'\n'), number: 0 }
    }

    /// The next line without its line end, or `None` at the end of the input.
    fn next(&mut self) -> Outcome<Option<String>> {
        let Some(line) = self.lines.next() else { return Ok(None) };
        self.number += 1;
        let number = self.number;
        let mut line = line.map_err(|e| Failure::new(format!("reading line {number}: {e}")))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8(line)
            .map(Some)
            .map_err(|_| Failure::new(format!("line {number} is not text: not an mtrdb dump")))
    }

    /// A failure at the line `next` returned last.
    fn bad(&self, what: &str) -> Failure {
        Failure::new(format!("line {}: {what}", self.number))
    }

    /// After the trailer: refuses anything but blank lines.
    fn finish(&mut self) -> Outcome {
        while let Some(after) = self.next()? {
            if !after.trim().is_empty() {
                return Err(self.bad("text after the trailer line"));
            }
        }
        Ok(())
    }
}

/// Parses a dump of either version, calling `item` for each keyspace line and entry in order.
fn parse(input: impl BufRead, mut item: impl FnMut(Item) -> Outcome) -> Outcome<Summary> {
    let mut lines = Lines::new(input);
    match lines.next()? {
        Some(line) if line == DUMP_HEADER_V1 => parse_v1(&mut lines, &mut item),
        Some(line) if line == DUMP_HEADER_V2 => parse_v2(&mut lines, &mut item),
        Some(line) if line.starts_with("# mtrdb dump v") => Err(Failure::new(format!(
            "an mtrdb dump of a version this mtrdb does not read (`{line}`): it reads versions 1 and 2"
        ))),
        _ => Err(Failure::new(format!(
            "not an mtrdb dump: the first line is neither `{DUMP_HEADER_V1}` nor `{DUMP_HEADER_V2}`"
        ))),
    }
}

/// Version 1, after its header.
fn parse_v1(lines: &mut Lines<impl BufRead>, item: &mut impl FnMut(Item) -> Outcome) -> Outcome<Summary> {
    let mut count = 0u64;
    loop {
        let Some(line) = lines.next()? else {
            return Err(Failure::new(format!(
                "the dump ends after {count} entries without its `{DUMP_TRAILER_PREFIX_V1}N` line: it was cut short"
            )));
        };
        if let Some(declared) = line.strip_prefix(DUMP_TRAILER_PREFIX_V1) {
            let declared: u64 = declared.trim().parse().map_err(|_| lines.bad("a trailer without an entry count"))?;
            if declared != count {
                return Err(Failure::new(format!("the trailer counts {declared} entries, the dump holds {count}")));
            }
            lines.finish()?;
            return Ok(Summary { version: 1, entries: count, keyspaces: 0 });
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = entry(lines, &line)?;
        count += 1;
        item(Item::Entry(key, value))?;
    }
}

/// Version 2, after its header.
fn parse_v2(lines: &mut Lines<impl BufRead>, item: &mut impl FnMut(Item) -> Outcome) -> Outcome<Summary> {
    let mut entries = 0u64;
    let mut keyspaces = 0u64;
    // Each name with the line that named it.
    let mut named: HashMap<String, u64> = HashMap::new();
    loop {
        let Some(line) = lines.next()? else {
            return Err(Failure::new(format!(
                "the dump ends after {entries} entries and {keyspaces} keyspaces without its \
                 `{TRAILER_V2} entries=N keyspaces=K` line: it was cut short"
            )));
        };
        if let Some(rest) = directive(&line, TRAILER_V2) {
            let (declared_entries, declared_keyspaces) = trailer_counts(rest).ok_or_else(|| {
                lines.bad(&format!("a malformed trailer (it must be `{TRAILER_V2} entries=N keyspaces=K`)"))
            })?;
            if declared_entries != entries {
                return Err(Failure::new(format!(
                    "the trailer counts {declared_entries} entries, the dump holds {entries}"
                )));
            }
            if declared_keyspaces != keyspaces {
                return Err(Failure::new(format!(
                    "the trailer counts {declared_keyspaces} keyspaces, the dump holds {keyspaces}"
                )));
            }
            lines.finish()?;
            return Ok(Summary { version: 2, entries, keyspaces });
        }
        if let Some(rest) = directive(&line, KEYSPACE_V2) {
            let name = keyspace_name(lines, rest.trim())?;
            if let Some(first) = named.get(&name) {
                return Err(lines.bad(&format!("keyspace {name:?} again (line {first} started it already)")));
            }
            named.insert(name.clone(), lines.number);
            keyspaces += 1;
            item(Item::Keyspace(name))?;
            continue;
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = entry(lines, &line)?;
        entries += 1;
        item(Item::Entry(key, value))?;
    }
}

/// If `line` is `word` alone or `word` then whitespace: what follows `word`.
fn directive<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(word)?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

/// `entries=<N> keyspaces=<K>` (what follows `# end` in a version-2 trailer).
fn trailer_counts(text: &str) -> Option<(u64, u64)> {
    let count = |field: Option<&str>, name: &str| -> Option<u64> {
        let digits = field?.strip_prefix(name)?.strip_prefix('=')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let mut fields = text.split_ascii_whitespace();
    let entries = count(fields.next(), "entries")?;
    let keyspaces = count(fields.next(), "keyspaces")?;
    fields.next().is_none().then_some((entries, keyspaces))
}

/// The name of a version-2 keyspace line, from its hex.
fn keyspace_name(lines: &Lines<impl BufRead>, hex: &str) -> Outcome<String> {
    let bytes = show::unhex(hex).ok_or_else(|| lines.bad("the keyspace name is not hex"))?;
    if bytes.is_empty() || bytes.len() > mtrdb::MAX_KEYSPACE_NAME_BYTES {
        return Err(lines.bad(&format!(
            "a keyspace name of {} bytes (names are 1 to {} bytes of UTF-8)",
            bytes.len(),
            mtrdb::MAX_KEYSPACE_NAME_BYTES
        )));
    }
    String::from_utf8(bytes).map_err(|_| lines.bad("the keyspace name is not UTF-8"))
}

/// An entry line: its key and value.
fn entry(lines: &Lines<impl BufRead>, line: &str) -> Outcome<(Vec<u8>, Vec<u8>)> {
    let (key, value) = line.split_once('\t').ok_or_else(|| lines.bad("no tab between key and value"))?;
    let key = show::unhex(key).ok_or_else(|| lines.bad("the key is not hex"))?;
    let value = show::unhex(value).ok_or_else(|| lines.bad("the value is not hex"))?;
    if key.is_empty() || key.len() > mtrdb::MAX_KEY_BYTES {
        return Err(lines.bad(&format!("a key of {} bytes (keys are 1 to {} bytes)", key.len(), mtrdb::MAX_KEY_BYTES)));
    }
    if value.len() > mtrdb::MAX_VALUE_BYTES {
        return Err(lines.bad(&format!("a value of {} bytes (at most {})", value.len(), mtrdb::MAX_VALUE_BYTES)));
    }
    Ok((key, value))
}

/// `mtrdb load DIR [-i FILE] [--page-size BYTES]`.
pub fn load(dir: &Path, input: Option<&Path>, page_size: Option<usize>) -> Outcome {
    let open_input = |path: &Path| -> Outcome<BufReader<File>> {
        Ok(BufReader::new(File::open(path).map_err(io_failure("opening", path))?))
    };
    if let Some(path) = input {
        // Parse the whole file first: a damaged dump then writes nothing.
        parse(open_input(path)?, |_| Ok(()))?;
    }
    let mut options = Options::default();
    if let Some(size) = page_size {
        options = options.page_size(size);
    }
    let db = Db::open_with(dir, options)?;
    let mut loader =
        Loader { db: &db, keyspace: None, batch: WriteBatch::new(), batch_bytes: 0, batches: 0, keyspaces: 0 };
    let summary = match input {
        Some(path) => parse(open_input(path)?, |item| loader.add(item))?,
        None => match parse(std::io::stdin().lock(), |item| loader.add(item)) {
            Ok(summary) => summary,
            Err(Failure::Message(message)) => {
                return Err(Failure::new(format!(
                    "{message} ({} batches read from standard input before it were already loaded, and {} \
                     keyspaces created or opened)",
                    loader.batches, loader.keyspaces
                )))
            }
            Err(other) => return Err(other),
        },
    };
    loader.write()?;
    let batches = loader.batches;
    drop(loader);
    db.close()?;
    eprintln!(
        "loaded {} entries in {batches} batches into {} ({}, from a version-{} dump)",
        summary.entries,
        dir.display(),
        keyspaces_phrase(summary.keyspaces),
        summary.version
    );
    Ok(())
}

struct Loader<'a> {
    db: &'a Db,
    /// The keyspace the entries go to; `None` for the default one.
    keyspace: Option<Keyspace<'a>>,
    batch: WriteBatch,
    batch_bytes: usize,
    batches: u64,
    /// Keyspaces created or opened.
    keyspaces: u64,
}

impl Loader<'_> {
    fn add(&mut self, item: Item) -> Outcome {
        let (key, value) = match item {
            Item::Keyspace(name) => {
                let keyspace =
                    self.db.keyspace(&name).map_err(|e| Failure::new(format!("creating keyspace {name:?}: {e}")))?;
                self.keyspace = Some(keyspace);
                self.keyspaces += 1;
                return Ok(());
            }
            Item::Entry(key, value) => (key, value),
        };
        if !self.batch.is_empty() && self.batch_bytes + key.len() + value.len() > LOAD_BATCH_BYTES {
            self.write()?;
        }
        self.batch_bytes += key.len() + value.len();
        match &self.keyspace {
            Some(keyspace) => self.batch.insert_in(keyspace, key, value),
            None => self.batch.insert(key, value),
        };
        if self.batch.len() >= LOAD_BATCH_ENTRIES {
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> Outcome {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.db.write(batch)?;
        self.batches += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Outcome<(Vec<Item>, Summary)> {
        let mut found = Vec::new();
        let summary = parse(text.as_bytes(), |item| {
            found.push(item);
            Ok(())
        })?;
        Ok((found, summary))
    }

    fn entry(key: &[u8], value: &[u8]) -> Item {
        Item::Entry(key.to_vec(), value.to_vec())
    }

    fn error(text: &str) -> String {
        match items(text) {
            Ok(parsed) => panic!("{text:?} was accepted: {parsed:?}"),
            Err(Failure::Message(message)) => message,
            Err(Failure::BrokenPipe) => panic!("{text:?}: a broken pipe"),
        }
    }

    #[test]
    fn parses_a_v1_dump_and_refuses_damaged_ones() {
        let good = "# mtrdb dump v1\n6b31\t76\n# a comment\n# keyspace 6b73\n\n6b32\t\n# end entries=2\n";
        let (found, summary) = items(good).unwrap();
        assert_eq!(found, vec![entry(b"k1", b"v"), entry(b"k2", b"")]);
        assert_eq!(summary, Summary { version: 1, entries: 2, keyspaces: 0 });
        assert!(items("# mtrdb dump v1\r\n6b31\t76\r\n# end entries=1\r\n").is_ok());
        assert!(items("# mtrdb dump v1\n6b31\t76\n# end entries= 1 \n\n").is_ok());
        for bad in [
            "",
            "6b31\t76\n# end entries=1\n",
            "# mtrdb dump v1\n6b31\t76\n",
            "# mtrdb dump v1\n6b31\t76\n# end entries=2\n",
            "# mtrdb dump v1\n6b3\t76\n# end entries=1\n",
            "# mtrdb dump v1\n6b31 76\n# end entries=1\n",
            "# mtrdb dump v1\n\t76\n# end entries=1\n",
            "# mtrdb dump v1\n# end entries=0\n6b31\t76\n",
            "# mtrdb dump v1\n6b31\t76\n# end entries=1 keyspaces=0\n",
        ] {
            assert!(items(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn parses_a_v2_dump_with_keyspaces() {
        let good = "# mtrdb dump v2\n6b31\t76\n# keyspace 6b73\n# a comment\n\n6b32\t\n# keyspace C3A9\n\
                    # keyspaces and ends: comments\n# ending\n# keyspace 6b7332  \n6b33\t00ff\n\
                    # end entries=3 keyspaces=3\n\n";
        let (found, summary) = items(good).unwrap();
        assert_eq!(
            found,
            vec![
                entry(b"k1", b"v"),
                Item::Keyspace("ks".into()),
                entry(b"k2", b""),
                Item::Keyspace("é".into()),
                Item::Keyspace("ks2".into()),
                entry(b"k3", b"\x00\xff"),
            ]
        );
        assert_eq!(summary, Summary { version: 2, entries: 3, keyspaces: 3 });
        assert!(items("# mtrdb dump v2\r\n# keyspace 6b73\r\n6b31\t76\r\n# end entries=1 keyspaces=1\r\n").is_ok());
        assert_eq!(items("# mtrdb dump v2\n# end  entries=0\tkeyspaces=0 \n").unwrap().1.entries, 0);
        let longest = format!("# mtrdb dump v2\n# keyspace {}\n# end entries=0 keyspaces=1\n", "61".repeat(255));
        assert!(items(&longest).is_ok());
    }

    #[test]
    fn refuses_damaged_v2_dumps_naming_the_line() {
        let too_long = format!("# mtrdb dump v2\n# keyspace {}\n# end entries=0 keyspaces=1\n", "61".repeat(256));
        for (bad, expected) in [
            ("# mtrdb dump v3\n# end entries=0 keyspaces=0\n", "reads versions 1 and 2"),
            ("# mtrdb dump v2\n6b31\t76\n", "cut short"),
            ("# mtrdb dump v2\n# keyspace 6b73\n6b31\t76\n", "cut short"),
            ("# mtrdb dump v2\n6b31\t76\n# end entries=1\n", "line 3: a malformed trailer"),
            ("# mtrdb dump v2\n6b31\t76\n# end entries=1 keyspaces=0 more\n", "line 3: a malformed trailer"),
            ("# mtrdb dump v2\n6b31\t76\n# end entries=+1 keyspaces=0\n", "line 3: a malformed trailer"),
            ("# mtrdb dump v2\n6b31\t76\n# end\n", "line 3: a malformed trailer"),
            ("# mtrdb dump v2\n6b31\t76\n# end entries=2 keyspaces=0\n", "counts 2 entries, the dump holds 1"),
            ("# mtrdb dump v2\n# keyspace 6b73\n# end entries=0 keyspaces=0\n", "counts 0 keyspaces, the dump holds 1"),
            ("# mtrdb dump v2\n# end entries=0 keyspaces=1\n", "counts 1 keyspaces, the dump holds 0"),
            ("# mtrdb dump v2\n# end entries=0 keyspaces=0\n6b31\t76\n", "line 3: text after the trailer"),
            (
                "# mtrdb dump v2\n6b31\t76\n# keyspace 6b7\n# end entries=1 keyspaces=1\n",
                "line 3: the keyspace name is not hex",
            ),
            ("# mtrdb dump v2\n# keyspace zz\n# end entries=0 keyspaces=1\n", "line 2: the keyspace name is not hex"),
            ("# mtrdb dump v2\n# keyspace\n# end entries=0 keyspaces=1\n", "line 2: a keyspace name of 0 bytes"),
            ("# mtrdb dump v2\n# keyspace \n# end entries=0 keyspaces=1\n", "line 2: a keyspace name of 0 bytes"),
            ("# mtrdb dump v2\n# keyspace c3\n# end entries=0 keyspaces=1\n", "line 2: the keyspace name is not UTF-8"),
            (
                "# mtrdb dump v2\n# keyspace fffe\n# end entries=0 keyspaces=1\n",
                "line 2: the keyspace name is not UTF-8",
            ),
            (too_long.as_str(), "line 2: a keyspace name of 256 bytes"),
            (
                "# mtrdb dump v2\n# keyspace 6b73\n\n# keyspace 6B73\n# end entries=0 keyspaces=2\n",
                "line 4: keyspace \"ks\" again (line 2",
            ),
            ("# mtrdb dump v2\n# keyspace 6b73\n6b3\t76\n# end entries=1 keyspaces=1\n", "line 3: the key is not hex"),
            ("# mtrdb dump v2\n\t76\n# end entries=1 keyspaces=0\n", "line 2: a key of 0 bytes"),
            ("# mtrdb dump v2\n6b31 76\n# end entries=1 keyspaces=0\n", "line 2: no tab"),
        ] {
            let message = error(bad);
            assert!(message.contains(expected), "{bad:?}: {message}");
        }
    }
}
