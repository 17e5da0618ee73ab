//! Every SIMD kernel against the scalar oracle, on every ISA this CPU has (the others are
//! skipped with a message).
//!
//! - Exact: weight blocks of random bytes with power-of-two scales and small activations, so
//!   every f32 operation is exact; SIMD and scalar must agree bit for bit (this checks the
//!   integer sums).
//! - Realistic: weights from the reference quantizers and activations from random values; the
//!   results agree within 1e-5 · Σ|w|·max|a| (only the f32 accumulation order differs).
//! - Activation quantizers: SIMD output must be byte-identical to the reference.

use half::{bf16, f16};
use nanorun_formats::GgmlType;

use crate::testutil::{random_values, random_weights, Aligned, Rng};
use crate::traits::{Int8Path, Int8Row, Int8RowMut, TypeTraits, SUPPORTED};
use crate::{Isa, Kernels};

fn simd_isas() -> Vec<&'static Kernels> {
    let mut out = Vec::new();
    for isa in Isa::ALL.into_iter().filter(|&i| i != Isa::Scalar) {
        match Kernels::for_isa(isa) {
            Ok(k) => out.push(k),
            Err(e) => eprintln!("skipping {isa}: {e}"),
        }
    }
    out
}

fn scalar() -> &'static Kernels {
    Kernels::for_isa(Isa::Scalar).unwrap()
}

const POW2: [f32; 5] = [0.5, 1.0, 2.0, -1.0, 0.25];

fn put_f16(b: &mut [u8], at: usize, v: f32) {
    b[at..at + 2].copy_from_slice(&f16::from_f32(v).to_bits().to_le_bytes());
}

/// Q8_K block fields from quants: d, clamped qs, consistent bsums.
fn fix_q8k(b: &mut [u8], d: f32, mut q: impl FnMut(usize, i8) -> i8) {
    b[0..4].copy_from_slice(&d.to_le_bytes());
    for g in 0..16 {
        let mut s = 0i16;
        for i in 0..16 {
            let k = 4 + 16 * g + i;
            let v = q(16 * g + i, b[k] as i8).max(-127);
            b[k] = v as u8;
            s += v as i16;
        }
        b[260 + 2 * g..262 + 2 * g].copy_from_slice(&s.to_le_bytes());
    }
}

/// Byte offsets of the f16 scale fields in a block of quantized `ty` (none for Q8_K, whose
/// scale is an f32 at 0).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        GgmlType::Q8_K => &[],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 | GgmlType::Q4_K | GgmlType::Q5_K => {
            &[0, 2]
        }
        _ => &[0],
    }
}

/// Random blocks of `ty` whose scales are powers of two (every product exact in f32).
fn exact_weights(rng: &mut Rng, t: &TypeTraits, n: usize) -> Aligned {
    let mut out = Aligned::zeroed(t.row_bytes(n).unwrap());
    let bytes = out.bytes_mut();
    for b in bytes.iter_mut() {
        *b = rng.next_u64() as u8;
    }
    let pick = |rng: &mut Rng| POW2[rng.below(POW2.len() as u64) as usize];
    let small = |rng: &mut Rng| rng.below(17) as f32 - 8.0;
    match t.ty {
        GgmlType::F32 => {
            for c in bytes.chunks_exact_mut(4) {
                c.copy_from_slice(&small(rng).to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for c in bytes.chunks_exact_mut(2) {
                c.copy_from_slice(&f16::from_f32(small(rng)).to_bits().to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            for c in bytes.chunks_exact_mut(2) {
                c.copy_from_slice(&bf16::from_f32(small(rng)).to_bits().to_le_bytes());
            }
        }
        _ => {
            for b in bytes.chunks_exact_mut(t.block_bytes) {
                match t.ty {
                    GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => put_f16(b, 0, pick(rng)),
                    GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 => {
                        put_f16(b, 0, pick(rng));
                        put_f16(b, 2, pick(rng));
                    }
                    GgmlType::Q4_K | GgmlType::Q5_K => {
                        put_f16(b, 0, pick(rng));
                        put_f16(b, 2, pick(rng));
                    }
                    GgmlType::Q2_K => {
                        put_f16(b, 80, pick(rng));
                        put_f16(b, 82, pick(rng));
                    }
                    GgmlType::Q3_K => put_f16(b, 108, pick(rng)),
                    GgmlType::Q6_K => put_f16(b, 208, pick(rng)),
                    GgmlType::Q8_K => fix_q8k(b, pick(rng), |_, q| q),
                    other => unreachable!("{other}"),
                }
            }
        }
    }
    out
}

/// Activations of type `t` with scale 1 and quants in −7..=7 (s / bsums consistent).
fn exact_acts(rng: &mut Rng, t: &TypeTraits, n: usize) -> Aligned {
    let mut out = Aligned::zeroed(t.row_bytes(n).unwrap());
    let bytes = out.bytes_mut();
    let mut small = || (rng.below(15) as i32 - 7) as i8;
    match t.ty {
        GgmlType::F32 => {
            for c in bytes.chunks_exact_mut(4) {
                c.copy_from_slice(&(small() as f32).to_le_bytes());
            }
        }
        GgmlType::Q8_0 => {
            for b in bytes.chunks_exact_mut(34) {
                put_f16(b, 0, 1.0);
                b[2..].iter_mut().for_each(|q| *q = small() as u8);
            }
        }
        GgmlType::Q8_1 => {
            for b in bytes.chunks_exact_mut(36) {
                put_f16(b, 0, 1.0);
                let mut s = 0i32;
                for q in b[4..].iter_mut() {
                    let v = small();
                    s += v as i32;
                    *q = v as u8;
                }
                put_f16(b, 2, s as f32);
            }
        }
        GgmlType::Q8_K => {
            for b in bytes.chunks_exact_mut(292) {
                fix_q8k(b, 1.0, |_, _| small());
            }
        }
        other => unreachable!("{other}"),
    }
    out
}

fn lengths(t: &TypeTraits) -> Vec<usize> {
    let b = t.block_size.max(32);
    if t.block_size == 256 {
        vec![256, 512, 768, 2048]
    } else {
        vec![b, 2 * b, 3 * b, 7 * b, 64 * b, 64 * b + 5 * b.min(32)]
    }
}

#[test]
fn simd_vec_dot_equals_scalar_exactly_on_exact_data() {
    let mut rng = Rng::new(11);
    for k in simd_isas() {
        for &ty in &SUPPORTED {
            let (ws, wk) = (scalar().traits(ty).unwrap(), k.traits(ty).unwrap());
            let at = scalar().traits(ws.vec_dot_type).unwrap();
            for n in lengths(ws) {
                for _ in 0..4 {
                    let w = exact_weights(&mut rng, ws, n);
                    let a = exact_acts(&mut rng, at, n);
                    let want = ws.vec_dot(at, n, w.bytes(), a.bytes()).unwrap();
                    let got = wk.vec_dot(at, n, w.bytes(), a.bytes()).unwrap();
                    assert_eq!(got, want, "{} {ty} n={n}", k.isa());
                }
            }
        }
    }
}

#[test]
fn simd_vec_dot_matches_scalar_on_quantized_random_data() {
    let mut rng = Rng::new(12);
    for k in simd_isas() {
        for &ty in &SUPPORTED {
            let (ws, wk) = (scalar().traits(ty).unwrap(), k.traits(ty).unwrap());
            let at = scalar().traits(ws.vec_dot_type).unwrap();
            for n in lengths(ws) {
                let w = random_weights(&mut rng, ty, 1, n);
                let x = random_values(&mut rng, n);
                let mut a = Aligned::zeroed(at.row_bytes(n).unwrap());
                at.quantize_row(&x, a.bytes_mut()).unwrap();
                let want = ws.vec_dot(at, n, w.bytes(), a.bytes()).unwrap();
                let got = wk.vec_dot(at, n, w.bytes(), a.bytes()).unwrap();
                let (mut wf, mut af) = (vec![0.0; n], vec![0.0; n]);
                ws.dequantize_row(w.bytes(), &mut wf).unwrap();
                at.dequantize_row(a.bytes(), &mut af).unwrap();
                let amax = af.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let mag: f32 = wf.iter().map(|v| v.abs() * amax).sum();
                assert!(
                    (got - want).abs() <= 1e-5 * mag,
                    "{} {ty} n={n}: {got} vs {want}",
                    k.isa()
                );
            }
        }
    }
}

#[test]
fn simd_quantizers_and_dequantizers_are_bit_identical_to_the_reference() {
    let mut rng = Rng::new(13);
    for k in simd_isas() {
        for &ty in &SUPPORTED {
            let (ts, tk) = (scalar().traits(ty).unwrap(), k.traits(ty).unwrap());
            for n in lengths(ts) {
                let mut x = random_values(&mut rng, n);
                // Edge cases: a zero block, exact ties, negative zero, a lone extreme.
                x[..32.min(n)].iter_mut().for_each(|v| *v = 0.0);
                if n >= 64 {
                    for (i, v) in x[32..64].iter_mut().enumerate() {
                        *v = (i as f32 - 16.0) * 0.5;
                    }
                    x[40] = -0.0;
                    x[63] = 1e4;
                }
                let (mut a, mut b) = (
                    Aligned::zeroed(ts.row_bytes(n).unwrap()),
                    Aligned::zeroed(ts.row_bytes(n).unwrap()),
                );
                ts.quantize_row(&x, a.bytes_mut()).unwrap();
                tk.quantize_row(&x, b.bytes_mut()).unwrap();
                assert!(a.bytes() == b.bytes(), "{} {ty} quantize n={n}", k.isa());
                let (mut fa, mut fb) = (vec![0.0; n], vec![0.0; n]);
                ts.dequantize_row(a.bytes(), &mut fa).unwrap();
                tk.dequantize_row(a.bytes(), &mut fb).unwrap();
                assert_eq!(fa, fb, "{} {ty} dequantize n={n}", k.isa());
            }
        }
    }
}

/// A random finite f16 (any sign, subnormals and the largest normal included), as bits.
fn finite_f16(rng: &mut Rng) -> u16 {
    loop {
        let h = rng.next_u64() as u16;
        if h & 0x7c00 != 0x7c00 {
            return h;
        }
    }
}

#[test]
fn simd_dequantize_is_bit_identical_on_random_blocks() {
    // Every bit pattern of quants, scales and mins, with random finite f16 scale fields, so
    // every sub-block scale / min / high-bit combination is seen; compared bit for bit (signed
    // zeros included).
    let mut rng = Rng::new(18);
    for k in simd_isas() {
        for &ty in &SUPPORTED {
            let (ts, tk) = (scalar().traits(ty).unwrap(), k.traits(ty).unwrap());
            for n in lengths(ts) {
                let mut w = Aligned::zeroed(ts.row_bytes(n).unwrap());
                w.bytes_mut()
                    .iter_mut()
                    .for_each(|b| *b = rng.next_u64() as u8);
                let chunk = if ty.is_quantized() { ts.block_bytes } else { 2 };
                for b in w.bytes_mut().chunks_exact_mut(chunk) {
                    match ty {
                        GgmlType::F32 => {}
                        GgmlType::F16 => b.copy_from_slice(&finite_f16(&mut rng).to_le_bytes()),
                        GgmlType::BF16 => b[1] &= 0xbf, // exponent below all-ones: finite
                        GgmlType::Q8_K => {
                            let d = f16::from_bits(finite_f16(&mut rng)).to_f32();
                            b[..4].copy_from_slice(&d.to_le_bytes());
                        }
                        _ => {
                            for &o in f16_fields(ty) {
                                b[o..o + 2].copy_from_slice(&finite_f16(&mut rng).to_le_bytes());
                            }
                        }
                    }
                }
                if ty == GgmlType::F32 {
                    continue;
                }
                let (mut fa, mut fb) = (vec![0.0f32; n], vec![0.0f32; n]);
                ts.dequantize_row(w.bytes(), &mut fa).unwrap();
                tk.dequantize_row(w.bytes(), &mut fb).unwrap();
                for i in 0..n {
                    assert_eq!(
                        fa[i].to_bits(),
                        fb[i].to_bits(),
                        "{} {ty} n={n} i={i}: {} vs {}",
                        k.isa(),
                        fa[i],
                        fb[i]
                    );
                }
            }
        }
    }
}

#[test]
fn unknown_or_unavailable_isa_is_an_error() {
    assert!(Isa::parse("avx9").is_err());
    assert_eq!(Isa::parse("AVX2").unwrap(), Isa::Avx2);
    for isa in Isa::ALL {
        assert_eq!(Kernels::for_isa(isa).is_ok(), isa.is_available(), "{isa}");
    }
    assert!(Isa::best().is_available());
}

#[test]
fn f32_helpers_match_plain_loops() {
    let mut rng = Rng::new(14);
    for k in simd_isas().into_iter().chain([scalar()]) {
        for n in [0, 1, 7, 32, 100, 1000] {
            let a = random_values(&mut rng, n);
            let b = random_values(&mut rng, n);
            let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let mag: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
            assert!(
                (k.dot_f32(&a, &b) - want).abs() <= 1e-5 * mag + 1e-30,
                "{} n={n}",
                k.isa()
            );
        }
    }
    let mut y = vec![1.0f32; 5];
    crate::axpy_f32(2.0, &[1.0, 2.0, 3.0], &mut y);
    assert_eq!(y, [3.0, 5.0, 7.0, 1.0, 1.0]);
}

/// `count` random activation rows of `n` values, quantized to `at`.
fn random_acts(rng: &mut Rng, at: &TypeTraits, n: usize, count: usize) -> Vec<Aligned> {
    (0..count)
        .map(|_| {
            let mut a = Aligned::zeroed(at.row_bytes(n).unwrap());
            at.quantize_row(&random_values(rng, n), a.bytes_mut())
                .unwrap();
            a
        })
        .collect()
}

/// The dots of a type's `Int8Path` kernels, one list per kernel (token i at index i): the
/// weight row and the activations (through the activation type's unpacker) unpacked, then one
/// `dot_x8`; then `packed_x8`, `packed_x4` and `packed_x2` on the packed row.
fn int8_dots(
    path: &Int8Path,
    at: &TypeTraits,
    n: usize,
    w: &[u8],
    acts: &[Aligned],
) -> Vec<Vec<f32>> {
    let nb = n / 32;
    let unpack = |unpack: fn(&[u8], Int8RowMut<'_>), bytes: &[u8]| {
        let (mut qs, mut d) = (vec![[0i8; 32]; nb], vec![0f32; nb]);
        unpack(
            bytes,
            Int8RowMut {
                qs: &mut qs,
                d: &mut d,
            },
        );
        (qs, d)
    };
    let a_unpack = at
        .int8
        .expect("activation type has the int8 unpacker")
        .unpack;
    let (wq, wd) = unpack(path.unpack, w);
    let a: Vec<_> = acts
        .iter()
        .map(|a| {
            let (mut qs, d) = unpack(a_unpack, a.bytes());
            path.adapt_acts(&mut qs);
            (qs, d)
        })
        .collect();
    let rows = std::array::from_fn(|t| Int8Row {
        qs: &a[t].0,
        d: &a[t].1,
    });
    vec![
        (path.dot_x8)(Int8Row { qs: &wq, d: &wd }, &rows).to_vec(),
        (path.packed_x8)(w, &rows).to_vec(),
        (path.packed_x4)(w, &std::array::from_fn(|t| rows[t])).to_vec(),
        (path.packed_x2)(w, &std::array::from_fn(|t| rows[t])).to_vec(),
    ]
}

#[test]
fn four_and_eight_token_kernels_are_bit_identical_to_single_dots() {
    let mut rng = Rng::new(15);
    for k in simd_isas().into_iter().chain([scalar()]) {
        for &ty in &SUPPORTED {
            let t = k.traits(ty).unwrap();
            let at = k.traits(t.vec_dot_type).unwrap();
            for n in lengths(t) {
                let w = random_weights(&mut rng, ty, 1, n);
                let acts = random_acts(&mut rng, at, n, 8);
                let a = |i: usize| acts[i].bytes();
                let mut runs: Vec<Vec<f32>> = Vec::new();
                if let Some(x4) = t.vec_dot_x4_fn() {
                    runs.push(x4(w.bytes(), std::array::from_fn(a)).to_vec());
                }
                if let Some(path) = t.int8 {
                    runs.extend(int8_dots(&path, at, n, w.bytes(), &acts));
                }
                for got in runs {
                    for (i, g) in got.iter().enumerate() {
                        let want = t.vec_dot(at, n, w.bytes(), a(i)).unwrap();
                        assert_eq!(
                            g.to_bits(),
                            want.to_bits(),
                            "{} {ty} n={n} token {i} of {}",
                            k.isa(),
                            got.len()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn wide_batch_kernels_compute_the_same_sums() {
    // Same integer sums, another float order: within a few ulps of the whole sum's magnitude
    // of the one-token kernel; the four-token wide kernels bit-identical to the one-token wide
    // kernel, except x86 Q4_K's (llama.cpp's GEMM folds per 64 values, its GEMV per 256); and
    // every ISA's wide kernel bit-identical to the first's (one float order per type).
    let mut rng = Rng::new(17);
    let mut seen = 0;
    let isas = simd_isas();
    for &k in &isas {
        for &ty in &SUPPORTED {
            let t = k.traits(ty).unwrap();
            let Some(wide) = t.wide() else { continue };
            seen += 1;
            let at = k.traits(t.vec_dot_type).unwrap();
            for n in lengths(t) {
                let w = random_weights(&mut rng, ty, 1, n);
                let acts = random_acts(&mut rng, at, n, 4);
                let mut wf = vec![0f32; n];
                t.dequantize_row(w.bytes(), &mut wf).unwrap();
                let single: Vec<f32> = acts
                    .iter()
                    .map(|a| (wide.vec_dot_fn())(w.bytes(), a.bytes()))
                    .collect();
                if let Some(first) = isas[0].traits(ty).unwrap().wide() {
                    for (a, got) in acts.iter().zip(&single) {
                        let want = (first.vec_dot_fn())(w.bytes(), a.bytes());
                        assert_eq!(got.to_bits(), want.to_bits(), "{} {ty} n={n}", k.isa());
                    }
                }
                let mut scales = [0f32; 4];
                for (i, a) in acts.iter().enumerate() {
                    let mut af = vec![0f32; n];
                    at.dequantize_row(a.bytes(), &mut af).unwrap();
                    let scale: f32 = wf.iter().zip(&af).map(|(x, y)| (x * y).abs()).sum();
                    scales[i] = scale;
                    let want = t.vec_dot(at, n, w.bytes(), a.bytes()).unwrap();
                    assert!(
                        (single[i] - want).abs() <= 1e-5 * scale + 1e-30,
                        "{} {ty} n={n}: wide {} vs {want}",
                        k.isa(),
                        single[i]
                    );
                }
                if let Some(x4) = wide.vec_dot_x4_fn() {
                    let got = x4(
                        w.bytes(),
                        [
                            acts[0].bytes(),
                            acts[1].bytes(),
                            acts[2].bytes(),
                            acts[3].bytes(),
                        ],
                    );
                    for i in 0..4 {
                        if ty == GgmlType::Q4_K {
                            assert!((got[i] - single[i]).abs() <= 1e-5 * scales[i] + 1e-30);
                        } else {
                            assert_eq!(got[i].to_bits(), single[i].to_bits(), "{} {ty}", k.isa());
                        }
                    }
                }
            }
        }
    }
    if cfg!(target_arch = "x86_64") && !simd_isas().is_empty() {
        assert!(seen > 0, "no wide kernels on this x86 machine");
    }
}

#[test]
fn sixteen_row_tiles_unpack_as_the_reference_and_give_their_orders_bits() {
    // A type's `Tile16Path`s: the unpacker byte for byte against the scalar one of the layout,
    // and each of the sixteen rows' results over eight and four tokens bit for bit against the
    // one-token kernel of the path's order on that row (the wide one's, or the type's own;
    // extreme scales included: the integer sums and the float steps must both be the same).
    let mut rng = Rng::new(23);
    let mut seen = 0;
    for k in simd_isas() {
        for &ty in &SUPPORTED {
            let t = k.traits(ty).unwrap();
            let orders = [
                t.wide().and_then(|w| Some((w.vec_dot_fn(), w.tile16?))),
                t.tile16.map(|p| (t.vec_dot, p)),
            ];
            for (vec_dot, path) in orders.into_iter().flatten() {
                seen += 1;
                assert_eq!(
                    ty,
                    GgmlType::Q6_K,
                    "a tile layout for {ty} needs its reference here"
                );
                let at = k.traits(t.vec_dot_type).unwrap();
                for n in lengths(t) {
                    let nb = n / 256;
                    let mut w = random_weights(&mut rng, ty, 16, n);
                    if n == 512 {
                        // Scales at the ends of the f16 range in some rows.
                        for (i, v) in [65504.0f32, 6.0e-8, -65504.0, 1.0e-4].iter().enumerate() {
                            put_f16(w.bytes_mut(), (4 * i + 1) * 2 * 210 + 208, *v);
                        }
                    }
                    let acts = random_acts(&mut rng, at, n, 8);
                    use crate::quant::q6_k_x16::{unpack_rows, BlockQ6Kx16};
                    let blank = <BlockQ6Kx16 as bytemuck::Zeroable>::zeroed();
                    assert_eq!(path.block_bytes, std::mem::size_of::<BlockQ6Kx16>());
                    let mut tile = vec![blank; nb];
                    (path.unpack)(w.bytes(), nb, bytemuck::cast_slice_mut(&mut tile));
                    let mut want = vec![blank; nb];
                    unpack_rows(bytemuck::cast_slice(w.bytes()), nb, &mut want);
                    let as_bytes = |b: &[BlockQ6Kx16]| bytemuck::cast_slice::<_, u8>(b).to_vec();
                    assert!(as_bytes(&tile) == as_bytes(&want), "{} n={n}", k.isa());
                    let a: [&[u8]; 8] = std::array::from_fn(|i| acts[i].bytes());
                    let tile: &[u8] = bytemuck::cast_slice(&tile);
                    let got8 = (path.x8)(tile, a);
                    let got4 = (path.x4)(tile, [a[4], a[5], a[6], a[7]]);
                    let row_bytes = t.row_bytes(n).unwrap();
                    for r in 0..16 {
                        let row = &w.bytes()[r * row_bytes..(r + 1) * row_bytes];
                        for (i, a) in a.iter().enumerate() {
                            let want = vec_dot(row, a).to_bits();
                            let what = format!("{} n={n} row {r} token {i}", k.isa());
                            assert_eq!(got8[i][r].to_bits(), want, "{what}");
                            if i >= 4 {
                                assert_eq!(got4[i - 4][r].to_bits(), want, "{what} (x4)");
                            }
                        }
                    }
                }
            }
        }
    }
    if cfg!(target_arch = "x86_64") && Kernels::for_isa(Isa::Avx512).is_ok() {
        assert!(seen >= 2, "the AVX-512 table has both orders' Q6_K tiles");
    }
}

#[test]
fn simd_vec_dot_matches_scalar_with_extreme_scales() {
    let mut rng = Rng::new(16);
    // Largest normal f16, a subnormal, and ordinary values, mixed within one row.
    let scales = [65504.0f32, -65504.0, 6.0e-8, 1.0, -0.5];
    for k in simd_isas() {
        for &ty in SUPPORTED
            .iter()
            .filter(|t| t.is_quantized() && **t != GgmlType::Q8_K)
        {
            let (ws, wk) = (scalar().traits(ty).unwrap(), k.traits(ty).unwrap());
            let at = scalar().traits(ws.vec_dot_type).unwrap();
            let n = 4 * ws.block_size.max(64);
            let mut w = exact_weights(&mut rng, ws, n);
            // Overwrite every f16 scale field exact_weights set with an extreme one.
            for b in w.bytes_mut().chunks_exact_mut(ws.block_bytes) {
                for &o in f16_fields(ty) {
                    put_f16(b, o, scales[rng.below(scales.len() as u64) as usize]);
                }
            }
            let x = random_values(&mut rng, n);
            let mut a = Aligned::zeroed(at.row_bytes(n).unwrap());
            at.quantize_row(&x, a.bytes_mut()).unwrap();
            let want = ws.vec_dot(at, n, w.bytes(), a.bytes()).unwrap();
            let got = wk.vec_dot(at, n, w.bytes(), a.bytes()).unwrap();
            let (mut wf, mut af) = (vec![0.0f32; n], vec![0.0f32; n]);
            ws.dequantize_row(w.bytes(), &mut wf).unwrap();
            at.dequantize_row(a.bytes(), &mut af).unwrap();
            let amax = af.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let mag: f32 = wf.iter().map(|v| v.abs() * amax).sum();
            assert!(
                got.is_finite() && want.is_finite(),
                "{} {ty}: {got} vs {want}",
                k.isa()
            );
            assert!(
                (got - want).abs() <= 1e-5 * mag,
                "{} {ty}: {got} vs {want} (mag {mag})",
                k.isa()
            );
        }
    }
}

#[test]
fn axpy_row_adds_the_dequantized_row_on_every_isa() {
    let mut rng = Rng::new(17);
    for k in simd_isas().into_iter().chain([scalar()]) {
        for &ty in &SUPPORTED {
            let t = k.traits(ty).unwrap();
            let n = 3 * t.block_size.max(256);
            let w = random_weights(&mut rng, ty, 1, n);
            let mut deq = vec![0.0f32; n];
            t.dequantize_row(w.bytes(), &mut deq).unwrap();
            let base = random_values(&mut rng, n);
            let mut y = base.clone();
            k.axpy_row(ty, 0.75, w.bytes(), &mut y).unwrap();
            for i in 0..n {
                assert_eq!(y[i], base[i] + 0.75 * deq[i], "{} {ty} i={i}", k.isa());
            }
            assert!(k.axpy_row(ty, 1.0, w.bytes(), &mut y[..n - 1]).is_err());
        }
    }
}

#[test]
fn avx_vnni_q8_0_is_bit_identical_to_avx2() {
    let (Ok(vnni), Ok(avx2)) = (Kernels::for_isa(Isa::AvxVnni), Kernels::for_isa(Isa::Avx2)) else {
        eprintln!("skipping: this CPU lacks AVX-VNNI or AVX2");
        return;
    };
    let mut rng = Rng::new(0xA77);
    for cols in [32, 256, 640, 2048] {
        let w = random_weights(&mut rng, GgmlType::Q8_0, 1, cols);
        let x = random_values(&mut rng, cols);
        let mut a = Aligned::zeroed(cols / 32 * 34);
        avx2.quantize_row(GgmlType::Q8_0, &x, a.bytes_mut())
            .unwrap();
        let (p, q) = (
            vnni.vec_dot(GgmlType::Q8_0, cols, w.bytes(), a.bytes())
                .unwrap(),
            avx2.vec_dot(GgmlType::Q8_0, cols, w.bytes(), a.bytes())
                .unwrap(),
        );
        assert_eq!(p.to_bits(), q.to_bits(), "cols {cols}: {p} vs {q}");
    }
}
