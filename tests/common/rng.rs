//! The tests' pseudo-random numbers: SplitMix64, small, fast and deterministic, so that a seed
//! names one exact run (the child and the parent of a child-process test derive the same batches
//! from it).

/// SplitMix64; the state is the seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// A number in `low..=high_inclusive`.
    pub fn range(&mut self, low: usize, high_inclusive: usize) -> usize {
        low + self.below((high_inclusive - low + 1) as u64) as usize
    }

    /// Fills `buf`: one draw per whole 8 bytes, then one more for the rest (even when empty).
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let word = self.next().to_le_bytes();
        rest.copy_from_slice(&word[..rest.len()]);
    }

    /// `len` random bytes: one draw per 8 bytes begun (not the same draws as [`Rng::fill`]).
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}
