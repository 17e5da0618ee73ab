//! The multi-token path for the 32-value types whose activations are Q8_0 (Q4_0, Q5_0, Q8_0):
//! a matmul of two tokens or more converts the activations once into signed bytes and f32
//! scales ([`Int8Row`]), so that the kernel that pairs a weight row with a group of eight, four
//! or two tokens does no f16 conversion per block and token: per block it decodes the weight
//! quants once for the group (or reads a row unpacked the same way beforehand, for large Q5_0
//! batches), and per block and token it is one sign, two multiply-adds, one conversion, the
//! scale product and one FMA.
//!
//! The sums, their order and the final reduction are exactly those of the types' own kernels
//! (`x86_avx2::sum_blocks_n`, ggml's `vec_dot` and tinyBLAS): per block, the eight i32 lanes of
//! the integer dot converted to float and fused into one eight-lane accumulator with the product
//! of the two scales; then `hsum_ps`. Unpacking is exact (small integers, f16 → f32), so the
//! result is bit-identical to eight calls of the one-token kernel.

use std::arch::x86_64::*;

use super::x86_avx2::{dot_u8_i8, hsum_ps, load32, nibbles_32, quants_5bit};
use crate::quant::{BlockQ4_0, BlockQ5_0, BlockQ8_0};
use crate::traits::{cast, Int8Path, Int8Row, Int8RowMut, TypeTraits};
use nanorun_formats::GgmlType;

/// Where [`dot_xn_of`] reads a weight row's blocks: unpacked ([`Int8Row`]) or straight from
/// the packed blocks (decoding each block in registers once for the group of tokens).
pub(crate) trait WeightBlocks {
    /// Blocks in the row.
    fn len(&self) -> usize;
    /// Block `i`'s quants as signed bytes and its scale (broadcast); `i < len()`.
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

/// An f16 scale as eight f32 lanes (one `vcvtph2ps` from a 32-bit move: see
/// `x86_avx2::f16x2` for why not a 16-bit insert).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn scale8(d: half::f16) -> __m256 {
    _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(d.to_bits() as i32)))
}

/// Each token row's quants and scales as raw pointers, after checking that every row holds at
/// least `nb` blocks (the batch kernels then read blocks `0..nb` of each without bounds checks).
#[inline]
pub(crate) fn token_rows<const N: usize>(
    a: &[Int8Row<'_>; N],
    nb: usize,
) -> ([*const [i8; 32]; N], [*const f32; N]) {
    for r in a {
        assert!(r.d.len() >= nb && r.qs.len() >= nb);
    }
    (
        std::array::from_fn(|t| a[t].qs.as_ptr()),
        std::array::from_fn(|t| a[t].d.as_ptr()),
    )
}

/// A packed row of one of the types, decoded per block as its one-token kernel does.
macro_rules! packed_blocks {
    ($block:ty, |$b:ident| $quants:expr) => {
        impl WeightBlocks for &[$block] {
            fn len(&self) -> usize {
                <[$block]>::len(self)
            }

            #[inline]
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn block(&self, i: usize) -> (__m256i, __m256) {
                let $b = &self[i];
                ($quants, scale8($b.d))
            }
        }
    };
}

packed_blocks!(BlockQ4_0, |b| _mm256_sub_epi8(
    nibbles_32(&b.qs),
    _mm256_set1_epi8(8)
));
packed_blocks!(BlockQ5_0, |b| _mm256_sub_epi8(
    quants_5bit(&b.qs, b.qh),
    _mm256_set1_epi8(16)
));
packed_blocks!(BlockQ8_0, |b| load32(&b.qs));

/// How a multi-token kernel forms the four-byte group sums (i32 lanes) of one weight vector
/// `q` (signed quants: a block, or one lane of eight interleaved rows) with each token's
/// activation bytes: [`GroupSums::prepare`] once per weight vector, [`GroupSums::with`] per
/// token. Every implementation gives exactly Σ q·a per group, so the results keep their bits.
pub(crate) trait GroupSums: Copy {
    /// What a weight vector becomes before its tokens.
    type Prepared: Copy;
    /// Whether the activation bytes come offset by 128 (a + 128 as unsigned bytes, see
    /// `Int8Path::offset_acts`) rather than as signed bytes.
    const OFFSET_ACTS: bool;

    /// Prepare `q` for its tokens.
    ///
    /// # Safety
    /// The CPU has the implementation's target features.
    unsafe fn prepare(self, q: __m256i) -> Self::Prepared;

    /// The group sums of the prepared weights with activation bytes `a`.
    ///
    /// # Safety
    /// The CPU has the implementation's target features.
    unsafe fn with(self, w: Self::Prepared, a: __m256i) -> __m256i;
}

/// ggml's sign trick: |q| once per weight vector, a with q's sign per token, the products
/// summed in groups of four by the closure (`vpmaddubsw` + `vpmaddwd` with AVX2, `vpdpbusd`
/// with VNNI: the same sums exactly). Activations must be in −127..=127.
#[derive(Clone, Copy)]
pub(crate) struct SignTrick<F>(pub F);

impl<F: Fn(__m256i, __m256i) -> __m256i + Copy> GroupSums for SignTrick<F> {
    type Prepared = (__m256i, __m256i);
    const OFFSET_ACTS: bool = false;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prepare(self, q: __m256i) -> (__m256i, __m256i) {
        (_mm256_sign_epi8(q, q), q)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn with(self, (ax, q): (__m256i, __m256i), a: __m256i) -> __m256i {
        (self.0)(ax, _mm256_sign_epi8(a, q))
    }
}

/// `N` Q8_0 rows of `w`'s length (or longer): `out[t] = w · a[t]`, each block's four-byte
/// group sums formed by `g`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn dot_xn_of<const N: usize>(
    w: impl WeightBlocks,
    a: &[Int8Row<'_>; N],
    g: impl GroupSums,
) -> [f32; N] {
    let nb = w.len();
    let (qs, ds) = token_rows(a, nb);
    let mut acc = [_mm256_setzero_ps(); N];
    for i in 0..nb {
        // SAFETY: this function's target features (`g`'s are the caller's).
        let (q, wd) = unsafe { w.block(i) };
        let q = unsafe { g.prepare(q) };
        for t in 0..N {
            // SAFETY: i < nb <= every token row's length (asserted above).
            let (y, yd) = unsafe {
                (
                    _mm256_loadu_si256(qs[t].add(i).cast()),
                    _mm256_broadcast_ss(&*ds[t].add(i)),
                )
            };
            let s = unsafe { g.with(q, y) };
            // The scale product is the one-token kernels' (weight scale × activation scale).
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(wd, yd), acc[t]);
        }
    }
    acc.map(|v| hsum_ps(v))
}

/// [`dot_xn_of`] of an unpacked row and `N` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_xn<const N: usize>(w: Int8Row<'_>, a: &[Int8Row<'_>; N]) -> [f32; N] {
    dot_xn_of(w, a, SignTrick(|ax, sy| dot_u8_i8(ax, sy)))
}

/// [`dot_xn_of`] of a packed row and `N` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
fn packed_xn<'w, B, const N: usize>(w: &'w [B], a: &[Int8Row<'_>; N]) -> [f32; N]
where
    &'w [B]: WeightBlocks,
{
    dot_xn_of(w, a, SignTrick(|ax, sy| dot_u8_i8(ax, sy)))
}

/// Unpacks a packed row into `out` (at least as many blocks as the row has).
#[target_feature(enable = "avx2,fma,f16c")]
fn unpack<'w, B>(w: &'w [B], out: Int8RowMut<'_>)
where
    &'w [B]: WeightBlocks,
{
    let nb = w.len();
    assert!(out.qs.len() >= nb && out.d.len() >= nb);
    for (i, (qs, d)) in out.qs.iter_mut().zip(out.d.iter_mut()).take(nb).enumerate() {
        // SAFETY: this function's target features; i < nb.
        let (q, scale) = unsafe { w.block(i) };
        // SAFETY: `qs` is 32 writable bytes.
        unsafe { _mm256_storeu_si256(qs.as_mut_ptr().cast(), q) };
        *d = _mm256_cvtss_f32(scale);
    }
}

/// Adds the path to Q4_0, Q5_0 and Q8_0 (Q8_0's unpacker also converts the activations).
pub(crate) fn install(table: &mut [TypeTraits]) {
    for t in table.iter_mut() {
        // Measured (`kernel_cycles`, 8–512 tokens): decoding a block in registers costs about
        // one pair's arithmetic, less than a separate unpacking pass over the row, except for
        // Q5_0's bit-spreading from 64 tokens on (a few percent); Q8_0 needs no decoding.
        t.int8 = match t.ty {
            GgmlType::Q4_0 => Some(path_of::<BlockQ4_0>(usize::MAX)),
            GgmlType::Q5_0 => Some(path_of::<BlockQ5_0>(63)),
            GgmlType::Q8_0 => Some(path_of::<BlockQ8_0>(usize::MAX)),
            _ => continue,
        };
    }
}

/// The path of the type whose blocks are `B`.
fn path_of<B: bytemuck::Pod>(packed_max_tokens: usize) -> Int8Path
where
    for<'w> &'w [B]: WeightBlocks,
{
    // SAFETY (every closure): handed out only through `install`, called from
    // `x86_avx2::install` for a table used after AVX2, FMA and F16C were found available.
    Int8Path {
        unpack: |w, out| unsafe { unpack::<B>(cast(w), out) },
        dot_x8: |w, a| unsafe { dot_xn(w, a) },
        dot_x4: |w, a| unsafe { dot_xn(w, a) },
        dot_x2: |w, a| unsafe { dot_xn(w, a) },
        packed_x8: |w, a| unsafe { packed_xn::<B, 8>(cast(w), a) },
        packed_x4: |w, a| unsafe { packed_xn::<B, 4>(cast(w), a) },
        packed_x2: |w, a| unsafe { packed_xn::<B, 2>(cast(w), a) },
        packed_max_tokens,
        offset_acts: false,
    }
}
