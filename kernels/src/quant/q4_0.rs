//! Q4_0: 32 values per block, 4-bit quants with an implicit offset of 8, value = (q − 8)·d.
//! Low nibbles hold values 0–15, high nibbles 16–31. Pairs with Q8_0 activations.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::{f16_from, BlockQ8_0, QK32};

/// One Q4_0 block: `d` (f16), 16 bytes of nibbles. 18 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// Nibbles: low = value j, high = value j + 16.
    pub qs: [u8; QK32 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

/// `quantize_row_q4_0_ref`: d = max/−8 where max is the value of largest magnitude;
/// q = min(15, trunc(x/d + 8.5)). Bit-identical to ggml (and so to llama-quantize).
pub fn quantize_row_ref(x: &[f32], out: &mut [BlockQ4_0]) {
    for (xb, b) in x.chunks_exact(QK32).zip(out.iter_mut()) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xb {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f16_from(d);
        for j in 0..QK32 / 2 {
            let x0 = ((xb[j] * id + 8.5) as i8).min(15) as u8;
            let x1 = ((xb[j + 16] * id + 8.5) as i8).min(15) as u8;
            b.qs[j] = x0 | (x1 << 4);
        }
    }
}

/// Dequantize a row: value = (q − 8)·d.
pub fn dequantize_row(w: &[BlockQ4_0], out: &mut [f32]) {
    for (b, ob) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let d = b.d.to_f32();
        for j in 0..QK32 / 2 {
            ob[j] = ((b.qs[j] & 0x0f) as i32 - 8) as f32 * d;
            ob[j + 16] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// Dot product with a Q8_0 activation row: per block Σ (q − 8)·a as an integer, then ·dw·da.
pub fn vec_dot(w: &[BlockQ4_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let mut isum = 0i32;
        for j in 0..QK32 / 2 {
            isum += ((x.qs[j] & 0x0f) as i32 - 8) * y.qs[j] as i32;
            isum += ((x.qs[j] >> 4) as i32 - 8) * y.qs[j + 16] as i32;
        }
        sum += isum as f32 * (x.d.to_f32() * y.d.to_f32());
    }
    sum
}
