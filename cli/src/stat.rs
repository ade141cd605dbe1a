//! `mtrdb stat`, `mtrdb check` and `mtrdb recover`.
//!
//! `stat` and `check` read the files as they are, then recover in memory
//! ([`OverlayDir::recover`]) and look at the result; they never write the directory. `recover`
//! opens the database for real ([`Db::open_with`]), which writes the recovered pages and a new
//! checkpoint, and closes it.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use mtrdb::db::{DATA_FILE, DOUBLEWRITE_FILE, LOG_FILE};
use mtrdb::inspect::OverlayDir;
use mtrdb::{CheckReport, Db, Options, RecoveryReport};

use crate::logdump::{self, Walk};
use crate::show::{self, Census};
use crate::{io_failure, Failure, Outcome};

/// `mtrdb stat DIR`.
pub fn run(dir: &Path) -> Outcome {
    let overlay = show::open_overlay(dir)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(out, "database      {}", dir.display())?;
    let lock = if overlay.lock_held() { "taken by this inspection" } else { "no LOCK file (the database is not open)" };
    writeln!(out, "lock          {lock}")?;
    let page_size = show::claimed_page_size(&overlay)?;
    match page_size {
        Some(size) => writeln!(out, "page size     {size} bytes")?,
        None => writeln!(out, "page size     unknown: no readable meta page")?,
    }
    let len = |name| show::file_len(&overlay, name);
    // The length, then what the file takes on disk: less where it is sparse (the log's ring
    // before it is written), more where the file system rounds up or preallocates.
    let described = |name: &str, len: Option<u64>, pages: String| -> Outcome<String> {
        let Some(len) = len else { return Ok("missing".to_string()) };
        let allocated = match allocated(dir, name)? {
            Some(bytes) => format!("; {} allocated on disk", show::size(bytes)),
            None => String::new(),
        };
        Ok(format!("{}{pages}{allocated}", show::size(len)))
    };
    let data_len = len(DATA_FILE)?;
    let pages = match (data_len, page_size) {
        (Some(len), Some(size)) => format!(", {} pages", len / size as u64),
        _ => String::new(),
    };
    writeln!(out, "data file     {}", described(DATA_FILE, data_len, pages)?)?;
    writeln!(out, "log file      {}", described(LOG_FILE, len(LOG_FILE)?, String::new())?)?;
    writeln!(out, "dblwr file    {}", described(DOUBLEWRITE_FILE, len(DOUBLEWRITE_FILE)?, String::new())?)?;
    if data_len == Some(0) {
        writeln!(
            out,
            "note          the data file is empty: the database's creation never finished (no data was \
             written yet); opening it creates a new, empty database"
        )?;
    }
    out.flush()?;

    let walk = log_section(&mut out, &overlay)?;
    let on_disk = match (page_size, show::original(&overlay, DATA_FILE)?) {
        (Some(size), Some(file)) => Some(show::census(&file, size)?),
        _ => None,
    };
    if let Some(census) = &on_disk {
        writeln!(out, "on disk       {}", census.summary())?;
        print_damaged(&mut out, census)?;
    }
    out.flush()?;

    let db = overlay.recover().map_err(|e| Failure::new(format!("recovery (in memory) failed: {e}")))?;
    let report = db.recovery_report().clone();
    writeln!(out, "recovery      {} (in memory; the files are unchanged)", recovery_summary(&report))?;
    if let Some(size) = page_size {
        let file = mtr::Storage::open_file(&overlay, DATA_FILE, mtr::OpenMode::Existing)
            .map_err(|e| Failure::new(format!("reading the recovered data file: {e}")))?;
        let recovered = show::census(&file, size)?;
        writeln!(out, "recovered     {}", recovered.summary())?;
    }
    out.flush()?;
    let check = db.check().map_err(|e| Failure::new(format!("the recovered tree is damaged: {e}")))?;
    print_tree(&mut out, &check, db.page_size(), data_len)?;
    writeln!(out, "check         ok")?;
    out.flush()?;
    if let Some(walk) = walk.filter(Walk::corrupt) {
        return Err(Failure::new(format!(
            "the redo log is corrupt at LSN {}: recovery will refuse to open the database",
            walk.end.lsn
        )));
    }
    Ok(())
}

/// The bytes `name` in `dir` takes on disk (`st_blocks` × 512), or `None` if it does not exist.
/// Read from the file system's metadata: it changes nothing, not even an access time.
fn allocated(dir: &Path, name: &str) -> Outcome<Option<u64>> {
    let path = dir.join(name);
    match std::fs::metadata(&path) {
        Ok(metadata) => Ok(Some(metadata.blocks() * 512)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_failure("reading the metadata of", &path)(error)),
    }
}

/// Prints the log's part of `stat`; `None` if the log cannot be read (then said so).
fn log_section(out: &mut impl Write, overlay: &OverlayDir) -> Outcome<Option<Walk>> {
    let log = match logdump::open_log(overlay) {
        Ok(log) => log,
        Err(Failure::Message(message)) => {
            writeln!(out, "redo log      UNREADABLE: {message}")?;
            return Ok(None);
        }
        Err(other) => return Err(other),
    };
    writeln!(out, "log capacity  {} (log id {:#018x})", show::size(log.capacity()), log.log_id())?;
    let slots = log.checkpoint_slots()?;
    let latest = log.latest_checkpoint();
    for (index, slot) in slots.iter().enumerate() {
        let label = if index == 0 { "checkpoints  " } else { "             " };
        match slot {
            Some(checkpoint) => {
                let current = if latest.as_ref().is_ok_and(|l| l == checkpoint) { "  <- current" } else { "" };
                writeln!(
                    out,
                    "{label} slot {index}: #{} at LSN {} (log durable to {}){current}",
                    checkpoint.number, checkpoint.lsn, checkpoint.durable_lsn
                )?;
            }
            None => writeln!(out, "{label} slot {index}: invalid or empty")?,
        }
    }
    let checkpoint = match latest {
        Ok(checkpoint) => checkpoint,
        Err(error) => {
            writeln!(out, "state         UNRECOVERABLE: {error}")?;
            return Ok(None);
        }
    };
    let walk = logdump::walk(&log, checkpoint, |_| Ok(()))?;
    writeln!(out, "log head      LSN {}: {}", walk.end.lsn, walk.end_detail)?;
    if let (Some(after), None) = (walk.end.unsynced_after, &walk.end.corruption) {
        writeln!(out, "              (a valid but never-synced mtr lies beyond, at LSN {after}; ignored)")?;
    }
    writeln!(out, "state         {}", state(&walk))?;
    Ok(Some(walk))
}

/// "clean", or what recovery has to do.
fn state(walk: &Walk) -> String {
    if let Some(corruption) = &walk.end.corruption {
        return format!("CORRUPT redo log at LSN {}: {corruption}", walk.end.lsn);
    }
    if walk.mtrs == 0 {
        return "clean".to_string();
    }
    let mut state = format!(
        "needs recovery ({} mtrs / {} bytes of redo after the checkpoint: {} committed batches ({} bytes) to replay",
        walk.mtrs, walk.bytes, walk.committed_batches, walk.committed_bytes
    );
    if walk.aborted_batches > 0 {
        state.push_str(&format!(", {} aborted", walk.aborted_batches));
    }
    if walk.unfinished_mtrs > 0 {
        state.push_str(&format!(", {} mtrs of an unfinished batch to discard", walk.unfinished_mtrs));
    }
    state.push(')');
    state
}

fn print_damaged(out: &mut impl Write, census: &Census) -> Outcome {
    for (page_id, detail) in &census.damaged {
        writeln!(out, "              page {page_id} damaged: {detail}")?;
    }
    if census.damaged_count > census.damaged.len() as u64 {
        writeln!(out, "              ... and {} more", census.damaged_count - census.damaged.len() as u64)?;
    }
    Ok(())
}

fn recovery_summary(report: &RecoveryReport) -> String {
    format!(
        "replayed {} mtrs of {} committed batches ({} bytes, {} records applied, {} skipped), \
         {} aborted batches, {} mtrs discarded, {} torn pages repaired",
        report.mtrs_replayed,
        report.batches_committed,
        report.redo_bytes_replayed,
        report.records_applied,
        report.records_skipped,
        report.batches_aborted,
        report.mtrs_discarded,
        report.pages_repaired
    )
}

/// The tree's lines of `stat`; `data_len` is the data file's length on disk, if known.
fn print_tree(out: &mut impl Write, check: &CheckReport, page_size: usize, data_len: Option<u64>) -> Outcome {
    writeln!(out, "tree          height {}, {} entries", check.height, check.entries)?;
    writeln!(
        out,
        "pages         {} ids: 1 meta, {} leaf, {} branch, {} overflow, {} free",
        check.page_count, check.leaf_pages, check.branch_pages, check.overflow_pages, check.free_pages
    )?;
    // New pages reuse free ones first; only a compaction gives bytes back: the free pages, and
    // any tail of the file on disk beyond the page ids (a cut that a compaction deferred, then
    // never made: opening cuts it). At most: this assumes every page in use can move below the
    // free ones, and a page the engine leaves where it is (see `Db::compact`) keeps the free pages
    // below it in the file.
    let give_back = match data_len {
        Some(len) => {
            let in_use = u64::from(check.page_count).saturating_sub(check.free_pages);
            format!("at most {}", show::size(len.saturating_sub(in_use * page_size as u64)))
        }
        None => "an unknown amount (the data file's length is unknown)".to_string(),
    };
    writeln!(out, "free          {} pages; a compaction could give back {give_back}", check.free_pages)?;
    let fill: Vec<String> = check
        .fill_by_level
        .iter()
        .enumerate()
        .map(|(level, fill)| {
            let name = if level == 0 { "leaves".to_string() } else { format!("level {level}") };
            format!("{name} {:.1}%", fill * 100.0)
        })
        .collect();
    writeln!(out, "fill          {}", fill.join(", "))?;
    print_keyspaces(out, check)
}

/// One line per named keyspace, and the catalog's own pages.
fn print_keyspaces(out: &mut impl Write, check: &CheckReport) -> Outcome {
    for keyspace in &check.keyspaces {
        writeln!(
            out,
            "keyspace      {:?}: {} entries, height {}, {} pages",
            keyspace.name, keyspace.entries, keyspace.height, keyspace.pages
        )?;
    }
    writeln!(
        out,
        "catalog       {} keyspaces and the default, {} pages; {} pages of dropped keyspaces not yet freed",
        check.keyspaces.len(),
        check.catalog_pages,
        check.dropped_pages
    )?;
    Ok(())
}

/// `mtrdb check DIR`.
pub fn check(dir: &Path) -> Outcome {
    let overlay = show::open_overlay(dir)?;
    let db = overlay.recover().map_err(|e| Failure::new(format!("recovery (in memory) failed: {e}")))?;
    let report = db.recovery_report().clone();
    let check = db.check().map_err(|e| Failure::new(format!("check failed: {e}")))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(
        out,
        "ok: {} entries, height {}, {} page ids ({} leaf, {} branch, {} overflow, {} free)",
        check.entries,
        check.height,
        check.page_count,
        check.leaf_pages,
        check.branch_pages,
        check.overflow_pages,
        check.free_pages
    )?;
    print_keyspaces(&mut out, &check)?;
    writeln!(out, "recovery in memory: {}", recovery_summary(&report))?;
    out.flush()?;
    Ok(())
}

/// `mtrdb recover DIR`.
pub fn recover(dir: &Path) -> Outcome {
    if !dir.join(DATA_FILE).is_file() {
        return Err(Failure::new(format!(
            "{} holds no mtrdb database (there is no {DATA_FILE}); refusing to create one",
            dir.display()
        )));
    }
    let db = Db::open_with(dir, Options::default().background_checkpoints(false))?;
    let report = db.recovery_report().clone();
    db.close()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(out, "recovered {}", dir.display())?;
    writeln!(out, "  checkpoint LSN        {}", report.checkpoint_lsn)?;
    writeln!(out, "  log scanned to LSN    {} ({} complete mtrs)", report.scan_end_lsn, report.mtrs_scanned)?;
    writeln!(out, "  recovered to LSN      {}", report.recovered_end_lsn)?;
    writeln!(
        out,
        "  replayed              {} mtrs of {} committed batches, {} redo bytes",
        report.mtrs_replayed, report.batches_committed, report.redo_bytes_replayed
    )?;
    writeln!(
        out,
        "  records               {} applied, {} skipped (page already newer)",
        report.records_applied, report.records_skipped
    )?;
    writeln!(out, "  aborted batches       {}", report.batches_aborted)?;
    writeln!(out, "  discarded mtrs        {} (a batch that never committed)", report.mtrs_discarded)?;
    writeln!(out, "  torn pages repaired   {}", report.pages_repaired)?;
    writeln!(out, "  duration              {:.3} s", report.duration.as_secs_f64())?;
    writeln!(out, "the database was checkpointed and closed: it is clean")?;
    out.flush()?;
    Ok(())
}
