//! x86-64 AVX2 Q4_K · Q8_K over eight interleaved rows ([`BlockQ4Kx8`]): the rows sit in the
//! lanes of each vector, so one 32-byte load feeds eight rows, a sub-block's 32 products of a
//! row add up in two i16 lanes before its scale is applied once (instead of per 64-value chunk
//! and row), the min terms of all eight rows take four `vpmaddwd`s, and nothing is summed
//! across lanes. Per row the integer sums are the exact ones of the one-row kernels and the
//! float steps are theirs lane for lane, so the results are bit-identical:
//! [`q4_k_x8`] with `PER_64 = false` to `vec_dot_q4_k` (and `vec_dot_q4_k_x4`), with
//! `PER_64 = true` to `vec_dot_q4_k_gemm_x4` (llama.cpp's GEMM order).
//!
//! Same safety contract as `x86_avx2`: these run only through the table `x86_avx2::install`
//! fills, handed out after AVX2, FMA and F16C were detected.

use std::arch::x86_64::*;

use super::x86_avx2::{cvt8, i32_at, load32u, nibble_halves};
use crate::quant::q4_k_x8::{BlockQ4Kx8, ROWS};
use crate::quant::BlockQ8K;

/// The eight rows' scales and mins, unpacked: byte 4r + j of each vector is row r's value j
/// (`sc_lo`: scales 0..4, `sc_hi`: scales 4..8, `m_lo` / `m_hi` the mins), as
/// `unpack_scale_min_k4` computes them, in 32-bit lanes.
pub(crate) struct Scales {
    sc: [__m256i; 2],
    m: [__m256i; 2],
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn scales(x: &BlockQ4Kx8) -> Scales {
    let w0 = load32u(&x.scales[..32]);
    let w1 = load32u(&x.scales[32..64]);
    let w2 = load32u(&x.scales[64..]);
    let low6 = _mm256_set1_epi8(0x3f);
    let low4 = _mm256_set1_epi8(0x0f);
    let low2 = _mm256_set1_epi8(0x03);
    let hi2 = |w| _mm256_slli_epi32::<4>(_mm256_and_si256(_mm256_srli_epi32::<6>(w), low2));
    Scales {
        sc: [
            _mm256_and_si256(w0, low6),
            _mm256_or_si256(_mm256_and_si256(w2, low4), hi2(w0)),
        ],
        m: [
            _mm256_and_si256(w1, low6),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32::<4>(w2), low4), hi2(w1)),
        ],
    }
}

/// `vpshufb` mask taking, in each 128-bit half (four rows), bytes `4r + a` and `4r + b` of
/// row r into its two i16 lanes (zero-extended).
const fn pick_mask(a: i8, b: i8) -> [i8; 32] {
    let mut m = [-1i8; 32];
    let mut i = 0;
    while i < 8 {
        let r = (i % 4) as i8;
        m[4 * i] = 4 * r + a;
        m[4 * i + 2] = 4 * r + b;
        i += 1;
    }
    m
}

/// Sub-block `s`'s scale of each row in both of the row's i16 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn sub_scale(s: &Scales, sub: usize) -> __m256i {
    const MASKS: [[i8; 32]; 4] = [
        pick_mask(0, 0),
        pick_mask(1, 1),
        pick_mask(2, 2),
        pick_mask(3, 3),
    ];
    // SAFETY: 32 bytes.
    let mask = unsafe { _mm256_loadu_si256(MASKS[sub % 4].as_ptr().cast()) };
    _mm256_shuffle_epi8(s.sc[sub / 4], mask)
}

/// `vpshufb` mask taking, in each 128-bit half (four rows), byte `4r + a` of row r into the
/// low byte of its i32 lane (the rest zero).
const fn pick_mask_i32(a: i8) -> [i8; 32] {
    let mut m = [-1i8; 32];
    let mut i = 0;
    while i < 8 {
        m[4 * i] = 4 * (i % 4) as i8 + a;
        i += 1;
    }
    m
}

/// Sub-block `s`'s scale of each row in the row's i32 lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn sub_scale_i32(s: &Scales, sub: usize) -> __m256i {
    const MASKS: [[i8; 32]; 4] = [
        pick_mask_i32(0),
        pick_mask_i32(1),
        pick_mask_i32(2),
        pick_mask_i32(3),
    ];
    // SAFETY: 32 bytes.
    let mask = unsafe { _mm256_loadu_si256(MASKS[sub % 4].as_ptr().cast()) };
    _mm256_shuffle_epi8(s.sc[sub / 4], mask)
}

/// The mins of chunk c's two sub-blocks (2c, 2c + 1) of each row in the row's two i16 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn chunk_mins(s: &Scales, c: usize) -> __m256i {
    const MASKS: [[i8; 32]; 2] = [pick_mask(0, 1), pick_mask(2, 3)];
    // SAFETY: 32 bytes.
    let mask = unsafe { _mm256_loadu_si256(MASKS[c % 2].as_ptr().cast()) };
    _mm256_shuffle_epi8(s.m[c / 2], mask)
}

/// The activation's bsums paired per sub-block (bsums\[2j\] + bsums\[2j+1\], |·| ≤ 32·127, so
/// exact in i16) and packed so that i32 lane [`PAIR_LANE`]\[c\] holds the pair of chunk c.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn bsum_pairs(y: &BlockQ8K) -> __m256i {
    // SAFETY: bsums is 32 bytes.
    let b = unsafe { _mm256_loadu_si256(y.bsums.as_ptr().cast()) };
    let p = _mm256_madd_epi16(b, _mm256_set1_epi16(1)); // i32: p0..p3 | p4..p7
    _mm256_packs_epi32(p, p) // i16: p0..p3 p0..p3 | p4..p7 p4..p7
}

/// Where [`bsum_pairs`] keeps chunk c's two pair sums.
pub(crate) const PAIR_LANE: [i32; 4] = [0, 1, 4, 5];

/// `out[t][r]` = row r of `w` · `a[t]` for eight interleaved rows and `N` tokens: per
/// super-block one exact Σ sc·Σq·a and one Σ m·bsums per row and token, folded into two
/// chains with `fma(sum, d·a.d, acc)` — per 64 values when `PER_64`, else per super-block —
/// and subtracted at the end, as the one-row kernels do.
///
/// This is the AVX2 form: a sub-block's products add up in two i16 lanes per row
/// (`vpmaddubsw`, `vpaddw`), and one `vpmaddwd` applies its scale.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4_k_x8<const N: usize, const PER_64: bool>(
    w: &[BlockQ4Kx8],
    a: [&[BlockQ8K]; N],
) -> [[f32; ROWS]; N] {
    q4_k_x8_with::<N, PER_64>(
        w,
        a,
        |sum, q, y| _mm256_add_epi16(sum, _mm256_maddubs_epi16(q, y)),
        |lo, hi, s, c| {
            _mm256_add_epi32(
                _mm256_madd_epi16(lo, sub_scale(s, 2 * c)),
                _mm256_madd_epi16(hi, sub_scale(s, 2 * c + 1)),
            )
        },
    )
}

/// [`q4_k_x8`] with the integer steps supplied: `dot(sum, q, y)` adds the products of the
/// unsigned quants `q` and activation bytes `y` of a group to a sub-block's running sums, and
/// `scaled(lo, hi, scales, c)` gives each row's Σ sc·Σq·a of chunk c's two sub-blocks (low
/// nibbles 2c, high 2c + 1) from those sums, in the row's i32 lane. Any exact integer form
/// gives the same bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q4_k_x8_with<const N: usize, const PER_64: bool>(
    w: &[BlockQ4Kx8],
    a: [&[BlockQ8K]; N],
    dot: impl Fn(__m256i, __m256i, __m256i) -> __m256i + Copy,
    scaled: impl Fn(__m256i, __m256i, &Scales, usize) -> __m256i + Copy,
) -> [[f32; ROWS]; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    let mut mins = [_mm256_setzero_ps(); N];
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    for (i, x) in w[..n].iter().enumerate() {
        let y: [&BlockQ8K; N] = std::array::from_fn(|t| &a[t][i]);
        let (d, dmin) = (cvt8(bytemuck::cast(x.d)), cvt8(bytemuck::cast(x.dmin)));
        let ds: [__m256; N] = std::array::from_fn(|t| _mm256_mul_ps(d, _mm256_set1_ps(y[t].d)));
        let dmins: [__m256; N] =
            std::array::from_fn(|t| _mm256_mul_ps(dmin, _mm256_set1_ps(y[t].d)));
        let s = scales(x);
        let pairs: [__m256i; N] = std::array::from_fn(|t| bsum_pairs(y[t]));
        let mut sumi = [_mm256_setzero_si256(); N];
        let mut imin = [_mm256_setzero_si256(); N];
        for (c, pair_lane) in PAIR_LANE.into_iter().enumerate() {
            // Σ q·a of sub-blocks 2c (low nibbles) and 2c + 1 (high), per row: at most
            // 8 · 4 · 15 · 128 in magnitude, so exact in two i16 lanes (AVX2) or one i32.
            let mut lo_sum = [_mm256_setzero_si256(); N];
            let mut hi_sum = [_mm256_setzero_si256(); N];
            for g in 0..8 {
                let [lo, hi] = nibble_halves(load32u(&x.qs[(8 * c + g) * 32..]));
                for t in 0..N {
                    let ylo = _mm256_set1_epi32(i32_at(&y[t].qs, 64 * c + 4 * g));
                    let yhi = _mm256_set1_epi32(i32_at(&y[t].qs, 64 * c + 32 + 4 * g));
                    lo_sum[t] = dot(lo_sum[t], lo, ylo);
                    hi_sum[t] = dot(hi_sum[t], hi, yhi);
                }
            }
            let m = chunk_mins(&s, c);
            let lane = _mm256_set1_epi32(pair_lane);
            for t in 0..N {
                let sc = scaled(lo_sum[t], hi_sum[t], &s, c);
                let mn = _mm256_madd_epi16(m, _mm256_permutevar8x32_epi32(pairs[t], lane));
                if PER_64 {
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sc), ds[t], acc[t]);
                    mins[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mn), dmins[t], mins[t]);
                } else {
                    sumi[t] = _mm256_add_epi32(sumi[t], sc);
                    imin[t] = _mm256_add_epi32(imin[t], mn);
                }
            }
        }
        if !PER_64 {
            for t in 0..N {
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[t]), ds[t], acc[t]);
                mins[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(imin[t]), dmins[t], mins[t]);
            }
        }
    }
    let mut out = [[0f32; ROWS]; N];
    for (o, (acc, mins)) in out.iter_mut().zip(acc.iter().zip(&mins)) {
        // SAFETY: o holds 8 floats.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), _mm256_sub_ps(*acc, *mins)) };
    }
    out
}
