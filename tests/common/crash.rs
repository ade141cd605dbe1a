//! The crash loops of the crash-point tests: a run crashed at every I/O boundary, or a recovery
//! crashed at every boundary of its own work, each followed by a power loss that keeps some
//! version of the unsynced writes (a seed of [`FaultStorage::power_loss`]); every recovered
//! database is verified against the models ([`verify`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use mtrdb::fault::FaultStorage;
use mtrdb::{Db, Options, ReplayJournal};

use super::{verify, Model, Run};

/// Runs `workload` once without faults, with a journal of its own; returns the run and the
/// number of I/O operations it performed (its crash points are `0..=` that number).
pub fn clean_run(workload: &impl Fn(&FaultStorage, &ReplayJournal) -> Run) -> (Run, u64) {
    let reference = FaultStorage::new();
    let run = workload(&reference, &ReplayJournal::new());
    (run, reference.op_count())
}

/// Runs `workload` on a new storage, with a new journal, crashing at I/O operation `crash_at`;
/// returns the crashed storage, the journal and the run.
pub fn crashed_run(
    workload: &impl Fn(&FaultStorage, &ReplayJournal) -> Run,
    crash_at: u64,
) -> (FaultStorage, ReplayJournal, Run) {
    let storage = FaultStorage::new();
    let journal = ReplayJournal::new();
    storage.crash_at(crash_at);
    let run = workload(&storage, &journal);
    (storage, journal, run)
}

/// The crash points a test explored, against the models of its workload's batches.
pub struct Crashes<'a> {
    models: &'a [Model],
    /// Crash points explored (each with one survival of the unsynced writes).
    pub explored: u64,
    /// Crash points whose database recovered and verified.
    pub recovered: u64,
    /// The prefixes of the batches that the databases recovered by [`Crashes::at_every_boundary`]
    /// equaled.
    pub prefixes: BTreeSet<usize>,
    /// Pages that replay compared with the forward path's, in [`Crashes::at_every_boundary`].
    pub pages_compared: u64,
}

impl<'a> Crashes<'a> {
    pub fn new(models: &'a [Model]) -> Crashes<'a> {
        Crashes { models, explored: 0, recovered: 0, prefixes: BTreeSet::new(), pages_compared: 0 }
    }

    /// Crashes `workload` at every I/O boundary `0..=total_ops` and, for each, cuts the power
    /// with every one of `seeds`; each recovered database must verify. `what(crash_at, seed)`
    /// names the crash point in a failure.
    pub fn at_every_boundary(
        &mut self,
        workload: &impl Fn(&FaultStorage, &ReplayJournal) -> Run,
        total_ops: u64,
        seeds: &[u64],
        what: impl Fn(u64, u64) -> String,
    ) {
        for crash_at in 0..=total_ops {
            for &seed in seeds {
                let (storage, journal, outcome) = crashed_run(workload, crash_at);
                self.explored += 1;
                let prefix = verify(storage.power_loss(seed), self.models, &outcome, &journal, &what(crash_at, seed));
                self.pages_compared += journal.pages_compared();
                self.prefixes.insert(prefix);
                self.recovered += 1;
            }
        }
    }

    /// Crashes the recovery of `crashed` (the storage after `outcome`'s crash and a first power
    /// loss) at every I/O boundary of the recovery's own work, opening with `options`, each time
    /// on a copy keeping every unsynced write; then cuts the power again with every one of
    /// `seeds`; each database recovered from that must verify. `what(recovery_crash, seed)`
    /// names the crash point in a failure.
    pub fn during_recovery(
        &mut self,
        crashed: &FaultStorage,
        outcome: &Run,
        journal: &ReplayJournal,
        options: &Options,
        seeds: &[u64],
        what: impl Fn(u64, u64) -> String,
    ) {
        let recovery_ops = {
            let probe = crashed.power_loss(1);
            let before = probe.op_count();
            drop(Db::open_storage(Arc::new(probe.clone()), "sim".into(), options.clone()));
            probe.op_count() - before
        };
        for recovery_crash in 0..recovery_ops {
            for &seed in seeds {
                let attempt = crashed.power_loss(1);
                attempt.crash_at(recovery_crash);
                drop(Db::open_storage(Arc::new(attempt.clone()), "sim".into(), options.clone()));
                self.explored += 1;
                verify(attempt.power_loss(seed), self.models, outcome, journal, &what(recovery_crash, seed));
                self.recovered += 1;
            }
        }
    }

    /// Prints `crash points explored: N, recovered: M (detail)`.
    pub fn report(&self, detail: &str) {
        println!("crash points explored: {}, recovered: {} ({detail})", self.explored, self.recovered);
    }
}
