//! x86-64 AVX2 + FMA + F16C versions of the dot products and activation quantizers.
//!
//! Same integer sums as the scalar oracle (`crate::quant`): bytes are multiplied with
//! `vpmaddubsw` (u8 × i8 → i16 pairs) and widened with `vpmaddwd`; scales are applied in f32.
//! Every `#[target_feature]` function here may only run on a CPU with AVX2, FMA and F16C: they
//! are reachable only through the table `install` fills, which `Kernels::for_isa` hands out
//! after checking exactly that.
//!
//! Precondition shared by the i8 × i8 products (`abs_sign` + `vpsignb`): activation quants are in −127..=127
//! (what every quantizer in this crate produces), because the sign trick negates them.

use std::arch::x86_64::*;

use half::f16;

use super::x86_avx2_convert as convert;
use super::x86_avx2_float::{vec_dot_bf16, vec_dot_f16, vec_dot_f32};
use super::x86_avx2_int8_x8::{int8_x8_x1, int8_x8_xn};
use super::x86_avx2_kdequant as kdequant;
use super::x86_avx2_kquantize as kquantize;
use super::x86_avx2_multi as multi;
use super::x86_avx2_q4k_x8::q4_k_x8;
use super::x86_avx2_q6k as q6k;
use crate::quant::q5_0_x8::BlockQ5_0x8;
use crate::quant::{
    q3_k, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1,
    BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use crate::traits::{cast, cast_mut, Interleaved8Batch, Interleaved8Path, TypeTraits, WideBatch};
use nanorun_formats::GgmlType;

// ---------------------------------------------------------------- helpers

/// Two f16 values to f32 with one conversion, built from one 32-bit `vmovd`: a single f16
/// load becomes a `vpinsrw` merging into whatever register LLVM picks — in the Q4_0 loop the
/// accumulator — which chains every block to the previous one (4× slower).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn f16x2(a: f16, b: f16) -> (f32, f32) {
    let bits = a.to_bits() as u32 | ((b.to_bits() as u32) << 16);
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Sum of the 8 i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// The sums of the 8 i32 lanes of each of four vectors, in that order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum4_epi32(v: [__m256i; 4]) -> __m128i {
    // Lane j of each 128-bit half: the sum of that half of v[j].
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}

/// u8 × i8 products summed in groups of 4 into 8 i32 lanes. Each u8 ≤ 128 with |i8| ≤ 127
/// keeps the intermediate i16 pair sums exact.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// (|x|, x) for the sign trick (x·y = |x|·(y with x's sign)), computed once per weight
/// block. Needs y in −127..=127.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn abs_sign(x: __m256i) -> (__m256i, __m256i) {
    (_mm256_sign_epi8(x, x), x)
}

/// 32 bytes: low nibbles of 16 bytes (values 0..16), then their high nibbles (values 16..32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn nibbles_32(qs: &[u8; 16]) -> __m256i {
    // SAFETY: qs is 16 bytes.
    let b = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    let m = _mm_set1_epi8(0x0f);
    let lo = _mm_and_si128(b, m);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(b), m);
    _mm256_set_m128i(hi, lo)
}

/// Byte j = 0xFF when bit j of `bits` is set, else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn bits_to_bytes(bits: u32) -> __m256i {
    let v = _mm256_set1_epi32(bits as i32);
    let spread = _mm256_shuffle_epi8(
        v,
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0x0000_0000_0000_0000,
        ),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit)
}

/// The 32 unsigned quants (0..=31) of a Q5_0 / Q5_1 block: nibbles plus fifth bits `qh`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quants_5bit(qs: &[u8; 16], qh: [u8; 4]) -> __m256i {
    let hi = _mm256_and_si256(bits_to_bytes(u32::from_le_bytes(qh)), _mm256_set1_epi8(16));
    _mm256_or_si256(nibbles_32(qs), hi)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn load32(p: &[i8]) -> __m256i {
    assert!(p.len() >= 32);
    // SAFETY: 32 readable bytes (checked above; the check folds away for fixed arrays).
    unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
}

/// Four signed bytes at `at` as one i32 (little-endian), for a 32-bit broadcast.
#[inline]
pub(crate) fn i32_at(q: &[i8], at: usize) -> i32 {
    let b = &q[at..at + 4];
    i32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn load32u(p: &[u8]) -> __m256i {
    assert!(p.len() >= 32);
    // SAFETY: 32 readable bytes.
    unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
}

// ---------------------------------------------------------------- 32-value types

/// [`sum_blocks_n`] for one row: the same operations in the same order (so the same bits),
/// in the loop shape that measured 5–10% faster for a single row than the general one.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn sum_blocks_1<B, A, P: Copy, const OFFSET: bool>(
    w: &[B],
    a: &[A],
    wbits: impl Fn(&B) -> [u16; 2],
    abits: impl Fn(&A) -> [u16; 2],
    prep: impl Fn(&B) -> P,
    dot: impl Fn(P, &A) -> __m256,
) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut offsets = 0.0f32;
    let n = w.len().min(a.len());
    let (w8, a8) = (w[..n].chunks_exact(8), a[..n].chunks_exact(8));
    let (wr, ar) = (w8.remainder(), a8.remainder());
    for (x, y) in w8.zip(a8) {
        let b: [[u16; 4]; 8] = std::array::from_fn(|k| {
            let (wb, ab) = (wbits(&x[k]), abits(&y[k]));
            [wb[0], ab[0], wb[1], ab[1]]
        });
        let half = |f: usize| cvt8(std::array::from_fn(|k| b[k][f]));
        let d = _mm256_mul_ps(half(0), half(1));
        let (m, s) = if OFFSET {
            (to_array(half(2)), to_array(half(3)))
        } else {
            ([0.0; 8], [0.0; 8])
        };
        for k in 0..8 {
            let dk = _mm256_permutevar8x32_ps(d, _mm256_set1_epi32(k as i32));
            acc = _mm256_fmadd_ps(dot(prep(&x[k]), &y[k]), dk, acc);
            if OFFSET {
                offsets = m[k].mul_add(s[k], offsets);
            }
        }
    }
    for (x, y) in wr.iter().zip(ar) {
        let (wb, ab) = (wbits(x), abits(y));
        let (xd, yd) = f16x2(f16::from_bits(wb[0]), f16::from_bits(ab[0]));
        acc = _mm256_fmadd_ps(dot(prep(x), y), _mm256_set1_ps(xd * yd), acc);
        if OFFSET {
            let (xm, ys) = f16x2(f16::from_bits(wb[1]), f16::from_bits(ab[1]));
            offsets = xm.mul_add(ys, offsets);
        }
    }
    hsum_ps(acc) + offsets
}

/// The 8 lanes of `v`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn to_array(v: __m256) -> [f32; 8] {
    let mut out = [0.0f32; 8];
    // SAFETY: out holds 8 f32.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
    out
}

/// Eight f16 values (bits) as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn cvt8(v: [u16; 8]) -> __m256 {
    // SAFETY: v is 16 bytes.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(v.as_ptr().cast()) })
}

/// Σ over blocks of (w.d·a.d)·`dot(prep(w), a)` lane-wise (+ w.m·a.s where `OFFSET`), for `N`
/// activation rows at once: `prep` (unpacking a weight block) runs once per block for all of
/// them, and each row gets exactly the operations, in the same order, of `N = 1` — the
/// results do not depend on `N`.
///
/// The float order is ggml's x86 kernels' (`ggml_vec_dot_q8_0_q8_0` and kin, and tinyBLAS's
/// prefill GEMM): one 8-lane accumulator per row, `acc = fma(q, d, acc)` block after block,
/// the lanes summed at the end as `hsum_float_8` does, and the offset terms (Q4_1 / Q5_1) as a
/// scalar FMA chain added last. Reproducing it keeps greedy runs on llama.cpp's path (see
/// docs/NUMERICS.md). (Four weight rows at a time, for independent chains, measured no faster:
/// these kernels are bound by unpacking and memory, not by the FMA latency.)
///
/// Scales are converted eight blocks at a time (one `vcvtph2ps` per eight instead of per block,
/// and no `vpinsrw` merging into an accumulator: that false dependency made Q4_0 4× slower).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn sum_blocks_n<B, A, P: Copy, const N: usize, const OFFSET: bool>(
    w: &[B],
    a: [&[A]; N],
    wbits: impl Fn(&B) -> [u16; 2],
    abits: impl Fn(&A) -> [u16; 2],
    prep: impl Fn(&B) -> P,
    dot: impl Fn(P, &A) -> __m256,
) -> [f32; N] {
    if N == 1 {
        let r = sum_blocks_1::<_, _, _, OFFSET>(w, a[0], wbits, abits, prep, dot);
        return [r; N];
    }
    let mut acc = [_mm256_setzero_ps(); N];
    let mut offsets = [0.0f32; N];
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    let chunks = n / 8;
    for c in 0..chunks {
        let base = 8 * c;
        // Fixed-size views: no bounds checks in the unrolled loops below, so the accumulators
        // stay in registers.
        let x: &[B; 8] = w[base..base + 8].try_into().expect("8 blocks");
        let ys: [&[A; 8]; N] =
            std::array::from_fn(|t| a[t][base..base + 8].try_into().expect("8 blocks"));
        let xd = cvt8(std::array::from_fn(|k| wbits(&x[k])[0]));
        let d: [__m256; N] = std::array::from_fn(|t| {
            _mm256_mul_ps(xd, cvt8(std::array::from_fn(|k| abits(&ys[t][k])[0])))
        });
        if OFFSET {
            let xm = to_array(cvt8(std::array::from_fn(|k| wbits(&x[k])[1])));
            for t in 0..N {
                let s = to_array(cvt8(std::array::from_fn(|k| abits(&ys[t][k])[1])));
                for k in 0..8 {
                    offsets[t] = xm[k].mul_add(s[k], offsets[t]);
                }
            }
        }
        for k in 0..8 {
            // One weight block unpacked, then used for every row while it is in registers.
            let p = prep(&x[k]);
            let lane = _mm256_set1_epi32(k as i32);
            for t in 0..N {
                let dk = _mm256_permutevar8x32_ps(d[t], lane);
                acc[t] = _mm256_fmadd_ps(dot(p, &ys[t][k]), dk, acc[t]);
            }
        }
    }
    for i in 8 * chunks..n {
        let p = prep(&w[i]);
        let wb = wbits(&w[i]);
        for t in 0..N {
            let ab = abits(&a[t][i]);
            let (xd, yd) = f16x2(f16::from_bits(wb[0]), f16::from_bits(ab[0]));
            acc[t] = _mm256_fmadd_ps(dot(p, &a[t][i]), _mm256_set1_ps(xd * yd), acc[t]);
            if OFFSET {
                let (xm, ys) = f16x2(f16::from_bits(wb[1]), f16::from_bits(ab[1]));
                offsets[t] = xm.mul_add(ys, offsets[t]);
            }
        }
    }
    std::array::from_fn(|t| hsum_ps(acc[t]) + offsets[t])
}

/// The 8-bit blocks whose dot products with each other are the same kernel (Q8_0 · Q8_0,
/// Q8_1 · Q8_1): a scale and 32 signed quants.
pub(crate) trait Int8Block {
    /// The f16 bits of the scale.
    fn d_bits(&self) -> u16;
    /// The quants.
    fn qs(&self) -> &[i8; 32];
}

impl Int8Block for BlockQ8_0 {
    fn d_bits(&self) -> u16 {
        self.d.to_bits()
    }
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
}

impl Int8Block for BlockQ8_1 {
    fn d_bits(&self) -> u16 {
        self.d.to_bits()
    }
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
}

/// Q8_0 · N Q8_0 rows, or Q8_1 · N Q8_1 rows.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q8_n<B: Int8Block, const N: usize>(w: &[B], a: [&[B]; N]) -> [f32; N] {
    sum_blocks_n::<_, _, _, N, false>(
        w,
        a,
        |x| [x.d_bits(), 0],
        |y| [y.d_bits(), 0],
        // The weights' absolute values and signs, shared by every row.
        |x| abs_sign(load32(x.qs())),
        |(ax, q), y| _mm256_cvtepi32_ps(dot_u8_i8(ax, _mm256_sign_epi8(load32(y.qs()), q))),
    )
}

/// Q4_0 · N Q8_0 rows.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q4_0_n<const N: usize>(w: &[BlockQ4_0], a: [&[BlockQ8_0]; N]) -> [f32; N] {
    let eight = _mm256_set1_epi8(8);
    sum_blocks_n::<_, _, _, N, false>(
        w,
        a,
        |x| [x.d.to_bits(), 0],
        |y| [y.d.to_bits(), 0],
        |x| abs_sign(_mm256_sub_epi8(nibbles_32(&x.qs), eight)),
        |(ax, q), y| _mm256_cvtepi32_ps(dot_u8_i8(ax, _mm256_sign_epi8(load32(&y.qs), q))),
    )
}

/// Q5_0 · N Q8_0 rows.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q5_0_n<const N: usize>(w: &[BlockQ5_0], a: [&[BlockQ8_0]; N]) -> [f32; N] {
    let sixteen = _mm256_set1_epi8(16);
    sum_blocks_n::<_, _, _, N, false>(
        w,
        a,
        |x| [x.d.to_bits(), 0],
        |y| [y.d.to_bits(), 0],
        |x| abs_sign(_mm256_sub_epi8(quants_5bit(&x.qs, x.qh), sixteen)),
        |(ax, q), y| _mm256_cvtepi32_ps(dot_u8_i8(ax, _mm256_sign_epi8(load32(&y.qs), q))),
    )
}

/// Q4_1 · N Q8_1 rows.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q4_1_n<const N: usize>(w: &[BlockQ4_1], a: [&[BlockQ8_1]; N]) -> [f32; N] {
    sum_blocks_n::<_, _, _, N, true>(
        w,
        a,
        |x| [x.d.to_bits(), x.m.to_bits()],
        |y| [y.d.to_bits(), y.s.to_bits()],
        |x| nibbles_32(&x.qs),
        |q, y| _mm256_cvtepi32_ps(dot_u8_i8(q, load32(&y.qs))),
    )
}

/// Q5_1 · N Q8_1 rows.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_q5_1_n<const N: usize>(w: &[BlockQ5_1], a: [&[BlockQ8_1]; N]) -> [f32; N] {
    sum_blocks_n::<_, _, _, N, true>(
        w,
        a,
        |x| [x.d.to_bits(), x.m.to_bits()],
        |y| [y.d.to_bits(), y.s.to_bits()],
        |x| quants_5bit(&x.qs, x.qh),
        |q, y| _mm256_cvtepi32_ps(dot_u8_i8(q, load32(&y.qs))),
    )
}

// ---------------------------------------------------------------- K-quants

/// Unpacked Q4_K / Q5_K scales and the integer min term Σ m·(bsum pair).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn k4_scales(scales: &[u8; 12], bsums: &[i16; 16]) -> ([u8; 8], i32) {
    let (sc, m) = crate::quant::kquant_util::unpack_scale_min_k4(scales);
    (sc, k4_min_term(&m, bsums))
}

/// Σ_j m\[j\]·(bsums\[2j\] + bsums\[2j+1\]): the integer min term of Q4_K / Q5_K.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn k4_min_term(m: &[u8; 8], bsums: &[i16; 16]) -> i32 {
    // SAFETY: bsums is 32 bytes.
    let b = unsafe { _mm256_loadu_si256(bsums.as_ptr().cast()) };
    // Pairwise sums of the 16 bsums (one per 32-value sub-block), then · mins.
    let pairs = _mm256_madd_epi16(b, _mm256_set1_epi16(1));
    let mins = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(i64::from_le_bytes(*m)));
    hsum_epi32(_mm256_mullo_epi32(pairs, mins))
}

/// The low nibbles, then the high nibbles, of 32 bytes (each 0..=15).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn nibble_halves(q: __m256i) -> [__m256i; 2] {
    let m4 = _mm256_set1_epi8(0x0f);
    [
        _mm256_and_si256(q, m4),
        _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
    ]
}

/// `val` in each byte of `v` that has `bit` set, 0 in the others.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn bit_as(v: __m256i, bit: u8, val: i8) -> __m256i {
    let b = _mm256_set1_epi8(bit as i8);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(v, b), b);
    _mm256_and_si256(set, _mm256_set1_epi8(val))
}

/// Chunk `c` (values 64c..64c+64) of a Q5_K block as two 32-byte halves of 0..=31: the
/// nibbles of `qs` (that chunk's 32 bytes) with fifth bits 2c and 2c+1 of `qh`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5k_chunk(qs: __m256i, qh: __m256i, c: usize) -> [__m256i; 2] {
    let [lo, hi] = nibble_halves(qs);
    [
        _mm256_or_si256(lo, bit_as(qh, 1 << (2 * c), 16)),
        _mm256_or_si256(hi, bit_as(qh, 2 << (2 * c), 16)),
    ]
}

/// Eight u8 scales widened to i16, the eight of them in each 128-bit half (for [`k4_scale`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn k4_scale_vector(sc: &[u8; 8]) -> __m256i {
    let v = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(*sc)));
    _mm256_broadcastsi128_si256(v)
}

/// Scale `j` of a [`k4_scale_vector`] in all sixteen i16 lanes (one shuffle).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn k4_scale(v: __m256i, j: usize) -> __m256i {
    let b = 2 * j as i16;
    _mm256_shuffle_epi8(v, _mm256_set1_epi16(((b + 1) << 8) | b))
}

/// Q4_K · Q8_K, with the float operations of ggml's x86 Q4_K path (the weights repacked 8×8,
/// `ggml_gemv_q4_K_8x8_q8_K` / `ggml_gemm_q4_K_8x8_q8_K`): per super-block one exact integer
/// sum Σ sc·Σq·a and one Σ m·bsums, each folded into its own scalar chain with
/// `fma(sum, d·a.d, acc)`, and the two chains subtracted at the end.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q4_k(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    let mut mins = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let (sc, imin) = k4_scales(&x.scales, &y.bsums);
        let scv = k4_scale_vector(&sc);
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            let [lo, hi] = nibble_halves(load32u(&x.qs[c * 32..]));
            let p0 = _mm256_maddubs_epi16(lo, load32(&y.qs[c * 64..]));
            let p1 = _mm256_maddubs_epi16(hi, load32(&y.qs[c * 64 + 32..]));
            let p0 = _mm256_madd_epi16(p0, k4_scale(scv, 2 * c));
            let p1 = _mm256_madd_epi16(p1, k4_scale(scv, 2 * c + 1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        let (d, dmin) = f16x2(x.d, x.dmin);
        acc = (hsum_epi32(sumi) as f32).mul_add(d * y.d, acc);
        mins = (imin as f32).mul_add(dmin * y.d, mins);
    }
    acc - mins
}

/// Q5_K · Q8_K.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q5_k(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let (sc, imin) = k4_scales(&x.scales, &y.bsums);
        mins += f16x2(x.d, x.dmin).1 * y.d * imin as f32;
        let qh = load32u(&x.qh);
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            let [lo, hi] = q5k_chunk(load32u(&x.qs[c * 32..]), qh, c);
            let p0 = _mm256_maddubs_epi16(lo, load32(&y.qs[c * 64..]));
            let p1 = _mm256_maddubs_epi16(hi, load32(&y.qs[c * 64 + 32..]));
            let p0 = _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * c] as i16));
            let p1 = _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * c + 1] as i16));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        let d = _mm256_set1_ps(f16x2(x.d, x.dmin).0 * y.d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - mins
}

/// The four 32-value groups of one 128-value half of a Q6_K block, as unsigned 0..=63.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q6_half(ql: &[u8], qh: &[u8]) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0f);
    let m30 = _mm256_set1_epi8(0x30);
    let (l0, l1, h) = (load32u(ql), load32u(&ql[32..]), load32u(qh));
    [
        _mm256_or_si256(
            _mm256_and_si256(l0, m4),
            _mm256_and_si256(_mm256_slli_epi16::<4>(h), m30),
        ),
        _mm256_or_si256(
            _mm256_and_si256(l1, m4),
            _mm256_and_si256(_mm256_slli_epi16::<2>(h), m30),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(l0), m4),
            _mm256_and_si256(h, m30),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(l1), m4),
            _mm256_and_si256(_mm256_srli_epi16::<2>(h), m30),
        ),
    ]
}

/// Sixteen i16 scales (one per 16 values) → scale 2p in the eight i16 lanes of the low half
/// and scale 2p+1 in those of the high half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn scale_pair_of(sc16: __m256i, p: i32) -> __m256i {
    // Broadcast the i32 holding (sc[2p], sc[2p+1]), then spread sc[2p] over the low half and
    // sc[2p+1] over the high half.
    let v = _mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(p));
    _mm256_shuffle_epi8(
        v,
        _mm256_setr_epi8(
            0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, //
            2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
        ),
    )
}

/// Σ scale\[j\]·bsums\[j\] over the 16 sub-blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_scales_bsums(sc16: __m256i, bsums: &[i16; 16]) -> i32 {
    // SAFETY: bsums is 32 bytes.
    let b = unsafe { _mm256_loadu_si256(bsums.as_ptr().cast()) };
    hsum_epi32(_mm256_madd_epi16(sc16, b))
}

/// The four 2-bit planes of 32 bytes of Q2_K / Q3_K quants (values +0, +32, +64, +96).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn planes_2bit(qs: __m256i) -> [__m256i; 4] {
    let m3 = _mm256_set1_epi8(3);
    [
        _mm256_and_si256(qs, m3),
        _mm256_and_si256(_mm256_srli_epi16::<2>(qs), m3),
        _mm256_and_si256(_mm256_srli_epi16::<4>(qs), m3),
        _mm256_and_si256(_mm256_srli_epi16::<6>(qs), m3),
    ]
}

/// Q2_K · Q8_K.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q2_k(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        // SAFETY: scales is 16 bytes.
        let s = unsafe { _mm_loadu_si128(x.scales.as_ptr().cast()) };
        let sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(s, _mm_set1_epi8(0x0f)));
        let m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(s), _mm_set1_epi8(0x0f)));
        let (d, dmin) = f16x2(x.d, x.dmin);
        mins += dmin * y.d * dot_scales_bsums(m16, &y.bsums) as f32;
        let mut sumi = _mm256_setzero_si256();
        for n in 0..2 {
            for (j, qj) in planes_2bit(load32u(&x.qs[n * 32..])).iter().enumerate() {
                let p = _mm256_maddubs_epi16(*qj, load32(&y.qs[n * 128 + 32 * j..]));
                let sv = scale_pair_of(sc16, (n * 4 + j) as i32);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sv));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d * y.d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - mins
}

/// Q3_K · Q8_K: unsigned q = low bits + 4·high bit, minus 4·Σ sc·bsums.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_q3_k(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut corr = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let sc = q3_k::unpack_scales_words(&x.scales);
        // SAFETY: sc is 16 bytes.
        let sc16 = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(sc.as_ptr().cast()) });
        let d = f16x2(x.d, x.d).0;
        corr += d * y.d * (4 * dot_scales_bsums(sc16, &y.bsums)) as f32;
        let mut sumi = _mm256_setzero_si256();
        let hm = load32u(&x.hmask);
        for n in 0..2 {
            for (j, qj) in planes_2bit(load32u(&x.qs[n * 32..])).iter().enumerate() {
                let h = bit_as(hm, 1 << (4 * n + j), 4);
                let p = _mm256_maddubs_epi16(
                    _mm256_or_si256(*qj, h),
                    load32(&y.qs[n * 128 + 32 * j..]),
                );
                let sv = scale_pair_of(sc16, (n * 4 + j) as i32);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sv));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d * y.d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - corr
}

// ---------------------------------------------------------------- table

/// Swap the AVX2 kernels into `table` (in `crate::traits::SUPPORTED` order).
/// Batches from this many tokens up go through llama.cpp's tiled GEMM for K-quant weights that
/// are not repacked (`ggml_tiled_min_batch`), which rounds differently from its `vec_dot`.
const TILED_MIN_TOKENS: usize = 8;

/// The interleaved path of a 32-value type with Q8_0 activations whose interleaved blocks are
/// `B`.
fn int8_interleaved<B>(interleave: fn(&[u8], usize, &mut [u8])) -> Interleaved8Path
where
    B: super::x86_avx2_int8_x8::LaneBlock + bytemuck::Pod,
{
    // SAFETY (each closure): as for the table (see `install`).
    Interleaved8Path {
        x1: |w, a| unsafe { int8_x8_x1::<B>(cast(w), cast(a)) },
        batch: Interleaved8Batch::Int8 {
            x8: |w, a| unsafe { int8_x8_xn::<B, 8>(cast(w), a) },
            x4: |w, a| unsafe { int8_x8_xn::<B, 4>(cast(w), a) },
            x2: |w, a| unsafe { int8_x8_xn::<B, 2>(cast(w), a) },
        },
        interleave,
        for_batches: true,
        scalar_bits: false,
        invariant: None,
    }
}

pub(crate) fn install(table: &mut [TypeTraits]) {
    // SAFETY (every closure below): this table is handed out only by `Kernels::for_isa`, after
    // `Isa::Avx2` (or `Isa::Avx512`, a superset) was found available: AVX2, FMA and F16C.
    super::x86_avx2_int8::install(table);
    for t in table.iter_mut() {
        // Measured to help on an AVX2-only EPYC (see `matmul::PREFETCH_AHEAD`).
        t.soft_prefetch = t.block_size < 256;
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
                t.dequantize = |w, o| unsafe { convert::dequantize_q4_0(cast(w), o) };
            }
            // (Four-token Q4_1 / Q5_1 measured slower than four single dots: 9.6–12 vs 13–14
            // GB/s per CPU-second for 8 tokens. The offset terms cost registers.)
            GgmlType::Q4_1 => {
                t.vec_dot = |w, a| unsafe { dot_q4_1_n(cast(w), [cast(a)])[0] };
                t.dequantize = |w, o| unsafe { convert::dequantize_q4_1(cast(w), o) };
            }
            GgmlType::Q5_0 => {
                t.vec_dot = |w, a| unsafe { dot_q5_0_n(cast(w), [cast(a)])[0] };
                t.interleaved8 = Some(int8_interleaved::<BlockQ5_0x8>(|src, nb, out| {
                    crate::quant::q5_0_x8::interleave_group(cast(src), nb, cast_mut(out))
                }));
                t.dequantize = |w, o| unsafe { convert::dequantize_q5_0(cast(w), o) };
            }
            GgmlType::Q5_1 => {
                t.vec_dot = |w, a| unsafe { dot_q5_1_n(cast(w), [cast(a)])[0] };
                t.dequantize = |w, o| unsafe { convert::dequantize_q5_1(cast(w), o) };
            }
            GgmlType::Q8_0 => {
                t.vec_dot = |w, a| unsafe { dot_q8_n::<BlockQ8_0, _>(cast(w), [cast(a)])[0] };
                // (Interleaved like Q5_0, eight-token batches of the 262144 × 640 output
                // projection of Gemma 3 ran 22% slower from memory than the row-major int8
                // path, and one token no faster on an AVX2-only Zen 3: that matrix was read at
                // memory speed. The AVX-512 table interleaves it for output projections only.)
                t.quantize = |x, o| unsafe { convert::quantize_q8_0(x, cast_mut(o)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_q8_0(cast(w), o) };
            }
            GgmlType::Q8_1 => {
                t.vec_dot = |w, a| unsafe { dot_q8_n::<BlockQ8_1, _>(cast(w), [cast(a)])[0] };
                t.vec_dot_x4 =
                    Some(|w, a| unsafe { dot_q8_n::<BlockQ8_1, _>(cast(w), a.map(cast)) });
                t.quantize = |x, o| unsafe { convert::quantize_q8_1(x, cast_mut(o)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_q8_1(cast(w), o) };
            }
            GgmlType::Q2_K => {
                t.quantize = |x, o| unsafe { kquantize::quantize_q2_k(x, cast_mut(o)) };
                t.vec_dot = |w, a| unsafe { vec_dot_q2_k(cast(w), cast(a)) };
                t.dequantize = |w, o| unsafe { kdequant::dequantize_q2_k(cast(w), o) };
            }
            GgmlType::Q3_K => {
                t.vec_dot = |w, a| unsafe { vec_dot_q3_k(cast(w), cast(a)) };
                t.dequantize = |w, o| unsafe { kdequant::dequantize_q3_k(cast(w), o) };
            }
            GgmlType::Q4_K => {
                t.quantize = |x, o| unsafe { kquantize::quantize_q4_k(x, cast_mut(o)) };
                t.vec_dot = |w, a| unsafe { vec_dot_q4_k(cast(w), cast(a)) };
                t.vec_dot_x4 = Some(|w, a| unsafe { multi::vec_dot_q4_k_x4(cast(w), a.map(cast)) });
                // llama.cpp repacks Q4_K 8×8 and runs its GEMM on each full group of 4 tokens.
                t.wide = Some(WideBatch {
                    min_tokens: 4,
                    vec_dot: t.vec_dot,
                    vec_dot_x4: Some(|w, a| unsafe {
                        multi::vec_dot_q4_k_gemm_x4(cast(w), a.map(cast))
                    }),
                    tile16: None,
                });
                t.interleaved8 = Some(Interleaved8Path {
                    x1: |w, a| unsafe { q4_k_x8::<1, false>(cast(w), [cast(a)])[0] },
                    batch: Interleaved8Batch::X4 {
                        x4: |w, a| unsafe { q4_k_x8::<4, false>(cast(w), a.map(cast)) },
                        wide_x4: |w, a| unsafe { q4_k_x8::<4, true>(cast(w), a.map(cast)) },
                        pairs: None,
                    },
                    interleave: |src, nb, out| {
                        crate::quant::q4_k_x8::interleave_group(cast(src), nb, cast_mut(out))
                    },
                    for_batches: true,
                    scalar_bits: false,
                    invariant: None,
                });
                t.dequantize = |w, o| unsafe { kdequant::dequantize_q4_k(cast(w), o) };
            }
            GgmlType::Q5_K => {
                t.quantize = |x, o| unsafe { kquantize::quantize_q5_k(x, cast_mut(o)) };
                t.vec_dot = |w, a| unsafe { vec_dot_q5_k(cast(w), cast(a)) };
                t.dequantize = |w, o| unsafe { kdequant::dequantize_q5_k(cast(w), o) };
            }
            GgmlType::Q6_K => {
                t.quantize = |x, o| unsafe { kquantize::quantize_q6_k(x, cast_mut(o)) };
                t.vec_dot = |w, a| unsafe { q6k::vec_dot_q6_k(cast(w), cast(a)) };
                t.vec_dot_x4 = Some(|w, a| unsafe { q6k::vec_dot_q6_k_x4(cast(w), a.map(cast)) });
                t.wide = Some(WideBatch {
                    min_tokens: TILED_MIN_TOKENS,
                    vec_dot: |w, a| unsafe { q6k::vec_dot_q6_k_wide(cast(w), cast(a)) },
                    vec_dot_x4: Some(|w, a| unsafe {
                        q6k::vec_dot_q6_k_wide_x4(cast(w), a.map(cast))
                    }),
                    tile16: Some(super::x86_avx2_q6k_x16::tile16_path(TILED_MIN_TOKENS)),
                });
                t.dequantize = |w, o| unsafe { kdequant::dequantize_q6_k(cast(w), o) };
            }
            GgmlType::Q8_K => {
                t.quantize = |x, o| unsafe { convert::quantize_q8_k(x, cast_mut(o)) };
                t.dequantize = |w, o| unsafe { convert::dequantize_q8_k(cast(w), o) };
            }
            _ => {}
        }
    }
}
