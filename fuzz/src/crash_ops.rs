//! Target `crash_ops`: a sequence of writes, checkpoints, reopens, injected I/O errors and power
//! losses on the fault-injecting storage, checked against a `BTreeMap` model.
//!
//! Options: `Options::default().log_capacity(256 * 1024)` with 4096-byte pages, Immediate
//! durability, **background checkpoints on** (the real thread, which checkpoints whenever less
//! than half of the 256 KiB log is free, so a few dozen writes start one), and one
//! [`ReplayJournal`] for the whole run (every page an mtr is replayed onto during recovery must
//! equal the page the forward path produced). With the background thread on, an input is not
//! exactly deterministic: where the thread's checkpoints fall depends on timing. The overlapped
//! checkpoint (op 3) is the deterministic part: it holds a checkpoint at a chosen I/O operation
//! while a batch is written.
//!
//! Up to [`MAX_OPS`] operations, until the input ends; each is an opcode `u8 % 8` and its fields:
//!
//! | op | name        | fields                        | meaning                                        |
//! |----|-------------|-------------------------------|------------------------------------------------|
//! | 0  | insert      | key, value                    | `Db::insert`                                   |
//! | 1  | remove      | key                           | `Db::remove`                                   |
//! | 2  | batch       | `u8 % 8 + 1` entries: `u8` (bit 0 remove), key, value unless remove | `Db::write` |
//! | 3  | checkpoint  | `u8` pause; if `pause < 0xC0`, a batch's fields as in op 2 | `pause >= 0xC0`: `Db::checkpoint`. Otherwise an **overlapped checkpoint**: `Db::checkpoint` on a thread, held before I/O operation `now + pause` (`FaultStorage::pause_at`; whichever thread issues it, the background checkpoint's included); while it is held the batch is written on another thread, given up to 50 ms (a writer that needs log room waits for the checkpoint), then the checkpoint is let go. If the checkpoint ends before that operation, the batch is written after it |
//! | 4  | reopen      |                               | `close`, then open the same storage (no power loss) |
//! | 5  | arm crash   | `u16` after, `u64` seed, `u8` recovery_crash | the process dies at I/O operation `now + after % 512`; when an operation fails because of it, the power goes with `seed`; a non-zero `recovery_crash` also kills the first recovery at its operation `recovery_crash - 1` (then the power goes again) |
//! | 6  | power loss  | `u64` seed, `u8` recovery_crash | the process dies now, then the power goes     |
//! | 7  | I/O error   | `u16` after                   | I/O operation `now + after % 512` fails once (`fail_at`) |
//!
//! A key is a `u8` selector: `< 0x80` a short key `k` + two digits (`sel % 100`); `0x80..0xC0`
//! a 200-byte key with a long shared prefix (fills branches); `>= 0xC0` a blob from the input
//! (1..=64 bytes; empty reads as `k`). A value is a `u8` class: `% 8` of 0..=4 gives `u8`
//! bytes; 5, 6 give `u16 % 1500` bytes; 7 gives `1000 + u16 % 6000` bytes (overflow pages).
//!
//! Double crashes: the `recovery_crash` field of ops 5 and 6 kills the recovery's own redo pass
//! or write-back, then the power goes again. A failed sync followed by a reopen in the same boot,
//! more writes and a power loss: op 7 aimed at a sync, then op 4, writes and op 6.
//!
//! Each input ends with a power loss (seed 3). After each recovery the database must open,
//! pass `check()`, and equal the model after some prefix of the batches attempted since the
//! last recovery that includes every acknowledged one (a write that returned `Ok`). While the
//! database is up, every key a successful write touched reads back as the model says. A clean
//! `close` acknowledges everything, so the reopen after it must hold every batch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mtrdb::fault::FaultStorage;
use mtrdb::{Db, Options, ReplayJournal, WriteBatch};

use crate::input::Reader;

/// Operations per input at most.
pub const MAX_OPS: usize = 64;

/// Op 3 with a pause field at or above this is a plain foreground checkpoint.
pub const PLAIN_CHECKPOINT: u8 = 0xC0;

/// How long a batch written during a held checkpoint is given before the checkpoint is let go.
const OVERLAP_WAIT: Duration = Duration::from_millis(50);

type Ops = Vec<(Vec<u8>, Option<Vec<u8>>)>;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// The options of every open.
#[must_use]
pub fn options(journal: &ReplayJournal) -> Options {
    Options::default().background_checkpoints(true).log_capacity(256 * 1024).replay_check(journal.clone())
}

struct Sim {
    storage: FaultStorage,
    journal: ReplayJournal,
    db: Option<Db>,
    /// `models[i]`: the contents after the first `i` batches attempted since the last recovery.
    models: Vec<Model>,
    acknowledged: usize,
    /// Power-loss seed and recovery crash of the armed crash.
    armed: (u64, u8),
    generation: u32,
    recoveries: u64,
}

fn key(input: &mut Reader<'_>) -> Vec<u8> {
    let selector = input.u8();
    match selector {
        0..=0x7f => format!("k{:02}", selector % 100).into_bytes(),
        0x80..=0xbf => {
            let mut key = vec![b'p'; 196];
            key.extend_from_slice(format!("{:04}", selector & 0x3f).as_bytes());
            key
        }
        _ => {
            let len = (input.u8() % 64 + 1) as usize;
            let bytes = input.bytes(len);
            if bytes.is_empty() {
                b"k".to_vec()
            } else {
                bytes.to_vec()
            }
        }
    }
}

fn value(input: &mut Reader<'_>, generation: u32) -> Vec<u8> {
    let class = input.u8() % 8;
    let len = match class {
        0..=4 => input.u8() as usize,
        5 | 6 => input.u16() as usize % 1500,
        _ => 1000 + input.u16() as usize % 6000,
    };
    let seed = generation.wrapping_mul(2_654_435_761);
    (0..len).map(|i| (seed.wrapping_add(i as u32 * 7) >> 3) as u8).collect()
}

/// A batch's fields: `u8 % 8 + 1` entries of `u8` (bit 0: remove), key, value unless removed.
fn batch_ops(input: &mut Reader<'_>, generation: u32) -> Ops {
    let count = input.u8() % 8 + 1;
    (0..count)
        .map(|index| {
            let remove = input.u8() & 1 == 1;
            let key = key(input);
            let value = (!remove).then(|| value(input, generation * 8 + u32::from(index)));
            (key, value)
        })
        .collect()
}

fn is_refusal(error: &mtrdb::Error) -> bool {
    // Errors that are checked before anything is applied.
    matches!(
        error,
        mtrdb::Error::KeySize { .. } | mtrdb::Error::ValueTooLarge { .. } | mtrdb::Error::BatchTooLarge { .. }
    )
}

impl Sim {
    fn open(storage: &FaultStorage, journal: &ReplayJournal) -> mtrdb::Result<Db> {
        Db::open_storage(Arc::new(storage.clone()), "fuzz".into(), options(journal))
    }

    fn db(&self) -> &Db {
        self.db.as_ref().expect("the database is open between operations")
    }

    /// The batch of `ops` and the model after it.
    fn prepare(&self, ops: &Ops) -> (WriteBatch, Model) {
        let mut batch = WriteBatch::new();
        let mut model = self.models.last().cloned().unwrap_or_default();
        for (key, value) in ops {
            match value {
                Some(value) => {
                    batch.insert(key, value);
                    model.insert(key.clone(), value.clone());
                }
                None => {
                    batch.remove(key);
                    model.remove(key);
                }
            }
        }
        (batch, model)
    }

    /// Applies a batch to the database and the model.
    fn write(&mut self, ops: &Ops) {
        let (batch, model) = self.prepare(ops);
        let result = self.db().write(batch);
        self.settle(ops, model, result);
    }

    /// Records the outcome of writing `ops`, whose model is `model`.
    fn settle(&mut self, ops: &Ops, model: Model, result: mtrdb::Result<()>) {
        match result {
            Ok(()) => {
                self.models.push(model);
                self.acknowledged = self.models.len() - 1;
                let expected = self.models.last().expect("a model");
                for (key, _) in ops {
                    let found = self.db().get(key).unwrap_or_else(|e| panic!("get after a write failed: {e}"));
                    assert_eq!(found.as_ref(), expected.get(key), "a written key reads back wrong");
                }
            }
            Err(error) if is_refusal(&error) && !self.storage.crashed() => {}
            Err(_) => {
                // Maybe applied, maybe durable: recovery may keep it or not.
                self.models.push(model);
                self.after_failure();
            }
        }
    }

    /// A checkpoint held before I/O operation `now + pause_after` while `ops` is written.
    fn overlapped_checkpoint(&mut self, pause_after: u64, ops: &Ops) {
        let (batch, model) = self.prepare(ops);
        let storage = self.storage.clone();
        storage.pause_at(storage.op_count() + pause_after);
        let db = self.db();
        let (checkpointed, written) = std::thread::scope(|scope| {
            let checkpointer = scope.spawn(|| db.checkpoint());
            let held = storage.wait_for_pause(|| checkpointer.is_finished());
            let writer = held.then(|| scope.spawn(|| db.write(batch)));
            if let Some(writer) = &writer {
                let start = Instant::now();
                while !writer.is_finished() && start.elapsed() < OVERLAP_WAIT {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            storage.release_pause();
            let written = writer.map(|writer| writer.join().expect("the writer thread panicked"));
            (checkpointer.join().expect("the checkpoint thread panicked"), written)
        });
        match written {
            Some(result) => self.settle(ops, model, result),
            // The checkpoint ended before the pause: the batch follows it.
            None if checkpointed.is_ok() => self.write(ops),
            None => {}
        }
        if checkpointed.is_err() {
            self.after_failure();
        }
    }

    /// After a failed operation: if the process died, the power goes now.
    fn after_failure(&mut self) {
        if self.storage.crashed() {
            let (seed, recovery_crash) = self.armed;
            self.recover(Some(seed), recovery_crash);
        }
    }

    /// Drops the database (crashed first when `power_loss` is given, so its shutdown cannot
    /// write), optionally loses power, recovers and verifies against the models.
    fn recover(&mut self, power_loss: Option<u64>, recovery_crash: u8) {
        if power_loss.is_some() {
            self.storage.crash_at(self.storage.op_count());
        }
        drop(self.db.take());
        if let Some(seed) = power_loss {
            self.storage = self.storage.power_loss(seed);
            if recovery_crash > 0 {
                let attempt = self.storage.clone();
                attempt.crash_at(attempt.op_count() + u64::from(recovery_crash - 1));
                drop(Sim::open(&attempt, &self.journal));
                attempt.crash_at(attempt.op_count());
                self.storage = attempt.power_loss(seed.rotate_left(17));
            }
        }
        let mut attempts = 0;
        let db = loop {
            attempts += 1;
            let injected_before = self.storage.failures_injected();
            match Sim::open(&self.storage, &self.journal) {
                Ok(db) => break db,
                // An armed crash killed this open (a reopen without power loss): the power goes.
                Err(_) if self.storage.crashed() && attempts < 4 => {
                    self.storage = self.storage.power_loss(self.armed.0);
                }
                // An injected I/O error hit the open itself; it fails only once.
                Err(_) if self.storage.failures_injected() > injected_before && attempts < 4 => {}
                Err(error) => panic!("recovery failed (attempt {attempts}): {error}"),
            }
        };
        self.recoveries += 1;
        if let Err(error) = db.check() {
            panic!("check failed after recovery: {error}");
        }
        let found: Model = db
            .iter()
            .map(|entry| entry.unwrap_or_else(|e| panic!("iteration failed: {e}")))
            .map(|(key, value)| (key.to_vec(), value.to_vec()))
            .collect();
        let attempted = self.models.len() - 1;
        let Some(prefix) = (self.acknowledged..=attempted).find(|&prefix| self.models[prefix] == found) else {
            panic!(
                "recovered {} entries, equal to no prefix in {}..={} (acknowledged..attempted)",
                found.len(),
                self.acknowledged,
                attempted
            );
        };
        for (key, value) in self.models[prefix].iter().take(8) {
            assert_eq!(db.get(key).expect("get after recovery").as_ref(), Some(value));
        }
        self.models = vec![found];
        self.acknowledged = 0;
        self.db = Some(db);
    }
}

/// Runs one input (see the module doc).
pub fn run(data: &[u8]) {
    let mut input = Reader::new(data);
    let storage = FaultStorage::new();
    let journal = ReplayJournal::new();
    let db = Sim::open(&storage, &journal).expect("create a database");
    let mut sim = Sim {
        storage,
        journal,
        db: Some(db),
        models: vec![Model::new()],
        acknowledged: 0,
        armed: (1, 0),
        generation: 0,
        recoveries: 0,
    };
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        sim.generation += 1;
        let generation = sim.generation;
        match input.u8() % 8 {
            0 => {
                let key = key(&mut input);
                let value = value(&mut input, generation);
                sim.write(&vec![(key, Some(value))]);
            }
            1 => {
                let key = key(&mut input);
                sim.write(&vec![(key, None)]);
            }
            2 => {
                let ops = batch_ops(&mut input, generation);
                sim.write(&ops);
            }
            3 => {
                let pause = input.u8();
                if pause < PLAIN_CHECKPOINT {
                    let ops = batch_ops(&mut input, generation);
                    sim.overlapped_checkpoint(u64::from(pause), &ops);
                } else if sim.db().checkpoint().is_err() {
                    sim.after_failure();
                }
            }
            4 => {
                let db = sim.db.take().expect("open");
                match db.close() {
                    Ok(()) => {
                        sim.acknowledged = sim.models.len() - 1;
                        sim.recover(None, 0);
                    }
                    Err(_) if sim.storage.crashed() => sim.after_failure(),
                    Err(_) => sim.recover(None, 0),
                }
            }
            5 => {
                let after = u64::from(input.u16() % 512);
                let seed = input.u64();
                let recovery_crash = input.u8();
                sim.armed = (seed, recovery_crash);
                sim.storage.crash_at(sim.storage.op_count() + after);
            }
            6 => {
                let seed = input.u64();
                let recovery_crash = input.u8();
                sim.recover(Some(seed), recovery_crash);
            }
            _ => {
                let after = u64::from(input.u16() % 512);
                sim.storage.fail_at(sim.storage.op_count() + after);
            }
        }
    }
    sim.recover(Some(3), 0);
    assert!(sim.recoveries > 0);
}
