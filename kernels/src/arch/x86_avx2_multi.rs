//! x86-64 AVX2 dot products of one weight row with four activation rows at once, for batches:
//! each weight block is loaded and unpacked once and used for four tokens. Per token they do
//! exactly the operations of the one-token kernels in `x86_avx2`, in the same order, so the
//! results are bit-identical to them: a token's output does not depend on its batch.
//!
//! Same safety contract as `x86_avx2`: every `#[target_feature]` function here runs only through
//! the table `x86_avx2::install` fills, handed out after AVX2, FMA and F16C were detected.

use std::arch::x86_64::*;

use super::x86_avx2::{f16x2, hsum_ps, k4_min_term, load32, load32u, q6_half, scale_pair};
use crate::quant::kquant_util::unpack_scale_min_k4;
use crate::quant::{BlockQ4K, BlockQ6K, BlockQ8K};

/// Q4_K · four Q8_K rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q4_k_x4(w: &[BlockQ4K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut mins = [0.0f32; 4];
    let m4 = _mm256_set1_epi8(0x0f);
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    for (i, x) in w[..n].iter().enumerate() {
        let y = [&a[0][i], &a[1][i], &a[2][i], &a[3][i]];
        let (sc, m) = unpack_scale_min_k4(&x.scales);
        let (d, dmin) = f16x2(x.d, x.dmin);
        for t in 0..4 {
            mins[t] += dmin * y[t].d * k4_min_term(&m, &y[t].bsums) as f32;
        }
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
        }
        for t in 0..4 {
            acc[t] = _mm256_fmadd_ps(
                _mm256_set1_ps(d * y[t].d),
                _mm256_cvtepi32_ps(sumi[t]),
                acc[t],
            );
        }
    }
    [
        hsum_ps(acc[0]) - mins[0],
        hsum_ps(acc[1]) - mins[1],
        hsum_ps(acc[2]) - mins[2],
        hsum_ps(acc[3]) - mins[3],
    ]
}

/// Q6_K · four Q8_K rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q6_k_x4(w: &[BlockQ6K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut corr = [0.0f32; 4];
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    for (i, x) in w[..n].iter().enumerate() {
        let y = [&a[0][i], &a[1][i], &a[2][i], &a[3][i]];
        let d = f16x2(x.d, x.d).0;
        for t in 0..4 {
            let offset: i32 = x
                .scales
                .iter()
                .zip(&y[t].bsums)
                .map(|(&s, &b)| s as i32 * b as i32)
                .sum();
            corr[t] += d * y[t].d * (32 * offset) as f32;
        }
        let mut sumi = [_mm256_setzero_si256(); 4];
        for h in 0..2 {
            let q = q6_half(&x.ql[h * 64..], &x.qh[h * 32..]);
            for (k, qk) in q.iter().enumerate() {
                let s = h * 8 + 2 * k;
                let sv = scale_pair(x.scales[s] as i16, x.scales[s + 1] as i16);
                for t in 0..4 {
                    let p = _mm256_maddubs_epi16(*qk, load32(&y[t].qs[h * 128 + 32 * k..]));
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p, sv));
                }
            }
        }
        for t in 0..4 {
            acc[t] = _mm256_fmadd_ps(
                _mm256_set1_ps(d * y[t].d),
                _mm256_cvtepi32_ps(sumi[t]),
                acc[t],
            );
        }
    }
    [
        hsum_ps(acc[0]) - corr[0],
        hsum_ps(acc[1]) - corr[1],
        hsum_ps(acc[2]) - corr[2],
        hsum_ps(acc[3]) - corr[3],
    ]
}
