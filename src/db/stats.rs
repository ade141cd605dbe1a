//! [`Stats`], the counters behind them (`Counters`, which batches and checkpoints add to), and
//! `Db::stats`.
//!
//! This module only counts; it must not take part in a decision (no code reads a counter to act
//! on it).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::btree::WriteCounts;

use super::Db;

/// Counters since the database was opened.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Batches committed (single inserts and removes count as batches).
    pub batches: u64,
    /// Mtrs appended.
    pub mtrs: u64,
    /// Redo bytes appended (approximate frame bytes).
    pub redo_bytes: u64,
    /// Leaf splits.
    pub leaf_splits: u64,
    /// Branch splits (excluding root splits).
    pub branch_splits: u64,
    /// Root splits: the tree grew a level.
    pub root_splits: u64,
    /// Node merges.
    pub merges: u64,
    /// Root collapses: the tree lost a level.
    pub root_collapses: u64,
    /// Overflow pages written.
    pub overflow_pages_written: u64,
    /// Overflow pages freed.
    pub overflow_pages_freed: u64,
    /// Checkpoints completed.
    pub checkpoints: u64,
    /// Of those, checkpoints written while pages stayed dirty (fuzzy: at the oldest change still
    /// held only in memory, not at the log's end).
    pub partial_checkpoints: u64,
    /// Pages written back to the data file.
    pub pages_written: u64,
    /// Of those, pages first written to the doublewrite file (the others redo alone can rebuild).
    pub pages_doublewritten: u64,
    /// Pages currently dirty in memory.
    pub dirty_pages: u64,
    /// Page images kept for open snapshots.
    pub snapshot_images: u64,
    /// The redo log's own counters.
    pub log: mtr::LogStats,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) batches: AtomicU64,
    mtrs: AtomicU64,
    redo_bytes: AtomicU64,
    leaf_splits: AtomicU64,
    branch_splits: AtomicU64,
    root_splits: AtomicU64,
    merges: AtomicU64,
    root_collapses: AtomicU64,
    overflow_pages_written: AtomicU64,
    overflow_pages_freed: AtomicU64,
    pub(super) checkpoints: AtomicU64,
    pub(super) partial_checkpoints: AtomicU64,
    pub(super) pages_written: AtomicU64,
    pub(super) pages_doublewritten: AtomicU64,
}

impl Counters {
    pub(super) fn add(&self, counts: &WriteCounts) {
        let pairs = [
            (&self.mtrs, counts.mtrs),
            (&self.redo_bytes, counts.redo_bytes),
            (&self.leaf_splits, counts.leaf_splits),
            (&self.branch_splits, counts.branch_splits),
            (&self.root_splits, counts.root_splits),
            (&self.merges, counts.merges),
            (&self.root_collapses, counts.root_collapses),
            (&self.overflow_pages_written, counts.overflow_pages_written),
            (&self.overflow_pages_freed, counts.overflow_pages_freed),
        ];
        for (counter, value) in pairs {
            counter.fetch_add(value, Ordering::Relaxed);
        }
    }
}

impl Db {
    /// Counters since open.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (dirty_pages, snapshot_images) = {
            let tree = self.inner.tree.read();
            (tree.pager.dirty_count() as u64, tree.pager.history_pages() as u64)
        };
        Stats {
            batches: load(&c.batches),
            mtrs: load(&c.mtrs),
            redo_bytes: load(&c.redo_bytes),
            leaf_splits: load(&c.leaf_splits),
            branch_splits: load(&c.branch_splits),
            root_splits: load(&c.root_splits),
            merges: load(&c.merges),
            root_collapses: load(&c.root_collapses),
            overflow_pages_written: load(&c.overflow_pages_written),
            overflow_pages_freed: load(&c.overflow_pages_freed),
            checkpoints: load(&c.checkpoints),
            partial_checkpoints: load(&c.partial_checkpoints),
            pages_written: load(&c.pages_written),
            pages_doublewritten: load(&c.pages_doublewritten),
            dirty_pages,
            snapshot_images,
            log: self.inner.log.stats(),
        }
    }
}
