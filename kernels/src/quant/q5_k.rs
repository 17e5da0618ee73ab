//! Q5_K: Q4_K plus a fifth bit per value from `qh` (bit 2c of qh\[l\] for the low half of chunk
//! c, bit 2c+1 for the high half); value = d·sc·q − dmin·m. Pairs with Q8_K activations.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::kquant_util::{scale_min_k4, Qkx2Search};
use super::q4_k::{fit_subblocks, quantize_kx_with};
use super::{BlockQ8K, QK_K};

/// One Q5_K super-block: `d`, `dmin`, 12 bytes of scales/mins, 32 bytes of high bits, 128 bytes
/// of nibbles. 176 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale of the scales.
    pub d: f16,
    /// Super-block scale of the mins.
    pub dmin: f16,
    /// Eight 6-bit scales and mins, packed as in Q4_K.
    pub scales: [u8; 12],
    /// Fifth bits.
    pub qh: [u8; QK_K / 8],
    /// Low four bits.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);

/// The 256 quants (0..=31) of a super-block, in value order.
#[inline]
pub fn unpack(b: &BlockQ5K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for c in 0..4 {
        for l in 0..32 {
            let byte = b.qs[c * 32 + l];
            let h = b.qh[l];
            q[c * 64 + l] = (byte & 0x0f) | (((h >> (2 * c)) & 1) << 4);
            q[c * 64 + 32 + l] = (byte >> 4) | (((h >> (2 * c + 1)) & 1) << 4);
        }
    }
    q
}

/// `quantize_row_q5_K_ref` (no importance matrix): as Q4_K with 31 levels and a narrower search.
pub fn quantize_row_ref(x: &[f32], out: &mut [BlockQ5K]) {
    quantize_row_with(x, out, fit_subblocks);
}

/// [`quantize_row_ref`] with the sub-block fits done by `fit` (see `q4_k::quantize_kx_with`).
pub(crate) fn quantize_row_with(
    x: &[f32],
    out: &mut [BlockQ5K],
    fit: impl Fn(&[f32; QK_K], i32, Qkx2Search) -> ([u8; QK_K], [f32; 8], [f32; 8]),
) {
    let search = Qkx2Search {
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    quantize_kx_with(x, out.len(), 31, search, fit, |i, d, dmin, scales, l| {
        let b = &mut out[i];
        b.d = d;
        b.dmin = dmin;
        b.scales = *scales;
        b.qh = [0; QK_K / 8];
        for c in 0..4 {
            for j in 0..32 {
                let (l1, l2) = (l[c * 64 + j], l[c * 64 + 32 + j]);
                b.qh[j] |= ((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1));
                b.qs[c * 32 + j] = (l1 & 0x0f) | ((l2 & 0x0f) << 4);
            }
        }
    });
}

/// Dequantize a row: value = d·sc·q − dmin·m.
pub fn dequantize_row(w: &[BlockQ5K], out: &mut [f32]) {
    for (b, ob) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
        let q = unpack(b);
        for j in 0..8 {
            let (sc, m) = scale_min_k4(j, &b.scales);
            let (d1, m1) = (d * sc as f32, dmin * m as f32);
            for l in 0..32 {
                ob[32 * j + l] = d1 * q[32 * j + l] as f32 - m1;
            }
        }
    }
}

/// Dot product with a Q8_K activation row (same shape as Q4_K's).
pub fn vec_dot(w: &[BlockQ5K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let q = unpack(x);
        let (mut isum, mut imin) = (0i32, 0i32);
        for j in 0..8 {
            let (sc, m) = scale_min_k4(j, &x.scales);
            let s: i32 = (0..32)
                .map(|l| q[32 * j + l] as i32 * y.qs[32 * j + l] as i32)
                .sum();
            isum += sc as i32 * s;
            imin += m as i32 * (y.bsums[2 * j] as i32 + y.bsums[2 * j + 1] as i32);
        }
        sum += x.d.to_f32() * y.d * isum as f32 - x.dmin.to_f32() * y.d * imin as f32;
    }
    sum
}
