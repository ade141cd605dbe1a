//! Record and mini-transaction framing: how one mtr is laid out in the redo stream, and exactly
//! when a run of bytes counts as a valid mtr.
//!
//! # Record
//!
//! | size      | field        | meaning                                                        |
//! |-----------|--------------|----------------------------------------------------------------|
//! | 1         | `kind`       | 16..=255, defined by the engine. 0 is the end marker; 1..=15 are reserved for this crate (none is defined yet, so they are invalid) |
//! | 1..=10    | `page_id`    | LEB128 `u64`: the page the record changes                      |
//! | 1..=5     | `payload_len`| LEB128 `u32`                                                   |
//! | payload_len | `payload`  | the change, opaque to this crate                               |
//!
//! # Mini-transaction (mtr) at LSN `L`
//!
//! | size       | field          | meaning                                                      |
//! |------------|----------------|--------------------------------------------------------------|
//! | 1..=5      | `body_len`     | LEB128 `u32`: bytes of records, 1..=[`MAX_MTR_BODY_BYTES`]   |
//! | 1..=10     | `durable_back` | LEB128 `u64`: `L - D`, where `D` is the LSN up to which the log was known to be durable when this mtr was appended (so `D <= L`) |
//! | `body_len` | records        | one or more records, filling the body exactly                |
//! | 1          | end marker     | `0x00`                                                       |
//! | 1          | `flags`        | the appender's byte, passed through uninterpreted            |
//! | 4          | `crc`          | CRC-32C, little-endian, see below                            |
//!
//! The CRC-32C (Castagnoli) covers, in this order: the records; the encoded `body_len` and
//! `durable_back`; the end marker and `flags`; and finally `L` itself as 8 little-endian bytes,
//! which are not stored. Covering `L` binds an mtr to its place in the stream: bytes left from an
//! earlier lap of the circular file were written at `L - k * capacity`, and bytes from a discarded
//! tail of an earlier run lie behind the lap the log resumes at, so neither can verify as a
//! current mtr (the role MariaDB's wrap sequence bit and SQLite's WAL salts play).
//!
//! # Validity
//!
//! The bytes at `L` are a **valid mtr** if and only if: both header integers decode minimally;
//! `1 <= body_len <= MAX_MTR_BODY_BYTES`; `durable_back <= L`; the whole frame lies before the
//! scan limit; the records decode with allowed kinds and fill the body exactly; the end marker is
//! `0x00`; and the CRC matches. Anything else is not an mtr, and a scan stops there.
//!
//! `durable_back` is what lets a scan tell a torn tail from corruption: if a valid mtr found
//! beyond a bad one says the log was already durable past the bad one's start, the bad bytes had
//! been synced, and their loss is corruption, not a crash.

use crate::lsn::Lsn;
use crate::varint;

/// The byte that closes the records of an mtr. No record kind may equal it.
pub const END_MARKER: u8 = 0x00;
/// The smallest record kind the engine may use; smaller ones belong to this crate.
pub const FIRST_ENGINE_KIND: u8 = 16;
/// The largest body (records) one mtr may have.
pub const MAX_MTR_BODY_BYTES: usize = 4 << 20;
/// Bytes after the body: end marker, flags, CRC.
pub const TRAILER_BYTES: usize = 1 + 1 + 4;
/// The longest header: `body_len` (5) + `durable_back` (10).
pub const MAX_HEADER_BYTES: usize = 5 + varint::MAX_LEN_U64;

/// One record, borrowed from an mtr body.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The engine's record kind (>= [`FIRST_ENGINE_KIND`]).
    pub kind: u8,
    /// The page the record changes.
    pub page_id: u64,
    /// The change, in the engine's encoding.
    pub payload: &'a [u8],
}

/// The records of an mtr under construction. Build one, [`crate::Log::append`] it, [`MtrBuf::clear`]
/// it, and build the next: the buffer keeps its allocation.
#[derive(Clone, Debug, Default)]
pub struct MtrBuf {
    body: Vec<u8>,
    record_count: usize,
}

impl MtrBuf {
    /// An empty mtr.
    #[must_use]
    pub fn new() -> MtrBuf {
        MtrBuf::default()
    }

    /// Appends a record whose payload is already in a slice.
    pub fn push(&mut self, kind: u8, page_id: u64, payload: &[u8]) {
        self.push_with(kind, page_id, |out| out.extend_from_slice(payload));
    }

    /// Appends a record whose payload `write_payload` appends to the given vector, without an
    /// intermediate buffer. Returns the payload's bytes as written.
    ///
    /// # Panics
    /// If `kind` is not an engine kind or the payload exceeds `u32::MAX` bytes: both are
    /// programming errors of the caller, caught before any byte reaches the log.
    pub fn push_with(&mut self, kind: u8, page_id: u64, write_payload: impl FnOnce(&mut Vec<u8>)) -> &[u8] {
        assert!(kind >= FIRST_ENGINE_KIND, "record kind {kind} is reserved by the mtr crate");
        self.body.push(kind);
        varint::put(&mut self.body, page_id);
        // Reserve a one-byte length, write the payload, then widen the length in place if the
        // payload turned out longer than 127 bytes (a shift of at most four bytes' distance).
        let len_at = self.body.len();
        self.body.push(0);
        let payload_at = self.body.len();
        write_payload(&mut self.body);
        let payload_len = self.body.len() - payload_at;
        assert!(u32::try_from(payload_len).is_ok(), "record payload over 4 GiB");
        let mut len_bytes = [0u8; varint::MAX_LEN_U64];
        let len_len = varint::encode(&mut len_bytes, payload_len as u64);
        if len_len > 1 {
            let extra = len_len - 1;
            self.body.resize(self.body.len() + extra, 0);
            self.body.copy_within(payload_at..payload_at + payload_len, payload_at + extra);
        }
        self.body[len_at..len_at + len_len].copy_from_slice(&len_bytes[..len_len]);
        self.record_count += 1;
        let start = self.body.len() - payload_len;
        &self.body[start..]
    }

    /// Forgets every record, keeping the allocation.
    pub fn clear(&mut self) {
        self.body.clear();
        self.record_count = 0;
    }

    /// Whether no record has been pushed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Records pushed so far.
    #[must_use]
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// The encoded records.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The records, decoded again.
    pub fn records(&self) -> RecordIter<'_> {
        RecordIter { rest: &self.body }
    }
}

/// Iterates the records of a body that [`validate_body`] accepted (or that [`MtrBuf`] built).
/// On malformed bytes it stops early rather than panic.
#[derive(Clone, Debug)]
pub struct RecordIter<'a> {
    rest: &'a [u8],
}

impl<'a> RecordIter<'a> {
    /// Iterates the records in `body`.
    #[must_use]
    pub fn new(body: &'a [u8]) -> RecordIter<'a> {
        RecordIter { rest: body }
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        let (record, used) = decode_record(self.rest)?;
        self.rest = self.rest.get(used..)?;
        Some(record)
    }
}

fn decode_record(bytes: &[u8]) -> Option<(Record<'_>, usize)> {
    let kind = *bytes.first()?;
    if kind < FIRST_ENGINE_KIND {
        return None;
    }
    let mut at = 1;
    let (page_id, used) = varint::get(bytes.get(at..)?)?;
    at += used;
    let (payload_len, used) = varint::get(bytes.get(at..)?)?;
    at += used;
    let payload_len = usize::try_from(u32::try_from(payload_len).ok()?).ok()?;
    let payload = bytes.get(at..at.checked_add(payload_len)?)?;
    Some((Record { kind, page_id, payload }, at + payload_len))
}

/// Whether `body` is one or more well-formed records filling it exactly.
#[must_use]
pub fn validate_body(body: &[u8]) -> bool {
    let mut rest = body;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        match decode_record(rest) {
            Some((_, used)) => rest = &rest[used..],
            None => return false,
        }
    }
    true
}

/// Encodes the frame of an mtr starting at `lsn` into `out`; returns the frame's length.
/// `durable_lsn` is the LSN up to which the log is known durable (clamped to `lsn`).
pub(crate) fn encode_frame(
    out: &mut Vec<u8>,
    lsn: Lsn,
    durable_lsn: Lsn,
    body: &[u8],
    body_crc: u32,
    flags: u8,
) -> usize {
    let start = out.len();
    varint::put(out, body.len() as u64);
    varint::put(out, lsn.since(durable_lsn.min(lsn)));
    let header_end = out.len();
    out.extend_from_slice(body);
    out.push(END_MARKER);
    out.push(flags);
    let mut crc = crc32c::crc32c_append(body_crc, &out[start..header_end]);
    crc = crc32c::crc32c_append(crc, &[END_MARKER, flags]);
    crc = crc32c::crc32c_append(crc, &lsn.0.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// The fixed-size prefix of a frame: what a scanner reads first to learn the frame's length.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes of records.
    pub body_len: usize,
    /// `L - D` (see the module doc).
    pub durable_back: u64,
    /// Bytes the two header integers take.
    pub header_len: usize,
}

impl FrameHeader {
    /// The whole frame's length: header, body, trailer.
    #[must_use]
    pub fn frame_len(&self) -> usize {
        self.header_len + self.body_len + TRAILER_BYTES
    }
}

/// Decodes a frame header at `lsn` from `bytes`, applying every check that needs no more bytes.
#[must_use]
pub fn decode_header(bytes: &[u8], lsn: Lsn) -> Option<FrameHeader> {
    let (body_len, used_len) = varint::get(bytes)?;
    if body_len == 0 || body_len > MAX_MTR_BODY_BYTES as u64 {
        return None;
    }
    let (durable_back, used_back) = varint::get(bytes.get(used_len..)?)?;
    if durable_back > lsn.0 {
        return None;
    }
    Some(FrameHeader { body_len: body_len as usize, durable_back, header_len: used_len + used_back })
}

/// A verified mtr frame, borrowed from the bytes it was found in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Where the frame starts.
    pub start_lsn: Lsn,
    /// Where the next frame starts.
    pub end_lsn: Lsn,
    /// The log was durable up to here when the mtr was appended.
    pub durable_lsn: Lsn,
    /// The appender's flags byte.
    pub flags: u8,
    /// The records.
    pub body: &'a [u8],
}

/// Checks whether `frame` (exactly `header.frame_len()` bytes) is a valid mtr at `lsn`.
#[must_use]
pub fn verify_frame(frame: &[u8], header: FrameHeader, lsn: Lsn) -> Option<Frame<'_>> {
    if frame.len() != header.frame_len() {
        return None;
    }
    let body_end = header.header_len + header.body_len;
    let body = &frame[header.header_len..body_end];
    let trailer = &frame[body_end..];
    if trailer[0] != END_MARKER {
        return None;
    }
    // The record walk first: on random bytes it fails within a few records, while the CRC
    // always costs the whole body (a scan probes many such candidates past a torn tail).
    if !validate_body(body) {
        return None;
    }
    let flags = trailer[1];
    let stored_crc = u32::from_le_bytes([trailer[2], trailer[3], trailer[4], trailer[5]]);
    let mut crc = crc32c::crc32c(body);
    crc = crc32c::crc32c_append(crc, &frame[..header.header_len]);
    crc = crc32c::crc32c_append(crc, &trailer[..2]);
    crc = crc32c::crc32c_append(crc, &lsn.0.to_le_bytes());
    if crc != stored_crc {
        return None;
    }
    Some(Frame {
        start_lsn: lsn,
        end_lsn: lsn.add(frame.len() as u64),
        durable_lsn: Lsn(lsn.0 - header.durable_back),
        flags,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(lsn: Lsn, buf: &MtrBuf, flags: u8) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, lsn, lsn, buf.body(), crc32c::crc32c(buf.body()), flags);
        out
    }

    #[test]
    fn push_with_long_payload_widens_length() {
        let mut buf = MtrBuf::new();
        buf.push(20, 7, &[1, 2, 3]);
        let long: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        buf.push_with(21, u64::MAX, |out| out.extend_from_slice(&long));
        let records: Vec<_> = buf.records().collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0], Record { kind: 20, page_id: 7, payload: &[1, 2, 3] });
        assert_eq!(records[1].payload, &long[..]);
        assert!(validate_body(buf.body()));
    }

    #[test]
    fn frame_verifies_only_at_its_own_lsn() {
        let mut buf = MtrBuf::new();
        buf.push(30, 1, b"hello");
        let lsn = Lsn(1 << 20);
        let bytes = frame_of(lsn, &buf, 1);
        let header = decode_header(&bytes, lsn).unwrap();
        let frame = verify_frame(&bytes, header, lsn).unwrap();
        assert_eq!(frame.flags, 1);
        assert_eq!(frame.end_lsn, lsn.add(bytes.len() as u64));
        let earlier_lap = Lsn(lsn.0 - 4096);
        let header = decode_header(&bytes, earlier_lap).unwrap();
        assert!(verify_frame(&bytes, header, earlier_lap).is_none());
    }

    #[test]
    #[should_panic(expected = "reserved")]
    fn reserved_kind_is_refused() {
        MtrBuf::new().push(3, 0, &[]);
    }
}
