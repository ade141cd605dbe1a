//! The scanner recovery reads the log with: from a checkpoint, each complete mtr in order, and
//! where (and why) the valid stream ends.
//!
//! The scan stops at the first position that does not hold a valid mtr (see [`crate::frame`] for
//! the exact rule). That is the normal end of a log after a crash (a **torn tail**: the last
//! writes never finished) unless there is evidence that the bytes there had already been made
//! durable, in which case stopping quietly would drop committed work and the scan reports
//! **corruption in the middle** instead:
//!
//! - the checkpoint says the log was durable past the bad position; or
//! - a valid mtr found beyond the bad position (where the bad frame's own length says the next
//!   starts, or at any byte within [`PROBE_WINDOW_BYTES`] after it), or one chained after such an
//!   mtr, records that the log was durable past the bad position when it was appended.
//!
//! A valid mtr beyond a bad one without such evidence is normal: writes the kernel had not yet
//! synced may reach the disk in any order. The scan then ends at the bad position and reports the
//! later mtr in [`ScanEnd::unsynced_after`], and nothing after the bad position is yielded.
//!
//! The scanner never panics, always terminates (it never reads past one ring's length from the
//! checkpoint) and allocates at most a window of a few MiB, whatever the bytes are.
//!
//! Reads go through that window, which extends forward as the scan or the probe moves on, so
//! each byte of the log is read at most a few times (once by a scan moving forward), even when
//! random bytes in the probe window claim frames of megabytes. A probed position costs little:
//! runs of zero bytes (never-written log) are skipped in bulk, most other positions are ruled
//! out by the 16 bytes at them and the byte where their end marker would be, and of the rest
//! most fail the walk over their records before the CRC over the claimed frame is computed.

use crate::error::{Error, Result};
use crate::frame::{
    self, Frame, FrameHeader, END_MARKER, FIRST_ENGINE_KIND, MAX_HEADER_BYTES, MAX_MTR_BODY_BYTES, TRAILER_BYTES,
};
use crate::layout::{Checkpoint, LogFile};
use crate::lsn::Lsn;

/// How far past a bad position the scanner looks, byte by byte, for a valid mtr.
pub const PROBE_WINDOW_BYTES: u64 = 64 * 1024;
/// The smallest read when the window moves: sequential scans read in chunks this large.
const READ_CHUNK_BYTES: usize = 1 << 20;
/// The longest frame.
const MAX_FRAME_BYTES: usize = MAX_HEADER_BYTES + MAX_MTR_BODY_BYTES + TRAILER_BYTES;
/// The window never holds more: the longest frame plus a read chunk, which also covers the
/// whole probe window with the longest frame a candidate in it can claim.
const MAX_WINDOW_BYTES: usize = MAX_FRAME_BYTES + READ_CHUNK_BYTES;

/// What to do when the evidence says a damaged mtr had been durable.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ScanMode {
    /// Return [`Error::CorruptMiddle`]: recovery must not silently drop committed work.
    Strict,
    /// End the scan there and describe the evidence in [`ScanEnd`] (for inspection tools).
    Lenient,
}

/// Where and why a scan ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanEnd {
    /// The first LSN that does not hold a valid mtr: writing continues from here (after the
    /// caller's own rules, such as discarding an uncommitted tail).
    pub lsn: Lsn,
    /// Why the bytes at `lsn` are not a valid mtr.
    pub reason: StopReason,
    /// A valid mtr beyond `lsn`, found without evidence that the bytes at `lsn` were durable
    /// (a normal crash with writes persisted out of order). Never applied.
    pub unsynced_after: Option<Lsn>,
    /// In lenient mode: evidence that the bytes at `lsn` were durable, i.e. corruption.
    pub corruption: Option<String>,
}

/// Why the bytes at the end of a scan are not an mtr.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The header does not decode or is out of range (zeros, stale or random bytes).
    BadHeader,
    /// The header decodes, but the frame's end marker, records or CRC do not check out.
    BadFrame,
    /// The scan reached one whole ring past the checkpoint.
    RingEnd,
}

/// Reads valid mtrs from a log, starting at a checkpoint.
pub struct Scanner<'f> {
    log: &'f LogFile,
    mode: ScanMode,
    next: Lsn,
    limit: Lsn,
    durable_floor: Lsn,
    window: Vec<u8>,
    window_lsn: Lsn,
    end: Option<ScanEnd>,
    mtrs: u64,
    bytes: u64,
}

/// A valid frame found by [`Scanner::probe`], located in the window.
#[derive(Copy, Clone)]
struct FrameAt {
    start_lsn: Lsn,
    end_lsn: Lsn,
    durable_lsn: Lsn,
    flags: u8,
    body_in_window: (usize, usize),
}

enum Probe {
    Valid(FrameAt),
    Invalid(Option<FrameHeader>, StopReason),
}

impl<'f> Scanner<'f> {
    /// A scan of `log` from `checkpoint`.
    #[must_use]
    pub fn new(log: &'f LogFile, checkpoint: Checkpoint, mode: ScanMode) -> Scanner<'f> {
        Scanner {
            log,
            mode,
            next: checkpoint.lsn,
            limit: checkpoint.lsn.add(log.capacity),
            durable_floor: checkpoint.durable_lsn,
            window: Vec::new(),
            window_lsn: checkpoint.lsn,
            end: None,
            mtrs: 0,
            bytes: 0,
        }
    }

    /// The next valid mtr, or `None` at the end of the valid stream (then see [`Scanner::end`]).
    /// In strict mode, evidence of corruption is an error.
    pub fn next_mtr(&mut self) -> Result<Option<Frame<'_>>> {
        if self.end.is_some() {
            return Ok(None);
        }
        let at = self.next;
        let (header, reason) = match self.probe(at)? {
            Probe::Valid(found) => {
                self.next = found.end_lsn;
                self.mtrs += 1;
                self.bytes += found.end_lsn.since(found.start_lsn);
                let (start, len) = found.body_in_window;
                return Ok(Some(Frame {
                    start_lsn: found.start_lsn,
                    end_lsn: found.end_lsn,
                    durable_lsn: found.durable_lsn,
                    flags: found.flags,
                    body: &self.window[start..start + len],
                }));
            }
            Probe::Invalid(header, reason) => (header, reason),
        };
        let mut end = ScanEnd { lsn: at, reason, unsynced_after: None, corruption: None };
        let proven_durable = if reason == StopReason::RingEnd { None } else { self.look_beyond(at, header, &mut end)? };
        if let (ScanMode::Strict, Some(evidence), Some(durable_to)) = (self.mode, &end.corruption, proven_durable) {
            let evidence: &'static str =
                if evidence.starts_with("checkpoint") { "the checkpoint" } else { "a later valid mtr" };
            return Err(Error::CorruptMiddle { at, durable_to, evidence });
        }
        self.end = Some(end);
        Ok(None)
    }

    /// Where and why the scan ended, once [`Scanner::next_mtr`] has returned `None`.
    #[must_use]
    pub fn end(&self) -> Option<&ScanEnd> {
        self.end.as_ref()
    }

    /// Valid mtrs yielded so far.
    #[must_use]
    pub fn mtrs_scanned(&self) -> u64 {
        self.mtrs
    }

    /// Stream bytes of the valid mtrs yielded so far.
    #[must_use]
    pub fn bytes_scanned(&self) -> u64 {
        self.bytes
    }

    /// Searches beyond a bad position for evidence (module doc). Fills `end`; returns how far
    /// the evidence proves the log was durable, if it found any.
    fn look_beyond(&mut self, bad: Lsn, header: Option<FrameHeader>, end: &mut ScanEnd) -> Result<Option<Lsn>> {
        if bad < self.durable_floor {
            end.corruption = Some(format!("checkpoint records the log durable up to LSN {}", self.durable_floor));
            return Ok(Some(self.durable_floor));
        }
        // The first valid mtr among the candidates, in this order: where the bad frame's own
        // length says the next starts, then every byte after the bad position in the window.
        let mut first = None;
        if let Some(header) = header {
            let claimed_next = bad.add(header.frame_len() as u64);
            if claimed_next < self.limit {
                if let Probe::Valid(found) = self.probe(claimed_next)? {
                    first = Some(found);
                }
            }
        }
        if first.is_none() {
            first = self.first_valid_in(bad.add(1), bad.add(PROBE_WINDOW_BYTES).min(self.limit))?;
        }
        let Some(first) = first else {
            return Ok(None);
        };
        end.unsynced_after = Some(first.start_lsn);
        // Follow the chain of valid mtrs from there, looking for one appended after the bad
        // position had been synced.
        let mut cursor = first.end_lsn;
        let mut durable = first.durable_lsn;
        loop {
            if durable > bad {
                end.corruption =
                    Some(format!("a valid mtr beyond it was appended when the log was durable up to LSN {durable}"));
                return Ok(Some(durable));
            }
            match self.probe(cursor)? {
                Probe::Valid(frame) => {
                    durable = frame.durable_lsn;
                    cursor = frame.end_lsn;
                }
                Probe::Invalid(..) => return Ok(None),
            }
        }
    }

    /// The first valid mtr starting at a byte of `[from, to)` (which lies before the limit).
    fn first_valid_in(&mut self, from: Lsn, to: Lsn) -> Result<Option<FrameAt>> {
        let mut at = from;
        while at < to {
            // The candidates and their headers in the window, screened with whatever the window
            // holds from them on, without reading more.
            let limit = self.limit;
            let header_end = to.add(MAX_HEADER_BYTES as u64).min(limit);
            self.bytes_at(at, header_end.since(at) as usize)?;
            let bytes = &self.window[at.since(self.window_lsn) as usize..];
            let Some(offset) = first_plausible(bytes, to.since(at) as usize, at, limit) else {
                break;
            };
            at = at.add(offset as u64);
            if let Probe::Valid(found) = self.probe(at)? {
                return Ok(Some(found));
            }
            at = at.add(1);
        }
        Ok(None)
    }

    /// Whether a valid mtr starts at `lsn`.
    fn probe(&mut self, lsn: Lsn) -> Result<Probe> {
        let room = self.limit.since(lsn);
        let header_bytes = (MAX_HEADER_BYTES as u64).min(room) as usize;
        if header_bytes == 0 {
            return Ok(Probe::Invalid(None, StopReason::RingEnd));
        }
        let header = {
            let bytes = self.bytes_at(lsn, header_bytes)?;
            frame::decode_header(bytes, lsn)
        };
        let Some(header) = header else {
            let reason =
                if room < (1 + 1 + TRAILER_BYTES) as u64 { StopReason::RingEnd } else { StopReason::BadHeader };
            return Ok(Probe::Invalid(None, reason));
        };
        let frame_len = header.frame_len();
        if frame_len as u64 > room {
            return Ok(Probe::Invalid(Some(header), StopReason::BadFrame));
        }
        // Bringing the frame into the window reads only what the window has not reached yet
        // (see `fill`); `verify_frame` then rejects most random candidates on the end-marker
        // byte or the first record before it computes the CRC.
        let bytes = self.bytes_at(lsn, frame_len)?;
        let verified = frame::verify_frame(bytes, header, lsn)
            .map(|frame| (frame.start_lsn, frame.end_lsn, frame.durable_lsn, frame.flags));
        let found = verified.map(|(start_lsn, end_lsn, durable_lsn, flags)| FrameAt {
            start_lsn,
            end_lsn,
            durable_lsn,
            flags,
            body_in_window: (lsn.since(self.window_lsn) as usize + header.header_len, header.body_len),
        });
        match found {
            Some(found) => Ok(Probe::Valid(found)),
            None => Ok(Probe::Invalid(Some(header), StopReason::BadFrame)),
        }
    }

    /// The stream bytes `[lsn, lsn + len)`, which must lie before the limit.
    fn bytes_at(&mut self, lsn: Lsn, len: usize) -> Result<&[u8]> {
        debug_assert!(len <= MAX_FRAME_BYTES && lsn.add(len as u64) <= self.limit);
        let window_end = self.window_lsn.add(self.window.len() as u64);
        if lsn < self.window_lsn || lsn.add(len as u64) > window_end {
            self.fill(lsn, len, window_end)?;
        }
        let start = lsn.since(self.window_lsn) as usize;
        Ok(&self.window[start..start + len])
    }

    /// Makes the window hold `[lsn, lsn + len)`, reading ahead (up to the limit) so that the
    /// next miss is at least [`READ_CHUNK_BYTES`] further on. A request at or after the
    /// window's start extends the window forward, keeping the bytes already read, as long as
    /// the window stays within [`MAX_WINDOW_BYTES`] (else it first drops the bytes before the
    /// request): a scan or probe moving forward, even over candidates that claim frames of
    /// megabytes, then reads each byte once.
    fn fill(&mut self, lsn: Lsn, len: usize, window_end: Lsn) -> Result<()> {
        let new_end = lsn.add(len as u64).max(window_end.add(READ_CHUNK_BYTES as u64).min(self.limit));
        let fits = new_end.since(self.window_lsn) <= MAX_WINDOW_BYTES as u64;
        if lsn >= self.window_lsn && (fits || lsn <= window_end) {
            if !fits {
                // A miss here means `window_end - lsn < len`, so from `lsn` on the window
                // stays within MAX_WINDOW_BYTES.
                self.window.drain(..lsn.since(self.window_lsn) as usize);
                self.window_lsn = lsn;
            }
            let kept = self.window.len();
            let new_len = new_end.since(self.window_lsn) as usize;
            self.window.reserve_exact(new_len - kept);
            self.window.resize(new_len, 0);
            return self.read_into_window(window_end, kept);
        }
        let take = (len.max(READ_CHUNK_BYTES) as u64).min(self.limit.since(lsn)) as usize;
        self.window.clear();
        self.window.reserve_exact(take);
        self.window.resize(take, 0);
        self.window_lsn = lsn;
        self.read_into_window(lsn, 0)
    }

    /// Reads the stream from `lsn` into the window from index `at` to its end. On failure the
    /// window ends at `at`, so that it never holds bytes that were not read.
    fn read_into_window(&mut self, lsn: Lsn, at: usize) -> Result<()> {
        let read = self.log.read_stream(lsn, &mut self.window[at..]);
        if read.is_err() {
            self.window.truncate(at);
        }
        read
    }
}

/// The offset of the first of the `candidates` positions at the front of `bytes` (the stream
/// from `lsn` on, at least through the headers of all candidates or up to `limit`) where a
/// valid mtr may start, by [`may_start`].
fn first_plausible(bytes: &[u8], candidates: usize, lsn: Lsn, limit: Lsn) -> Option<usize> {
    let mut offset = 0;
    while offset < candidates {
        // A zero byte cannot start an mtr (its `body_len` would be 0), and zeros are what a log
        // holds where it was never written: skip runs of them.
        if bytes[offset] == 0 {
            offset += zero_run(&bytes[offset..candidates]);
            if offset == candidates {
                return None;
            }
        }
        let at = lsn.add(offset as u64);
        if may_start(&bytes[offset..], at, limit.since(at)) {
            return Some(offset);
        }
        offset += 1;
    }
    None
}

/// Whether a valid mtr may start at the front of `here` (the stream from `at` on, `room` bytes
/// before the limit): false only when its bytes rule it out, as [`Scanner::probe`] would find
/// (header, range, first record kind, end marker); `probe` decides the rest. Cheap enough to
/// run on every byte of the probe window: the header integers are read from 8-byte words
/// without a branch per byte, and the end marker, which rejects all but about one random
/// candidate in 256, is checked first.
fn may_start(here: &[u8], at: Lsn, room: u64) -> bool {
    let Some(&head) = here.first_chunk::<16>() else {
        return true; // at the limit: too few bytes to screen
    };
    // Shifts rather than slices: this runs for every byte of the window.
    let head = u128::from_le_bytes(head);
    let word = |from: usize| (head >> (8 * from)) as u64;
    let (body_len, body_len_bytes) = leb128_in_word(word(0));
    let (durable_back, durable_back_bytes) = leb128_in_word(word(body_len_bytes.min(8)));
    if durable_back_bytes > 8 {
        // A `durable_back` this long is at least 2^56 (if minimal), which it can be only that
        // far into the stream: then leave the rest to `probe`.
        return body_len_bytes <= 4 && at.0 >= 1 << 56;
    }
    // Where a header with these lengths puts the end marker. A header the word reading gets
    // wrong (too long or not minimal) is invalid anyway.
    let body_at = body_len_bytes + durable_back_bytes;
    let marker_at = (body_at as u64).saturating_add(body_len);
    if usize::try_from(marker_at).ok().and_then(|at| here.get(at)).is_some_and(|&marker| marker != END_MARKER) {
        return false;
    }
    // A `body_len` of at most 4 MiB takes at most 4 bytes, and `body_at` is then at most 12.
    body_len_bytes <= 4
        && (1..=MAX_MTR_BODY_BYTES as u64).contains(&body_len)
        && durable_back <= at.0
        && (body_at + TRAILER_BYTES) as u64 + body_len <= room
        && (head >> (8 * body_at)) as u8 >= FIRST_ENGINE_KIND
}

/// Reads a LEB128 integer from the low bytes of `word`: its value and its length in bytes,
/// which is 9 when none of the eight bytes ends it (the value then holds all eight groups).
/// Not checked for minimality.
fn leb128_in_word(word: u64) -> (u64, usize) {
    // The bytes up to and including the first without the continuation bit.
    let ends = !word & 0x8080_8080_8080_8080;
    let len = ends.trailing_zeros() as usize / 8 + 1;
    let lowest_end = ends & ends.wrapping_neg();
    let through = lowest_end | lowest_end.wrapping_sub(1);
    // Gather the 7-bit groups: pairs into 14 bits, then 28, then 56.
    let mut value = word & through & 0x7f7f_7f7f_7f7f_7f7f;
    value = (value & 0x007f_007f_007f_007f) | ((value & 0x7f00_7f00_7f00_7f00) >> 1);
    value = (value & 0x0000_3fff_0000_3fff) | ((value & 0x3fff_0000_3fff_0000) >> 2);
    value = (value & 0x0000_0000_0fff_ffff) | ((value & 0x0fff_ffff_0000_0000) >> 4);
    (value, len)
}

/// How many bytes at the front of `bytes` are zero.
fn zero_run(bytes: &[u8]) -> usize {
    // Whole blocks first, each OR-ed together without a branch per byte: vector code, which
    // stays cheap in coverage-instrumented builds (the fuzz targets) too.
    let (blocks, _) = bytes.as_chunks::<64>();
    let whole = blocks.iter().take_while(|block| block.iter().fold(0, |any, byte| any | byte) == 0).count() * 64;
    whole + bytes[whole..].iter().take_while(|&&byte| byte == 0).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::varint;

    /// `leb128_in_word` agrees with `varint::get` on every integer that ends within a word,
    /// minimal or not, whatever bytes follow it.
    #[test]
    fn leb128_in_word_matches_varint_get() {
        let mut seed = 0x1234_5678_9abc_def0_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200_000 {
            let mut bytes = next().to_le_bytes();
            // Make every length from 1 to 9 (9: no byte ends the integer) common.
            let len = round % 9;
            for (index, byte) in bytes.iter_mut().enumerate() {
                if index < len {
                    *byte |= 0x80;
                } else if index == len {
                    *byte &= 0x7f;
                }
            }
            let (value, used) = leb128_in_word(u64::from_le_bytes(bytes));
            assert_eq!(used, len + 1, "{bytes:02x?}");
            let groups = bytes.iter().take(used.min(8)).enumerate();
            let expected = groups.fold(0u64, |value, (index, byte)| value | (u64::from(byte & 0x7f) << (7 * index)));
            assert_eq!(value, expected, "{bytes:02x?}");
            if let Some((decoded, decoded_len)) = varint::get(&bytes) {
                assert_eq!((value, used), (decoded, decoded_len), "{bytes:02x?}");
            }
        }
    }
}
