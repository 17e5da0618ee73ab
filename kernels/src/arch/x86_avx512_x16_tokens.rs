//! x86-64 AVX-512 batch kernels of interleaved Q8_0 and Q5_0 in the scalar reference's order
//! (`x86_avx512_q8_0_x8::q8_0_x8_xn`, `x86_avx512_q5_0_ref_x8::q5_0_ref_x8_xn`) over two
//! consecutive row groups at once: sixteen rows, one per 32-bit lane of a 512-bit vector (the
//! first group's rows in lanes 0..8). Each lane goes through its row's steps in the eight-row
//! kernels — each block's sum exact, then `acc + isum·(d_w·d_a)` — so the results are those
//! bits. On a core with full-width 512-bit units (Zen 5) a sixteen-row `vpdpbusd` costs what an
//! eight-row one did; the output projection of eight serving streams is most of this work.
//!
//! Same safety contract as `x86_avx512`: reachable only through the AVX-512 table.

use std::arch::x86_64::*;

use super::x86_avx2::i32_at;
use super::x86_avx2_int8_x8::row_scales;
use super::x86_avx512::join;
use super::x86_avx512_int8_x8::unsigned_lanes;
use super::x86_avx512_q8_0_x8::{prefetch_ahead, unsigned_lanes_and_scales, Lanes, PREFETCH_AHEAD};
use crate::quant::q5_0_x8::BlockQ5_0x8;
use crate::quant::q8_0_x8::BlockQ8_0x8;
use crate::quant::INTERLEAVED_ROWS;
use crate::traits::TokenBlocks;

/// Rows of two groups.
const ROWS2: usize = 2 * INTERLEAVED_ROWS;

/// The sixteen rows of the two groups `w` · `N` tokens' grouped activations: `decode` gives a
/// block's unsigned lanes and scales, and token t's sums start from its bias shifted right by
/// `bias_shift` (the weights' offset times Σa, see the eight-row kernels).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn x16_xn<B, const N: usize>(
    w: [&[B]; 2],
    a: &[TokenBlocks<N>],
    decode: impl Fn(&B) -> Lanes,
    bias_shift: u32,
) -> [[f32; ROWS2]; N] {
    let nb = w[0].len();
    assert!(w[1].len() == nb && a.len() >= nb);
    let mut acc = [_mm512_setzero_ps(); N];
    for (i, y) in a[..nb].iter().enumerate() {
        // Each group's blocks a few ahead; past its end, the same group of the next pair (the
        // next two groups follow these two in memory), whose start would otherwise come cold.
        let ahead = i + PREFETCH_AHEAD;
        let ahead = if ahead < nb { ahead } else { ahead + nb };
        prefetch_ahead(w[0], ahead);
        prefetch_ahead(w[1], ahead);
        let ((l0, d0), (l1, d1)) = (decode(&w[0][i]), decode(&w[1][i]));
        let lanes: [__m512i; 8] = std::array::from_fn(|l| join(l0[l], l1[l]));
        let d = _mm512_castsi512_ps(join(_mm256_castps_si256(d0), _mm256_castps_si256(d1)));
        for (t, acc) in acc.iter_mut().enumerate() {
            let (mut even, mut odd) = (
                _mm512_set1_epi32(y.bias[t] >> bias_shift),
                _mm512_setzero_si512(),
            );
            for l in (0..8).step_by(2) {
                let (ye, yo) = (i32_at(&y.qs[t], 4 * l), i32_at(&y.qs[t], 4 * l + 4));
                even = _mm512_dpbusd_epi32(even, lanes[l], _mm512_set1_epi32(ye));
                odd = _mm512_dpbusd_epi32(odd, lanes[l + 1], _mm512_set1_epi32(yo));
            }
            let isum = _mm512_add_epi32(even, odd);
            // The reference's step: the scales' product rounded, then the product, the sum.
            let scale = _mm512_mul_ps(d, _mm512_set1_ps(y.d[t]));
            *acc = _mm512_add_ps(*acc, _mm512_mul_ps(_mm512_cvtepi32_ps(isum), scale));
        }
    }
    std::array::from_fn(|t| {
        let mut out = [0f32; ROWS2];
        // SAFETY: `out` holds sixteen floats.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), acc[t]) };
        out
    })
}

/// Two groups of interleaved Q8_0 · `N` tokens, bit-identical to `q8_0_x8_xn` on each group:
/// the weight quants offset by 128 into the unsigned operand, each sum from the token's bias.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn q8_0_x16_xn<const N: usize>(
    w: [&[BlockQ8_0x8]; 2],
    a: &[TokenBlocks<N>],
) -> [[f32; ROWS2]; N] {
    x16_xn(w, a, |x| unsigned_lanes_and_scales(x), 0)
}

/// Two groups of interleaved Q5_0 · `N` tokens, bit-identical to `q5_0_ref_x8_xn` on each
/// group: quants as u = q + 16, each sum from −16·Σa (the bias, −128·Σa, over 8).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn q5_0_ref_x16_xn<const N: usize>(
    w: [&[BlockQ5_0x8]; 2],
    a: &[TokenBlocks<N>],
) -> [[f32; ROWS2]; N] {
    x16_xn(w, a, |x| (unsigned_lanes(x), row_scales(x)), 3)
}
