//! x86-64 AVX-512 batch kernels of interleaved Q5_0 ([`BlockQ5_0x8`]) with the int8 path's
//! activations (offset by 128).
//!
//! The AVX2 kernel (`x86_avx2_int8_x8`) holds one lane of eight rows
//! per 256-bit vector; this one holds two lanes (2p and 2p + 1, row by row: element
//! 2r + j is row r's lane 2p + j), so that one `vpbroadcastq` of eight activation bytes feeds
//! both and each token's multiply-add, conversion and FMA cover 64 values. On a Zen 4, which
//! splits 512-bit operations in two, that measured 1.4 cycles per token and 32 values against
//! 1.5–2.5 for the 256-bit loop (a bare loop of the same operations).
//!
//! Each element sees exactly the integer sums, scale products and FMAs of the 256-bit kernel,
//! in the same order, and the final lane tree is the same, so the results keep their bits.
//!
//! Same safety contract as `x86_avx512`: reachable only through the AVX-512 table.

use std::arch::x86_64::*;

use super::x86_avx2::i32_at;
use super::x86_avx2_int8::{scale8, token_rows};
use super::x86_avx2_int8_x8::{lane_sum, row_scales};
use crate::quant::q5_0_x8::BlockQ5_0x8;
use crate::quant::{BlockQ8_0, INTERLEAVED_ROWS as ROWS};
use crate::traits::Int8Row;

/// The eight lanes of `x` as unsigned quants u = q + 16 (lane l: values 4l..4l + 4 of every
/// row, row r's four at bytes 4r.., see [`BlockQ5_0x8`]): the nibble, plus 16 where the fifth
/// bit is set (one test and one masked add).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn unsigned_lanes(x: &BlockQ5_0x8) -> [__m256i; 8] {
    // SAFETY: `qs` is 128 bytes (group g at 32g), `qh` 32.
    let (groups, qh) = unsafe {
        (
            [0, 1, 2, 3].map(|g| _mm256_loadu_si256(x.qs.as_ptr().add(32 * g).cast())),
            _mm256_loadu_si256(x.qh.as_ptr().cast()),
        )
    };
    let m4 = _mm256_set1_epi8(0x0f);
    std::array::from_fn(|l| {
        // Group l % 4 holds lane l in its low nibbles (l < 4), lane l + 4 in its high ones.
        let packed = groups[l % 4];
        let nibbles = if l < 4 {
            _mm256_and_si256(packed, m4)
        } else {
            _mm256_and_si256(_mm256_srli_epi16::<4>(packed), m4)
        };
        // Bit l of byte 4r + k: the fifth bit of value 4l + k of row r.
        let fifth = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((1u8 << l) as i8));
        _mm256_mask_add_epi8(nibbles, fifth, nibbles, _mm256_set1_epi8(16))
    })
}

/// The eight rows of `w` · one Q8_0 row (signed quants), bit-identical to `dot_q5_0` on each
/// row (`x86_avx2_int8_x8::int8_x8_x1`'s lanes, sums and FMAs). Each lane's quants are taken
/// as the unsigned five-bit values u = q + 16 (the nibble, plus 16 where the fifth bit is set:
/// one test and one masked add), which `vpdpbusd` multiplies by the signed activations
/// directly; the sum starts from −16·Σa of the lane's four activation bytes, formed once per
/// block for all eight lanes (one `vpdpbusd` with ones), so Σ u·a − 16·Σa = Σ q·a exactly.
/// That is six operations per lane and block where the AVX2 decode and sign trick took eleven.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn q5_0_x8_x1(w: &[BlockQ5_0x8], a: &[BlockQ8_0]) -> [f32; ROWS] {
    let mut acc = [_mm256_setzero_ps(); 8];
    let mut starts = [0i32; 8];
    for (x, y) in w.iter().zip(a) {
        let ds = _mm256_mul_ps(row_scales(x), scale8(y.d));
        // SAFETY: `qs` is 32 bytes; `starts` holds eight i32s.
        unsafe {
            // Lane l's four activation bytes summed (times ones), then times −16.
            let ya = _mm256_loadu_si256(y.qs.as_ptr().cast());
            let sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), ya);
            let neg = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<4>(sums));
            _mm256_storeu_si256(starts.as_mut_ptr().cast(), neg);
        }
        // Read back from memory: each start then broadcasts in the load unit, where the
        // compiler otherwise shuffled it out of the register (two vector operations a lane).
        let starts = std::hint::black_box(&starts);
        let lanes = unsigned_lanes(x);
        for (l, (acc, &u)) in acc.iter_mut().zip(&lanes).enumerate() {
            let y4 = i32_at(&y.qs, 4 * l);
            let s = _mm256_dpbusd_epi32(_mm256_set1_epi32(starts[l]), u, _mm256_set1_epi32(y4));
            *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), ds, *acc);
        }
    }
    lane_sum(&acc)
}

/// Blocks whose scale products are formed at a time, for the four lane-pair passes.
const RUN: usize = 16;

/// Lanes 2p and 2p + 1 of the eight rows of `x` as signed quants, row by row (see the module
/// doc), and −128 × their four-byte group sums (where `vpdpbusd` with activations offset by 128
/// starts, see `x86_avx512::OffsetActs`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn lane_pair(x: &BlockQ5_0x8, p: usize) -> (__m512i, __m512i) {
    // Groups 2(p % 2) and 2(p % 2) + 1 hold lanes 2p and 2p + 1: in their low nibbles for
    // p < 2, their high ones after.
    let g = 64 * (p % 2);
    assert!(x.qs.len() >= g + 64);
    // SAFETY: 64 readable bytes at g (checked); `qh` is 32 bytes.
    let (groups, qh) = unsafe {
        (
            _mm512_loadu_si512(x.qs.as_ptr().add(g).cast()),
            _mm512_castsi256_si512(_mm256_loadu_si256(x.qh.as_ptr().cast())),
        )
    };
    let by_row = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    let packed = _mm512_permutexvar_epi32(by_row, groups);
    let packed = if p < 2 {
        packed
    } else {
        _mm512_srli_epi16::<4>(packed)
    };
    let nibbles = _mm512_and_si512(packed, _mm512_set1_epi8(0x0f));
    // Row r's fifth bits (byte 4r + k, bit l: value 4l + k) beside both of its lanes; a clear
    // bit makes the quant nibble − 16.
    let twice = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    let qh = _mm512_permutexvar_epi32(twice, qh);
    let lane_bits = 0x0101_0101_i64 << (2 * p) | (0x0101_0101_i64 << (2 * p + 1)) << 32;
    let clear = _mm512_testn_epi8_mask(qh, _mm512_set1_epi64(lane_bits));
    let q = _mm512_mask_sub_epi8(nibbles, clear, nibbles, _mm512_set1_epi8(16));
    let times_128 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(i8::MIN), q);
    (q, _mm512_sub_epi32(_mm512_setzero_si512(), times_128))
}

/// The eight rows of `w` · `N` unpacked Q8_0 rows offset by 128 (the int8 path's activations
/// where `offset_acts`), bit-identical to `x86_avx2_int8_x8::int8_x8_xn`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn q5_0_x8_xn<const N: usize>(
    w: &[BlockQ5_0x8],
    a: &[Int8Row<'_>; N],
) -> [[f32; ROWS]; N] {
    let nb = w.len();
    let (qs, ys) = token_rows(a, nb);
    if nb == 0 {
        return [[0.0; ROWS]; N];
    }
    // Each lane pair's accumulators, one per token (left uninitialised, written by the first
    // run: zeroing them cost a memset per call).
    let mut pairs = std::mem::MaybeUninit::<[[__m512; N]; 4]>::uninit();
    let pair_at = pairs.as_mut_ptr().cast::<[__m512; N]>();
    // A run's scale products (row scale × token scale, each row's twice); left uninitialised,
    // as only the entries of the run at hand are read, after they are written.
    let mut ds_buf = std::mem::MaybeUninit::<[[__m512; N]; RUN]>::uninit();
    let twice = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    for (run, blocks) in w.chunks(RUN).enumerate() {
        let i0 = run * RUN;
        let ds = ds_buf.as_mut_ptr().cast::<[__m512; N]>();
        for (k, x) in blocks.iter().enumerate() {
            // The same block of the next run (past the end: the next group's, whose bytes
            // follow) is asked for now, a run of lane passes ahead; a hint, so it may point
            // past `w`.
            let ahead = w.as_ptr().wrapping_add(i0 + k + RUN).cast::<i8>();
            for off in (0..std::mem::size_of::<BlockQ5_0x8>()).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(off));
            }
            // SAFETY: `d` is eight f16s, 16 bytes.
            let d8 = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(x.d.as_ptr().cast()) });
            let d = _mm512_permutexvar_ps(twice, _mm512_castps256_ps512(d8));
            for (t, y) in ys.iter().enumerate() {
                // SAFETY: k < blocks.len() <= RUN, so entry (k, t) lies in `ds_buf`; and
                // i0 + k < nb <= every token row's length (asserted above).
                unsafe {
                    let yd = _mm512_set1_ps(*y.add(i0 + k));
                    ds.add(k)
                        .cast::<__m512>()
                        .add(t)
                        .write(_mm512_mul_ps(d, yd));
                }
            }
        }
        // SAFETY: the run's entries were all written just above.
        let ds = unsafe { std::slice::from_raw_parts(ds, blocks.len()) };
        for p in 0..4 {
            let mut acc = if run == 0 {
                [_mm512_setzero_ps(); N]
            } else {
                // SAFETY: pair p of `pairs`, written by the run before.
                unsafe { pair_at.add(p).read() }
            };
            for (k, (x, ds)) in blocks.iter().zip(ds).enumerate() {
                let (q, start) = lane_pair(x, p);
                for t in 0..N {
                    // SAFETY: i0 + k < nb <= every token row's length (asserted above), and
                    // the eight bytes at 8p lie inside the block's 32.
                    let y8 = unsafe { qs[t].add(i0 + k).cast::<i64>().add(p).read_unaligned() };
                    let s = _mm512_dpbusd_epi32(start, _mm512_set1_epi64(y8), q);
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), ds[t], acc[t]);
                }
            }
            // SAFETY: pair p lies in `pairs`.
            unsafe { pair_at.add(p).write(acc) };
        }
    }
    // SAFETY: nb > 0, so the first run wrote every pair.
    let pairs = unsafe { pairs.assume_init() };
    std::array::from_fn(|t| {
        // The lane tree of `hsum_ps`, ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)): pairs
        // (0, 1) + (4, 5) and so on keep even lanes in even elements.
        let e = _mm512_add_ps(
            _mm512_add_ps(pairs[0][t], pairs[2][t]),
            _mm512_add_ps(pairs[1][t], pairs[3][t]),
        );
        let mut v = [0f32; 2 * ROWS];
        // SAFETY: v holds 16 floats.
        unsafe { _mm512_storeu_ps(v.as_mut_ptr(), e) };
        std::array::from_fn(|r| v[2 * r] + v[2 * r + 1])
    })
}
