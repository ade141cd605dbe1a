//! `mtrdb`: the command-line tool of mtrdb.
//!
//! Inspects a database directory (`stat`, `check`, `log`, `page`), recovers it (`recover`),
//! exports and imports its entries (`dump`, `load`), copies it (`backup`) and gives its free space
//! back (`compact`). The inspection commands and `dump` never modify the directory, not even one
//! that crashed: they read its files read-only and run recovery in memory ([`mtrdb::inspect`]).
//! Only `recover`, `load`, `backup` and `compact` write. `backup` writes its destination, and
//! opens its source for real: a source that crashed is recovered first, as by `recover`, and
//! closing it writes a checkpoint to its log. `compact` opens its database the same way, moves
//! pages and shrinks the data file ([`mtrdb::Db::compact`]).
//!
//! This crate owns the command line and the presentation; it must not know more of the formats
//! than the engine's public API tells it, and must never write a database file except through
//! [`mtrdb::Db`] in `recover`, `load`, `backup` and `compact`.
//!
//! Exit status: 0 on success; 1 when the command fails or finds damage (the message, on standard
//! error, says which); 2 for a usage error.

mod backup;
mod compact;
mod dump;
mod logdump;
mod open;
mod pagedump;
mod progress;
mod show;
mod stat;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The format `dump` writes and `load` reads, for `--help`.
const DUMP_FORMAT_HELP: &str = "\
Dump format (text, version 2; load also reads version 1, into the default keyspace):
  # mtrdb dump v2
  <hex key><TAB><hex value>      the default keyspace's entries, keys ascending
  # keyspace <hex name>          then each named keyspace (by name) and its entries
  <hex key><TAB><hex value>
  ...
  # end entries=<N> keyspaces=<K>
Hex digits are lowercase pairs (load accepts either case); an empty value is an empty field.
A keyspace line creates the keyspace even with no entries. Other lines starting with '#' and
blank lines are ignored. The trailer line is required: a dump without it (cut short) is
refused. Lines end with LF.";

#[derive(Parser)]
#[command(
    name = "mtrdb",
    version,
    about = "Inspect, check, recover, dump, load, back up and compact an mtrdb database directory",
    long_about = "Inspect, check, recover, dump, load, back up and compact an mtrdb database directory.\n\n\
        stat, check, log, page and dump never modify the directory, even after a crash: they read \
        its files read-only and recover in memory. They take the directory's lock, so a database \
        that a running process has open is reported as locked. Only recover, load, backup and \
        compact write (backup writes its destination, and opens its source for real: recovering it if \
        it crashed, and checkpointing it on close; compact opens its database the same way, moves \
        pages and shrinks the data file).\n\n\
        Exit status: 0 success; 1 the command failed or found damage (message on stderr); 2 usage error.",
    after_long_help = DUMP_FORMAT_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Summarize files, checkpoints, log head, pages and tree shape (read-only)
    ///
    /// Page size; the data, log and doublewrite files' lengths and the bytes each takes on disk;
    /// the log's capacity and both checkpoint slots; where the valid log ends and whether the
    /// database is clean or needs recovery (how many mtrs and bytes of redo after the checkpoint);
    /// pages by kind on disk and after a recovery in memory; tree height, entries, free pages (and
    /// at most how many bytes `compact` could give back: the data file less its pages in use) and
    /// fill per level; and the structural check. Exits 1 if the database cannot be recovered or
    /// the check fails.
    Stat {
        /// The database directory.
        dir: PathBuf,
    },
    /// Run the full structural check after a recovery in memory (read-only)
    ///
    /// Checksums, key order, fences, levels, sibling links, overflow chains, the free list, and
    /// that every page is used exactly once. Exits 0 with a summary, or 1 with the first
    /// violation.
    Check {
        /// The database directory.
        dir: PathBuf,
    },
    /// List the redo log's mtrs and records from the checkpoint on (read-only)
    ///
    /// Like pg_waldump: each mtr with its LSN range, length, flags (commit, abort), CRC status and
    /// records (kind, page, a summary of the change), then a line saying where and why the valid
    /// log ends: zeros or an earlier lap (its end), a torn tail (a crash), or corruption (damaged
    /// redo that had been durable, which recovery refuses: exit status 1).
    Log {
        /// The database directory.
        dir: PathBuf,
        /// One JSON object per line: a "log" header, one "mtr" per mtr, then an "end".
        #[arg(long)]
        json: bool,
        /// Show mtrs from this LSN on. At or after the checkpoint, any LSN works (earlier mtrs
        /// are scanned, not shown). Before the checkpoint, it must be where an mtr starts.
        #[arg(long, value_name = "LSN")]
        from: Option<u64>,
    },
    /// Decode one page of the data file (read-only)
    ///
    /// Header fields, LSN, checksum status, and the slots and cells of a node (keys escaped,
    /// values summarised), the data of an overflow page, the link of a free page, or the fields
    /// of the meta page. A damaged page is shown as far as its bytes allow.
    Page {
        /// The database directory.
        dir: PathBuf,
        /// The page id.
        id: u32,
        /// Show the page as recovery (in memory) leaves it, not as it is on disk.
        #[arg(long)]
        recovered: bool,
        /// The page size, if the meta page cannot tell it.
        #[arg(long, value_name = "BYTES")]
        page_size: Option<usize>,
    },
    /// Recover the database for real, print what recovery did, and close it
    ///
    /// Opens the database (repairing torn pages and replaying the redo log), writes the recovered
    /// pages and a checkpoint, and closes it: afterwards `stat` says clean.
    Recover {
        /// The database directory.
        dir: PathBuf,
    },
    /// Export every entry as a text dump (read-only)
    ///
    /// A crashed database is dumped as recovery would leave it, without modifying it. The format
    /// is below.
    #[command(after_long_help = DUMP_FORMAT_HELP)]
    Dump {
        /// The database directory.
        dir: PathBuf,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Import a text dump into a new or existing database
    ///
    /// Writes in atomic batches of up to 1000 entries (or 8 MiB); an entry replaces an existing
    /// one with the same key. A dump file (-i) is checked whole before anything is written; from
    /// standard input, the batches before a damaged line stay loaded. The format is below.
    #[command(after_long_help = DUMP_FORMAT_HELP)]
    Load {
        /// The database directory (created if missing).
        dir: PathBuf,
        /// Read from this file instead of standard input.
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Page size for a new database (a power of two from 4096 to 65536).
        #[arg(long, value_name = "BYTES")]
        page_size: Option<usize>,
    },
    /// Copy a database that no program has open into a new or empty directory
    ///
    /// Opens the database at SRC for real (recovering it first if it crashed; closing it writes a
    /// checkpoint), writes a consistent copy into DST with Db::backup_to, closes it, and prints
    /// the pages and bytes copied, the rate, the longest writer pause and the LSN the copy is as
    /// of. The copy opens with nothing to recover; until it is complete it is marked so, and never
    /// opened, and a failed backup removes what it wrote. DST must be new or empty. A database
    /// that a program has open is locked: that program makes its online backup, through
    /// Db::backup_to. Progress on standard error: a bar on a terminal, else a line at every 10%.
    Backup {
        /// The database directory.
        src: PathBuf,
        /// The copy's directory: new, or empty.
        dst: PathBuf,
    },
    /// Give a database's free space back to the file system
    ///
    /// Opens the database at DIR for real (recovering it first if it crashed; closing it writes a
    /// checkpoint), compacts it with Db::compact (pages in use move from the end of the data file
    /// into free pages lower down, and the free pages at the end are cut off), closes it, and
    /// prints the data file's length before and after, the bytes given back, the page ids before
    /// and after, the pages moved, the passes, the duration, the longest pause and whether the
    /// file's cut was deferred. Pages are moved, not merged: the file keeps the pages in use (at
    /// least; a page the engine does not move keeps the free pages below it). A crash during the
    /// compaction loses nothing. A database that a program has open is locked: that program compacts it, through
    /// Db::compact. Progress on standard error, per pass (moves done of moves planned): a bar on a
    /// terminal, else a line at every 10%.
    Compact {
        /// The database directory.
        dir: PathBuf,
    },
}

/// Why a command stopped early.
#[derive(Debug)]
pub enum Failure {
    /// It failed: the message for standard error.
    Message(String),
    /// Whoever read standard output stopped reading (`mtrdb log DIR | head`): not an error.
    BrokenPipe,
}

impl Failure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure::Message(message.into())
    }
}

impl From<mtrdb::Error> for Failure {
    fn from(error: mtrdb::Error) -> Failure {
        Failure::new(error.to_string())
    }
}

impl From<mtr::Error> for Failure {
    fn from(error: mtr::Error) -> Failure {
        Failure::new(format!("redo log: {error}"))
    }
}

/// Errors writing the command's output (standard output or `-o FILE`).
impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::new(format!("writing the output: {error}"))
        }
    }
}

/// The result of a command.
pub type Outcome<T = ()> = Result<T, Failure>;

/// An I/O error, with what was being done and where.
pub fn io_failure<'a>(action: &str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Failure + 'a {
    let action = action.to_string();
    move |error| Failure::new(format!("{action} {}: {error}", path.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Stat { dir } => stat::run(&dir),
        Command::Check { dir } => stat::check(&dir),
        Command::Log { dir, json, from } => logdump::run(&dir, json, from),
        Command::Page { dir, id, recovered, page_size } => pagedump::run(&dir, id, recovered, page_size),
        Command::Recover { dir } => stat::recover(&dir),
        Command::Dump { dir, output } => dump::dump(&dir, output.as_deref()),
        Command::Load { dir, input, page_size } => dump::load(&dir, input.as_deref(), page_size),
        Command::Backup { src, dst } => backup::run(&src, &dst),
        Command::Compact { dir } => compact::run(&dir),
    };
    match result {
        Ok(()) | Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Message(message)) => {
            eprintln!("mtrdb: error: {message}");
            ExitCode::FAILURE
        }
    }
}
