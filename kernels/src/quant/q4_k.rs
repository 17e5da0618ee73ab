//! Q4_K: super-blocks of 256 = 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min;
//! value = d·sc·q − dmin·m. In each 64-value chunk the low nibbles of 32 bytes are the first 32
//! values and the high nibbles the next 32. Pairs with Q8_K activations.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::kquant_util::{make_qkx2_quants, pack_scale_min_k4, scale_min_k4, Qkx2Search};
use super::{f16_from, nearest_int, BlockQ8K, QK_K};

/// One Q4_K super-block: `d`, `dmin` (f16), 12 bytes of packed 6-bit scales/mins, 128 bytes of
/// nibbles. 144 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale of the scales.
    pub d: f16,
    /// Super-block scale of the mins.
    pub dmin: f16,
    /// Eight 6-bit scales and eight 6-bit mins, packed (see [`scale_min_k4`]).
    pub scales: [u8; 12],
    /// Nibbles.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

/// The 256 quants (0..=15) of a super-block, in value order.
#[inline]
pub fn unpack(b: &BlockQ4K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for c in 0..4 {
        for l in 0..32 {
            let byte = b.qs[c * 32 + l];
            q[c * 64 + l] = byte & 0x0f;
            q[c * 64 + 32 + l] = byte >> 4;
        }
    }
    q
}

/// `quantize_row_q4_K_ref` (no importance matrix): per sub-block a `make_qkx2_quants` fit with
/// weights av_x + |x|, scales and mins quantized to 6 bits against their maxima, then the values
/// re-quantized with the stored scales.
pub fn quantize_row_ref(x: &[f32], out: &mut [BlockQ4K]) {
    quantize_row_with(x, out, fit_subblocks);
}

/// [`quantize_row_ref`] with the sub-block fits done by `fit` (see [`quantize_kx_with`]).
pub(crate) fn quantize_row_with(
    x: &[f32],
    out: &mut [BlockQ4K],
    fit: impl Fn(&[f32; QK_K], i32, Qkx2Search) -> ([u8; QK_K], [f32; 8], [f32; 8]),
) {
    quantize_kx_with(
        x,
        out.len(),
        15,
        Qkx2Search {
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 20,
            use_mad: false,
        },
        fit,
        |i, d, dmin, scales, l| {
            let b = &mut out[i];
            b.d = d;
            b.dmin = dmin;
            b.scales = *scales;
            for c in 0..4 {
                for j in 0..32 {
                    b.qs[c * 32 + j] = l[c * 64 + j] | (l[c * 64 + 32 + j] << 4);
                }
            }
        },
    );
}

/// The scalar sub-block fits of one super-block: per sub-block of 32, weights av_x + |x| and
/// [`make_qkx2_quants`]. Returns (levels, scales, mins).
pub fn fit_subblocks(
    xb: &[f32; QK_K],
    nmax: i32,
    search: Qkx2Search,
) -> ([u8; QK_K], [f32; 8], [f32; 8]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    for j in 0..8 {
        let xs = &xb[32 * j..32 * j + 32];
        let sum_x2: f32 = xs.iter().fold(0.0, |s, v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut w = [0.0f32; 32];
        for (wi, v) in w.iter_mut().zip(xs) {
            *wi = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(xs, &w, nmax, &mut l[32 * j..32 * j + 32], search);
        scales[j] = s;
        mins[j] = m;
    }
    (l, scales, mins)
}

/// The shared body of the Q4_K and Q5_K reference quantizers, with the sub-block fits done by
/// `fit` ([`fit_subblocks`], or a SIMD version returning exactly
/// what [`fit_subblocks`] returns).
pub(crate) fn quantize_kx_with(
    x: &[f32],
    nblocks: usize,
    nmax: i32,
    search: Qkx2Search,
    fit: impl Fn(&[f32; QK_K], i32, Qkx2Search) -> ([u8; QK_K], [f32; 8], [f32; 8]),
    mut store: impl FnMut(usize, f16, f16, &[u8; 12], &[u8; QK_K]),
) {
    for (i, xb) in x.chunks_exact(QK_K).take(nblocks).enumerate() {
        let xb: &[f32; QK_K] = xb.try_into().expect("chunks_exact(QK_K)");
        let (mut l, scales, mins) = fit(xb, nmax, search);
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for j in 0..8 {
            if scales[j] > max_scale {
                max_scale = scales[j];
            }
            if mins[j] > max_min {
                max_min = mins[j];
            }
        }
        let inv_scale = if max_scale > 0.0 {
            63.0 / max_scale
        } else {
            0.0
        };
        let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
        let mut ls = [0u8; 8];
        let mut lm = [0u8; 8];
        for j in 0..8 {
            ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
            lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
        }
        let packed = pack_scale_min_k4(&ls, &lm);
        let d = f16_from(max_scale / 63.0);
        let dmin = f16_from(max_min / 63.0);
        for j in 0..8 {
            let (sc, m) = scale_min_k4(j, &packed);
            let dd = d.to_f32() * sc as f32;
            if dd == 0.0 {
                continue;
            }
            let dm = dmin.to_f32() * m as f32;
            for ii in 0..32 {
                let v = nearest_int((xb[32 * j + ii] + dm) / dd);
                l[32 * j + ii] = v.clamp(0, nmax) as u8;
            }
        }
        store(i, d, dmin, &packed, &l);
    }
}

/// Dequantize a row: value = d·sc·q − dmin·m.
pub fn dequantize_row(w: &[BlockQ4K], out: &mut [f32]) {
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

/// Dot product with a Q8_K activation row: per super-block the integer Σ sc·Σq·a and
/// Σ m·bsums, then d·da·(first) − dmin·da·(second).
pub fn vec_dot(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
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
