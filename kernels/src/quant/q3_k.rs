//! Q3_K: super-blocks of 256 = 16 sub-blocks of 16 with 6-bit scales (stored + 32); 3-bit
//! quants: two bits in `qs` (Q2_K's layout) and a high bit in `hmask` (value i: bit i/32 of
//! hmask\[i % 32\]; a clear bit subtracts 4). value = d·(sc − 32)·q, q in −4..=3. Pairs with Q8_K.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::kquant_util::make_q3_quants;
use super::q2_k::pack_2bit;
use super::{f16_from, nearest_int, BlockQ8K, QK_K};

/// One Q3_K super-block: 32 bytes of high bits, 64 bytes of 2-bit quants, 12 bytes of packed
/// 6-bit scales, `d`. 110 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ3K {
    /// High bits.
    pub hmask: [u8; QK_K / 8],
    /// Low two bits.
    pub qs: [u8; QK_K / 4],
    /// Sixteen 6-bit scales (offset 32), packed.
    pub scales: [u8; 12],
    /// Super-block scale.
    pub d: f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ3K>() == 110);

/// The sixteen signed scales (−32..=31) of a super-block.
#[inline]
pub fn unpack_scales(s: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0x0f } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i8 - 32;
    }
    out
}

/// [`unpack_scales`] with 32-bit word operations (same result, no per-scale branches).
#[inline]
pub fn unpack_scales_words(s: &[u8; 12]) -> [i8; 16] {
    let w = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (w0, w1, w2) = (w(0), w(1), w(2));
    let (low4, low2) = (0x0f0f_0f0f, 0x0303_0303);
    let words = [
        (w0 & low4) | ((w2 & low2) << 4),
        (w1 & low4) | (((w2 >> 2) & low2) << 4),
        ((w0 >> 4) & low4) | (((w2 >> 4) & low2) << 4),
        ((w1 >> 4) & low4) | (((w2 >> 6) & low2) << 4),
    ];
    let mut out = [0i8; 16];
    for (o, b) in out
        .iter_mut()
        .zip(words.iter().flat_map(|w| w.to_le_bytes()))
    {
        *o = b as i8 - 32;
    }
    out
}

/// The 256 quants (−4..=3) of a super-block, in value order.
#[inline]
pub fn unpack(b: &BlockQ3K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for (i, o) in q.iter_mut().enumerate() {
        let (n, j, k) = (i / 128, (i / 32) % 4, i % 32);
        let low = ((b.qs[n * 32 + k] >> (2 * j)) & 3) as i8;
        let high = (b.hmask[k] >> (i / 32)) & 1;
        *o = low - if high != 0 { 0 } else { 4 };
    }
    q
}

/// `quantize_row_q3_K_ref` (no importance matrix).
pub fn quantize_row_ref(x: &[f32], out: &mut [BlockQ3K]) {
    for (xb, b) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for j in 0..16 {
            scales[j] = make_q3_quants(&xb[16 * j..16 * j + 16], 4, &mut l[16 * j..16 * j + 16]);
            if scales[j].abs() > amax {
                amax = scales[j].abs();
                max_scale = scales[j];
            }
        }
        b.scales = [0; 12];
        if max_scale != 0.0 {
            let iscale = -32.0f32 / max_scale;
            for j in 0..16 {
                let lv = (nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) + 32;
                let lv = lv as u8;
                if j < 8 {
                    b.scales[j] = lv & 0x0f;
                } else {
                    b.scales[j - 8] |= (lv & 0x0f) << 4;
                }
                b.scales[j % 4 + 8] |= (lv >> 4) << (2 * (j / 4));
            }
            b.d = f16_from(1.0 / iscale);
        } else {
            b.d = f16_from(0.0);
        }
        let sc = unpack_scales(&b.scales);
        for j in 0..16 {
            let d = b.d.to_f32() * sc[j] as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let v = nearest_int(xb[16 * j + ii] / d).clamp(-4, 3);
                l[16 * j + ii] = (v + 4) as i8;
            }
        }
        b.hmask = [0; 32];
        let mut lu = [0u8; QK_K];
        for (i, (&li, u)) in l.iter().zip(lu.iter_mut()).enumerate() {
            let mut v = li as u8;
            if v > 3 {
                b.hmask[i % 32] |= 1 << (i / 32);
                v -= 4;
            }
            *u = v;
        }
        pack_2bit(&lu, &mut b.qs);
    }
}

/// Dequantize a row: value = d·sc·q.
pub fn dequantize_row(w: &[BlockQ3K], out: &mut [f32]) {
    for (b, ob) in w.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let sc = unpack_scales(&b.scales);
        let q = unpack(b);
        for (i, o) in ob.iter_mut().enumerate() {
            *o = d * sc[i / 16] as f32 * q[i] as f32;
        }
    }
}

/// Dot product with a Q8_K activation row: d·da·Σ sc·Σq·a.
pub fn vec_dot(w: &[BlockQ3K], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (x, y) in w.iter().zip(a) {
        let q = unpack(x);
        let sc = unpack_scales(&x.scales);
        let mut isum = 0i32;
        for j in 0..16 {
            let s: i32 = (0..16)
                .map(|l| q[16 * j + l] as i32 * y.qs[16 * j + l] as i32)
                .sum();
            isum += sc[j] as i32 * s;
        }
        sum += x.d.to_f32() * y.d * isum as f32;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_unpack_of_scales_matches_the_reference() {
        let mut st = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            let mut q = [0u8; 12];
            for b in q.iter_mut() {
                st = st
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = (st >> 56) as u8;
            }
            assert_eq!(unpack_scales_words(&q), unpack_scales(&q), "{q:?}");
        }
    }
}
