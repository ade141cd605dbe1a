//! # mtr: mini-transactions and the redo log of mtrdb
//!
//! This crate owns everything about the redo log and nothing about B-tree pages. The engine
//! groups the changes of one structural operation into an **mtr** ([`MtrBuf`]): records, each a
//! page id plus an engine-defined change; [`Log::append`] frames it with an end marker and a
//! CRC-32C bound to its LSN; [`Log::flush_up_to`] makes it durable with group commit; after a
//! crash, the [`Scanner`] yields exactly the complete mtrs from the last checkpoint on.
//!
//! - [`lsn`]: log sequence numbers.
//! - [`frame`]: record and mtr framing, and when bytes count as a valid mtr.
//! - [`layout`]: the log file: header, two checkpoint slots, the ring.
//! - [`log`]: the writer: append, group commit, checkpoints, the poisoned state.
//! - [`scan`]: the recovery scanner: torn tail versus corruption in the middle.
//! - [`io`]: the narrow file interface shared with the engine (and fault-injecting test storage).
//!
//! Record kinds and payloads are opaque here: the engine defines them and how each applies to a
//! page. This crate forbids `unsafe`.
//!
//! ## Assumptions about the disk
//! - A sync that returns success made every earlier completed write to that file durable.
//! - Writes that were not synced may reach the disk in any order, whole, partly (any subset of
//!   their 512-byte sectors) or not at all. Nothing is assumed atomic; every structure is
//!   verified by a CRC before it is trusted.
//! - Bytes never written read back as zeros or as whatever an earlier use left there.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod error;
pub mod frame;
pub mod io;
pub mod layout;
pub mod log;
pub mod lsn;
pub mod scan;
pub mod varint;

pub use error::{Error, Result};
pub use frame::{Frame, MtrBuf, Record, RecordIter, FIRST_ENGINE_KIND, MAX_MTR_BODY_BYTES};
pub use io::{DirStorage, OpenMode, Storage, StorageFile};
pub use layout::{Checkpoint, LogFile};
pub use log::{Log, LogStats};
pub use lsn::Lsn;
pub use scan::{ScanEnd, ScanMode, Scanner, StopReason};
