//! Q6_K unpacked for sixteen rows at a time: the form a matmul of a large batch decodes a tile
//! of sixteen row-major Q6_K rows into once (in a per-thread buffer, not at load: the matrix
//! itself stays as the file has it), so that a kernel then holds one quant of four values of
//! each of the sixteen rows in the lanes of one 512-bit vector for every token of the batch,
//! with no bit-unpacking left in its loop.
//!
//! Per super-block, [`BlockQ6Kx16`]:
//! - `qs`: the 256 quants of each row as unsigned bytes (0..=63, the offset 32 not removed),
//!   four values at a time: values 4g..4g + 4 of row r at `64g + 4r`;
//! - `scales`: the sixteen sub-block scales, scale j of row r at `16j + r`;
//! - `d`: each row's super-block scale as f32.
//!
//! 4416 bytes, against 16 × 210 for the packed rows.

use bytemuck::{Pod, Zeroable};

use super::{BlockQ6K, QK_K};

/// Rows per unpacked tile.
pub const ROWS: usize = 16;

/// One super-block of sixteen Q6_K rows, unpacked (see the module doc).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6Kx16 {
    /// The rows' unsigned quants, four values of each row side by side.
    pub qs: [u8; QK_K * ROWS],
    /// The rows' sub-block scales, sub-block by sub-block.
    pub scales: [i8; QK_K / 16 * ROWS],
    /// The rows' super-block scales.
    pub d: [f32; ROWS],
}
const _: () = assert!(std::mem::size_of::<BlockQ6Kx16>() == 4416);

/// The 256 unsigned quants (0..=63) of a super-block in value order.
pub fn unsigned_quants(b: &BlockQ6K) -> [u8; QK_K] {
    super::q6_k::unpack(b).map(|q| (q + 32) as u8)
}

/// Unpack super-block `i` of sixteen rows (`rows[r]`) into `out`: the scalar reference of the
/// per-ISA unpackers.
pub fn unpack(rows: [&BlockQ6K; ROWS], out: &mut BlockQ6Kx16) {
    for (r, b) in rows.iter().enumerate() {
        let q = unsigned_quants(b);
        for (g, four) in q.chunks_exact(4).enumerate() {
            out.qs[64 * g + 4 * r..64 * g + 4 * r + 4].copy_from_slice(four);
        }
        for (j, &s) in b.scales.iter().enumerate() {
            out.scales[ROWS * j + r] = s;
        }
        out.d[r] = b.d.to_f32();
    }
}

/// Unpack sixteen rows of `nb` super-blocks each (`src`: the rows one after another) into `out`
/// (`nb` blocks) with the scalar [`unpack`].
pub fn unpack_rows(src: &[BlockQ6K], nb: usize, out: &mut [BlockQ6Kx16]) {
    unpack_rows_with(src, nb, out, unpack);
}

/// [`unpack_rows`] with super-block `i` of the rows unpacked by `unpack_block` (a per-ISA
/// version of [`unpack`]).
#[inline]
pub fn unpack_rows_with(
    src: &[BlockQ6K],
    nb: usize,
    out: &mut [BlockQ6Kx16],
    unpack_block: impl Fn([&BlockQ6K; ROWS], &mut BlockQ6Kx16),
) {
    assert!(src.len() == ROWS * nb && out.len() == nb);
    for (i, o) in out.iter_mut().enumerate() {
        let mut rows = [&src[i]; ROWS];
        for (r, row) in rows.iter_mut().enumerate() {
            *row = &src[r * nb + i];
        }
        unpack_block(rows, o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{random_blocks, Rng};

    #[test]
    fn unpacked_quants_and_scales_are_the_rows_own() {
        let rows: Vec<BlockQ6K> = random_blocks(&mut Rng::new(3), ROWS);
        let mut x = BlockQ6Kx16::zeroed();
        unpack(std::array::from_fn(|r| &rows[r]), &mut x);
        for (r, b) in rows.iter().enumerate() {
            let q = unsigned_quants(b);
            for v in 0..QK_K {
                assert_eq!(
                    x.qs[64 * (v / 4) + 4 * r + v % 4],
                    q[v],
                    "row {r} value {v}"
                );
            }
            for j in 0..16 {
                assert_eq!(x.scales[16 * j + r], b.scales[j]);
            }
            assert_eq!(x.d[r].to_bits(), b.d.to_f32().to_bits());
        }
        // Value 5 of row 3 (low nibble of ql[5], bits 0-1 of qh[5]).
        let b = &rows[3];
        assert_eq!(x.qs[64 + 12 + 1], (b.ql[5] & 15) | ((b.qh[5] & 3) << 4));
    }
}
