//! Q6_K · Q8_K on x86-64 AVX2 in the float orders llama.cpp uses: its `vec_dot` (8 float
//! lanes, one FMA per super-block) for single tokens and small batches, its tiled K-quant GEMM
//! (whole super-block sums, one scalar FMA each) for batches of 8+ tokens — one and four rows
//! at a time. The integer sums are shared and exact; only the folding into floats differs.
//!
//! Same safety contract as `x86_avx2`: every `#[target_feature]` function here runs only through
//! the table `x86_avx2::install` fills, handed out after AVX2, FMA and F16C were detected.

use std::arch::x86_64::*;

use super::x86_avx2::{f16x2, hsum_epi32, hsum_ps, load32, q6_half, scale_pair_of};
use crate::quant::{BlockQ6K, BlockQ8K};

/// The offset the unsigned Q6_K quants carry, per lane of the 8-lane integer sum as ggml's x86
/// kernel subtracts it: lane l = 32·(sc\[2l\]·bsums\[2l\] + sc\[2l+1\]·bsums\[2l+1\]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_offsets(x: &BlockQ6K, y: &BlockQ8K) -> __m256i {
    // SAFETY: scales is 16 bytes, bsums 32.
    let (sc, b) = unsafe {
        (
            _mm_loadu_si128(x.scales.as_ptr().cast()),
            _mm256_loadu_si256(y.bsums.as_ptr().cast()),
        )
    };
    _mm256_slli_epi32::<5>(_mm256_madd_epi16(b, _mm256_cvtepi8_epi16(sc)))
}

/// The sixteen sub-block scales of a Q6_K block widened to i16 (for `scale_pair_of`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q6_scales16(x: &BlockQ6K) -> __m256i {
    // SAFETY: scales is 16 bytes.
    _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(x.scales.as_ptr().cast()) })
}

/// One Q6_K super-block · Q8_K: Σ sc·Σq·a over unsigned q minus 32·Σ sc·bsums, in 8 integer
/// lanes laid out as ggml's `ggml_vec_dot_q6_K_q8_K` lays them out (lane l: values 4l..4l+4
/// of every 32, minus [`q6_offsets`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_k_lanes(x: &BlockQ6K, y: &BlockQ8K) -> __m256i {
    let mut sumi = _mm256_sub_epi32(_mm256_setzero_si256(), q6_offsets(x, y));
    let sc16 = q6_scales16(x);
    for n in 0..2 {
        let q = q6_half(&x.ql[n * 64..], &x.qh[n * 32..]);
        for (k, qk) in q.iter().enumerate() {
            let s = n * 8 + 2 * k;
            let p = _mm256_maddubs_epi16(*qk, load32(&y.qs[n * 128 + 32 * k..]));
            let sv = scale_pair_of(sc16, (s / 2) as i32);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sv));
        }
    }
    sumi
}

/// Q6_K · Q8_K with ggml's float operations for one token: each super-block's 8 integer lanes
/// ([`q6_k_lanes`]) folded into 8 float lanes with one FMA, the lanes summed at the end.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q6_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(a) {
        acc = gemv_step(acc, q6_k_lanes(x, y), f16x2(x.d, x.d).0, y.d);
    }
    hsum_ps(acc)
}

/// Q6_K · Q8_K with the float operations of llama.cpp's tiled K-quant GEMM (batches of 8+
/// tokens): per super-block the whole integer sum times the weight scale, then
/// `acc = fma(that, a.d, acc)`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q6_k_wide(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        acc = wide_step(acc, q6_k_lanes(x, y), f16x2(x.d, x.d).0, y.d);
    }
    acc
}

/// One Q6_K super-block · four Q8_K rows: [`q6_k_lanes`] for each, unpacking the weights once.
///
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q6_k_lanes_x4(x: &BlockQ6K, y: [&BlockQ8K; 4]) -> [__m256i; 4] {
    let mut sumi = y.map(|y| _mm256_sub_epi32(_mm256_setzero_si256(), q6_offsets(x, y)));
    let sc16 = q6_scales16(x);
    for h in 0..2 {
        let q = q6_half(&x.ql[h * 64..], &x.qh[h * 32..]);
        for (k, qk) in q.iter().enumerate() {
            let s = h * 8 + 2 * k;
            let sv = scale_pair_of(sc16, (s / 2) as i32);
            for t in 0..4 {
                let p = _mm256_maddubs_epi16(*qk, load32(&y[t].qs[h * 128 + 32 * k..]));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p, sv));
            }
        }
    }
    sumi
}

/// Q6_K · four Q8_K rows: each super-block's integer lanes for the four tokens (`lanes`:
/// ggml's eight per token, as [`q6_k_lanes`] lays them out, in any exact integer form) folded
/// into a per-row accumulator by `step(acc, lanes, weight d, activation d)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_k_x4_fold<S: Copy>(
    w: &[BlockQ6K],
    a: [&[BlockQ8K]; 4],
    init: S,
    lanes: impl Fn(&BlockQ6K, [&BlockQ8K; 4]) -> [__m256i; 4],
    step: impl Fn(S, __m256i, f32, f32) -> S,
) -> [S; 4] {
    let mut acc = [init; 4];
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    for (i, x) in w[..n].iter().enumerate() {
        let y = [&a[0][i], &a[1][i], &a[2][i], &a[3][i]];
        let d = f16x2(x.d, x.d).0;
        let sumi = lanes(x, y);
        for t in 0..4 {
            acc[t] = step(acc[t], sumi[t], d, y[t].d);
        }
    }
    acc
}

/// ggml's one-token step: a super-block's eight integer lanes into the eight float lanes of
/// `acc` with one FMA by `d·yd` (summed across lanes at the end).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn gemv_step(acc: __m256, lanes: __m256i, d: f32, yd: f32) -> __m256 {
    _mm256_fmadd_ps(_mm256_set1_ps(d * yd), _mm256_cvtepi32_ps(lanes), acc)
}

/// llama.cpp's tiled GEMM step: the super-block's whole integer sum times `d`, then
/// `fma(that, yd, acc)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn wide_step(acc: f32, lanes: __m256i, d: f32, yd: f32) -> f32 {
    (hsum_epi32(lanes) as f32 * d).mul_add(yd, acc)
}

/// Q6_K · four Q8_K rows, bit-identical to four `vec_dot_q6_k` calls.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q6_k_x4(w: &[BlockQ6K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    q6_k_x4_fold(
        w,
        a,
        _mm256_setzero_ps(),
        |x, y| q6_k_lanes_x4(x, y),
        |acc, s, d, yd| gemv_step(acc, s, d, yd),
    )
    .map(|v| hsum_ps(v))
}

/// Q6_K · four Q8_K rows, bit-identical to four `vec_dot_q6_k_wide` calls.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q6_k_wide_x4(w: &[BlockQ6K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    q6_k_x4_fold(
        w,
        a,
        0.0f32,
        |x, y| q6_k_lanes_x4(x, y),
        |acc, s, d, yd| wide_step(acc, s, d, yd),
    )
}
