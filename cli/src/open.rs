//! Opening a database for real, for the commands that write through [`Db`] and must not create
//! one (`backup`, `compact`): a directory that holds no database is refused before anything could
//! create one, and a database that a running program has open is reported as locked, with what to
//! do instead.

use std::path::Path;

use mtrdb::db::DATA_FILE;
use mtrdb::Db;

use crate::{Failure, Outcome};

/// Refuses `dir` unless it is a directory that holds a data file.
pub fn require_database(dir: &Path) -> Outcome {
    if !dir.is_dir() {
        return Err(Failure::new(format!("{} is not a directory", dir.display())));
    }
    if !dir.join(DATA_FILE).is_file() {
        return Err(Failure::new(format!(
            "{} holds no mtrdb database (there is no {DATA_FILE}); refusing to create one",
            dir.display()
        )));
    }
    Ok(())
}

/// Opens the database at `dir` for real ([`Db::open`]: it takes the directory's lock and, if the
/// database crashed, recovers it). If another handle has it open, the error is followed by
/// `when_locked`: what the command does, and how a program that has the database open does it.
pub fn open(dir: &Path, when_locked: &str) -> Outcome<Db> {
    match Db::open(dir) {
        Ok(db) => Ok(db),
        Err(error @ mtrdb::Error::Locked { .. }) => Err(Failure::new(format!("{error}. {when_locked}"))),
        Err(error) => Err(error.into()),
    }
}
