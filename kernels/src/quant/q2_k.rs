//! Q2_K: super-blocks of 256 = 16 sub-blocks of 16, each with a 4-bit scale and a 4-bit min
//! (`scales[j]`: low nibble scale, high nibble min); 2-bit quants, value = d·sc·q − dmin·m.
//! Value n·128 + j·32 + k sits in bits 2j of qs\[n·32 + k\]. Pairs with Q8_K.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::kquant_util::{make_qkx2_quants, Qkx2Search};
use super::{f16_from, nearest_int, BlockQ8K, QK_K};

/// One Q2_K super-block: 16 scale/min bytes, 64 bytes of 2-bit quants, `d`, `dmin`. 84 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ2K {
    /// Low nibble: scale; high nibble: min; one byte per sub-block of 16.
    pub scales: [u8; QK_K / 16],
    /// Quants, four per byte.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale of the scales.
    pub d: f16,
    /// Super-block scale of the mins.
    pub dmin: f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ2K>() == 84);

/// The 256 quants (0..=3) of a super-block, in value order.
#[inline]
pub fn unpack(b: &BlockQ2K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for n in 0..2 {
        for j in 0..4 {
            for k in 0..32 {
                q[n * 128 + j * 32 + k] = (b.qs[n * 32 + k] >> (2 * j)) & 3;
            }
        }
    }
    q
}

/// Pack 256 levels (0..=3) into Q2_K / Q3_K's `qs` layout.
pub(crate) fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for n in 0..2 {
        for k in 0..32 {
            let at = |j: usize| l[n * 128 + j * 32 + k];
            qs[n * 32 + k] = at(0) | (at(1) << 2) | (at(2) << 4) | (at(3) << 6);
        }
    }
}

/// `quantize_row_q2_K_ref` (no importance matrix).
pub fn quantize_row_ref(x: &[f32], out: &mut [BlockQ2K]) {
    let search = SEARCH;
    quantize_row_with(x, out, |xb| fit_subblocks(xb, search));
}

/// The search `quantize_row_q2_K_ref` runs on each sub-block.
pub const SEARCH: Qkx2Search = Qkx2Search {
    rmin: -0.5,
    rdelta: 0.1,
    nstep: 15,
    use_mad: true,
};

/// The scalar sub-block fits of one super-block: weights |x| and [`make_qkx2_quants`] with 3
/// levels on each of the sixteen sub-blocks of 16. Returns (levels, scales, mins).
pub fn fit_subblocks(xb: &[f32; QK_K], search: Qkx2Search) -> ([u8; QK_K], [f32; 16], [f32; 16]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut mins = [0.0f32; 16];
    for j in 0..16 {
        let xs = &xb[16 * j..16 * j + 16];
        let mut w = [0.0f32; 16];
        for (wi, v) in w.iter_mut().zip(xs) {
            *wi = v.abs();
        }
        let (s, m) = make_qkx2_quants(xs, &w, 3, &mut l[16 * j..16 * j + 16], search);
        scales[j] = s;
        mins[j] = m;
    }
    (l, scales, mins)
}

/// [`quantize_row_ref`] with the sub-block fits done by `fit` (which must return exactly what
/// [`fit_subblocks`] returns).
pub(crate) fn quantize_row_with(
    x: &[f32],
    out: &mut [BlockQ2K],
    fit: impl Fn(&[f32; QK_K]) -> ([u8; QK_K], [f32; 16], [f32; 16]),
) {
    const Q4SCALE: f32 = 15.0;
    for (xb, b) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let xb: &[f32; QK_K] = xb.try_into().expect("chunks_exact(QK_K)");
        let (mut l, scales, mins) = fit(xb);
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for j in 0..16 {
            if scales[j] > max_scale {
                max_scale = scales[j];
            }
            if mins[j] > max_min {
                max_min = mins[j];
            }
        }
        if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for j in 0..16 {
                b.scales[j] = nearest_int(iscale * scales[j]) as u8;
            }
            b.d = f16_from(max_scale / Q4SCALE);
        } else {
            b.scales = [0; 16];
            b.d = f16_from(0.0);
        }
        if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for j in 0..16 {
                b.scales[j] |= (nearest_int(iscale * mins[j]) as u8) << 4;
            }
            b.dmin = f16_from(max_min / Q4SCALE);
        } else {
            b.dmin = f16_from(0.0);
        }
        for j in 0..16 {
            let d = b.d.to_f32() * (b.scales[j] & 0x0f) as f32;
            if d == 0.0 {
                continue;
            }
            let dm = b.dmin.to_f32() * (b.scales[j] >> 4) as f32;
            for ii in 0..16 {
                l[16 * j + ii] = nearest_int((xb[16 * j + ii] + dm) / d).clamp(0, 3) as u8;
            }
        }
        pack_2bit(&l, &mut b.qs);
    }
}

/// Dequantize a row: value = d·sc·q − dmin·m.
pub fn dequantize_row(w: &[BlockQ2K], out: &mut [f32]) {
    for (b, ob) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
        let q = unpack(b);
        for (i, o) in ob.iter_mut().enumerate() {
            let sc = b.scales[i / 16];
            *o = d * (sc & 0x0f) as f32 * q[i] as f32 - dmin * (sc >> 4) as f32;
        }
    }
}

/// Dot product with a Q8_K activation row: d·da·Σ sc·Σq·a − dmin·da·Σ m·bsums.
pub fn vec_dot(w: &[BlockQ2K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let q = unpack(x);
        let (mut isum, mut imin) = (0i32, 0i32);
        for j in 0..16 {
            let s: i32 = (0..16)
                .map(|l| q[16 * j + l] as i32 * y.qs[16 * j + l] as i32)
                .sum();
            isum += (x.scales[j] & 0x0f) as i32 * s;
            imin += (x.scales[j] >> 4) as i32 * y.bsums[j] as i32;
        }
        sum += x.d.to_f32() * y.d * isum as f32 - x.dmin.to_f32() * y.d * imin as f32;
    }
    sum
}
