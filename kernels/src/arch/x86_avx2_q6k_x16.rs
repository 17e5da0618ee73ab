//! x86-64 AVX2 (and AVX-VNNI) Q6_K · Q8_K for large batches over an unpacked tile of sixteen
//! rows (`quant::q6_k_x16`, as `x86_avx512_q6k_x16` uses it): eight rows per 256-bit vector,
//! the tile's two halves one after the other. Each row's integer sum is
//! Σⱼ scⱼ·Σ q·a − 32·Σⱼ scⱼ·bsumⱼ, the integer ggml's lanes add up to, then the
//! [`WideBatch`](crate::WideBatch) float steps, so each lane gives its row's bits.
//!
//! The sub-block step is the ISA's: AVX2 multiplies four quants by their activations in
//! `vpmaddubsw` pairs (two dwords' pairs summed stay within i16: |Σ| ≤ 4·63·128) and applies
//! the scale with `vpmaddwd`; AVX-VNNI sums a sub-block's sixteen products per row with four
//! `vpdpbusd` and multiplies by the scale once.
//!
//! Same safety contract as `x86_avx2` (and `x86_avxvnni` for the VNNI step).

use std::arch::x86_64::*;

use super::x86_avx2::{load32u, q6_half};
use crate::quant::q6_k_x16::{unpack_rows_with, BlockQ6Kx16, ROWS};
use crate::quant::{BlockQ6K, BlockQ8K};
use crate::traits::{cast, cast_mut, Tile16Path};

/// Rows per vector.
const HALF: usize = ROWS / 2;

/// Eight vectors of eight dwords transposed: dword d of vector r goes to lane r of vector d.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn transpose_8x8(r: &[__m256i; 8]) -> [__m256i; 8] {
    let mut t = [_mm256_setzero_si256(); 8];
    for k in 0..4 {
        t[2 * k] = _mm256_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    // u[4q + c], 128-bit lane L: rows 4q..4q + 4 of dword 4L + c.
    let mut u = [_mm256_setzero_si256(); 8];
    for q in 0..2 {
        let (lo, hi) = (4 * q, 4 * q + 2);
        u[4 * q] = _mm256_unpacklo_epi64(t[lo], t[hi]);
        u[4 * q + 1] = _mm256_unpackhi_epi64(t[lo], t[hi]);
        u[4 * q + 2] = _mm256_unpacklo_epi64(t[lo + 1], t[hi + 1]);
        u[4 * q + 3] = _mm256_unpackhi_epi64(t[lo + 1], t[hi + 1]);
    }
    let mut out = [_mm256_setzero_si256(); 8];
    for c in 0..4 {
        out[c] = _mm256_permute2x128_si256::<0x20>(u[c], u[4 + c]);
        out[4 + c] = _mm256_permute2x128_si256::<0x31>(u[c], u[4 + c]);
    }
    out
}

/// Super-block `i` of sixteen rows (`rows[r]`) unpacked into `out`: bit-identical to
/// `quant::q6_k_x16::unpack`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn unpack_block(rows: [&BlockQ6K; ROWS], out: &mut BlockQ6Kx16) {
    // Row r's values 32k..32k + 32 in q[k][r].
    let mut q = [[_mm256_setzero_si256(); ROWS]; 8];
    for (r, b) in rows.iter().enumerate() {
        for n in 0..2 {
            let h = q6_half(&b.ql[64 * n..], &b.qh[32 * n..]);
            for (c, v) in h.into_iter().enumerate() {
                q[4 * n + c][r] = v;
            }
        }
    }
    for (k, qk) in q.iter().enumerate() {
        for (half, r) in qk.chunks_exact(HALF).enumerate() {
            let r: &[__m256i; 8] = r.try_into().expect("eight rows");
            for (d, v) in transpose_8x8(r).into_iter().enumerate() {
                let at = &mut out.qs[64 * (8 * k + d) + 32 * half..][..32];
                // SAFETY: 32 writable bytes.
                unsafe { _mm256_storeu_si256(at.as_mut_ptr().cast(), v) };
            }
        }
    }
    for (r, b) in rows.iter().enumerate() {
        for (j, &s) in b.scales.iter().enumerate() {
            out.scales[ROWS * j + r] = s;
        }
    }
    let d: [u16; ROWS] = std::array::from_fn(|r| rows[r].d.to_bits());
    for half in 0..2 {
        // SAFETY: 8 readable u16 and 8 writable f32.
        unsafe {
            let h = _mm_loadu_si128(d[HALF * half..].as_ptr().cast());
            _mm256_storeu_ps(out.d[HALF * half..].as_mut_ptr(), _mm256_cvtph_ps(h));
        }
    }
}

/// Sixteen rows of `nb` super-blocks each (`src`: the rows one after another) unpacked into
/// `out` (`nb` blocks).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn unpack_q6_k_x16(src: &[BlockQ6K], nb: usize, out: &mut [BlockQ6Kx16]) {
    unpack_rows_with(src, nb, out, |rows, o| unpack_block(rows, o));
}

/// Eight i8 at `p` sign-extended to the eight dwords of a vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn widen8(p: &[i8]) -> __m256i {
    assert!(p.len() >= 8);
    // SAFETY: 8 readable bytes (checked).
    _mm256_cvtepi8_epi32(unsafe { _mm_loadl_epi64(p.as_ptr().cast()) })
}

/// The four bytes at `at` of a token's quants in every dword.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dword_at(q: &[i8; 256], at: usize) -> __m256i {
    let four: [i8; 4] = q[at..at + 4].try_into().expect("four bytes");
    _mm256_set1_epi32(i32::from_le_bytes(four.map(|b| b as u8)))
}

/// One sub-block's Σ sc·Σ q·a per row for one token, AVX2: `w` the sub-block's four dwords of
/// the eight rows, `sc` each row's scale in both i16 halves of its dword, `at` the sub-block's
/// first activation byte.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn sub_block_avx2(w: &[__m256i; 4], sc: __m256i, q: &[i8; 256], at: usize) -> __m256i {
    let p = |g: usize| _mm256_maddubs_epi16(w[g], dword_at(q, at + 4 * g));
    let p01 = _mm256_add_epi16(p(0), p(1));
    let p23 = _mm256_add_epi16(p(2), p(3));
    _mm256_add_epi32(_mm256_madd_epi16(p01, sc), _mm256_madd_epi16(p23, sc))
}

/// Each dword's low i16 from `lo` and high i16 from `hi` (both i16-range values in i32 lanes).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn i16_pairs(lo: __m256i, hi: __m256i) -> __m256i {
    _mm256_or_si256(
        _mm256_and_si256(lo, _mm256_set1_epi32(0xffff)),
        _mm256_slli_epi32::<16>(hi),
    )
}

/// `out[t][r]` = row r of the unpacked tile `w` · `a[t]`, bit-identical to
/// `x86_avx2_q6k::vec_dot_q6_k_wide` on that row, with the sub-block step `sub_block(w, scale,
/// token quants, first byte)` (see [`sub_block_avx2`]) on the scales as `scale(sc32)` forms
/// them. The rows go eight at a time: all of the tile for rows 0..8, then for rows 8..16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_k_x16_with<const N: usize>(
    w: &[BlockQ6Kx16],
    a: [&[BlockQ8K]; N],
    scale: impl Fn(__m256i) -> __m256i,
    sub_block: impl Fn(&[__m256i; 4], __m256i, &[i8; 256], usize) -> __m256i,
) -> [[f32; ROWS]; N] {
    let mut out = [[0f32; ROWS]; N];
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    let neg32 = _mm256_set1_epi16(-32);
    for half in 0..2 {
        let mut acc = [_mm256_setzero_ps(); N];
        for (i, x) in w[..n].iter().enumerate() {
            let mut y = [&a[0][i]; N];
            for t in 0..N {
                y[t] = &a[t][i];
            }
            let sc = |j: usize| widen8(&x.scales[ROWS * j + HALF * half..]);
            // −32·Σⱼ scⱼ·bsumⱼ: sub-blocks 2m and 2m + 1 at once, (−32·sc) pairs by bsum pairs.
            let mut sumi = [_mm256_setzero_si256(); N];
            for m in 0..8 {
                let pairs = _mm256_mullo_epi16(i16_pairs(sc(2 * m), sc(2 * m + 1)), neg32);
                for t in 0..N {
                    let b: [i16; 2] = [y[t].bsums[2 * m], y[t].bsums[2 * m + 1]];
                    let off = _mm256_madd_epi16(pairs, _mm256_set1_epi32(bytemuck::cast(b)));
                    sumi[t] = _mm256_add_epi32(sumi[t], off);
                }
            }
            for j in 0..16 {
                let s = scale(sc(j));
                let mut q = [_mm256_setzero_si256(); 4];
                for (g, qg) in q.iter_mut().enumerate() {
                    *qg = load32u(&x.qs[64 * (4 * j + g) + 32 * half..]);
                }
                for t in 0..N {
                    sumi[t] = _mm256_add_epi32(sumi[t], sub_block(&q, s, &y[t].qs, 16 * j));
                }
            }
            // SAFETY: 8 readable floats.
            let d = unsafe { _mm256_loadu_ps(x.d[HALF * half..].as_ptr()) };
            for t in 0..N {
                let r = _mm256_mul_ps(_mm256_cvtepi32_ps(sumi[t]), d);
                acc[t] = _mm256_fmadd_ps(r, _mm256_set1_ps(y[t].d), acc[t]);
            }
        }
        for (o, acc) in out.iter_mut().zip(&acc) {
            // SAFETY: 8 writable floats at 8·half.
            unsafe { _mm256_storeu_ps(o[HALF * half..].as_mut_ptr(), *acc) };
        }
    }
    out
}

/// `out[t][r]` = row r of the unpacked tile `w` · `a[t]` (AVX2).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_k_x16_wide<const N: usize>(
    w: &[BlockQ6Kx16],
    a: [&[BlockQ8K]; N],
) -> [[f32; ROWS]; N] {
    q6_k_x16_with(
        w,
        a,
        // (Each row's scale in both halves of its dword, for `vpmaddwd`.)
        |s| i16_pairs(s, s),
        |q, s, y, at| sub_block_avx2(q, s, y, at),
    )
}

/// Eight tokens as two groups of four (eight would not fit the sixteen vector registers).
pub(crate) fn in_fours(
    a: [&[u8]; 8],
    x4: impl Fn([&[u8]; 4]) -> [[f32; ROWS]; 4],
) -> [[f32; ROWS]; 8] {
    let (lo, hi) = (x4([a[0], a[1], a[2], a[3]]), x4([a[4], a[5], a[6], a[7]]));
    let mut out = [[0f32; ROWS]; 8];
    out[..4].copy_from_slice(&lo);
    out[4..].copy_from_slice(&hi);
    out
}

/// The AVX2 table's sixteen-row Q6_K path, from `min_tokens` tokens.
pub(crate) fn tile16_path(min_tokens: usize) -> Tile16Path {
    // SAFETY (every closure): reachable only through a table for an ISA that has AVX2, FMA
    // and F16C (see `x86_avx2::install`).
    Tile16Path {
        min_tokens,
        block_bytes: std::mem::size_of::<BlockQ6Kx16>(),
        unpack: |w, nb, out| unsafe { unpack_q6_k_x16(cast(w), nb, cast_mut(out)) },
        x8: |w, a| in_fours(a, |a| unsafe { q6_k_x16_wide::<4>(cast(w), a.map(cast)) }),
        x4: |w, a| unsafe { q6_k_x16_wide::<4>(cast(w), a.map(cast)) },
    }
}
