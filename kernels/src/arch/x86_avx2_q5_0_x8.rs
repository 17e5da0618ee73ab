//! x86-64 AVX2 Q5_0 · Q8_0 over eight interleaved rows ([`BlockQ5_0x8`]), for one token: the
//! rows sit in the lanes of each vector, so a block's fifth bits take one AND and compare per
//! lane instead of a spread of 32 bits per row, and the scales of eight rows convert at once.
//! Each row keeps ggml's eight-lane float accumulator (lane l: values 4l..4l + 4 of every
//! block), held as eight vectors of rows, and the final lane sum is `hsum_ps`'s tree applied
//! across them, so the results are bit-identical to `dot_q5_0_n`. Batches ([`q5_0_x8_xn`])
//! run one lane at a time over the group's blocks (a few KiB, re-read from L1 per lane), so
//! that each lane's quants are decoded once for all the tokens and the accumulators of eight
//! tokens still fit in registers.
//!
//! Same safety contract as `x86_avx2`: these run only through the table `x86_avx2::install`
//! fills, handed out after AVX2, FMA and F16C were detected.

use std::arch::x86_64::*;

use super::x86_avx2::load32u;
use super::x86_avx2_int8::scale8;
use crate::quant::q5_0_x8::{BlockQ5_0x8, ROWS};
use crate::quant::BlockQ8_0;
use crate::traits::Int8Row;

/// Lane `l`'s signed quants (q − 16) of the eight rows, from its nibbles and the fifth bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn lane_quants(nibbles: __m256i, qh: __m256i, l: usize) -> __m256i {
    let bit = _mm256_set1_epi8((1u8 << l) as i8);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
    // A clear fifth bit makes the byte 0xF0 | nibble: nibble − 16 as a signed byte.
    _mm256_or_si256(
        nibbles,
        _mm256_andnot_si256(set, _mm256_set1_epi8(0xf0u8 as i8)),
    )
}

/// Calls `f(l, quants of lane l)` for the eight lanes of a block, in the order 0, 4, 1, 5, ….
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn for_each_lane(x: &BlockQ5_0x8, mut f: impl FnMut(usize, __m256i)) {
    let qh = load32u(&x.qh);
    let m4 = _mm256_set1_epi8(0x0f);
    for g in 0..4 {
        let w = load32u(&x.qs[32 * g..]);
        f(g, lane_quants(_mm256_and_si256(w, m4), qh, g));
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(w), m4);
        f(g + 4, lane_quants(hi, qh, g + 4));
    }
}

/// The eight rows of `w` · one Q8_0 row.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_0_x8_x1(w: &[BlockQ5_0x8], a: &[BlockQ8_0]) -> [f32; ROWS] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); 8];
    for (x, y) in w.iter().zip(a) {
        // SAFETY: d is 16 bytes.
        let d = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(x.d.as_ptr().cast()) });
        // Each row's scale product, as the one-row kernel forms it (weight × activation).
        let ds = _mm256_mul_ps(d, scale8(y.d));
        for_each_lane(x, |l, q| {
            let b = &y.qs[4 * l..4 * l + 4];
            let y4 = _mm256_set1_epi32(i32::from_le_bytes([
                b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8,
            ]));
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y4, q));
            let s = _mm256_madd_epi16(p, ones);
            acc[l] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), ds, acc[l]);
        });
    }
    lane_sum(&acc)
}

/// hsum_ps's tree, ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), for every row at once.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn lane_sum(acc: &[__m256; 8]) -> [f32; ROWS] {
    let even = _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6]));
    let odd = _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7]));
    let mut out = [0f32; ROWS];
    // SAFETY: out holds 8 floats.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(even, odd)) };
    out
}

/// The eight rows of `w` · `N` unpacked Q8_0 rows (the int8 path's activations).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn q5_0_x8_xn<const N: usize>(
    w: &[BlockQ5_0x8],
    a: &[Int8Row<'_>; N],
) -> [[f32; ROWS]; N] {
    let nb = w.len();
    for r in a {
        assert!(r.d.len() >= nb && r.qs.len() >= nb);
    }
    let ones = _mm256_set1_epi16(1);
    let m4 = _mm256_set1_epi8(0x0f);
    let qs: [*const [i8; 32]; N] = std::array::from_fn(|t| a[t].qs.as_ptr());
    let ys: [*const f32; N] = std::array::from_fn(|t| a[t].d.as_ptr());
    let mut lanes = [[_mm256_setzero_ps(); 8]; N];
    // A run of blocks at a time: their scale products (row scale × token scale) are formed
    // once for the eight lane passes, which re-read the run's weights from L1.
    const RUN: usize = 16;
    let mut ds = [[_mm256_setzero_ps(); N]; RUN];
    for (run, blocks) in w.chunks(RUN).enumerate() {
        let i0 = run * RUN;
        for (k, x) in blocks.iter().enumerate() {
            // SAFETY: d is 16 bytes; i0 + k < nb <= every token row's length (asserted).
            let d = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(x.d.as_ptr().cast()) });
            ds[k] = std::array::from_fn(|t| {
                _mm256_mul_ps(d, unsafe { _mm256_broadcast_ss(&*ys[t].add(i0 + k)) })
            });
        }
        for (l, lane) in (0..8).zip(0..) {
            let mut acc: [__m256; N] = std::array::from_fn(|t| lanes[t][lane]);
            for (k, (x, ds)) in blocks.iter().zip(&ds).enumerate() {
                let packed = load32u(&x.qs[32 * (l % 4)..]);
                let nibbles = if l < 4 {
                    _mm256_and_si256(packed, m4)
                } else {
                    _mm256_and_si256(_mm256_srli_epi16::<4>(packed), m4)
                };
                let q = lane_quants(nibbles, load32u(&x.qh), l);
                let ax = _mm256_sign_epi8(q, q);
                for t in 0..N {
                    // SAFETY: i0 + k < nb <= every token row's length (asserted above), and
                    // the four bytes at 4l lie inside the block's 32.
                    let y4 = unsafe { qs[t].add(i0 + k).cast::<i32>().add(l).read_unaligned() };
                    let y4 = _mm256_set1_epi32(y4);
                    let p = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(y4, q));
                    let s = _mm256_madd_epi16(p, ones);
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), ds[t], acc[t]);
                }
            }
            for t in 0..N {
                lanes[t][lane] = acc[t];
            }
        }
    }
    lanes.map(|acc| lane_sum(&acc))
}
