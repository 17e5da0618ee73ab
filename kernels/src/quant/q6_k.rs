//! Q6_K: super-blocks of 256 = 16 sub-blocks of 16 with signed 8-bit scales; 6-bit quants
//! (low four bits in `ql`, high two in `qh`), value = d·sc·(q − 32). Pairs with Q8_K.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::kquant_util::{make_qx_quants, GROUP_MAX_EPS};
use super::{f16_from, nearest_int, BlockQ8K, QK_K};

/// One Q6_K super-block: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 signed
/// scales, `d` (f16). 210 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low four bits.
    pub ql: [u8; QK_K / 2],
    /// High two bits.
    pub qh: [u8; QK_K / 4],
    /// Sub-block scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale.
    pub d: f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

/// The 256 quants of a super-block with the offset removed (−32..=31), in value order.
#[inline]
pub fn unpack(b: &BlockQ6K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for n in 0..2 {
        let (ql, qh) = (&b.ql[n * 64..n * 64 + 64], &b.qh[n * 32..n * 32 + 32]);
        let o = &mut q[n * 128..n * 128 + 128];
        for l in 0..32 {
            o[l] = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
            o[l + 32] = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            o[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            o[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    q
}

/// `quantize_row_q6_K_ref` (no importance matrix): `make_qx_quants` per sub-block of 16, scales
/// quantized to i8 against the largest, values re-quantized. Bit-identical to llama-quantize.
pub fn quantize_row_ref(x: &[f32], out: &mut [BlockQ6K]) {
    quantize_row_with(x, out, fit_subblocks);
}

/// The scalar sub-block fits of one super-block: [`make_qx_quants`] with 32 levels on each of
/// the sixteen sub-blocks of 16. Returns (levels + 32, scales).
pub fn fit_subblocks(xb: &[f32; QK_K]) -> ([i8; QK_K], [f32; 16]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    for ib in 0..16 {
        scales[ib] = make_qx_quants(
            &xb[16 * ib..16 * ib + 16],
            32,
            &mut l[16 * ib..16 * ib + 16],
        );
    }
    (l, scales)
}

/// [`quantize_row_ref`] with the sub-block fits done by `fit` (which must return exactly what
/// [`fit_subblocks`] returns).
pub(crate) fn quantize_row_with(
    x: &[f32],
    out: &mut [BlockQ6K],
    fit: impl Fn(&[f32; QK_K]) -> ([i8; QK_K], [f32; 16]),
) {
    for (xb, b) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let xb: &[f32; QK_K] = xb.try_into().expect("chunks_exact(QK_K)");
        let (mut l, scales) = fit(xb);
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for &s in &scales {
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            *b = BlockQ6K::zeroed();
            continue;
        }
        let iscale = -128.0f32 / max_scale;
        b.d = f16_from(1.0 / iscale);
        for ib in 0..16 {
            b.scales[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
        }
        for j in 0..16 {
            let d = b.d.to_f32() * b.scales[j] as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let v = nearest_int(xb[16 * j + ii] / d).clamp(-32, 31);
                l[16 * j + ii] = (v + 32) as i8;
            }
        }
        for n in 0..2 {
            let lq = &l[n * 128..n * 128 + 128];
            for j in 0..32 {
                let q = |k: usize| lq[j + 32 * k] as u8;
                b.ql[n * 64 + j] = (q(0) & 0x0f) | ((q(2) & 0x0f) << 4);
                b.ql[n * 64 + j + 32] = (q(1) & 0x0f) | ((q(3) & 0x0f) << 4);
                b.qh[n * 32 + j] =
                    (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
            }
        }
    }
}

/// Dequantize a row: value = d·sc·(q − 32).
pub fn dequantize_row(w: &[BlockQ6K], out: &mut [f32]) {
    for (b, ob) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let q = unpack(b);
        for (i, o) in ob.iter_mut().enumerate() {
            *o = d * b.scales[i / 16] as f32 * q[i] as f32;
        }
    }
}

/// Dot product with a Q8_K activation row: per super-block the integer Σ sc·Σ(q − 32)·a, then
/// ·d·da.
pub fn vec_dot(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let q = unpack(x);
        let mut isum = 0i32;
        for j in 0..16 {
            let s: i32 = (0..16)
                .map(|l| q[16 * j + l] as i32 * y.qs[16 * j + l] as i32)
                .sum();
            isum += x.scales[j] as i32 * s;
        }
        sum += x.d.to_f32() * y.d * isum as f32;
    }
    sum
}
