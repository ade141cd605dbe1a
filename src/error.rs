//! The errors of the public API. Each variant's message says what happened, where, and (where
//! there is one) what to do about it.

use std::path::PathBuf;

use crate::page::PageId;

/// Everything that can go wrong in mtrdb.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused an operation.
    #[error("I/O error while {action} ({path}): {source}")]
    Io {
        /// What mtrdb was doing.
        action: &'static str,
        /// The file or directory.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The redo log failed or is damaged.
    #[error(transparent)]
    Log(#[from] mtr::Error),
    /// Another handle (in this or another process) has the database open.
    #[error("the database at {dir} is already open (its LOCK file is held by another handle or process)")]
    Locked {
        /// The database directory.
        dir: PathBuf,
    },
    /// A file in the directory is not part of an mtrdb database, or not of this one.
    #[error("{path} is not an mtrdb database file: {detail}")]
    NotADatabase {
        /// The file.
        path: String,
        /// What did not match.
        detail: String,
    },
    /// The directory holds files that mtrdb did not create, and no database.
    #[error("{dir} is not empty and holds no mtrdb database (found {file}); refusing to create one there")]
    ForeignDirectory {
        /// The directory.
        dir: PathBuf,
        /// One of the foreign files.
        file: String,
    },
    /// The options ask for a page size that the existing database does not have.
    #[error("the database has {existing}-byte pages, but the options ask for {requested}")]
    PageSizeMismatch {
        /// The database's page size.
        existing: usize,
        /// The options' page size.
        requested: usize,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A page or structure in the data file is damaged and there is nothing to repair it from.
    #[error("database corrupted at page {page_id}: {detail}")]
    Corrupt {
        /// The damaged page.
        page_id: PageId,
        /// What is wrong.
        detail: String,
    },
    /// `check()` found a violation of the tree's invariants.
    #[error("structural check failed at page {page_id}: {detail}")]
    CheckFailed {
        /// Where.
        page_id: PageId,
        /// What.
        detail: String,
    },
    /// Keys must be 1 to 1024 bytes.
    #[error("a key of {len} bytes is not allowed: keys are 1 to {max} bytes")]
    KeySize {
        /// The key's length.
        len: usize,
        /// The longest key.
        max: usize,
    },
    /// The value is larger than the maximum.
    #[error("a value of {len} bytes is too large: the maximum is {max} bytes")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The largest value.
        max: usize,
    },
    /// The batch's redo does not fit in the redo log; nothing of it was applied.
    #[error("the batch does not fit in the redo log: it needs {needed} bytes of log space, the log holds {capacity}; nothing of it was applied (split the batch, or open with a larger log_capacity)")]
    BatchTooLarge {
        /// Log bytes that would be in use with the batch (at least; always more than `capacity`).
        needed: u64,
        /// The log's capacity.
        capacity: u64,
    },
    /// An earlier write or sync failed; the database refuses writes until reopened. Reads go on
    /// and may include the batch whose write failed (its durability is unknown); a reopen shows
    /// exactly what is durable.
    #[error("an earlier write failed ({cause}); close and reopen the database (recovery will replay the redo log)")]
    Poisoned {
        /// The first failure.
        cause: String,
    },
    /// The data file is of a format version this build does not read.
    #[error("{path} is an mtrdb database of format version {found}; this build reads version {supported} only (load a dump of it with `mtrdb load`)")]
    FormatVersion {
        /// The data file.
        path: String,
        /// The version the file records.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A keyspace name that is not allowed.
    #[error("invalid keyspace name {name:?}: {detail}")]
    KeyspaceName {
        /// The name given.
        name: String,
        /// Why it is refused.
        detail: String,
    },
    /// The keyspace was dropped after this handle to it was made.
    #[error("keyspace {name:?} was dropped")]
    KeyspaceDropped {
        /// Its name.
        name: String,
    },
    /// A write of a database from inside a transaction of the same database on the same thread
    /// (which holds the writer lock the write would wait for).
    #[error("a write of this database was made inside one of its transactions on the same thread; write through the transaction instead")]
    InsideTransaction,
    /// A keyspace handle of another database was used in this one's batch.
    #[error("a batch for this database names keyspace {name:?} of another database")]
    ForeignKeyspace {
        /// Its name.
        name: String,
    },
    /// A backup's destination cannot take the copy ([`crate::Db::backup_to`]); nothing was
    /// written there.
    #[error("cannot back up into {path}: {detail}")]
    BackupDestination {
        /// The destination directory.
        path: PathBuf,
        /// Why it is refused.
        detail: String,
    },
    /// The directory holds a backup that was cut short (its `backup.incomplete` marker is still
    /// there): its files are not a consistent database, and it is never opened.
    #[error("{dir} holds a backup that was cut short before it was complete; it cannot be opened (delete it and back up again)")]
    IncompleteBackup {
        /// The directory.
        dir: String,
    },
}

/// The result type of mtrdb.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn corrupt(page_id: PageId, detail: impl Into<String>) -> Error {
        Error::Corrupt { page_id, detail: detail.into() }
    }
}
