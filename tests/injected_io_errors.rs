//! An I/O error injected at each write and sync of the crash-point workload in turn. After a
//! failed sync the page cache may have dropped the data, so the engine must not retry and carry
//! on: it must return a typed error and refuse every later write until it is reopened (sticky
//! failed state), never panic, and after a power loss and reopen the database must equal a
//! prefix of the batches containing every acknowledged one. Until then the failed handle still
//! serves reads: every acknowledged batch, perhaps the failed one, nothing else.

mod common;

use std::sync::Arc;

use common::{batch_of, contents, models, options, verify, workload, Run, Step};
use mtrdb::fault::FaultStorage;
use mtrdb::{Db, Error, ReplayJournal};

#[test]
fn an_io_error_at_each_boundary_poisons_writes_and_loses_nothing_acknowledged() {
    let steps = workload();
    let models = models(&steps);
    let reference = FaultStorage::new();
    common::run(&reference, &steps, &ReplayJournal::new());
    let total_ops = reference.op_count();
    let mut explored = 0u64;
    let mut poisoned_after = 0u64;
    let mut failed_reads_checked = 0u64;
    for fail_at in 0..total_ops {
        let storage = FaultStorage::new();
        let journal = ReplayJournal::new();
        storage.fail_at(fail_at);
        let mut run = Run { acknowledged: 0, attempted: 0, stats: None };
        let mut first_error: Option<String> = None;
        if let Ok(db) = Db::open_storage(Arc::new(storage.clone()), "sim".into(), options(&journal)) {
            for step in &steps {
                let result = match step {
                    Step::Batch(ops) => {
                        run.attempted += 1;
                        let result = db.write(batch_of(ops));
                        if result.is_ok() && first_error.is_none() {
                            run.acknowledged += 1;
                        }
                        result
                    }
                    Step::Checkpoint => db.checkpoint(),
                };
                match (result, &first_error) {
                    (Err(error), None) => first_error = Some(error.to_string()),
                    (Ok(()), Some(cause)) => panic!("op {fail_at}: a write succeeded after the failure '{cause}'"),
                    (Err(error), Some(_)) => {
                        assert!(
                            matches!(error, Error::Poisoned { .. } | Error::Log(mtr::Error::Poisoned { .. })),
                            "op {fail_at}: after a failure, writes must report the failed state, got: {error}"
                        );
                        poisoned_after += 1;
                    }
                    (Ok(()), None) => {}
                }
            }
            // Reads still work in the failed state, and show every acknowledged batch: the
            // handle holds the batches acknowledged before the failure, and perhaps the one whose
            // write failed (its outcome is unknown), nothing else.
            if first_error.is_some() {
                db.check().unwrap_or_else(|error| panic!("op {fail_at}: check in the failed state: {error}"));
                let found = contents(&db);
                let last = (run.acknowledged + 1).min(run.attempted);
                let prefix = (run.acknowledged..=last).find(|&p| models[p] == found);
                assert!(
                    prefix.is_some(),
                    "op {fail_at}: the failed handle reads as no prefix in {}..={last}",
                    run.acknowledged
                );
                for (key, value) in &models[run.acknowledged] {
                    if models[last].get(key) == Some(value) {
                        assert_eq!(db.get(key).expect("get in the failed state").as_ref(), Some(value));
                    }
                }
                failed_reads_checked += 1;
            }
            drop(db);
        }
        assert!(storage.failures_injected() <= 1);
        explored += 1;
        // What reached the disk must recover, with every acknowledged batch.
        verify(storage.power_loss(2), &models, &run, &journal, &format!("I/O error at op {fail_at}"));
    }
    println!("crash points explored: {explored}, recovered: {explored} (one injected I/O error each; {poisoned_after} later writes refused)");
    assert!(explored > 100);
    assert!(poisoned_after > 0, "no write was ever refused after a failure");
    assert!(failed_reads_checked > 100, "reads were checked in the failed state only {failed_reads_checked} times");
}
