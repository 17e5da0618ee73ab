//! x86-64 AVX2 dequantizers of the K-quant types, bit-identical to the scalar reference: each
//! value is (d·sc)·q, then − dmin·m where the type has mins, in f32 with no FMA. Same safety
//! contract as `x86_avx2`: every `#[target_feature]` function here runs only through the
//! table `x86_avx2::install` fills, handed out after AVX2, FMA and F16C were detected.

use std::arch::x86_64::*;

use super::x86_avx2::{bit_as, f16x2, load32u, nibble_halves, planes_2bit, q5k_chunk, q6_half};
use super::x86_avx2_convert::store_dequant32;
use super::Then;
use crate::quant::kquant_util::unpack_scale_min_k4;
use crate::quant::{q3_k, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, QK_K};

/// One Q4_K / Q5_K super-block: `chunk(c)` gives the quants of values 64c..64c+64 as two
/// 32-byte halves, each half a sub-block with its own 6-bit scale and min.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dequant_k4_block(
    (d, dmin): (f32, f32),
    scales: &[u8; 12],
    out: &mut [f32],
    chunk: impl Fn(usize) -> [__m256i; 2],
) {
    let (sc, mn) = unpack_scale_min_k4(scales);
    for c in 0..4 {
        for (h, q) in chunk(c).into_iter().enumerate() {
            let j = 2 * c + h;
            let (d1, m1) = (d * sc[j] as f32, dmin * mn[j] as f32);
            store_dequant32(&mut out[32 * j..], q, [d1; 2], Then::Sub([m1; 2]));
        }
    }
}

/// Dequantize Q4_K (bit-identical to the reference).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q4_k(w: &[BlockQ4K], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        dequant_k4_block(f16x2(b.d, b.dmin), &b.scales, o, |c| {
            nibble_halves(load32u(&b.qs[32 * c..]))
        });
    }
}

/// Dequantize Q5_K (bit-identical to the reference).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q5_k(w: &[BlockQ5K], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let qh = load32u(&b.qh);
        dequant_k4_block(f16x2(b.d, b.dmin), &b.scales, o, |c| {
            q5k_chunk(load32u(&b.qs[32 * c..]), qh, c)
        });
    }
}

/// Dequantize Q2_K (bit-identical to the reference: d·sc·q − dmin·m per 16 values).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q2_k(w: &[BlockQ2K], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let (d, dmin) = f16x2(b.d, b.dmin);
        for n in 0..2 {
            for (j, q) in planes_2bit(load32u(&b.qs[32 * n..]))
                .into_iter()
                .enumerate()
            {
                // Values 128n + 32j.. = sub-blocks s and s + 1.
                let s = 8 * n + 2 * j;
                let sc = [b.scales[s], b.scales[s + 1]];
                let dl = sc.map(|v| d * (v & 0x0f) as f32);
                let ml = sc.map(|v| dmin * (v >> 4) as f32);
                store_dequant32(&mut o[16 * s..], q, dl, Then::Sub(ml));
            }
        }
    }
}

/// Dequantize Q3_K (bit-identical to the reference: d·sc·q per 16 values, q in −4..=3).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q3_k(w: &[BlockQ3K], out: &mut [f32]) {
    let four = _mm256_set1_epi8(4);
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = f16x2(b.d, b.d).0;
        let sc = q3_k::unpack_scales_words(&b.scales);
        let hm = load32u(&b.hmask);
        for n in 0..2 {
            for (j, low) in planes_2bit(load32u(&b.qs[32 * n..]))
                .into_iter()
                .enumerate()
            {
                // A clear high bit subtracts 4: q = (low | 4·bit) − 4.
                let q =
                    _mm256_sub_epi8(_mm256_or_si256(low, bit_as(hm, 1 << (4 * n + j), 4)), four);
                let s = 8 * n + 2 * j;
                let dl = [d * sc[s] as f32, d * sc[s + 1] as f32];
                store_dequant32(&mut o[16 * s..], q, dl, Then::Keep);
            }
        }
    }
}

/// Dequantize Q6_K (bit-identical to the reference: d·sc·(q − 32) per 16 values).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dequantize_q6_k(w: &[BlockQ6K], out: &mut [f32]) {
    let m32 = _mm256_set1_epi8(32);
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = f16x2(b.d, b.d).0;
        for n in 0..2 {
            let q = q6_half(&b.ql[n * 64..], &b.qh[n * 32..]);
            for (k, qk) in q.into_iter().enumerate() {
                let s = 8 * n + 2 * k;
                let dl = [d * b.scales[s] as f32, d * b.scales[s + 1] as f32];
                store_dequant32(&mut o[16 * s..], _mm256_sub_epi8(qk, m32), dl, Then::Keep);
            }
        }
    }
}
