//! One table entry per type, as ggml's `type_traits_cpu`: block size and bytes, the activation
//! type its dot product pairs with, and the row kernels (dequantize, quantize, vec_dot).
//!
//! [`scalar_table`] holds the reference kernels; `crate::kernels` copies it per ISA and swaps in
//! the SIMD versions. Adding a type means one module in `quant/` and one entry here.

use bytemuck::Pod;
use nanorun_formats::GgmlType;

use crate::error::{KernelError, Result};
use crate::quant;

/// Dot product of one weight row with one activation row (of the weight type's
/// `vec_dot_type`), both as raw bytes of whole blocks. The caller guarantees equal value counts
/// and alignment (the checked wrappers on [`TypeTraits`] do).
pub type VecDotFn = fn(w: &[u8], a: &[u8]) -> f32;
/// Dot products of one weight row with four activation rows (same contract as [`VecDotFn`]
/// for each); bit-identical to four calls of the type's [`VecDotFn`] (in a [`WideBatch`]:
/// of the wide one-token kernel, except x86 Q4_K's, which is llama.cpp's 4-token GEMM).
pub type VecDotX4Fn = fn(w: &[u8], a: [&[u8]; 4]) -> [f32; 4];

/// Kernels a matmul uses instead of the type's own once a batch has at least `min_tokens`
/// tokens: the same sums with another float order, the one llama.cpp's CPU backend switches
/// to for such batches (x86: its tiled K-quant GEMM from 8 tokens, its repacked Q4_K GEMM on
/// each group of 4), so that prefill logits stay on its path. Not used when the caller asks
/// for batch-invariant results (`MatmulScratch::set_batch_invariant`).
#[derive(Clone, Copy, Debug)]
pub struct WideBatch {
    /// Smallest batch that uses these kernels.
    pub min_tokens: usize,
    pub(crate) vec_dot: VecDotFn,
    pub(crate) vec_dot_x4: Option<VecDotX4Fn>,
    /// Where the ISA has them: kernels for sixteen row-major rows at a time, unpacked once
    /// per tile (same bits as `vec_dot`).
    pub(crate) tile16: Option<Tile16Path>,
}

/// `N` tokens (their activation rows) over a [`Tile16Path`]'s unpacked tile: per token the
/// sixteen rows' results.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86 kernels have them yet
pub(crate) type Tile16Fn<const N: usize> = fn(tile: &[u8], a: [&[u8]; N]) -> [[f32; 16]; N];

/// A type's large-batch kernels over sixteen row-major rows at a time: a matmul unpacks a
/// tile of sixteen rows once into a per-thread buffer, then runs the batch over it eight tokens
/// at a time (four for the rest). Each result bit-identical to the `vec_dot` of the order the
/// path belongs to on its row: the [`WideBatch`]'s (`WideBatch::tile16`) or the type's own
/// (`TypeTraits::tile16`).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86 kernels have them yet
pub(crate) struct Tile16Path {
    /// Smallest batch that takes the tiles (unpacking a tile costs about what a few tokens'
    /// passes over it do).
    pub min_tokens: usize,
    /// Bytes of one super-block of the sixteen rows once unpacked (a multiple of 64).
    pub block_bytes: usize,
    /// Unpack sixteen rows of `nb` blocks (`rows`: the rows one after another) into `out`
    /// (`nb · block_bytes` bytes, 64-byte aligned).
    pub unpack: fn(rows: &[u8], nb: usize, out: &mut [u8]),
    /// Eight tokens (their activation rows) over an unpacked tile: per token the sixteen
    /// rows' results.
    pub x8: Tile16Fn<8>,
    /// The same for four tokens.
    pub x4: Tile16Fn<4>,
}

/// One row of 32-value blocks unpacked for [`Int8Path`]: each block's quants as signed bytes
/// (activations for a path with `offset_acts`: a + 128 as unsigned bytes) and its scale as f32.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86 kernels use it yet
pub(crate) struct Int8Row<'a> {
    /// Quants, one array per block.
    pub qs: &'a [[i8; 32]],
    /// Scales, one per block (the row has `d.len()` blocks).
    pub d: &'a [f32],
}

/// Where an [`Int8Path`] unpacker writes a row (at least as many blocks as the row has).
#[derive(Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86 kernels use it yet
pub(crate) struct Int8RowMut<'a> {
    /// Quants, one array per block.
    pub qs: &'a mut [[i8; 32]],
    /// Scales, one per block.
    pub d: &'a mut [f32],
}

/// [`Int8Path`]'s packed kernels: `out[t] = w · a[t]` for a packed row `w` (bytes) and `N`
/// tokens.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86 kernels use it yet
pub(crate) type PackedXnFn<const N: usize> = fn(w: &[u8], a: &[Int8Row<'_>; N]) -> [f32; N];

/// The multi-token path (batches of two or more) of a 32-value type whose activations are
/// Q8_0: the activations are unpacked once per matmul into [`Int8Row`]s, then paired with each
/// weight row eight, four or two tokens at a time, the row read packed (each block decoded once
/// per group) or, for large batches, unpacked once per tile; bit-identical to the type's
/// [`VecDotFn`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Int8Path {
    /// Unpack one row of blocks (bytes); for Q8_0 this also converts activations.
    pub unpack: fn(w: &[u8], out: Int8RowMut<'_>),
    /// `out[t] = w · a[t]` over `w`'s blocks.
    pub dot_x8: fn(w: Int8Row<'_>, a: &[Int8Row<'_>; 8]) -> [f32; 8],
    /// `dot_x8` for four tokens.
    pub dot_x4: fn(w: Int8Row<'_>, a: &[Int8Row<'_>; 4]) -> [f32; 4],
    /// `dot_x8` for two tokens.
    pub dot_x2: fn(w: Int8Row<'_>, a: &[Int8Row<'_>; 2]) -> [f32; 2],
    /// `dot_x8` of a packed row (bytes), decoding each block in registers once for the eight
    /// tokens instead of in an unpacking pass: the weight reads overlap the arithmetic. Same
    /// bits.
    pub packed_x8: PackedXnFn<8>,
    /// The largest batch for which `packed_x8` beats unpacking (decoding a block costs about
    /// one pair's arithmetic per eight tokens; unpacking costs a pass over the row).
    pub packed_max_tokens: usize,
    /// `packed_x8` for four tokens and for two: what a batch leaves over after its groups of
    /// eight (one token left over takes the type's `vec_dot`, measured faster).
    pub packed_x4: PackedXnFn<4>,
    /// See `packed_x4`.
    pub packed_x2: PackedXnFn<2>,
    /// Whether this path's kernels (and the type's interleaved int8 kernels) take the
    /// activations offset by 128, as unsigned bytes: `vpdpbusd` then multiplies them by the
    /// signed weight quants directly, and a weight vector's −128·Σq, formed once for all the
    /// tokens, starts each sum, where the sign trick spends one operation per token.
    pub offset_acts: bool,
}

impl Int8Path {
    /// Turns activation quants, as the activation type's `unpack` wrote them, into what this
    /// path's kernels take: offset by 128 where `offset_acts` says so.
    pub fn adapt_acts(&self, qs: &mut [[i8; 32]]) {
        if self.offset_acts {
            for q in qs.iter_mut().flatten() {
                *q ^= i8::MIN;
            }
        }
    }
}

/// Eight interleaved rows (one group's bytes) times four activation rows: eight results per
/// token.
pub(crate) type Interleaved8X4Fn = fn(w: &[u8], a: [&[u8]; 4]) -> [[f32; 8]; 4];

/// Two consecutive groups (their bytes, sixteen rows) times four activation rows: per token
/// the sixteen results of both groups' [`Interleaved8X4Fn`], bit for bit.
pub(crate) type Interleaved16X4Fn = fn(w: &[u8], a: [&[u8]; 4]) -> [[f32; 16]; 4];

/// Block i of `N` tokens' int8 activations side by side (signed, as the activation type's
/// unpacker writes them), so that a kernel reads every token's block from one pointer at fixed
/// offsets, and each block's −128·Σq: what the block's Σ (w + 128)·q, with the weight quants
/// taken offset by 128 and unsigned, must add to be Σ w·q.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenBlocks<const N: usize> {
    /// Token k's quants.
    pub qs: [[i8; 32]; N],
    /// Token k's scale.
    pub d: [f32; N],
    /// Token k's −128·Σq.
    pub bias: [i32; N],
}
// SAFETY: arrays of i8, f32 and i32 only, in that order with sizes that are multiples of 4:
// no padding, and any bits are valid.
unsafe impl<const N: usize> bytemuck::Zeroable for TokenBlocks<N> {}
// SAFETY: as above.
unsafe impl<const N: usize> bytemuck::Pod for TokenBlocks<N> {}

/// Eight interleaved rows (one group's bytes) times `N` tokens' activations in
/// [`TokenBlocks`] (block i of all of them at index i).
pub(crate) type Interleaved8TokensFn<const N: usize> =
    fn(w: &[u8], a: &[TokenBlocks<N>]) -> [[f32; 8]; N];

/// Two consecutive groups (their bytes, sixteen rows) times `N` tokens' activations in
/// [`TokenBlocks`]: per token the sixteen results of both groups' [`Interleaved8TokensFn`],
/// bit for bit.
pub(crate) type Interleaved16TokensFn<const N: usize> =
    fn(w: &[u8], a: &[TokenBlocks<N>]) -> [[f32; 16]; N];

/// [`Interleaved8Batch::Int8Tokens`]' kernels over two groups at once.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86 kernels use it yet
pub(crate) struct TokenPairs {
    /// Eight tokens.
    pub x8: Interleaved16TokensFn<8>,
    /// Four tokens.
    pub x4: Interleaved16TokensFn<4>,
    /// Two tokens.
    pub x2: Interleaved16TokensFn<2>,
}

/// Eight interleaved rows (one group's bytes) times `N` unpacked activation rows.
pub(crate) type Interleaved8Int8Fn<const N: usize> =
    fn(w: &[u8], a: &[Int8Row<'_>; N]) -> [[f32; 8]; N];

/// The kernels of a type whose matrices these kernels run interleaved, eight rows at a time
/// (`Layout::Interleaved8`; x86: Q4_K, Q5_0). `w` is one row group's bytes (its blocks of
/// eight rows), `a` activation rows; the results, eight per token, are bit-identical to the
/// type's one-token kernel on each row, or to the scalar reference's (`scalar_bits`), for
/// every batch size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Interleaved8Path {
    /// One token.
    pub x1: fn(w: &[u8], a: &[u8]) -> [f32; 8],
    /// How batches run.
    pub batch: Interleaved8Batch,
    /// Interleave one group of eight row-major rows (`src`, `nb` blocks each) into `out`.
    pub interleave: fn(src: &[u8], nb: usize, out: &mut [u8]),
    /// Whether the layout is the type's preferred one for every matrix; if not, only output
    /// projections take it ([`crate::Kernels::output_layout`]).
    pub for_batches: bool,
    /// Whether the results are the scalar reference kernel's bits (each block's integer sum
    /// exact, then the reference's float steps) instead of the type's SIMD one-token kernel's;
    /// a matrix's rows outside whole groups stay row-major and keep the latter.
    #[cfg_attr(not(test), allow(dead_code))] // what the bit-identity tests compare against
    pub scalar_bits: bool,
    /// Kernels in the scalar reference's order that batch-invariant matmuls take instead of
    /// `x1` and `batch` (`MatmulScratch::set_batch_invariant`), where those keep another
    /// order at a cost (x86 AVX-512 Q5_0: ggml's eight-lane order, about twice the work).
    pub invariant: Option<ReferenceKernels>,
}

/// An [`Interleaved8Path`]'s kernels in the scalar reference's order (each block's integer
/// sum exact, then the reference's float steps), the same bits for every batch size.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86 kernels have them yet
pub(crate) struct ReferenceKernels {
    /// One token.
    pub x1: fn(w: &[u8], a: &[u8]) -> [f32; 8],
    /// Batches of two or more.
    pub batch: Interleaved8Batch,
}

/// How an [`Interleaved8Path`] runs batches of two or more tokens.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86 kernels use it yet
pub(crate) enum Interleaved8Batch {
    /// Four tokens at a time on the interleaved group (same bits as the type's four-token
    /// kernel), the rest one by one.
    X4 {
        /// Four tokens.
        x4: Interleaved8X4Fn,
        /// Four tokens in the float order of the type's [`WideBatch`] four-token kernel (whose
        /// one-token kernel must be the plain one: leftover tokens take `x1`).
        wide_x4: Interleaved8X4Fn,
        /// `x4` and `wide_x4` over two groups at once, where wider vectors make that cheaper
        /// (AVX-512).
        pairs: Option<(Interleaved16X4Fn, Interleaved16X4Fn)>,
    },
    /// Eight, four or two tokens at a time on the group with the activations of the type's
    /// [`Int8Path`] (one token left over takes `x1`).
    Int8 {
        /// Eight tokens.
        x8: Interleaved8Int8Fn<8>,
        /// Four tokens.
        x4: Interleaved8Int8Fn<4>,
        /// Two tokens.
        x2: Interleaved8Int8Fn<2>,
    },
    /// Eight, four or two tokens at a time on the group with the activations of the type's
    /// [`Int8Path`] signed and grouped by token ([`TokenBlocks`]; one token left over takes
    /// `x1`). A matrix's rows outside whole groups then take the type's `vec_dot`, not the
    /// int8 path's row-major kernels.
    Int8Tokens {
        /// Eight tokens.
        x8: Interleaved8TokensFn<8>,
        /// Four tokens.
        x4: Interleaved8TokensFn<4>,
        /// Two tokens.
        x2: Interleaved8TokensFn<2>,
        /// The same over two groups at once, where wider vectors make that cheaper (AVX-512).
        pairs: Option<TokenPairs>,
    },
}

impl Interleaved8Batch {
    /// Whether the batches take two groups at a time.
    pub(crate) fn in_pairs(&self) -> bool {
        match self {
            Interleaved8Batch::X4 { pairs, .. } => pairs.is_some(),
            Interleaved8Batch::Int8Tokens { pairs, .. } => pairs.is_some(),
            Interleaved8Batch::Int8 { .. } => false,
        }
    }
}

/// Dequantize one row of blocks (bytes) into `out` (values).
pub type DequantizeFn = fn(w: &[u8], out: &mut [f32]);
/// Quantize `x` (values) into one row of blocks (bytes).
pub type QuantizeFn = fn(x: &[f32], out: &mut [u8]);

/// What the kernels need to know about one tensor type, and its row kernels.
#[derive(Clone, Copy, Debug)]
pub struct TypeTraits {
    /// The type.
    pub ty: GgmlType,
    /// Values per block (1 for float rows).
    pub block_size: usize,
    /// Bytes per block.
    pub block_bytes: usize,
    /// Required alignment of a row's bytes (the block struct's alignment).
    pub align: usize,
    /// The type activations are quantized to before a dot product with this type.
    pub vec_dot_type: GgmlType,
    pub(crate) dequantize: DequantizeFn,
    pub(crate) quantize: QuantizeFn,
    pub(crate) vec_dot: VecDotFn,
    pub(crate) vec_dot_x4: Option<VecDotX4Fn>,
    pub(crate) wide: Option<WideBatch>,
    /// Sixteen-row tiles in the type's own (one-token) order, for large batches that do not
    /// take the [`WideBatch`] kernels (batch-invariant ones).
    pub(crate) tile16: Option<Tile16Path>,
    pub(crate) int8: Option<Int8Path>,
    pub(crate) interleaved8: Option<Interleaved8Path>,
    /// Whether matmul software-prefetches this type's weights ahead of the kernels. Set per
    /// ISA table from measurements: it helps on some CPUs and costs on others (see
    /// [`crate::matmul::PREFETCH_AHEAD`]).
    pub(crate) soft_prefetch: bool,
}

impl WideBatch {
    /// The one-token kernel.
    pub fn vec_dot_fn(&self) -> VecDotFn {
        self.vec_dot
    }

    /// The four-token kernel, if any.
    pub fn vec_dot_x4_fn(&self) -> Option<VecDotX4Fn> {
        self.vec_dot_x4
    }
}

impl TypeTraits {
    /// Bytes of a row of `n` values, or an error when `n` is not a multiple of the block size.
    pub fn row_bytes(&self, n: usize) -> Result<usize> {
        if !n.is_multiple_of(self.block_size) {
            return Err(KernelError::RowLength {
                ty: self.ty,
                n,
                block: self.block_size,
            });
        }
        Ok(n / self.block_size * self.block_bytes)
    }

    /// Check that `bytes` is a well-aligned row of exactly `n` values of this type.
    pub(crate) fn check_row(&self, what: &'static str, bytes: &[u8], n: usize) -> Result<()> {
        let expected = self.row_bytes(n)?;
        if bytes.len() != expected {
            return Err(KernelError::LengthMismatch {
                what,
                expected,
                got: bytes.len(),
            });
        }
        let addr = bytes.as_ptr() as usize;
        if !addr.is_multiple_of(self.align) {
            return Err(KernelError::Misaligned {
                what,
                ty: self.ty,
                align: self.align,
                addr,
            });
        }
        Ok(())
    }

    /// Dequantize a row of `out.len()` values.
    pub fn dequantize_row(&self, w: &[u8], out: &mut [f32]) -> Result<()> {
        self.check_row("dequantize input", w, out.len())?;
        (self.dequantize)(w, out);
        Ok(())
    }

    /// Quantize `x` into a row of this type (the reference quantizer for weight types; the
    /// activation quantizer, SIMD where available, for Q8_0 / Q8_1 / Q8_K). To write weight
    /// files use [`TypeTraits::quantize_weights_row`].
    pub fn quantize_row(&self, x: &[f32], out: &mut [u8]) -> Result<()> {
        self.check_row("quantize output", out, x.len())?;
        (self.quantize)(x, out);
        Ok(())
    }

    /// Quantize `x` into a row of weights of this type with ggml's reference quantizer, byte
    /// for byte what `llama-quantize` writes. The same as [`TypeTraits::quantize_row`] except
    /// for Q8_0 and Q8_1, whose activation quantizer rounds ties as llama.cpp's x86 backend
    /// does (half to even, scale 127/amax) while its reference rounds them away from zero.
    pub fn quantize_weights_row(&self, x: &[f32], out: &mut [u8]) -> Result<()> {
        self.check_row("quantize output", out, x.len())?;
        (self.quantize_weights_fn())(x, out);
        Ok(())
    }

    /// The raw weight quantizer behind [`TypeTraits::quantize_weights_row`] (see
    /// [`TypeTraits::vec_dot_fn`] for the contract).
    pub fn quantize_weights_fn(&self) -> QuantizeFn {
        match self.ty {
            GgmlType::Q8_0 => |x, out| quant(crate::quant::q8_0::quantize_row_ref, x, out),
            GgmlType::Q8_1 => |x, out| quant(crate::quant::q8_1::quantize_row_ref, x, out),
            _ => self.quantize,
        }
    }

    /// Dot product of a weight row of this type with an activation row of `act`'s type (which
    /// must be this type's `vec_dot_type`), both `n` values long.
    pub fn vec_dot(&self, act: &TypeTraits, n: usize, w: &[u8], a: &[u8]) -> Result<f32> {
        if act.ty != self.vec_dot_type {
            return Err(KernelError::UnsupportedType(act.ty));
        }
        self.check_row("weight row", w, n)?;
        act.check_row("activation row", a, n)?;
        Ok((self.vec_dot)(w, a))
    }

    /// The raw dot-product kernel, for callers that validated sizes and alignment once for many
    /// rows. It panics (never reads out of bounds) on misaligned or ragged input.
    pub fn vec_dot_fn(&self) -> VecDotFn {
        self.vec_dot
    }

    /// The raw four-token dot-product kernel, where this ISA has one (see
    /// [`TypeTraits::vec_dot_fn`]); `None` means "call `vec_dot_fn` four times".
    pub fn vec_dot_x4_fn(&self) -> Option<VecDotX4Fn> {
        self.vec_dot_x4
    }

    /// The kernels for batches of at least `min_tokens` tokens, where this ISA has them.
    pub fn wide(&self) -> Option<&WideBatch> {
        self.wide.as_ref()
    }

    /// The raw dequantize kernel (see [`TypeTraits::vec_dot_fn`]).
    pub fn dequantize_fn(&self) -> DequantizeFn {
        self.dequantize
    }

    /// The raw quantize kernel (see [`TypeTraits::vec_dot_fn`]).
    pub fn quantize_fn(&self) -> QuantizeFn {
        self.quantize
    }
}

#[inline]
pub(crate) fn cast<T: Pod>(b: &[u8]) -> &[T] {
    bytemuck::cast_slice(b)
}

#[inline]
pub(crate) fn cast_mut<T: Pod>(b: &mut [u8]) -> &mut [T] {
    bytemuck::cast_slice_mut(b)
}

#[inline]
fn dot<W: Pod, A: Pod>(f: fn(&[W], &[A]) -> f32, w: &[u8], a: &[u8]) -> f32 {
    f(cast(w), cast(a))
}

#[inline]
fn deq<W: Pod>(f: fn(&[W], &mut [f32]), w: &[u8], out: &mut [f32]) {
    f(cast(w), out)
}

#[inline]
fn quant<W: Pod>(f: fn(&[f32], &mut [W]), x: &[f32], out: &mut [u8]) {
    f(x, cast_mut(out))
}

const fn entry(
    ty: GgmlType,
    block_size: usize,
    block_bytes: usize,
    align: usize,
    vec_dot_type: GgmlType,
    kernels: (DequantizeFn, QuantizeFn, VecDotFn),
) -> TypeTraits {
    TypeTraits {
        ty,
        block_size,
        block_bytes,
        align,
        vec_dot_type,
        dequantize: kernels.0,
        quantize: kernels.1,
        vec_dot: kernels.2,
        vec_dot_x4: None,
        int8: None,
        interleaved8: None,
        wide: None,
        tile16: None,
        soft_prefetch: false,
    }
}

/// Every type the CPU kernels support, in table order.
pub const SUPPORTED: [GgmlType; 15] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
];

/// Index of `ty` in [`SUPPORTED`] (and in every table), or `None`.
pub fn slot(ty: GgmlType) -> Option<usize> {
    SUPPORTED.iter().position(|&t| t == ty)
}

/// The scalar reference table, in [`SUPPORTED`] order.
pub fn scalar_table() -> [TypeTraits; 15] {
    use quant::*;
    use GgmlType as T;
    [
        entry(
            T::F32,
            1,
            4,
            4,
            T::F32,
            (
                |w, o| deq(float::dequantize_f32, w, o),
                |x, o| quant(float::quantize_f32, x, o),
                |w, a| dot(float::vec_dot_f32, w, a),
            ),
        ),
        entry(
            T::F16,
            1,
            2,
            2,
            T::F32,
            (
                |w, o| deq(float::dequantize_f16, w, o),
                |x, o| quant(float::quantize_f16, x, o),
                |w, a| dot(float::vec_dot_f16, w, a),
            ),
        ),
        entry(
            T::BF16,
            1,
            2,
            2,
            T::F32,
            (
                |w, o| deq(float::dequantize_bf16, w, o),
                |x, o| quant(float::quantize_bf16, x, o),
                |w, a| dot(float::vec_dot_bf16, w, a),
            ),
        ),
        entry(
            T::Q4_0,
            32,
            18,
            2,
            T::Q8_0,
            (
                |w, o| deq(q4_0::dequantize_row, w, o),
                |x, o| quant(q4_0::quantize_row_ref, x, o),
                |w, a| dot(q4_0::vec_dot, w, a),
            ),
        ),
        entry(
            T::Q4_1,
            32,
            20,
            2,
            T::Q8_1,
            (
                |w, o| deq(q4_1::dequantize_row, w, o),
                |x, o| quant(q4_1::quantize_row_ref, x, o),
                |w, a| dot(q4_1::vec_dot, w, a),
            ),
        ),
        entry(
            T::Q5_0,
            32,
            22,
            2,
            T::Q8_0,
            (
                |w, o| deq(q5_0::dequantize_row, w, o),
                |x, o| quant(q5_0::quantize_row_ref, x, o),
                |w, a| dot(q5_0::vec_dot, w, a),
            ),
        ),
        entry(
            T::Q5_1,
            32,
            24,
            2,
            T::Q8_1,
            (
                |w, o| deq(q5_1::dequantize_row, w, o),
                |x, o| quant(q5_1::quantize_row_ref, x, o),
                |w, a| dot(q5_1::vec_dot, w, a),
            ),
        ),
        entry(
            T::Q8_0,
            32,
            34,
            2,
            T::Q8_0,
            (
                |w, o| deq(q8_0::dequantize_row, w, o),
                |x, o| quant(q8_0::quantize_row_act, x, o),
                |w, a| dot(q8_0::vec_dot, w, a),
            ),
        ),
        entry(
            T::Q8_1,
            32,
            36,
            2,
            T::Q8_1,
            (
                |w, o| deq(q8_1::dequantize_row, w, o),
                |x, o| quant(q8_1::quantize_row_act, x, o),
                |w, a| dot(q8_1::vec_dot, w, a),
            ),
        ),
        entry(
            T::Q2_K,
            256,
            84,
            2,
            T::Q8_K,
            (
                |w, o| deq(q2_k::dequantize_row, w, o),
                |x, o| quant(q2_k::quantize_row_ref, x, o),
                |w, a| dot(q2_k::vec_dot, w, a),
            ),
        ),
        entry(
            T::Q3_K,
            256,
            110,
            2,
            T::Q8_K,
            (
                |w, o| deq(q3_k::dequantize_row, w, o),
                |x, o| quant(q3_k::quantize_row_ref, x, o),
                |w, a| dot(q3_k::vec_dot, w, a),
            ),
        ),
        entry(
            T::Q4_K,
            256,
            144,
            2,
            T::Q8_K,
            (
                |w, o| deq(q4_k::dequantize_row, w, o),
                |x, o| quant(q4_k::quantize_row_ref, x, o),
                |w, a| dot(q4_k::vec_dot, w, a),
            ),
        ),
        entry(
            T::Q5_K,
            256,
            176,
            2,
            T::Q8_K,
            (
                |w, o| deq(q5_k::dequantize_row, w, o),
                |x, o| quant(q5_k::quantize_row_ref, x, o),
                |w, a| dot(q5_k::vec_dot, w, a),
            ),
        ),
        entry(
            T::Q6_K,
            256,
            210,
            2,
            T::Q8_K,
            (
                |w, o| deq(q6_k::dequantize_row, w, o),
                |x, o| quant(q6_k::quantize_row_ref, x, o),
                |w, a| dot(q6_k::vec_dot, w, a),
            ),
        ),
        entry(
            T::Q8_K,
            256,
            292,
            4,
            T::Q8_K,
            (
                |w, o| deq(q8_k::dequantize_row, w, o),
                |x, o| quant(q8_k::quantize_row_ref, x, o),
                |w, a| dot(q8_k::vec_dot, w, a),
            ),
        ),
    ]
}

/// The scalar (reference) traits of `ty`, or an error for unsupported types.
pub fn type_traits(ty: GgmlType) -> Result<&'static TypeTraits> {
    crate::Kernels::for_isa(crate::Isa::Scalar)?.traits(ty)
}
