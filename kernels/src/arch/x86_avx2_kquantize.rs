//! x86-64 AVX2 versions of the K-quant reference quantizers' sub-block fits: ggml's
//! `make_qkx2_quants` (Q4_K, Q5_K) for the eight sub-blocks of a super-block at once, and
//! `make_qx_quants` (Q6_K) for eight of its sixteen at once, one sub-block per lane. Each lane
//! performs exactly the scalar code's f32 operations in the same order (multiplies and adds
//! kept separate: no FMA), so the output is byte-identical to the reference — and so to
//! llama-quantize. Same safety contract as `x86_avx2`: reachable only through the AVX2 table.

use std::arch::x86_64::*;

use super::x86_avx2::to_array;
use crate::quant::kquant_util::Qkx2Search;
use crate::quant::{q2_k, q4_k, q5_k, q6_k, BlockQ2K, BlockQ4K, BlockQ5K, BlockQ6K, QK_K};

/// ggml's `nearest_int` lane-wise (valid for |v| ≤ 4194303, as the scalar one).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn nearest_int(v: __m256) -> __m256i {
    let r = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12_582_912.0)));
    _mm256_sub_epi32(
        _mm256_and_si256(r, _mm256_set1_epi32(0x007f_ffff)),
        _mm256_set1_epi32(0x0040_0000),
    )
}

/// `(m ? b : a)` lane-wise for floats and ints.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pick(a: __m256, b: __m256, m: __m256) -> __m256 {
    _mm256_blendv_ps(a, b, m)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pick_i(a: __m256i, b: __m256i, m: __m256) -> __m256i {
    _mm256_castps_si256(_mm256_blendv_ps(
        _mm256_castsi256_ps(a),
        _mm256_castsi256_ps(b),
        m,
    ))
}

/// The error term of one value: w·|d| or w·d².
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn err(diff: __m256, w: __m256, use_mad: bool) -> __m256 {
    if use_mad {
        _mm256_mul_ps(w, _mm256_andnot_ps(_mm256_set1_ps(-0.0), diff))
    } else {
        _mm256_mul_ps(w, _mm256_mul_ps(diff, diff))
    }
}

/// Sub-block values transposed: `out[i]` lane j = `xs[stride·j + i]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn gather<const N: usize>(xs: &[f32]) -> [__m256; N] {
    assert!(xs.len() >= 8 * N);
    let base = _mm256_mullo_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(N as i32),
    );
    std::array::from_fn(|i| {
        // SAFETY: indices N·j + i < 8·N <= xs.len() (checked).
        unsafe {
            _mm256_i32gather_ps::<4>(
                xs.as_ptr(),
                _mm256_add_epi32(base, _mm256_set1_epi32(i as i32)),
            )
        }
    })
}

/// ggml's `make_qkx2_quants` for eight sub-blocks of `N` values at once (lane j = sub-block
/// j): levels 0..=nmax, scale, and the min it returns (≥ 0).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn qkx2_lanes<const N: usize>(
    x: &[__m256; N],
    w: &[__m256; N],
    nmax: i32,
    p: Qkx2Search,
) -> ([__m256i; N], __m256, __m256) {
    let zero = _mm256_setzero_ps();
    let sign = _mm256_set1_ps(-0.0);
    let nmax_i = _mm256_set1_epi32(nmax);
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = _mm256_mul_ps(sum_w, x[0]);
    for i in 1..N {
        min = _mm256_min_ps(x[i], min);
        max = _mm256_max_ps(x[i], max);
        sum_w = _mm256_add_ps(sum_w, w[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(w[i], x[i]));
    }
    min = _mm256_min_ps(min, zero); // "if min > 0 { min = 0 }"
    let degenerate = _mm256_cmp_ps::<_CMP_EQ_OQ>(max, min);
    // As in ggml, `min` is the best fit so far: the search below moves it.
    let level = |iscale: __m256, xi: __m256, min: __m256| {
        let l = nearest_int(_mm256_mul_ps(iscale, _mm256_sub_ps(xi, min)));
        _mm256_max_epi32(_mm256_min_epi32(l, nmax_i), _mm256_setzero_si256())
    };
    let iscale = _mm256_div_ps(_mm256_set1_ps(nmax as f32), _mm256_sub_ps(max, min));
    let mut scale = _mm256_div_ps(_mm256_set1_ps(1.0), iscale);
    let mut best_l = [_mm256_setzero_si256(); N];
    let mut best_error = zero;
    for i in 0..N {
        best_l[i] = level(iscale, x[i], min);
        let diff = _mm256_sub_ps(
            _mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(best_l[i])), min),
            x[i],
        );
        best_error = _mm256_add_ps(best_error, err(diff, w[i], p.use_mad));
    }
    let mut best_min = min;
    if p.nstep >= 1 {
        let mut laux = [_mm256_setzero_si256(); N];
        for is in 0..=p.nstep {
            let num = p.rmin + p.rdelta * is as f32 + nmax as f32;
            let iscale = _mm256_div_ps(_mm256_set1_ps(num), _mm256_sub_ps(max, best_min));
            let (mut sum_l, mut sum_l2, mut sum_xl) = (zero, zero, zero);
            for i in 0..N {
                laux[i] = level(iscale, x[i], best_min);
                let l = _mm256_cvtepi32_ps(laux[i]);
                let wl = _mm256_mul_ps(w[i], l);
                sum_l = _mm256_add_ps(sum_l, wl);
                sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, l));
                sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, x[i]));
            }
            let d = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
            let d_pos = _mm256_cmp_ps::<_CMP_GT_OQ>(d, zero);
            let mut this_scale = _mm256_div_ps(
                _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)),
                d,
            );
            let mut this_min = _mm256_div_ps(
                _mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)),
                d,
            );
            let min_pos = _mm256_cmp_ps::<_CMP_GT_OQ>(this_min, zero);
            this_min = pick(this_min, zero, min_pos);
            this_scale = pick(this_scale, _mm256_div_ps(sum_xl, sum_l2), min_pos);
            let mut cur_error = zero;
            for i in 0..N {
                let l = _mm256_cvtepi32_ps(laux[i]);
                let diff =
                    _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, l), this_min), x[i]);
                cur_error = _mm256_add_ps(cur_error, err(diff, w[i], p.use_mad));
            }
            let better = _mm256_and_ps(d_pos, _mm256_cmp_ps::<_CMP_LT_OQ>(cur_error, best_error));
            for i in 0..N {
                best_l[i] = pick_i(best_l[i], laux[i], better);
            }
            best_error = pick(best_error, cur_error, better);
            scale = pick(scale, this_scale, better);
            best_min = pick(best_min, this_min, better);
        }
    }
    // Degenerate sub-blocks (max == min): levels 0, scale 0, min as it was.
    scale = pick(scale, zero, degenerate);
    best_min = pick(best_min, min, degenerate);
    for bl in best_l.iter_mut() {
        *bl = pick_i(*bl, _mm256_setzero_si256(), degenerate);
    }
    (best_l, scale, _mm256_xor_ps(best_min, sign))
}

/// Lane j of `levels[i]` → `out[N·j + i]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scatter_levels<const N: usize>(levels: &[__m256i; N], out: &mut [u8]) {
    for (i, v) in levels.iter().enumerate() {
        let mut lanes = [0i32; 8];
        // SAFETY: lanes is 32 bytes.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), *v) };
        for (j, &lj) in lanes.iter().enumerate() {
            out[N * j + i] = lj as u8;
        }
    }
}

/// `q4_k::fit_subblocks` (weights av_x + |x|, `make_qkx2_quants`) for the eight sub-blocks of `xb`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn fit_subblocks(
    xb: &[f32; QK_K],
    nmax: i32,
    p: Qkx2Search,
) -> ([u8; QK_K], [f32; 8], [f32; 8]) {
    let x: [__m256; 32] = gather::<32>(xb);
    let mut sum_x2 = _mm256_setzero_ps();
    for xi in &x {
        sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(*xi, *xi));
    }
    let av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.0)));
    let sign = _mm256_set1_ps(-0.0);
    let w: [__m256; 32] =
        std::array::from_fn(|i| _mm256_add_ps(av_x, _mm256_andnot_ps(sign, x[i])));
    let (levels, scale, min) = qkx2_lanes(&x, &w, nmax, p);
    let mut l = [0u8; QK_K];
    scatter_levels(&levels, &mut l);
    (l, to_array(scale), to_array(min))
}

/// `q2_k::fit_subblocks` (weights |x|, `make_qkx2_quants` with 3 levels) for the sixteen
/// sub-blocks of `xb`, eight at a time.
#[target_feature(enable = "avx2,fma,f16c")]
fn fit_subblocks_q2k(xb: &[f32; QK_K]) -> ([u8; QK_K], [f32; 16], [f32; 16]) {
    let sign = _mm256_set1_ps(-0.0);
    let (mut l, mut scales, mut mins) = ([0u8; QK_K], [0.0f32; 16], [0.0f32; 16]);
    for half in 0..2 {
        let x: [__m256; 16] = gather::<16>(&xb[128 * half..]);
        let w: [__m256; 16] = std::array::from_fn(|i| _mm256_andnot_ps(sign, x[i]));
        let (levels, scale, min) = qkx2_lanes(&x, &w, 3, q2_k::SEARCH);
        scatter_levels(&levels, &mut l[128 * half..]);
        scales[8 * half..8 * half + 8].copy_from_slice(&to_array(scale));
        mins[8 * half..8 * half + 8].copy_from_slice(&to_array(min));
    }
    (l, scales, mins)
}

/// Q2_K reference quantizer with the AVX2 fits (byte-identical to `q2_k::quantize_row_ref`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q2_k(x: &[f32], out: &mut [BlockQ2K]) {
    q2_k::quantize_row_with(x, out, |xb| fit_subblocks_q2k(xb));
}

/// ggml's `make_qx_quants` (x²-weighted, no importance matrix) with `nmax` for eight sub-blocks
/// of 16 values (`xs[16j..16j + 16]` in lane j): levels + nmax and scales, as the scalar
/// `kquant_util::make_qx_quants`.
#[target_feature(enable = "avx2,fma,f16c")]
fn make_qx_quants_x8(xs: &[f32], nmax: i32) -> ([i8; 128], [f32; 8]) {
    assert!(xs.len() >= 128);
    let zero = _mm256_setzero_ps();
    let sign = _mm256_set1_ps(-0.0);
    let stride = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112);
    let mut x = [zero; 16];
    for (i, xi) in x.iter_mut().enumerate() {
        // SAFETY: indices 16j + i < 128 <= xs.len() (checked).
        *xi = unsafe {
            _mm256_i32gather_ps::<4>(
                xs.as_ptr(),
                _mm256_add_epi32(stride, _mm256_set1_epi32(i as i32)),
            )
        };
    }
    // The value of largest magnitude, first one on ties ("if ax > amax").
    let (mut max, mut amax) = (zero, zero);
    for xi in &x {
        let ax = _mm256_andnot_ps(sign, *xi);
        let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(ax, amax);
        amax = pick(amax, ax, gt);
        max = pick(max, *xi, gt);
    }
    let all_zero = _mm256_cmp_ps::<_CMP_LT_OQ>(
        amax,
        _mm256_set1_ps(crate::quant::kquant_util::GROUP_MAX_EPS),
    );
    let (lo, hi) = (_mm256_set1_epi32(-nmax), _mm256_set1_epi32(nmax - 1));
    let level = |iscale: __m256, xi: __m256| {
        _mm256_max_epi32(
            _mm256_min_epi32(nearest_int(_mm256_mul_ps(iscale, xi)), hi),
            lo,
        )
    };
    let w: [__m256; 16] = std::array::from_fn(|i| _mm256_mul_ps(x[i], x[i]));
    let sums = |iscale: __m256, l: &mut [__m256i; 16]| {
        let (mut slx, mut sl2) = (zero, zero);
        for i in 0..16 {
            l[i] = level(iscale, x[i]);
            let lf = _mm256_cvtepi32_ps(l[i]);
            slx = _mm256_add_ps(slx, _mm256_mul_ps(_mm256_mul_ps(w[i], x[i]), lf));
            sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(_mm256_mul_ps(w[i], lf), lf));
        }
        (slx, sl2)
    };
    let mut best_l = [_mm256_setzero_si256(); 16];
    let iscale = _mm256_div_ps(_mm256_set1_ps(-(nmax as f32)), max);
    let (sumlx, suml2) = sums(iscale, &mut best_l);
    let nonzero = _mm256_cmp_ps::<_CMP_NEQ_UQ>(suml2, zero);
    let mut scale = pick(zero, _mm256_div_ps(sumlx, suml2), nonzero);
    let mut best = _mm256_mul_ps(scale, sumlx);
    let mut l = [_mm256_setzero_si256(); 16];
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let num = -(nmax as f32 + 0.1 * is as f32);
        let iscale = _mm256_div_ps(_mm256_set1_ps(num), max);
        let (slx, sl2) = sums(iscale, &mut l);
        let better = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GT_OQ>(sl2, zero),
            _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_mul_ps(slx, slx), _mm256_mul_ps(best, sl2)),
        );
        for i in 0..16 {
            best_l[i] = pick_i(best_l[i], l[i], better);
        }
        let new_scale = _mm256_div_ps(slx, sl2);
        scale = pick(scale, new_scale, better);
        best = pick(best, _mm256_mul_ps(new_scale, slx), better);
    }
    scale = pick(scale, zero, all_zero);
    let mut out = [0i8; 128];
    let off = _mm256_set1_epi32(nmax);
    for (i, bl) in best_l.iter().enumerate() {
        // All-zero sub-blocks: levels 0 (not 0 + nmax), as the scalar code.
        let v = pick_i(_mm256_add_epi32(*bl, off), _mm256_setzero_si256(), all_zero);
        let mut lanes = [0i32; 8];
        // SAFETY: lanes is 32 bytes.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
        for (j, &lj) in lanes.iter().enumerate() {
            out[16 * j + i] = lj as i8;
        }
    }
    let mut scales = [0.0f32; 8];
    // SAFETY: scales is 32 bytes.
    unsafe { _mm256_storeu_ps(scales.as_mut_ptr(), scale) };
    (out, scales)
}

/// Q6_K reference quantizer with the AVX2 fits (byte-identical to `q6_k::quantize_row_ref`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q6_k(x: &[f32], out: &mut [BlockQ6K]) {
    q6_k::quantize_row_with(x, out, |xb| {
        let (l0, s0) = make_qx_quants_x8(&xb[..128], 32);
        let (l1, s1) = make_qx_quants_x8(&xb[128..], 32);
        let mut l = [0i8; QK_K];
        l[..128].copy_from_slice(&l0);
        l[128..].copy_from_slice(&l1);
        let mut scales = [0.0f32; 16];
        scales[..8].copy_from_slice(&s0);
        scales[8..].copy_from_slice(&s1);
        (l, scales)
    });
}

/// Q4_K reference quantizer with the AVX2 fits (byte-identical to `q4_k::quantize_row_ref`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q4_k(x: &[f32], out: &mut [BlockQ4K]) {
    q4_k::quantize_row_with(x, out, |xb, nmax, p| fit_subblocks(xb, nmax, p));
}

/// Q5_K reference quantizer with the AVX2 fits (byte-identical to `q5_k::quantize_row_ref`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn quantize_q5_k(x: &[f32], out: &mut [BlockQ5K]) {
    q5_k::quantize_row_with(x, out, |xb, nmax, p| fit_subblocks(xb, nmax, p));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{random_values, Rng};

    #[test]
    fn simd_fits_equal_the_scalar_fits() {
        if !crate::Isa::Avx2.is_available() {
            eprintln!("skipping: no AVX2");
            return;
        }
        let mut rng = Rng::new(31);
        for (nmax, p) in [
            (
                15,
                Qkx2Search {
                    rmin: -1.0,
                    rdelta: 0.1,
                    nstep: 20,
                    use_mad: false,
                },
            ),
            (
                31,
                Qkx2Search {
                    rmin: -0.5,
                    rdelta: 0.1,
                    nstep: 15,
                    use_mad: false,
                },
            ),
        ] {
            for _ in 0..50 {
                let x: [f32; QK_K] = random_values(&mut rng, QK_K).try_into().unwrap();
                let want = q4_k::fit_subblocks(&x, nmax, p);
                // SAFETY: AVX2 checked above.
                let got = unsafe { fit_subblocks(&x, nmax, p) };
                assert_eq!(got.1.map(f32::to_bits), want.1.map(f32::to_bits), "scales");
                assert_eq!(got.2.map(f32::to_bits), want.2.map(f32::to_bits), "mins");
                assert_eq!(got.0, want.0, "levels");
            }
        }
        for _ in 0..50 {
            let mut x: [f32; QK_K] = random_values(&mut rng, QK_K).try_into().unwrap();
            x[32..48].iter_mut().for_each(|v| *v = 0.5); // a constant sub-block
            let want = q2_k::fit_subblocks(&x, q2_k::SEARCH);
            // SAFETY: AVX2 checked above.
            let got = unsafe { fit_subblocks_q2k(&x) };
            assert_eq!(
                got.1.map(f32::to_bits),
                want.1.map(f32::to_bits),
                "q2_k scales"
            );
            assert_eq!(
                got.2.map(f32::to_bits),
                want.2.map(f32::to_bits),
                "q2_k mins"
            );
            assert_eq!(got.0, want.0, "q2_k levels");
        }
        for _ in 0..50 {
            let mut x: [f32; QK_K] = random_values(&mut rng, QK_K).try_into().unwrap();
            x[..16].iter_mut().for_each(|v| *v = 0.0); // an all-zero sub-block
            x[20] = -x[21].abs() - 1.0; // a negative extreme
            let want = q6_k::fit_subblocks(&x);
            // SAFETY: AVX2 checked above.
            let (l0, s0) = unsafe { make_qx_quants_x8(&x[..128], 32) };
            let (l1, s1) = unsafe { make_qx_quants_x8(&x[128..], 32) };
            assert_eq!(&l0[..], &want.0[..128]);
            assert_eq!(&l1[..], &want.0[128..]);
            assert_eq!(
                s0.map(f32::to_bits),
                want.1[..8].iter().map(|v| v.to_bits()).collect::<Vec<_>>()[..]
            );
            assert_eq!(
                s1.map(f32::to_bits),
                want.1[8..].iter().map(|v| v.to_bits()).collect::<Vec<_>>()[..]
            );
        }
    }
}
