//! x86-64 AVX2 + FMA + F16C activation quantizers (bit-identical to the reference ones) and
//! dequantizers of the 32-value and float types (the K-quant ones are in `x86_avx2_kdequant`).
//! Same safety contract as `x86_avx2`: every `#[target_feature]` function here runs only
//! through the table `x86_avx2::install` fills, handed out after AVX2, FMA and F16C were
//! detected.

use std::arch::x86_64::*;

use half::f16;

use super::x86_avx2::{f16x2, hsum_epi32, load32, nibbles_32, quants_5bit};
use super::Then;
use crate::quant::{
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8K, BlockQ8_0, BlockQ8_1, QK32, QK_K,
};

// ---------------------------------------------------------------- activation quantizers

/// Largest |x| over `x` (a multiple of 8 long).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn amax(x: &[f32]) -> f32 {
    let sign = _mm256_set1_ps(-0.0);
    let mut m = _mm256_setzero_ps();
    for c in x.chunks_exact(8) {
        // SAFETY: 8 floats.
        let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v));
    }
    let s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_max_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Pack 4 × 8 i32 (each in −128..=127) into 32 i8 in order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pack_i32x32(v: [__m256i; 4]) -> __m256i {
    let ab = _mm256_packs_epi32(v[0], v[1]);
    let cd = _mm256_packs_epi32(v[2], v[3]);
    let abcd = _mm256_packs_epi16(ab, cd);
    // packs interleave 128-bit lanes: restore the dword order 0,4,1,5,2,6,3,7.
    _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// `round` half to even of 8 floats (the MXCSR default), as `f32::round_ties_even`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn round_half_even(v: __m256) -> __m256i {
    _mm256_cvtps_epi32(_mm256_round_ps::<
        { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
    >(v))
}

/// Q8_0 activations, bit-identical to `q8_0::quantize_row_act`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (xb, b) in x.chunks_exact(QK32).zip(out.iter_mut()) {
        let m = amax(xb);
        let id = _mm256_set1_ps(if m != 0.0 { 127.0 / m } else { 0.0 });
        b.d = f16::from_f32(m / 127.0);
        let mut q = [_mm256_setzero_si256(); 4];
        for (k, qk) in q.iter_mut().enumerate() {
            // SAFETY: xb has 32 floats.
            let v = unsafe { _mm256_loadu_ps(xb.as_ptr().add(8 * k)) };
            *qk = round_half_even(_mm256_mul_ps(v, id));
        }
        // SAFETY: qs is 32 bytes.
        unsafe { _mm256_storeu_si256(b.qs.as_mut_ptr().cast(), pack_i32x32(q)) };
    }
}

/// Q8_1 activations, bit-identical to `q8_1::quantize_row_act`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (xb, b) in x.chunks_exact(QK32).zip(out.iter_mut()) {
        let m = amax(xb);
        let d = m / 127.0;
        let id = _mm256_set1_ps(if m != 0.0 { 127.0 / m } else { 0.0 });
        b.d = f16::from_f32(d);
        let mut q = [_mm256_setzero_si256(); 4];
        let mut sum = _mm256_setzero_si256();
        for (k, qk) in q.iter_mut().enumerate() {
            // SAFETY: xb has 32 floats.
            let v = unsafe { _mm256_loadu_ps(xb.as_ptr().add(8 * k)) };
            *qk = round_half_even(_mm256_mul_ps(v, id));
            sum = _mm256_add_epi32(sum, *qk);
        }
        b.s = f16::from_f32(hsum_epi32(sum) as f32 * d);
        // SAFETY: qs is 32 bytes.
        unsafe { _mm256_storeu_si256(b.qs.as_mut_ptr().cast(), pack_i32x32(q)) };
    }
}

/// Q8_K activations, bit-identical to `q8_k::quantize_row_ref` (nearest_int's float-add
/// rounding done lane-wise).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    for (xb, b) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let am = amax(xb);
        if am == 0.0 {
            *b = bytemuck::Zeroable::zeroed();
            continue;
        }
        // The first value of largest magnitude, with its sign (as the scalar scan picks it).
        let max = xb.iter().copied().find(|v| v.abs() == am).unwrap_or(am);
        let iscale = -127.0f32 / max;
        let is = _mm256_set1_ps(iscale);
        let magic = _mm256_set1_ps(12_582_912.0);
        let mant = _mm256_set1_epi32(0x007f_ffff);
        let off = _mm256_set1_epi32(0x0040_0000);
        let top = _mm256_set1_epi32(127);
        for g in 0..QK_K / 32 {
            let mut q = [_mm256_setzero_si256(); 4];
            for (k, qk) in q.iter_mut().enumerate() {
                // SAFETY: 32g + 8k + 8 <= 256.
                let v = unsafe { _mm256_loadu_ps(xb.as_ptr().add(32 * g + 8 * k)) };
                let r = _mm256_castps_si256(_mm256_add_ps(_mm256_mul_ps(is, v), magic));
                *qk = _mm256_min_epi32(_mm256_sub_epi32(_mm256_and_si256(r, mant), off), top);
            }
            b.bsums[2 * g] = hsum_epi32(_mm256_add_epi32(q[0], q[1])) as i16;
            b.bsums[2 * g + 1] = hsum_epi32(_mm256_add_epi32(q[2], q[3])) as i16;
            // SAFETY: 32 bytes at 32g of the 256-byte qs.
            unsafe { _mm256_storeu_si256(b.qs.as_mut_ptr().add(32 * g).cast(), pack_i32x32(q)) };
        }
        b.d = 1.0 / iscale;
    }
}

// ---------------------------------------------------------------- dequantize

/// out\[i\] = q\[i\]·d (then − m or + m) for 32 signed bytes, with d (and m) per
/// half of 16 values: multiply, then subtract or add (no FMA), exactly as the scalar reference
/// rounds.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn store_dequant32(out: &mut [f32], q: __m256i, d: [f32; 2], then: Then<[f32; 2]>) {
    assert!(out.len() >= 32);
    let lanes = [
        _mm256_cvtepi8_epi32(_mm256_castsi256_si128(q)),
        _mm256_cvtepi8_epi32(_mm_srli_si128::<8>(_mm256_castsi256_si128(q))),
        _mm256_cvtepi8_epi32(_mm256_extracti128_si256::<1>(q)),
        _mm256_cvtepi8_epi32(_mm_srli_si128::<8>(_mm256_extracti128_si256::<1>(q))),
    ];
    for (k, l) in lanes.into_iter().enumerate() {
        let v = _mm256_mul_ps(_mm256_cvtepi32_ps(l), _mm256_set1_ps(d[k / 2]));
        let v = match then {
            Then::Keep => v,
            Then::Sub(m) => _mm256_sub_ps(v, _mm256_set1_ps(m[k / 2])),
            Then::Add(m) => _mm256_add_ps(v, _mm256_set1_ps(m[k / 2])),
        };
        // SAFETY: 8k + 8 <= 32 <= out.len() (checked).
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * k), v) };
    }
}

/// Dequantize Q8_0 / Q8_1 blocks, `parts` giving each one's (d, qs): q·d.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dequant_q8_blocks<B>(w: &[B], out: &mut [f32], parts: impl Fn(&B) -> (f16, &[i8; QK32])) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let (d, qs) = parts(b);
        store_dequant32(o, load32(qs), [f16x2(d, d).0; 2], Then::Keep);
    }
}

/// Dequantize Q8_0 (bit-identical to the reference).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q8_0(w: &[BlockQ8_0], out: &mut [f32]) {
    dequant_q8_blocks(w, out, |b| (b.d, &b.qs));
}

/// Dequantize Q8_1 (bit-identical to the reference; `s` is not used).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q8_1(w: &[BlockQ8_1], out: &mut [f32]) {
    dequant_q8_blocks(w, out, |b| (b.d, &b.qs));
}

/// Dequantize Q8_K (bit-identical to the reference).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q8_k(w: &[BlockQ8K], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        for (k, ok) in o.chunks_exact_mut(32).enumerate() {
            store_dequant32(ok, load32(&b.qs[32 * k..]), [b.d; 2], Then::Keep);
        }
    }
}

/// Dequantize Q4_0 (bit-identical to the reference).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q4_0(w: &[BlockQ4_0], out: &mut [f32]) {
    let eight = _mm256_set1_epi8(8);
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let d = f16x2(b.d, b.d).0;
        store_dequant32(
            o,
            _mm256_sub_epi8(nibbles_32(&b.qs), eight),
            [d; 2],
            Then::Keep,
        );
    }
}

/// Dequantize Q4_1 (bit-identical to the reference: q·d + m).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q4_1(w: &[BlockQ4_1], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let (d, m) = f16x2(b.d, b.m);
        store_dequant32(o, nibbles_32(&b.qs), [d; 2], Then::Add([m; 2]));
    }
}

/// Dequantize Q5_0 (bit-identical to the reference).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q5_0(w: &[BlockQ5_0], out: &mut [f32]) {
    let sixteen = _mm256_set1_epi8(16);
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let q = _mm256_sub_epi8(quants_5bit(&b.qs, b.qh), sixteen);
        store_dequant32(o, q, [f16x2(b.d, b.d).0; 2], Then::Keep);
    }
}

/// Dequantize Q5_1 (bit-identical to the reference: q·d + m).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q5_1(w: &[BlockQ5_1], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let (d, m) = f16x2(b.d, b.m);
        store_dequant32(o, quants_5bit(&b.qs, b.qh), [d; 2], Then::Add([m; 2]));
    }
}

/// Widen F16 (`BF16 = false`) or BF16 (`true`) values to f32, eight at a time (exact).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_half<const BF16: bool>(w: &[u16], out: &mut [f32]) {
    let n = w.len().min(out.len());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n for both slices.
        unsafe {
            let h = _mm_loadu_si128(w.as_ptr().add(i).cast());
            let v = if BF16 {
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
            } else {
                _mm256_cvtph_ps(h)
            };
            _mm256_storeu_ps(out.as_mut_ptr().add(i), v);
        }
        i += 8;
    }
    for j in i..n {
        out[j] = if BF16 {
            f32::from_bits((w[j] as u32) << 16)
        } else {
            f16::from_bits(w[j]).to_f32()
        };
    }
}
