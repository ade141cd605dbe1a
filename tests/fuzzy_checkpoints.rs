//! Fuzzy checkpoints: a write-back of only the oldest dirty pages, then a checkpoint at the
//! oldest change still held only in memory (not at the log's end).
//!
//! A crash at every write and sync boundary of a workload whose writers make room in a small log
//! that way (no background thread, so the I/O sequence is exact), each followed by power losses
//! that keep different subsets of the unsynced writes; every recovered database must equal the
//! model after a prefix of the batches holding every acknowledged one. Then the same with a
//! crash during the recovery of each crash image of the second half, and during recoveries
//! that write back part-way (a recovery memory of a few pages).
//!
//! Guards: the checkpoint LSN of a partial write-back (a checkpoint past a change that is still
//! only in memory loses it at the next crash), the flush list's oldest LSNs (given when a page
//! first becomes dirty; moved to the write-back's start for a page changed during it; dropped
//! when an abandoned batch restores a page), doublewrite exemption of pages that stay dirty
//! across checkpoints, and of pages recovery writes back (only pages whose first record since
//! the checkpoint is a format record, and none after a partial write-back).

mod common;

use common::crash::{clean_run, Crashes};
use common::rng::Rng;
use common::{key, models, options, run, value, Step};
use mtrdb::fault::FaultStorage;
use mtrdb::{Db, ReplayJournal};
use std::sync::Arc;

/// Batches of 16 scattered inserts (long keys, so leaves split often), then batches that remove
/// most keys (merges free pages) while an overflow value is replaced again and again (chains are
/// freed and their pages reused): freed and reused pages are formatted afresh, often soon after
/// a partial write-back cleaned them. About two laps of the tests' 256 KiB log.
fn workload() -> Vec<Step> {
    let mut rng = Rng(0xf1a5_0001);
    let mut steps = Vec::new();
    for batch in 0..90u32 {
        let mut ops: Vec<_> = (0..16)
            .map(|_| {
                let index = rng.below(700) as u32;
                if batch >= 50 && rng.below(3) > 0 {
                    (key(index), None)
                } else {
                    (key(index), Some(value(index, batch, 20 + rng.below(80) as usize)))
                }
            })
            .collect();
        if batch % 3 == 0 {
            ops.push((b"overflow".to_vec(), Some(value(9, batch, 5_000 + rng.below(4_000) as usize))));
        }
        steps.push(Step::Batch(ops));
    }
    steps
}

#[test]
fn crash_at_every_boundary_of_partial_write_backs_and_during_their_recovery() {
    let steps = workload();
    let models = models(&steps);
    let workload = |storage: &FaultStorage, journal: &ReplayJournal| run(storage, &steps, journal);
    let (full, total_ops) = clean_run(&workload);
    assert_eq!(full.acknowledged, steps.len(), "the workload runs cleanly without faults");
    let stats = full.stats.expect("stats of the clean run");
    // The workload really takes checkpoints that leave pages dirty, several of them.
    assert!(stats.partial_checkpoints >= 3, "too few partial checkpoints: {stats:?}");
    assert!(stats.log.bytes_appended > 256 * 1024, "the log never wrapped: {stats:?}");
    assert!(stats.merges >= 2 && stats.overflow_pages_freed >= 40, "too few pages freed: {stats:?}");
    let seeds = [0, 1, 2, 3, 7];
    let mut crashes = Crashes::new(&models);
    crashes.at_every_boundary(&workload, total_ops, &seeds, |crash_at, seed| {
        format!("crash at op {crash_at}, power loss seed {seed}")
    });
    crashes.report(&format!(
        "{total_ops} I/O boundaries x {} survivals, {} partial checkpoints in the clean run; {} distinct prefixes",
        seeds.len(),
        stats.partial_checkpoints,
        crashes.prefixes.len()
    ));
    assert_eq!(crashes.explored, crashes.recovered);
    assert!(crashes.prefixes.len() > 40, "crashes recovered too few distinct prefixes: {:?}", crashes.prefixes);

    // Then recoveries cut at every boundary: a crash point every 1/32 of the run, in its second
    // half (where the partial checkpoints are).
    let mut cut = Crashes::new(&models);
    for crash_at in (total_ops / 2..total_ops).step_by((total_ops / 32).max(1) as usize) {
        let (storage, journal, outcome) = common::crash::crashed_run(&workload, crash_at);
        let crashed = storage.power_loss(crash_at);
        cut.during_recovery(&crashed, &outcome, &journal, &options(&journal), &[0, 5], |recovery_crash, seed| {
            format!("crash at op {crash_at}, recovery cut at its op {recovery_crash}, seed {seed}")
        });
    }
    cut.report("recoveries cut at every boundary, then recovered again");
    assert!(cut.explored > 100, "explored only {}", cut.explored);
}

/// Recoveries that write back part-way, cut at every boundary and recovered again. A recovery
/// memory of 640 KiB leaves 16 pages after the redo windows' share, so each of these recoveries
/// writes back several times; pages freed and formatted again after a partial write-back (merges,
/// replaced overflow chains) must not skip the doublewrite file, since their first record since
/// the checkpoint, before that write-back, needs their old bytes.
#[test]
fn recoveries_writing_back_part_way_cut_at_every_boundary() {
    let steps = workload();
    let models = models(&steps);
    let workload = |storage: &FaultStorage, journal: &ReplayJournal| run(storage, &steps, journal);
    let (_, total_ops) = clean_run(&workload);
    let small = |journal: &ReplayJournal| options(journal).recovery_memory(640 * 1024);
    let mut cut = Crashes::new(&models);
    let mut partial_write_backs = Vec::new();
    let (mut written_back, mut rebuilt) = (0, 0);
    for crash_at in (total_ops / 2..total_ops).step_by((total_ops / 12).max(1) as usize) {
        let (storage, journal, outcome) = common::crash::crashed_run(&workload, crash_at);
        let crashed = storage.power_loss(crash_at);
        let probe = Db::open_storage(Arc::new(crashed.power_loss(1)), "sim".into(), small(&journal))
            .unwrap_or_else(|error| panic!("crash at op {crash_at}: recovery failed: {error}"));
        partial_write_backs.push(probe.recovery_report().partial_write_backs);
        drop(probe);
        // With memory to spare, pages whose redo since the checkpoint starts by formatting
        // them skip the doublewrite file.
        let whole = Db::open_storage(Arc::new(crashed.power_loss(1)), "sim".into(), options(&journal))
            .unwrap_or_else(|error| panic!("crash at op {crash_at}: recovery failed: {error}"));
        let report = whole.recovery_report();
        written_back += report.pages_written_back;
        rebuilt += report.pages_written_back - report.pages_doublewritten;
        drop(whole);
        cut.during_recovery(&crashed, &outcome, &journal, &small(&journal), &[0, 5], |recovery_crash, seed| {
            format!(
                "crash at op {crash_at}, recovery writing back part-way cut at its op {recovery_crash}, seed {seed}"
            )
        });
    }
    cut.report(&format!(
        "partial write-backs per recovery: {partial_write_backs:?}; with the default memory, {rebuilt} of \
         {written_back} pages written back skipped the doublewrite file"
    ));
    assert!(rebuilt > 0 && rebuilt < written_back, "{rebuilt} of {written_back} pages skipped the doublewrite file");
    assert!(
        partial_write_backs.iter().filter(|&&count| count >= 2).count() >= partial_write_backs.len() / 2,
        "too few recoveries wrote back part-way: {partial_write_backs:?}"
    );
    assert_eq!(cut.explored, cut.recovered);
}
