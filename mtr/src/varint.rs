//! LEB128 variable-length unsigned integers, as used in record and mtr framing.
//!
//! Seven bits a byte, least significant group first, high bit set on every byte but the last.
//! Decoding rejects encodings longer than the type allows and non-minimal encodings (a trailing
//! zero group), so every value has exactly one encoding and a CRC over it means one thing.

/// Longest encoding of a `u64`.
pub const MAX_LEN_U64: usize = 10;

/// Appends the encoding of `value` to `out`.
pub fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Writes the encoding of `value` into `out`; returns the bytes used.
pub fn encode(out: &mut [u8; MAX_LEN_U64], mut value: u64) -> usize {
    let mut used = 0;
    while value >= 0x80 {
        out[used] = (value as u8) | 0x80;
        value >>= 7;
        used += 1;
    }
    out[used] = value as u8;
    used + 1
}

/// Bytes the encoding of `value` takes.
#[must_use]
pub fn len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Decodes a value from the front of `bytes`: `(value, bytes used)`, or `None` if the bytes end
/// first, the value overflows a `u64`, or the encoding is not minimal.
#[must_use]
pub fn get(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (index, &byte) in bytes.iter().enumerate().take(MAX_LEN_U64) {
        let group = u64::from(byte & 0x7f);
        let shift = 7 * index as u32;
        if index == MAX_LEN_U64 - 1 && group > 1 {
            return None; // would overflow 64 bits
        }
        value |= group << shift;
        if byte & 0x80 == 0 {
            if byte == 0 && index > 0 {
                return None; // non-minimal: a trailing zero group
            }
            return Some((value, index + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_edges() {
        for value in [0, 1, 127, 128, 16383, 16384, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put(&mut out, value);
            assert_eq!(out.len(), len(value), "len of {value}");
            assert_eq!(get(&out), Some((value, out.len())));
            let mut fixed = [0u8; MAX_LEN_U64];
            let used = encode(&mut fixed, value);
            assert_eq!(&fixed[..used], &out[..]);
        }
    }

    #[test]
    fn rejects_truncated_overlong_and_non_minimal() {
        assert_eq!(get(&[]), None);
        assert_eq!(get(&[0x80]), None);
        assert_eq!(get(&[0x80, 0x00]), None); // non-minimal zero
        assert_eq!(get(&[0xff; 11]), None);
        assert_eq!(get(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]), None);
    }
}
