//! x86-64 AVX-512 kernels of interleaved Q8_0 ([`BlockQ8_0x8`]) in the scalar reference's
//! order: each block's sum Σ q·a of a row is formed exactly in one i32 lane, then the row's
//! float accumulator takes `sum + isum·(d_w·d_a)` as `quant::q8_0::vec_dot` does, so the
//! results are the reference's bits (not those of ggml's eight-lane x86 order, which the
//! row-major kernels keep).
//!
//! The interleaved block holds four bytes of each of the eight rows per 32-byte lane, so one
//! `vpdpbusd` of a lane with four activation bytes broadcast adds them to all eight rows' sums,
//! and a block costs eight of those per token plus one conversion, two multiplies and one add
//! for eight rows. ggml's order needs a conversion and an FMA per row and block on top, which
//! bound the row-major eight-token kernel at about 2.2 cycles per row, block and token on a
//! Zen 4.
//!
//! One token offsets its Q8_0 activations by 128 itself (unsigned), so each sum starts from
//! the row's −128·Σq. Batches take them signed, with each block's −128·Σa formed once per
//! matmul, and offset the weights instead (see [`q8_0_x8_xn`]).
//!
//! Same safety contract as `x86_avx512`: reachable only through the AVX-512 table.

use std::arch::x86_64::*;

use super::x86_avx2::{i32_at, to_array};
use crate::quant::q8_0_x8::BlockQ8_0x8;
use crate::quant::{BlockQ8_0, INTERLEAVED_ROWS as ROWS};
use crate::traits::TokenBlocks;

/// How many blocks ahead a batch prefetches. A batch spends long enough on each block that
/// the hardware prefetchers of a Zen 4 fell behind: eight tokens of the 262144 × 640 matrix
/// from memory on two threads took 9–12 ms with four blocks (1 KiB) ahead, 14–16 without
/// (`kernel_cycles q8_0 avx512 3 2 8 262144 640`); one token (no prefetch) gained nothing.
/// With the grouped activations (a faster loop), eight blocks (2 KiB) ahead beat four on one
/// thread (15.0–15.5 against 15.9–18.7 ms, `kernel_cycles q8_0 avx512 20 1 8 262144 640
/// output`); sixteen gained nothing more.
pub(super) const PREFETCH_AHEAD: usize = 8;

/// Asks for block `i` of `w` (in a batch, a few blocks on; past the end it is the next
/// group's, whose bytes follow): a hint, so `i` may point past `w`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn prefetch_ahead<T>(w: &[T], i: usize) {
    let ahead = w.as_ptr().wrapping_add(i).cast::<i8>();
    for off in (0..std::mem::size_of::<T>()).step_by(64) {
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(off));
    }
}

/// Σ of each row over a block's eight lanes of unsigned quants (lane l: four of every row),
/// from `start`, with one token's 32 signed activation bytes `y` (dword l broadcast for lane
/// l). Integer sums: the two chains (even and odd lanes) change nothing.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn lane_sums(lanes: &[__m256i; 8], y: &[i8; 32], start: __m256i) -> __m256i {
    let (mut even, mut odd) = (start, _mm256_setzero_si256());
    for l in (0..8).step_by(2) {
        let (ye, yo) = (i32_at(y, 4 * l), i32_at(y, 4 * l + 4));
        even = _mm256_dpbusd_epi32(even, lanes[l], _mm256_set1_epi32(ye));
        odd = _mm256_dpbusd_epi32(odd, lanes[l + 1], _mm256_set1_epi32(yo));
    }
    _mm256_add_epi32(even, odd)
}

/// One block of eight rows in registers.
struct Block {
    /// Lane l: four quants of every row (see [`BlockQ8_0x8`]).
    lanes: [__m256i; 8],
    /// −128·Σq of each row, where a sum with activations offset by 128 starts.
    start: __m256i,
    /// The rows' scales.
    d: __m256,
}

/// The lanes of `x` (signed quants) and its rows' scales.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn lanes_and_scales(x: &BlockQ8_0x8) -> ([__m256i; 8], __m256) {
    // SAFETY: `qs` is 256 bytes, lane l the 32 at 32l; `d` is eight f16s (16 bytes).
    unsafe {
        (
            std::array::from_fn(|l| _mm256_loadu_si256(x.qs.as_ptr().add(32 * l).cast())),
            _mm256_cvtph_ps(_mm_loadu_si128(x.d.as_ptr().cast())),
        )
    }
}

/// Loads `x` and forms its rows' offsets.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn load(x: &BlockQ8_0x8) -> Block {
    let (lanes, d) = lanes_and_scales(x);
    let unsigned_128 = _mm256_set1_epi8(i8::MIN);
    let (mut even, mut odd) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for l in (0..8).step_by(2) {
        even = _mm256_dpbusd_epi32(even, unsigned_128, lanes[l]);
        odd = _mm256_dpbusd_epi32(odd, unsigned_128, lanes[l + 1]);
    }
    let start = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_add_epi32(even, odd));
    Block { lanes, start, d }
}

/// Σ q·a of each row of `b`, exactly, with one token's 32 activation bytes (offset by 128) at
/// `y`. Integer sums, so the two chains (even and odd lanes) change nothing.
///
/// # Safety
/// `y` points at 32 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn sums(b: &Block, y: *const [i8; 32]) -> __m256i {
    let y = y.cast::<i32>();
    let (mut even, mut odd) = (b.start, _mm256_setzero_si256());
    for l in (0..8).step_by(2) {
        // SAFETY: dwords l and l + 1 of the 32 bytes at `y` (the caller's promise).
        let (ye, yo) = unsafe { (y.add(l).read_unaligned(), y.add(l + 1).read_unaligned()) };
        even = _mm256_dpbusd_epi32(even, _mm256_set1_epi32(ye), b.lanes[l]);
        odd = _mm256_dpbusd_epi32(odd, _mm256_set1_epi32(yo), b.lanes[l + 1]);
    }
    _mm256_add_epi32(even, odd)
}

/// `acc + isum·(d·yd)` for each row, the reference's step per block (the scales' product
/// rounded first, then the product, then the sum).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn accumulate(acc: __m256, isum: __m256i, d: __m256, yd: f32) -> __m256 {
    let scale = _mm256_mul_ps(d, _mm256_set1_ps(yd));
    _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), scale))
}

/// The eight rows of `w` · one Q8_0 row (signed quants, offset here block by block).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn q8_0_x8_x1(w: &[BlockQ8_0x8], a: &[BlockQ8_0]) -> [f32; ROWS] {
    let mut acc = _mm256_setzero_ps();
    let mut offset = [0i8; 32];
    for (x, y) in w.iter().zip(a) {
        let b = load(x);
        // SAFETY: `qs` and `offset` are 32 bytes each.
        unsafe {
            let q = _mm256_loadu_si256(y.qs.as_ptr().cast());
            let q = _mm256_xor_si256(q, _mm256_set1_epi8(i8::MIN));
            _mm256_storeu_si256(offset.as_mut_ptr().cast(), q);
        }
        // SAFETY: `offset` is 32 bytes.
        let s = unsafe { sums(&b, &offset) };
        acc = accumulate(acc, s, b.d, y.d.to_f32());
    }
    to_array(acc)
}

/// One block of one row group for the batch kernels: its eight lanes as unsigned quants (lane
/// l: four values of every row) and its rows' scales.
pub(super) type Lanes = ([__m256i; 8], __m256);

/// The lanes of `x` offset by 128 (the signed quants as unsigned ones) and its rows' scales:
/// the batch kernels' form of a Q8_0 block, with each sum started from the token's −128·Σa.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn unsigned_lanes_and_scales(x: &BlockQ8_0x8) -> Lanes {
    let (signed, d) = lanes_and_scales(x);
    let unsigned_128 = _mm256_set1_epi8(i8::MIN);
    (signed.map(|q| _mm256_xor_si256(q, unsigned_128)), d)
}

/// The eight rows of `w` · `N` tokens' signed activations grouped by block ([`TokenBlocks`])
/// in the scalar reference's order: `decode` gives a block's unsigned lanes and scales (once
/// for all the tokens), and token t's sums start from its bias (−128·Σa) shifted right by
/// `bias_shift` (the weights' offset over 128). Each activation dword is `vpdpbusd`'s
/// broadcast operand, read by the instruction itself (one µop where a separate broadcast of
/// offset activations made two); all the tokens' blocks lie at fixed offsets from one
/// pointer, which leaves the registers to the sums.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn x8_xn<B, const N: usize>(
    w: &[B],
    a: &[TokenBlocks<N>],
    decode: impl Fn(&B) -> Lanes,
    bias_shift: u32,
) -> [[f32; ROWS]; N] {
    assert!(a.len() >= w.len());
    let mut acc = [_mm256_setzero_ps(); N];
    for (i, (x, y)) in w.iter().zip(a).enumerate() {
        prefetch_ahead(w, i + PREFETCH_AHEAD);
        let (lanes, d) = decode(x);
        for (t, acc) in acc.iter_mut().enumerate() {
            let start = _mm256_set1_epi32(y.bias[t] >> bias_shift);
            *acc = accumulate(*acc, lane_sums(&lanes, &y.qs[t], start), d, y.d[t]);
        }
    }
    std::array::from_fn(|t| to_array(acc[t]))
}

/// The eight rows of `w` · `N` tokens' signed Q8_0 activations grouped by block, bit-identical
/// to [`q8_0_x8_x1`] on each token: the weight quants go offset by 128 into `vpdpbusd`'s
/// unsigned operand ([`unsigned_lanes_and_scales`]), each sum starts from the block's −128·Σa,
/// formed once per matmul.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn q8_0_x8_xn<const N: usize>(
    w: &[BlockQ8_0x8],
    a: &[TokenBlocks<N>],
) -> [[f32; ROWS]; N] {
    x8_xn(w, a, |x| unsigned_lanes_and_scales(x), 0)
}
