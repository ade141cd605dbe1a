//! Reading a fuzz input as a sequence of fixed-size little-endian fields, and writing one (for
//! the seed encoders).
//!
//! A [`Reader`] never fails: once the input is exhausted every field reads as zero and every
//! byte run as empty, so any input decodes to some test case and a short input to a small one.

/// Reads fields from the front of a fuzz input.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `data`.
    #[must_use]
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    /// Whether every byte has been read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Bytes not yet read.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.data.len()
    }

    /// The next `len` bytes (fewer if the input ends first).
    pub fn bytes(&mut self, len: usize) -> &'a [u8] {
        let take = len.min(self.data.len());
        let (head, tail) = self.data.split_at(take);
        self.data = tail;
        head
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    fn fixed<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let bytes = self.bytes(N);
        out[..bytes.len()].copy_from_slice(bytes);
        out
    }

    /// A byte.
    pub fn u8(&mut self) -> u8 {
        self.fixed::<1>()[0]
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.fixed())
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.fixed())
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.fixed())
    }

    /// A bool (the low bit of a byte).
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A byte run with a `u16` length prefix, at most `max` bytes long.
    pub fn blob(&mut self, max: usize) -> &'a [u8] {
        let len = self.u16() as usize;
        self.bytes(len.min(max))
    }
}

/// Writes fields in the layout a [`Reader`] reads (for seed inputs).
#[derive(Clone, Debug, Default)]
pub struct Writer {
    /// The input so far.
    pub out: Vec<u8>,
}

impl Writer {
    /// An empty input.
    #[must_use]
    pub fn new() -> Writer {
        Writer::default()
    }

    /// A byte.
    pub fn u8(&mut self, value: u8) -> &mut Writer {
        self.out.push(value);
        self
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, value: u16) -> &mut Writer {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, value: u32) -> &mut Writer {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, value: u64) -> &mut Writer {
        self.out.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A bool.
    pub fn bool(&mut self, value: bool) -> &mut Writer {
        self.u8(u8::from(value))
    }

    /// Raw bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Writer {
        self.out.extend_from_slice(bytes);
        self
    }

    /// A byte run with a `u16` length prefix.
    pub fn blob(&mut self, bytes: &[u8]) -> &mut Writer {
        let len = u16::try_from(bytes.len()).expect("seed blob longer than 64 KiB");
        self.u16(len).bytes(bytes)
    }

    /// The finished input.
    #[must_use]
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_zeros_after_the_end() {
        let data = Writer::new().u8(7).u16(300).u32(70_000).u64(u64::MAX).blob(b"abc").finish();
        let mut reader = Reader::new(&data);
        assert_eq!(reader.u8(), 7);
        assert_eq!(reader.u16(), 300);
        assert_eq!(reader.u32(), 70_000);
        assert_eq!(reader.u64(), u64::MAX);
        assert_eq!(reader.blob(10), b"abc");
        assert!(reader.is_empty());
        assert_eq!(reader.u32(), 0);
        assert_eq!(reader.blob(10), b"");
    }
}
