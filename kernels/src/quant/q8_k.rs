//! Q8_K: the activation type of every K-quant. 256 values, an f32 scale, and the sums of each
//! 16 quants (`bsums`), which the K-quants' dot products use for their min terms.

use bytemuck::{Pod, Zeroable};

use super::{nearest_int, QK_K};

/// One Q8_K block: `d` (**f32**), 256 signed quants, 16 sums of 16 quants. 292 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8K {
    /// Scale (f32, unlike every other block type).
    pub d: f32,
    /// Quants, value = q·d, each in −127..=127.
    pub qs: [i8; QK_K],
    /// Sum of each group of 16 quants.
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

impl Default for BlockQ8K {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// `quantize_row_q8_K_ref`: take the value `max` of largest magnitude, iscale = −127/max,
/// q = min(127, nearest_int(iscale·x)), d = 1/iscale. All-zero block: d = 0, q = 0 (and we zero
/// `bsums` too). Bit-identical to ggml.
pub fn quantize_row_ref(x: &[f32], out: &mut [BlockQ8K]) {
    for (xb, b) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let (mut max, mut amax) = (0.0f32, 0.0f32);
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *b = BlockQ8K::zeroed();
            continue;
        }
        let iscale = -127.0f32 / max;
        for (q, &v) in b.qs.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, g) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| q as i16).sum();
        }
        b.d = 1.0 / iscale;
    }
}

/// Dequantize a row: value = q·d.
pub fn dequantize_row(w: &[BlockQ8K], out: &mut [f32]) {
    for (b, ob) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        for (o, &q) in ob.iter_mut().zip(&b.qs) {
            *o = q as f32 * b.d;
        }
    }
}

/// Dot product of two Q8_K rows (not used by models; here so every type has one).
pub fn vec_dot(w: &[BlockQ8K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let isum: i32 =
            x.qs.iter()
                .zip(&y.qs)
                .map(|(&p, &q)| p as i32 * q as i32)
                .sum();
        sum += isum as f32 * (x.d * y.d);
    }
    sum
}
