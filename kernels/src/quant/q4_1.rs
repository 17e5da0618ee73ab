//! Q4_1: 32 values per block, 4-bit quants with a scale and an offset, value = q·d + m.
//! Pairs with Q8_1 activations (whose `s` carries Σa for the offset term).

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::{f16_from, BlockQ8_1, QK32};

/// One Q4_1 block: `d`, `m` (f16), 16 bytes of nibbles. 20 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Offset (the block minimum).
    pub m: f16,
    /// Nibbles: low = value j, high = value j + 16.
    pub qs: [u8; QK32 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

/// `quantize_row_q4_1_ref`: d = (max − min)/15, m = min, q = min(15, trunc((x − min)/d + 0.5)).
pub fn quantize_row_ref(x: &[f32], out: &mut [BlockQ4_1]) {
    for (xb, b) in x.chunks_exact(QK32).zip(out.iter_mut()) {
        let (mut min, mut max) = (f32::MAX, -f32::MAX);
        for &v in xb {
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f16_from(d);
        b.m = f16_from(min);
        for j in 0..QK32 / 2 {
            let x0 = (((xb[j] - min) * id + 0.5) as i8).min(15) as u8;
            let x1 = (((xb[j + 16] - min) * id + 0.5) as i8).min(15) as u8;
            b.qs[j] = x0 | (x1 << 4);
        }
    }
}

/// Dequantize a row: value = q·d + m.
pub fn dequantize_row(w: &[BlockQ4_1], out: &mut [f32]) {
    for (b, ob) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for j in 0..QK32 / 2 {
            ob[j] = (b.qs[j] & 0x0f) as f32 * d + m;
            ob[j + 16] = (b.qs[j] >> 4) as f32 * d + m;
        }
    }
}

/// Dot product with a Q8_1 activation row: Σ (dw·da)·Σq·a + m·s per block.
pub fn vec_dot(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let mut isum = 0i32;
        for j in 0..QK32 / 2 {
            isum += (x.qs[j] & 0x0f) as i32 * y.qs[j] as i32;
            isum += (x.qs[j] >> 4) as i32 * y.qs[j + 16] as i32;
        }
        sum += (x.d.to_f32() * y.d.to_f32()) * isum as f32 + x.m.to_f32() * y.s.to_f32();
    }
    sum
}
