//! A failed write or sync, then a reopen **in the same boot**, more writes, a clean close, and
//! only then the power loss.
//!
//! After a writeback error Linux marks the dirty pages clean without writing them: reads keep
//! returning the new bytes from the page cache while the disk holds the old ones, and no later
//! sync writes them (the fault-injecting storage models exactly this). A reopen in the same boot
//! therefore reads a data file and a log that look intact but are not durable. If recovery
//! trusted them (torn-page repair finding nothing to repair, the redo pass skipping pages whose
//! cached LSN is new, the next checkpoint moving past their redo), the power loss would reveal old
//! pages whose redo is gone.
//!
//! For an I/O error injected at every write and sync of the crash-point workload in turn, and
//! several survivals of the final power loss: the reopened database must equal a prefix of the
//! batches holding every batch acknowledged before the error, accept the rest of the workload,
//! and after the power loss hold every batch (all were acknowledged, and the close succeeded).
//!
//! The second test puts the power loss at every I/O boundary of the second session instead (the
//! reopen's own recovery and write-back, the writes after it, the checkpoints, the close), for a
//! sample of the injected errors: what survives must hold every batch the first session
//! acknowledged, everything the reopen showed (a reopen's recovery is durable before `open`
//! returns), and every batch the second session acknowledged.
//!
//! The third test fails a sync of a checkpoint that writers overlap (so redo follows the
//! checkpoint it was writing), reopens in the same boot, and cuts that reopen's own recovery by
//! a power loss at every I/O boundary: the checkpoint slot the reopen starts from may exist only
//! in the cache, and the second recovery must still find the doublewrite copies of what the first
//! one was writing back.
//!
//! Guards finding 2 of the reliability review ("reopening after a failed data-file fsync trusts
//! the page cache").

mod common;

use std::sync::Arc;

use common::crash::clean_run;
use common::{
    batch_of, contents, models, options, overlapping_options, run_overlapping, verify, workload,
    workload_dense_checkpoints, Model, Run, Step,
};
use mtrdb::fault::FaultStorage;
use mtrdb::{Db, ReplayJournal};

/// Every how many I/O operations of the first session the second test injects its error.
const FAIL_STRIDE: usize = 2;

/// The crash-point workload, its models, and its I/O operations when nothing fails.
fn workload_with_length() -> (Vec<Step>, Vec<Model>, u64) {
    let steps = workload();
    let models = models(&steps);
    let reference = FaultStorage::new();
    common::run(&reference, &steps, &ReplayJournal::new());
    (steps, models, reference.op_count())
}

/// The first process: the workload with an I/O error injected at operation `fail_at`, until a
/// step fails (the handle is poisoned from then on). Returns (acknowledged, attempted) batches.
fn first_session(storage: &FaultStorage, journal: &ReplayJournal, steps: &[Step], fail_at: u64) -> (usize, usize) {
    storage.fail_at(fail_at);
    let run = common::run(storage, steps, journal);
    (run.acknowledged, run.attempted)
}

/// The reopen in the same boot: checked, and equal to a prefix of the batches from
/// `acknowledged..=attempted`, which it returns with the handle.
fn reopen(
    storage: &FaultStorage,
    journal: &ReplayJournal,
    models: &[Model],
    (acknowledged, attempted): (usize, usize),
    what: &str,
) -> mtrdb::Result<(Db, usize)> {
    let db = Db::open_storage(Arc::new(storage.clone()), "sim".into(), options(journal))?;
    db.check().unwrap_or_else(|error| panic!("{what}: check after the reopen: {error}"));
    let found = contents(&db);
    let prefix = (acknowledged..=attempted)
        .find(|&p| models[p] == found)
        .unwrap_or_else(|| panic!("{what}: the reopened database equals no prefix in {acknowledged}..={attempted}"));
    Ok((db, prefix))
}

/// The rest of the workload after batch `prefix`, then a close; stops at the first error.
/// Returns the run measured from the start of the workload.
fn second_session(db: Db, steps: &[Step], prefix: usize) -> (Run, mtrdb::Result<()>) {
    let mut run = Run { acknowledged: prefix, attempted: prefix, stats: None };
    let mut seen = 0;
    for step in steps {
        let result = match step {
            Step::Batch(ops) => {
                seen += 1;
                if seen <= prefix {
                    continue;
                }
                run.attempted += 1;
                let result = db.write(batch_of(ops));
                if result.is_ok() {
                    run.acknowledged += 1;
                }
                result
            }
            Step::Checkpoint if seen > prefix => db.checkpoint(),
            Step::Checkpoint => continue,
        };
        if result.is_err() {
            return (run, result);
        }
    }
    let closed = db.close();
    if closed.is_ok() {
        // A clean close makes every batch durable.
        run.acknowledged = run.attempted;
    }
    (run, closed)
}

#[test]
fn a_failed_sync_then_a_reopen_in_the_same_boot_loses_nothing() {
    let (steps, models, total_ops) = workload_with_length();
    let batches = models.len() - 1;
    let mut explored = 0u64;
    let mut recovered = 0u64;
    for fail_at in 0..total_ops {
        let storage = FaultStorage::new();
        let journal = ReplayJournal::new();
        let first = first_session(&storage, &journal, &steps, fail_at);
        let what = format!("I/O error at op {fail_at}");
        // The same boot: the page cache still holds whatever the failed sync did not persist.
        let (db, prefix) = reopen(&storage, &journal, &models, first, &what)
            .unwrap_or_else(|error| panic!("{what}: reopen in the same boot failed: {error}"));
        let (run, closed) = second_session(db, &steps, prefix);
        closed.unwrap_or_else(|error| panic!("{what}: the rest of the workload after the reopen: {error}"));
        assert_eq!(run.acknowledged, batches, "{what}: every batch acknowledged after the reopen");
        // The reboot drops the cache: only what reached the disk is left.
        for seed in [0u64, 1, 2] {
            explored += 1;
            verify(storage.power_loss(seed), &models, &run, &journal, &format!("{what}, power loss seed {seed}"));
            recovered += 1;
        }
    }
    println!(
        "crash points explored: {explored}, recovered: {recovered} (failed sync, reopen in the same boot, more writes, power loss; {total_ops} I/O boundaries x 3 survivals)"
    );
    assert!(total_ops > 100);
    assert_eq!(explored, recovered);
}

#[test]
fn a_power_loss_anywhere_after_a_failed_sync_and_a_reopen_loses_nothing() {
    let (steps, models, total_ops) = workload_with_length();
    let mut explored = 0u64;
    let mut recovered = 0u64;
    let mut sessions_cut = 0u64;
    for fail_at in (0..total_ops).step_by(FAIL_STRIDE) {
        // The second session's length for this error, measured without a power loss.
        let second_ops = {
            let storage = FaultStorage::new();
            let journal = ReplayJournal::new();
            let first = first_session(&storage, &journal, &steps, fail_at);
            let before = storage.op_count();
            let (db, prefix) = reopen(&storage, &journal, &models, first, "measuring").expect("the reopen");
            second_session(db, &steps, prefix).1.expect("the second session");
            storage.op_count() - before
        };
        for crash_after in 0..=second_ops {
            let storage = FaultStorage::new();
            let journal = ReplayJournal::new();
            let first = first_session(&storage, &journal, &steps, fail_at);
            storage.crash_at(storage.op_count() + crash_after);
            let what = format!("I/O error at op {fail_at}, power loss at the second session's op {crash_after}");
            let run = match reopen(&storage, &journal, &models, first, &what) {
                Ok((db, prefix)) => second_session(db, &steps, prefix).0,
                // The power went during the reopen's own recovery: the first session's bounds.
                Err(_) if storage.crashed() => Run { acknowledged: first.0, attempted: first.1, stats: None },
                Err(error) => panic!("{what}: the reopen failed without a crash: {error}"),
            };
            if storage.crashed() {
                sessions_cut += 1;
            }
            storage.crash_at(storage.op_count());
            let seed = crash_after % 4;
            explored += 1;
            verify(storage.power_loss(seed), &models, &run, &journal, &format!("{what}, seed {seed}"));
            recovered += 1;
        }
    }
    println!(
        "crash points explored: {explored}, recovered: {recovered} (failed sync, reopen in the same boot, power loss at every I/O boundary of the second session, for an error at every {FAIL_STRIDE}nd operation of the first)"
    );
    assert!(sessions_cut * 10 > explored * 9, "most points cut the second session: {sessions_cut} of {explored}");
    assert_eq!(explored, recovered);
}

/// Steps of the dense-checkpoint workload the third test runs: a few batches with splits, each
/// pair followed by a checkpoint that the next batch overlaps.
const OVERLAPPED_STEPS: usize = 30;

#[test]
fn a_failed_sync_of_an_overlapped_checkpoint_then_a_reopen_cut_by_a_power_loss() {
    let steps: Vec<Step> = workload_dense_checkpoints().into_iter().take(OVERLAPPED_STEPS).collect();
    let models = models(&steps);
    // Each checkpoint is held before its 2nd I/O operation while the next batch commits.
    let first_session = |storage: &FaultStorage, journal: &ReplayJournal| {
        run_overlapping(storage, &steps, overlapping_options(journal), 2)
    };
    let (_, total_ops) = clean_run(&first_session);
    let reopen = |storage: &FaultStorage, journal: &ReplayJournal| {
        Db::open_storage(Arc::new(storage.clone()), "sim".into(), overlapping_options(journal))
    };
    let mut explored = 0u64;
    let mut recovered = 0u64;
    for fail_at in 0..total_ops {
        // How many I/O operations the reopen in the same boot performs after this error.
        let reopen_ops = {
            let storage = FaultStorage::new();
            let journal = ReplayJournal::new();
            storage.fail_at(fail_at);
            first_session(&storage, &journal);
            let before = storage.op_count();
            drop(reopen(&storage, &journal));
            storage.op_count() - before
        };
        for crash_after in 0..reopen_ops {
            let storage = FaultStorage::new();
            let journal = ReplayJournal::new();
            storage.fail_at(fail_at);
            let run = first_session(&storage, &journal);
            storage.crash_at(storage.op_count() + crash_after);
            drop(reopen(&storage, &journal));
            for seed in [2u64, 3, 4, 5] {
                explored += 1;
                let what = format!("I/O error at op {fail_at}, reopen cut at its op {crash_after}, seed {seed}");
                verify(storage.power_loss(seed), &models, &run, &journal, &what);
                recovered += 1;
            }
        }
    }
    println!(
        "crash points explored: {explored}, recovered: {recovered} (failed sync of an overlapped checkpoint, reopen in the same boot cut at every I/O boundary, power loss; {total_ops} I/O boundaries for the error)"
    );
    assert!(explored > 1_000, "{explored}");
    assert_eq!(explored, recovered);
}
