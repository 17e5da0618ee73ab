//! Q4_K with eight rows interleaved: the layout a Q4_K matrix is repacked to at load so that a
//! kernel holds eight rows in the lanes of one vector (as llama.cpp's `block_q4_Kx8`, with our
//! own arrangement). The same bytes as eight [`BlockQ4K`]s, rearranged:
//!
//! - `d`, `dmin`: the eight rows' f16 scales, row r at index r;
//! - `scales`: the eight rows' 12 scale bytes as three 32-byte words — bytes 0..4 of every row
//!   (row r at 4r), then bytes 4..8, then 8..12 — so the unpacking of
//!   [`super::kquant_util::unpack_scale_min_k4`] runs on all eight rows at once in 32-bit lanes;
//! - `qs`: per 64-value chunk c and group g of four bytes, the eight rows' bytes
//!   `qs[32c + 4g .. 32c + 4g + 4]` side by side (row r at 4r): one 32-byte load holds values
//!   64c + 4g .. +4 (low nibbles) and 64c + 32 + 4g .. +4 (high nibbles) of every row.
//!
//! A repacked matrix keeps the row-major byte size: row group k (rows 8k..8k + 8) is its `nb`
//! super-blocks of [`BlockQ4Kx8`] in order, starting where row 8k started; rows past the last
//! whole group stay as they were.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::{BlockQ4K, QK_K};

pub use super::INTERLEAVED_ROWS as ROWS;

/// One super-block (256 values) of eight Q4_K rows, interleaved. 1152 bytes, the size of eight
/// [`BlockQ4K`]s.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4Kx8 {
    /// Each row's super-block scale of the scales.
    pub d: [f16; ROWS],
    /// Each row's super-block scale of the mins.
    pub dmin: [f16; ROWS],
    /// The rows' packed scale bytes, word by word (see the module doc).
    pub scales: [u8; 12 * ROWS],
    /// The rows' nibbles, four bytes of each row at a time (see the module doc).
    pub qs: [u8; QK_K / 2 * ROWS],
}
const _: () = assert!(std::mem::size_of::<BlockQ4Kx8>() == ROWS * 144);

/// Interleave super-block `i` of eight rows.
pub fn interleave(rows: [&BlockQ4K; ROWS]) -> BlockQ4Kx8 {
    let mut out = BlockQ4Kx8::zeroed();
    for (r, b) in rows.iter().enumerate() {
        out.d[r] = b.d;
        out.dmin[r] = b.dmin;
        for word in 0..3 {
            let at = word * 4 * ROWS + 4 * r;
            out.scales[at..at + 4].copy_from_slice(&b.scales[4 * word..4 * word + 4]);
        }
        for (k, four) in b.qs.chunks_exact(4).enumerate() {
            // k = 8c + g: chunk c, group g.
            let at = k * 4 * ROWS + 4 * r;
            out.qs[at..at + 4].copy_from_slice(four);
        }
    }
    out
}

/// Row `r` of an interleaved super-block (the inverse of [`interleave`]).
pub fn row_of(x: &BlockQ4Kx8, r: usize) -> BlockQ4K {
    let mut b = BlockQ4K::zeroed();
    b.d = x.d[r];
    b.dmin = x.dmin[r];
    for word in 0..3 {
        let at = word * 4 * ROWS + 4 * r;
        b.scales[4 * word..4 * word + 4].copy_from_slice(&x.scales[at..at + 4]);
    }
    for (k, four) in b.qs.chunks_exact_mut(4).enumerate() {
        let at = k * 4 * ROWS + 4 * r;
        four.copy_from_slice(&x.qs[at..at + 4]);
    }
    b
}

/// Interleave one group of eight rows of `nb` blocks each (`src`: the rows one after another)
/// into `out` (`nb` blocks).
pub fn interleave_group(src: &[BlockQ4K], nb: usize, out: &mut [BlockQ4Kx8]) {
    super::interleave_group(src, nb, out, interleave);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_and_row_of_are_inverse() {
        let (rows, x) = crate::testutil::interleave_round_trip(5, interleave, row_of);
        // Chunk 1, group 2 of row 3: bytes 32 + 8 .. 32 + 12.
        let at = (8 + 2) * 32 + 4 * 3;
        assert_eq!(x.qs[at..at + 4], rows[3].qs[40..44]);
    }
}
