//! Keyspaces across crashes.
//!
//! 1. A workload that creates keyspaces, fills them with batches spanning them and the default
//!    keyspace (multi-level trees, overflow chains), drops one (a durable drop, then the freeing
//!    of its pages in bounded batches that are not synced), re-creates it, fills it again and
//!    drops the other, cut by a power loss at its I/O boundaries, with torn writes. Every
//!    recovered database must pass `check()` and equal the model after a prefix of the
//!    workload's steps that holds every acknowledged one: the same keyspace names, each
//!    keyspace (the default one too) with the same contents and a `len()` equal to them; no
//!    dropped keyspace's pages left unfreed once it is open; and it must take one more write.
//! 2. Seeded random keyspace operations (batches spanning keyspaces, single writes through
//!    handles, creating, dropping and re-creating keyspaces, stale handles, transactions)
//!    against a model, checked after every round (`check()`, contents, `len()`, `keyspaces()`),
//!    with clean reopens and power losses between rounds (every returned write is durable, so
//!    the model holds exactly), and power losses in the middle of one more batch, create, drop
//!    or transaction (the database then holds the model before or after it, all of it).
//!    A transaction (`Db::transaction`) spans 1 to 3 keyspaces (the default one among them,
//!    perhaps) with gets, inserts, removes, read-modify-writes and ranges (bounded or not, read
//!    whole or in part), every read checked against the committed state with the transaction's
//!    writes so far laid over it (its removes hiding committed keys; `remove`'s answer as the
//!    transaction saw it). Most return `Ok` and the model takes their writes at once; some return
//!    `Err` after writing, and some use a stale handle (`KeyspaceDropped`, propagated out of the
//!    closure): then the keyspaces they spanned hold nothing of them.
//!
//! Guards: the atomicity of a batch across keyspaces and of its catalog count updates; the
//! durability of creating and dropping; the catalog's entry counts (`len()` and `check()`'s
//! count against the trees); the resumption at open of a freeing cut short (no page leaked or
//! reachable twice, checked by `check()`); ids never reused (stale handles of a re-created
//! name stay dead); a transaction's reads of its own writes, its atomic commit across keyspaces
//! (also cut by a power loss), and nothing of it applied when its closure fails.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use common::crash::crashed_run;
use common::rng::Rng;
use common::{value, Run};
use mtrdb::fault::FaultStorage;
use mtrdb::{Db, Error, Keyspace, Options, ReplayJournal, WriteBatch};

type Contents = BTreeMap<Vec<u8>, Vec<u8>>;
/// Every keyspace's contents by name; the default keyspace's under `""`, a name no keyspace can
/// have.
type State = BTreeMap<String, Contents>;

const DEFAULT: &str = "";

fn empty_state() -> State {
    State::from([(DEFAULT.to_string(), Contents::new())])
}

/// The crash tests' options (no background thread, so the I/O sequence is exact; a 256 KiB log,
/// so writers checkpoint on demand; replay consistency checking), with 4096-byte pages.
fn db_options(journal: &ReplayJournal) -> Options {
    common::options(journal).page_size(4096)
}

fn open(storage: &FaultStorage, journal: &ReplayJournal, what: &str) -> Db {
    Db::open_storage(Arc::new(storage.clone()), "sim".into(), db_options(journal))
        .unwrap_or_else(|error| panic!("{what}: open failed: {error}"))
}

/// A keyspace's entries (iterated) after checking that its `len()` counts them exactly.
fn read_keyspace(keyspace: &Keyspace<'_>, what: &str) -> Contents {
    let name = keyspace.name().to_string();
    let contents: Contents = keyspace
        .iter()
        .map(|item| item.map(|(key, value)| (key.to_vec(), value.to_vec())))
        .collect::<mtrdb::Result<_>>()
        .unwrap_or_else(|error| panic!("{what}: iterating keyspace {name:?} failed: {error}"));
    let len = keyspace.len().unwrap_or_else(|error| panic!("{what}: len() of keyspace {name:?} failed: {error}"));
    assert_eq!(len, contents.len() as u64, "{what}: keyspace {name:?}: len() says {len}, it holds {}", contents.len());
    let last = keyspace.last().unwrap_or_else(|error| panic!("{what}: last() of keyspace {name:?}: {error}"));
    assert_eq!(
        last.map(|(key, _)| key.to_vec()).as_ref(),
        contents.keys().next_back(),
        "{what}: keyspace {name:?}: last() disagrees with iteration"
    );
    contents
}

/// The database's state, after `check()` passes and agrees with it: the keyspaces it reports
/// are `keyspaces()`, with the entries iteration finds, and no dropped keyspace's pages remain.
fn observe(db: &Db, what: &str) -> State {
    let report = db.check().unwrap_or_else(|error| panic!("{what}: check failed: {error}"));
    let names = db.keyspaces().unwrap_or_else(|error| panic!("{what}: keyspaces() failed: {error}"));
    let mut state = State::new();
    state.insert(DEFAULT.to_string(), read_keyspace(&db.default_keyspace(), what));
    for name in &names {
        let keyspace = db.keyspace(name).unwrap_or_else(|error| panic!("{what}: opening keyspace {name:?}: {error}"));
        state.insert(name.clone(), read_keyspace(&keyspace, what));
    }
    let reported: Vec<(String, u64)> = report.keyspaces.iter().map(|ks| (ks.name.clone(), ks.entries)).collect();
    let counted: Vec<(String, u64)> = names.iter().map(|name| (name.clone(), state[name].len() as u64)).collect();
    assert_eq!(reported, counted, "{what}: check() reports other keyspaces than keyspaces() and iteration find");
    assert_eq!(report.entries, state[DEFAULT].len() as u64, "{what}: check() counts the default keyspace otherwise");
    assert_eq!(db.len().unwrap(), state[DEFAULT].len() as u64, "{what}: Db::len()");
    assert_eq!(report.dropped_pages, 0, "{what}: pages of a dropped keyspace were not all freed: {report:?}");
    state
}

/// `name: entries` for each keyspace, for failure messages.
fn describe(state: &State) -> String {
    let parts: Vec<String> = state.iter().map(|(name, contents)| format!("{name:?}: {}", contents.len())).collect();
    format!("{{{}}}", parts.join(", "))
}

// ---------------------------------------------------------------------------------------------
// 1. A workload cut at its I/O boundaries.
// ---------------------------------------------------------------------------------------------

/// An operation of a batch: keyspace (`DEFAULT` for the default one), key, value (`None`:
/// remove).
type Op = (&'static str, Vec<u8>, Option<Vec<u8>>);

enum Step {
    Create(&'static str),
    Batch(Vec<Op>),
    Drop(&'static str),
    Checkpoint,
}

/// Long shared prefixes make long separators, so branches fill after a few dozen leaves and the
/// keyspace's tree reaches three levels with a few hundred entries.
fn ks_key(space: &str, index: u32) -> Vec<u8> {
    let mut key = vec![b'q'; 150];
    key.extend_from_slice(format!("{space}-{index:05}").as_bytes());
    key
}

/// Values 100 KB long, in "b" just before its drop: enough overflow pages that freeing it takes
/// more than one batch of `FREE_PAGES_PER_BATCH` pages.
const HUGE_VALUES: u32 = 42;
const HUGE_VALUE_BYTES: usize = 100_000;
const SPREAD_VALUES: u32 = 24;

/// Creates "a" and "b"; fills them with batches spanning them and the default keyspace (small
/// values and values of 5 to 12 KB in overflow chains; some removes; two checkpoints); adds huge
/// values to "b"; drops "b"; creates "b" again and fills it; checkpoints; drops "a"; writes
/// once more.
fn workload() -> Vec<Step> {
    let mut rng = Rng(0x6b65_7973_7061_6365);
    let mut steps = vec![Step::Create("a"), Step::Create("b")];
    let push = |ops: &mut Vec<Op>, space: &'static str, index: u32, generation: u32, len: usize| {
        ops.push((space, ks_key(space, index), Some(value(index, generation, len))));
    };
    for batch in 0..30u32 {
        let mut ops = Vec::new();
        for _ in 0..20 {
            let index = rng.below(500) as u32;
            if batch >= 20 && rng.below(4) == 0 {
                ops.push(("b", ks_key("b", index), None));
            } else {
                push(&mut ops, "b", index, batch, 60 + rng.below(200) as usize);
            }
        }
        for _ in 0..6 {
            let index = rng.below(200) as u32;
            if batch >= 20 && rng.below(3) == 0 {
                ops.push(("a", ks_key("a", index), None));
            } else {
                push(&mut ops, "a", index, batch, 40 + rng.below(100) as usize);
            }
        }
        for _ in 0..3 {
            let index = rng.below(100) as u32;
            push(&mut ops, DEFAULT, index, batch, 20 + rng.below(60) as usize);
        }
        if batch % 3 == 1 {
            push(&mut ops, "b", 1000 + batch, batch, 5_000 + rng.below(7_000) as usize);
        }
        if batch % 7 == 2 {
            push(&mut ops, "a", 1000 + batch, batch, 5_000 + rng.below(7_000) as usize);
            push(&mut ops, DEFAULT, 1000 + batch, batch, 5_000 + rng.below(7_000) as usize);
        }
        steps.push(Step::Batch(ops));
        if batch % 12 == 11 {
            steps.push(Step::Checkpoint);
        }
    }
    for index in 0..HUGE_VALUES {
        let mut ops = Vec::new();
        push(&mut ops, "b", 2000 + index, 0, HUGE_VALUE_BYTES);
        push(&mut ops, DEFAULT, 2000 + index, 0, 30);
        steps.push(Step::Batch(ops));
    }
    // Overflow values in the default keyspace, a batch each: the log ends up holding changes to
    // many pages at spread positions, so that the room-making before each freeing batch writes
    // back only a part of them and the next one has to make room again: a write-back (and the
    // log flush it needs) between the freeing batches, which are not synced themselves.
    for index in 0..SPREAD_VALUES {
        let mut ops = Vec::new();
        push(&mut ops, DEFAULT, 4000 + index, 0, 8_000);
        steps.push(Step::Batch(ops));
    }
    steps.push(Step::Drop("b"));
    steps.push(Step::Create("b"));
    for batch in 0..4u32 {
        let mut ops = Vec::new();
        for _ in 0..15 {
            let index = rng.below(300) as u32;
            push(&mut ops, "b", index, 100 + batch, 60 + rng.below(200) as usize);
        }
        push(&mut ops, "b", 3000 + batch, 100 + batch, 6_000);
        push(&mut ops, "a", rng.below(200) as u32, 100 + batch, 50);
        push(&mut ops, DEFAULT, rng.below(100) as u32, 100 + batch, 50);
        steps.push(Step::Batch(ops));
    }
    // With the log empty, freeing "a" needs no room-making, so nothing is written between the
    // drop's sync and the next batch: a drop that is not durable when it returns would be lost.
    steps.push(Step::Checkpoint);
    steps.push(Step::Drop("a"));
    let mut ops = Vec::new();
    push(&mut ops, "b", 7, 200, 80);
    push(&mut ops, DEFAULT, 7, 200, 80);
    steps.push(Step::Batch(ops));
    steps
}

fn apply(state: &mut State, step: &Step) {
    match step {
        Step::Create(name) => {
            state.entry(name.to_string()).or_default();
        }
        Step::Batch(ops) => {
            for (space, key, value) in ops {
                let contents = state.get_mut(*space).expect("the workload writes only to live keyspaces");
                match value {
                    Some(value) => contents.insert(key.clone(), value.clone()),
                    None => contents.remove(key),
                };
            }
        }
        Step::Drop(name) => {
            state.remove(*name).expect("the workload drops only live keyspaces");
        }
        Step::Checkpoint => {}
    }
}

/// The state after each prefix of the steps that change it (all but checkpoints): `models[n]`
/// after `n` of them.
fn models(steps: &[Step]) -> Vec<State> {
    let mut models = vec![empty_state()];
    for step in steps {
        if !matches!(step, Step::Checkpoint) {
            let mut state = models.last().cloned().unwrap();
            apply(&mut state, step);
            models.push(state);
        }
    }
    models
}

/// Runs the workload until it ends or a call fails (the simulated process died), then drops
/// the database. `before_step(index, db)` is called before each step. Every call that returned
/// Ok is durable (Immediate durability): `acknowledged` counts them, `attempted` adds the one
/// that failed.
fn run(
    storage: &FaultStorage,
    steps: &[Step],
    journal: &ReplayJournal,
    mut before_step: impl FnMut(usize, &Db),
) -> Run {
    let mut run = Run { acknowledged: 0, attempted: 0, stats: None };
    let Ok(db) = Db::open_storage(Arc::new(storage.clone()), "sim".into(), db_options(journal)) else { return run };
    let mut handles: HashMap<&str, Keyspace<'_>> = HashMap::new();
    for (index, step) in steps.iter().enumerate() {
        before_step(index, &db);
        match step {
            Step::Create(name) => {
                run.attempted += 1;
                let Ok(keyspace) = db.keyspace(name) else { return run };
                handles.insert(*name, keyspace);
            }
            Step::Batch(ops) => {
                let mut batch = WriteBatch::new();
                for (space, key, value) in ops {
                    match (*space, value) {
                        (DEFAULT, Some(value)) => batch.insert(key, value),
                        (DEFAULT, None) => batch.remove(key),
                        (space, Some(value)) => batch.insert_in(&handles[space], key, value),
                        (space, None) => batch.remove_in(&handles[space], key),
                    };
                }
                run.attempted += 1;
                if db.write(batch).is_err() {
                    return run;
                }
            }
            Step::Drop(name) => {
                run.attempted += 1;
                // Returns once the pages are freed too: an error may come after the drop is
                // durable, while freeing.
                match db.drop_keyspace(name) {
                    Ok(existed) => assert!(existed, "the workload drops only live keyspaces"),
                    Err(_) => return run,
                }
                handles.remove(name);
            }
            Step::Checkpoint => {
                if db.checkpoint().is_err() {
                    return run;
                }
                continue;
            }
        }
        run.acknowledged += 1;
    }
    run.stats = Some(db.stats());
    drop(handles);
    let _ = db.close();
    run
}

/// Opens the storage left by a crashed run, checks it against the models (a prefix from the
/// acknowledged steps to the attempted ones), then writes once more (a batch spanning every
/// keyspace, and a new keyspace) and checks again. Returns the prefix it equaled, and the
/// batches the open committed: those that resumed the freeing of a dropped keyspace.
fn verify(storage: FaultStorage, models: &[State], run: &Run, journal: &ReplayJournal, what: &str) -> (usize, u64) {
    let db = open(&storage, journal, what);
    let resumed_freeing_batches = db.stats().batches;
    let found = observe(&db, what);
    let prefix = (run.acknowledged..=run.attempted).find(|&prefix| models[prefix] == found).unwrap_or_else(|| {
        let near: Vec<String> = (run.acknowledged.saturating_sub(1)..=(run.attempted + 1).min(models.len() - 1))
            .map(|prefix| format!("after {prefix} steps: {}", describe(&models[prefix])))
            .collect();
        panic!(
            "{what}: recovered {}, equal to no prefix in {}..={} (acknowledged..attempted); models near it: {}",
            describe(&found),
            run.acknowledged,
            run.attempted,
            near.join("; ")
        )
    });
    let mut expected = found;
    db.keyspace("after-recovery").unwrap_or_else(|error| panic!("{what}: creating a keyspace: {error}"));
    expected.insert("after-recovery".to_string(), Contents::new());
    let mut handles = vec![db.default_keyspace()];
    handles.extend(expected.keys().filter(|name| !name.is_empty()).map(|name| db.keyspace(name).unwrap()));
    let mut batch = WriteBatch::new();
    for handle in &handles {
        let (key, value) = (b"written after recovery".to_vec(), handle.name().as_bytes().to_vec());
        batch.insert_in(handle, &key, &value);
        expected.get_mut(handle.name()).unwrap().insert(key, value);
    }
    db.write(batch).unwrap_or_else(|error| panic!("{what}: a write after recovery failed: {error}"));
    // Checked without reading every value again: the structure, the names, the counts, the keys
    // just written.
    let what = format!("{what}, after one more write");
    let report = db.check().unwrap_or_else(|error| panic!("{what}: check failed: {error}"));
    let names: Vec<String> = expected.keys().filter(|name| !name.is_empty()).cloned().collect();
    assert_eq!(db.keyspaces().unwrap(), names, "{what}");
    let reported: Vec<(String, u64)> = report.keyspaces.iter().map(|ks| (ks.name.clone(), ks.entries)).collect();
    let counted: Vec<(String, u64)> = names.iter().map(|name| (name.clone(), expected[name].len() as u64)).collect();
    assert_eq!(reported, counted, "{what}: check()'s keyspaces and entries");
    assert_eq!(report.entries, expected[DEFAULT].len() as u64, "{what}: check()'s default keyspace");
    for handle in &handles {
        let contents = &expected[handle.name()];
        assert_eq!(handle.len().unwrap(), contents.len() as u64, "{what}: len() of {:?}", handle.name());
        let written = handle.get(b"written after recovery").unwrap();
        assert_eq!(written.as_deref(), Some(handle.name().as_bytes()), "{what}: the write in {:?}", handle.name());
    }
    drop(handles);
    db.close().unwrap_or_else(|error| panic!("{what}: close after recovery failed: {error}"));
    (prefix, resumed_freeing_batches)
}

#[test]
fn keyspace_creation_and_drop_cut_at_every_boundary() {
    let steps = workload();
    let models = models(&steps);
    let drop_b = steps.iter().position(|step| matches!(step, Step::Drop("b"))).unwrap();
    let drop_a = steps.iter().position(|step| matches!(step, Step::Drop("a"))).unwrap();

    // A probe run: the I/O operation count before each step, the shape of "b" before its drop,
    // and the batches its freeing took.
    let probe = FaultStorage::new();
    let mut op_at_step = Vec::new();
    let mut b_report = None;
    let mut batches_before_drop = 0;
    let mut freeing_batches = 0;
    let full = run(&probe, &steps, &ReplayJournal::new(), |index, db| {
        op_at_step.push(probe.op_count());
        if index == drop_b {
            let report = db.check().unwrap();
            b_report = report.keyspaces.iter().find(|ks| ks.name == "b").cloned();
            batches_before_drop = db.stats().batches;
        }
        if index == drop_b + 1 {
            // The drop's own batch, then the freeing's.
            freeing_batches = db.stats().batches - batches_before_drop - 1;
            assert_eq!(db.check().unwrap().dropped_pages, 0, "drop_keyspace returned before freeing every page");
        }
    });
    op_at_step.push(probe.op_count());
    let total_ops = probe.op_count();
    assert_eq!(full.acknowledged, models.len() - 1, "the workload runs cleanly without faults");
    let b = b_report.expect("keyspace b before its drop");
    assert!(b.height >= 3 && b.pages >= 50, "b should be a multi-level tree of 50 pages or more: {b:?}");
    assert!(b.pages > mtrdb::FREE_PAGES_PER_BATCH + 50, "b should take more than one freeing batch: {b:?}");
    assert!(freeing_batches >= 2, "the freeing of b took {freeing_batches} batch(es)");
    let stats = full.stats.expect("stats of the clean run");
    assert!(stats.overflow_pages_written > 1000 && stats.overflow_pages_freed > 1000, "{stats:?}");
    assert!(stats.checkpoints >= 10, "{stats:?}");
    {
        let db = open(&probe.power_loss(0), &ReplayJournal::new(), "the clean run");
        assert_eq!(observe(&db, "the clean run"), *models.last().unwrap());
    }

    // The workload has 749 I/O boundaries (when last counted; printed below), few enough to cut
    // at every one: below the ~1500 that would call for sampling. From 20 before the drop of "b"
    // to the end (about 90 boundaries: the drop, the freeing of b in two batches with a
    // write-back between them, its re-creation and filling, the drop and freeing of "a"), three
    // power losses each; before that (creating the keyspaces, batches spanning them, checkpoints,
    // the huge values), two.
    let dense_from = op_at_step[drop_b].saturating_sub(20);
    let workload = |storage: &FaultStorage, journal: &ReplayJournal| run(storage, &steps, journal, |_, _| {});
    // Each crash point on a machine of its own: split between threads, which merge what their
    // crashes recovered: the prefixes, each with the numbers of freeing batches the opens resumed.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4) as u64;
    let cut = |thread: u64| {
        let mut recovered: BTreeMap<usize, BTreeSet<u64>> = BTreeMap::new();
        let mut explored = 0u64;
        for crash_at in (thread..=total_ops).step_by(threads as usize) {
            // Seed 0: no unsynced write survives; 1: all do; others: each write whole, lost or torn.
            let seeds = if crash_at >= dense_from {
                vec![0, 1, 2 + crash_at % 97]
            } else {
                vec![crash_at % 2, 2 + crash_at % 97]
            };
            for seed in seeds {
                let (storage, journal, outcome) = crashed_run(&workload, crash_at);
                let what = format!("crash at op {crash_at} of {total_ops}, power loss seed {seed}");
                let (prefix, resumed) = verify(storage.power_loss(seed), &models, &outcome, &journal, &what);
                recovered.entry(prefix).or_default().insert(resumed);
                explored += 1;
            }
        }
        (recovered, explored)
    };
    let mut recovered: BTreeMap<usize, BTreeSet<u64>> = BTreeMap::new();
    let mut explored = 0;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads).map(|thread| scope.spawn(move || cut(thread))).collect();
        for worker in workers {
            let (found, count) = worker.join().expect("a crash thread panicked");
            for (prefix, resumed) in found {
                recovered.entry(prefix).or_default().extend(resumed);
            }
            explored += count;
        }
    });
    println!(
        "{total_ops} I/O boundaries, all cut ({explored} power losses; three each from op {dense_from}; the drop of b at \
         op {}, the drop of a at op {}); {} distinct prefixes recovered; b had {} pages, freed in {freeing_batches} batches; \
         freeing batches resumed at open, by prefix recovered: {:?}",
        op_at_step[drop_b],
        op_at_step[drop_a],
        recovered.len(),
        b.pages,
        recovered.iter().filter(|(_, resumed)| resumed.iter().any(|&n| n > 0)).collect::<Vec<_>>()
    );
    // The crashes recovered every state from just before the drop of b to the end.
    let prefix_of = |step: usize| steps[..step].iter().filter(|step| !matches!(step, Step::Checkpoint)).count();
    assert!((prefix_of(drop_b)..models.len()).all(|prefix| recovered.contains_key(&prefix)), "{recovered:?}");
    // Opens resumed the freeing of b from its start and from after its first batch, and that of a.
    let resumed = |step: usize| recovered.get(&(prefix_of(step) + 1)).cloned().unwrap_or_default();
    assert!(resumed(drop_b).contains(&2) && resumed(drop_b).contains(&1), "{recovered:?}");
    assert!(resumed(drop_a).contains(&1), "{recovered:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. Random keyspace operations against a model.
// ---------------------------------------------------------------------------------------------

const NAMES: [&str; 5] = ["alpha", "beta", "gamma", "delta", "epsilon"];

/// What the random test did, to check that it did it.
#[derive(Debug, Default)]
struct Tally {
    cross_batches: u64,
    single_writes: u64,
    creates: u64,
    recreates: u64,
    drops: u64,
    absent_drops: u64,
    stale_refusals: u64,
    reopens: u64,
    power_losses: u64,
    /// Power losses in the middle of an operation, and of those, the operations that failed
    /// (their outcome in doubt) and then turned out applied, or lost.
    cut_operations: u64,
    cut_failed: u64,
    cut_failed_applied: u64,
    cut_failed_lost: u64,
    /// The most pages a dropped keyspace had.
    largest_drop_pages: u64,
    /// Transactions committed, of those the ones that wrote to two keyspaces or more and the ones
    /// that wrote to the default keyspace; transactions that wrote and then returned `Err`;
    /// transactions that used a stale handle.
    tx_committed: u64,
    tx_cross: u64,
    tx_default: u64,
    tx_aborted: u64,
    tx_stale: u64,
    /// Reads inside transactions answered by their own writes: gets and removes of a key it wrote
    /// (of those, gets of a committed key it removed), read-modify-writes of a key it wrote,
    /// ranges over a key it wrote.
    tx_own_gets: u64,
    tx_hidden: u64,
    tx_chained_rmw: u64,
    tx_own_ranges: u64,
    /// Transactions cut by a power loss: all, those that wrote to two keyspaces or more, those
    /// that failed (of those, the ones that wrote to two keyspaces or more), and of those that
    /// failed, the ones then found applied, or lost.
    cut_transactions: u64,
    cut_tx_spanning: u64,
    cut_tx_failed: u64,
    cut_tx_failed_spanning: u64,
    cut_tx_applied: u64,
    cut_tx_lost: u64,
}

fn random_key(rng: &mut Rng) -> Vec<u8> {
    format!("key-{:05}", rng.below(1_500)).into_bytes()
}

fn random_value(rng: &mut Rng) -> Vec<u8> {
    let len = if rng.below(25) == 0 { 4_500 + rng.below(6_000) as usize } else { rng.below(300) as usize };
    rng.bytes(len)
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len() as u64) as usize]
}

/// Handles to the model's keyspaces, the default one under `""`.
fn handles<'db>(db: &'db Db, model: &State) -> HashMap<String, Keyspace<'db>> {
    model
        .keys()
        .map(|name| (name.clone(), if name.is_empty() { db.default_keyspace() } else { db.keyspace(name).unwrap() }))
        .collect()
}

/// A random batch over 1 to 3 of the live keyspaces (inserts, replaces, removes), and the state
/// after it; the number of keyspaces it spans.
fn random_batch(rng: &mut Rng, live: &HashMap<String, Keyspace<'_>>, model: &State) -> (WriteBatch, State, usize) {
    let names: Vec<&String> = model.keys().collect();
    let spanned = rng.range(1, 3.min(names.len()));
    let mut spaces: Vec<&String> = Vec::new();
    while spaces.len() < spanned {
        let name = *pick(rng, &names);
        if !spaces.contains(&name) {
            spaces.push(name);
        }
    }
    let mut batch = WriteBatch::new();
    let mut expected = model.clone();
    for _ in 0..rng.range(1, 40) {
        let space = *pick(rng, &spaces);
        let key = random_key(rng);
        let contents = expected.get_mut(space).unwrap();
        if rng.below(3) == 0 {
            batch.remove_in(&live[space], &key);
            contents.remove(&key);
        } else {
            let value = random_value(rng);
            batch.insert_in(&live[space], &key, &value);
            contents.insert(key, value);
        }
    }
    (batch, expected, spanned)
}

/// Checks that every call through a handle of a dropped keyspace fails with `KeyspaceDropped`
/// and that a batch naming it is refused (that it applied nothing, the caller's comparison with
/// the model shows).
fn assert_stale(db: &Db, stale: &Keyspace<'_>, what: &str) {
    let name = stale.name();
    let dropped = |result: Result<(), Error>| matches!(result, Err(Error::KeyspaceDropped { .. }));
    assert!(dropped(stale.get(b"key-00001").map(drop)), "{what}: get through a stale handle of {name:?}");
    assert!(dropped(stale.len().map(drop)), "{what}: len through a stale handle of {name:?}");
    assert!(dropped(stale.is_empty().map(drop)), "{what}: is_empty through a stale handle of {name:?}");
    assert!(dropped(stale.insert(b"key-00001", b"v")), "{what}: insert through a stale handle of {name:?}");
    assert!(dropped(stale.remove(b"key-00001").map(drop)), "{what}: remove through a stale handle of {name:?}");
    assert!(
        matches!(stale.iter().next(), Some(Err(Error::KeyspaceDropped { .. }))),
        "{what}: iterating a stale handle of {name:?}"
    );
    let mut batch = WriteBatch::new();
    batch.insert(b"refused", b"v");
    batch.insert_in(stale, b"refused", b"v");
    assert!(dropped(db.write(batch)), "{what}: a batch naming a stale handle of {name:?}");
}

/// How a random transaction is to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxEnd {
    /// Its closure returns `Ok`: it commits.
    Commit,
    /// Its closure returns `Err(TxError::Abort)` after its writes: nothing of it is applied.
    Abort,
    /// At a random point it uses a stale handle, and propagates the `KeyspaceDropped` it gets.
    Stale,
}

/// The error type of the random transactions' closures.
#[derive(Debug)]
enum TxError {
    /// The closure gave up.
    Abort,
    /// A call of the transaction failed.
    Db(Error),
}

impl From<Error> for TxError {
    fn from(error: Error) -> TxError {
        TxError::Db(error)
    }
}

/// A random transaction, run.
struct TxRun {
    outcome: Result<usize, TxError>,
    /// The state after it, if it committed: the model with its writes.
    after: State,
    /// The keyspaces it spanned, and the keys it wrote in each (those it wrote to only).
    spanned: Vec<String>,
    written: BTreeMap<String, BTreeSet<Vec<u8>>>,
    /// Whether its closure returned (`Ok`, or `Err(Abort)`): else it failed at a call inside it.
    finished: bool,
}

/// A key for an operation of a transaction: one it wrote, one the keyspace holds, or any.
fn tx_key(rng: &mut Rng, committed: &Contents, own: &BTreeSet<Vec<u8>>) -> Vec<u8> {
    match rng.below(3) {
        0 if !own.is_empty() => own.iter().nth(rng.below(own.len() as u64) as usize).unwrap().clone(),
        1 => committed.range(random_key(rng)..).next().map_or_else(|| random_key(rng), |(key, _)| key.clone()),
        _ => random_key(rng),
    }
}

/// Bounds for a range read: each unbounded, included or excluded, on keys of [`tx_key`]; in
/// order, but one time in eight perhaps reversed (an empty range).
fn random_bounds(rng: &mut Rng, committed: &Contents, own: &BTreeSet<Vec<u8>>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut keys = [tx_key(rng, committed, own), tx_key(rng, committed, own)];
    if rng.below(8) != 0 {
        keys.sort();
    }
    let [low, high] = keys;
    let bound = |rng: &mut Rng, key| match rng.below(5) {
        0 => Bound::Unbounded,
        1 | 2 => Bound::Included(key),
        _ => Bound::Excluded(key),
    };
    (bound(rng, low), bound(rng, high))
}

fn within(key: &[u8], low: &Bound<Vec<u8>>, high: &Bound<Vec<u8>>) -> bool {
    let above = match low {
        Bound::Included(low) => key >= &low[..],
        Bound::Excluded(low) => key > &low[..],
        Bound::Unbounded => true,
    };
    let below = match high {
        Bound::Included(high) => key <= &high[..],
        Bound::Excluded(high) => key < &high[..],
        Bound::Unbounded => true,
    };
    above && below
}

/// The value a read-modify-write derives from what it read: its length, a hash of all of it and
/// its last bytes reversed, so that a read of any other value shows.
fn derived(old: Option<&[u8]>) -> Vec<u8> {
    let mut new = b"rmw".to_vec();
    if let Some(old) = old {
        let hash = old.iter().fold(0x811c_9dc5u32, |hash, &byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
        new.extend_from_slice(&(old.len() as u32).to_le_bytes());
        new.extend_from_slice(&hash.to_le_bytes());
        new.extend(old.iter().rev().take(48));
    }
    new
}

/// A value for failure messages: its length and first bytes.
fn show(value: Option<&[u8]>) -> String {
    match value {
        None => "absent".to_string(),
        Some(value) => format!("{} bytes {:02x?}", value.len(), &value[..value.len().min(8)]),
    }
}

fn show_key(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// Asserts that two lists of entries are equal, naming the first difference.
fn assert_entries(found: &[(Vec<u8>, Vec<u8>)], expected: &[(Vec<u8>, Vec<u8>)], what: &str) {
    if found == expected {
        return;
    }
    let at = found
        .iter()
        .zip(expected)
        .position(|(found, expected)| found != expected)
        .unwrap_or(found.len().min(expected.len()));
    let entry = |entries: &[(Vec<u8>, Vec<u8>)]| {
        entries
            .get(at)
            .map_or("the end".to_string(), |(key, value)| format!("{} = {}", show_key(key), show(Some(value))))
    };
    panic!(
        "{what}: {} entries found, {} expected; the first difference, at {at}: found {}, expected {}",
        found.len(),
        expected.len(),
        entry(found),
        entry(expected)
    );
}

/// Asserts that a keyspace holds what the model does, naming the first difference.
fn assert_contents(found: &Contents, expected: &Contents, what: &str) {
    if found != expected {
        let found: Vec<(Vec<u8>, Vec<u8>)> = found.iter().map(|(key, value)| (key.clone(), value.clone())).collect();
        let expected: Vec<(Vec<u8>, Vec<u8>)> =
            expected.iter().map(|(key, value)| (key.clone(), value.clone())).collect();
        assert_entries(&found, &expected, what);
    }
}

/// Runs a random transaction over 1 to 3 of the model's keyspaces (`live` holds their handles):
/// gets, inserts, removes, read-modify-writes and ranges (bounded or not, read whole or in part),
/// every read checked, as it returns, against the committed state (`model`) with the
/// transaction's writes so far laid over it. It ends as `end` says (for `TxEnd::Stale`, through
/// `stale`, a handle of a dropped keyspace). A call of the transaction that fails ends the
/// closure with its error (the caller judges it).
#[allow(clippy::too_many_arguments)]
fn random_transaction(
    db: &Db,
    rng: &mut Rng,
    live: &HashMap<String, Keyspace<'_>>,
    model: &State,
    end: TxEnd,
    stale: Option<&Keyspace<'_>>,
    tally: &mut Tally,
    what: &str,
) -> TxRun {
    let names: Vec<&String> = model.keys().collect();
    let spanned_count = rng.range(1, 3.min(names.len()));
    let mut spanned: Vec<String> = Vec::new();
    while spanned.len() < spanned_count {
        let name = *pick(rng, &names);
        if !spanned.contains(name) {
            spanned.push(name.clone());
        }
    }
    // The committed state with the transaction's writes so far, of the keyspaces it spans.
    let mut view: State = spanned.iter().map(|name| (name.clone(), model[name].clone())).collect();
    let mut written: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
    let ops = rng.range(1, 24);
    let stale_at = if end == TxEnd::Stale { rng.below(ops as u64) as usize } else { usize::MAX };
    let mut finished = false;
    let outcome = db.transaction(|tx| -> Result<usize, TxError> {
        let mut writes = 0;
        for op in 0..ops {
            let what = format!("{what}, transaction op {op}");
            if op == stale_at {
                let stale = stale.expect("a stale handle for TxEnd::Stale");
                let key = random_key(rng);
                let call = match rng.below(4) {
                    0 => tx.get(stale, &key).map(|_| "get")?,
                    1 => tx.insert(stale, &key, b"stale").map(|()| "insert")?,
                    2 => tx.remove(stale, &key).map(|_| "remove")?,
                    _ => match tx.range::<Vec<u8>, _>(stale, ..).next() {
                        Some(Err(error)) => return Err(error.into()),
                        _ => "range",
                    },
                };
                panic!("{what}: {call} through a stale handle of {:?} was accepted", stale.name());
            }
            let space = pick(rng, &spanned).clone();
            let keyspace = &live[&space];
            let committed = &model[&space];
            let contents = view.get_mut(&space).unwrap();
            let own = written.entry(space.clone()).or_default();
            let key = tx_key(rng, committed, own);
            let what = format!("{what}, {space:?}, key {}", show_key(&key));
            match rng.below(100) {
                0..=24 => {
                    let found = tx.get(keyspace, &key)?;
                    let expected = contents.get(&key);
                    assert!(
                        found.as_ref() == expected,
                        "{what}: get found {}, the transaction's view holds {}",
                        show(found.as_deref()),
                        show(expected.map(Vec::as_slice))
                    );
                    if own.contains(&key) {
                        tally.tx_own_gets += 1;
                        tally.tx_hidden += u64::from(found.is_none() && committed.contains_key(&key));
                    }
                }
                25..=49 => {
                    let value = random_value(rng);
                    tx.insert(keyspace, &key, &value)?;
                    contents.insert(key.clone(), value);
                    own.insert(key);
                    writes += 1;
                }
                50..=64 => {
                    let present = tx.remove(keyspace, &key)?;
                    let expected = contents.remove(&key).is_some();
                    assert_eq!(present, expected, "{what}: remove's answer (own write: {})", own.contains(&key));
                    tally.tx_own_gets += u64::from(own.contains(&key));
                    own.insert(key);
                    writes += 1;
                }
                65..=79 => {
                    // Read-modify-write: the value written is derived from the one read.
                    let old = tx.get(keyspace, &key)?;
                    assert!(
                        old.as_ref() == contents.get(&key),
                        "{what}: read-modify-write read {}, the transaction's view holds {}",
                        show(old.as_deref()),
                        show(contents.get(&key).map(Vec::as_slice))
                    );
                    let new = derived(old.as_deref());
                    tx.insert(keyspace, &key, &new)?;
                    tally.tx_chained_rmw += u64::from(own.contains(&key));
                    let again = tx.get(keyspace, &key)?;
                    assert!(
                        again.as_ref() == Some(&new),
                        "{what}: read back {} after writing it",
                        show(again.as_deref())
                    );
                    contents.insert(key.clone(), new);
                    own.insert(key);
                    writes += 1;
                }
                _ => {
                    let (low, high) = random_bounds(rng, committed, own);
                    let limit = if rng.below(2) == 0 { usize::MAX } else { rng.range(1, 20) };
                    let found: Vec<(Vec<u8>, Vec<u8>)> = tx
                        .range(keyspace, (low.clone(), high.clone()))
                        .take(limit)
                        .map(|item| item.map(|(key, value)| (key.to_vec(), value.to_vec())))
                        .collect::<mtrdb::Result<_>>()?;
                    let expected: Vec<(Vec<u8>, Vec<u8>)> = contents
                        .iter()
                        .filter(|(key, _)| within(key, &low, &high))
                        .take(limit)
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect();
                    let shown = |bound: &Bound<Vec<u8>>| bound.as_ref().map(|key| show_key(key));
                    let read =
                        if limit == usize::MAX { "read whole".to_string() } else { format!("its first {limit}") };
                    assert_entries(
                        &found,
                        &expected,
                        &format!("{what}: range ({:?}, {:?}), {read}", shown(&low), shown(&high)),
                    );
                    tally.tx_own_ranges += u64::from(own.iter().any(|key| within(key, &low, &high)));
                }
            }
        }
        finished = true;
        match end {
            TxEnd::Abort => Err(TxError::Abort),
            _ => Ok(writes),
        }
    });
    written.retain(|_, keys| !keys.is_empty());
    let mut after = model.clone();
    after.extend(view);
    TxRun { outcome, after, spanned, written, finished }
}

/// Runs a random transaction in a round and checks its outcome: a commit, which the model then
/// takes (what it wrote reads back); or an `Err` of its closure or of a stale handle, which must
/// leave the keyspaces it spanned as they were.
fn transaction_op(
    db: &Db,
    rng: &mut Rng,
    live: &HashMap<String, Keyspace<'_>>,
    stale: &[Keyspace<'_>],
    model: &mut State,
    tally: &mut Tally,
    what: &str,
) {
    let end = if !stale.is_empty() && rng.below(4) == 0 {
        TxEnd::Stale
    } else if rng.below(5) == 0 {
        TxEnd::Abort
    } else {
        TxEnd::Commit
    };
    let stale = if end == TxEnd::Stale { Some(pick(rng, stale)) } else { None };
    let run = random_transaction(db, rng, live, model, end, stale, tally, what);
    match (end, run.outcome) {
        (TxEnd::Commit, Ok(writes)) => {
            assert_eq!(writes == 0, run.written.is_empty(), "{what}: the transaction's writes");
            *model = run.after;
            for (name, keys) in &run.written {
                for key in keys {
                    let found = live[name].get(key).unwrap_or_else(|error| panic!("{what}: get: {error}"));
                    assert!(
                        found.as_ref() == model[name].get(key),
                        "{what}: after the commit, {name:?} holds {} at {}, the transaction wrote {}",
                        show(found.as_deref()),
                        show_key(key),
                        show(model[name].get(key).map(Vec::as_slice))
                    );
                }
                assert_eq!(
                    live[name].len().unwrap(),
                    model[name].len() as u64,
                    "{what}: len of {name:?} after the commit"
                );
            }
            tally.tx_committed += 1;
            tally.tx_cross += u64::from(run.written.len() > 1);
            tally.tx_default += u64::from(run.written.contains_key(DEFAULT));
        }
        (end @ (TxEnd::Abort | TxEnd::Stale), Err(error)) => {
            match (end, &error) {
                (TxEnd::Abort, TxError::Abort) => {
                    assert!(run.finished, "{what}: an aborted transaction's closure did not finish");
                    tally.tx_aborted += u64::from(!run.written.is_empty());
                }
                (TxEnd::Stale, TxError::Db(Error::KeyspaceDropped { name })) => {
                    let stale = stale.unwrap().name();
                    assert_eq!(name, stale, "{what}: KeyspaceDropped names another keyspace");
                    tally.tx_stale += 1;
                }
                _ => panic!("{what}: a transaction meant to end {end:?} failed with {error:?}"),
            }
            for name in &run.spanned {
                let found = read_keyspace(&live[name], what);
                assert_contents(&found, &model[name], &format!("{what}: {name:?} after a transaction that failed"));
            }
        }
        (end, outcome) => panic!("{what}: a transaction meant to end {end:?} gave {outcome:?}"),
    }
}

/// One more operation, cut by a crash (the process dies at one of its first I/O operations, or
/// after it): a batch spanning keyspaces, a create, a drop or a transaction. Returns the states
/// the database may hold afterwards: the one after the operation if it returned Ok, else that or
/// the one before; and whether it was a transaction.
fn cut_operation(db: &Db, rng: &mut Rng, model: &State, tally: &mut Tally, what: &str) -> (Vec<State>, bool) {
    let live = handles(db, model);
    // A transaction two times in five.
    let kind = rng.below(5);
    let transaction = kind >= 3;
    let (outcome, after) = match kind {
        0 => {
            let (batch, after, _) = random_batch(rng, &live, model);
            (db.write(batch), after)
        }
        1 => {
            let name = *pick(rng, &NAMES);
            let mut after = model.clone();
            after.entry(name.to_string()).or_default();
            (db.keyspace(name).map(drop), after)
        }
        2 => {
            let name = *pick(rng, &NAMES);
            let mut after = model.clone();
            let existed = after.remove(name).is_some();
            let outcome = db.drop_keyspace(name);
            if let Ok(answer) = outcome {
                assert_eq!(answer, existed, "{what}: drop_keyspace({name:?})'s answer");
            }
            (outcome.map(drop), after)
        }
        _ => {
            let run = random_transaction(db, rng, &live, model, TxEnd::Commit, None, tally, what);
            tally.cut_transactions += 1;
            tally.cut_tx_spanning += u64::from(run.written.len() > 1);
            match run.outcome {
                Ok(_) => (Ok(()), run.after),
                Err(TxError::Db(error)) => {
                    tally.cut_tx_failed += 1;
                    tally.cut_tx_failed_spanning += u64::from(run.written.len() > 1);
                    // A call inside the closure failed (the commit was not reached): nothing of
                    // it may be applied. Else the commit failed: all of it or nothing.
                    (Err(error), if run.finished { run.after } else { model.clone() })
                }
                Err(TxError::Abort) => unreachable!("a transaction meant to commit aborted"),
            }
        }
    };
    tally.cut_operations += 1;
    let admissible = match outcome {
        Ok(()) => vec![after],
        Err(_) => {
            tally.cut_failed += 1;
            vec![model.clone(), after]
        }
    };
    (admissible, transaction)
}

/// One seeded run: `rounds` rounds of random operations, each followed by a full comparison with
/// the model, then nothing, a clean reopen, or a power loss (after the round, or in the middle of
/// one more operation), and the comparison again.
fn random_run(seed: u64, rounds: u32) -> Tally {
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    let journal = ReplayJournal::new();
    let mut storage = FaultStorage::new();
    let mut model = empty_state();
    let mut ever_dropped: Vec<&str> = Vec::new();
    let mut db = open(&storage, &journal, &format!("seed {seed:#x}: first open"));
    for round in 0..rounds {
        let what = format!("seed {seed:#x}, round {round}");
        {
            let mut live = handles(&db, &model);
            let mut stale: Vec<Keyspace<'_>> = Vec::new();
            for op in 0..rng.range(10, 40) {
                let what = format!("{what}, op {op}");
                match rng.below(100) {
                    // A batch spanning 1 to 3 keyspaces (the default one among them, perhaps).
                    0..=39 => {
                        let (batch, expected, spanned) = random_batch(&mut rng, &live, &model);
                        db.write(batch).unwrap_or_else(|error| panic!("{what}: batch failed: {error}"));
                        model = expected;
                        tally.cross_batches += u64::from(spanned > 1);
                    }
                    // A single insert or remove through a handle (the default keyspace's too).
                    40..=61 => {
                        let names: Vec<String> = model.keys().cloned().collect();
                        let name = pick(&mut rng, &names);
                        let handle = &live[name];
                        let key = random_key(&mut rng);
                        let contents = model.get_mut(name).unwrap();
                        if rng.below(3) == 0 {
                            let removed = handle.remove(&key).unwrap_or_else(|error| panic!("{what}: remove: {error}"));
                            assert_eq!(removed, contents.remove(&key).is_some(), "{what}: remove's answer");
                        } else {
                            let value = random_value(&mut rng);
                            handle.insert(&key, &value).unwrap_or_else(|error| panic!("{what}: insert: {error}"));
                            contents.insert(key, value);
                        }
                        tally.single_writes += 1;
                    }
                    // Create a keyspace (or open an existing one, which changes nothing).
                    62..=70 => {
                        let name = *pick(&mut rng, &NAMES);
                        let handle = db.keyspace(name).unwrap_or_else(|error| panic!("{what}: keyspace: {error}"));
                        if !model.contains_key(name) {
                            model.insert(name.to_string(), Contents::new());
                            tally.creates += 1;
                            tally.recreates += u64::from(ever_dropped.contains(&name));
                            assert!(handle.is_empty().unwrap(), "{what}: the new keyspace {name:?} is not empty");
                        }
                        live.insert(name.to_string(), handle);
                    }
                    // Drop a keyspace (or one that does not exist).
                    71..=74 => {
                        let name = *pick(&mut rng, &NAMES);
                        let pages = db.check().unwrap().keyspaces.iter().find(|ks| ks.name == name).map(|ks| ks.pages);
                        let existed = db.drop_keyspace(name).unwrap_or_else(|error| panic!("{what}: drop: {error}"));
                        assert_eq!(existed, model.remove(name).is_some(), "{what}: drop_keyspace({name:?})'s answer");
                        if existed {
                            stale.push(live.remove(name).unwrap());
                            ever_dropped.push(name);
                            tally.drops += 1;
                            tally.largest_drop_pages = tally.largest_drop_pages.max(pages.unwrap_or(0));
                            let report = db.check().unwrap_or_else(|error| panic!("{what}: check: {error}"));
                            assert_eq!(report.dropped_pages, 0, "{what}: drop_keyspace returned before freeing");
                        } else {
                            tally.absent_drops += 1;
                        }
                        let names: Vec<String> = model.keys().filter(|name| !name.is_empty()).cloned().collect();
                        assert_eq!(db.keyspaces().unwrap(), names, "{what}: keyspaces() after a drop");
                    }
                    // A stale handle refuses everything, also once its name lives again.
                    75..=81 => {
                        if !stale.is_empty() {
                            assert_stale(&db, pick(&mut rng, &stale), &what);
                            tally.stale_refusals += 1;
                        }
                    }
                    // A transaction over 1 to 3 keyspaces: committed, or failed by its closure's
                    // `Err` or a stale handle.
                    82..=93 => transaction_op(&db, &mut rng, &live, &stale, &mut model, &mut tally, &what),
                    // Reads.
                    _ => {
                        let names: Vec<String> = model.keys().cloned().collect();
                        let name = pick(&mut rng, &names);
                        let key = random_key(&mut rng);
                        assert_eq!(live[name].get(&key).unwrap(), model[name].get(&key).cloned(), "{what}: get");
                        assert_eq!(live[name].len().unwrap(), model[name].len() as u64, "{what}: len of {name:?}");
                    }
                }
            }
            for handle in &stale {
                assert_stale(&db, handle, &format!("{what}, end of round"));
            }
        }
        let found = observe(&db, &what);
        assert_eq!(found, model, "{what}: found {}, the model holds {}", describe(&found), describe(&model));
        let reopened = match rng.below(6) {
            0 => {
                db.close().unwrap_or_else(|error| panic!("{what}: close failed: {error}"));
                db = open(&storage, &journal, &format!("{what}: clean reopen"));
                tally.reopens += 1;
                "after a clean reopen"
            }
            1 => {
                // The process dies now, and the power goes: unsynced writes (the freeing of a
                // dropped keyspace's pages) persist, vanish or tear. Every returned call was
                // durable, so the model holds exactly.
                storage.crash_at(storage.op_count());
                drop(db);
                storage = storage.power_loss(rng.next());
                db = open(&storage, &journal, &format!("{what}: reopen after a power loss"));
                tally.power_losses += 1;
                "after a power loss"
            }
            2 | 3 => {
                // The process dies during one more operation (or just after it), then the power
                // goes: the operation is all there or not at all.
                storage.crash_at(storage.op_count() + rng.below(4));
                let (admissible, transaction) = cut_operation(&db, &mut rng, &model, &mut tally, &what);
                drop(db);
                storage = storage.power_loss(rng.next());
                let what = format!("{what}: reopen after a power loss during an operation");
                db = open(&storage, &journal, &what);
                let found = observe(&db, &what);
                assert!(
                    admissible.contains(&found),
                    "{what}: found {}; admissible: {}",
                    describe(&found),
                    admissible.iter().map(describe).collect::<Vec<_>>().join(" or ")
                );
                if admissible.len() == 2 && admissible[0] != admissible[1] {
                    if found == admissible[1] {
                        tally.cut_failed_applied += 1;
                        tally.cut_tx_applied += u64::from(transaction);
                    } else {
                        tally.cut_failed_lost += 1;
                        tally.cut_tx_lost += u64::from(transaction);
                    }
                }
                model = found;
                tally.power_losses += 1;
                "after a power loss during an operation"
            }
            _ => continue,
        };
        let found = observe(&db, &format!("{what}, {reopened}"));
        assert_eq!(
            found,
            model,
            "{what}, {reopened}: found {}, the model holds {}",
            describe(&found),
            describe(&model)
        );
    }
    drop(db);
    tally
}

#[test]
fn random_keyspace_ops_against_a_model_with_power_losses() {
    let (mut applied, mut lost) = (0, 0);
    // Transactions cut by a crash: failed, failed spanning keyspaces, then found applied, lost.
    let mut cut_tx = (0, 0, 0, 0);
    for seed in 0x6b73_0001..=0x6b73_0006 {
        let tally = random_run(seed, 100);
        println!("seed {seed:#x}: {tally:?}");
        assert!(tally.cross_batches >= 100 && tally.single_writes >= 100, "seed {seed:#x}: {tally:?}");
        assert!(tally.drops >= 20 && tally.recreates >= 10 && tally.stale_refusals >= 20, "seed {seed:#x}: {tally:?}");
        assert!(tally.reopens >= 5 && tally.power_losses >= 20 && tally.cut_failed >= 5, "seed {seed:#x}: {tally:?}");
        assert!(tally.largest_drop_pages >= 50, "seed {seed:#x}: no keyspace of 50 pages was dropped: {tally:?}");
        assert!(
            tally.tx_committed >= 100 && tally.tx_cross >= 50 && tally.tx_default >= 40,
            "seed {seed:#x}: {tally:?}"
        );
        assert!(tally.tx_aborted >= 20 && tally.tx_stale >= 5, "seed {seed:#x}: {tally:?}");
        assert!(tally.tx_own_gets >= 150 && tally.tx_hidden >= 8, "seed {seed:#x}: {tally:?}");
        assert!(tally.tx_chained_rmw >= 60 && tally.tx_own_ranges >= 150, "seed {seed:#x}: {tally:?}");
        assert!(tally.cut_transactions >= 6 && tally.cut_tx_spanning >= 3, "seed {seed:#x}: {tally:?}");
        applied += tally.cut_failed_applied;
        lost += tally.cut_failed_lost;
        cut_tx.0 += tally.cut_tx_failed;
        cut_tx.1 += tally.cut_tx_failed_spanning;
        cut_tx.2 += tally.cut_tx_applied;
        cut_tx.3 += tally.cut_tx_lost;
    }
    // Operations cut by a crash were found applied after some power losses and lost after others.
    assert!(applied >= 3 && lost >= 3, "cut operations found applied {applied} times, lost {lost} times");
    // So were transactions whose commit a crash cut, many of them spanning keyspaces.
    let (failed, spanning, applied, lost) = cut_tx;
    assert!(
        failed >= 15 && spanning >= 6 && applied >= 5 && lost >= 5,
        "transactions cut by a crash: {failed} failed ({spanning} spanning keyspaces), then found applied {applied} \
         times, lost {lost} times"
    );
}
