//! The log writer: appending mtrs to an in-memory buffer, group commit, and checkpoints.
//!
//! # Appending
//! [`Log::append`] frames an mtr at the current end of the stream, copies it into the log buffer
//! and returns its LSN range. Nothing is written to the file yet. If the ring has no room for the
//! frame without overwriting redo newer than the last checkpoint, `append` waits until a
//! checkpoint frees space; it never overwrites live redo and never fails for lack of space.
//!
//! # Group commit
//! [`Log::flush_up_to`] returns once the stream is durable up to the given LSN. The first caller
//! that finds no flush under way becomes the leader: it takes the whole buffer (its own bytes and
//! every other thread's), writes it, syncs once, and wakes everyone whose LSN is now durable.
//! Callers arriving while a flush is under way wait for it and then, if still not covered, one of
//! them leads the next round, carrying all bytes appended meanwhile.
//!
//! A leader waits for others only when it has reason to expect them: if the previous round
//! carried N committers and fewer than N are waiting now, it sleeps on a condition variable
//! until they are (each arrival wakes it) or for at most half the previous round's write and
//! sync time, capped at [`GATHER_MAX`]. So a lone committer never waits (it pays one
//! `fdatasync`, on a quiet machine and a busy one alike: no spinning, no `sched_yield`), while N
//! threads committing in a loop keep sharing one sync per round instead of alternating rounds of
//! one each. The idea is PostgreSQL's `commit_siblings`, with the sibling count learned from the
//! previous round rather than configured.
//!
//! # Failures
//! A failed write or sync poisons the log: the kernel may have dropped the dirty pages, so a
//! retried sync could report success for data that is gone. Every later call returns
//! [`Error::Poisoned`] until the database is reopened.

use std::sync::atomic::{AtomicU64, Ordering};

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{io, Error, Result};
use crate::frame::{self, MtrBuf, MAX_HEADER_BYTES, TRAILER_BYTES};
use crate::layout::{Checkpoint, LogFile};
use crate::lsn::Lsn;

/// The longest a flush leader waits for the committers it expects (see the module doc).
pub const GATHER_MAX: Duration = Duration::from_micros(200);

/// Counters, for reports and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Mtrs appended.
    pub mtrs_appended: u64,
    /// Stream bytes appended (frames).
    pub bytes_appended: u64,
    /// Syncs of the log file issued by flushes.
    pub syncs: u64,
    /// Flush rounds (each one write and one sync).
    pub flush_rounds: u64,
    /// Times an append waited for a checkpoint to free space.
    pub space_waits: u64,
    /// Flush rounds whose leader waited for committers it expected (see the module doc).
    pub gather_waits: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
}

struct State {
    /// Where the next mtr starts.
    end_lsn: Lsn,
    /// Stream bytes `[buffer_lsn, end_lsn)`, appended but not yet handed to a flush.
    buffer: Vec<u8>,
    buffer_lsn: Lsn,
    /// The stream is durable up to here.
    flushed_lsn: Lsn,
    flush_in_progress: bool,
    /// Callers of `flush_up_to` waiting for the next round to take the buffer (the leader of that
    /// round included); reset to 0 when a round takes it, since that round covers them all.
    waiting: usize,
    /// Rounds that have taken the buffer so far (tells a waiter whether it is still counted in
    /// `waiting`).
    rounds_taken: u64,
    /// How many waiters the last round covered: the committers the next leader expects.
    last_group: usize,
    /// The last round's write and sync time: the next leader waits at most half of it.
    last_round_io: Duration,
    /// The last checkpoint: the ring holds live redo from here on.
    checkpoint: Checkpoint,
    poisoned: Option<String>,
}

/// The writable redo log.
pub struct Log {
    file: LogFile,
    state: Mutex<State>,
    /// Signalled when a flush round ends.
    flushed: Condvar,
    /// Signalled when a committer starts waiting, for a leader gathering its group.
    arrived: Condvar,
    /// Signalled when a checkpoint frees ring space (or the log is poisoned).
    space: Condvar,
    /// Serialises checkpoint writers, so slot numbers stay in order.
    checkpoint_lock: Mutex<()>,
    mtrs_appended: AtomicU64,
    bytes_appended: AtomicU64,
    syncs: AtomicU64,
    flush_rounds: AtomicU64,
    space_waits: AtomicU64,
    gather_waits: AtomicU64,
    checkpoints: AtomicU64,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("file", &self.file).field("end_lsn", &self.end_lsn()).finish()
    }
}

impl Log {
    /// Starts writing after recovery. `recovered_end` is where the last mtr the caller applied
    /// ends, and every change before it must already be durable in the caller's data files:
    /// this writes a checkpoint there (synced) and the stream continues one whole lap later, at
    /// `recovered_end + capacity`. Skipping a lap means no LSN is ever reused, so no byte left
    /// over from before (a torn or discarded tail, an earlier lap) can verify as a new mtr.
    pub fn resume(file: LogFile, recovered_end: Lsn) -> Result<Log> {
        let previous = file.latest_checkpoint()?;
        if recovered_end < previous.lsn {
            return Err(Error::Misuse(format!(
                "recovery ended at LSN {recovered_end}, before the checkpoint at {}",
                previous.lsn
            )));
        }
        let start = recovered_end.add(file.capacity);
        let checkpoint = Checkpoint { number: previous.number + 1, lsn: start, durable_lsn: start };
        file.write_checkpoint(checkpoint)?;
        file.file.sync_data().map_err(io("syncing the checkpoint that resumes the log"))?;
        Ok(Log {
            file,
            state: Mutex::new(State {
                end_lsn: start,
                buffer: Vec::with_capacity(1 << 20),
                buffer_lsn: start,
                flushed_lsn: start,
                flush_in_progress: false,
                waiting: 0,
                rounds_taken: 0,
                last_group: 1,
                last_round_io: Duration::ZERO,
                checkpoint,
                poisoned: None,
            }),
            flushed: Condvar::new(),
            arrived: Condvar::new(),
            space: Condvar::new(),
            checkpoint_lock: Mutex::new(()),
            mtrs_appended: AtomicU64::new(0),
            bytes_appended: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            flush_rounds: AtomicU64::new(0),
            space_waits: AtomicU64::new(0),
            gather_waits: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
        })
    }

    /// The log file (for scans and statistics).
    #[must_use]
    pub fn file(&self) -> &LogFile {
        &self.file
    }

    /// Appends one mtr with the given flags byte; returns `(start, end)` LSNs. Waits while the
    /// ring is full (see the module doc).
    pub fn append(&self, mtr: &MtrBuf, flags: u8) -> Result<(Lsn, Lsn)> {
        let body = mtr.body();
        if body.is_empty() {
            return Err(Error::Misuse("an mtr needs at least one record".into()));
        }
        let max_frame = (MAX_HEADER_BYTES + body.len() + TRAILER_BYTES) as u64;
        if body.len() > frame::MAX_MTR_BODY_BYTES || max_frame > self.file.capacity {
            return Err(Error::MtrTooLarge { frame_bytes: max_frame, capacity_bytes: self.file.capacity });
        }
        // The CRC of the records needs no lock; only the header depends on the stream position.
        let body_crc = crc32c::crc32c(body);
        let mut state = self.state.lock();
        loop {
            if let Some(cause) = &state.poisoned {
                return Err(Error::Poisoned { cause: cause.clone() });
            }
            let used = state.end_lsn.since(state.checkpoint.lsn);
            if used + max_frame <= self.file.capacity {
                break;
            }
            self.space_waits.fetch_add(1, Ordering::Relaxed);
            self.space.wait(&mut state);
        }
        let start = state.end_lsn;
        let durable = state.flushed_lsn;
        let frame_len = frame::encode_frame(&mut state.buffer, start, durable, body, body_crc, flags);
        state.end_lsn = start.add(frame_len as u64);
        let end = state.end_lsn;
        drop(state);
        self.mtrs_appended.fetch_add(1, Ordering::Relaxed);
        self.bytes_appended.fetch_add(frame_len as u64, Ordering::Relaxed);
        Ok((start, end))
    }

    /// Returns once the stream is durable up to `lsn` (clamped to the current end).
    pub fn flush_up_to(&self, lsn: Lsn) -> Result<()> {
        let mut state = self.state.lock();
        // The round count when this caller joined `waiting`, if it has.
        let mut registered: Option<u64> = None;
        loop {
            if let Some(cause) = &state.poisoned {
                return Err(Error::Poisoned { cause: cause.clone() });
            }
            let target = lsn.min(state.end_lsn);
            if state.flushed_lsn >= target {
                if registered == Some(state.rounds_taken) {
                    // Covered without a round taking the buffer since it joined (its bytes were
                    // taken before it arrived): it is still counted, so uncount it.
                    state.waiting -= 1;
                }
                return Ok(());
            }
            if registered.is_none() {
                registered = Some(state.rounds_taken);
                state.waiting += 1;
                self.arrived.notify_one();
            }
            if state.flush_in_progress {
                self.flushed.wait(&mut state);
                continue;
            }
            // Lead a round: take every buffered byte, whoever appended it. If the last round
            // carried more committers than are waiting now, the others are probably on their way
            // back (applying their next batch): wait for them, briefly, so that one sync carries
            // them all. Nobody else is expected after a round of one, so a lone committer never
            // waits.
            state.flush_in_progress = true;
            if state.waiting < state.last_group {
                self.gather_waits.fetch_add(1, Ordering::Relaxed);
                let deadline = Instant::now() + (state.last_round_io / 2).min(GATHER_MAX);
                while state.waiting < state.last_group {
                    if self.arrived.wait_until(&mut state, deadline).timed_out() {
                        break;
                    }
                }
            }
            // Every waiter appended before it started waiting, so this round covers them all.
            state.last_group = state.waiting.max(1);
            state.waiting = 0;
            state.rounds_taken += 1;
            let from = state.buffer_lsn;
            let to = state.end_lsn;
            let bytes = std::mem::take(&mut state.buffer);
            state.buffer_lsn = to;
            drop(state);
            let io_started = Instant::now();
            let result = self
                .file
                .write_stream(from, &bytes)
                .map_err(|e| ("writing the redo log", e))
                .and_then(|()| self.file.file.sync_data().map_err(|e| ("syncing the redo log", e)));
            let io_time = io_started.elapsed();
            self.flush_rounds.fetch_add(1, Ordering::Relaxed);
            self.syncs.fetch_add(1, Ordering::Relaxed);
            state = self.state.lock();
            state.flush_in_progress = false;
            state.last_round_io = io_time;
            match result {
                Ok(()) => {
                    state.flushed_lsn = to;
                    if state.buffer.capacity() == 0 {
                        // Give the emptied allocation back for the next round.
                        let mut recycled = bytes;
                        recycled.clear();
                        let pending = std::mem::replace(&mut state.buffer, recycled);
                        state.buffer.extend_from_slice(&pending);
                    }
                }
                Err((action, source)) => {
                    state.poisoned = Some(format!("{action}: {source}"));
                    self.space.notify_all();
                    self.flushed.notify_all();
                    // The leader's own I/O failed: it gets the operating system's error (a
                    // full disk is then told from other failures); everyone after gets
                    // `Poisoned`.
                    return Err(Error::Io { action, source });
                }
            }
            self.flushed.notify_all();
        }
    }

    /// Flushes everything appended so far; returns the durable end.
    pub fn flush_all(&self) -> Result<Lsn> {
        let end = self.end_lsn();
        self.flush_up_to(end)?;
        Ok(end)
    }

    /// Writes a checkpoint at `lsn` (synced) and frees the ring before it. The caller promises
    /// that every change logged before `lsn` is durable in its data files; the log must already
    /// be durable up to `lsn`.
    pub fn checkpoint(&self, lsn: Lsn) -> Result<()> {
        let _one_at_a_time = self.checkpoint_lock.lock();
        let (previous, durable) = {
            let state = self.state.lock();
            if let Some(cause) = &state.poisoned {
                return Err(Error::Poisoned { cause: cause.clone() });
            }
            (state.checkpoint, state.flushed_lsn)
        };
        if lsn > durable {
            return Err(Error::Misuse(format!("checkpoint at LSN {lsn} is ahead of the durable log ({durable})")));
        }
        if lsn < previous.lsn {
            return Err(Error::Misuse(format!("checkpoint at LSN {lsn} goes back before {}", previous.lsn)));
        }
        let checkpoint = Checkpoint { number: previous.number + 1, lsn, durable_lsn: durable };
        let result = self
            .file
            .write_checkpoint(checkpoint)
            .and_then(|()| self.file.file.sync_data().map_err(io("syncing a checkpoint")));
        let mut state = self.state.lock();
        let outcome = match result {
            Ok(()) => {
                state.checkpoint = checkpoint;
                self.checkpoints.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(error) => {
                state.poisoned.get_or_insert_with(|| error.to_string());
                Err(error) // this call's own I/O error, typed
            }
        };
        self.space.notify_all();
        match (outcome, &state.poisoned) {
            (Err(error), _) => Err(error),
            (Ok(()), Some(cause)) => Err(Error::Poisoned { cause: cause.clone() }),
            (Ok(()), None) => Ok(()),
        }
    }

    /// Gives the ring's disk space back to the file system when it holds no live redo (the last
    /// checkpoint is at the end of the stream, and nothing is buffered): a closed database then
    /// occupies no log space beyond its three blocks. Returns whether it did (`false`: live redo
    /// remains, nothing changed). The ring then reads as zeros, which the scanner takes for the
    /// end of the log; the next lap's writes allocate the space again.
    pub fn release_ring_space(&self) -> Result<bool> {
        let _one_at_a_time = self.checkpoint_lock.lock();
        // Held throughout, so no flush writes to the ring meanwhile.
        let state = self.state.lock();
        if let Some(cause) = &state.poisoned {
            return Err(Error::Poisoned { cause: cause.clone() });
        }
        if state.checkpoint.lsn != state.end_lsn || state.flush_in_progress || !state.buffer.is_empty() {
            return Ok(false);
        }
        self.file
            .file
            .punch_hole(crate::layout::RING_OFFSET, self.file.capacity)
            .map_err(io("giving back the ring's space"))?;
        Ok(true)
    }

    /// Where the next mtr starts.
    #[must_use]
    pub fn end_lsn(&self) -> Lsn {
        self.state.lock().end_lsn
    }

    /// The stream is durable up to here.
    #[must_use]
    pub fn flushed_lsn(&self) -> Lsn {
        self.state.lock().flushed_lsn
    }

    /// The last checkpoint.
    #[must_use]
    pub fn last_checkpoint(&self) -> Checkpoint {
        self.state.lock().checkpoint
    }

    /// Ring bytes not holding live redo.
    #[must_use]
    pub fn free_bytes(&self) -> u64 {
        let state = self.state.lock();
        self.file.capacity - state.end_lsn.since(state.checkpoint.lsn)
    }

    /// Bytes appended but not yet durable.
    #[must_use]
    pub fn unflushed_bytes(&self) -> u64 {
        let state = self.state.lock();
        state.end_lsn.since(state.flushed_lsn)
    }

    /// Whether an earlier I/O failure poisoned the log.
    #[must_use]
    pub fn poisoned(&self) -> Option<String> {
        self.state.lock().poisoned.clone()
    }

    /// The counters so far.
    #[must_use]
    pub fn stats(&self) -> LogStats {
        LogStats {
            mtrs_appended: self.mtrs_appended.load(Ordering::Relaxed),
            bytes_appended: self.bytes_appended.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            flush_rounds: self.flush_rounds.load(Ordering::Relaxed),
            space_waits: self.space_waits.load(Ordering::Relaxed),
            gather_waits: self.gather_waits.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
        }
    }
}
