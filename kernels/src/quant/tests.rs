//! Oracle self-checks: layouts agree between dequantize and vec_dot, quantizers round-trip
//! within each type's expected error, activation quantizers match ggml's arithmetic.

use half::f16;
use nanorun_formats::GgmlType;

use super::*;
use crate::testutil::{random_values, Aligned, Rng};
use crate::traits::{type_traits, SUPPORTED};

fn quantize(ty: GgmlType, x: &[f32]) -> Aligned {
    let t = type_traits(ty).unwrap();
    let mut out = Aligned::zeroed(t.row_bytes(x.len()).unwrap());
    t.quantize_row(x, out.bytes_mut()).unwrap();
    out
}

fn dequantize(ty: GgmlType, b: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0.0; n];
    type_traits(ty)
        .unwrap()
        .dequantize_row(b, &mut out)
        .unwrap();
    out
}

/// Relative RMS error of the round trip x → ty → f32.
fn round_trip_error(ty: GgmlType, x: &[f32]) -> f32 {
    let y = dequantize(ty, quantize(ty, x).bytes(), x.len());
    let num: f32 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f32 = x.iter().map(|a| a * a).sum();
    (num / den).sqrt()
}

#[test]
fn block_sizes_match_ggml() {
    for &ty in &SUPPORTED {
        let t = type_traits(ty).unwrap();
        assert_eq!(t.block_size, ty.block_size(), "{ty}");
        assert_eq!(t.block_bytes, ty.block_bytes(), "{ty}");
    }
}

#[test]
fn quantizers_round_trip_within_type_error() {
    let mut rng = Rng::new(1);
    let x = random_values(&mut rng, 4096);
    // Upper bounds of relative RMS error for Gaussian-like data (llama.cpp's quantize-fns test
    // uses absolute bounds of the same order).
    let bound = |ty: GgmlType| match ty {
        GgmlType::F32 => 0.0,
        GgmlType::F16 => 1e-3,
        GgmlType::BF16 => 5e-3,
        GgmlType::Q8_0 | GgmlType::Q8_1 => 0.01,
        GgmlType::Q8_K => 0.03,
        GgmlType::Q6_K => 0.035,
        GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q5_K => 0.08,
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4_K => 0.15,
        GgmlType::Q3_K => 0.25,
        _ => 0.45,
    };
    for &ty in &SUPPORTED {
        let e = round_trip_error(ty, &x);
        assert!(e <= bound(ty), "{ty}: relative RMS error {e}");
    }
}

#[test]
fn vec_dot_agrees_with_dequantized_dot_for_every_type() {
    let mut rng = Rng::new(2);
    let n = 1024;
    for &ty in &SUPPORTED {
        let t = type_traits(ty).unwrap();
        let at = type_traits(t.vec_dot_type).unwrap();
        let w = quantize(ty, &random_values(&mut rng, n));
        let a = quantize(at.ty, &random_values(&mut rng, n));
        let got = t.vec_dot(at, n, w.bytes(), a.bytes()).unwrap();
        let wf = dequantize(ty, w.bytes(), n);
        let af = dequantize(at.ty, a.bytes(), n);
        let want: f64 = wf.iter().zip(&af).map(|(x, y)| *x as f64 * *y as f64).sum();
        let mag: f64 = wf
            .iter()
            .zip(&af)
            .map(|(x, y)| (*x as f64 * *y as f64).abs())
            .sum();
        // Q4_1 / Q5_1 use the f16-rounded s = d·Σq for the offset term, as ggml does.
        let tol = if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
            2e-3
        } else {
            1e-5
        };
        assert!(
            ((got as f64) - want).abs() <= tol * mag,
            "{ty}: {got} vs {want} (Σ|xy| {mag})"
        );
    }
}

#[test]
fn q8_0_quantizer_is_ggmls_arithmetic() {
    let mut x = [0.0f32; 32];
    x[0] = 1.27;
    x[1] = -0.635; // exactly half a step
    x[2] = 0.005;
    x[3] = -1.0;
    let mut b = [BlockQ8_0::default()];
    q8_0::quantize_row_ref(&x, &mut b);
    let d = 1.27f32 / 127.0;
    assert_eq!(b[0].d, f16::from_f32(d));
    let id = 1.0 / d;
    for j in 0..32 {
        assert_eq!(b[0].qs[j], (x[j] * id).round() as i8, "value {j}");
    }
    assert_eq!(b[0].qs[0], 127);
    assert_eq!(b[0].qs[3], -100);
}

#[test]
fn q8_k_quantizer_rounds_half_even_and_sums_groups() {
    assert_eq!(nearest_int(2.5), 2);
    assert_eq!(nearest_int(3.5), 4);
    assert_eq!(nearest_int(-2.5), -2);
    assert_eq!(nearest_int(-0.4), 0);
    let mut rng = Rng::new(3);
    let x = random_values(&mut rng, 512);
    let mut b = [BlockQ8K::default(); 2];
    q8_k::quantize_row_ref(&x, &mut b);
    for (blk, xb) in b.iter().zip(x.chunks(256)) {
        let max = xb
            .iter()
            .copied()
            .fold(0.0f32, |m, v| if v.abs() > m.abs() { v } else { m });
        assert_eq!(blk.d, 1.0 / (-127.0 / max));
        assert!(blk.qs.iter().all(|&q| q >= -127));
        for g in 0..16 {
            let s: i16 = blk.qs[16 * g..16 * g + 16].iter().map(|&q| q as i16).sum();
            assert_eq!(blk.bsums[g], s);
        }
    }
    let zero = [0.0f32; 256];
    q8_k::quantize_row_ref(&zero, &mut b[..1]);
    assert_eq!(b[0], BlockQ8K::default());
}

#[test]
fn all_zero_input_quantizes_to_zero_everywhere() {
    let x = vec![0.0f32; 512];
    for &ty in &SUPPORTED {
        let q = quantize(ty, &x);
        let y = dequantize(ty, q.bytes(), x.len());
        assert!(y.iter().all(|&v| v == 0.0), "{ty}");
    }
}

#[test]
fn bad_lengths_are_errors_not_panics() {
    let t = type_traits(GgmlType::Q4_K).unwrap();
    let mut out = vec![0.0; 100];
    assert!(t.dequantize_row(&[0u8; 144], &mut out).is_err());
    let mut out = vec![0.0; 256];
    assert!(t.dequantize_row(&[0u8; 143], &mut out).is_err());
    let a = type_traits(GgmlType::Q8_K).unwrap();
    assert!(t.vec_dot(a, 256, &[0u8; 144], &[0u8; 291]).is_err());
    let q8_0 = type_traits(GgmlType::Q8_0).unwrap();
    assert!(t.vec_dot(q8_0, 256, &[0u8; 144], &[0u8; 272]).is_err());
    assert!(type_traits(GgmlType::IQ2_XXS).is_err());
}
