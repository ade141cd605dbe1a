//! Checkpoints that overlap writers, at every I/O boundary, then one power loss or two.
//!
//! Users run with background checkpoints on: a checkpoint takes its page images between batches
//! and then writes them while the next batches are applied and committed. Here every checkpoint of
//! a workload (a checkpoint after every second batch: splits, overflow chains written and freed,
//! merges that free pages, a root collapse) runs on its own thread and is held just before its
//! `pause_after`-th I/O operation while the writer commits the next batch; then it goes on
//! ([`common::run_overlapping`]: a deterministic schedule, so each crash point is one exact
//! interleaving). For every hold point:
//! - **one power loss** at every I/O boundary, with several survivals of the unsynced writes
//!   (none, all, torn subsets of sectors): the database opens, passes `check()`, equals a prefix
//!   of the batches holding every acknowledged one, and replays consistently;
//! - **two power losses**: after a first one, recovery itself is cut by a second power loss at
//!   every I/O boundary of its own work (the log rewrite, the write-back through the doublewrite
//!   file, the resumed log), tearing what it wrote; the third open must still succeed.
//!
//! Guards finding 1 of the reliability review: recovery used to skip the doublewrite copy of a
//! page whose first *applied* record was a format record (a page freed by a merge), although
//! earlier records for it had been skipped by the page-LSN check; a second power loss tearing
//! that page made the database unopenable (`Error::Corrupt` on every open).

mod common;

use common::crash::{clean_run, crashed_run, Crashes};
use common::{models, overlapping_options, run_overlapping, workload_dense_checkpoints, Run};
use mtrdb::fault::FaultStorage;
use mtrdb::ReplayJournal;

/// Hold points: before each of the checkpoint's first operations (doublewrite writes and syncs,
/// in-place writes, the data sync, the checkpoint slot).
const HOLD_POINTS: std::ops::Range<u64> = 0..6;

/// The workload with every checkpoint held before its I/O operation number `pause_after`.
fn held_at(steps: &[common::Step], pause_after: u64) -> impl Fn(&FaultStorage, &ReplayJournal) -> Run + '_ {
    move |storage, journal| run_overlapping(storage, steps, overlapping_options(journal), pause_after)
}

#[test]
fn checkpoints_overlapping_writers_crash_at_every_boundary() {
    let steps = workload_dense_checkpoints();
    let models = models(&steps);
    let mut crashes = Crashes::new(&models);
    for pause_after in HOLD_POINTS {
        let run_steps = held_at(&steps, pause_after);
        let (full, total_ops) = clean_run(&run_steps);
        assert_eq!(full.acknowledged, models.len() - 1, "the workload runs cleanly without faults");
        let stats = full.stats.expect("stats of the clean run");
        assert!(stats.merges >= 10 && stats.overflow_pages_freed >= 6 && stats.checkpoints >= 20, "{stats:?}");
        crashes.at_every_boundary(&run_steps, total_ops, &[0, 1, 2, 5], |crash_at, seed| {
            format!("checkpoint held before its op {pause_after}, crash at op {crash_at}, seed {seed}")
        });
    }
    let pages_compared = crashes.pages_compared;
    crashes.report(&format!(
        "checkpoints overlapping writers, {} hold points; {pages_compared} replayed pages compared",
        HOLD_POINTS.end
    ));
    assert_eq!(crashes.explored, crashes.recovered);
    assert!(pages_compared > 0);
}

#[test]
fn a_second_power_loss_during_recovery_after_overlapping_checkpoints() {
    let steps = workload_dense_checkpoints();
    let models = models(&steps);
    let mut crashes = Crashes::new(&models);
    for pause_after in HOLD_POINTS {
        let run_steps = held_at(&steps, pause_after);
        let (_, total_ops) = clean_run(&run_steps);
        // Every eighth first crash point (a different eighth for each hold point), with every
        // crash point of the recovery after it.
        for crash_at in (pause_after % 8..total_ops).step_by(8) {
            let (storage, journal, outcome) = crashed_run(&run_steps, crash_at);
            // The first power loss keeps every unsynced write (seed 1) or tears some (seed 3).
            for first_seed in [1u64, 3] {
                crashes.during_recovery(
                    &storage.power_loss(first_seed),
                    &outcome,
                    &journal,
                    &overlapping_options(&journal),
                    &[2, 5],
                    |recovery_crash, second_seed| {
                        format!(
                            "checkpoint held before its op {pause_after}, crash at op {crash_at} (seed {first_seed}), \
                             recovery crash at op {recovery_crash} (seed {second_seed})"
                        )
                    },
                );
            }
        }
    }
    crashes.report("double crashes: a power loss during recovery after overlapping checkpoints");
    assert!(crashes.explored > 1000);
    assert_eq!(crashes.explored, crashes.recovered);
}
