//! # mtrdb
//!
//! An embeddable, durable, ordered key-value index: a B+tree of pages in a memory-mapped file,
//! whose every change (above all every split, root split and merge) is a **mini-transaction**
//! (mtr) written to a redo log as physiological records, InnoDB style. After a crash, a
//! page-LSN-aware redo pass replays exactly the complete, committed mtrs.
//!
//! ```
//! # fn main() -> mtrdb::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let db = mtrdb::Db::open(dir.path())?;
//! db.insert(b"apple", b"red")?;
//! let mut batch = mtrdb::WriteBatch::new();
//! batch.insert(b"banana", b"yellow").remove(b"apple");
//! db.write(batch)?; // atomic, and durable when it returns
//! assert_eq!(db.get(b"banana")?.as_deref(), Some(&b"yellow"[..]));
//! for entry in db.range(b"a".as_slice()..b"c".as_slice()) {
//!     let (key, value) = entry?;
//!     println!("{:?} = {:?}", key, value);
//! }
//! db.close()?;
//! # Ok(()) }
//! ```
//!
//! ## Modules
//! - [`db`]: the public API, options, batches, keyspaces, transactions, iterators, checkpoints,
//!   online backup and compaction.
//! - [`btree`]: search, insert, delete, split, merge; builds mtrs.
//! - [`catalog`]: the tree naming every keyspace, its entries byte by byte.
//! - [`redo`]: the engine's record kinds and `apply`, the only function that changes a page.
//! - [`page`]: the page formats, byte by byte.
//! - [`pager`]: pages in memory, the mapping, dirty pages and snapshots.
//! - [`checkpoint`]: write-back through the doublewrite file, torn-page repair.
//! - [`recovery`]: the redo pass.
//! - [`check`]: the structural verification.
//! - [`inspect`]: read-only inspection of a database directory (recovery in memory), for tools.
//! - `map`: the read-only mapping, the only `unsafe` code.
//! - [`mtr`] (its own crate): the redo log.
//!
//! ## Assumptions about the disk
//! See [`mtr`]: a successful sync makes earlier writes durable; unsynced writes may persist in any
//! order, partly (any subset of 512-byte sectors) or not at all. Every page and log structure
//! carries a CRC-32C and is checked before use; a torn page is repaired from the doublewrite file.

#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod btree;
pub mod catalog;
pub mod check;
pub mod checkpoint;
pub mod db;
pub mod error;
pub mod inspect;
#[allow(unsafe_code)]
mod map;
pub mod page;
pub mod pager;
pub mod recovery;
pub mod redo;
pub mod replay;

#[cfg(feature = "fault-injection")]
pub mod fault;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use bytes::Bytes;
pub use catalog::{FREE_PAGES_PER_BATCH, MAX_KEYSPACE_NAME_BYTES};
pub use check::{CheckReport, KeyspaceReport};
pub use db::{
    BackupProgress, BackupReport, CompactProgress, CompactReport, Db, Durability, Iter, Keyspace, Options, Stats,
    Transaction, TransactionRange, WriteBatch, MAX_VALUE_BYTES,
};
pub use error::{Error, Result};
/// The file layer a database runs on ([`Db::open_storage`]): a directory, or any other
/// implementation (the fault-injecting one in tests). Re-exported from the `mtr` crate, so that
/// a program can name it without depending on `mtr` itself.
pub use mtr::{DirStorage, OpenMode, Storage, StorageFile};
pub use page::MAX_KEY_BYTES;
pub use recovery::RecoveryReport;
pub use replay::ReplayJournal;
