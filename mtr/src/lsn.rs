//! Log sequence numbers.
//!
//! An [`Lsn`] is a byte position in the logical redo stream. It only grows: it is never reset and
//! never reused, across restarts and wrap-arounds of the circular log file. The byte of the stream at
//! LSN `l` lives in the ring at offset `l % capacity`; each open of the log resumes one whole lap
//! past the last recovered mtr (see [`crate::Log::resume`]), so the stream has gaps but no LSN is ever
//! written twice.

use std::fmt;

/// A byte position in the redo stream.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The smallest LSN: older than every written record. A page that was never changed has it.
    pub const ZERO: Lsn = Lsn(0);

    /// The LSN `len_bytes` further on.
    // Not `ops::Add`: it adds a length in bytes, not another LSN, and it saturates.
    #[allow(clippy::should_implement_trait)]
    #[must_use]
    pub fn add(self, len_bytes: u64) -> Lsn {
        Lsn(self.0.saturating_add(len_bytes))
    }

    /// Bytes from `earlier` to `self` (0 when `earlier` is not earlier).
    #[must_use]
    pub fn since(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
