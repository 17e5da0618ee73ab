//! x86-64 AVX2 dot products of one weight row with four activation rows at once, for batches:
//! each weight block is loaded and unpacked once and used for four tokens. Per token they do
//! exactly the operations of a one-token kernel in `x86_avx2`, in the same order, so the
//! results are bit-identical to it (the `_wide` / `_gemm` ones: to llama.cpp's batched
//! kernels, see `WideBatch`).
//!
//! Same safety contract as `x86_avx2`: every `#[target_feature]` function here runs only through
//! the table `x86_avx2::install` fills, handed out after AVX2, FMA and F16C were detected.

use std::arch::x86_64::*;

use super::x86_avx2::{f16x2, hsum_epi32, load32, load32u};
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
/// four per-chunk min terms of a Q4_K super-block with one Q8_K row.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn chunk_mins(bsums: &[i16; 16], mins8: __m256i) -> [i32; 4] {
    // SAFETY: bsums is 32 bytes.
    let b = unsafe { _mm256_loadu_si256(bsums.as_ptr().cast()) };
    let per_sub = _mm256_mullo_epi32(_mm256_madd_epi16(b, _mm256_set1_epi16(1)), mins8);
    let h = _mm256_hadd_epi32(per_sub, per_sub); // [c0, c1, c0, c1 | c2, c3, c2, c3]
    let mut lanes = [0i32; 8];
    // SAFETY: lanes holds 8 i32.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), h) };
    [lanes[0], lanes[1], lanes[4], lanes[5]]
}

/// The sums of the 8 i32 lanes of four vectors at once (exact, so in any order).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum4_epi32(v: [__m256i; 4]) -> [i32; 4] {
    let a = _mm256_hadd_epi32(v[0], v[1]); // per 128-bit half: v0 pairs, v1 pairs
    let b = _mm256_hadd_epi32(v[2], v[3]);
    let c = _mm256_hadd_epi32(a, b); // per half: Σv0, Σv1, Σv2, Σv3 (partial)
    let s = _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256::<1>(c));
    let mut out = [0i32; 4];
    // SAFETY: out holds 4 i32.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), s) };
    out
}

/// Σ sc·Σq·a and Σ m·bsums of a Q4_K row with four Q8_K rows, folded into two scalar chains
/// per row with `fma(sum, d·a.d, acc)` — per 64 values when `PER_64`, else per super-block —
/// and subtracted at the end. The integer sums are exact, so only the folding differs.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q4_k_x4<const PER_64: bool>(w: &[BlockQ4K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    let mut acc = [0.0f32; 4];
    let mut mins = [0.0f32; 4];
    let m4 = _mm256_set1_epi8(0x0f);
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    for (i, x) in w[..n].iter().enumerate() {
        let y = [&a[0][i], &a[1][i], &a[2][i], &a[3][i]];
        let (sc, m) = unpack_scale_min_k4(&x.scales);
        let (d, dmin) = f16x2(x.d, x.dmin);
        let ds = y.map(|y| d * y.d);
        let dmins = y.map(|y| dmin * y.d);
        // Σ m·bsums per 64 values (chunk c), per token: exact integers.
        let mins8 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(i64::from_le_bytes(m)));
        let chunk_min: [[i32; 4]; 4] = y.map(|y| chunk_mins(&y.bsums, mins8));
        let mut sumi = [_mm256_setzero_si256(); 4];
        for c in 0..4 {
            let q = load32u(&x.qs[c * 32..]);
            let lo = _mm256_and_si256(q, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
            let (s0, s1) = (
                _mm256_set1_epi16(sc[2 * c] as i16),
                _mm256_set1_epi16(sc[2 * c + 1] as i16),
            );
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
                let sums = hsum4_epi32(sumi);
                for t in 0..4 {
                    acc[t] = (sums[t] as f32).mul_add(ds[t], acc[t]);
                    mins[t] = (chunk_min[t][c] as f32).mul_add(dmins[t], mins[t]);
                }
                sumi = [_mm256_setzero_si256(); 4];
            }
        }
        if !PER_64 {
            for t in 0..4 {
                acc[t] = (hsum_epi32(sumi[t]) as f32).mul_add(ds[t], acc[t]);
                let imin: i32 = chunk_min[t].iter().sum();
                mins[t] = (imin as f32).mul_add(dmins[t], mins[t]);
            }
        }
    }
    [0, 1, 2, 3].map(|t| acc[t] - mins[t])
}
