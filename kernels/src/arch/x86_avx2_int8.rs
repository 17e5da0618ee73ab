//! The multi-token path for the 32-value types whose activations are Q8_0 (Q4_0, Q5_0, Q8_0):
//! a matmul of a large batch unpacks each weight row once into signed bytes and f32 scales
//! ([`Int8Row`]) and converts the activations the same way, so that the kernel that pairs a row
//! with eight tokens does no unpacking and no f16 conversion per block and token: per block and
//! token it is one sign, two multiply-adds, one conversion and one FMA.
//!
//! The sums, their order and the final reduction are exactly those of the types' own kernels
//! (`x86_avx2::sum_blocks_n`, ggml's `vec_dot` and tinyBLAS): per block, the eight i32 lanes of
//! the integer dot converted to float and fused into one eight-lane accumulator with the product
//! of the two scales; then `hsum_ps`. Unpacking is exact (small integers, f16 → f32), so the
//! result is bit-identical to eight calls of the one-token kernel.

use std::arch::x86_64::*;

use super::x86_avx2::{hsum_ps, load32, nibbles_32, quants_5bit};
use crate::quant::{BlockQ4_0, BlockQ5_0, BlockQ8_0};
use crate::traits::{cast, Int8Path, Int8Row, Int8RowMut, PackedX8Fn, TypeTraits};
use nanorun_formats::GgmlType;

/// Where [`dot_x8_of`] reads a weight row's blocks: unpacked ([`Int8Row`]) or, for Q8_0,
/// whose quants are bytes already, straight from the packed blocks.
trait WeightBlocks {
    /// Blocks in the row.
    fn len(&self) -> usize;
    /// Block `i`'s quants and scale (broadcast); `i < len()`.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    unsafe fn block(&self, i: usize) -> (__m256i, __m256);
}

impl WeightBlocks for Int8Row<'_> {
    fn len(&self) -> usize {
        self.d.len().min(self.qs.len())
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block(&self, i: usize) -> (__m256i, __m256) {
        (load32(&self.qs[i]), _mm256_broadcast_ss(&self.d[i]))
    }
}

impl WeightBlocks for &[BlockQ8_0] {
    fn len(&self) -> usize {
        <[BlockQ8_0]>::len(self)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn block(&self, i: usize) -> (__m256i, __m256) {
        let b = &self[i];
        let d = _mm_cvtph_ps(_mm_cvtsi32_si128(b.d.to_bits() as i32));
        (load32(&b.qs), _mm256_broadcastss_ps(d))
    }
}

/// Eight Q8_0 rows of `w`'s length (or longer): `out[t] = w · a[t]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_x8_of(w: impl WeightBlocks, a: &[Int8Row<'_>; 8]) -> [f32; 8] {
    let nb = w.len();
    for r in a {
        assert!(r.d.len() >= nb && r.qs.len() >= nb);
    }
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); 8];
    let qs: [*const [i8; 32]; 8] = std::array::from_fn(|t| a[t].qs.as_ptr());
    let ds: [*const f32; 8] = std::array::from_fn(|t| a[t].d.as_ptr());
    for i in 0..nb {
        // SAFETY: this function's target features.
        let (q, wd) = unsafe { w.block(i) };
        let ax = _mm256_sign_epi8(q, q);
        for t in 0..8 {
            // SAFETY: i < nb <= every token row's length (asserted above).
            let (y, yd) = unsafe {
                (
                    _mm256_loadu_si256(qs[t].add(i).cast()),
                    _mm256_broadcast_ss(&*ds[t].add(i)),
                )
            };
            let s = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(y, q)), ones);
            // The scale product is the one-token kernels' (weight scale × activation scale).
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(wd, yd), acc[t]);
        }
    }
    acc.map(|v| hsum_ps(v))
}

/// [`dot_x8_of`] an unpacked row.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_x8(w: Int8Row<'_>, a: &[Int8Row<'_>; 8]) -> [f32; 8] {
    dot_x8_of(w, a)
}

/// [`dot_x8_of`] a packed Q8_0 row, with no unpacking.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_x8_q8_0(w: &[BlockQ8_0], a: &[Int8Row<'_>; 8]) -> [f32; 8] {
    dot_x8_of(w, a)
}

/// Store 32 signed quants.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn store32(dst: &mut [i8; 32], v: __m256i) {
    // SAFETY: 32 writable bytes.
    unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) }
}

/// Checks the output lengths and writes `blocks` through `f` (quants, scale).
fn unpack_with<B>(blocks: &[B], out: Int8RowMut<'_>, mut f: impl FnMut(&B, &mut [i8; 32]) -> f32) {
    assert!(out.qs.len() >= blocks.len() && out.d.len() >= blocks.len());
    for ((b, qs), d) in blocks.iter().zip(out.qs.iter_mut()).zip(out.d.iter_mut()) {
        *d = f(b, qs);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn unpack_q4_0(w: &[BlockQ4_0], out: Int8RowMut<'_>) {
    let eight = _mm256_set1_epi8(8);
    unpack_with(w, out, |b, qs| {
        store32(qs, _mm256_sub_epi8(nibbles_32(&b.qs), eight));
        b.d.to_f32()
    });
}

#[target_feature(enable = "avx2,fma,f16c")]
fn unpack_q5_0(w: &[BlockQ5_0], out: Int8RowMut<'_>) {
    let sixteen = _mm256_set1_epi8(16);
    unpack_with(w, out, |b, qs| {
        store32(qs, _mm256_sub_epi8(quants_5bit(&b.qs, b.qh), sixteen));
        b.d.to_f32()
    });
}

fn unpack_q8_0(w: &[BlockQ8_0], out: Int8RowMut<'_>) {
    unpack_with(w, out, |b, qs| {
        *qs = b.qs;
        b.d.to_f32()
    });
}

/// Adds the path to Q4_0, Q5_0 and Q8_0 (Q8_0's unpacker also converts the activations).
pub(crate) fn install(table: &mut [TypeTraits]) {
    // SAFETY (every closure below): called only from `x86_avx2::install`, for a table that is
    // handed out after AVX2, FMA and F16C were found available.
    let dot_x8: fn(Int8Row<'_>, &[Int8Row<'_>; 8]) -> [f32; 8] = |w, a| unsafe { dot_x8(w, a) };
    for t in table.iter_mut() {
        let unpack: fn(&[u8], Int8RowMut<'_>) = match t.ty {
            GgmlType::Q4_0 => |w, out| unsafe { unpack_q4_0(cast(w), out) },
            GgmlType::Q5_0 => |w, out| unsafe { unpack_q5_0(cast(w), out) },
            GgmlType::Q8_0 => |w, out| unpack_q8_0(cast(w), out),
            _ => continue,
        };
        let packed_x8: Option<PackedX8Fn> = match t.ty {
            GgmlType::Q8_0 => Some(|w, a| unsafe { dot_x8_q8_0(cast(w), a) }),
            _ => None,
        };
        t.int8 = Some(Int8Path {
            unpack,
            dot_x8,
            packed_x8,
        });
    }
}
