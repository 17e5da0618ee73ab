//! Q8_0: 32 values per block, one f16 scale, value = q·d. Also the activation type of Q4_0,
//! Q5_0 and Q8_0 weights.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::{f16_from, QK32};

/// One Q8_0 block: `d` (f16) then 32 signed quants. 34 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Quants, value = q·d.
    pub qs: [i8; QK32],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// `quantize_row_q8_0_ref`: d = amax/127 in f32 (stored as f16), q = round(x·(1/d)), rounding
/// half away from zero with the f32 (not the f16-rounded) inverse scale. Bit-identical to ggml.
pub fn quantize_row_ref(x: &[f32], out: &mut [BlockQ8_0]) {
    for (xb, b) in x.chunks_exact(QK32).zip(out.iter_mut()) {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f16_from(d);
        for (q, &v) in b.qs.iter_mut().zip(xb) {
            *q = (v * id).round() as i8;
        }
    }
}

/// Q8_0 activations as llama.cpp's CPU backend quantizes them before a matmul on x86-64
/// (`quantize_row_q8_0` in `ggml-cpu/arch/x86/quants.c`, which every reference output we test
/// against came from): d = amax/127 (stored as f16), q = x·(127/amax) rounded half to even.
/// It differs from [`quantize_row_ref`] (used for weights) only on exact ties, but those occur
/// in real activations and each flips a dot product by a visible amount.
pub fn quantize_row_act(x: &[f32], out: &mut [BlockQ8_0]) {
    for (xb, b) in x.chunks_exact(QK32).zip(out.iter_mut()) {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        b.d = f16_from(amax / 127.0);
        for (q, &v) in b.qs.iter_mut().zip(xb) {
            *q = (v * id).round_ties_even() as i8;
        }
    }
}

/// Dequantize a row: value = q·d.
pub fn dequantize_row(w: &[BlockQ8_0], out: &mut [f32]) {
    for (b, ob) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let d = b.d.to_f32();
        for (o, &q) in ob.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

/// Integer dot product of one block pair.
#[inline]
pub fn block_isum(w: &[i8; QK32], a: &[i8; QK32]) -> i32 {
    w.iter().zip(a).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// Dot product of a Q8_0 weight row with a Q8_0 activation row: Σ isum·(dw·da).
pub fn vec_dot(w: &[BlockQ8_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        sum += block_isum(&x.qs, &y.qs) as f32 * (x.d.to_f32() * y.d.to_f32());
    }
    sum
}
