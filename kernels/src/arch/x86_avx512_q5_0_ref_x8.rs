//! x86-64 AVX-512 kernels of interleaved Q5_0 ([`BlockQ5_0x8`]) in the scalar reference's
//! order, for batch-invariant matmuls: each block's sum Σ q·a of a row is formed exactly in one
//! i32 lane, then the row's float accumulator takes `sum + isum·(d_w·d_a)` as
//! `quant::q5_0::vec_dot` does, so the results are the reference's bits.
//!
//! ggml's order, which the default kernels (`x86_avx512_int8_x8`) keep so that decode matches
//! llama.cpp, converts and multiply-adds eight partial sums per row and block: three
//! operations per lane pair and token on top of the multiply-add. Here a block costs eight
//! `vpdpbusd` per token (one per lane of four values, eight rows each) plus one conversion,
//! two multiplies and one add for the eight rows: about half. A server, which wants a token's
//! logits not to depend on its batch but has no use for llama.cpp's rounding, takes these
//! (`MatmulScratch::set_batch_invariant`); alone or batched, a token then gets these bits.
//!
//! The quants go into `vpdpbusd`'s unsigned operand as u = q + 16 (the nibble, plus 16 where
//! the fifth bit is set), the activations signed, and each sum starts from −16·Σa.
//!
//! Same safety contract as `x86_avx512`: reachable only through the AVX-512 table.

use std::arch::x86_64::*;

use super::x86_avx2::{hsum_epi32, to_array};
use super::x86_avx2_int8_x8::row_scales;
use super::x86_avx512_int8_x8::unsigned_lanes;
use super::x86_avx512_q8_0_x8::{accumulate, lane_sums, x8_xn};
use crate::quant::q5_0_x8::BlockQ5_0x8;
use crate::quant::{BlockQ8_0, INTERLEAVED_ROWS as ROWS};
use crate::traits::TokenBlocks;

/// The eight rows of `w` · one Q8_0 row, bit-identical to `quant::q5_0::vec_dot` on each row.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn q5_0_ref_x8_x1(w: &[BlockQ5_0x8], a: &[BlockQ8_0]) -> [f32; ROWS] {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(a) {
        // SAFETY: `qs` is 32 bytes.
        let ya = unsafe { _mm256_loadu_si256(y.qs.as_ptr().cast()) };
        // Σa: four-byte sums, then across the eight dwords.
        let s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), ya);
        let start = _mm256_set1_epi32(-16 * hsum_epi32(s));
        let lanes = unsigned_lanes(x);
        acc = accumulate(
            acc,
            lane_sums(&lanes, &y.qs, start),
            row_scales(x),
            y.d.to_f32(),
        );
    }
    to_array(acc)
}

/// The eight rows of `w` · `N` tokens' signed Q8_0 activations grouped by block
/// ([`TokenBlocks`]), bit-identical to [`q5_0_ref_x8_x1`] on each token. A block's lanes are
/// decoded once for all the tokens; each token's sums start from its −16·Σa, an eighth of
/// the block's −128·Σa (exact: a multiple of 128).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn q5_0_ref_x8_xn<const N: usize>(
    w: &[BlockQ5_0x8],
    a: &[TokenBlocks<N>],
) -> [[f32; ROWS]; N] {
    x8_xn(w, a, |x| (unsigned_lanes(x), row_scales(x)), 3)
}
