//! x86-64 AVX2 dot products of one weight row with four activation rows at once, for batches:
//! each weight block is loaded and unpacked once and used for four tokens. Per token they do
//! exactly the operations of a one-token kernel in `x86_avx2`, in the same order, so the
//! results are bit-identical to it (the `_wide` / `_gemm` ones: to llama.cpp's batched
//! kernels, see `WideBatch`).
//!
//! Same safety contract as `x86_avx2`: every `#[target_feature]` function here runs only through
//! the table `x86_avx2::install` fills, handed out after AVX2, FMA and F16C were detected.

use std::arch::x86_64::*;

use super::x86_avx2::{f16x2, k4_scale, k4_scale_vector, load32, load32u};
use crate::quant::kquant_util::unpack_scale_min_k4;
use crate::quant::{BlockQ4K, BlockQ8K};

/// Q4_K · four Q8_K rows, bit-identical to four `vec_dot_q4_k` calls (llama.cpp's repacked
/// Q4_K GEMV order: one FMA per super-block).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q4_k_x4(w: &[BlockQ4K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    q4_k_x4::<false>(w, a)
}

/// Q4_K · four Q8_K rows with the float operations of ggml's x86 Q4_K GEMM
/// (`ggml_gemm_q4_K_8x8_q8_K`, which llama.cpp runs on each group of four tokens): one FMA per
/// 64 values (two sub-blocks) instead of per super-block.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q4_k_gemm_x4(w: &[BlockQ4K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    q4_k_x4::<true>(w, a)
}

/// Σ m\[j\]·(bsums\[2j\] + bsums\[2j+1\]) over each pair of sub-blocks (64 values): the
/// four per-chunk min terms of a Q4_K super-block with one Q8_K row, as lanes 0..4.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn chunk_mins(bsums: &[i16; 16], mins8: __m256i) -> __m128i {
    // SAFETY: bsums is 32 bytes.
    let b = unsafe { _mm256_loadu_si256(bsums.as_ptr().cast()) };
    let per_sub = _mm256_mullo_epi32(_mm256_madd_epi16(b, _mm256_set1_epi16(1)), mins8);
    let h = _mm256_hadd_epi32(per_sub, per_sub); // [c0, c1, c0, c1 | c2, c3, c2, c3]
    let h = _mm256_permute4x64_epi64::<0b1000>(h); // [c0, c1, c2, c3 | ...]
    _mm256_castsi256_si128(h)
}

/// The sums of the 8 i32 lanes of four vectors at once (exact, so in any order), as lanes 0..4.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum4_epi32(v: [__m256i; 4]) -> __m128i {
    let a = _mm256_hadd_epi32(v[0], v[1]); // per 128-bit half: v0 pairs, v1 pairs
    let b = _mm256_hadd_epi32(v[2], v[3]);
    let c = _mm256_hadd_epi32(a, b); // per half: Σv0, Σv1, Σv2, Σv3 (partial)
    _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256::<1>(c))
}

/// Four i32 vectors (one per token, lanes = chunks) transposed: lanes = tokens, one per chunk.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn transpose4(v: [__m128i; 4]) -> [__m128i; 4] {
    let t01lo = _mm_unpacklo_epi32(v[0], v[1]); // a0 b0 a1 b1
    let t23lo = _mm_unpacklo_epi32(v[2], v[3]); // c0 d0 c1 d1
    let t01hi = _mm_unpackhi_epi32(v[0], v[1]); // a2 b2 a3 b3
    let t23hi = _mm_unpackhi_epi32(v[2], v[3]); // c2 d2 c3 d3
    [
        _mm_unpacklo_epi64(t01lo, t23lo),
        _mm_unpackhi_epi64(t01lo, t23lo),
        _mm_unpacklo_epi64(t01hi, t23hi),
        _mm_unpackhi_epi64(t01hi, t23hi),
    ]
}

/// Σ sc·Σq·a and Σ m·bsums of a Q4_K row with four Q8_K rows, folded into two chains per row
/// with `fma(sum, d·a.d, acc)` — per 64 values when `PER_64`, else per super-block — and
/// subtracted at the end. The integer sums are exact, so only the folding differs. The four
/// rows' chains are the four lanes of one vector: each lane does exactly the scalar
/// operations (conversion, product of the scales, fused multiply-add).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_k_x4<const PER_64: bool>(w: &[BlockQ4K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    let mut acc = _mm_setzero_ps();
    let mut mins = _mm_setzero_ps();
    let m4 = _mm256_set1_epi8(0x0f);
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    for (i, x) in w[..n].iter().enumerate() {
        let y = [&a[0][i], &a[1][i], &a[2][i], &a[3][i]];
        let (sc, m) = unpack_scale_min_k4(&x.scales);
        let scv = k4_scale_vector(&sc);
        let (d, dmin) = f16x2(x.d, x.dmin);
        let yd = _mm_setr_ps(y[0].d, y[1].d, y[2].d, y[3].d);
        let ds = _mm_mul_ps(_mm_set1_ps(d), yd);
        let dmins = _mm_mul_ps(_mm_set1_ps(dmin), yd);
        // Σ m·bsums per 64 values (chunk c), lanes = tokens: exact integers.
        let mins8 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(i64::from_le_bytes(m)));
        let chunk_min = transpose4(y.map(|y| chunk_mins(&y.bsums, mins8)));
        let mut sumi = [_mm256_setzero_si256(); 4];
        for (c, cmin) in chunk_min.iter().enumerate() {
            let q = load32u(&x.qs[c * 32..]);
            let lo = _mm256_and_si256(q, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
            let (s0, s1) = (k4_scale(scv, 2 * c), k4_scale(scv, 2 * c + 1));
            for t in 0..4 {
                let p0 =
                    _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load32(&y[t].qs[c * 64..])), s0);
                let p1 = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(hi, load32(&y[t].qs[c * 64 + 32..])),
                    s1,
                );
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p0, p1));
            }
            if PER_64 {
                let sums = _mm_cvtepi32_ps(hsum4_epi32(sumi));
                acc = _mm_fmadd_ps(sums, ds, acc);
                mins = _mm_fmadd_ps(_mm_cvtepi32_ps(*cmin), dmins, mins);
                sumi = [_mm256_setzero_si256(); 4];
            }
        }
        if !PER_64 {
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(hsum4_epi32(sumi)), ds, acc);
            let imin = _mm_add_epi32(
                _mm_add_epi32(chunk_min[0], chunk_min[1]),
                _mm_add_epi32(chunk_min[2], chunk_min[3]),
            );
            mins = _mm_fmadd_ps(_mm_cvtepi32_ps(imin), dmins, mins);
        }
    }
    let mut out = [0f32; 4];
    // SAFETY: out holds 4 floats.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), _mm_sub_ps(acc, mins)) };
    out
}
