//! `mtrdb log`: the redo log, mtr by mtr (like pg_waldump), and the log walk `stat` shares.
//!
//! The log is read with [`mtr::Scanner`] in [`ScanMode::Lenient`], so a damaged mtr that had been
//! durable (corruption, which recovery refuses) is described instead of ending the listing with
//! an error; the listing ends at the first position that is not a valid mtr, with a line saying
//! what is there and why it is not an mtr.
//!
//! This module reads the log file as it is on disk; it never writes it.

use std::io::Write;
use std::path::Path;

use mtr::frame::{self, FrameHeader, MAX_HEADER_BYTES};
use mtr::layout::LogFile;
use mtr::{Checkpoint, Frame, Lsn, RecordIter, ScanEnd, ScanMode, Scanner, StopReason};
use mtrdb::db::LOG_FILE;
use mtrdb::inspect::OverlayDir;
use mtrdb::redo::{self, MTR_ABORT, MTR_COMMIT};
use serde_json::json;

use crate::show;
use crate::{Failure, Outcome};

/// Opens the redo log as it is on disk.
pub fn open_log(overlay: &OverlayDir) -> Outcome<LogFile> {
    let file = show::original(overlay, LOG_FILE)?.ok_or_else(|| {
        Failure::new(format!(
            "{} is missing: without the redo log the database cannot be recovered",
            overlay.path().join(LOG_FILE).display()
        ))
    })?;
    Ok(LogFile::open(file)?)
}

/// What a walk over the log found.
#[derive(Clone, Debug)]
pub struct Walk {
    /// Where the walk started.
    pub from: Lsn,
    /// Valid mtrs.
    pub mtrs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Mtrs flagged commit: batches recovery would replay.
    pub committed_batches: u64,
    /// Mtrs flagged abort: abandoned batches recovery skips.
    pub aborted_batches: u64,
    /// Mtrs after the last commit or abort: an unfinished batch, which recovery discards.
    pub unfinished_mtrs: u64,
    /// Where the unfinished batch starts (the end of the last commit or abort).
    pub settled_end: Lsn,
    /// Redo bytes of the committed batches (what recovery would replay).
    pub committed_bytes: u64,
    /// Where and why the valid log ends.
    pub end: ScanEnd,
    /// What the bytes at the end are.
    pub end_detail: String,
    /// Whether those bytes are where nothing was written yet (zeros, or an mtr of the ring's
    /// previous lap): the log's natural end rather than a torn write.
    pub end_is_unwritten: bool,
}

impl Walk {
    /// Whether the log shows corruption (damaged redo that had been durable).
    pub fn corrupt(&self) -> bool {
        self.end.corruption.is_some()
    }
}

/// Scans `log` from `start`, calling `visit` for each valid mtr.
pub fn walk(log: &LogFile, start: Checkpoint, mut visit: impl FnMut(&Frame<'_>) -> Outcome) -> Outcome<Walk> {
    let mut scanner = Scanner::new(log, start, ScanMode::Lenient);
    let (mut mtrs, mut bytes, mut committed, mut aborted, mut unfinished, mut committed_bytes) = (0, 0, 0, 0, 0, 0);
    let mut settled_end = start.lsn;
    while let Some(frame) = scanner.next_mtr()? {
        mtrs += 1;
        bytes += frame.end_lsn.since(frame.start_lsn);
        if frame.flags & MTR_ABORT != 0 {
            aborted += 1;
            unfinished = 0;
            settled_end = frame.end_lsn;
        } else if frame.flags & MTR_COMMIT != 0 {
            committed += 1;
            unfinished = 0;
            committed_bytes += frame.end_lsn.since(settled_end);
            settled_end = frame.end_lsn;
        } else {
            unfinished += 1;
        }
        visit(&frame)?;
    }
    let end = scanner
        .end()
        .cloned()
        .ok_or_else(|| Failure::new("the log scanner stopped without saying where the log ends"))?;
    let (end_detail, end_is_unwritten) = describe_end(log, &end);
    Ok(Walk {
        from: start.lsn,
        mtrs,
        bytes,
        committed_batches: committed,
        aborted_batches: aborted,
        unfinished_mtrs: unfinished,
        settled_end,
        committed_bytes,
        end,
        end_detail,
        end_is_unwritten,
    })
}

/// Says what the bytes where the valid log ends are, and why they are not an mtr; and whether
/// they are simply unwritten (zeros, or an mtr of the ring's previous lap).
pub fn describe_end(log: &LogFile, end: &ScanEnd) -> (String, bool) {
    if end.reason == StopReason::RingEnd {
        return ("the scan reached one whole ring past its start".into(), false);
    }
    let lsn = end.lsn;
    let mut head = [0u8; MAX_HEADER_BYTES];
    if log.read_stream(lsn, &mut head).is_err() {
        return ("the bytes there cannot be read".into(), false);
    }
    let Some(header) = frame::decode_header(&head, lsn) else {
        if head.iter().all(|&b| b == 0) {
            return ("zeros: nothing was written there".into(), true);
        }
        return ("no mtr header (stale or random bytes)".into(), false);
    };
    let frame_len = header.frame_len();
    if frame_len as u64 >= log.capacity() {
        return (format!("a header announcing a {frame_len}-byte mtr, longer than the ring"), false);
    }
    let mut bytes = vec![0u8; frame_len];
    if log.read_stream(lsn, &mut bytes).is_err() {
        return (format!("a header announcing a {frame_len}-byte mtr that cannot be read"), false);
    }
    // Bytes from the previous lap of the ring verify there, at their own LSN: after a recovery,
    // the log resumes one lap on, so this is where a freshly recovered log ends.
    if let Some(earlier) = lsn.0.checked_sub(log.capacity()) {
        if frame::verify_frame(&bytes, header, Lsn(earlier)).is_some() {
            return (format!("a complete mtr of the previous lap of the ring (LSN {earlier})"), true);
        }
    }
    (frame_defect(&bytes, header, lsn), false)
}

/// Why a frame whose header decodes is not a valid mtr at `lsn`.
fn frame_defect(bytes: &[u8], header: FrameHeader, lsn: Lsn) -> String {
    let body_end = header.header_len + header.body_len;
    let (Some(body), Some(trailer)) = (bytes.get(header.header_len..body_end), bytes.get(body_end..body_end + 6))
    else {
        return "a truncated frame".into();
    };
    let what = format!("an incomplete or damaged {}-byte mtr", bytes.len());
    if trailer[0] != frame::END_MARKER {
        return format!("{what}: its end marker is missing (torn write)");
    }
    let stored = u32::from_le_bytes([trailer[2], trailer[3], trailer[4], trailer[5]]);
    let mut computed = crc32c::crc32c(body);
    computed = crc32c::crc32c_append(computed, &bytes[..header.header_len]);
    computed = crc32c::crc32c_append(computed, &trailer[..2]);
    computed = crc32c::crc32c_append(computed, &lsn.0.to_le_bytes());
    if computed != stored {
        return format!("{what}: CRC mismatch (stored {stored:#010x}, computed {computed:#010x})");
    }
    if !frame::validate_body(body) {
        return format!("{what}: its CRC matches but its records do not decode");
    }
    format!("{what}: it runs past the end of the scan")
}

/// The flag names of an mtr.
fn flag_names(flags: u8) -> Vec<String> {
    let mut names = Vec::new();
    if flags & MTR_COMMIT != 0 {
        names.push("commit".to_string());
    }
    if flags & MTR_ABORT != 0 {
        names.push("abort".to_string());
    }
    let unknown = flags & !(MTR_COMMIT | MTR_ABORT);
    if unknown != 0 {
        names.push(format!("{unknown:#04x}"));
    }
    names
}

fn reason_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::BadHeader => "bad_header",
        StopReason::BadFrame => "bad_frame",
        StopReason::RingEnd => "ring_end",
    }
}

/// `mtrdb log DIR [--json] [--from LSN]`.
pub fn run(dir: &Path, json: bool, from: Option<u64>) -> Outcome {
    let overlay = show::open_overlay(dir)?;
    let log = open_log(&overlay)?;
    let checkpoint = log.latest_checkpoint()?;
    // Before the checkpoint, start right there (it must be an mtr's start); at or after it,
    // scan from the checkpoint and show only what lies at or after `from`.
    let (start, show_from) = match from {
        Some(from) if Lsn(from) < checkpoint.lsn => {
            (Checkpoint { number: checkpoint.number, lsn: Lsn(from), durable_lsn: Lsn(from) }, Lsn(from))
        }
        Some(from) => (checkpoint, Lsn(from)),
        None => (checkpoint, checkpoint.lsn),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let path = dir.join(LOG_FILE);
    if json {
        let header = json!({
            "type": "log",
            "path": path.display().to_string(),
            "capacity_bytes": log.capacity(),
            "log_id": format!("{:#018x}", log.log_id()),
            "checkpoint": {"number": checkpoint.number, "lsn": checkpoint.lsn.0, "durable_lsn": checkpoint.durable_lsn.0},
            "scan_from": start.lsn.0,
            "show_from": show_from.0,
        });
        writeln!(out, "{header}")?;
    } else {
        writeln!(
            out,
            "redo log {}: ring of {}, log id {:#018x}",
            path.display(),
            show::size(log.capacity()),
            log.log_id()
        )?;
        writeln!(
            out,
            "checkpoint #{} at LSN {} (log durable to {})",
            checkpoint.number, checkpoint.lsn, checkpoint.durable_lsn
        )?;
        if start.lsn < checkpoint.lsn {
            writeln!(
                out,
                "starting at LSN {} before the checkpoint: those mtrs are already in the data file",
                start.lsn
            )?;
        }
    }
    let mut hidden = 0u64;
    let result = walk(&log, start, |frame| {
        if frame.start_lsn < show_from {
            hidden += 1;
            return Ok(());
        }
        print_mtr(&mut out, frame, json)
    })?;
    if json {
        let end = json!({
            "type": "end",
            "lsn": result.end.lsn.0,
            "reason": reason_name(result.end.reason),
            "detail": result.end_detail,
            "unwritten": result.end_is_unwritten,
            "unsynced_after": result.end.unsynced_after.map(|lsn| lsn.0),
            "corruption": result.end.corruption,
            "mtrs": result.mtrs,
            "mtrs_shown": result.mtrs - hidden,
            "bytes": result.bytes,
            "committed_batches": result.committed_batches,
            "aborted_batches": result.aborted_batches,
            "unfinished_mtrs": result.unfinished_mtrs,
            "recovery_applies_through": result.settled_end.0,
        });
        writeln!(out, "{end}")?;
    } else {
        print_end(&mut out, &result, hidden)?;
        if start.lsn < checkpoint.lsn && result.mtrs == 0 {
            writeln!(
                out,
                "no valid mtr starts at LSN {}: before the checkpoint, --from must be where an mtr starts \
                 (and within one ring of the log's end); without --from the listing starts at the checkpoint",
                start.lsn
            )?;
        }
    }
    out.flush()?;
    if let Some(corruption) = &result.end.corruption {
        return Err(Failure::new(format!(
            "the redo log is corrupt at LSN {}: {corruption}; recovery will refuse it",
            result.end.lsn
        )));
    }
    Ok(())
}

fn print_mtr(out: &mut impl Write, frame: &Frame<'_>, json: bool) -> Outcome {
    let flags = flag_names(frame.flags);
    let len = frame.end_lsn.since(frame.start_lsn);
    if json {
        let records: Vec<_> = RecordIter::new(frame.body)
            .map(|record| {
                json!({
                    "kind": redo::kind_name(record.kind).map_or_else(|| format!("UNKNOWN({})", record.kind), str::to_string),
                    "kind_byte": record.kind,
                    "page_id": record.page_id,
                    "payload_bytes": record.payload.len(),
                    "description": redo::describe_record(record.kind, record.payload),
                })
            })
            .collect();
        let line = json!({
            "type": "mtr",
            "start_lsn": frame.start_lsn.0,
            "end_lsn": frame.end_lsn.0,
            "len_bytes": len,
            "durable_lsn": frame.durable_lsn.0,
            "flags": flags,
            "flags_byte": frame.flags,
            "crc": "ok",
            "records": records,
        });
        writeln!(out, "{line}")?;
        return Ok(());
    }
    let records: Vec<_> = RecordIter::new(frame.body).collect();
    let flags = if flags.is_empty() { "-".to_string() } else { flags.join(",") };
    writeln!(
        out,
        "mtr {}..{} len {len} flags {flags} crc ok durable {} records {}",
        frame.start_lsn,
        frame.end_lsn,
        frame.durable_lsn,
        records.len()
    )?;
    for record in records {
        writeln!(out, "    page {:>6}  {}", record.page_id, redo::describe_record(record.kind, record.payload))?;
    }
    Ok(())
}

fn print_end(out: &mut impl Write, walk: &Walk, hidden: u64) -> Outcome {
    let end = &walk.end;
    let verdict = if let Some(corruption) = &end.corruption {
        format!("CORRUPTION: {corruption}; recovery refuses this log")
    } else if end.reason == StopReason::RingEnd {
        "the scan covered the whole ring".to_string()
    } else if walk.end_is_unwritten {
        "the end of the log".to_string()
    } else if end.reason == StopReason::BadFrame || walk.unfinished_mtrs > 0 || end.unsynced_after.is_some() {
        "a torn tail: the write in progress at a crash did not complete; recovery stops here".to_string()
    } else {
        "the end of the log (stale bytes, or a torn tail); recovery stops here".to_string()
    };
    writeln!(out, "end at LSN {} ({}): {}; {verdict}", end.lsn, reason_name(end.reason), walk.end_detail)?;
    match (end.unsynced_after, &end.corruption) {
        (Some(after), Some(_)) => writeln!(out, "    a valid mtr lies beyond it at LSN {after}")?,
        (Some(after), None) => writeln!(
            out,
            "    a valid mtr lies beyond it at LSN {after}, with no evidence it was ever synced \
             (unsynced writes reach the disk in any order): recovery ignores it"
        )?,
        (None, _) => {}
    }
    let shown = if hidden > 0 { format!(" ({hidden} before --from not shown)") } else { String::new() };
    writeln!(
        out,
        "{} mtrs, {} bytes from LSN {}{shown}: {} committed batches, {} aborted",
        walk.mtrs, walk.bytes, walk.from, walk.committed_batches, walk.aborted_batches
    )?;
    if walk.unfinished_mtrs > 0 {
        writeln!(
            out,
            "the last {} mtrs (from LSN {}) belong to a batch that never committed: recovery discards them",
            walk.unfinished_mtrs, walk.settled_end
        )?;
    }
    Ok(())
}
