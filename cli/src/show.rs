//! What the commands share: opening a directory for inspection, reading raw pages, classifying
//! them, and presenting bytes (escaped keys, hex, sizes).
//!
//! Everything here reads; nothing writes a database file.

use std::path::Path;
use std::sync::Arc;

use mtr::StorageFile;
use mtrdb::db::{DATA_FILE, DOUBLEWRITE_FILE};
use mtrdb::inspect::OverlayDir;
use mtrdb::page::{self, PageId, PageKind};

use crate::{Failure, Outcome};

/// Opens `dir` for inspection (read-only, locked) after checking it holds a database: a
/// directory without a data file is refused here, before anything could create one.
pub fn open_overlay(dir: &Path) -> Outcome<OverlayDir> {
    if !dir.is_dir() {
        return Err(Failure::new(format!("{} is not a directory", dir.display())));
    }
    let overlay = OverlayDir::open(dir)?;
    if !dir.join(DATA_FILE).is_file() {
        return Err(Failure::new(format!("{} holds no mtrdb database (there is no {DATA_FILE})", dir.display())));
    }
    Ok(overlay)
}

/// A file as it is on disk, or `None` if it does not exist.
pub fn original(overlay: &OverlayDir, name: &str) -> Outcome<Option<Arc<dyn StorageFile>>> {
    overlay
        .original(name)
        .map_err(|error| Failure::new(format!("opening {}: {error}", overlay.path().join(name).display())))
}

/// A file's length, or `None` if it does not exist.
pub fn file_len(overlay: &OverlayDir, name: &str) -> Outcome<Option<u64>> {
    match original(overlay, name)? {
        Some(file) => Ok(Some(file.len().map_err(|e| Failure::new(format!("reading the length of {name}: {e}")))?)),
        None => Ok(None),
    }
}

/// The page size the database claims: from the meta page at the start of the data file, or from
/// the doublewrite file's first page (which holds page 0 while a new database is being created),
/// as the engine itself decides it.
pub fn claimed_page_size(overlay: &OverlayDir) -> Outcome<Option<usize>> {
    for name in [DATA_FILE, DOUBLEWRITE_FILE] {
        let Some(file) = original(overlay, name)? else { continue };
        let mut first_bytes = vec![0u8; page::META_PREFIX_BYTES];
        if file.read_exact_at(&mut first_bytes, 0).is_err() {
            continue;
        }
        let size = page::claimed_page_size(&first_bytes)
            .filter(|size| size.is_power_of_two() && (page::MIN_PAGE_SIZE..=page::MAX_PAGE_SIZE).contains(size));
        if size.is_some() {
            return Ok(size);
        }
    }
    Ok(None)
}

/// Reads page `page_id` of `file`.
pub fn read_page(file: &Arc<dyn StorageFile>, page_id: PageId, page_size: usize) -> Outcome<Vec<u8>> {
    let mut bytes = vec![0u8; page_size];
    file.read_exact_at(&mut bytes, u64::from(page_id) * page_size as u64)
        .map_err(|e| Failure::new(format!("reading page {page_id}: {e}")))?;
    Ok(bytes)
}

/// What a page of the data file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageClass {
    /// Checksum and structure valid.
    Valid(PageKind),
    /// Every byte zero: never written.
    Zeroed,
    /// Checksum or structure wrong: torn, misdirected or corrupt.
    Damaged(String),
}

/// Classifies a page image.
pub fn classify(page_id: PageId, bytes: &[u8]) -> PageClass {
    if bytes.iter().all(|&byte| byte == 0) {
        return PageClass::Zeroed;
    }
    if !page::checksum_ok(page_id, bytes) {
        let stored = page::header(bytes).checksum.get();
        let claimed = page::header(bytes).page_id.get();
        let detail = if claimed != page_id {
            format!("the page claims to be page {claimed}")
        } else {
            format!("checksum {stored:#010x}, computed {:#010x}", page::compute_checksum(page_id, bytes))
        };
        return PageClass::Damaged(detail);
    }
    match page::validate(page_id, bytes) {
        Ok(kind) => PageClass::Valid(kind),
        Err(error) => PageClass::Damaged(error.0),
    }
}

/// Pages of a data file counted by class.
#[derive(Clone, Debug, Default)]
pub struct Census {
    /// Whole pages in the file.
    pub pages: u64,
    /// Valid pages by kind: meta, leaf, branch, overflow, free.
    pub by_kind: [u64; 5],
    /// Never-written pages.
    pub zeroed: u64,
    /// Damaged pages: (id, why), the first few.
    pub damaged: Vec<(PageId, String)>,
    /// Damaged pages in all.
    pub damaged_count: u64,
    /// Bytes after the last whole page.
    pub trailing_bytes: u64,
}

const CENSUS_DAMAGED_SHOWN: usize = 5;

/// Reads every whole page of `file` and classifies it.
pub fn census(file: &Arc<dyn StorageFile>, page_size: usize) -> Outcome<Census> {
    let len = file.len().map_err(|e| Failure::new(format!("reading the data file's length: {e}")))?;
    let pages = len / page_size as u64;
    let mut census = Census { pages, trailing_bytes: len % page_size as u64, ..Census::default() };
    for page_id in 0..pages {
        let Ok(page_id) = PageId::try_from(page_id) else { break };
        let bytes = read_page(file, page_id, page_size)?;
        match classify(page_id, &bytes) {
            PageClass::Valid(kind) => census.by_kind[kind as usize - 1] += 1,
            PageClass::Zeroed => census.zeroed += 1,
            PageClass::Damaged(detail) => {
                census.damaged_count += 1;
                if census.damaged.len() < CENSUS_DAMAGED_SHOWN {
                    census.damaged.push((page_id, detail));
                }
            }
        }
    }
    Ok(census)
}

impl Census {
    /// One line: `20 pages: meta 1, leaf 12, ...`.
    pub fn summary(&self) -> String {
        let [meta, leaf, branch, overflow, free] = self.by_kind;
        let mut line = format!(
            "{} pages: meta {meta}, leaf {leaf}, branch {branch}, overflow {overflow}, free {free}",
            self.pages
        );
        if self.zeroed > 0 {
            line.push_str(&format!(", never written {}", self.zeroed));
        }
        if self.damaged_count > 0 {
            line.push_str(&format!(", DAMAGED {}", self.damaged_count));
        }
        if self.trailing_bytes > 0 {
            line.push_str(&format!(" (+{} bytes of a partial page)", self.trailing_bytes));
        }
        line
    }
}

/// The name of a page kind.
pub fn kind_name(kind: PageKind) -> &'static str {
    match kind {
        PageKind::Meta => "meta",
        PageKind::Leaf => "leaf",
        PageKind::Branch => "branch",
        PageKind::Overflow => "overflow",
        PageKind::Free => "free",
    }
}

/// Bytes in double quotes, escaped and shortened as `mtrdb log` shows keys.
pub fn escaped(bytes: &[u8], max: usize) -> String {
    mtrdb::redo::escape_bytes(bytes, max)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// Decodes hex (either case); `None` if it is not pairs of hex digits.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

/// A byte count, with a binary-unit approximation when it is large: `20480 B (20.0 KiB)`.
pub fn size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    format!("{bytes} B ({})", short_size(bytes))
}

/// A byte count in a binary unit, one decimal: `20.0 KiB` (`512 B` under 1 KiB).
pub fn short_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert_eq!(unhex("ABcd").unwrap(), vec![0xab, 0xcd]);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
        assert_eq!(unhex("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn escapes_and_shortens() {
        assert_eq!(escaped(b"a\"b\\\x01", 10), "\"a\\\"b\\\\\\x01\"");
        assert_eq!(escaped(b"abcdef", 3), "\"abc\"...(6 B)");
    }

    #[test]
    fn sizes() {
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(20480), "20480 B (20.0 KiB)");
        assert_eq!(short_size(0), "0 B");
        assert_eq!(short_size(3 << 20), "3.0 MiB");
        assert_eq!(short_size(5 << 40), "5.0 TiB");
    }
}
