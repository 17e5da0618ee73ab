//! Tests of [`super`]: every type, thread count and ISA against the scalar row dots, batch
//! invariance, matmuls of several matrices, and bad shapes.

use super::*;
use crate::testutil::{random_weights, Rng};
use crate::Isa;

fn reference(w: &QMatrix<'_>, x: &[f32], n_tokens: usize) -> Vec<f32> {
    // Dequantized W times the scalar-quantized-then-dequantized activations is not what the
    // kernels compute; the oracle is the scalar vec_dot, row by row.
    let k = Kernels::for_isa(Isa::Scalar).unwrap();
    let (wt, at) = (k.traits(w.ty).unwrap(), vec_dot_traits(k, w.ty));
    row_dots(k, w, x, n_tokens, |row, a| {
        wt.vec_dot(at, w.cols, row, a).unwrap()
    })
}

/// The traits of `ty`'s activation type in `k`.
fn vec_dot_traits(k: &Kernels, ty: GgmlType) -> &TypeTraits {
    k.traits(k.traits(ty).unwrap().vec_dot_type).unwrap()
}

/// `out[t·rows + r] = dot(row r of W, token t)`, each token quantized with `k`'s quantizer for
/// W's activation type.
fn row_dots(
    k: &Kernels,
    w: &QMatrix<'_>,
    x: &[f32],
    n_tokens: usize,
    dot: impl Fn(&[u8], &[u8]) -> f32,
) -> Vec<f32> {
    let at = vec_dot_traits(k, w.ty);
    let w_row = k.traits(w.ty).unwrap().row_bytes(w.cols).unwrap();
    let a_row = at.row_bytes(w.cols).unwrap();
    let mut out = vec![0.0; n_tokens * w.rows];
    let mut a = vec![0u64; a_row.div_ceil(8)];
    for t in 0..n_tokens {
        let ab = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut a)[..a_row];
        at.quantize_row(&x[t * w.cols..(t + 1) * w.cols], ab)
            .unwrap();
        for r in 0..w.rows {
            out[t * w.rows + r] = dot(&w.data[r * w_row..(r + 1) * w_row], ab);
        }
    }
    out
}

#[test]
fn matmul_matches_row_by_row_dots_for_every_type_and_thread_count() {
    let mut rng = Rng::new(7);
    let k = Kernels::for_isa(Isa::Scalar).unwrap();
    for &ty in &crate::SUPPORTED {
        let cols = 2 * ty.block_size().max(256);
        // Enough rows for several chunks of `MIN_CHUNK_BYTES` at two and three threads.
        let rows = (3 * MIN_CHUNK_BYTES).div_ceil(ty.row_bytes(cols as u64).unwrap() as usize) + 5;
        let data = random_weights(&mut rng, ty, rows, cols);
        let w = QMatrix::new(data.bytes(), ty, rows, cols).unwrap();
        for n_tokens in [1, 3] {
            let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.normal()).collect();
            let want = reference(&w, &x, n_tokens);
            for threads in [1, 2, 3] {
                let pool = ThreadPool::new(threads);
                let mut scratch = MatmulScratch::new();
                let mut out = vec![f32::NAN; n_tokens * rows];
                matmul(k, &pool, &w, &x, n_tokens, &mut out, &mut scratch).unwrap();
                assert_eq!(out, want, "{ty} tokens {n_tokens} threads {threads}");
            }
        }
    }
}

/// With batch-invariant numerics, bit for bit; by default, the wide-batch orders round
/// differently, so within a few ulps of the row's magnitude.
#[test]
fn every_token_of_a_batch_gets_the_bits_of_a_batch_of_one_on_every_isa() {
    let mut rng = Rng::new(8);
    let pool = ThreadPool::new(2);
    for isa in Isa::ALL {
        let Ok(k) = Kernels::for_isa(isa) else {
            eprintln!("skipping {isa}: not available");
            continue;
        };
        for &ty in &crate::SUPPORTED {
            // 20 blocks of 32 values (two of 256).
            let (rows, cols) = (21, if ty.block_size() == 256 { 512 } else { 640 });
            let data = random_weights(&mut rng, ty, rows, cols);
            let w = QMatrix::new(data.bytes(), ty, rows, cols).unwrap();
            // Two groups of eight, four, one; eight groups of eight (large enough that the
            // int8 path unpacks a Q5_0 tile once for all of them), four, one; four, two, one.
            for n_tokens in [21, 69, 7] {
                let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.normal()).collect();
                let mut scratch = MatmulScratch::new();
                let mut default_order = vec![0.0; n_tokens * rows];
                matmul(k, &pool, &w, &x, n_tokens, &mut default_order, &mut scratch).unwrap();
                scratch.set_batch_invariant(true);
                let mut batch = vec![0.0; n_tokens * rows];
                matmul(k, &pool, &w, &x, n_tokens, &mut batch, &mut scratch).unwrap();
                for (a, b) in default_order.iter().zip(&batch) {
                    assert!(
                        (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                        "{isa} {ty}: {a} vs {b}"
                    );
                }
                scratch.set_batch_invariant(false);
                for t in 0..n_tokens {
                    let mut one = vec![0.0; rows];
                    matmul(
                        k,
                        &pool,
                        &w,
                        &x[t * cols..(t + 1) * cols],
                        1,
                        &mut one,
                        &mut scratch,
                    )
                    .unwrap();
                    assert_eq!(
                        &batch[t * rows..(t + 1) * rows],
                        &one[..],
                        "{isa} {ty} token {t}"
                    );
                }
            }
        }
    }
}

/// A batch large enough for a type's wide kernels gets, on every ISA and at any thread count,
/// each row's wide one-token kernel bits: through the sixteen-row tiles where the ISA has them
/// (x86 Q6_K), with rows past the last whole tile and tokens past the last four on the
/// row kernels.
#[test]
fn a_wide_batch_gets_each_rows_wide_kernel_bits() {
    let mut rng = Rng::new(10);
    let (ty, cols) = (GgmlType::Q6_K, 768);
    // Enough rows for several chunks at two and three threads, not a multiple of 16.
    let rows = 3 * MIN_CHUNK_BYTES.div_ceil(ty.row_bytes(cols as u64).unwrap() as usize) + 7;
    let data = random_weights(&mut rng, ty, rows, cols);
    let w = QMatrix::new(data.bytes(), ty, rows, cols).unwrap();
    for isa in Isa::ALL {
        let Ok(k) = Kernels::for_isa(isa) else {
            eprintln!("skipping {isa}: not available");
            continue;
        };
        let Some(wide) = k.traits(ty).unwrap().wide().copied() else {
            continue;
        };
        for n_tokens in [wide.min_tokens, 11, 21] {
            let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.normal()).collect();
            let want = row_dots(k, &w, &x, n_tokens, wide.vec_dot_fn());
            for threads in [1, 2, 3] {
                let pool = ThreadPool::new(threads);
                let mut out = vec![f32::NAN; n_tokens * rows];
                matmul(
                    k,
                    &pool,
                    &w,
                    &x,
                    n_tokens,
                    &mut out,
                    &mut MatmulScratch::new(),
                )
                .unwrap();
                let same = out
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{isa} tokens {n_tokens} threads {threads}");
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let k = Kernels::for_isa(Isa::Scalar).unwrap();
    let pool = ThreadPool::new(1);
    let mut s = MatmulScratch::new();
    let data = vec![0u8; 2 * 18];
    assert!(QMatrix::new(&data, GgmlType::Q4_0, 2, 33).is_err());
    assert!(QMatrix::new(&data, GgmlType::Q4_0, 3, 32).is_err());
    assert!(QMatrix::new(&data, GgmlType::IQ2_XXS, 2, 256).is_err());
    let w = QMatrix::new(&data, GgmlType::Q4_0, 2, 32).unwrap();
    let mut out = vec![0.0; 2];
    assert!(matmul(k, &pool, &w, &[0.0; 31], 1, &mut out, &mut s).is_err());
    assert!(matmul(k, &pool, &w, &[0.0; 32], 1, &mut out[..1], &mut s).is_err());
    assert!(matmul(k, &pool, &w, &[0.0; 32], 1, &mut out, &mut s).is_ok());
    // Q4_0 blocks hold f16 scales: 2-byte alignment is required, and an odd address is an
    // error, not a panic.
    let words = vec![0u16; 2 * 18 / 2 + 1];
    let bytes: &[u8] = bytemuck::cast_slice(&words);
    let odd = QMatrix::new(&bytes[1..1 + 2 * 18], GgmlType::Q4_0, 2, 32).unwrap();
    assert!(matches!(
        matmul(k, &pool, &odd, &[0.0; 32], 1, &mut out, &mut s),
        Err(KernelError::Misaligned { .. })
    ));
}

/// Several matrices in one op give each the bits of its own matmul: on every ISA, row-major
/// and repacked, sharing their activations (Q5_0 and Q8_0 over Q8_0 activations, as a layer's
/// Q, K and V can be) or not (Q4_K beside them: run one after another), up to five at once
/// (the same matrix twice among them), one token to a batch past the int8 path's tile, at one,
/// two and three threads.
#[test]
fn several_matrices_in_one_op_give_the_bits_of_one_op_each() {
    let mut rng = Rng::new(9);
    let cols = 512;
    let shapes = [
        // (More than one chunk of `MIN_CHUNK_BYTES` each, the first three.)
        (GgmlType::Q5_0, 400),
        (GgmlType::Q5_0, 200),
        (GgmlType::Q8_0, 245),
        (GgmlType::Q4_K, 8),
    ];
    let data: Vec<_> = shapes
        .iter()
        .map(|&(ty, rows)| random_weights(&mut rng, ty, rows, cols))
        .collect();
    for isa in Isa::ALL {
        let Ok(k) = Kernels::for_isa(isa) else {
            eprintln!("skipping {isa}: not available");
            continue;
        };
        let plain: Vec<QMatrix<'_>> = shapes
            .iter()
            .zip(&data)
            .map(|(&(ty, rows), d)| QMatrix::new(d.bytes(), ty, rows, cols).unwrap())
            .collect();
        let repacked: Vec<_> = plain.iter().map(|m| k.repack(m).unwrap()).collect();
        let placed: Vec<QMatrix<'_>> = plain
            .iter()
            .zip(&repacked)
            .map(|(m, r)| r.as_ref().map_or(*m, |r| r.matrix()))
            .collect();
        // (Any number of parts, the same matrix twice among them.)
        let five = [placed[0], placed[1], placed[2], placed[0], placed[1]];
        for group in [
            &placed[..3],
            &placed[..],
            &plain[..3],
            &placed[2..3],
            &five[..],
        ] {
            for n_tokens in [1, 2, 9, 70] {
                let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.normal()).collect();
                for threads in [1, 2, 3] {
                    let pool = ThreadPool::new(threads);
                    let mut scratch = MatmulScratch::new();
                    scratch.set_batch_invariant(n_tokens == 9);
                    let want: Vec<Vec<f32>> = group
                        .iter()
                        .map(|w| {
                            let mut out = vec![f32::NAN; n_tokens * w.rows];
                            matmul(k, &pool, w, &x, n_tokens, &mut out, &mut scratch).unwrap();
                            out
                        })
                        .collect();
                    let mut outs: Vec<Vec<f32>> = group
                        .iter()
                        .map(|w| vec![f32::NAN; n_tokens * w.rows])
                        .collect();
                    match (group, &mut outs[..]) {
                        ([a, b, c], [oa, ob, oc]) => matmul_many(
                            k,
                            &pool,
                            [(*a, &mut oa[..]), (*b, &mut ob[..]), (*c, &mut oc[..])],
                            &x,
                            n_tokens,
                            &mut scratch,
                        ),
                        ([a, b, c, d], [oa, ob, oc, od]) => matmul_many(
                            k,
                            &pool,
                            [
                                (*a, &mut oa[..]),
                                (*b, &mut ob[..]),
                                (*c, &mut oc[..]),
                                (*d, &mut od[..]),
                            ],
                            &x,
                            n_tokens,
                            &mut scratch,
                        ),
                        ([a, b, c, d, e], [oa, ob, oc, od, oe]) => matmul_many(
                            k,
                            &pool,
                            [
                                (*a, &mut oa[..]),
                                (*b, &mut ob[..]),
                                (*c, &mut oc[..]),
                                (*d, &mut od[..]),
                                (*e, &mut oe[..]),
                            ],
                            &x,
                            n_tokens,
                            &mut scratch,
                        ),
                        ([a], [oa]) => {
                            matmul_many(k, &pool, [(*a, &mut oa[..])], &x, n_tokens, &mut scratch)
                        }
                        _ => unreachable!("groups of one, three, four or five"),
                    }
                    .unwrap();
                    assert_eq!(outs, want, "{isa} tokens {n_tokens} threads {threads}");
                }
            }
        }
        let pool = ThreadPool::new(2);
        let mut scratch = MatmulScratch::new();
        // A part of the wrong length is an error, whichever part it is.
        let x = vec![0.5; cols];
        let (mut a, mut b) = (vec![0.0; placed[0].rows], vec![0.0; 3]);
        let parts = [(placed[0], &mut a[..]), (placed[1], &mut b[..])];
        assert!(matmul_many(k, &pool, parts, &x, 1, &mut scratch).is_err());
    }
}
