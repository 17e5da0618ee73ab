//! x86-64 AVX-512 Q4_K · Q8_K over two consecutive interleaved row groups at once (sixteen
//! rows, one per 32-bit lane of a 512-bit vector): the kernels of `x86_avx2_q4k_x8` (VNNI
//! form, `x86_avx512::q4_k_x8_vnni`) with every vector twice as wide. Lanes 0..8 are the
//! first group's rows and 8..16 the second's, and each lane goes through exactly the integer
//! and float steps of its row in the eight-row kernel, so the results are those bits.
//!
//! On a core with full-width 512-bit units (Zen 5) a `vpdpbusd` of sixteen rows costs what one
//! of eight did, which nearly halves a prefill's Q4_K time; on Zen 4 (two 256-bit halves) it
//! is the same work in half the instructions.
//!
//! Same safety contract as `x86_avx512`: reachable only through the AVX-512 table.

use std::arch::x86_64::*;

use super::x86_avx2::load32u;
use super::x86_avx2_q4k_x8::{bsum_pairs, chunk_mins, scales, sub_scale_i32, PAIR_LANE};
use super::x86_avx512::join;
use super::x86_avx512_q8_0_x8::prefetch_ahead;
use crate::quant::q4_k_x8::{BlockQ4Kx8, ROWS};
use crate::quant::BlockQ8K;

/// Rows of the two groups.
const ROWS2: usize = 2 * ROWS;

/// `acc` plus, in each lane, the four unsigned bytes of `w` times bytes `at..at + 4` of `q`
/// (the same four in every lane): `vpdpbusd` with those bytes as its broadcast memory operand.
/// Written as `asm!` because the compiler formed each i32 in a general register and broadcast
/// it from there (a load, a move and a cross-domain broadcast per use instead of none: twice
/// per group of four bytes, token and chunk).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dpbusd_at(acc: __m512i, w: __m512i, q: &[i8; 256], at: usize) -> __m512i {
    assert!(at <= 252);
    let mut acc = acc;
    // SAFETY: reads the four bytes at..at + 4 of `q` (checked) and writes only `acc`.
    unsafe {
        std::arch::asm!(
            "vpdpbusd {acc}, {w}, dword ptr [{p}]{{1to16}}",
            acc = inout(zmm_reg) acc,
            w = in(zmm_reg) w,
            p = in(reg) q.as_ptr().add(at),
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    acc
}

/// The sixteen rows' f16 scales `d` (or `dmin`) as floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn scales_f32(lo: [half::f16; ROWS], hi: [half::f16; ROWS]) -> __m512 {
    let (lo, hi): ([i16; ROWS], [i16; ROWS]) = (bytemuck::cast(lo), bytemuck::cast(hi));
    // SAFETY: 16 bytes each.
    let v = unsafe {
        _mm256_set_m128i(
            _mm_loadu_si128(hi.as_ptr().cast()),
            _mm_loadu_si128(lo.as_ptr().cast()),
        )
    };
    _mm512_cvtph_ps(v)
}

/// `out[t][r]` = row r of the two groups `w` (row r of `w[0]` for r < 8, row r − 8 of `w[1]`
/// after) · `a[t]`, bit-identical to `x86_avx2_q4k_x8::q4_k_x8_with` in its VNNI form on each
/// group (`PER_64` as there).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn q4_k_x16<const N: usize, const PER_64: bool>(
    w: [&[BlockQ4Kx8]; 2],
    a: [&[BlockQ8K]; N],
) -> [[f32; ROWS2]; N] {
    let m4 = _mm512_set1_epi8(0x0f);
    let mut acc = [_mm512_setzero_ps(); N];
    let mut mins = [_mm512_setzero_ps(); N];
    let n = a
        .iter()
        .fold(w[0].len().min(w[1].len()), |n, r| n.min(r.len()));
    for i in 0..n {
        // The next super-block of each group; past a group's end, the same group of the next
        // pair (the next two groups follow these two), whose start would otherwise come cold.
        // Only in the GEMV order: the per-64 (GEMM) order serves prefill batches, which visit
        // each group once per four tokens and find it in the caches after the first.
        if !PER_64 {
            let ahead = if i + 1 < n { i + 1 } else { i + 1 + n };
            prefetch_ahead(w[0], ahead);
            prefetch_ahead(w[1], ahead);
        }
        let (x0, x1) = (&w[0][i], &w[1][i]);
        let y: [&BlockQ8K; N] = std::array::from_fn(|t| &a[t][i]);
        let (d, dmin) = (scales_f32(x0.d, x1.d), scales_f32(x0.dmin, x1.dmin));
        let ds: [__m512; N] = std::array::from_fn(|t| _mm512_mul_ps(d, _mm512_set1_ps(y[t].d)));
        let dmins: [__m512; N] =
            std::array::from_fn(|t| _mm512_mul_ps(dmin, _mm512_set1_ps(y[t].d)));
        let (s0, s1) = (scales(x0), scales(x1));
        let pairs: [[i32; 8]; N] = std::array::from_fn(|t| bytemuck::cast(bsum_pairs(y[t])));
        let mut sumi = [_mm512_setzero_si512(); N];
        let mut imin = [_mm512_setzero_si512(); N];
        for (c, pair_lane) in PAIR_LANE.into_iter().enumerate() {
            // Σ q·a of sub-blocks 2c (low nibbles) and 2c + 1 (high) per row, exact in i32.
            let mut lo_sum = [_mm512_setzero_si512(); N];
            let mut hi_sum = [_mm512_setzero_si512(); N];
            for g in 0..8 {
                let at = (8 * c + g) * 32;
                let q = join(load32u(&x0.qs[at..]), load32u(&x1.qs[at..]));
                let lo = _mm512_and_si512(q, m4);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(q), m4);
                for t in 0..N {
                    lo_sum[t] = dpbusd_at(lo_sum[t], lo, &y[t].qs, 64 * c + 4 * g);
                    hi_sum[t] = dpbusd_at(hi_sum[t], hi, &y[t].qs, 64 * c + 32 + 4 * g);
                }
            }
            let sc_lo = join(sub_scale_i32(&s0, 2 * c), sub_scale_i32(&s1, 2 * c));
            let sc_hi = join(sub_scale_i32(&s0, 2 * c + 1), sub_scale_i32(&s1, 2 * c + 1));
            let m = join(chunk_mins(&s0, c), chunk_mins(&s1, c));
            for t in 0..N {
                let sc = _mm512_add_epi32(
                    _mm512_mullo_epi32(lo_sum[t], sc_lo),
                    _mm512_mullo_epi32(hi_sum[t], sc_hi),
                );
                let pair = _mm512_set1_epi32(pairs[t][pair_lane as usize]);
                let mn = _mm512_madd_epi16(m, pair);
                if PER_64 {
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sc), ds[t], acc[t]);
                    mins[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mn), dmins[t], mins[t]);
                } else {
                    sumi[t] = _mm512_add_epi32(sumi[t], sc);
                    imin[t] = _mm512_add_epi32(imin[t], mn);
                }
            }
        }
        if !PER_64 {
            for t in 0..N {
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[t]), ds[t], acc[t]);
                mins[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin[t]), dmins[t], mins[t]);
            }
        }
    }
    let mut out = [[0f32; ROWS2]; N];
    for (o, (acc, mins)) in out.iter_mut().zip(acc.iter().zip(&mins)) {
        // SAFETY: o holds 16 floats.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), _mm512_sub_ps(*acc, *mins)) };
    }
    out
}
