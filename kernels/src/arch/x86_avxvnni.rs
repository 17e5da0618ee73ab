//! x86-64 AVX-VNNI: the 256-bit VEX `vpdpbusd` of CPUs that have it without AVX-512 (Intel
//! Alder Lake and later client cores, AMD Zen 5 desktop parts). It replaces AVX2's
//! `vpmaddubsw` + `vpmaddwd` pair where the multiply-adds are the work: Q8_0 (weights and the
//! activation type of Q4_0/Q5_0/Q8_0 dots), for one token: batches of two or more take the
//! AVX2 int8 path (`x86_avx2_int8`). For the 4- and 5-bit types and the K-quants the
//! cost is in unpacking nibbles and scales, and the AVX-512 experiments with `vpdpbusd` there
//! measured slower than AVX2, so they keep the AVX2 kernels.
//!
//! The integer sums equal AVX2's (each lane sums the same four products, and |a|·b stays
//! within i16 in AVX2's pairs), so results are bit-identical to the AVX2 table's.
//!
//! Every `#[target_feature]` function here may only run on a CPU with `avx2,fma,f16c,avxvnni`:
//! they are reachable only through the table `install` fills, which `Kernels::for_isa`
//! hands out after `Isa::AvxVnni` was found available.

use std::arch::x86_64::*;

use nanorun_formats::GgmlType;

use super::x86_avx2;
use super::x86_avx2_q6k_x16::{dword_at, in_fours, q6_k_x16_with};
use crate::quant::q6_k_x16::{BlockQ6Kx16, ROWS};
use crate::quant::{BlockQ8K, BlockQ8_0};
use crate::traits::{cast, TypeTraits};

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn load32(p: &[i8]) -> __m256i {
    assert!(p.len() >= 32);
    // SAFETY: 32 readable bytes (checked).
    unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
}

/// Q8_0 · Q8_0 with 256-bit VEX `vpdpbusd`.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn dot_q8_0(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    x86_avx2::sum_blocks_n::<_, _, _, 1, false>(
        w,
        [a],
        |x| [x.d.to_bits(), 0],
        |y| [y.d.to_bits(), 0],
        |x| load32(&x.qs),
        |q, y| {
            let y = load32(&y.qs);
            let (ax, sy) = (_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q));
            _mm256_cvtepi32_ps(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), ax, sy))
        },
    )[0]
}

/// One Q6_K sub-block's Σ sc·Σ q·a per row for one token over an unpacked tile (see
/// `x86_avx2_q6k_x16::sub_block_avx2`): its sixteen products per row in four `vpdpbusd`,
/// then times the scale.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn q6_sub_block(w: &[__m256i; 4], sc: __m256i, q: &[i8; 256], at: usize) -> __m256i {
    let mut s = _mm256_setzero_si256();
    for (g, wg) in w.iter().enumerate() {
        s = _mm256_dpbusd_avx_epi32(s, *wg, dword_at(q, at + 4 * g));
    }
    _mm256_mullo_epi32(s, sc)
}

/// `out[t][r]` = row r of an unpacked sixteen-row Q6_K tile `w` · `a[t]`, bit-identical to
/// the AVX2 kernel (`x86_avx2_q6k_x16::q6_k_x16_wide`).
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn q6_k_x16_wide<const N: usize>(w: &[BlockQ6Kx16], a: [&[BlockQ8K]; N]) -> [[f32; ROWS]; N] {
    q6_k_x16_with(w, a, |s| s, |q, s, y, at| q6_sub_block(q, s, y, at))
}

/// Start from the AVX2 kernels, then swap in the AVX-VNNI ones.
pub(crate) fn install(table: &mut [TypeTraits]) {
    x86_avx2::install(table);
    // SAFETY (every closure below): this table is handed out only by `Kernels::for_isa`, after
    // `Isa::AvxVnni` was found available (AVX2, FMA, F16C, AVX-VNNI).
    for t in table.iter_mut() {
        if t.ty == GgmlType::Q8_0 {
            t.vec_dot = |w, a| unsafe { dot_q8_0(cast(w), cast(a)) };
        }
        if let Some(p) = t.wide.as_mut().and_then(|w| w.tile16.as_mut()) {
            if t.ty == GgmlType::Q6_K {
                p.x8 = |w, a| in_fours(a, |a| unsafe { q6_k_x16_wide::<4>(cast(w), a.map(cast)) });
                p.x4 = |w, a| unsafe { q6_k_x16_wide::<4>(cast(w), a.map(cast)) };
            }
        }
    }
}
