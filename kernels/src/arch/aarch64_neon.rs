//! aarch64 NEON + dotprod versions of the dot products of every quantized type, F32, F16, BF16
//! rows (four-token versions for Q8_0, Q4_0, Q5_0, Q4_K, Q6_K, bit-identical per token to the
//! one-token ones), and the unpacking helpers they share with the activation quantizers and
//! dequantizers in `aarch64_neon_convert`.
//!
//! `vdotq_s32` is unstable on our toolchain, so `sdot` is issued with `asm!` inside
//! `#[target_feature(enable = "neon,dotprod")]` functions. They may only run on a CPU with
//! dotprod: they are reachable only through the table `install` fills, which
//! `Kernels::for_isa(Isa::Neon)` hands out after checking it.

use std::arch::aarch64::*;
use std::arch::asm;

use nanorun_formats::GgmlType;

use super::aarch64_neon_convert as convert;
use crate::quant::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use crate::traits::{cast, cast_mut, TypeTraits};

/// acc.s\[j\] += Σ_{k<4} a.b\[4j+k\]·b.b\[4j+k\] (SDOT, vector form).
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: sdot is available (target feature); it only reads and writes registers.
    unsafe {
        asm!("sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
             acc = inout(vreg) acc, a = in(vreg) a, b = in(vreg) b,
             options(pure, nomem, nostack, preserves_flags));
    }
    acc
}

/// Σ over a block of 32 quants: `lo`/`hi` (values 0..16, 16..32) · the activation quants
/// `qs`, in 4 lanes.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot32((lo, hi): (int8x16_t, int8x16_t), qs: &[i8; 32]) -> int32x4_t {
    sdot(sdot(vdupq_n_s32(0), lo, ld_s8(qs)), hi, ld_s8(&qs[16..]))
}

/// 16 signed bytes from the front of `p`.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn ld_s8(p: &[i8]) -> int8x16_t {
    assert!(p.len() >= 16);
    // SAFETY: 16 readable bytes (checked).
    unsafe { vld1q_s8(p.as_ptr()) }
}

/// 16 bytes from the front of `p`.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn ld_u8(p: &[u8]) -> uint8x16_t {
    assert!(p.len() >= 16);
    // SAFETY: 16 readable bytes (checked).
    unsafe { vld1q_u8(p.as_ptr()) }
}

/// Σ over blocks of `f(x, y) = (i32x4 partial sums, scale, extra)`: p·scale in two float
/// accumulators, `extra` summed as a scalar.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sum_blocks<B, A>(w: &[B], a: &[A], f: impl Fn(&B, &A) -> (int32x4_t, f32, f32)) -> f32 {
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut extra = 0.0f32;
    for (i, (x, y)) in w.iter().zip(a).enumerate() {
        let (p, d, e) = f(x, y);
        acc[i & 1] = vfmaq_n_f32(acc[i & 1], vcvtq_f32_s32(p), d);
        extra += e;
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1])) + extra
}

/// Σ over blocks of scale·`dot(prep(w), a)` for `N` rows at once: `prep` (unpacking a weight
/// block) runs once per block for all of them, and each row gets exactly the operations, in
/// the same order, of `N = 1` — the results do not depend on `N`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sum_blocks_n<B, A, P: Copy, const N: usize>(
    w: &[B],
    a: [&[A]; N],
    scale: impl Fn(&B, &A) -> f32,
    prep: impl Fn(&B) -> P,
    dot: impl Fn(P, &A) -> int32x4_t,
) -> [f32; N] {
    let mut acc = [[vdupq_n_f32(0.0); 2]; N];
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    for i in 0..n {
        let p = prep(&w[i]);
        for t in 0..N {
            let y = &a[t][i];
            acc[t][i & 1] = vfmaq_n_f32(acc[t][i & 1], vcvtq_f32_s32(dot(p, y)), scale(&w[i], y));
        }
    }
    std::array::from_fn(|t| vaddvq_f32(vaddq_f32(acc[t][0], acc[t][1])))
}

/// Signed quants of a 32-value block as two halves (values 0..16, 16..32) from nibbles and
/// optional fifth bits, minus `offset`.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn nibbles(
    qs: &[u8; 16],
    high: Option<(uint8x16_t, uint8x16_t)>,
    offset: i8,
) -> (int8x16_t, int8x16_t) {
    let v = ld_u8(qs);
    let (mut lo, mut hi) = (vandq_u8(v, vdupq_n_u8(0x0f)), vshrq_n_u8::<4>(v));
    if let Some((h0, h1)) = high {
        lo = vorrq_u8(lo, h0);
        hi = vorrq_u8(hi, h1);
    }
    let o = vdupq_n_s8(offset);
    (
        vsubq_s8(vreinterpretq_s8_u8(lo), o),
        vsubq_s8(vreinterpretq_s8_u8(hi), o),
    )
}

/// 0x10 in lane j where bit j of `qh` is set (values 0..16, then 16..32).
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn fifth_bits(qh: u32) -> (uint8x16_t, uint8x16_t) {
    const BITS: [u8; 8] = [1, 2, 4, 8, 16, 32, 64, 128];
    // SAFETY: BITS is 8 bytes.
    let bits = unsafe { vld1_u8(BITS.as_ptr()) };
    let b = qh.to_le_bytes();
    let byte = |i: usize| vtst_u8(vdup_n_u8(b[i]), bits);
    let s = vdupq_n_u8(0x10);
    (
        vandq_u8(vcombine_u8(byte(0), byte(1)), s),
        vandq_u8(vcombine_u8(byte(2), byte(3)), s),
    )
}

/// `val` in each byte of `v` that has `bit` set, 0 in the others.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn bit_as(v: uint8x16_t, bit: u8, val: u8) -> uint8x16_t {
    vandq_u8(vtstq_u8(v, vdupq_n_u8(bit)), vdupq_n_u8(val))
}

/// The four 2-bit planes of 16 bytes of Q2_K / Q3_K quants (values +0, +32, +64, +96).
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn planes_2bit(qs: uint8x16_t) -> [uint8x16_t; 4] {
    let m3 = vdupq_n_u8(3);
    [
        vandq_u8(qs, m3),
        vandq_u8(vshrq_n_u8::<2>(qs), m3),
        vandq_u8(vshrq_n_u8::<4>(qs), m3),
        vshrq_n_u8::<6>(qs),
    ]
}

/// Chunk `c` (values 64c..64c+64) of a Q4_K block (`qh: None`; `qs` its 32 bytes) or a Q5_K
/// block (`Some` of its two 16-byte halves of high bits: bits 2c and 2c+1 are this chunk's):
/// \[low-nibble values, high-nibble values\], each as two 16-lane halves.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn k4_chunk(
    qs: &[u8],
    qh: Option<(uint8x16_t, uint8x16_t)>,
    c: usize,
) -> [[uint8x16_t; 2]; 2] {
    let (v0, v1) = (ld_u8(qs), ld_u8(&qs[16..]));
    let m4 = vdupq_n_u8(0x0f);
    let mut q = [
        [vandq_u8(v0, m4), vandq_u8(v1, m4)],
        [vshrq_n_u8::<4>(v0), vshrq_n_u8::<4>(v1)],
    ];
    if let Some((h0, h1)) = qh {
        for (k, qk) in q.iter_mut().enumerate() {
            let bit = 1 << (2 * c + k);
            qk[0] = vorrq_u8(qk[0], bit_as(h0, bit, 16));
            qk[1] = vorrq_u8(qk[1], bit_as(h1, bit, 16));
        }
    }
    q
}

/// The four 32-value groups' 16-lane slices of a Q6_K half (unsigned 0..=63), from the two
/// `ql` slices 32 bytes apart and the `qh` slice.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn q6_groups(l0: uint8x16_t, l1: uint8x16_t, h: uint8x16_t) -> [uint8x16_t; 4] {
    let m4 = vdupq_n_u8(0x0f);
    let m3 = vdupq_n_u8(0x30);
    [
        vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8::<4>(h), m3)),
        vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8::<2>(h), m3)),
        vorrq_u8(vshrq_n_u8::<4>(l0), vandq_u8(h, m3)),
        vorrq_u8(vshrq_n_u8::<4>(l1), vandq_u8(vshrq_n_u8::<2>(h), m3)),
    ]
}

/// Q8_0 · N Q8_0 rows.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn dot_q8_0_n<const N: usize>(w: &[BlockQ8_0], a: [&[BlockQ8_0]; N]) -> [f32; N] {
    sum_blocks_n(
        w,
        a,
        |x, y| x.d.to_f32() * y.d.to_f32(),
        |x| (ld_s8(&x.qs), ld_s8(&x.qs[16..])),
        |p, y| sdot32(p, &y.qs),
    )
}

/// Q4_0 · N Q8_0 rows.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn dot_q4_0_n<const N: usize>(w: &[BlockQ4_0], a: [&[BlockQ8_0]; N]) -> [f32; N] {
    sum_blocks_n(
        w,
        a,
        |x, y| x.d.to_f32() * y.d.to_f32(),
        |x| nibbles(&x.qs, None, 8),
        |p, y| sdot32(p, &y.qs),
    )
}

/// Q5_0 · N Q8_0 rows.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn dot_q5_0_n<const N: usize>(w: &[BlockQ5_0], a: [&[BlockQ8_0]; N]) -> [f32; N] {
    sum_blocks_n(
        w,
        a,
        |x, y| x.d.to_f32() * y.d.to_f32(),
        |x| nibbles(&x.qs, Some(fifth_bits(u32::from_le_bytes(x.qh))), 16),
        |p, y| sdot32(p, &y.qs),
    )
}

/// Σq·a over 32 values as four lane partial sums: `q` two unsigned (≤ 127) halves, `y` 32
/// activations.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn dot32(q0: uint8x16_t, q1: uint8x16_t, y: &[i8]) -> int32x4_t {
    let p = sdot(vdupq_n_s32(0), vreinterpretq_s8_u8(q0), ld_s8(y));
    sdot(p, vreinterpretq_s8_u8(q1), ld_s8(&y[16..]))
}

/// Q4_K · N Q8_K rows (each weight block unpacked once for all rows).
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn dot_q4_k_n<const N: usize>(w: &[BlockQ4K], a: [&[BlockQ8K]; N]) -> [f32; N] {
    let mut sum = [0.0f32; N];
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    for (i, x) in w[..n].iter().enumerate() {
        // Scaled sub-block sums stay in vector lanes: one horizontal add per super-block.
        let (mut isum, mut imin) = ([vdupq_n_s32(0); N], [0i32; N]);
        let (sc, mn) = crate::quant::kquant_util::unpack_scale_min_k4(&x.scales);
        for c in 0..4 {
            let (s0, m0, s1, m1) = (sc[2 * c], mn[2 * c], sc[2 * c + 1], mn[2 * c + 1]);
            let [[l0, l1], [h0, h1]] = k4_chunk(&x.qs[32 * c..], None, c);
            for t in 0..N {
                let y = &a[t][i];
                imin[t] += m0 as i32 * (y.bsums[4 * c] as i32 + y.bsums[4 * c + 1] as i32);
                imin[t] += m1 as i32 * (y.bsums[4 * c + 2] as i32 + y.bsums[4 * c + 3] as i32);
                let lo = dot32(l0, l1, &y.qs[64 * c..]);
                let hi = dot32(h0, h1, &y.qs[64 * c + 32..]);
                isum[t] = vmlaq_n_s32(vmlaq_n_s32(isum[t], lo, s0 as i32), hi, s1 as i32);
            }
        }
        for t in 0..N {
            let y = &a[t][i];
            let isum = vaddvq_s32(isum[t]);
            sum[t] += x.d.to_f32() * y.d * isum as f32 - x.dmin.to_f32() * y.d * imin[t] as f32;
        }
    }
    sum
}

/// Q6_K · N Q8_K rows: unsigned 6-bit quants, minus 32·Σ sc·bsums.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn dot_q6_k_n<const N: usize>(w: &[BlockQ6K], a: [&[BlockQ8K]; N]) -> [f32; N] {
    let mut sum = [0.0f32; N];
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    for (i, x) in w[..n].iter().enumerate() {
        let mut isum = [vdupq_n_s32(0); N];
        for n in 0..2 {
            for half in 0..2 {
                // 16 lanes of each of the four 32-value groups.
                let o = 16 * half;
                let (l0, l1) = (ld_u8(&x.ql[64 * n + o..]), ld_u8(&x.ql[64 * n + 32 + o..]));
                let q = q6_groups(l0, l1, ld_u8(&x.qh[32 * n + o..]));
                for (k, qk) in q.iter().enumerate() {
                    let at = 128 * n + 32 * k + o;
                    for t in 0..N {
                        let p = sdot(
                            vdupq_n_s32(0),
                            vreinterpretq_s8_u8(*qk),
                            ld_s8(&a[t][i].qs[at..]),
                        );
                        isum[t] = vmlaq_n_s32(isum[t], p, x.scales[at / 16] as i32);
                    }
                }
            }
        }
        for t in 0..N {
            let y = &a[t][i];
            let offset: i32 = x
                .scales
                .iter()
                .zip(&y.bsums)
                .map(|(&s, &b)| s as i32 * b as i32)
                .sum();
            sum[t] += x.d.to_f32() * y.d * (vaddvq_s32(isum[t]) - 32 * offset) as f32;
        }
    }
    sum
}

/// Q4_1 · Q8_1.
#[target_feature(enable = "neon,dotprod")]
pub(crate) fn vec_dot_q4_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    sum_blocks(w, a, |x, y| {
        let (lo, hi) = nibbles(&x.qs, None, 0);
        let p = sdot32((lo, hi), &y.qs);
        (p, x.d.to_f32() * y.d.to_f32(), x.m.to_f32() * y.s.to_f32())
    })
}

/// Q5_1 · Q8_1.
#[target_feature(enable = "neon,dotprod")]
pub(crate) fn vec_dot_q5_1(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
    sum_blocks(w, a, |x, y| {
        let (lo, hi) = nibbles(&x.qs, Some(fifth_bits(u32::from_le_bytes(x.qh))), 0);
        let p = sdot32((lo, hi), &y.qs);
        (p, x.d.to_f32() * y.d.to_f32(), x.m.to_f32() * y.s.to_f32())
    })
}

/// Q5_K · Q8_K.
#[target_feature(enable = "neon,dotprod")]
pub(crate) fn vec_dot_q5_k(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let (mut isum, mut imin) = (vdupq_n_s32(0), 0i32);
        let qh = (ld_u8(&x.qh), ld_u8(&x.qh[16..]));
        let (sc, mn) = crate::quant::kquant_util::unpack_scale_min_k4(&x.scales);
        for c in 0..4 {
            let (s0, m0, s1, m1) = (sc[2 * c], mn[2 * c], sc[2 * c + 1], mn[2 * c + 1]);
            imin += m0 as i32 * (y.bsums[4 * c] as i32 + y.bsums[4 * c + 1] as i32);
            imin += m1 as i32 * (y.bsums[4 * c + 2] as i32 + y.bsums[4 * c + 3] as i32);
            let [[l0, l1], [h0, h1]] = k4_chunk(&x.qs[32 * c..], Some(qh), c);
            let lo = dot32(l0, l1, &y.qs[64 * c..]);
            let hi = dot32(h0, h1, &y.qs[64 * c + 32..]);
            isum = vmlaq_n_s32(vmlaq_n_s32(isum, lo, s0 as i32), hi, s1 as i32);
        }
        let isum = vaddvq_s32(isum);
        sum += x.d.to_f32() * y.d * isum as f32 - x.dmin.to_f32() * y.d * imin as f32;
    }
    sum
}

/// Q2_K · Q8_K.
#[target_feature(enable = "neon,dotprod")]
pub(crate) fn vec_dot_q2_k(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let imin: i32 = x
            .scales
            .iter()
            .zip(&y.bsums)
            .map(|(&s, &b)| (s >> 4) as i32 * b as i32)
            .sum();
        let mut isum = vdupq_n_s32(0);
        for n in 0..2 {
            for half in 0..2 {
                let q = planes_2bit(ld_u8(&x.qs[32 * n + 16 * half..]));
                for (j, qj) in q.iter().enumerate() {
                    let at = 128 * n + 32 * j + 16 * half;
                    let p = sdot(vdupq_n_s32(0), vreinterpretq_s8_u8(*qj), ld_s8(&y.qs[at..]));
                    isum = vmlaq_n_s32(isum, p, (x.scales[at / 16] & 0x0f) as i32);
                }
            }
        }
        let isum = vaddvq_s32(isum);
        sum += x.d.to_f32() * y.d * isum as f32 - x.dmin.to_f32() * y.d * imin as f32;
    }
    sum
}

/// Q3_K · Q8_K: unsigned q = low bits + 4·high bit, minus 4·Σ sc·bsums.
#[target_feature(enable = "neon,dotprod")]
pub(crate) fn vec_dot_q3_k(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let sc = crate::quant::q3_k::unpack_scales_words(&x.scales);
        let offset: i32 = sc
            .iter()
            .zip(&y.bsums)
            .map(|(&s, &b)| s as i32 * b as i32)
            .sum();
        let mut isum = vdupq_n_s32(0);
        for n in 0..2 {
            for half in 0..2 {
                let hm = ld_u8(&x.hmask[16 * half..]);
                let q = planes_2bit(ld_u8(&x.qs[32 * n + 16 * half..]));
                for (j, qj) in q.iter().enumerate() {
                    let h = bit_as(hm, 1 << (4 * n + j), 4);
                    let at = 128 * n + 32 * j + 16 * half;
                    let qv = vreinterpretq_s8_u8(vorrq_u8(*qj, h));
                    let p = sdot(vdupq_n_s32(0), qv, ld_s8(&y.qs[at..]));
                    isum = vmlaq_n_s32(isum, p, sc[at / 16] as i32);
                }
            }
        }
        sum += x.d.to_f32() * y.d * (vaddvq_s32(isum) - 4 * offset) as f32;
    }
    sum
}

/// F32 · F32.
#[target_feature(enable = "neon,dotprod")]
pub(crate) fn vec_dot_f32(w: &[f32], a: &[f32]) -> f32 {
    let n = w.len().min(a.len());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        for (k, ak) in acc.iter_mut().enumerate() {
            // SAFETY: i + 4k + 4 <= n for both slices.
            let (x, y) = unsafe {
                (
                    vld1q_f32(w.as_ptr().add(i + 4 * k)),
                    vld1q_f32(a.as_ptr().add(i + 4 * k)),
                )
            };
            *ak = vfmaq_f32(*ak, x, y);
        }
        i += 16;
    }
    let mut sum = vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ));
    for j in i..n {
        sum += w[j] * a[j];
    }
    sum
}

/// Four f16 (raw bits in the low half of `h`) → four f32, with `fcvtl` (base ARMv8 FP; the
/// `float16x4_t` intrinsics need the unstable `f16` type).
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn f16x4_to_f32(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: fcvtl only reads and writes registers; NEON is available (target feature).
    unsafe {
        asm!("fcvtl {out:v}.4s, {h:v}.4h",
             out = lateout(vreg) out, h = in(vreg) h,
             options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// F16 · F32.
#[target_feature(enable = "neon,dotprod")]
pub(crate) fn vec_dot_f16(w: &[u16], a: &[f32]) -> f32 {
    let n = w.len().min(a.len());
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n for both slices.
        let (h, y0, y1) = unsafe {
            (
                vld1q_u16(w.as_ptr().add(i)),
                vld1q_f32(a.as_ptr().add(i)),
                vld1q_f32(a.as_ptr().add(i + 4)),
            )
        };
        acc[0] = vfmaq_f32(acc[0], f16x4_to_f32(vget_low_u16(h)), y0);
        acc[1] = vfmaq_f32(acc[1], f16x4_to_f32(vget_high_u16(h)), y1);
        i += 8;
    }
    let mut sum = vaddvq_f32(vaddq_f32(acc[0], acc[1]));
    for j in i..n {
        sum += half::f16::from_bits(w[j]).to_f32() * a[j];
    }
    sum
}

/// BF16 · F32 (a bf16 is the top half of an f32).
#[target_feature(enable = "neon,dotprod")]
pub(crate) fn vec_dot_bf16(w: &[u16], a: &[f32]) -> f32 {
    let n = w.len().min(a.len());
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n for both slices.
        let (h, y0, y1) = unsafe {
            (
                vld1q_u16(w.as_ptr().add(i)),
                vld1q_f32(a.as_ptr().add(i)),
                vld1q_f32(a.as_ptr().add(i + 4)),
            )
        };
        let x0 = vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h)));
        let x1 = vreinterpretq_f32_u32(vshll_high_n_u16::<16>(h));
        acc[0] = vfmaq_f32(acc[0], x0, y0);
        acc[1] = vfmaq_f32(acc[1], x1, y1);
        i += 8;
    }
    let mut sum = vaddvq_f32(vaddq_f32(acc[0], acc[1]));
    for j in i..n {
        sum += f32::from_bits((w[j] as u32) << 16) * a[j];
    }
    sum
}

/// Swap the NEON kernels into `table`.
pub(crate) fn install(table: &mut [TypeTraits]) {
    // SAFETY (every closure below): this table is handed out only by `Kernels::for_isa`, after
    // `Isa::Neon` (NEON + dotprod) was found available.
    for t in table.iter_mut() {
        match t.ty {
            GgmlType::F32 => t.vec_dot = |w, a| unsafe { vec_dot_f32(cast(w), cast(a)) },
            GgmlType::F16 => {
                t.vec_dot = |w, a| unsafe { vec_dot_f16(cast(w), cast(a)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_half::<false>(cast(w), o) };
            }
            GgmlType::BF16 => {
                t.vec_dot = |w, a| unsafe { vec_dot_bf16(cast(w), cast(a)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_half::<true>(cast(w), o) };
            }
            GgmlType::Q4_0 => {
                t.vec_dot = |w, a| unsafe { dot_q4_0_n(cast(w), [cast(a)])[0] };
                t.vec_dot_x4 = Some(|w, a| unsafe { dot_q4_0_n(cast(w), a.map(cast)) });
                t.dequantize = |w, o| unsafe { convert::dequantize_q4_0(cast(w), o) };
            }
            GgmlType::Q4_1 => {
                t.vec_dot = |w, a| unsafe { vec_dot_q4_1(cast(w), cast(a)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_q4_1(cast(w), o) };
            }
            GgmlType::Q5_0 => {
                t.vec_dot = |w, a| unsafe { dot_q5_0_n(cast(w), [cast(a)])[0] };
                t.vec_dot_x4 = Some(|w, a| unsafe { dot_q5_0_n(cast(w), a.map(cast)) });
                t.dequantize = |w, o| unsafe { convert::dequantize_q5_0(cast(w), o) };
            }
            GgmlType::Q5_1 => {
                t.vec_dot = |w, a| unsafe { vec_dot_q5_1(cast(w), cast(a)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_q5_1(cast(w), o) };
            }
            GgmlType::Q8_0 => {
                t.vec_dot = |w, a| unsafe { dot_q8_0_n(cast(w), [cast(a)])[0] };
                t.vec_dot_x4 = Some(|w, a| unsafe { dot_q8_0_n(cast(w), a.map(cast)) });
                t.quantize = |x, o| unsafe { convert::quantize_q8_0(x, cast_mut(o)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_q8_0(cast(w), o) };
            }
            GgmlType::Q8_1 => {
                t.quantize = |x, o| unsafe { convert::quantize_q8_1(x, cast_mut(o)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_q8_1(cast(w), o) };
            }
            GgmlType::Q2_K => {
                t.vec_dot = |w, a| unsafe { vec_dot_q2_k(cast(w), cast(a)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_q2_k(cast(w), o) };
            }
            GgmlType::Q3_K => {
                t.vec_dot = |w, a| unsafe { vec_dot_q3_k(cast(w), cast(a)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_q3_k(cast(w), o) };
            }
            GgmlType::Q4_K => {
                t.vec_dot = |w, a| unsafe { dot_q4_k_n(cast(w), [cast(a)])[0] };
                t.vec_dot_x4 = Some(|w, a| unsafe { dot_q4_k_n(cast(w), a.map(cast)) });
                t.dequantize = |w, o| unsafe { convert::dequantize_q4_k(cast(w), o) };
            }
            GgmlType::Q5_K => {
                t.vec_dot = |w, a| unsafe { vec_dot_q5_k(cast(w), cast(a)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_q5_k(cast(w), o) };
            }
            GgmlType::Q6_K => {
                t.vec_dot = |w, a| unsafe { dot_q6_k_n(cast(w), [cast(a)])[0] };
                t.vec_dot_x4 = Some(|w, a| unsafe { dot_q6_k_n(cast(w), a.map(cast)) });
                t.dequantize = |w, o| unsafe { convert::dequantize_q6_k(cast(w), o) };
            }
            GgmlType::Q8_K => {
                t.quantize = |x, o| unsafe { convert::quantize_q8_k(x, cast_mut(o)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_q8_k(cast(w), o) };
            }
            _ => {}
        }
    }
}
