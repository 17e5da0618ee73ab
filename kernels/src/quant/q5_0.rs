//! Q5_0: 32 values per block, 5-bit quants offset by 16, value = (q − 16)·d. The 5th bit of
//! value j is bit j of `qh`; nibble order as Q4_0. Pairs with Q8_0 activations.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::{f16_from, BlockQ8_0, QK32};

/// One Q5_0 block: `d` (f16), `qh` (32 high bits, little-endian), 16 bytes of nibbles. 22 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale.
    pub d: f16,
    /// Fifth bits, bit j for value j (little-endian u32).
    pub qh: [u8; 4],
    /// Low four bits: low nibble = value j, high nibble = value j + 16.
    pub qs: [u8; QK32 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

/// The 32 quants of a block, 0..=31 (offset not removed).
#[inline]
pub fn unpack(b: &BlockQ5_0) -> [u8; QK32] {
    let qh = u32::from_le_bytes(b.qh);
    let mut q = [0u8; QK32];
    for j in 0..16 {
        q[j] = (b.qs[j] & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
        q[j + 16] = (b.qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    q
}

/// `quantize_row_q5_0_ref`: d = max/−16, q = min(31, trunc(x/d + 16.5)). Bit-identical to ggml.
pub fn quantize_row_ref(x: &[f32], out: &mut [BlockQ5_0]) {
    for (xb, b) in x.chunks_exact(QK32).zip(out.iter_mut()) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xb {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f16_from(d);
        let mut qh = 0u32;
        for j in 0..QK32 / 2 {
            let x0 = ((xb[j] * id + 16.5) as i8).min(31) as u8;
            let x1 = ((xb[j + 16] * id + 16.5) as i8).min(31) as u8;
            b.qs[j] = (x0 & 0x0f) | ((x1 & 0x0f) << 4);
            qh |= ((x0 as u32 & 0x10) >> 4) << j;
            qh |= ((x1 as u32 & 0x10) >> 4) << (j + 16);
        }
        b.qh = qh.to_le_bytes();
    }
}

/// Dequantize a row: value = (q − 16)·d.
pub fn dequantize_row(w: &[BlockQ5_0], out: &mut [f32]) {
    for (b, ob) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let d = b.d.to_f32();
        for (o, q) in ob.iter_mut().zip(unpack(b)) {
            *o = (q as i32 - 16) as f32 * d;
        }
    }
}

/// Dot product with a Q8_0 activation row: per block Σ (q − 16)·a, then ·dw·da.
pub fn vec_dot(w: &[BlockQ5_0], a: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let q = unpack(x);
        let isum: i32 = q
            .iter()
            .zip(&y.qs)
            .map(|(&p, &v)| (p as i32 - 16) * v as i32)
            .sum();
        sum += isum as f32 * (x.d.to_f32() * y.d.to_f32());
    }
    sum
}
