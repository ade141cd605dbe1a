//! Crash at every write and sync boundary of a workload that performs leaf splits, branch splits,
//! root splits, merges, a root collapse, overflow-chain writes and frees, and checkpoints; at each
//! boundary, several versions of the unsynced writes survive (none, all, torn subsets of sectors).
//! After each simulated power loss the database must open, pass `check()`, and equal the model
//! after some prefix of the batches that contains every acknowledged one (Immediate durability)
//! and nothing that was never attempted. Replay consistency checking is on throughout: every page
//! an mtr is replayed onto must equal the page the forward path produced.
//!
//! Also: a crash *during recovery* at every boundary of the recovery, followed by recovery again.
//!
//! Guards: write-ahead (a page reaching the file before its redo), atomic mtrs and batches,
//! idempotent redo (page-LSN check), self-contained records, torn-page repair, checkpoint slots.

mod common;

use common::crash::{clean_run, crashed_run, Crashes};
use common::{contents, eventual, models, options, run, run_with, workload, Step};
use mtrdb::fault::FaultStorage;
use mtrdb::{Db, ReplayJournal};
use std::sync::Arc;

#[test]
fn crash_at_every_boundary_of_splits_merges_overflow_and_checkpoints() {
    let steps = workload();
    let models = models(&steps);
    let reference = FaultStorage::new();
    let journal = ReplayJournal::new();
    let full = run(&reference, &steps, &journal);
    assert_eq!(full.acknowledged, models.len() - 1, "the workload runs cleanly without faults");
    // The workload really performs every structural change this test claims to crash inside.
    let stats = full.stats.expect("stats of the clean run");
    assert!(stats.leaf_splits > 20, "{stats:?}");
    assert!(stats.branch_splits >= 1, "no branch split: {stats:?}");
    assert!(stats.root_splits >= 2, "the tree never reached three levels: {stats:?}");
    assert!(stats.merges >= 10 && stats.root_collapses >= 1, "no merges or root collapse: {stats:?}");
    assert!(stats.overflow_pages_written >= 6 && stats.overflow_pages_freed >= 6, "{stats:?}");
    assert!(stats.checkpoints >= 4, "{stats:?}");
    let total_ops = reference.op_count();
    {
        // The workload really does what this test claims to cover.
        let db = Db::open_storage(Arc::new(reference.power_loss(0)), "sim".into(), options(&journal)).unwrap();
        assert_eq!(contents(&db), *models.last().unwrap());
    }
    let seeds: Vec<u64> = (0..10).collect();
    let mut crashes = Crashes::new(&models);
    crashes.at_every_boundary(
        &|storage: &FaultStorage, journal: &ReplayJournal| run(storage, &steps, journal),
        total_ops,
        &seeds,
        |crash_at, seed| format!("crash at op {crash_at}, seed {seed}"),
    );
    let pages_compared = crashes.pages_compared;
    crashes.report(&format!(
        "{total_ops} I/O boundaries x {} survivals; {} distinct prefixes; {pages_compared} replayed pages compared",
        seeds.len(),
        crashes.prefixes.len()
    ));
    assert_eq!(crashes.explored, crashes.recovered);
    assert!(total_ops > 100, "the workload has {total_ops} I/O operations: too few to be the intended workload");
    assert!(pages_compared > 0, "replay consistency checking compared nothing");
}

#[test]
fn crash_during_recovery_then_recover_again() {
    let steps = workload();
    let models = models(&steps);
    let run_steps = |storage: &FaultStorage, journal: &ReplayJournal| run(storage, &steps, journal);
    let (_, total_ops) = clean_run(&run_steps);
    let mut crashes = Crashes::new(&models);
    // Crash the workload at a spread of points, then crash its recovery at every boundary.
    for crash_at in (7..total_ops).step_by(9) {
        let (storage, journal, outcome) = crashed_run(&run_steps, crash_at);
        crashes.during_recovery(
            &storage.power_loss(2),
            &outcome,
            &journal,
            &options(&journal),
            &[0, 2, 5],
            |recovery_crash, seed| {
                format!("workload crash at {crash_at}, recovery crash at {recovery_crash}, seed {seed}")
            },
        );
    }
    crashes.report("crashes during recovery");
    assert!(crashes.explored > 100);
    assert_eq!(crashes.explored, crashes.recovered);
}

#[test]
fn crash_at_every_boundary_with_eventual_durability() {
    // Writes return before their redo is durable, so only checkpoints flush the log: a page
    // written back before its redo is durable (a write-ahead violation) shows up here as a
    // recovered state that equals no prefix of the batches.
    let steps = workload();
    let models = models(&steps);
    let run_steps =
        |storage: &FaultStorage, journal: &ReplayJournal| run_with(storage, &steps, eventual(journal), true);
    let (full, total_ops) = clean_run(&run_steps);
    assert_eq!(full.acknowledged, models.len() - 1);
    let mut crashes = Crashes::new(&models);
    crashes.at_every_boundary(&run_steps, total_ops, &[0, 1, 2, 3, 4, 5], |crash_at, seed| {
        format!("eventual: crash at op {crash_at}, seed {seed}")
    });
    crashes.report(&format!("eventual durability, {total_ops} I/O boundaries"));
    assert_eq!(crashes.explored, crashes.recovered);
}

#[test]
fn crash_at_every_boundary_with_the_background_thread_on() {
    // As users run it: the background thread checkpoints whenever the small log is half full,
    // concurrently with the writer, at moments the scheduler picks (the overlapping-checkpoint
    // test pins such moments down deterministically; this one runs the real thread).
    // Without the workload's explicit checkpoints, which would otherwise keep the log from ever
    // filling to where the thread starts writing pages back (3/4 of it).
    let steps: Vec<Step> = workload().into_iter().filter(|step| matches!(step, Step::Batch(_))).collect();
    let models = models(&steps);
    let with_thread = |journal: &ReplayJournal| options(journal).background_checkpoints(true);
    let run_steps =
        |storage: &FaultStorage, journal: &ReplayJournal| run_with(storage, &steps, with_thread(journal), false);
    // The thread's checkpoints fall where the scheduler puts them; in some runs an explicit
    // checkpoint of the workload gets there first and the thread finds nothing to do. The
    // reference (which sets the crash points) must be a run in which the thread did checkpoint.
    let explicit = steps.iter().filter(|step| matches!(step, Step::Checkpoint)).count() as u64;
    let (full, total_ops) = (0..50)
        .map(|_| clean_run(&run_steps))
        .find(|(full, _)| full.stats.as_ref().is_some_and(|stats| stats.checkpoints > explicit))
        .expect("in 50 runs the background thread never took a checkpoint of its own");
    assert_eq!(full.acknowledged, models.len() - 1);
    let mut crashes = Crashes::new(&models);
    crashes.at_every_boundary(&run_steps, total_ops, &[0, 1, 2, 5], |crash_at, seed| {
        format!("background thread on: crash at op {crash_at}, seed {seed}")
    });
    let checkpoints = full.stats.as_ref().map_or(0, |stats| stats.checkpoints);
    crashes.report(&format!(
        "background checkpoint thread on, {total_ops} I/O boundaries in the reference run, {checkpoints} checkpoints in it, {explicit} of them the workload's"
    ));
    assert_eq!(crashes.explored, crashes.recovered);
}
