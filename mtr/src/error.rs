//! The errors of the redo-log layer. Each says what went wrong and where, in terms a user of the
//! database can act on.

use crate::lsn::Lsn;

/// A failure of the redo log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused an I/O operation.
    #[error("redo log I/O failed while {action}: {source}")]
    Io {
        /// What the log was doing.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An earlier write or sync of the log failed. The kernel may have dropped the data, so the
    /// log refuses all further work until the database is closed and reopened (recovery then
    /// replays what did reach the disk).
    #[error("an earlier redo log write or sync failed ({cause}); close and reopen the database")]
    Poisoned {
        /// The first failure.
        cause: String,
    },
    /// The file is not an mtrdb redo log, or its header is damaged.
    #[error("not a valid mtrdb redo log: {detail}")]
    NotALog {
        /// What did not match.
        detail: String,
    },
    /// Neither checkpoint slot holds a valid checkpoint.
    #[error("the redo log has no valid checkpoint: both slots are damaged")]
    NoCheckpoint,
    /// A damaged mtr lies where the log is known to have been durable: committed work would be
    /// lost if the scan stopped quietly there.
    #[error("redo log corrupted at LSN {at}: the mtr there is damaged, yet the log was durable up to LSN {durable_to} (proven by {evidence})")]
    CorruptMiddle {
        /// Where the damaged mtr starts.
        at: Lsn,
        /// The log was durable at least this far.
        durable_to: Lsn,
        /// What proves it.
        evidence: &'static str,
    },
    /// An mtr larger than the log can hold was appended: a programming error of the caller.
    #[error("an mtr of {frame_bytes} bytes cannot fit in a redo log of {capacity_bytes} bytes")]
    MtrTooLarge {
        /// The frame's size.
        frame_bytes: u64,
        /// The log's capacity.
        capacity_bytes: u64,
    },
    /// A caller broke the log's contract (for example a checkpoint ahead of the durable log).
    #[error("redo log misuse: {0}")]
    Misuse(String),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { action, source }
}
