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
//! Guards finding 2 of the reliability review ("reopening after a failed data-file fsync trusts
//! the page cache").

mod common;

use std::sync::Arc;

use common::{batch_of, contents, models, options, verify, workload, Run, Step};
use mtrdb::fault::FaultStorage;
use mtrdb::{Db, ReplayJournal};

#[test]
fn a_failed_sync_then_a_reopen_in_the_same_boot_loses_nothing() {
    let steps = workload();
    let models = models(&steps);
    let batches = models.len() - 1;
    let reference = FaultStorage::new();
    common::run(&reference, &steps, &ReplayJournal::new());
    let total_ops = reference.op_count();
    let mut explored = 0u64;
    let mut recovered = 0u64;
    for fail_at in 0..total_ops {
        let storage = FaultStorage::new();
        let journal = ReplayJournal::new();
        storage.fail_at(fail_at);
        // The first process: runs until the injected error, then gives up (poisoned).
        let mut acknowledged = 0;
        let mut attempted = 0;
        if let Ok(db) = Db::open_storage(Arc::new(storage.clone()), "sim".into(), options(&journal)) {
            for step in &steps {
                let result = match step {
                    Step::Batch(ops) => {
                        attempted += 1;
                        let result = db.write(batch_of(ops));
                        if result.is_ok() {
                            acknowledged += 1;
                        }
                        result
                    }
                    Step::Checkpoint => db.checkpoint(),
                };
                if result.is_err() {
                    break;
                }
            }
        }
        let what = format!("I/O error at op {fail_at}");
        // The same boot: the page cache still holds whatever the failed sync did not persist.
        let db = Db::open_storage(Arc::new(storage.clone()), "sim".into(), options(&journal))
            .unwrap_or_else(|error| panic!("{what}: reopen in the same boot failed: {error}"));
        db.check().unwrap_or_else(|error| panic!("{what}: check after the reopen: {error}"));
        let found = contents(&db);
        let prefix = (acknowledged..=attempted).find(|&p| models[p] == found).unwrap_or_else(|| {
            panic!("{what}: the reopened database equals no prefix in {acknowledged}..={attempted}")
        });
        // The rest of the workload, from that prefix on.
        let mut seen = 0;
        for step in &steps {
            match step {
                Step::Batch(ops) => {
                    seen += 1;
                    if seen > prefix {
                        db.write(batch_of(ops)).unwrap_or_else(|error| panic!("{what}: write after reopen: {error}"));
                    }
                }
                Step::Checkpoint if seen > prefix => {
                    db.checkpoint().unwrap_or_else(|error| panic!("{what}: checkpoint after reopen: {error}"))
                }
                Step::Checkpoint => {}
            }
        }
        db.close().unwrap_or_else(|error| panic!("{what}: close after reopen: {error}"));
        // The reboot drops the cache: only what reached the disk is left.
        let everything = Run { acknowledged: batches, attempted: batches, stats: None };
        for seed in [0u64, 1, 2] {
            explored += 1;
            verify(
                storage.power_loss(seed),
                &models,
                &everything,
                &journal,
                &format!("{what}, power loss seed {seed}"),
            );
            recovered += 1;
        }
    }
    println!(
        "crash points explored: {explored}, recovered: {recovered} (failed sync, reopen in the same boot, more writes, power loss; {total_ops} I/O boundaries x 3 survivals)"
    );
    assert!(total_ops > 100);
    assert_eq!(explored, recovered);
}
