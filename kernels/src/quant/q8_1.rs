//! Q8_1: Q8_0 plus `s = d·Σq`, the activation type of Q4_1 and Q5_1 weights (the sum carries
//! the weights' offset `m`).

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::{f16_from, QK32};

/// One Q8_1 block: `d`, `s = d·Σq` (both f16), 32 signed quants. 36 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_1 {
    /// Scale.
    pub d: f16,
    /// d times the sum of the quants.
    pub s: f16,
    /// Quants, value = q·d.
    pub qs: [i8; QK32],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);

/// `quantize_row_q8_1_ref`: as Q8_0, plus s = f16(Σq · d) with the f32 d. Bit-identical to ggml.
pub fn quantize_row_ref(x: &[f32], out: &mut [BlockQ8_1]) {
    for (xb, b) in x.chunks_exact(QK32).zip(out.iter_mut()) {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f16_from(d);
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(xb) {
            *q = (v * id).round() as i8;
            sum += *q as i32;
        }
        b.s = f16_from(sum as f32 * d);
    }
}

/// Q8_1 activations as llama.cpp's CPU backend quantizes them on x86-64 (see
/// `q8_0::quantize_row_act`): q = x·(127/amax) rounded half to even, s = d·Σq.
pub fn quantize_row_act(x: &[f32], out: &mut [BlockQ8_1]) {
    for (xb, b) in x.chunks_exact(QK32).zip(out.iter_mut()) {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        b.d = f16_from(d);
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(xb) {
            *q = (v * id).round_ties_even() as i8;
            sum += *q as i32;
        }
        b.s = f16_from(sum as f32 * d);
    }
}

/// Dequantize a row: value = q·d.
pub fn dequantize_row(w: &[BlockQ8_1], out: &mut [f32]) {
    for (b, ob) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let d = b.d.to_f32();
        for (o, &q) in ob.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
}

/// Dot product of two Q8_1 rows (not used by models; here so every type has one).
pub fn vec_dot(w: &[BlockQ8_1], a: &[BlockQ8_1]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let isum: i32 =
            x.qs.iter()
                .zip(&y.qs)
                .map(|(&p, &q)| p as i32 * q as i32)
                .sum();
        sum += isum as f32 * (x.d.to_f32() * y.d.to_f32());
    }
    sum
}
