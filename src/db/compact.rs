//! Compaction: [`Db::compact`] moves pages in use from the end of the page ids into free pages
//! lower down, cuts the free pages off the end, and gives their space back to the file system,
//! while readers and writers go on.
//!
//! # How
//! 1. Pages of dropped keyspaces still being freed are freed first.
//! 2. **Plan**, at a snapshot (as an iterator reads): the free list in order, and a walk of every
//!    live tree (the catalog's and each keyspace's). With `F` free pages of `N`, every page in
//!    use fits below `T = N - F`; each page in use at or above `T` gets a locator (where it hangs:
//!    its tree and a key that leads to it, or its chain predecessor) and a target, a free page
//!    below `T`. Highest pages first.
//! 3. **Moves**, in batches of at most [`MOVES_PER_BATCH`], each under the writer lock as any
//!    batch: the in-memory free list is brought up to date with what writers did since
//!    ([`FreeListModel`]), and each move is one mtr (`crate::btree` module `relocate`): the page
//!    found again from its locator, copied to its target, every pointer to it changed, and the
//!    old page freed. A page that writers moved or freed since the plan is skipped.
//! 4. **Cut**: batches that lower the meta page's `page_count` past the free pages at the end,
//!    taking them off the free list: only a free page that stays and came just before one cut
//!    off is changed (its link), [`CUT_RELINKS_PER_BATCH`] at most per batch.
//! 5. Steps 2 to 4 again while a pass still moved or cut something (writers may have freed or
//!    taken pages meanwhile), at most [`MAX_PASSES`] times.
//! 6. A checkpoint; after it (and after any later checkpoint at or past the last cut), the data
//!    file is cut to `page_count` pages, under the tree's write lock, if no snapshot is open: an
//!    iterator still open keeps the file's tail (it may read pages there) until a checkpoint
//!    after it closed. Recovery never meets a page beyond the end of the file: the file is cut
//!    only once the checkpoint is past every record naming a page beyond the new end.
//!
//! Without a compaction, `Db::checkpoint` and `close` cut off the free pages at the very end of
//! the page ids (step 4 alone, when the last page is free: after a drop of the keyspace created
//! last, say), and their checkpoint cuts the file.
//!
//! # Crash safety
//! Every move and every cut is an mtr of an ordinary batch, so a crash anywhere leaves the
//! database as after some prefix of them: the same contents, a valid tree, every page
//! accounted for. The moves' batches are not synced themselves; the final checkpoint is.
//!
//! # What stays
//! Compaction moves pages; it does not merge them: the file shrinks to the pages the trees hold
//! as they are (plus the meta page). A keyspace's root moves with its catalog entry, in one mtr;
//! its handles find it through the keyspace table, which learns the move when the batch commits,
//! and iterators opened before read the old root at their snapshot. The catalog's root and the
//! default keyspace's (pages 1 and 2) never need to move. Pages of a dropped keyspace whose
//! freeing failed stay where they are.
//!
//! This module owns the order of a compaction; it must not know node layout (the `btree`
//! module's `relocate` and `free_list` do).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::btree::{self, AtVersion, FreeListModel, Locator, PageSource};
use crate::catalog::{self, Entry};
use crate::error::{Error, Result};
use crate::page::PageId;
use crate::pager::PageRef;

use super::{Db, Inner};

/// Moves per batch at most (each an mtr of about a page of redo): bounds the writer lock's
/// hold. Fewer with a small log (a quarter of it at most).
pub const MOVES_PER_BATCH: usize = 64;
/// Free pages a cutting batch relinks at most (those that stay below the cut and came just
/// before a page cut off): bounds its redo and the pages it changes. Pages cut off are not
/// changed, so a batch cuts any number of them.
pub const CUT_RELINKS_PER_BATCH: usize = 4096;
/// Plans made at most by one compaction.
pub const MAX_PASSES: u32 = 3;

/// How far a compaction has come: passed to [`Db::compact_with`]'s callback after each batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactProgress {
    /// The pass (1 to [`MAX_PASSES`]).
    pub pass: u32,
    /// Moves of this pass made (or given up) so far.
    pub moved: u64,
    /// Moves this pass planned.
    pub to_move: u64,
    /// Page ids in use or free (the meta page's `page_count`) as of the last cut.
    pub page_count: u32,
}

/// What [`Db::compact`] did.
#[derive(Clone, Debug, Default)]
pub struct CompactReport {
    /// The data file's length before.
    pub file_bytes_before: u64,
    /// The data file's length after (the cut may wait for open iterators: see `cut_deferred`).
    pub file_bytes_after: u64,
    /// Page ids in use or free before (the meta page's `page_count`).
    pub page_count_before: u32,
    /// Page ids in use or free after.
    pub page_count_after: u32,
    /// Pages moved to a lower page id.
    pub pages_moved: u64,
    /// Planned moves given up because writers had changed the page since the plan.
    pub moves_skipped: u64,
    /// Plans made.
    pub passes: u32,
    /// From the call to its return.
    pub duration: Duration,
    /// The longest a batch of moves or cuts held the tree's write lock: the longest a reader or
    /// writer could have waited for compaction.
    pub longest_pause: Duration,
    /// An open iterator (a snapshot) kept the data file from being cut; a later checkpoint (or
    /// close) cuts it once none is open.
    pub cut_deferred: bool,
}

/// A planned move.
enum Move {
    /// A node or overflow page of a tree.
    Page(Locator),
    /// A keyspace's root, named in its catalog entry.
    Root { name: String, id: u64 },
}

/// A compaction's plan (see the module doc).
struct Plan {
    model: FreeListModel,
    /// The trees the plan walked, by their root at the snapshot: the keyspace's id, or `None`
    /// for the catalog. A move finds its tree's root now through it: a keyspace's root may have
    /// moved since, or the keyspace been dropped (its moves are then given up).
    trees: rustc_hash::FxHashMap<PageId, Option<u64>>,
    /// Pages in use at or above `target`, highest first.
    moves: Vec<(PageId, Move)>,
    /// Pages in use at the snapshot: every page in use fits below it.
    target: PageId,
}

/// Page reads at a snapshot, each under the tree's read lock (as `Db::check` reads).
struct SnapshotPages<'a> {
    inner: &'a Inner,
    version: u64,
}

impl PageSource for SnapshotPages<'_> {
    fn page(&self, page_id: PageId) -> Result<PageRef<'_>> {
        let tree = self.inner.tree.read();
        let source = AtVersion(&tree.pager, self.version);
        let page = source.page(page_id)?;
        Ok(PageRef::Shared(Arc::from(&*page)))
    }
}

impl Db {
    /// Gives space back: moves pages in use from the end of the data file into free pages lower
    /// down, cuts the free pages off the end, and shrinks the file, while readers and writers go
    /// on (each batch of moves holds them off for about [`MOVES_PER_BATCH`] page copies). See
    /// the `compact` module doc for how, and for what a compaction cannot give back.
    ///
    /// An open iterator keeps working (it reads its snapshot) and delays only the cutting of the
    /// file, to the first checkpoint after it closed ([`CompactReport::cut_deferred`]). A crash
    /// at any point leaves the same contents, recovered. An I/O error (a full disk) is returned
    /// typed, and loses nothing: the database holds what it held.
    ///
    /// **Bounds.** Memory: about 40 bytes per free page (the free list's order) and one locator
    /// per page to move (at most one key each). Time: a walk of every page of every tree per
    /// pass (at most [`MAX_PASSES`]), and a page copy per move.
    pub fn compact(&self) -> Result<CompactReport> {
        self.compact_with(|_| {})
    }

    /// [`Db::compact`], calling `progress` after each batch of moves or cuts. `progress` may read
    /// and write the database, but must not start another compaction (it would wait for this
    /// one).
    pub fn compact_with(&self, mut progress: impl FnMut(CompactProgress)) -> Result<CompactReport> {
        let inner = &self.inner;
        inner.refuse_inside_transaction()?;
        inner.check_writable()?;
        let _one_at_a_time = inner.compaction.lock();
        let started = Instant::now();
        let mut report = CompactReport {
            file_bytes_before: inner.data_file_len()?,
            page_count_before: inner.page_count()?,
            ..CompactReport::default()
        };
        // A dropped keyspace whose freeing fails (a damaged page) stays where it is: its pages
        // count as in use, and the rest of the file is compacted around them.
        if let Err(error) = inner.reclaim_dropped() {
            tracing::warn!(%error, "freeing a dropped keyspace failed; compacting around it");
        }
        while report.passes < MAX_PASSES {
            report.passes += 1;
            let mut plan = inner.plan_compaction(false)?;
            let planned = plan.moves.len() as u64;
            let skipped_before = report.moves_skipped;
            let moved = inner.run_moves(&mut plan, &mut report, &mut progress)?;
            let cut = inner.run_cuts(&mut plan.model, &mut report)?;
            progress(CompactProgress {
                pass: report.passes,
                moved: planned,
                to_move: planned,
                page_count: inner.page_count()?,
            });
            tracing::info!(pass = report.passes, moved, cut, target = plan.target, "compaction pass");
            let skipped = report.moves_skipped > skipped_before;
            if cut == 0 && (moved == 0 || !skipped) {
                break;
            }
        }
        // The data file is cut by this checkpoint, or a later one if a snapshot is open: only
        // now, after the last compaction batch, so that no checkpoint taken in the middle of the
        // compaction cuts it.
        inner.cut_pending.store(true, Ordering::Release);
        inner.checkpoint()?;
        report.page_count_after = inner.page_count()?;
        report.file_bytes_after = inner.data_file_len()?;
        report.cut_deferred = report.file_bytes_after > u64::from(report.page_count_after) * inner.page_size as u64;
        report.duration = started.elapsed();
        Ok(report)
    }
}

impl Inner {
    fn page_count(&self) -> Result<u32> {
        let tree = self.tree.read();
        Ok(btree::read_meta(&btree::Latest(&tree.pager))?.page_count)
    }

    fn data_file_len(&self) -> Result<u64> {
        let data = Arc::clone(self.tree.read().pager.data_file());
        data.len().map_err(|source| Error::Io {
            action: "reading the data file's length",
            path: self.storage.describe(super::DATA_FILE),
            source,
        })
    }

    /// The plan, from a snapshot (see the module doc); with `only_the_free_list`, no moves (the
    /// trees are not walked).
    fn plan_compaction(&self, only_the_free_list: bool) -> Result<Plan> {
        // Every page on the free list at this version carries an LSN at or before `lsn`.
        let (snapshot, lsn) = self.hold_snapshot();
        let source = SnapshotPages { inner: self, version: snapshot.version };
        (|| {
            let meta = btree::read_meta(&source)?;
            let order = btree::free_list_order(&source, meta.free_head, meta.page_count)?;
            let target = meta.page_count - order.len() as u32;
            let model = FreeListModel::new(&order, lsn.0);
            let mut trees = rustc_hash::FxHashMap::default();
            if only_the_free_list {
                return Ok(Plan { model, trees, moves: Vec::new(), target });
            }
            let mut roots = vec![meta.catalog_root];
            trees.insert(meta.catalog_root, None);
            let mut root_moves = Vec::new();
            for entry in catalog::entries(&source, meta.catalog_root)? {
                // A dropped keyspace still being freed stays where it is.
                if let Entry::Live { name, id, root, .. } = entry {
                    roots.push(root);
                    trees.insert(root, Some(id));
                    if root >= target && id != catalog::DEFAULT_TREE_ID {
                        root_moves.push((root, Move::Root { name, id }));
                    }
                }
            }
            let mut moves: Vec<(PageId, Move)> = btree::plan_moves(&source, &roots, target)?
                .into_iter()
                .map(|(page_id, locator)| (page_id, Move::Page(locator)))
                .chain(root_moves)
                .collect();
            moves.sort_unstable_by_key(|&(page_id, _)| std::cmp::Reverse(page_id));
            Ok(Plan { model, trees, moves, target })
        })()
    }

    /// The plan's moves, in batches; returns how many moved.
    fn run_moves(
        &self,
        plan: &mut Plan,
        report: &mut CompactReport,
        progress: &mut dyn FnMut(CompactProgress),
    ) -> Result<u64> {
        let mut moved_to: rustc_hash::FxHashMap<PageId, PageId> = rustc_hash::FxHashMap::default();
        let (mut moved, mut skipped_here) = (0u64, 0u64);
        let moves = std::mem::take(&mut plan.moves);
        let mut pending = moves.iter().peekable();
        while pending.peek().is_some() {
            let batch: Vec<&(PageId, Move)> = pending.by_ref().take(self.moves_per_batch()).collect();
            let estimate = (batch.len() * (self.page_size + 256)) as u64;
            let model = &mut plan.model;
            let target = plan.target;
            let trees = &plan.trees;
            let body = |writer: &mut btree::BatchWriter<'_>, keyspaces: &catalog::Keyspaces| {
                model.sync(writer)?;
                let (mut done, mut skipped, mut roots) = (0u64, 0u64, Vec::new());
                for (from, planned) in &batch {
                    let Some(to) = model.lowest_below(target.min(*from)) else { break };
                    let moved = match planned {
                        Move::Root { name, id } => {
                            let moved = catalog::move_root(writer, model, name, *id, *from, to)?;
                            if moved {
                                roots.push((*id, to));
                            }
                            moved
                        }
                        // A chain predecessor moved earlier in this compaction is found at its
                        // new id.
                        Move::Page(Locator::ChainNext { previous }) => {
                            let previous = moved_to.get(previous).copied().unwrap_or(*previous);
                            writer.relocate(model, *from, to, &Locator::ChainNext { previous })?
                        }
                        Move::Page(locator) => {
                            // The tree's root now: moved earlier in this batch, or since the
                            // plan; `None` if its keyspace was dropped meanwhile.
                            let planned = locator.root().unwrap_or(0);
                            let current = match trees.get(&planned) {
                                Some(None) => Some(writer.catalog_root()),
                                Some(&Some(id)) => keyspaces.root_of_id(id),
                                None => None,
                            }
                            .map(|root| moved_to.get(&root).copied().unwrap_or(root));
                            match current {
                                Some(root) => writer.relocate(model, *from, to, &locator.with_root(root))?,
                                None => false,
                            }
                        }
                    };
                    if moved {
                        // Known at once: the next page of its chain may be in this batch.
                        moved_to.insert(*from, to);
                        done += 1;
                    } else {
                        skipped += 1;
                    }
                }
                Ok((done, skipped, roots))
            };
            // The keyspace table learns a moved root when its batch commits.
            let on_commit = |keyspaces: &mut catalog::Keyspaces, outcome: &(u64, u64, Vec<(u64, PageId)>)| {
                for &(id, root) in &outcome.2 {
                    keyspaces.set_root(id, root);
                }
            };
            let (known, (done, skipped, _)) = self.compaction_batch(report, estimate, body, on_commit)?;
            plan.model.known_up_to(known.0);
            report.moves_skipped += skipped;
            moved += done;
            skipped_here += skipped;
            progress(CompactProgress {
                pass: report.passes,
                moved: moved + skipped_here,
                to_move: moves.len() as u64,
                page_count: self.page_count()?,
            });
        }
        report.pages_moved += moved;
        Ok(moved)
    }

    /// Cuts the free pages at the end of the page ids off, if the last page is free (a dropped
    /// keyspace or removals freed it): a walk of the free list at a snapshot, then cutting
    /// batches; the checkpoint that follows cuts the data file. Called before the checkpoints of
    /// `Db::checkpoint` and `close` (not by the checkpoint thread, which must never wait for the
    /// writer lock a long transaction holds). Does nothing while a compaction runs
    /// (it cuts at its end), nor inside a transaction of this database on this thread (which
    /// holds the writer lock the batches need).
    ///
    /// **Cost:** one page read when the last page is in use; otherwise a read of every free page
    /// and about 40 bytes of memory per free page (as a compaction's plan).
    pub(super) fn cut_free_end(&self) -> Result<()> {
        if self.refuse_inside_transaction().is_err() {
            return Ok(());
        }
        let Some(_one_at_a_time) = self.compaction.try_lock() else { return Ok(()) };
        self.check_writable()?;
        if !btree::last_page_is_free(&btree::Latest(&self.tree.read().pager))? {
            return Ok(());
        }
        let mut plan = self.plan_compaction(true)?;
        let mut report = CompactReport::default();
        if self.run_cuts(&mut plan.model, &mut report)? > 0 {
            self.cut_pending.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Moves per batch: [`MOVES_PER_BATCH`], fewer if a quarter of the log would not hold
    /// them (each logs about a page).
    fn moves_per_batch(&self) -> usize {
        let per_move = self.page_size as u64 + 256;
        (self.log.file().capacity() / 4 / per_move).clamp(1, MOVES_PER_BATCH as u64) as usize
    }

    /// Cuts the free pages at the end off the page ids, in batches; returns how many.
    fn run_cuts(&self, model: &mut FreeListModel, report: &mut CompactReport) -> Result<u64> {
        let mut cut_total = 0u64;
        loop {
            let estimate = CUT_RELINKS_PER_BATCH as u64 * 16;
            let (known, cut) = self.compaction_batch(
                report,
                estimate,
                |writer, _| writer.cut_free_tail(model, CUT_RELINKS_PER_BATCH),
                |_, _| {},
            )?;
            model.known_up_to(known.0);
            let Some((before, after)) = cut else { return Ok(cut_total) };
            cut_total += u64::from(before - after);
        }
    }

    /// One batch of compaction under the writer lock, unsynced. Returns, with what `body`
    /// returned, the log's end after it: the free list model `body` kept in step knows every
    /// change up to there. (`body` runs once: a batch whose redo does not fit is an error here,
    /// not retried, since `body` changes the model as it goes.)
    fn compaction_batch<R>(
        &self,
        report: &mut CompactReport,
        estimate: u64,
        mut body: impl FnMut(&mut btree::BatchWriter<'_>, &catalog::Keyspaces) -> Result<R>,
        mut on_commit: impl FnMut(&mut catalog::Keyspaces, &R),
    ) -> Result<(mtr::Lsn, R)> {
        self.check_writable()?;
        let mut mtr = self.writer.lock();
        self.make_log_room(estimate)?;
        let held = Instant::now();
        // No data file cut while this batch is in flight: a checkpoint that waits for the tree's
        // lock meanwhile must not see the page count this batch lowers with an end LSN from
        // before it (see `cut_data_file`).
        let before = self.compaction_redo_end.swap(u64::MAX, Ordering::AcqRel);
        let applied = self.apply_batch(&mut mtr, &mut body, &mut on_commit);
        let end = match &applied {
            Ok((Some(end), _)) => end.0.max(before),
            _ => before,
        };
        self.compaction_redo_end.store(end, Ordering::Release);
        let (commit, value) = applied?;
        report.longest_pause = report.longest_pause.max(held.elapsed());
        // Still under the writer lock: no other batch has appended since this one.
        let known = self.log.end_lsn();
        drop(mtr);
        self.finish_commit(commit, super::batch::Durable::No)?;
        Ok((known, value))
    }

    /// After a checkpoint at `checkpoint`: cuts the data file to `page_count` pages if a
    /// compaction lowered it, the checkpoint is past that, and no snapshot is open (see the
    /// module doc). Under the tree's write lock.
    pub(super) fn cut_data_file(&self, checkpoint: mtr::Lsn) -> Result<()> {
        if !self.cut_pending.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut tree = self.tree.write();
        // Under the tree's lock, with the page count read below: every record naming a page
        // beyond the new end is in a compaction batch, and the file is cut only once the
        // checkpoint is past all of them (a batch in flight reads as `u64::MAX`).
        if checkpoint.0 < self.compaction_redo_end.load(Ordering::Acquire) {
            return Ok(());
        }
        if !self.snapshots.lock().is_empty() {
            return Ok(());
        }
        let page_count = btree::read_meta(&btree::Latest(&tree.pager))?.page_count;
        let cut = tree.pager.cut_file(page_count)?;
        self.cut_pending.store(false, Ordering::Release);
        tracing::info!(page_count, bytes = cut, "data file cut");
        Ok(())
    }
}
