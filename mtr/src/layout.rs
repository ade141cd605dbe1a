//! The log file: its header, its two checkpoint slots, and the ring.
//!
//! # File layout
//!
//! | offset  | size       | content                                   |
//! |---------|------------|-------------------------------------------|
//! | 0       | 4096       | header block                              |
//! | 4096    | 4096       | checkpoint slot 0                         |
//! | 8192    | 4096       | checkpoint slot 1                         |
//! | 12288   | `capacity` | the ring: stream byte at LSN `l` is at `12288 + l % capacity` |
//!
//! Each structure sits at the start of its own 4096-byte block, so a torn write of one can never
//! touch another. Integers are little-endian.
//!
//! # Header block
//!
//! | offset | size | field                                                              |
//! |--------|------|--------------------------------------------------------------------|
//! | 0      | 8    | magic `b"mtrdbLOG"`                                                |
//! | 8      | 4    | format version, 1                                                  |
//! | 12     | 4    | zero                                                               |
//! | 16     | 8    | `capacity`: ring bytes, a multiple of 4096, at least [`MIN_CAPACITY_BYTES`] and at most [`MAX_CAPACITY_BYTES`] (64 GiB); a header claiming anything else is not a log |
//! | 24     | 8    | `log_id`: chosen at creation; the engine keeps the same id in its data file, so a log from another database is refused |
//! | 32     | 28   | zero                                                               |
//! | 60     | 4    | CRC-32C of bytes 0..60                                             |
//!
//! The header is written once, at creation, and never again.
//!
//! # Checkpoint slot
//!
//! | offset | size | field                                                              |
//! |--------|------|--------------------------------------------------------------------|
//! | 0      | 8    | magic `b"mtrdbCKP"`                                                |
//! | 8      | 8    | `number`: 1, 2, 3, ...; checkpoint `n` is written to slot `n % 2`  |
//! | 16     | 8    | `lsn`: redo starts here; every change before it is in the data file |
//! | 24     | 8    | `durable_lsn`: the log was durable at least this far (`>= lsn`)    |
//! | 32     | 8    | `log_id`, as in the header                                         |
//! | 40     | 20   | zero                                                               |
//! | 60     | 4    | CRC-32C of bytes 0..60                                             |
//!
//! A slot is valid if its magic, `log_id` and CRC match and `lsn <= durable_lsn`. The valid slot
//! with the larger `number` is the checkpoint. Slots alternate, so a torn checkpoint write leaves
//! the previous checkpoint intact in the other slot.

use std::sync::Arc;

use crate::error::{io, Error, Result};
use crate::io::StorageFile;
use crate::lsn::Lsn;

/// Size of the header block and of each checkpoint block.
pub const BLOCK_BYTES: u64 = 4096;
/// Where the ring starts.
pub const RING_OFFSET: u64 = 3 * BLOCK_BYTES;
/// The smallest ring.
pub const MIN_CAPACITY_BYTES: u64 = 64 * 1024;
/// The largest ring: 64 GiB, 512 times the engine's default of 128 MiB and beyond any redo log
/// a single database needs (redo only has to hold what was written since the last checkpoint).
/// The bound keeps the file's length (`RING_OFFSET + capacity`) and LSN arithmetic far from
/// overflow, so a damaged header claiming an absurd ring is "not a log", not a panic.
pub const MAX_CAPACITY_BYTES: u64 = 64 << 30;
const HEADER_MAGIC: [u8; 8] = *b"mtrdbLOG";
const CHECKPOINT_MAGIC: [u8; 8] = *b"mtrdbCKP";
const FORMAT_VERSION: u32 = 1;
const STRUCT_BYTES: usize = 64;
const CRC_AT: usize = 60;

/// A checkpoint as stored in a slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Sequence number; the larger is newer.
    pub number: u64,
    /// Redo starts here.
    pub lsn: Lsn,
    /// The log was durable at least this far when the checkpoint was written.
    pub durable_lsn: Lsn,
}

/// The length of a log file whose ring has `capacity` bytes, if that capacity is allowed: a
/// multiple of the block size from [`MIN_CAPACITY_BYTES`] to [`MAX_CAPACITY_BYTES`].
fn file_len_for(capacity: u64) -> Option<u64> {
    if !(MIN_CAPACITY_BYTES..=MAX_CAPACITY_BYTES).contains(&capacity) || !capacity.is_multiple_of(BLOCK_BYTES) {
        return None;
    }
    // Cannot overflow within the bound; checked all the same, as headers are untrusted input.
    RING_OFFSET.checked_add(capacity)
}

fn seal(block: &mut [u8; STRUCT_BYTES]) {
    let crc = crc32c::crc32c(&block[..CRC_AT]);
    block[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
}

fn sealed(block: &[u8; STRUCT_BYTES]) -> bool {
    crc32c::crc32c(&block[..CRC_AT]).to_le_bytes() == block[CRC_AT..]
}

fn u64_at(block: &[u8; STRUCT_BYTES], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&block[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// An open log file whose header has been verified. Reading only; [`crate::Log`] writes.
#[derive(Clone)]
pub struct LogFile {
    pub(crate) file: Arc<dyn StorageFile>,
    pub(crate) capacity: u64,
    pub(crate) log_id: u64,
}

impl std::fmt::Debug for LogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFile").field("capacity", &self.capacity).field("log_id", &self.log_id).finish()
    }
}

impl LogFile {
    /// Lays out a new log in the empty `file`: header, checkpoint 1 at LSN 0 in slot 1, a ring of
    /// `capacity` bytes (sparse until written). Syncs the file; the caller syncs the directory.
    pub fn create(file: Arc<dyn StorageFile>, capacity: u64, log_id: u64) -> Result<LogFile> {
        LogFile::create_at(file, capacity, log_id, Lsn::ZERO)
    }

    /// [`LogFile::create`] with checkpoint 1 at `start` instead of LSN 0: for a log beside pages
    /// that were written under another log (a backup's copy), whose LSNs reach up to `start`, so
    /// that every record this log holds is newer than every page it will be replayed onto.
    pub fn create_at(file: Arc<dyn StorageFile>, capacity: u64, log_id: u64, start: Lsn) -> Result<LogFile> {
        let Some(file_len) = file_len_for(capacity) else {
            return Err(Error::Misuse(format!(
                "log capacity {capacity} must be a multiple of {BLOCK_BYTES} from {MIN_CAPACITY_BYTES} to {MAX_CAPACITY_BYTES}"
            )));
        };
        let mut header = [0u8; STRUCT_BYTES];
        header[..8].copy_from_slice(&HEADER_MAGIC);
        header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        header[16..24].copy_from_slice(&capacity.to_le_bytes());
        header[24..32].copy_from_slice(&log_id.to_le_bytes());
        seal(&mut header);
        file.set_len(file_len).map_err(io("sizing a new log file"))?;
        file.write_all_at(&header, 0).map_err(io("writing the log header"))?;
        let log = LogFile { file, capacity, log_id };
        log.write_checkpoint(Checkpoint { number: 1, lsn: start, durable_lsn: start })?;
        log.file.sync_data().map_err(io("syncing a new log file"))?;
        Ok(log)
    }

    /// Opens and verifies an existing log.
    pub fn open(file: Arc<dyn StorageFile>) -> Result<LogFile> {
        let len = file.len().map_err(io("reading the log file's length"))?;
        let not_a_log = |detail: String| Error::NotALog { detail };
        if len < RING_OFFSET {
            return Err(not_a_log(format!("{len} bytes is shorter than a log header")));
        }
        let mut header = [0u8; STRUCT_BYTES];
        file.read_exact_at(&mut header, 0).map_err(io("reading the log header"))?;
        if header[..8] != HEADER_MAGIC {
            return Err(not_a_log("wrong magic bytes".into()));
        }
        if !sealed(&header) {
            return Err(not_a_log("header checksum mismatch".into()));
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version != FORMAT_VERSION {
            return Err(not_a_log(format!("format version {version}, expected {FORMAT_VERSION}")));
        }
        let capacity = u64_at(&header, 16);
        let Some(promised_len) = file_len_for(capacity) else {
            return Err(not_a_log(format!("implausible capacity {capacity}")));
        };
        if len < promised_len {
            return Err(not_a_log(format!(
                "file is {len} bytes, its header promises {promised_len}; the log was truncated"
            )));
        }
        Ok(LogFile { file, capacity, log_id: u64_at(&header, 24) })
    }

    /// Ring bytes.
    #[must_use]
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The id chosen at creation.
    #[must_use]
    pub fn log_id(&self) -> u64 {
        self.log_id
    }

    /// The file.
    #[must_use]
    pub fn file(&self) -> &Arc<dyn StorageFile> {
        &self.file
    }

    /// Both slots, decoded; `None` where a slot is invalid.
    pub fn checkpoint_slots(&self) -> Result<[Option<Checkpoint>; 2]> {
        let mut slots = [None, None];
        for (index, slot) in slots.iter_mut().enumerate() {
            let mut block = [0u8; STRUCT_BYTES];
            self.file
                .read_exact_at(&mut block, BLOCK_BYTES * (1 + index as u64))
                .map_err(io("reading a checkpoint slot"))?;
            if block[..8] != CHECKPOINT_MAGIC || !sealed(&block) || u64_at(&block, 32) != self.log_id {
                continue;
            }
            let checkpoint = Checkpoint {
                number: u64_at(&block, 8),
                lsn: Lsn(u64_at(&block, 16)),
                durable_lsn: Lsn(u64_at(&block, 24)),
            };
            if checkpoint.lsn <= checkpoint.durable_lsn && checkpoint.number % 2 == index as u64 {
                *slot = Some(checkpoint);
            }
        }
        Ok(slots)
    }

    /// The newest valid checkpoint.
    pub fn latest_checkpoint(&self) -> Result<Checkpoint> {
        let [a, b] = self.checkpoint_slots()?;
        match (a, b) {
            (Some(a), Some(b)) => Ok(if a.number > b.number { a } else { b }),
            (Some(one), None) | (None, Some(one)) => Ok(one),
            (None, None) => Err(Error::NoCheckpoint),
        }
    }

    /// Writes `checkpoint` to its slot (not synced).
    pub(crate) fn write_checkpoint(&self, checkpoint: Checkpoint) -> Result<()> {
        let mut block = [0u8; STRUCT_BYTES];
        block[..8].copy_from_slice(&CHECKPOINT_MAGIC);
        block[8..16].copy_from_slice(&checkpoint.number.to_le_bytes());
        block[16..24].copy_from_slice(&checkpoint.lsn.0.to_le_bytes());
        block[24..32].copy_from_slice(&checkpoint.durable_lsn.0.to_le_bytes());
        block[32..40].copy_from_slice(&self.log_id.to_le_bytes());
        seal(&mut block);
        let offset = BLOCK_BYTES * (1 + checkpoint.number % 2);
        self.file.write_all_at(&block, offset).map_err(io("writing a checkpoint slot"))
    }

    /// Writes `checkpoint` to its slot again, byte for byte as it reads, and syncs the file.
    ///
    /// Recovery starts from a slot it read, but after a failed sync (in this process or an earlier
    /// one in the same boot) the slot may exist only in the operating system's page cache, marked
    /// clean: no later sync writes it, and a power loss brings back the older slot. Recovery's own
    /// writes (its doublewrite batches name this checkpoint) must not rest on a slot the disk may
    /// not hold, so it makes the slot durable before writing anything.
    pub fn rewrite_checkpoint_durably(&self, checkpoint: Checkpoint) -> Result<()> {
        self.write_checkpoint(checkpoint)?;
        self.file.sync_data().map_err(io("syncing a rewritten checkpoint slot"))
    }

    /// File offset of the stream byte at `lsn`.
    #[must_use]
    pub fn ring_offset(&self, lsn: Lsn) -> u64 {
        RING_OFFSET + lsn.0 % self.capacity
    }

    /// Reads the stream bytes `[lsn, lsn + buf.len())`, wrapping around the ring end.
    pub fn read_stream(&self, lsn: Lsn, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = lsn.add(done as u64);
            let to_ring_end = (self.capacity - at.0 % self.capacity) as usize;
            let chunk = (buf.len() - done).min(to_ring_end);
            self.file
                .read_exact_at(&mut buf[done..done + chunk], self.ring_offset(at))
                .map_err(io("reading the redo log"))?;
            done += chunk;
        }
        Ok(())
    }

    /// Writes the stream bytes starting at `lsn`, wrapping around the ring end (not synced).
    pub(crate) fn write_stream(&self, lsn: Lsn, bytes: &[u8]) -> std::io::Result<()> {
        let mut done = 0;
        while done < bytes.len() {
            let at = lsn.add(done as u64);
            let to_ring_end = (self.capacity - at.0 % self.capacity) as usize;
            let chunk = (bytes.len() - done).min(to_ring_end);
            self.file.write_all_at(&bytes[done..done + chunk], self.ring_offset(at))?;
            done += chunk;
        }
        Ok(())
    }

    /// Makes the stream bytes `[from, to)` durable exactly as they read now: rewrites them, in
    /// chunks of at most 1 MiB, and syncs the file.
    ///
    /// Why: after a failed sync the operating system may keep log bytes in its page cache that
    /// never reached the disk, marked clean, so no later sync writes them. A recovery in the
    /// same boot reads those bytes from the cache. Before it writes back pages built from them,
    /// it must make them durable (write-ahead), and a sync alone would not.
    pub fn rewrite_durably(&self, from: Lsn, to: Lsn) -> Result<()> {
        let mut buffer = vec![0u8; (to.since(from).min(1 << 20)) as usize];
        let mut at = from;
        while at < to {
            let len = to.since(at).min(buffer.len() as u64) as usize;
            let chunk = &mut buffer[..len];
            self.read_stream(at, chunk)?;
            self.write_stream(at, chunk).map_err(io("rewriting the redo log"))?;
            at = at.add(len as u64);
        }
        self.file.sync_data().map_err(io("syncing the rewritten redo log"))
    }
}
