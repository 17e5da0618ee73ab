//! Plain float rows (F32, F16, BF16) as weights. Their activation type is F32: the dot product
//! converts each weight to f32 and accumulates in f32.

use half::{bf16, f16};

/// Dot product of an F32 weight row with an F32 activation row.
pub fn vec_dot_f32(w: &[f32], a: &[f32]) -> f32 {
    w.iter().zip(a).map(|(x, y)| x * y).sum()
}

/// Dot product of an F16 weight row with an F32 activation row.
pub fn vec_dot_f16(w: &[f16], a: &[f32]) -> f32 {
    w.iter().zip(a).map(|(x, y)| x.to_f32() * y).sum()
}

/// Dot product of a BF16 weight row with an F32 activation row.
pub fn vec_dot_bf16(w: &[bf16], a: &[f32]) -> f32 {
    w.iter().zip(a).map(|(x, y)| x.to_f32() * y).sum()
}

/// Copy an F32 row (its "dequantization").
pub fn dequantize_f32(w: &[f32], out: &mut [f32]) {
    out.copy_from_slice(&w[..out.len()]);
}

/// Widen an F16 row to f32 (exact).
pub fn dequantize_f16(w: &[f16], out: &mut [f32]) {
    for (o, x) in out.iter_mut().zip(w) {
        *o = x.to_f32();
    }
}

/// Widen a BF16 row to f32 (exact).
pub fn dequantize_bf16(w: &[bf16], out: &mut [f32]) {
    for (o, x) in out.iter_mut().zip(w) {
        *o = x.to_f32();
    }
}

/// "Quantize" to F32: a copy.
pub fn quantize_f32(x: &[f32], out: &mut [f32]) {
    out.copy_from_slice(&x[..out.len()]);
}

/// Round to F16, nearest-even (as `GGML_FP32_TO_FP16`).
pub fn quantize_f16(x: &[f32], out: &mut [f16]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o = f16::from_f32(*v);
    }
}

/// Round to BF16, nearest-even, NaN kept quiet (as `GGML_FP32_TO_BF16`).
pub fn quantize_bf16(x: &[f32], out: &mut [bf16]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o = bf16::from_f32(*v);
    }
}
