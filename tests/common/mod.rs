//! The workload shared by the crash-point and injected-I/O-error tests: a deterministic run of
//! batches and checkpoints that performs leaf, branch and root splits, merges and a root
//! collapse, and writes and frees overflow chains; its models; and the verification of a
//! recovered database against them; the crash loops over it in [`crash`]. Its other submodules
//! serve other tests too: [`rng`], the tests' pseudo-random numbers; [`child`], the harness of
//! the tests that run a child process; [`marked`], the batch sequences such children write; and
//! [`files`], a database's files as bytes.
#![allow(dead_code)]

pub mod child;
pub mod crash;
pub mod files;
pub mod marked;
pub mod rng;
pub mod tmpfs;

use std::collections::BTreeMap;
use std::sync::Arc;

use mtrdb::fault::FaultStorage;
use mtrdb::{Db, Durability, Options, ReplayJournal, WriteBatch};

pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

pub enum Step {
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Checkpoint,
}

pub fn key(index: u32) -> Vec<u8> {
    // Long shared prefixes make long separators, so branches fill after a few dozen leaves and
    // the small workload still splits branches and grows the tree to three levels.
    let mut key = vec![b'p'; 180];
    key.extend_from_slice(format!("{index:05}").as_bytes());
    key
}

pub fn value(index: u32, generation: u32, len: usize) -> Vec<u8> {
    let seed = index.wrapping_mul(2_654_435_761).wrapping_add(generation);
    (0..len).map(|i| (seed.wrapping_add(i as u32 * 7) >> 3) as u8).collect()
}

/// The workload: inserts in a scattered order (leaf, branch and root splits), an overflow value
/// written, replaced and removed, checkpoints in between, then removes (merges, root collapse).
pub fn workload() -> Vec<Step> {
    let mut steps = Vec::new();
    let count = 480u32;
    let order: Vec<u32> = (0..count).map(|i| (i * 149) % count).collect();
    for (chunk_index, chunk) in order.chunks(20).enumerate() {
        let batch = chunk.iter().map(|&i| (key(i), Some(value(i, 0, 40)))).collect();
        steps.push(Step::Batch(batch));
        if chunk_index % 8 == 5 {
            steps.push(Step::Checkpoint);
        }
    }
    steps.push(Step::Batch(vec![(b"big".to_vec(), Some(value(7, 1, 20_000)))]));
    steps.push(Step::Checkpoint);
    steps.push(Step::Batch(vec![(b"big".to_vec(), Some(value(7, 2, 9_000))), (key(3), None)]));
    for chunk in order.chunks(40) {
        let batch = chunk.iter().filter(|&&i| i % 9 != 0).map(|&i| (key(i), None)).collect();
        steps.push(Step::Batch(batch));
    }
    steps.push(Step::Batch(vec![(b"big".to_vec(), None)]));
    steps.push(Step::Checkpoint);
    steps
}

/// The workload with a checkpoint after every second batch, so that checkpoints meet every
/// kind of batch (splits, overflow writes and frees, merges that free pages, a root collapse).
pub fn workload_dense_checkpoints() -> Vec<Step> {
    let mut steps = Vec::new();
    let mut batches = 0;
    for step in workload() {
        if let Step::Batch(ops) = step {
            steps.push(Step::Batch(ops));
            batches += 1;
            if batches % 2 == 0 {
                steps.push(Step::Checkpoint);
            }
        }
    }
    steps.push(Step::Checkpoint);
    steps
}

pub fn models(steps: &[Step]) -> Vec<Model> {
    let mut models = vec![Model::new()];
    for step in steps {
        if let Step::Batch(ops) = step {
            let mut model = models.last().cloned().unwrap_or_default();
            for (key, value) in ops {
                match value {
                    Some(value) => model.insert(key.clone(), value.clone()),
                    None => model.remove(key),
                };
            }
            models.push(model);
        }
    }
    models
}

pub fn options(journal: &ReplayJournal) -> Options {
    // Deterministic I/O: no background thread; a small log so checkpoints also happen on demand.
    Options::default().background_checkpoints(false).log_capacity(256 * 1024).replay_check(journal.clone())
}

pub fn eventual(journal: &ReplayJournal) -> Options {
    options(journal).durability(Durability::Eventual)
}

pub struct Run {
    pub acknowledged: usize,
    pub attempted: usize,
    pub stats: Option<mtrdb::Stats>,
}

/// Runs the workload until it ends or an operation fails, then drops the database (whose
/// shutdown may fail too once the simulated process has died).
pub fn run(storage: &FaultStorage, steps: &[Step], journal: &ReplayJournal) -> Run {
    run_with(storage, steps, options(journal), false)
}

/// [`run`] with any options. Under `Eventual` durability, `acknowledged` counts only the batches
/// made durable by a completed checkpoint or close.
pub fn run_with(storage: &FaultStorage, steps: &[Step], options: Options, eventual: bool) -> Run {
    let mut run = Run { acknowledged: 0, attempted: 0, stats: None };
    let mut returned = 0;
    let Ok(db) = Db::open_storage(Arc::new(storage.clone()), "sim".into(), options) else { return run };
    for step in steps {
        match step {
            Step::Batch(ops) => {
                let mut batch = WriteBatch::new();
                for (key, value) in ops {
                    match value {
                        Some(value) => batch.insert(key, value),
                        None => batch.remove(key),
                    };
                }
                run.attempted += 1;
                if db.write(batch).is_err() {
                    return run;
                }
                returned += 1;
                if !eventual {
                    run.acknowledged = returned;
                }
            }
            Step::Checkpoint => {
                if db.checkpoint().is_err() {
                    return run;
                }
                run.acknowledged = returned;
            }
        }
    }
    run.stats = Some(db.stats());
    if db.close().is_ok() {
        run.acknowledged = returned;
    }
    run
}

/// The batch of a workload step.
pub fn batch_of(ops: &[(Vec<u8>, Option<Vec<u8>>)]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for (key, value) in ops {
        match value {
            Some(value) => batch.insert(key, value),
            None => batch.remove(key),
        };
    }
    batch
}

/// Options for [`run_overlapping`]: a log large enough that no writer ever has to checkpoint
/// itself (it would wait for the held checkpoint), so the schedule is exactly the one described.
pub fn overlapping_options(journal: &ReplayJournal) -> Options {
    options(journal).log_capacity(1 << 20)
}

/// Runs the workload (Immediate durability) with every checkpoint taken by a second thread, as
/// the background thread does, and overlapping the next batch at an exact point: the checkpoint
/// thread is held just before its I/O operation number `pause_after` (counted from the start of
/// that checkpoint), the writer applies and commits the next batch meanwhile, then the checkpoint
/// goes on. A checkpoint with fewer operations than that runs alone. The same arguments always
/// give the same sequence of I/O operations, so `crash_at` explores one exact interleaving.
pub fn run_overlapping(storage: &FaultStorage, steps: &[Step], options: Options, pause_after: u64) -> Run {
    let mut run = Run { acknowledged: 0, attempted: 0, stats: None };
    let Ok(db) = Db::open_storage(Arc::new(storage.clone()), "sim".into(), options) else { return run };
    let db = Arc::new(db);
    let mut index = 0;
    while index < steps.len() {
        match &steps[index] {
            Step::Batch(ops) => {
                run.attempted += 1;
                if db.write(batch_of(ops)).is_err() {
                    return run;
                }
                run.acknowledged += 1;
            }
            Step::Checkpoint => {
                storage.pause_at(storage.op_count() + pause_after);
                let checkpointer = {
                    let db = Arc::clone(&db);
                    std::thread::spawn(move || db.checkpoint())
                };
                let held = storage.wait_for_pause(|| checkpointer.is_finished());
                let mut failed = false;
                if held {
                    if let Some(Step::Batch(ops)) = steps.get(index + 1) {
                        index += 1;
                        run.attempted += 1;
                        match db.write(batch_of(ops)) {
                            Ok(()) => run.acknowledged += 1,
                            Err(_) => failed = true,
                        }
                    }
                }
                storage.release_pause();
                let checkpointed = checkpointer.join().expect("the checkpoint thread panicked");
                if failed || checkpointed.is_err() {
                    return run;
                }
            }
        }
        index += 1;
    }
    run.stats = Some(db.stats());
    if let Ok(db) = Arc::try_unwrap(db) {
        let _ = db.close();
    }
    run
}

/// Every entry of every keyspace, the default one named `""`.
pub type AllContents = BTreeMap<(String, Vec<u8>), Vec<u8>>;

/// Every entry of the default keyspace and of every named one.
pub fn all_contents(db: &Db) -> AllContents {
    let mut all = AllContents::new();
    for entry in db.iter() {
        let (key, value) = entry.expect("iterating the default keyspace");
        all.insert((String::new(), key.to_vec()), value.to_vec());
    }
    for name in db.keyspaces().expect("listing the keyspaces") {
        for entry in db.keyspace(&name).expect("opening a keyspace").iter() {
            let (key, value) = entry.expect("iterating a keyspace");
            all.insert((name.clone(), key.to_vec()), value.to_vec());
        }
    }
    all
}

pub fn contents(db: &Db) -> Model {
    db.iter()
        .map(|entry| entry.map(|(key, value)| (key.to_vec(), value.to_vec())).expect("iteration after recovery"))
        .collect()
}

/// Opens the recovered database and checks it against the models; returns the prefix it equals.
pub fn verify(storage: FaultStorage, models: &[Model], run: &Run, journal: &ReplayJournal, what: &str) -> usize {
    let db = Db::open_storage(Arc::new(storage), "sim".into(), options(journal))
        .unwrap_or_else(|error| panic!("{what}: recovery failed: {error}"));
    db.check().unwrap_or_else(|error| panic!("{what}: check failed after recovery: {error}"));
    let found = contents(&db);
    let prefix = (run.acknowledged..=run.attempted).find(|&prefix| models[prefix] == found).unwrap_or_else(|| {
        panic!(
            "{what}: recovered {} entries, equal to no prefix in {}..={} (acknowledged..attempted)",
            found.len(),
            run.acknowledged,
            run.attempted
        )
    });
    drop(db);
    prefix
}
