//! Q5_1: 32 values per block, 5-bit quants with scale and offset, value = q·d + m.
//! Pairs with Q8_1 activations.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::{f16_from, BlockQ8_1, QK32};

/// One Q5_1 block: `d`, `m` (f16), `qh` (32 high bits), 16 bytes of nibbles. 24 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale.
    pub d: f16,
    /// Offset (the block minimum).
    pub m: f16,
    /// Fifth bits, bit j for value j (little-endian u32).
    pub qh: [u8; 4],
    /// Low four bits: low nibble = value j, high nibble = value j + 16.
    pub qs: [u8; QK32 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);

/// The 32 quants of a block, 0..=31.
#[inline]
pub fn unpack(b: &BlockQ5_1) -> [u8; QK32] {
    let qh = u32::from_le_bytes(b.qh);
    let mut q = [0u8; QK32];
    for j in 0..16 {
        q[j] = (b.qs[j] & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
        q[j + 16] = (b.qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    q
}

/// `quantize_row_q5_1_ref`: d = (max − min)/31, m = min, q = trunc((x − min)/d + 0.5).
pub fn quantize_row_ref(x: &[f32], out: &mut [BlockQ5_1]) {
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
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f16_from(d);
        b.m = f16_from(min);
        let mut qh = 0u32;
        for j in 0..QK32 / 2 {
            let x0 = ((xb[j] - min) * id + 0.5) as u8;
            let x1 = ((xb[j + 16] - min) * id + 0.5) as u8;
            b.qs[j] = (x0 & 0x0f) | ((x1 & 0x0f) << 4);
            qh |= ((x0 as u32 & 0x10) >> 4) << j;
            qh |= ((x1 as u32 & 0x10) >> 4) << (j + 16);
        }
        b.qh = qh.to_le_bytes();
    }
}

/// Dequantize a row: value = q·d + m.
pub fn dequantize_row(w: &[BlockQ5_1], out: &mut [f32]) {
    for (b, ob) in w.iter().zip(out.chunks_exact_mut(QK32)) {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for (o, q) in ob.iter_mut().zip(unpack(b)) {
            *o = q as f32 * d + m;
        }
    }
}

/// Dot product with a Q8_1 activation row: (dw·da)·Σq·a + m·s per block.
pub fn vec_dot(w: &[BlockQ5_1], a: &[BlockQ8_1]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let q = unpack(x);
        let isum: i32 = q
            .iter()
            .zip(&y.qs)
            .map(|(&p, &v)| p as i32 * v as i32)
            .sum();
        sum += (x.d.to_f32() * y.d.to_f32()) * isum as f32 + x.m.to_f32() * y.s.to_f32();
    }
    sum
}
