//! `mtrdb compact DIR`: gives a database's free space back to the file system.
//!
//! Opens the database at DIR for real ([`Db::open`]: it takes the directory's lock and, if the
//! database crashed, recovers it, writing DIR as `recover` does), compacts it with
//! [`Db::compact_with`], closes it (which writes a checkpoint), and prints what the compaction
//! did. How pages move, when the file is cut and why a crash loses nothing are the library's;
//! this module only shows the progress and the report.
//!
//! A database that a running program has open is locked: that program compacts it, through
//! [`Db::compact`], and this command says so.
//!
//! Progress goes to standard error ([`progress`]), per pass of the compaction (moves done of
//! moves planned): a progress bar when it is a terminal, otherwise one plain line each time
//! another 10% of a pass is done.
//!
//! [`Db::open`]: mtrdb::Db::open
//! [`Db::compact_with`]: mtrdb::Db::compact_with
//! [`Db::compact`]: mtrdb::Db::compact

use std::io::Write;
use std::path::Path;

use indicatif::ProgressBar;
use mtrdb::db::DATA_FILE;
use mtrdb::{CompactProgress, CompactReport};

use crate::open;
use crate::progress::{self, Tenths};
use crate::show;
use crate::{io_failure, Outcome};

/// `mtrdb compact DIR`.
pub fn run(dir: &Path) -> Outcome {
    open::require_database(dir)?;
    // Before opening: opening cuts a tail beyond the page ids (a cut a compaction deferred, then
    // never made) and recovery may extend the file; the command gives back what it cut either way.
    let path = dir.join(DATA_FILE);
    let len_before = file_len(&path)?;
    let db = open::open(
        dir,
        "This command compacts a database that no program has open; a database that a program has open is \
         compacted by that program, through Db::compact",
    )?;
    let mut progress = Progress::new(progress::on_terminal());
    let compaction = db.compact_with(|step| progress.update(step));
    progress.finish(compaction.is_ok());
    // Closed whatever the compaction did: a failed one leaves the database holding what it held.
    let closed = db.close();
    let report = compaction?;
    closed?;
    // After closing: its checkpoint cuts a file whose cut the compaction deferred.
    let len_after = file_len(&path)?;
    print_report(dir, &report, len_before, len_after)
}

/// The length of the file at `path`, from the file system's metadata.
fn file_len(path: &Path) -> Outcome<u64> {
    Ok(std::fs::metadata(path).map_err(io_failure("reading the metadata of", path))?.len())
}

/// The summary; `len_before` and `len_after` are the data file's length before the command
/// opened the database and after it closed it.
fn print_report(dir: &Path, report: &CompactReport, len_before: u64, len_after: u64) -> Outcome {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(out, "compacted {}", dir.display())?;
    writeln!(out, "  data file before      {}", show::size(len_before))?;
    if report.file_bytes_before != len_before {
        writeln!(
            out,
            "                        {} once opened (opening cuts a tail beyond the page ids; recovery may \
             add pages)",
            show::size(report.file_bytes_before)
        )?;
    }
    writeln!(out, "  data file after       {}", show::size(len_after))?;
    writeln!(out, "  given back            {}", show::size(len_before.saturating_sub(len_after)))?;
    writeln!(out, "  page ids              {} before, {} after", report.page_count_before, report.page_count_after)?;
    writeln!(out, "  pages moved           {}", report.pages_moved)?;
    if report.moves_skipped > 0 {
        writeln!(
            out,
            "  moves skipped         {} (writers had changed the page since the plan)",
            report.moves_skipped
        )?;
    }
    writeln!(out, "  passes                {}", report.passes)?;
    writeln!(out, "  duration              {:.3} s", report.duration.as_secs_f64())?;
    writeln!(
        out,
        "  longest pause         {:.3} ms (the longest a reader or writer could have waited for the compaction)",
        report.longest_pause.as_secs_f64() * 1e3
    )?;
    if !report.cut_deferred {
        writeln!(out, "  file cut              done")?;
    } else if len_after < report.file_bytes_after {
        // This command holds no iterator; the checkpoint of closing the database makes the cut.
        writeln!(out, "  file cut              deferred by the compaction; closing the database made it")?;
    } else {
        writeln!(out, "  file cut              deferred, and not made on closing the database either")?;
    }
    out.flush()?;
    Ok(())
}

/// The progress display on standard error ([`progress`]), one pass of the compaction at a time.
enum Progress {
    /// A terminal: a bar per pass, redrawn in place; the pass it shows.
    Bar(Option<(u32, ProgressBar)>),
    /// Anything else: a line whenever another 10% of the pass is done.
    Lines(u32, Tenths),
}

impl Progress {
    fn new(terminal: bool) -> Progress {
        if terminal {
            Progress::Bar(None)
        } else {
            Progress::Lines(0, Tenths::default())
        }
    }

    fn update(&mut self, step: CompactProgress) {
        // `moved` counts moves given up too, and in this engine those of earlier passes as well:
        // never show more than planned.
        let done = step.moved.min(step.to_move);
        match self {
            Progress::Bar(current) => {
                if current.as_ref().is_none_or(|(pass, _)| *pass != step.pass) {
                    if let Some((_, done_bar)) = current.take() {
                        done_bar.finish();
                    }
                    let template =
                        format!("compact pass {} [{{bar:40}}] {{pos}}/{{len}} moves, eta {{eta}}", step.pass);
                    *current = Some((step.pass, progress::bar(&template)));
                }
                if let Some((_, bar)) = current {
                    bar.set_length(step.to_move);
                    bar.set_position(done);
                }
            }
            Progress::Lines(pass, tenths) => {
                if *pass != step.pass {
                    *pass = step.pass;
                    *tenths = Tenths::default();
                }
                if let Some(percent) = tenths.step(done, step.to_move) {
                    eprintln!("compact: pass {}, {percent}% of {} moves", step.pass, step.to_move);
                }
            }
        }
    }

    /// Leaves the last pass's bar as it stands (complete, or where the compaction failed).
    fn finish(&self, complete: bool) {
        if let Progress::Bar(Some((_, bar))) = self {
            progress::finish(bar, complete);
        }
    }
}
