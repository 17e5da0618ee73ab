//! Quantized block types, one module per ggml type: the `#[repr(C)]` block struct (byte-for-byte
//! ggml's layout) and the scalar reference kernels for it — dequantize, quantize (the reference
//! quantizers of `ggml-quants.c`) and the dot product with the activation type it pairs with.
//!
//! The scalar code here is the oracle every SIMD kernel in `crate::arch` is tested against.

// The reference kernels index like ggml's C so that they can be checked against it line by line.
#![allow(clippy::needless_range_loop)]

pub mod float;
pub mod kquant_util;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q4_k_x8;
pub mod q5_0;
pub mod q5_0_x8;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q6_k_x16;
pub mod q8_0;
pub mod q8_0_x8;
pub mod q8_1;
pub mod q8_k;

pub use q2_k::BlockQ2K;
pub use q3_k::BlockQ3K;
pub use q4_0::BlockQ4_0;
pub use q4_1::BlockQ4_1;
pub use q4_k::BlockQ4K;
pub use q5_0::BlockQ5_0;
pub use q5_1::BlockQ5_1;
pub use q5_k::BlockQ5K;
pub use q6_k::BlockQ6K;
pub use q8_0::BlockQ8_0;
pub use q8_1::BlockQ8_1;
pub use q8_k::BlockQ8K;

/// Values per block of the 32-value types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).
pub const QK32: usize = 32;
/// Values per super-block of the K-quants.
pub const QK_K: usize = 256;

/// Rows per group of the interleaved (`*_x8`) layouts.
pub const INTERLEAVED_ROWS: usize = 8;

/// Interleave one group of eight rows of `nb` blocks each (`src`: the rows one after another)
/// into `out` (`nb` interleaved blocks), block `i` of every row through `interleave` (for the
/// `*_x8` layouts).
pub fn interleave_group<B, X>(
    src: &[B],
    nb: usize,
    out: &mut [X],
    interleave: impl Fn([&B; INTERLEAVED_ROWS]) -> X,
) {
    assert!(src.len() == INTERLEAVED_ROWS * nb && out.len() == nb);
    for (i, o) in out.iter_mut().enumerate() {
        *o = interleave(std::array::from_fn(|r| &src[r * nb + i]));
    }
}

/// ggml's `nearest_int`: round to nearest, ties to even, through the float-add trick.
/// Valid for |x| <= 4194303 (the callers guarantee it, as in ggml).
#[inline]
pub fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0f32;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// f32 → f16 with round-to-nearest-even, as `GGML_FP32_TO_FP16`.
#[inline]
pub fn f16_from(x: f32) -> half::f16 {
    half::f16::from_f32(x)
}

#[cfg(test)]
mod tests;
