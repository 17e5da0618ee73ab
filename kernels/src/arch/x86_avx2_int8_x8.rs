//! x86-64 AVX2 dot products of eight interleaved rows of a 32-value type whose activations
//! are Q8_0 (so far [`BlockQ5_0x8`]) with Q8_0 rows: the rows sit in the lanes of
//! each vector, so one 32-byte load holds four values of every row, a Q5_0 block's fifth bits
//! take one AND and compare per lane instead of a spread of 32 bits per row, and the scales of
//! eight rows convert at once. Each row keeps ggml's eight-lane float accumulator (lane l:
//! values 4l..4l + 4 of every block), held as eight vectors of rows, and the final lane sum is
//! `hsum_ps`'s tree applied across them, so the results are bit-identical to the types' own
//! kernels (`dot_q5_0_n`). Batches ([`int8_x8_xn`]) run one lane at a time over
//! runs of blocks (re-read from L1 per lane), so that each lane's quants are decoded once for
//! all the tokens and the accumulators of eight tokens still fit in registers.
//!
//! Same safety contract as `x86_avx2`: these run only through the table `x86_avx2::install`
//! fills, handed out after AVX2, FMA and F16C were detected.

use std::arch::x86_64::*;

use half::f16;

use super::x86_avx2::{cvt8, dot_u8_i8, i32_at, load32u, to_array};
use super::x86_avx2_int8::{scale8, token_rows, GroupSums, SignTrick};
use crate::quant::q5_0_x8::BlockQ5_0x8;
use crate::quant::BlockQ8_0;
use crate::traits::Int8Row;

use crate::quant::INTERLEAVED_ROWS as ROWS;

/// An interleaved block of eight rows, read lane by lane.
pub(crate) trait LaneBlock {
    /// The rows' scales.
    fn scales(&self) -> &[f16; ROWS];

    /// Lane `l`'s signed quants of the eight rows (row r's four at 4r).
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    unsafe fn lane(&self, l: usize) -> __m256i;
}

impl LaneBlock for BlockQ5_0x8 {
    fn scales(&self) -> &[f16; ROWS] {
        &self.d
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn lane(&self, l: usize) -> __m256i {
        let m4 = _mm256_set1_epi8(0x0f);
        let packed = load32u(&self.qs[32 * (l % 4)..]);
        let nibbles = if l < 4 {
            _mm256_and_si256(packed, m4)
        } else {
            _mm256_and_si256(_mm256_srli_epi16::<4>(packed), m4)
        };
        let bit = _mm256_set1_epi8((1u8 << l) as i8);
        let qh = load32u(&self.qh);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
        // A clear fifth bit makes the byte 0xF0 | nibble: nibble − 16 as a signed byte.
        _mm256_or_si256(
            nibbles,
            _mm256_andnot_si256(set, _mm256_set1_epi8(0xf0u8 as i8)),
        )
    }
}

/// The eight rows' scales as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn row_scales(x: &impl LaneBlock) -> __m256 {
    cvt8(bytemuck::cast(*x.scales()))
}

/// The eight rows of `w` · one Q8_0 row.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn int8_x8_x1<B: LaneBlock>(w: &[B], a: &[BlockQ8_0]) -> [f32; ROWS] {
    int8_x8_x1_with(w, a, SignTrick(|ax, sy| dot_u8_i8(ax, sy)))
}

/// [`int8_x8_x1`] with the group sums formed by `g` (which takes signed activation bytes).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn int8_x8_x1_with<B: LaneBlock, G: GroupSums>(
    w: &[B],
    a: &[BlockQ8_0],
    g: G,
) -> [f32; ROWS] {
    const { assert!(!G::OFFSET_ACTS, "Q8_0 blocks hold signed bytes") };
    let mut acc = [_mm256_setzero_ps(); 8];
    for (x, y) in w.iter().zip(a) {
        // Each row's scale product, as the one-row kernel forms it (weight × activation).
        let ds = _mm256_mul_ps(row_scales(x), scale8(y.d));
        for (l, acc) in acc.iter_mut().enumerate() {
            // SAFETY: this function's target features (`g`'s are the caller's).
            let s = unsafe {
                g.with(
                    g.prepare(x.lane(l)),
                    _mm256_set1_epi32(i32_at(&y.qs, 4 * l)),
                )
            };
            *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), ds, *acc);
        }
    }
    lane_sum(&acc)
}

/// hsum_ps's tree, ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), for every row at once.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn lane_sum(acc: &[__m256; 8]) -> [f32; ROWS] {
    let even = _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6]));
    let odd = _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7]));
    to_array(_mm256_add_ps(even, odd))
}

/// The eight rows of `w` · `N` unpacked Q8_0 rows (the int8 path's activations). Each run of
/// blocks is copied to L1 before its lane passes and the next one prefetched (see below), for
/// CPUs whose prefetchers do not follow the lane passes.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn int8_x8_xn<B: LaneBlock + bytemuck::Pod, const N: usize>(
    w: &[B],
    a: &[Int8Row<'_>; N],
) -> [[f32; ROWS]; N] {
    let g = SignTrick(|ax, sy| dot_u8_i8(ax, sy));
    let nb = w.len();
    let (qs, ys) = token_rows(a, nb);
    // Each lane's accumulators, one per token.
    let mut lanes = [[_mm256_setzero_ps(); N]; 8];
    // A run of blocks at a time: their scale products (row scale × token scale) are formed
    // once for the eight lane passes, which re-read the run's weights from L1.
    const RUN: usize = 16;
    // This and the staging space are left uninitialised: zeroing them cost a memset per call
    // (only the entries of the run at hand are read, after they are written).
    let mut ds_buf = std::mem::MaybeUninit::<[[__m256; N]; RUN]>::uninit();
    let mut local = std::mem::MaybeUninit::<[B; RUN]>::uninit();
    for (run, blocks) in w.chunks(RUN).enumerate() {
        let i0 = run * RUN;
        let blocks = {
            // The lane passes read 32 bytes of every block at a time: from memory, an access
            // pattern some CPUs' prefetchers follow badly (2.2× slower on a matrix beyond L2
            // on a Zen 3). So the next run (or the next group's first, which follows in
            // memory) is prefetched while this one computes (a hint, so it may point past
            // `w`), and this one is copied to L1 in order first.
            let next = w.as_ptr().wrapping_add(i0 + RUN).cast::<u8>();
            for off in (0..RUN * std::mem::size_of::<B>()).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(off).cast());
            }
            let local = local.as_mut_ptr().cast::<B>();
            // SAFETY: `local` has room for RUN ≥ blocks.len() blocks, which do not overlap
            // `blocks`; the slice covers only the ones just written.
            unsafe {
                std::ptr::copy_nonoverlapping(blocks.as_ptr(), local, blocks.len());
                std::slice::from_raw_parts(local, blocks.len())
            }
        };
        let ds = ds_buf.as_mut_ptr().cast::<[__m256; N]>();
        for (k, x) in blocks.iter().enumerate() {
            let d = row_scales(x);
            for (t, y) in ys.iter().enumerate() {
                // SAFETY: k < blocks.len() <= RUN, so entry (k, t) lies in `ds_buf`; and
                // i0 + k < nb <= every token row's length (asserted above).
                unsafe {
                    let yd = _mm256_broadcast_ss(&*y.add(i0 + k));
                    ds.add(k)
                        .cast::<__m256>()
                        .add(t)
                        .write(_mm256_mul_ps(d, yd));
                }
            }
        }
        // SAFETY: the run's entries were all written just above.
        let ds = unsafe { std::slice::from_raw_parts(ds, blocks.len()) };
        for (l, lane) in lanes.iter_mut().enumerate() {
            let mut acc = *lane;
            for (k, (x, ds)) in blocks.iter().zip(ds).enumerate() {
                // SAFETY: this function's target features (`g`'s).
                let q = unsafe { g.prepare(x.lane(l)) };
                for t in 0..N {
                    // SAFETY: i0 + k < nb <= every token row's length (asserted above), and
                    // the four bytes at 4l lie inside the block's 32.
                    let y4 = unsafe { qs[t].add(i0 + k).cast::<i32>().add(l).read_unaligned() };
                    let s = unsafe { g.with(q, _mm256_set1_epi32(y4)) };
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), ds[t], acc[t]);
                }
            }
            *lane = acc;
        }
    }
    // (Indexing, not `lanes.map`: that copied all the accumulators once per token.)
    std::array::from_fn(|t| lane_sum(&std::array::from_fn(|l| lanes[l][t])))
}
