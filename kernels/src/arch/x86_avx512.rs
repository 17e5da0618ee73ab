//! x86-64 AVX-512 (F/BW/VL) + VNNI versions of the dot products where they beat AVX2: Q6_K
//! (64 values per 512-bit `vpdpbusd`: 20–23 vs 15–18 GB/s per CPU-second on a 2048×2048
//! matrix), Q5_0 (fifth bits from a mask register: 12.4–13.1 vs 11.3–11.7) and Q8_0 (256-bit
//! `vpdpbusd`, on par with AVX2) for one token; and, since a Zen 4 session, the multi-token
//! int8 path (Q4_0 / Q5_0 / Q8_0 rows) and interleaved Q4_K, whose AVX2 kernel bodies are
//! shared with their integer step swapped for `vpdpbusd` (the same i32 sums, so the same
//! bits): eight-token Q8_0 26–32 → 37–45 GB/s per token pass, 64-token interleaved Q4_K
//! 29–30 → 39–44 (`kernel_cycles`, one thread, Zen 4). The int8 batch kernels then took the
//! activations offset by 128 ([`OffsetActs`]: no sign step per token; Q8_0 45–50), and the
//! interleaved Q5_0 batches went to 512-bit vectors (`x86_avx512_int8_x8`); later sessions
//! interleaved Q8_0 for output projections, in the scalar reference's order
//! (`interleaved_q8_0_vnni`), and gave one-token interleaved Q5_0 unsigned five-bit quants.
//! Row-at-a-time VNNI versions of Q4_0 / Q5_0 / Q4_K (256- and 512-bit) were written, tested
//! and measured 4–25% slower than AVX2 in an earlier session, so they were dropped — their cost
//! is in unpacking nibbles and scales, not in the multiply-adds. AVX-512 here implies AVX2, FMA
//! and F16C.
//!
//! Every `#[target_feature]` function here may only run on a CPU with all of
//! `avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni`: they are reachable only through the
//! table `install` fills, which `Kernels::for_isa(Isa::Avx512)` hands out after checking that.
//! Activation quants must be in −127..=127 (the sign trick of the one-token kernels negates
//! them).

use std::arch::x86_64::*;

use nanorun_formats::GgmlType;

use super::x86_avx2::{self, f16x2};
use super::x86_avx2_int8::{dot_xn_of, GroupSums, WeightBlocks};
use super::x86_avx2_q4k_x8::{q4_k_x8_with, sub_scale_i32};
use super::x86_avx2_q6k;
use super::x86_avx512_int8_x8::{q5_0_x8_x1, q5_0_x8_xn};
use super::x86_avx512_q4k_x16::q4_k_x16;
use super::x86_avx512_q5_0_ref_x8::{q5_0_ref_x8_x1, q5_0_ref_x8_xn};
use super::x86_avx512_q6k_x16::{q6_k_x16_gemv_tokens, q6_k_x16_wide, unpack_q6_k_x16};
use super::x86_avx512_q8_0_x8::{q8_0_x8_x1, q8_0_x8_xn};
use super::x86_avx512_x16_tokens::{q5_0_ref_x16_xn, q8_0_x16_xn};
use crate::quant::q4_k_x8::BlockQ4Kx8;
use crate::quant::q6_k_x16::BlockQ6Kx16;
use crate::quant::{BlockQ4_0, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0};
use crate::traits::{
    cast, cast_mut, Int8Path, Int8Row, Interleaved8Batch, Interleaved8Path, ReferenceKernels,
    Tile16Fn, Tile16Path, TokenPairs, TypeTraits,
};

/// `lo` in the low 256 bits, `hi` in the high.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn load32(p: &[i8]) -> __m256i {
    assert!(p.len() >= 32);
    // SAFETY: 32 readable bytes (checked).
    unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn load64(p: &[i8]) -> __m512i {
    assert!(p.len() >= 64);
    // SAFETY: 64 readable bytes (checked).
    unsafe { _mm512_loadu_si512(p.as_ptr().cast()) }
}

/// Q8_0 · Q8_0 with 256-bit `vpdpbusd`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    x86_avx2::sum_blocks_n::<_, _, _, 1, false>(
        w,
        [a],
        |x| [x.d.to_bits(), 0],
        |y| [y.d.to_bits(), 0],
        |x| {
            let q = load32(&x.qs);
            (_mm256_abs_epi8(q), _mm256_movepi8_mask(q))
        },
        |(ax, neg), y| {
            let y = load32(&y.qs);
            let sy = _mm256_mask_sub_epi8(y, neg, _mm256_setzero_si256(), y);
            _mm256_cvtepi32_ps(vnni_dot(ax, sy))
        },
    )[0]
}

/// Q5_0 · Q8_0: the fifth bits come from a mask register (`vmovdqu8` with zero-masking)
/// instead of AVX2's shuffle-and-compare; the rest is the AVX2 kernel (`vpmaddubsw` +
/// `vpmaddwd` measured faster than `vpdpbusd` for one row).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dot_q5_0(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    let sixteen = _mm256_set1_epi8(16);
    x86_avx2::sum_blocks_n::<_, _, _, 1, false>(
        w,
        [a],
        |x| [x.d.to_bits(), 0],
        |y| [y.d.to_bits(), 0],
        |x| {
            let hi = _mm256_maskz_mov_epi8(u32::from_le_bytes(x.qh), sixteen);
            let q = _mm256_sub_epi8(_mm256_or_si256(x86_avx2::nibbles_32(&x.qs), hi), sixteen);
            (_mm256_sign_epi8(q, q), q)
        },
        |(ax, q), y| {
            let sy = _mm256_sign_epi8(load32(&y.qs), q);
            _mm256_cvtepi32_ps(x86_avx2::dot_u8_i8(ax, sy))
        },
    )[0]
}

/// One Q6_K super-block's 256 unsigned 6-bit quants (0..=63) in value order, 64 per vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn q6_quants(x: &BlockQ6K) -> [__m512i; 4] {
    let (m4, m30) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x30));
    // The high bits of quants 0..32 of a 128 sit in bits 0-1 of qh, of 32..64 in bits 2-3, of
    // 64..96 in bits 4-5 and of 96..128 in bits 6-7: shifted to bits 4-5 of a byte.
    let (up, down) = (
        join(_mm256_set1_epi16(4), _mm256_set1_epi16(2)),
        join(_mm256_set1_epi16(0), _mm256_set1_epi16(2)),
    );
    let mut out = [_mm512_setzero_si512(); 4];
    for n in 0..2 {
        assert!(x.ql.len() >= n * 64 + 64 && x.qh.len() >= n * 32 + 32);
        // SAFETY: 64 bytes of ql and 32 of qh at these offsets (checked).
        let (l, h) = unsafe {
            (
                _mm512_loadu_si512(x.ql[n * 64..].as_ptr().cast()),
                _mm512_broadcast_i64x4(_mm256_loadu_si256(x.qh[n * 32..].as_ptr().cast())),
            )
        };
        // Quants 0..64 of the 128: low nibbles of ql with qh shifted up by 4 and by 2.
        out[2 * n] = _mm512_ternarylogic_epi32::<0xF8>(
            _mm512_and_si512(_mm512_sllv_epi16(h, up), m30),
            l,
            m4,
        );
        // Quants 64..128: high nibbles of ql with qh as it is and shifted down by 2.
        out[2 * n + 1] = _mm512_ternarylogic_epi32::<0xF8>(
            _mm512_and_si512(_mm512_srlv_epi16(h, down), m30),
            _mm512_srli_epi16::<4>(l),
            m4,
        );
    }
    out
}

/// One Q6_K super-block as four groups of 64 unsigned 6-bit quants ([`q6_quants`]: values
/// 64g..64g+64) and, per group, its four sub-block scales, one per lane of the `vpdpbusd`
/// result, as i16 pairs (scale, 0) for `vpdpwssd` (see [`q6_sumi`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q6_groups(x: &BlockQ6K) -> [(__m512i, __m512i); 4] {
    // SAFETY: scales is 16 bytes.
    let sc8 = unsafe { _mm_loadu_si128(x.scales.as_ptr().cast()) };
    // Scale s of sub-block k in lane k: low half s, high half 0.
    let sc32 = _mm512_cvtepu16_epi32(_mm256_cvtepi8_epi16(sc8));
    let q = q6_quants(x);
    let mut out = [(_mm512_setzero_si512(), _mm512_setzero_si512()); 4];
    for (g, (o, q)) in out.iter_mut().zip(q).enumerate() {
        // Sub-blocks 4g..4g+4.
        let idx = _mm512_add_epi32(
            _mm512_set1_epi32(4 * g as i32),
            _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
        );
        *o = (q, _mm512_permutexvar_epi32(idx, sc32));
    }
    out
}

/// Σ sc·Σq·a of one super-block for one token (16 i32 lanes): `vpdpbusd` sums four products
/// per lane, |Σ| ≤ 4·63·128 < 2¹⁵, so the lane read as i16 pairs is (Σ, sign) and `vpdpwssd`
/// with (scale, 0) adds exactly Σ·scale, the multiply and the add in one instruction.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q6_sumi(groups: &[(__m512i, __m512i); 4], y: &BlockQ8K) -> __m512i {
    let mut sumi = _mm512_setzero_si512();
    for (g, (q, s)) in groups.iter().enumerate() {
        let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), *q, load64(&y.qs[64 * g..]));
        sumi = _mm512_dpwssd_epi32(sumi, p, *s);
    }
    sumi
}

/// The 16-lane sum folded to ggml's 8 integer lanes (lane l: values 4l..4l+4 of every 32, see
/// `x86_avx2_q6k::vec_dot_q6_k`), minus the per-lane offset.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q6_lanes(sumi: __m512i, x: &BlockQ6K, y: &BlockQ8K) -> __m256i {
    let s8 = _mm256_add_epi32(
        _mm512_castsi512_si256(sumi),
        _mm512_extracti64x4_epi64::<1>(sumi),
    );
    _mm256_sub_epi32(s8, x86_avx2_q6k::q6_offsets(x, y))
}

/// One super-block's [`q6_lanes`] for four tokens, the weights unpacked once.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q6_lanes_x4(x: &BlockQ6K, y: [&BlockQ8K; 4]) -> [__m256i; 4] {
    let groups = q6_groups(x);
    // (Written out: a closure through `map` was not inlined.)
    let lanes = |t: usize| q6_lanes(q6_sumi(&groups, y[t]), x, y[t]);
    [lanes(0), lanes(1), lanes(2), lanes(3)]
}

/// Q6_K · Q8_K: unsigned 6-bit quants through `vpdpbusd`, minus 32·Σ sc·bsums, with the float
/// operations of ggml's x86 kernel (bit-identical to the AVX2 version).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn vec_dot_q6_k(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(a) {
        let lanes = q6_lanes(q6_sumi(&q6_groups(x), y), x, y);
        acc = x86_avx2_q6k::gemv_step(acc, lanes, f16x2(x.d, x.d).0, y.d);
    }
    x86_avx2::hsum_ps(acc)
}

/// Q6_K · four Q8_K rows, bit-identical to four [`vec_dot_q6_k`] calls.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn vec_dot_q6_k_x4(w: &[BlockQ6K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    let zero = _mm256_setzero_ps();
    x86_avx2_q6k::q6_k_x4_fold(
        w,
        a,
        zero,
        |x, y| q6_lanes_x4(x, y),
        |acc, s, d, yd| x86_avx2_q6k::gemv_step(acc, s, d, yd),
    )
    .map(|v| x86_avx2::hsum_ps(v))
}

/// Q6_K · Q8_K in the float order of llama.cpp's tiled K-quant GEMM (batches of 8+ tokens;
/// bit-identical to `x86_avx2_q6k::vec_dot_q6_k_wide`) with the VNNI sums.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn vec_dot_q6_k_wide(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let lanes = q6_lanes(q6_sumi(&q6_groups(x), y), x, y);
        acc = x86_avx2_q6k::wide_step(acc, lanes, f16x2(x.d, x.d).0, y.d);
    }
    acc
}

/// Q6_K · four Q8_K rows, bit-identical to four [`vec_dot_q6_k_wide`] calls: the four tokens'
/// super-block sums reduced together and their float steps in the four lanes of one vector.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn vec_dot_q6_k_wide_x4(w: &[BlockQ6K], a: [&[BlockQ8K]; 4]) -> [f32; 4] {
    let mut acc = _mm_setzero_ps();
    let n = a.iter().fold(w.len(), |n, r| n.min(r.len()));
    for (i, x) in w[..n].iter().enumerate() {
        let y = [&a[0][i], &a[1][i], &a[2][i], &a[3][i]];
        let sums = _mm_cvtepi32_ps(x86_avx2::hsum4_epi32(q6_lanes_x4(x, y)));
        let r = _mm_mul_ps(sums, _mm_set1_ps(f16x2(x.d, x.d).0));
        acc = _mm_fmadd_ps(r, _mm_setr_ps(y[0].d, y[1].d, y[2].d, y[3].d), acc);
    }
    let mut out = [0f32; 4];
    // SAFETY: `out` holds four floats.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), acc) };
    out
}

/// The four-byte group sums of |q| · (a with q's sign) in one `vpdpbusd`: exactly the i32
/// lanes AVX2's `vpmaddubsw` + `vpmaddwd` form (no pair can saturate: |q| ≤ 128, |a| ≤ 127).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn vnni_dot(ax: __m256i, sy: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy)
}

/// Group sums on `vpdpbusd` with the activations offset by 128 (unsigned bytes): Σ q·(a + 128)
/// starting from −128·Σq, formed once per weight vector, is exactly Σ q·a with no sign step per
/// token (no pair saturates: the products sum in i32; q may be −128 too).
#[derive(Clone, Copy)]
struct OffsetActs;

impl GroupSums for OffsetActs {
    type Prepared = (__m256i, __m256i);
    const OFFSET_ACTS: bool = true;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn prepare(self, q: __m256i) -> (__m256i, __m256i) {
        let times_128 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(i8::MIN), q);
        (_mm256_sub_epi32(_mm256_setzero_si256(), times_128), q)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn with(self, (start, q): (__m256i, __m256i), a: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(start, a, q)
    }
}

/// The int8 path's kernel of an unpacked row with `N` tokens, on `vpdpbusd`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn int8_xn<const N: usize>(w: Int8Row<'_>, a: &[Int8Row<'_>; N]) -> [f32; N] {
    dot_xn_of(w, a, OffsetActs)
}

/// The int8 path's kernel of a packed row with `N` tokens, on `vpdpbusd`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn int8_packed_xn<'w, B, const N: usize>(w: &'w [B], a: &[Int8Row<'_>; N]) -> [f32; N]
where
    &'w [B]: WeightBlocks,
{
    dot_xn_of(w, a, OffsetActs)
}

/// Swaps `vpdpbusd` kernels, which take the activations offset by 128, into the int8 path of
/// the type whose blocks are `B` (its unpacker stays AVX2's).
fn int8_vnni<B: bytemuck::Pod>(p: &mut Int8Path)
where
    for<'w> &'w [B]: WeightBlocks,
{
    // SAFETY (every closure): installed only into the AVX-512 table (see `install`).
    p.dot_x8 = |w, a| unsafe { int8_xn(w, a) };
    p.dot_x4 = |w, a| unsafe { int8_xn(w, a) };
    p.dot_x2 = |w, a| unsafe { int8_xn(w, a) };
    p.packed_x8 = |w, a| unsafe { int8_packed_xn::<B, 8>(cast(w), a) };
    p.packed_x4 = |w, a| unsafe { int8_packed_xn::<B, 4>(cast(w), a) };
    p.packed_x2 = |w, a| unsafe { int8_packed_xn::<B, 2>(cast(w), a) };
    p.offset_acts = true;
}

/// Swaps `vpdpbusd` kernels into interleaved Q5_0 (the interleaving stays AVX2's): one token
/// takes its quants as unsigned five-bit values, batches two lanes per 512-bit vector and the
/// activations offset by 128, as Q5_0's int8 path does here (see `install`).
fn interleaved_q5_0_vnni(p: &mut Interleaved8Path) {
    // SAFETY (every closure): installed only into the AVX-512 table (see `install`).
    p.x1 = |w, a| unsafe { q5_0_x8_x1(cast(w), cast(a)) };
    p.batch = Interleaved8Batch::Int8 {
        x8: |w, a| unsafe { q5_0_x8_xn::<8>(cast(w), a) },
        x4: |w, a| unsafe { q5_0_x8_xn::<4>(cast(w), a) },
        x2: |w, a| unsafe { q5_0_x8_xn::<2>(cast(w), a) },
    };
    // Batch-invariant matmuls: the reference's order, about half the work per token
    // (`x86_avx512_q5_0_ref_x8`).
    p.invariant = Some(ReferenceKernels {
        x1: |w, a| unsafe { q5_0_ref_x8_x1(cast(w), cast(a)) },
        batch: Interleaved8Batch::Int8Tokens {
            x8: |w, a| unsafe { q5_0_ref_x8_xn::<8>(cast(w), a) },
            x4: |w, a| unsafe { q5_0_ref_x8_xn::<4>(cast(w), a) },
            x2: |w, a| unsafe { q5_0_ref_x8_xn::<2>(cast(w), a) },
            pairs: Some(TokenPairs {
                x8: |w, a| unsafe { q5_0_ref_x16_xn::<8>(halves(w), a) },
                x4: |w, a| unsafe { q5_0_ref_x16_xn::<4>(halves(w), a) },
                x2: |w, a| unsafe { q5_0_ref_x16_xn::<2>(halves(w), a) },
            }),
        },
    });
}

/// Interleaved Q8_0 in the scalar reference's order (see `x86_avx512_q8_0_x8`): eight rows
/// per vector, whose integer sums take one `vpdpbusd` per lane and token and whose float steps
/// cover eight rows at once. For output projections only (`for_batches: false`): in a layer,
/// rounding other than llama.cpp's changes greedy runs (see `Kernels::output_layout`). Batches
/// take the activations signed and grouped by token, and offset the weights instead.
fn interleaved_q8_0_vnni() -> Interleaved8Path {
    // SAFETY (every closure): installed only into the AVX-512 table (see `install`).
    Interleaved8Path {
        x1: |w, a| unsafe { q8_0_x8_x1(cast(w), cast(a)) },
        batch: Interleaved8Batch::Int8Tokens {
            x8: |w, a| unsafe { q8_0_x8_xn::<8>(cast(w), a) },
            x4: |w, a| unsafe { q8_0_x8_xn::<4>(cast(w), a) },
            x2: |w, a| unsafe { q8_0_x8_xn::<2>(cast(w), a) },
            pairs: Some(TokenPairs {
                x8: |w, a| unsafe { q8_0_x16_xn::<8>(halves(w), a) },
                x4: |w, a| unsafe { q8_0_x16_xn::<4>(halves(w), a) },
                x2: |w, a| unsafe { q8_0_x16_xn::<2>(halves(w), a) },
            }),
        },
        interleave: |src, nb, out| {
            crate::quant::q8_0_x8::interleave_group(cast(src), nb, cast_mut(out))
        },
        for_batches: false,
        scalar_bits: true,
        invariant: None,
    }
}

/// Interleaved Q4_K ([`BlockQ4Kx8`]) · `N` Q8_K rows with a sub-block's products summed by
/// `vpdpbusd` into one i32 lane per row and its scale applied by `vpmulld`: the same integers
/// as AVX2's i16 sums and `vpmaddwd`, so the same bits (see `x86_avx2_q4k_x8`).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn q4_k_x8_vnni<const N: usize, const PER_64: bool>(
    w: &[BlockQ4Kx8],
    a: [&[BlockQ8K]; N],
) -> [[f32; 8]; N] {
    q4_k_x8_with::<N, PER_64>(
        w,
        a,
        |sum, q, y| _mm256_dpbusd_epi32(sum, q, y),
        |lo, hi, s, c| {
            _mm256_add_epi32(
                _mm256_mullo_epi32(lo, sub_scale_i32(s, 2 * c)),
                _mm256_mullo_epi32(hi, sub_scale_i32(s, 2 * c + 1)),
            )
        },
    )
}

/// Two consecutive interleaved groups' bytes as their blocks.
fn halves<B: bytemuck::Pod>(w: &[u8]) -> [&[B]; 2] {
    let (lo, hi) = w.split_at(w.len() / 2);
    [cast(lo), cast(hi)]
}

/// Q6_K's sixteen-row tiles (`x86_avx512_q6k_x16`'s unpacker) with the kernels of one order.
fn q6_k_tiles(min_tokens: usize, x8: Tile16Fn<8>, x4: Tile16Fn<4>) -> Tile16Path {
    Tile16Path {
        min_tokens,
        block_bytes: std::mem::size_of::<BlockQ6Kx16>(),
        // SAFETY: built only by `install`, for the AVX-512 table (see there).
        unpack: |w, nb, out| unsafe { unpack_q6_k_x16(cast(w), nb, cast_mut(out)) },
        x8,
        x4,
    }
}

/// Start from the AVX2 kernels, then swap in the AVX-512 ones.
pub(crate) fn install(table: &mut [TypeTraits]) {
    x86_avx2::install(table);
    // SAFETY (every closure below): this table is handed out only by `Kernels::for_isa`, after
    // `Isa::Avx512` was found available (AVX2, FMA, F16C, AVX-512 F/BW/VL/VNNI).
    for t in table.iter_mut() {
        // Measured to cost on a Zen 4 EPYC, which has AVX-512 (see `matmul::PREFETCH_AHEAD`).
        t.soft_prefetch = false;
        match t.ty {
            GgmlType::Q8_0 => {
                t.vec_dot = |w, a| unsafe { dot_q8_0(cast(w), cast(a)) };
            }
            GgmlType::Q5_0 => {
                t.vec_dot = |w, a| unsafe { dot_q5_0(cast(w), cast(a)) };
            }
            GgmlType::Q6_K => {
                t.vec_dot = |w, a| unsafe { vec_dot_q6_k(cast(w), cast(a)) };
                t.vec_dot_x4 = Some(|w, a| unsafe { vec_dot_q6_k_x4(cast(w), a.map(cast)) });
                if let Some(wide) = t.wide.as_mut() {
                    wide.vec_dot = |w, a| unsafe { vec_dot_q6_k_wide(cast(w), cast(a)) };
                    wide.vec_dot_x4 =
                        Some(|w, a| unsafe { vec_dot_q6_k_wide_x4(cast(w), a.map(cast)) });
                    wide.tile16 = Some(q6_k_tiles(
                        wide.min_tokens,
                        |w, a| unsafe { q6_k_x16_wide::<8>(cast(w), a.map(cast)) },
                        |w, a| unsafe { q6_k_x16_wide::<4>(cast(w), a.map(cast)) },
                    ));
                }
                // The one-token order's tiles, for batch-invariant batches (served prompts):
                // from 16 tokens, where unpacking a tile costs a few tokens' passes.
                t.tile16 = Some(q6_k_tiles(
                    16,
                    |w, a| unsafe { q6_k_x16_gemv_tokens::<8>(cast(w), a.map(cast)) },
                    |w, a| unsafe { q6_k_x16_gemv_tokens::<4>(cast(w), a.map(cast)) },
                ));
            }
            _ => {}
        }
        if let Some(p) = t.int8.as_mut() {
            match t.ty {
                GgmlType::Q4_0 => int8_vnni::<BlockQ4_0>(p),
                GgmlType::Q5_0 => int8_vnni::<BlockQ5_0>(p),
                GgmlType::Q8_0 => int8_vnni::<BlockQ8_0>(p),
                _ => {}
            }
        }
        if let (GgmlType::Q5_0, Some(p)) = (t.ty, t.interleaved8.as_mut()) {
            interleaved_q5_0_vnni(p);
        }
        if t.ty == GgmlType::Q8_0 {
            t.interleaved8 = Some(interleaved_q8_0_vnni());
        }
        if let (GgmlType::Q4_K, Some(p)) = (t.ty, t.interleaved8.as_mut()) {
            p.x1 = |w, a| unsafe { q4_k_x8_vnni::<1, false>(cast(w), [cast(a)])[0] };
            p.batch = Interleaved8Batch::X4 {
                x4: |w, a| unsafe { q4_k_x8_vnni::<4, false>(cast(w), a.map(cast)) },
                wide_x4: |w, a| unsafe { q4_k_x8_vnni::<4, true>(cast(w), a.map(cast)) },
                pairs: Some((
                    |w, a| unsafe { q4_k_x16::<4, false>(halves(w), a.map(cast)) },
                    |w, a| unsafe { q4_k_x16::<4, true>(halves(w), a.map(cast)) },
                )),
            };
        }
    }
}
