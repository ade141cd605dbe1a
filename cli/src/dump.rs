//! `mtrdb dump` and `mtrdb load`: export and import in a plain text format, for backup and
//! migration.
//!
//! # Dump format, version 1
//! ```text
//! # mtrdb dump v1
//! <hex key>\t<hex value>
//! ...
//! # end entries=<N>
//! ```
//! - Line 1 is exactly `# mtrdb dump v1`.
//! - One line per entry, keys ascending (as `dump` writes them; `load` accepts any order, and a
//!   later line for the same key wins). Key and value are lowercase hex (either case is read),
//!   separated by one tab; an empty value is an empty field.
//! - The last line is `# end entries=<N>`, `N` the number of entry lines. It is required: a dump
//!   cut short (a full disk, an interrupted copy) is refused instead of loaded in part.
//! - Other lines starting with `#`, and blank lines, are comments. Lines end with `\n` (a `\r`
//!   before it is tolerated).
//!
//! Text, so that a dump can be read, diffed, grepped and edited with ordinary tools, and hex, so
//! that any key and value bytes survive any tool. It doubles the size; compress it if that
//! matters.
//!
//! `dump` reads the database as recovery (in memory) would leave it and never modifies it. `load`
//! writes in atomic batches of up to [`LOAD_BATCH_ENTRIES`] entries or [`LOAD_BATCH_BYTES`]
//! bytes; a dump file is parsed whole before its first batch is written, so a damaged file
//! writes nothing.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use mtrdb::{Db, Options, WriteBatch};

use crate::show;
use crate::{io_failure, Failure, Outcome};

/// The first line of a dump.
pub const DUMP_HEADER: &str = "# mtrdb dump v1";
/// The trailer line's prefix; the entry count follows.
pub const DUMP_TRAILER_PREFIX: &str = "# end entries=";
/// Entries per batch when loading.
pub const LOAD_BATCH_ENTRIES: usize = 1000;
/// Key and value bytes per batch when loading, so a batch of large values stays well inside the
/// redo log.
pub const LOAD_BATCH_BYTES: usize = 8 << 20;

/// `mtrdb dump DIR [-o FILE]`.
pub fn dump(dir: &Path, output: Option<&Path>) -> Outcome {
    let overlay = show::open_overlay(dir)?;
    let db = overlay.recover().map_err(|e| Failure::new(format!("recovery (in memory) failed: {e}")))?;
    let sink: Box<dyn Write> = match output {
        Some(path) => Box::new(File::create(path).map_err(io_failure("creating", path))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(sink);
    writeln!(out, "{DUMP_HEADER}")?;
    let mut entries = 0u64;
    for entry in db.iter() {
        let (key, value) = entry.map_err(|e| Failure::new(format!("reading entry {}: {e}", entries + 1)))?;
        writeln!(out, "{}\t{}", show::hex(&key), show::hex(&value))?;
        entries += 1;
    }
    writeln!(out, "{DUMP_TRAILER_PREFIX}{entries}")?;
    out.flush()?;
    if let Some(path) = output {
        out.into_inner().map_err(|e| Failure::new(format!("writing {}: {}", path.display(), e.error())))?.flush()?;
        eprintln!("dumped {entries} entries from {} to {}", dir.display(), path.display());
    }
    Ok(())
}

/// Parses a dump, calling `entry` for each entry in order; returns the entry count.
fn parse(input: impl BufRead, mut entry: impl FnMut(Vec<u8>, Vec<u8>) -> Outcome) -> Outcome<u64> {
    let mut lines = input.split(b'\n');
    let mut line_number = 0u64;
    let mut next_line = || -> Outcome<Option<String>> {
        line_number += 1;
        match lines.next() {
            None => Ok(None),
            Some(line) => {
                let mut line = line.map_err(|e| Failure::new(format!("reading line {line_number}: {e}")))?;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                String::from_utf8(line)
                    .map(Some)
                    .map_err(|_| Failure::new(format!("line {line_number} is not text: not an mtrdb dump")))
            }
        }
    };
    match next_line()? {
        Some(line) if line == DUMP_HEADER => {}
        _ => return Err(Failure::new(format!("not an mtrdb dump: the first line is not `{DUMP_HEADER}`"))),
    }
    let mut count = 0u64;
    let mut number = 1u64;
    loop {
        number += 1;
        let Some(line) = next_line()? else {
            return Err(Failure::new(format!(
                "the dump ends after {count} entries without its `{DUMP_TRAILER_PREFIX}N` line: it was cut short"
            )));
        };
        if let Some(declared) = line.strip_prefix(DUMP_TRAILER_PREFIX) {
            let declared: u64 = declared
                .trim()
                .parse()
                .map_err(|_| Failure::new(format!("line {number}: a trailer without an entry count")))?;
            if declared != count {
                return Err(Failure::new(format!("the trailer counts {declared} entries, the dump holds {count}")));
            }
            while let Some(after) = next_line()? {
                number += 1;
                if !after.trim().is_empty() {
                    return Err(Failure::new(format!("line {number}: text after the trailer line")));
                }
            }
            return Ok(count);
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| Failure::new(format!("line {number}: {what}"));
        let (key, value) = line.split_once('\t').ok_or_else(|| bad("no tab between key and value"))?;
        let key = show::unhex(key).ok_or_else(|| bad("the key is not hex"))?;
        let value = show::unhex(value).ok_or_else(|| bad("the value is not hex"))?;
        if key.is_empty() || key.len() > mtrdb::MAX_KEY_BYTES {
            return Err(bad(&format!("a key of {} bytes (keys are 1 to {} bytes)", key.len(), mtrdb::MAX_KEY_BYTES)));
        }
        if value.len() > mtrdb::MAX_VALUE_BYTES {
            return Err(bad(&format!("a value of {} bytes (at most {})", value.len(), mtrdb::MAX_VALUE_BYTES)));
        }
        count += 1;
        entry(key, value)?;
    }
}

/// `mtrdb load DIR [-i FILE] [--page-size BYTES]`.
pub fn load(dir: &Path, input: Option<&Path>, page_size: Option<usize>) -> Outcome {
    let open_input = |path: &Path| -> Outcome<BufReader<File>> {
        Ok(BufReader::new(File::open(path).map_err(io_failure("opening", path))?))
    };
    if let Some(path) = input {
        // Parse the whole file first: a damaged dump then writes nothing.
        parse(open_input(path)?, |_, _| Ok(()))?;
    }
    let mut options = Options::default();
    if let Some(size) = page_size {
        options = options.page_size(size);
    }
    let db = Db::open_with(dir, options)?;
    let mut loader = Loader { db: &db, batch: WriteBatch::new(), batch_bytes: 0, batches: 0 };
    let entries = match input {
        Some(path) => parse(open_input(path)?, |key, value| loader.add(key, value))?,
        None => match parse(std::io::stdin().lock(), |key, value| loader.add(key, value)) {
            Ok(entries) => entries,
            Err(Failure::Message(message)) => {
                return Err(Failure::new(format!(
                    "{message} ({} batches read from standard input before it were already loaded)",
                    loader.batches
                )))
            }
            Err(other) => return Err(other),
        },
    };
    loader.write()?;
    let batches = loader.batches;
    db.close()?;
    eprintln!("loaded {entries} entries in {batches} batches into {}", dir.display());
    Ok(())
}

struct Loader<'a> {
    db: &'a Db,
    batch: WriteBatch,
    batch_bytes: usize,
    batches: u64,
}

impl Loader<'_> {
    fn add(&mut self, key: Vec<u8>, value: Vec<u8>) -> Outcome {
        if !self.batch.is_empty() && self.batch_bytes + key.len() + value.len() > LOAD_BATCH_BYTES {
            self.write()?;
        }
        self.batch_bytes += key.len() + value.len();
        self.batch.insert(key, value);
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

    fn entries(text: &str) -> Outcome<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut found = Vec::new();
        parse(text.as_bytes(), |key, value| {
            found.push((key, value));
            Ok(())
        })?;
        Ok(found)
    }

    #[test]
    fn parses_a_dump_and_refuses_damaged_ones() {
        let good = "# mtrdb dump v1\n6b31\t76\n# a comment\n\n6b32\t\n# end entries=2\n";
        assert_eq!(entries(good).unwrap(), vec![(b"k1".to_vec(), b"v".to_vec()), (b"k2".to_vec(), Vec::new())]);
        assert!(entries("# mtrdb dump v1\r\n6b31\t76\r\n# end entries=1\r\n").is_ok());
        for bad in [
            "",
            "6b31\t76\n# end entries=1\n",
            "# mtrdb dump v1\n6b31\t76\n",
            "# mtrdb dump v1\n6b31\t76\n# end entries=2\n",
            "# mtrdb dump v1\n6b3\t76\n# end entries=1\n",
            "# mtrdb dump v1\n6b31 76\n# end entries=1\n",
            "# mtrdb dump v1\n\t76\n# end entries=1\n",
            "# mtrdb dump v1\n# end entries=0\n6b31\t76\n",
        ] {
            assert!(entries(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
