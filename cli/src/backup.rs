//! `mtrdb backup SRC DST`: a consistent copy of a database that no program has open.
//!
//! Opens the database at SRC for real ([`Db::open`]: it takes the directory's lock and, if the
//! database crashed, recovers it, writing SRC as `recover` does), copies it into DST with
//! [`Db::backup_to`], closes it (which writes a checkpoint to SRC's log), and prints what the
//! backup did. Everything about the copy (the
//! destination checks, the order of writes, the marker that keeps a copy cut short from being
//! opened, removing a failed copy) is the library's; this module only shows the progress and the
//! report.
//!
//! A database that a running program has open is locked: its online backup is made by that
//! program, through [`Db::backup_to`], and this command says so.
//!
//! Progress goes to standard error ([`progress`]): a progress bar when it is a terminal, otherwise
//! one plain line each time another 10% is done (for logs and pipes, where a redrawn bar would be
//! noise).
//!
//! [`Db::open`]: mtrdb::Db::open
//! [`Db::backup_to`]: mtrdb::Db::backup_to

use std::io::Write;
use std::path::Path;

use indicatif::ProgressBar;
use mtrdb::{BackupProgress, BackupReport};

use crate::open;
use crate::progress::{self, Tenths};
use crate::show;
use crate::Outcome;

/// `mtrdb backup SRC DST`.
pub fn run(src: &Path, dst: &Path) -> Outcome {
    open::require_database(src)?;
    let db = open::open(
        src,
        "This command backs up a database that no program has open; the online backup of a database that a \
         program has open is made by that program, through Db::backup_to",
    )?;
    let mut progress = Progress::new(progress::on_terminal());
    let backup = db.backup_to(dst, |step| progress.update(step));
    progress.finish(backup.is_ok());
    // Closed whatever the backup did: a failed backup leaves the source as it was.
    let closed = db.close();
    let report = backup?;
    closed?;
    print_report(src, dst, &report)
}

fn print_report(src: &Path, dst: &Path, report: &BackupReport) -> Outcome {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    writeln!(out, "backed up {} to {}", src.display(), dst.display())?;
    writeln!(out, "  pages                 {}", report.pages)?;
    writeln!(out, "  bytes                 {}", show::size(report.bytes))?;
    let seconds = report.duration.as_secs_f64();
    writeln!(out, "  duration              {seconds:.3} s")?;
    if seconds > 0.0 {
        writeln!(out, "  rate                  {:.1} MB/s", report.bytes as f64 / seconds / 1e6)?;
    }
    writeln!(
        out,
        "  longest pause         {:.3} ms (the longest a writer could have waited for the backup)",
        report.longest_pause.as_secs_f64() * 1e3
    )?;
    writeln!(out, "  as of LSN             {} (every batch committed up to there, no other)", report.lsn)?;
    let opens = if report.recovery_needed { "has redo to replay" } else { "nothing to recover" };
    writeln!(out, "  opening the copy      {opens}")?;
    out.flush()?;
    Ok(())
}

/// The progress display on standard error ([`progress`]).
enum Progress {
    /// A terminal: a bar, redrawn in place.
    Bar(ProgressBar),
    /// Anything else: a line whenever another 10% is done.
    Lines(Tenths),
}

impl Progress {
    fn new(terminal: bool) -> Progress {
        if !terminal {
            return Progress::Lines(Tenths::default());
        }
        Progress::Bar(progress::bar("backup [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec}, eta {eta}"))
    }

    fn update(&mut self, step: BackupProgress) {
        match self {
            Progress::Bar(bar) => {
                bar.set_length(step.bytes_total);
                bar.set_position(step.bytes_done);
            }
            Progress::Lines(tenths) => {
                if let Some(percent) = tenths.step(step.bytes_done, step.bytes_total) {
                    eprintln!(
                        "backup: {percent}% ({} of {})",
                        show::short_size(step.bytes_done),
                        show::short_size(step.bytes_total)
                    );
                }
            }
        }
    }

    /// Leaves the bar as it stands (complete, or where the backup failed).
    fn finish(&self, complete: bool) {
        if let Progress::Bar(bar) = self {
            progress::finish(bar, complete);
        }
    }
}
