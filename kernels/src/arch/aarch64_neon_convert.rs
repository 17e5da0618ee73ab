//! aarch64 NEON activation quantizers (Q8_0, Q8_1, Q8_K; bit-identical to the reference ones)
//! and dequantizers of every type (bit-identical to the scalar reference: q·d, then − m or + m
//! as the reference writes it, in f32 with no FMA). They need only NEON, but like the rest of
//! `aarch64_neon` they run only through the table `aarch64_neon::install` fills, handed out by
//! `Kernels::for_isa(Isa::Neon)` after NEON + dotprod were found.

use std::arch::aarch64::*;

use half::f16;

use super::aarch64_neon::{
    bit_as, f16x4_to_f32, fifth_bits, k4_chunk, ld_s8, ld_u8, nibbles, planes_2bit, q6_groups,
};
use super::Then;
use crate::quant::kquant_util::unpack_scale_min_k4;
use crate::quant::{
    q3_k, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1,
    BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1, QK32, QK_K,
};

// ---------------------------------------------------------------- activation quantizers

/// One 32-value block quantized as `q8_0::quantize_row_act` / `q8_1::quantize_row_act` do:
/// q = x·(127/amax) rounded half to even (`fcvtns`) into `qs`. Returns (amax, Σq).
#[inline]
#[target_feature(enable = "neon")]
fn quantize_block_q8(xb: &[f32], qs: &mut [i8; QK32]) -> (f32, i32) {
    assert!(xb.len() >= QK32);
    let mut v = [vdupq_n_f32(0.0); 8];
    let mut m = vdupq_n_f32(0.0);
    for (k, vk) in v.iter_mut().enumerate() {
        // SAFETY: 4k + 4 <= 32 <= xb.len() (checked).
        *vk = unsafe { vld1q_f32(xb.as_ptr().add(4 * k)) };
        m = vmaxq_f32(m, vabsq_f32(*vk));
    }
    let m = vmaxvq_f32(m);
    let id = if m != 0.0 { 127.0 / m } else { 0.0 };
    let mut sum = vdupq_n_s32(0);
    for (k, vk) in v.iter().enumerate() {
        let q = vcvtnq_s32_f32(vmulq_n_f32(*vk, id));
        sum = vaddq_s32(sum, q);
        let q16 = vqmovn_s32(q);
        let q8 = vqmovn_s16(vcombine_s16(q16, q16));
        // SAFETY: 4 bytes at 4k of the 32-byte qs.
        unsafe { vst1_lane_s32::<0>(qs.as_mut_ptr().add(4 * k).cast(), vreinterpret_s32_s8(q8)) };
    }
    (m, vaddvq_s32(sum))
}

/// Q8_0 activations, bit-identical to `q8_0::quantize_row_act`.
#[target_feature(enable = "neon")]
pub(crate) fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (xb, b) in x.chunks_exact(QK32).zip(out.iter_mut()) {
        let (m, _) = quantize_block_q8(xb, &mut b.qs);
        b.d = f16::from_f32(m / 127.0);
    }
}

/// Q8_1 activations, bit-identical to `q8_1::quantize_row_act` (s = d·Σq with the f32 d).
#[target_feature(enable = "neon")]
pub(crate) fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (xb, b) in x.chunks_exact(QK32).zip(out.iter_mut()) {
        let (m, sum) = quantize_block_q8(xb, &mut b.qs);
        let d = m / 127.0;
        b.d = f16::from_f32(d);
        b.s = f16::from_f32(sum as f32 * d);
    }
}

/// Q8_K activations, bit-identical to the reference (`fcvtns` rounds half to even, as
/// ggml's `nearest_int` does for these magnitudes).
#[target_feature(enable = "neon")]
pub(crate) fn quantize_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    for (xb, b) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let mut m = vdupq_n_f32(0.0);
        for c in xb.chunks_exact(4) {
            // SAFETY: 4 floats.
            m = vmaxq_f32(m, vabsq_f32(unsafe { vld1q_f32(c.as_ptr()) }));
        }
        let am = vmaxvq_f32(m);
        if am == 0.0 {
            *b = bytemuck::Zeroable::zeroed();
            continue;
        }
        let max = xb.iter().copied().find(|v| v.abs() == am).unwrap_or(am);
        let iscale = -127.0f32 / max;
        for g in 0..16 {
            let mut s = vdupq_n_s32(0);
            for k in 0..4 {
                // SAFETY: 16g + 4k + 4 <= 256.
                let v = unsafe { vld1q_f32(xb.as_ptr().add(16 * g + 4 * k)) };
                let q = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(v, iscale)), vdupq_n_s32(127));
                s = vaddq_s32(s, q);
                let q16 = vqmovn_s32(q);
                let q8 = vqmovn_s16(vcombine_s16(q16, q16));
                // SAFETY: 4 bytes at 16g + 4k of the 256-byte qs.
                unsafe {
                    vst1_lane_s32::<0>(
                        b.qs.as_mut_ptr().add(16 * g + 4 * k).cast(),
                        vreinterpret_s32_s8(q8),
                    )
                };
            }
            b.bsums[g] = vaddvq_s32(s) as i16;
        }
        b.d = 1.0 / iscale;
    }
}

// ---------------------------------------------------------------- dequantize

/// out\[i\] = q\[i\]·d (then − m or + m) for 16 signed bytes: multiply, then subtract or add
/// (no FMA), exactly as the scalar reference rounds.
#[inline]
#[target_feature(enable = "neon")]
fn store_dequant16(out: &mut [f32], q: int8x16_t, d: f32, then: Then<f32>) {
    assert!(out.len() >= 16);
    for (h, w) in [vmovl_s8(vget_low_s8(q)), vmovl_high_s8(q)]
        .into_iter()
        .enumerate()
    {
        for (k, l) in [vmovl_s16(vget_low_s16(w)), vmovl_high_s16(w)]
            .into_iter()
            .enumerate()
        {
            let v = vmulq_n_f32(vcvtq_f32_s32(l), d);
            let v = match then {
                Then::Keep => v,
                Then::Sub(m) => vsubq_f32(v, vdupq_n_f32(m)),
                Then::Add(m) => vaddq_f32(v, vdupq_n_f32(m)),
            };
            // SAFETY: 8h + 4k + 4 <= 16 <= out.len() (checked).
            unsafe { vst1q_f32(out.as_mut_ptr().add(8 * h + 4 * k), v) };
        }
    }
}

/// [`store_dequant16`] for 32 values given as two halves, with one d and `then`.
#[inline]
#[target_feature(enable = "neon")]
fn store_dequant32(out: &mut [f32], (lo, hi): (int8x16_t, int8x16_t), d: f32, then: Then<f32>) {
    store_dequant16(out, lo, d, then);
    store_dequant16(&mut out[16..], hi, d, then);
}

/// Dequantize Q8_0 / Q8_1 blocks, `parts` giving each one's (d, qs): q·d.
#[inline]
#[target_feature(enable = "neon")]
fn dequant_q8_blocks<B>(w: &[B], out: &mut [f32], parts: impl Fn(&B) -> (f16, &[i8; QK32])) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let (d, qs) = parts(b);
        store_dequant32(o, (ld_s8(qs), ld_s8(&qs[16..])), d.to_f32(), Then::Keep);
    }
}

/// Dequantize Q8_0 (bit-identical to the reference).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_q8_0(w: &[BlockQ8_0], out: &mut [f32]) {
    dequant_q8_blocks(w, out, |b| (b.d, &b.qs));
}

/// Dequantize Q8_1 (bit-identical to the reference; `s` is not used).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_q8_1(w: &[BlockQ8_1], out: &mut [f32]) {
    dequant_q8_blocks(w, out, |b| (b.d, &b.qs));
}

/// Dequantize Q8_K (bit-identical to the reference).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_q8_k(w: &[BlockQ8K], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        for (k, ok) in o.chunks_exact_mut(16).enumerate() {
            store_dequant16(ok, ld_s8(&b.qs[16 * k..]), b.d, Then::Keep);
        }
    }
}

/// Dequantize Q4_0 (bit-identical to the reference).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_q4_0(w: &[BlockQ4_0], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        store_dequant32(o, nibbles(&b.qs, None, 8), b.d.to_f32(), Then::Keep);
    }
}

/// Dequantize Q4_1 (bit-identical to the reference: q·d + m).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_q4_1(w: &[BlockQ4_1], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let then = Then::Add(b.m.to_f32());
        store_dequant32(o, nibbles(&b.qs, None, 0), b.d.to_f32(), then);
    }
}

/// Dequantize Q5_0 (bit-identical to the reference).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_q5_0(w: &[BlockQ5_0], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let q = nibbles(&b.qs, Some(fifth_bits(u32::from_le_bytes(b.qh))), 16);
        store_dequant32(o, q, b.d.to_f32(), Then::Keep);
    }
}

/// Dequantize Q5_1 (bit-identical to the reference: q·d + m).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_q5_1(w: &[BlockQ5_1], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let q = nibbles(&b.qs, Some(fifth_bits(u32::from_le_bytes(b.qh))), 0);
        store_dequant32(o, q, b.d.to_f32(), Then::Add(b.m.to_f32()));
    }
}

/// One Q4_K / Q5_K super-block: per 32-value sub-block j, (d·sc)·q − dmin·m.
#[inline]
#[target_feature(enable = "neon")]
fn dequant_k4_block(
    (d, dmin): (f32, f32),
    scales: &[u8; 12],
    out: &mut [f32],
    chunk: impl Fn(usize) -> [[uint8x16_t; 2]; 2],
) {
    let (sc, mn) = unpack_scale_min_k4(scales);
    for c in 0..4 {
        for (h, [q0, q1]) in chunk(c).into_iter().enumerate() {
            let j = 2 * c + h;
            let q = (vreinterpretq_s8_u8(q0), vreinterpretq_s8_u8(q1));
            let then = Then::Sub(dmin * mn[j] as f32);
            store_dequant32(&mut out[32 * j..], q, d * sc[j] as f32, then);
        }
    }
}

/// Dequantize Q4_K (bit-identical to the reference).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_q4_k(w: &[BlockQ4K], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let dm = (b.d.to_f32(), b.dmin.to_f32());
        dequant_k4_block(dm, &b.scales, o, |c| k4_chunk(&b.qs[32 * c..], None, c));
    }
}

/// Dequantize Q5_K (bit-identical to the reference).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_q5_k(w: &[BlockQ5K], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let dm = (b.d.to_f32(), b.dmin.to_f32());
        let qh = (ld_u8(&b.qh), ld_u8(&b.qh[16..]));
        dequant_k4_block(dm, &b.scales, o, |c| k4_chunk(&b.qs[32 * c..], Some(qh), c));
    }
}

/// Dequantize Q2_K (bit-identical to the reference: (d·sc)·q − dmin·m per 16 values).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_q2_k(w: &[BlockQ2K], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
        for n in 0..2 {
            for half in 0..2 {
                let q = planes_2bit(ld_u8(&b.qs[32 * n + 16 * half..]));
                for (j, qj) in q.into_iter().enumerate() {
                    let at = 128 * n + 32 * j + 16 * half;
                    let sc = b.scales[at / 16];
                    let then = Then::Sub(dmin * (sc >> 4) as f32);
                    let dl = d * (sc & 0x0f) as f32;
                    store_dequant16(&mut o[at..], vreinterpretq_s8_u8(qj), dl, then);
                }
            }
        }
    }
}

/// Dequantize Q3_K (bit-identical to the reference: (d·sc)·q per 16 values, q in −4..=3).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_q3_k(w: &[BlockQ3K], out: &mut [f32]) {
    let four = vdupq_n_s8(4);
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let sc = q3_k::unpack_scales_words(&b.scales);
        for n in 0..2 {
            for half in 0..2 {
                let hm = ld_u8(&b.hmask[16 * half..]);
                let q = planes_2bit(ld_u8(&b.qs[32 * n + 16 * half..]));
                for (j, qj) in q.into_iter().enumerate() {
                    // A clear high bit subtracts 4: q = (low | 4·bit) − 4.
                    let u = vorrq_u8(qj, bit_as(hm, 1 << (4 * n + j), 4));
                    let q = vsubq_s8(vreinterpretq_s8_u8(u), four);
                    let at = 128 * n + 32 * j + 16 * half;
                    store_dequant16(&mut o[at..], q, d * sc[at / 16] as f32, Then::Keep);
                }
            }
        }
    }
}

/// Dequantize Q6_K (bit-identical to the reference: (d·sc)·(q − 32) per 16 values).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_q6_k(w: &[BlockQ6K], out: &mut [f32]) {
    let m32 = vdupq_n_s8(32);
    for (b, o) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for n in 0..2 {
            for half in 0..2 {
                let at0 = 16 * half;
                let (l0, l1) = (
                    ld_u8(&b.ql[64 * n + at0..]),
                    ld_u8(&b.ql[64 * n + 32 + at0..]),
                );
                let q = q6_groups(l0, l1, ld_u8(&b.qh[32 * n + at0..]));
                for (k, qk) in q.into_iter().enumerate() {
                    let at = 128 * n + 32 * k + at0;
                    let q = vsubq_s8(vreinterpretq_s8_u8(qk), m32);
                    store_dequant16(&mut o[at..], q, d * b.scales[at / 16] as f32, Then::Keep);
                }
            }
        }
    }
}

/// Widen F16 (`BF16 = false`, with `fcvtl`) or BF16 (`true`, a 16-bit shift) values to f32,
/// eight at a time (exact).
#[target_feature(enable = "neon")]
pub(crate) fn dequantize_half<const BF16: bool>(w: &[u16], out: &mut [f32]) {
    let n = w.len().min(out.len());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n <= w.len().
        let h = unsafe { vld1q_u16(w.as_ptr().add(i)) };
        let (lo, hi) = if BF16 {
            (
                vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h))),
                vreinterpretq_f32_u32(vshll_high_n_u16::<16>(h)),
            )
        } else {
            (
                f16x4_to_f32(vget_low_u16(h)),
                f16x4_to_f32(vget_high_u16(h)),
            )
        };
        // SAFETY: i + 8 <= n <= out.len().
        unsafe {
            vst1q_f32(out.as_mut_ptr().add(i), lo);
            vst1q_f32(out.as_mut_ptr().add(i + 4), hi);
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
