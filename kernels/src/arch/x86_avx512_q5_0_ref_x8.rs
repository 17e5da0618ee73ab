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

use super::x86_avx2::{i32_at, to_array};
use super::x86_avx512_q8_0_x8::{accumulate, prefetch_ahead};
use crate::quant::q5_0_x8::BlockQ5_0x8;
use crate::quant::{BlockQ8_0, INTERLEAVED_ROWS as ROWS};
use crate::traits::TokenBlocks;

/// Blocks a batch prefetches ahead (eight, 1.4 KiB, as the Q8_0 batch kernel does).
const PREFETCH_AHEAD: usize = 8;

/// The eight lanes of `x` as unsigned quants u = q + 16 (lane l: values 4l..4l + 4 of every
/// row, row r's four at bytes 4r.., see [`BlockQ5_0x8`]) and the rows' scales.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn unsigned_lanes(x: &BlockQ5_0x8) -> ([__m256i; 8], __m256) {
    // SAFETY: `qs` is 128 bytes (group g at 32g), `qh` 32, `d` eight f16s (16 bytes).
    let (groups, qh, d) = unsafe {
        (
            [0, 1, 2, 3].map(|g| _mm256_loadu_si256(x.qs.as_ptr().add(32 * g).cast())),
            _mm256_loadu_si256(x.qh.as_ptr().cast()),
            _mm256_cvtph_ps(_mm_loadu_si128(x.d.as_ptr().cast())),
        )
    };
    let m4 = _mm256_set1_epi8(0x0f);
    let lanes = std::array::from_fn(|l| {
        // Group l % 4 holds lane l in its low nibbles (l < 4), lane l + 4 in its high ones.
        let packed = groups[l % 4];
        let nibbles = if l < 4 {
            _mm256_and_si256(packed, m4)
        } else {
            _mm256_and_si256(_mm256_srli_epi16::<4>(packed), m4)
        };
        // Bit l of byte 4r + k: the fifth bit of value 4l + k of row r.
        let fifth = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((1u8 << l) as i8));
        _mm256_mask_add_epi8(nibbles, fifth, nibbles, _mm256_set1_epi8(16))
    });
    (lanes, d)
}

/// Σ u·a of each row over the block's eight lanes, from `start`, with the 32 activation bytes
/// at `y` (signed). Integer sums: the two chains (even and odd lanes) change nothing.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn sums(lanes: &[__m256i; 8], y: &[i8; 32], start: __m256i) -> __m256i {
    let (mut even, mut odd) = (start, _mm256_setzero_si256());
    for l in (0..8).step_by(2) {
        let (ye, yo) = (i32_at(y, 4 * l), i32_at(y, 4 * l + 4));
        even = _mm256_dpbusd_epi32(even, lanes[l], _mm256_set1_epi32(ye));
        odd = _mm256_dpbusd_epi32(odd, lanes[l + 1], _mm256_set1_epi32(yo));
    }
    _mm256_add_epi32(even, odd)
}

/// The eight rows of `w` · one Q8_0 row, bit-identical to `quant::q5_0::vec_dot` on each row.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn q5_0_ref_x8_x1(w: &[BlockQ5_0x8], a: &[BlockQ8_0]) -> [f32; ROWS] {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(a) {
        let (lanes, d) = unsigned_lanes(x);
        // SAFETY: `qs` is 32 bytes.
        let ya = unsafe { _mm256_loadu_si256(y.qs.as_ptr().cast()) };
        // Σa in every lane: four-byte sums, then across the eight dwords.
        let s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), ya);
        let s = _mm256_add_epi32(s, _mm256_shuffle_epi32::<0b10_11_00_01>(s));
        let s = _mm256_add_epi32(s, _mm256_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm256_add_epi32(s, _mm256_permute2x128_si256::<1>(s, s));
        let start = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<4>(s));
        acc = accumulate(acc, sums(&lanes, &y.qs, start), d, y.d.to_f32());
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
    assert!(a.len() >= w.len());
    let mut acc = [_mm256_setzero_ps(); N];
    for (i, (x, y)) in w.iter().zip(a).enumerate() {
        prefetch_ahead(w, i + PREFETCH_AHEAD);
        let (lanes, d) = unsigned_lanes(x);
        for (t, acc) in acc.iter_mut().enumerate() {
            let start = _mm256_set1_epi32(y.bias[t] >> 3);
            *acc = accumulate(*acc, sums(&lanes, &y.qs[t], start), d, y.d[t]);
        }
    }
    std::array::from_fn(|t| to_array(acc[t]))
}
