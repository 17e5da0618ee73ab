//! x86-64 AVX-512 Q6_K · Q8_K for large batches, sixteen rows at a time: a tile of sixteen
//! row-major rows is unpacked once ([`unpack_q6_k_x16`], the `quant::q6_k_x16` layout), then
//! [`q6_k_x16_wide`] runs every group of tokens over it with one `vpdpbusd` per four values of
//! all sixteen rows (one row per 32-bit lane), where the row-at-a-time kernels decode each
//! super-block's bits again per group of four tokens and fold 64 lanes per row and token.
//!
//! The float order is the [`WideBatch`](crate::WideBatch) one (llama.cpp's for batches of 8+
//! tokens): per super-block the row's exact integer sum, times `d`, then one FMA with the
//! token's scale. The integer sum is Σⱼ scⱼ·(Σ q·a − 32·bsumⱼ) over the sixteen sub-blocks,
//! the same integer ggml's lanes add up to, so each lane gives its row's bits.
//!
//! Same safety contract as `x86_avx512`: reachable only through the AVX-512 table.

use std::arch::x86_64::*;

use super::x86_avx512::q6_quants;
use super::x86_avx512_q4k_x16::dpbusd_at;
use crate::quant::q6_k_x16::{unpack_rows_with, BlockQ6Kx16, ROWS};
use crate::quant::{BlockQ6K, BlockQ8K};

/// Sixteen vectors of sixteen dwords transposed: dword d of vector r goes to lane r of
/// vector d (unpacks within 128-bit lanes, then 128-bit lane shuffles).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn transpose_16x16(r: &[__m512i; 16]) -> [__m512i; 16] {
    // Rows 2k and 2k + 1 interleaved dword by dword within each 128-bit lane.
    let mut t = [_mm512_setzero_si512(); 16];
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    // v[4q + c], 128-bit lane L: rows 4q..4q + 4 of dword 4L + c.
    let mut v = [_mm512_setzero_si512(); 16];
    for q in 0..4 {
        let (lo, hi) = (4 * q, 4 * q + 2);
        v[4 * q] = _mm512_unpacklo_epi64(t[lo], t[hi]);
        v[4 * q + 1] = _mm512_unpackhi_epi64(t[lo], t[hi]);
        v[4 * q + 2] = _mm512_unpacklo_epi64(t[lo + 1], t[hi + 1]);
        v[4 * q + 3] = _mm512_unpackhi_epi64(t[lo + 1], t[hi + 1]);
    }
    // Lane L of the four row quads side by side: dword 4L + c of all sixteen rows.
    let mut out = [_mm512_setzero_si512(); 16];
    for c in 0..4 {
        let x0 = _mm512_shuffle_i32x4::<0x44>(v[c], v[4 + c]);
        let x1 = _mm512_shuffle_i32x4::<0xEE>(v[c], v[4 + c]);
        let x2 = _mm512_shuffle_i32x4::<0x44>(v[8 + c], v[12 + c]);
        let x3 = _mm512_shuffle_i32x4::<0xEE>(v[8 + c], v[12 + c]);
        out[c] = _mm512_shuffle_i32x4::<0x88>(x0, x2);
        out[4 + c] = _mm512_shuffle_i32x4::<0xDD>(x0, x2);
        out[8 + c] = _mm512_shuffle_i32x4::<0x88>(x1, x3);
        out[12 + c] = _mm512_shuffle_i32x4::<0xDD>(x1, x3);
    }
    out
}

/// `v` stored at `out[..64]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn store64(out: &mut [u8], v: __m512i) {
    assert!(out.len() >= 64);
    // SAFETY: 64 writable bytes (checked).
    unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), v) }
}

/// Super-block `i` of sixteen rows (`rows[r]`) unpacked into `out`: bit-identical to
/// `quant::q6_k_x16::unpack`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn unpack_block(rows: [&BlockQ6K; ROWS], out: &mut BlockQ6Kx16) {
    let mut q = [[_mm512_setzero_si512(); 4]; ROWS];
    for (qr, b) in q.iter_mut().zip(rows) {
        *qr = q6_quants(b);
    }
    // Values 64c..64c + 64 of the rows: dwords 16c..16c + 16.
    for c in 0..4 {
        let mut r = [_mm512_setzero_si512(); ROWS];
        for (rr, qr) in r.iter_mut().zip(&q) {
            *rr = qr[c];
        }
        for (d, v) in transpose_16x16(&r).into_iter().enumerate() {
            store64(&mut out.qs[64 * (16 * c + d)..], v);
        }
    }
    // The scales: row r's sixteen in the dwords of vector r, transposed, narrowed back.
    let mut s = [_mm512_setzero_si512(); ROWS];
    for (sr, b) in s.iter_mut().zip(rows) {
        // SAFETY: scales is 16 bytes.
        *sr = _mm512_cvtepi8_epi32(unsafe { _mm_loadu_si128(b.scales.as_ptr().cast()) });
    }
    for (j, v) in transpose_16x16(&s).into_iter().enumerate() {
        let at = &mut out.scales[ROWS * j..ROWS * (j + 1)];
        // SAFETY: 16 writable bytes.
        unsafe { _mm_storeu_si128(at.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(v)) };
    }
    let d: [u16; ROWS] = std::array::from_fn(|r| rows[r].d.to_bits());
    // SAFETY: 16 readable u16 and 16 writable f32.
    unsafe {
        let h = _mm256_loadu_si256(d.as_ptr().cast());
        _mm512_storeu_ps(out.d.as_mut_ptr(), _mm512_cvtph_ps(h));
    }
}

/// Sixteen rows of `nb` super-blocks each (`src`: the rows one after another) unpacked into
/// `out` (`nb` blocks).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn unpack_q6_k_x16(src: &[BlockQ6K], nb: usize, out: &mut [BlockQ6Kx16]) {
    unpack_rows_with(src, nb, out, |rows, o| unpack_block(rows, o));
}

/// `out[t][r]` = row r of the unpacked tile `w` · `a[t]`, bit-identical to
/// `x86_avx2_q6k::vec_dot_q6_k_wide` on row r.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn q6_k_x16_wide<const N: usize>(
    w: &[BlockQ6Kx16],
    a: [&[BlockQ8K]; N],
) -> [[f32; ROWS]; N] {
    let mut acc = [_mm512_setzero_ps(); N];
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    for (i, x) in w[..n].iter().enumerate() {
        let mut y = [&a[0][i]; N];
        // −32·bsumⱼ of each token, sub-block j at j: where its sub-block sums start.
        let mut offsets = [[0i32; 16]; N];
        for t in 0..N {
            y[t] = &a[t][i];
            // SAFETY: bsums is 32 bytes; offsets[t] holds 16 i32.
            unsafe {
                let b = _mm512_cvtepi16_epi32(_mm256_loadu_si256(y[t].bsums.as_ptr().cast()));
                let o = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<5>(b));
                _mm512_storeu_si512(offsets[t].as_mut_ptr().cast(), o);
            }
        }
        let mut sumi = [_mm512_setzero_si512(); N];
        for (j, scales) in x.scales.chunks_exact(ROWS).enumerate() {
            // SAFETY: 16 bytes.
            let sc = _mm512_cvtepi8_epi32(unsafe { _mm_loadu_si128(scales.as_ptr().cast()) });
            let mut s = [_mm512_setzero_si512(); N];
            for t in 0..N {
                s[t] = _mm512_set1_epi32(offsets[t][j]);
            }
            for g in 0..4 {
                let at = 4 * (4 * j + g);
                // SAFETY: 64 bytes of qs at 16·at < 4096.
                let q = unsafe { _mm512_load_si512(x.qs[16 * at..].as_ptr().cast()) };
                for t in 0..N {
                    s[t] = dpbusd_at(s[t], q, &y[t].qs, at);
                }
            }
            for t in 0..N {
                sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(s[t], sc));
            }
        }
        // SAFETY: 16 floats, 64-byte aligned (the block is).
        let d = unsafe { _mm512_load_ps(x.d.as_ptr()) };
        for t in 0..N {
            let r = _mm512_mul_ps(_mm512_cvtepi32_ps(sumi[t]), d);
            acc[t] = _mm512_fmadd_ps(r, _mm512_set1_ps(y[t].d), acc[t]);
        }
    }
    let mut out = [[0f32; ROWS]; N];
    for (o, acc) in out.iter_mut().zip(&acc) {
        // SAFETY: o holds 16 floats.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), *acc) };
    }
    out
}

/// `out[r]` = row r of the unpacked tile `w` · `a`, bit-identical to `vec_dot_q6_k` (ggml's
/// one-token order) on row r: ggml's eight integer lanes per row — lane l sums values 4l..4l + 4
/// of every 32 times their sub-block's scale, minus 32·(sc₂ₗ·bsum₂ₗ + sc₂ₗ₊₁·bsum₂ₗ₊₁) — as
/// eight vectors of the sixteen rows, each super-block's lanes into eight float accumulators
/// with one FMA by d·a.d, and the accumulators summed in `hsum_ps`'s tree.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q6_k_x16_gemv(w: &[BlockQ6Kx16], a: &[BlockQ8K]) -> [f32; ROWS] {
    let mut acc = [_mm512_setzero_ps(); 8];
    let neg32 = _mm512_set1_epi16(-32);
    let low16 = _mm512_set1_epi32(0xffff);
    for (x, y) in w.iter().zip(a) {
        // SAFETY (both): 16 bytes of scales at 16j.
        let sc = |j: usize| {
            _mm512_cvtepi8_epi32(unsafe { _mm_loadu_si128(x.scales[ROWS * j..].as_ptr().cast()) })
        };
        // Lane l starts at its offset: (−32·sc₂ₗ, −32·sc₂ₗ₊₁) by (bsum₂ₗ, bsum₂ₗ₊₁).
        let mut lanes = [_mm512_setzero_si512(); 8];
        for (l, lane) in lanes.iter_mut().enumerate() {
            let pairs = _mm512_or_si512(
                _mm512_and_si512(sc(2 * l), low16),
                _mm512_slli_epi32::<16>(sc(2 * l + 1)),
            );
            let b: [i16; 2] = [y.bsums[2 * l], y.bsums[2 * l + 1]];
            let b = _mm512_set1_epi32(bytemuck::cast(b));
            *lane = _mm512_dpwssd_epi32(*lane, _mm512_mullo_epi16(pairs, neg32), b);
        }
        // Each 32 values: sub-block 2k's four dwords to lanes 0..4, 2k + 1's to lanes 4..8
        // (written so that every lane index is a constant: the lanes stay in registers).
        for k in 0..8 {
            for (half, lanes) in lanes.chunks_exact_mut(4).enumerate() {
                let j = 2 * k + half;
                // (scale, 0) pairs: `vpdpwssd` then adds exactly Σ·scale (|Σ| ≤ 4·63·128 < 2¹⁵).
                let s = _mm512_and_si512(sc(j), low16);
                for (g, lane) in lanes.iter_mut().enumerate() {
                    let at = 4 * (4 * j + g);
                    // SAFETY: 64 bytes of qs at 16·at < 4096.
                    let q = unsafe { _mm512_load_si512(x.qs[16 * at..].as_ptr().cast()) };
                    let p = dpbusd_at(_mm512_setzero_si512(), q, &y.qs, at);
                    *lane = _mm512_dpwssd_epi32(*lane, p, s);
                }
            }
        }
        // SAFETY: 16 floats, 64-byte aligned (the block is).
        let dd = _mm512_mul_ps(unsafe { _mm512_load_ps(x.d.as_ptr()) }, _mm512_set1_ps(y.d));
        for (acc, lane) in acc.iter_mut().zip(lanes) {
            *acc = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(lane), *acc);
        }
    }
    let s = _mm512_add_ps(
        _mm512_add_ps(_mm512_add_ps(acc[0], acc[4]), _mm512_add_ps(acc[2], acc[6])),
        _mm512_add_ps(_mm512_add_ps(acc[1], acc[5]), _mm512_add_ps(acc[3], acc[7])),
    );
    let mut out = [0f32; ROWS];
    // SAFETY: out holds 16 floats.
    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), s) };
    out
}

/// [`q6_k_x16_gemv`] for `N` tokens, one after another.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn q6_k_x16_gemv_tokens<const N: usize>(
    w: &[BlockQ6Kx16],
    a: [&[BlockQ8K]; N],
) -> [[f32; ROWS]; N] {
    let mut out = [[0f32; ROWS]; N];
    for (o, a) in out.iter_mut().zip(a) {
        *o = q6_k_x16_gemv(w, a);
    }
    out
}
