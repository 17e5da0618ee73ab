//! Q8_0 with eight rows interleaved: the layout a Q8_0 matrix is repacked to at load so that a
//! kernel holds eight rows in the lanes of one vector (see [`super::q4_k_x8`] for the matrix
//! arrangement, which is the same). Lane l of ggml's Q8_0 kernels (the 8-lane integer sum)
//! covers values 4l..4l + 4 of a block, so the bytes are grouped by lane:
//!
//! - `d`: the eight rows' f16 scales, row r at index r;
//! - `qs`: 32 bytes per lane l (0..8): row r's `qs[4l .. 4l + 4]` at 4r.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::BlockQ8_0;

pub use super::INTERLEAVED_ROWS as ROWS;

/// One block (32 values) of eight Q8_0 rows, interleaved. 272 bytes, the size of eight
/// [`BlockQ8_0`]s.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0x8 {
    /// Each row's scale.
    pub d: [f16; ROWS],
    /// The quants, four bytes of each row at a time (see the module doc).
    pub qs: [i8; 32 * ROWS],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0x8>() == ROWS * 34);

/// Interleave one block of eight rows.
pub fn interleave(rows: [&BlockQ8_0; ROWS]) -> BlockQ8_0x8 {
    let mut out = BlockQ8_0x8::zeroed();
    for (r, b) in rows.iter().enumerate() {
        out.d[r] = b.d;
        for l in 0..8 {
            out.qs[32 * l + 4 * r..32 * l + 4 * r + 4].copy_from_slice(&b.qs[4 * l..4 * l + 4]);
        }
    }
    out
}

/// Row `r` of an interleaved block (the inverse of [`interleave`]).
pub fn row_of(x: &BlockQ8_0x8, r: usize) -> BlockQ8_0 {
    let mut b = BlockQ8_0 {
        d: x.d[r],
        ..BlockQ8_0::default()
    };
    for l in 0..8 {
        b.qs[4 * l..4 * l + 4].copy_from_slice(&x.qs[32 * l + 4 * r..32 * l + 4 * r + 4]);
    }
    b
}

/// Interleave one group of eight rows of `nb` blocks each (`src`: the rows one after another)
/// into `out` (`nb` blocks).
pub fn interleave_group(src: &[BlockQ8_0], nb: usize, out: &mut [BlockQ8_0x8]) {
    super::interleave_group(src, nb, out, interleave);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_and_row_of_are_inverse() {
        let (rows, x) = crate::testutil::interleave_round_trip(8, interleave, row_of);
        // Value 4·5 + 2 = 22 of row 6: byte 32·5 + 4·6 + 2.
        assert_eq!(x.qs[186], rows[6].qs[22]);
    }
}
