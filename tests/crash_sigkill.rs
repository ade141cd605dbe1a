//! Crash test: a child process writing batches is killed with SIGKILL at random moments, again
//! and again, on one database.
//!
//! Guards the durability contract and recovery as a whole, under real process death rather than
//! simulated faults: a batch whose `write()` returned under `Durability::Immediate` is never lost;
//! nothing beyond the one batch in flight ever appears; a batch is applied whole or not at all
//! (every batch also advances a marker key, so the database must equal the model after exactly
//! the marker's number of batches); the structural check passes after every recovery. Kills land
//! while the child opens (and so while it recovers from the previous kill), while it splits pages,
//! while it checkpoints (the log is small, so checkpoints are frequent), and between batches. A
//! last series runs under `Durability::Eventual`, where the latest batches may be lost but the
//! database must still equal an exact prefix of the batch sequence.
//!
//! The child is this test binary itself, running the ignored test `child_writer`; it reports
//! `START <n>` once open and `ACK <n>` after each `write()` returns.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::child::{number_after, say, self_command, ChildProcess};
use common::marked::{read_marker, Batches, Model};
use common::rng::Rng;
use mtrdb::{Db, Durability, Options};

const DIR_VAR: &str = "MTRDB_CRASH_DIR";
const DURABILITY_VAR: &str = "MTRDB_CRASH_DURABILITY";
/// Batches of split-heavy inserts, some removes, now and then a run of neighbours removed.
const SEQUENCE: Batches = Batches { seed: 0x5eed_c4a5_4000_0001, neighbour_runs: true };

fn options(durability: Durability) -> Options {
    Options::default().log_capacity(1 << 20).durability(durability)
}

/// The child: opens the database, resumes after the marker, writes batches until killed.
#[test]
#[ignore = "run by crash_sigkill_campaign in a child process"]
fn child_writer() {
    let Ok(dir) = std::env::var(DIR_VAR) else { return };
    let durability = match std::env::var(DURABILITY_VAR).as_deref() {
        Ok("eventual") => Durability::Eventual,
        _ => Durability::Immediate,
    };
    let db = Db::open_with(&dir, options(durability)).expect("child: open");
    let next = read_marker(&db).expect("reading the marker");
    say(&format!("START {next}"));
    let started = Instant::now();
    // Bounded, in case the parent never kills.
    for n in next..next + 20_000 {
        db.write(SEQUENCE.batch(n)).expect("child: write");
        say(&format!("ACK {n}"));
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
}

enum Line {
    Start(u64),
    Ack(u64),
}

impl Line {
    fn parse(line: &str) -> Option<Line> {
        number_after(line, "ACK ").map(Line::Ack).or_else(|| number_after(line, "START ").map(Line::Start))
    }
}

/// What the lines a child printed prove: `floor <= m <= ceiling` for the batches `m` in the
/// database afterwards.
struct Bounds {
    floor: u64,
    ceiling: u64,
}

struct Campaign {
    dir: tempfile::TempDir,
    rng: Rng,
    model: Model,
    bounds: Bounds,
    kills: u32,
    kills_before_start: u32,
    verified: u32,
    batches_acked: u64,
    batches_replayed: u64,
}

impl Campaign {
    fn new(seed: u64) -> Campaign {
        Campaign {
            dir: tempfile::tempdir().unwrap(),
            rng: Rng(seed),
            model: Model::new(SEQUENCE),
            bounds: Bounds { floor: 0, ceiling: 0 },
            kills: 0,
            kills_before_start: 0,
            verified: 0,
            batches_acked: 0,
            batches_replayed: 0,
        }
    }

    /// Runs one child and kills it; returns after it is dead and its output is read.
    /// `early`: kill within this long after spawning; otherwise (`None`) a random choice
    /// between that and a kill after some batches.
    fn kill_one(&mut self, durability: Durability, early: Option<Duration>) {
        let mut command = self_command("child_writer");
        command
            .env(DIR_VAR, self.dir.path())
            .env(DURABILITY_VAR, if durability == Durability::Eventual { "eventual" } else { "immediate" });
        let spawned = Instant::now();
        let mut child = ChildProcess::spawn(command);

        let mut lines = Vec::new();
        // Early kills land while the child starts, opens and perhaps recovers or creates the
        // database (it prints START after about 4 ms here).
        let early = early.or_else(|| (self.rng.below(4) == 0).then_some(Duration::from_millis(8)));
        if let Some(within) = early {
            let delay = Duration::from_micros(self.rng.below(within.as_micros() as u64 + 1));
            while spawned.elapsed() < delay {
                if let Ok(line) = child.lines.recv_timeout(delay.saturating_sub(spawned.elapsed())) {
                    lines.extend(Line::parse(&line));
                }
            }
        } else {
            // After some batches, at a random point of the next ones.
            let acks_wanted = 1 + self.rng.below(250);
            let mut acks = 0;
            let deadline = Instant::now() + Duration::from_secs(30);
            while acks < acks_wanted {
                match child.recv(Duration::from_millis(100)) {
                    Some(line) => {
                        if let Some(line) = Line::parse(&line) {
                            acks += u64::from(matches!(line, Line::Ack(_)));
                            lines.push(line);
                        }
                    }
                    None => {
                        assert!(Instant::now() < deadline, "the child wrote no batch for 30 s");
                        if let Some(status) = child.try_wait() {
                            child.exited_on_its_own(status);
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(self.rng.below(4000)));
        }
        let status = child.kill();
        lines.extend(child.remaining_lines().iter().filter_map(|line| Line::parse(line)));
        let stderr_text = child.stderr();
        assert!(!stderr_text.contains("panicked"), "the child panicked before it was killed ({status}): {stderr_text}");
        self.kills += 1;
        if !lines.iter().any(|line| matches!(line, Line::Start(_))) {
            self.kills_before_start += 1;
        }
        for line in lines {
            match line {
                Line::Start(n) => {
                    assert!(
                        n >= self.bounds.floor && n <= self.bounds.ceiling,
                        "the child resumed at batch {n}, outside {}..={}",
                        self.bounds.floor,
                        self.bounds.ceiling
                    );
                    // Its open recovered and checkpointed: that state is durable.
                    self.bounds.floor = n;
                    self.bounds.ceiling = n + 1;
                }
                Line::Ack(n) => {
                    if durability == Durability::Immediate {
                        self.bounds.floor = n + 1;
                    }
                    self.bounds.ceiling = n + 2;
                    self.batches_acked += 1;
                }
            }
        }
    }

    /// Opens the database here and compares it with the model.
    fn verify(&mut self, durability: Durability) {
        let db = Db::open_with(self.dir.path(), options(durability))
            .unwrap_or_else(|e| panic!("after kill {}: open failed: {e}", self.kills));
        let m = read_marker(&db).expect("reading the marker");
        self.batches_replayed += db.recovery_report().batches_committed;
        let Bounds { floor, ceiling } = self.bounds;
        assert!(
            m >= floor,
            "after kill {}: the database holds {m} batches, but batch {} had been acknowledged (lost)",
            self.kills,
            floor.saturating_sub(1)
        );
        assert!(
            m <= ceiling,
            "after kill {}: the database holds {m} batches, more than {ceiling} ever started",
            self.kills
        );
        self.model.advance_to(m);
        let report =
            db.check().unwrap_or_else(|e| panic!("after kill {} ({m} batches): check failed: {e}", self.kills));
        assert_eq!(report.entries, self.model.map.len() as u64, "after kill {}: entries", self.kills);
        let mut expected = self.model.map.iter();
        for (count, entry) in db.iter().enumerate() {
            let (key, value) = entry.unwrap_or_else(|e| panic!("after kill {}: iteration failed: {e}", self.kills));
            let Some((want_key, want_value)) = expected.next() else {
                panic!("after kill {} ({m} batches): extra key {:?}", self.kills, String::from_utf8_lossy(&key));
            };
            assert!(
                key == want_key && value == want_value,
                "after kill {} ({m} batches): entry {count} is {:?} ({} bytes), the model has {:?} ({} bytes)",
                self.kills,
                String::from_utf8_lossy(&key),
                value.len(),
                String::from_utf8_lossy(want_key),
                want_value.len()
            );
        }
        assert!(expected.next().is_none(), "after kill {} ({m} batches): keys missing", self.kills);
        self.bounds = Bounds { floor: m, ceiling: m };
        self.verified += 1;
        drop(db);
    }
}

#[test]
fn crash_sigkill_campaign() {
    let started = Instant::now();
    let mut campaign = Campaign::new(0xc0ff_ee00_1234);
    for round in 0..22 {
        campaign.kill_one(Durability::Immediate, None);
        // Now and then the next child recovers the crashed database itself (and may be killed
        // while it does); otherwise verify here.
        if round % 4 != 1 || round == 21 {
            campaign.verify(Durability::Immediate);
        }
    }
    for round in 0..5 {
        campaign.kill_one(Durability::Eventual, None);
        if round != 2 {
            campaign.verify(Durability::Eventual);
        }
    }
    assert!(campaign.model.batches > 100, "too few batches reached the database: {}", campaign.model.batches);
    assert!(campaign.batches_replayed > 0, "no kill ever left redo to replay: recovery was not exercised");
    println!(
        "crash_sigkill: {} kills ({} before the child had opened), {} verifications, {} acknowledged batches, {} replayed by recovery, {} batches in the final database, {} keys, {:.1} s",
        campaign.kills,
        campaign.kills_before_start,
        campaign.verified,
        campaign.batches_acked,
        campaign.batches_replayed,
        campaign.model.batches,
        campaign.model.map.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Kills while the child creates a new database (and during its first batches): the directory
/// must then open as a database, empty or holding whole batches, never as an error.
#[test]
fn sigkill_while_creating() {
    let mut outcomes = BTreeMap::new();
    for attempt in 0..24u64 {
        let mut campaign = Campaign::new(attempt);
        campaign.kill_one(Durability::Immediate, Some(Duration::from_millis(10)));
        let data_len = std::fs::metadata(campaign.dir.path().join("data.mtrdb")).map_or(-1, |m| m.len() as i64);
        let log_len = std::fs::metadata(campaign.dir.path().join("redo.log")).map_or(-1, |m| m.len() as i64);
        campaign.verify(Durability::Immediate);
        let stage = match (data_len, log_len) {
            (-1, _) => "nothing created",
            (0, -1 | 0) => "empty data file",
            (0, _) => "log created",
            _ => "data file written",
        };
        *outcomes.entry((stage, campaign.model.batches.min(2))).or_insert(0) += 1;
    }
    println!("sigkill_while_creating: (stage reached, batches 0/1/2+) counts: {outcomes:?}");
}
