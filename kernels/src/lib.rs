//! nanorun-kernels: everything that touches quantized bytes.
//!
//! Block types byte-for-byte as ggml lays them out, a scalar reference for every kernel
//! (the oracle), and SIMD versions per ISA selected once at run time. This crate knows
//! nothing of models; it depends only on `nanorun-formats` for the tensor type ids.
//!
//! # Map
//! - [`quant`]: one module per type — the `#[repr(C)]` block struct and its scalar reference
//!   kernels (dequantize, the reference quantizer, the dot product with its activation type).
//! - [`TypeTraits`]: one table entry per type, as ggml's `type_traits_cpu` (block size, bytes,
//!   `vec_dot_type`, row kernels). [`Kernels`] holds the table for one [`Isa`];
//!   [`Kernels::active`] is the one `NANORUN_ISA` or detection picks.
//! - `arch`: the SIMD versions (AVX2, AVX-512 VNNI, NEON dotprod).
//! - [`matmul()`]: `out[t][r] = W[r,:]·x[t,:]` over a quantized matrix, threaded by row ranges on
//!   a [`ThreadPool`]; batches use four-token kernels where the ISA has them, and large x86
//!   Q6_K batches run sixteen rows at a time from a per-thread unpacked tile
//!   ([`quant::q6_k_x16`]). [`matmul_many`]: several matrices over the same activations as one
//!   pool op.
//! - [`Kernels::dot_f32`], [`axpy_f32`], [`Kernels::axpy_row`]: helpers for the engine's own math.
//! - [`Kernels::repack`]: a matrix rearranged once at load into the layout an ISA's kernels
//!   run fastest (x86: Q4_K and Q5_0 with eight rows interleaved); same results.
//! - [`arena`]: memory for what the kernels stream every token (repacked weights), on huge
//!   pages where the OS has them.
//! - [`quantize_matrix()`]: a whole tensor to a type, threaded (for `nanorun quantize`).
//!
//! # Numerics
//! Dot products follow ggml: activations are quantized once per row (Q8_0 for Q4_0/Q5_0/Q8_0,
//! Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants, F32 for float rows), each block's integer sum is
//! exact, and scales are applied in f32. SIMD versions compute the same integer sums and differ
//! from the scalar oracle only in the order of the f32 accumulation. Within one ISA a token's
//! result is bit-identical whatever batch it is computed in. The reference quantizers are
//! byte-identical to llama-quantize's (no importance matrix); see the crate README for
//! measurements and what is not done.

#![warn(missing_docs)]

pub mod arch;
pub mod arena;
pub mod bandwidth;
mod contention;
mod error;
mod int8_acts;
mod isa;
mod kernels;
pub mod matmul;
pub mod quant;
pub mod quantize_matrix;
pub mod repack;
pub mod threads;
mod traits;

#[cfg(test)]
mod testutil;

pub use error::{KernelError, Result};
pub use isa::Isa;
pub use kernels::{axpy_f32, Kernels};
pub use matmul::{matmul, matmul_many, MatmulScratch, QMatrix};
pub use nanorun_formats::GgmlType;
pub use quantize_matrix::quantize_matrix;
pub use repack::{Layout, RepackedMatrix};
pub use threads::ThreadPool;
pub use traits::{
    type_traits, DequantizeFn, QuantizeFn, TypeTraits, VecDotFn, VecDotX4Fn, WideBatch, SUPPORTED,
};
