//! Helpers shared by the K-quant reference quantizers: ggml's scale searches
//! (`make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`) and the 6-bit scale packing of
//! Q4_K / Q5_K. Written from the algorithm's description so the reference quantizers produce
//! the same bytes as llama-quantize without an importance matrix.

use super::nearest_int;

/// Below this magnitude a group counts as all zero (ggml's `GROUP_MAX_EPS`).
pub const GROUP_MAX_EPS: f32 = 1e-15;

/// Symmetric quantization of `x` to levels `-nmax..nmax-1` (stored as `l + nmax` in `out`),
/// searching 19 candidate scales around `nmax/max` for the one with the best weighted fit
/// (weights x², i.e. ggml's `rmse_type == 1` without an importance matrix). Returns the scale.
pub fn make_qx_quants(x: &[f32], nmax: i32, out: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        out.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let clamp = |l: i32| l.clamp(-nmax, nmax - 1);
    let mut iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (o, &v) in out.iter_mut().zip(x) {
        let l = clamp(nearest_int(iscale * v));
        *o = (l + nmax) as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (mut slx, mut sl2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = clamp(nearest_int(iscale * v));
            let w = v * v;
            slx += w * v * l as f32;
            sl2 += w * l as f32 * l as f32;
        }
        if sl2 > 0.0 && slx * slx > best * sl2 {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = (nmax + clamp(nearest_int(iscale * v))) as i8;
            }
            scale = slx / sl2;
            best = scale * slx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse`: symmetric levels `-nmax..nmax-1`, refined by up to
/// five passes of coordinate descent on the x²-weighted error. Output is `l + nmax`.
pub fn make_q3_quants(x: &[f32], nmax: i32, out: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        out.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    let mut l_of = [0i32; 32];
    let n = x.len();
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l_of[i] = l;
        let w = x[i] * x[i];
        sumlx += w * x[i] * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for i in 0..n {
            let w = x[i] * x[i];
            let mut slx = sumlx - w * x[i] * l_of[i] as f32;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * l_of[i] as f32 * l_of[i] as f32;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l_of[i] {
                    slx += w * x[i] * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_of[i] = new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for i in 0..n {
        out[i] = (l_of[i] + nmax) as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Parameters of ggml's `make_qkx2_quants` search.
#[derive(Clone, Copy, Debug)]
pub struct Qkx2Search {
    /// First candidate offset of the inverse scale.
    pub rmin: f32,
    /// Step between candidates.
    pub rdelta: f32,
    /// Number of steps.
    pub nstep: i32,
    /// Mean absolute (true) or squared (false) error.
    pub use_mad: bool,
}

/// Asymmetric quantization of `x` to levels `0..=nmax` with scale and min (value ≈ scale·l − min),
/// choosing the pair with the least weighted error over a grid of inverse scales (ggml's
/// `make_qkx2_quants`). Writes levels to `out` and returns `(scale, min)` (min ≥ 0).
pub fn make_qkx2_quants(
    x: &[f32],
    weights: &[f32],
    nmax: i32,
    out: &mut [u8],
    p: Qkx2Search,
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        out[..n].iter_mut().for_each(|l| *l = 0);
        return (0.0, -min);
    }
    let err = |d: f32, w: f32| if p.use_mad { w * d.abs() } else { w * (d * d) };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += err(diff, weights[i]);
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    let mut laux = [0u8; 32];
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += err(diff, weights[i]);
            }
            if cur_error < best_error {
                out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Scale and min of sub-block `j` (0..8) from Q4_K / Q5_K's 12 packed bytes.
#[inline]
pub fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// All eight scales and mins of Q4_K / Q5_K's 12 packed bytes at once, with 32-bit word
/// operations (the same values as [`scale_min_k4`] for j = 0..8): `(scales, mins)`.
#[inline]
pub fn unpack_scale_min_k4(q: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let w = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (w0, w1, w2) = (w(0), w(1), w(2));
    let (low6, low4, low2) = (0x3f3f_3f3f, 0x0f0f_0f0f, 0x0303_0303);
    let sc_hi = (w2 & low4) | (((w0 >> 6) & low2) << 4);
    let m_hi = ((w2 >> 4) & low4) | (((w1 >> 6) & low2) << 4);
    let join = |a: u32, b: u32| {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&a.to_le_bytes());
        out[4..].copy_from_slice(&b.to_le_bytes());
        out
    };
    (join(w0 & low6, sc_hi), join(w1 & low6, m_hi))
}

/// Pack eight 6-bit scales and mins into Q4_K / Q5_K's 12 bytes (inverse of [`scale_min_k4`]).
pub fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_unpack_of_k4_scales_matches_the_reference() {
        let mut s = 0x1234_5678_9abc_def0u64;
        for _ in 0..10_000 {
            let mut q = [0u8; 12];
            for b in q.iter_mut() {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = (s >> 56) as u8;
            }
            let (sc, m) = unpack_scale_min_k4(&q);
            for j in 0..8 {
                assert_eq!((sc[j], m[j]), scale_min_k4(j, &q), "{q:?} j={j}");
            }
        }
    }
}
