//! Q5_0 with eight rows interleaved: the layout a Q5_0 matrix is repacked to at load so that a
//! kernel holds eight rows in the lanes of one vector (see [`super::q4_k_x8`] for the matrix
//! arrangement, which is the same). Lane l of ggml's Q5_0 kernels (the 8-lane integer sum)
//! covers values 4l..4l + 4 of a block, so the bytes are grouped by lane:
//!
//! - `d`: the eight rows' f16 scales, row r at index r;
//! - `qh`: byte 4r + k holds, in bit l, the fifth bit of value 4l + k of row r (for the eight
//!   lanes l): one AND and compare give lane l's fifth bits of every row;
//! - `qs`: 32 bytes per group g (0..4): row r's `qs[4g .. 4g + 4]` at 4r, whose low nibbles
//!   are values 4g..4g + 4 (lane g) and high nibbles values 16 + 4g.. (lane g + 4).

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::BlockQ5_0;

pub use super::INTERLEAVED_ROWS as ROWS;

/// One block (32 values) of eight Q5_0 rows, interleaved. 176 bytes, the size of eight
/// [`BlockQ5_0`]s.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0x8 {
    /// Each row's scale.
    pub d: [f16; ROWS],
    /// The fifth bits, by lane (see the module doc).
    pub qh: [u8; 4 * ROWS],
    /// The nibbles, four bytes of each row at a time (see the module doc).
    pub qs: [u8; 16 * ROWS],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0x8>() == ROWS * 22);

/// Interleave one block of eight rows.
pub fn interleave(rows: [&BlockQ5_0; ROWS]) -> BlockQ5_0x8 {
    let mut out = BlockQ5_0x8::zeroed();
    for (r, b) in rows.iter().enumerate() {
        out.d[r] = b.d;
        let qh = u32::from_le_bytes(b.qh);
        for k in 0..4 {
            out.qh[4 * r + k] =
                (0..8).fold(0u8, |acc, l| acc | ((((qh >> (4 * l + k)) & 1) as u8) << l));
        }
        for g in 0..4 {
            out.qs[32 * g + 4 * r..32 * g + 4 * r + 4].copy_from_slice(&b.qs[4 * g..4 * g + 4]);
        }
    }
    out
}

/// Row `r` of an interleaved block (the inverse of [`interleave`]).
pub fn row_of(x: &BlockQ5_0x8, r: usize) -> BlockQ5_0 {
    let mut b = BlockQ5_0 {
        d: x.d[r],
        ..BlockQ5_0::default()
    };
    let mut qh = 0u32;
    for k in 0..4 {
        for l in 0..8 {
            qh |= (((x.qh[4 * r + k] >> l) & 1) as u32) << (4 * l + k);
        }
    }
    b.qh = qh.to_le_bytes();
    for g in 0..4 {
        b.qs[4 * g..4 * g + 4].copy_from_slice(&x.qs[32 * g + 4 * r..32 * g + 4 * r + 4]);
    }
    b
}

/// Interleave one group of eight rows of `nb` blocks each (`src`: the rows one after another)
/// into `out` (`nb` blocks).
pub fn interleave_group(src: &[BlockQ5_0], nb: usize, out: &mut [BlockQ5_0x8]) {
    super::interleave_group(src, nb, out, interleave);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_and_row_of_are_inverse() {
        let (rows, x) = crate::testutil::interleave_round_trip(5, interleave, row_of);
        // Value 4·5 + 2 = 22 of row 6: bit 5 of byte 4·6 + 2.
        let qh = u32::from_le_bytes(rows[6].qh);
        assert_eq!((x.qh[26] >> 5) & 1, ((qh >> 22) & 1) as u8);
    }
}
