//! Every kernel, launched through [`Gpu`]'s methods, against a scalar CPU reference — on the
//! CUDA device when there is one, and on the CPU emulation of a device ([`Gpu::emulated`]: the
//! same kernel sources built by g++ with a small CUDA shim) when g++ is there. Each missing one
//! is reported with a SKIPPED line. On this project's CI only the emulation runs: these tests
//! have not run on a GPU yet (see docs/cuda.md).

mod common;

use std::sync::OnceLock;

use common::{
    argmax_ref, attention_ref, close, glu_ref, matmul_ref, quantized_matrix, rms_norm_ref,
    rope_ref, softmax_ref, values,
};
use half::f16;
use nanorun_cuda::device::{AttnParams, RopeParams};
use nanorun_cuda::layout::{self, WeightType};
use nanorun_cuda::{paged, Gpu};

/// The devices to test on, each built once per test process.
fn devices(test: &str) -> Vec<&'static Gpu> {
    static CUDA: OnceLock<Result<Gpu, String>> = OnceLock::new();
    static EMU: OnceLock<Result<Gpu, String>> = OnceLock::new();
    let cuda = CUDA.get_or_init(|| {
        if let Some(lib) = common::nvrtc_library() {
            let _ = nanorun_cuda::probe::preload_nvrtc(&lib);
        }
        Gpu::with_cache(0, None).map_err(|e| e.to_string())
    });
    let emu = EMU.get_or_init(|| Gpu::emulated().map_err(|e| e.to_string()));
    let mut out = Vec::new();
    match cuda {
        Ok(g) => out.push(g),
        Err(e) => println!("SKIPPED: no CUDA device ({e}): {test} on a GPU"),
    }
    match emu {
        Ok(g) => out.push(g),
        Err(e) => println!("SKIPPED: no CPU emulation ({e}): {test} emulated"),
    }
    out
}

fn on(gpu: &Gpu) -> &'static str {
    if gpu.is_emulated() {
        "emulated"
    } else {
        "cuda"
    }
}

#[test]
fn linear_matches_the_dequantized_product_for_every_type() {
    for gpu in devices("linear_matches_the_dequantized_product_for_every_type") {
        let (rows, cols) = (67, 512);
        for ty in WeightType::ALL {
            let (bytes, deq) = quantized_matrix(ty, rows, cols, 11);
            let row_bytes = bytes.len() / rows;
            let dw = gpu
                .upload_weight("w", ty.ggml(), rows, cols, &bytes)
                .unwrap();
            for n_tokens in [1usize, 3, 40] {
                let what = format!("{}: {ty:?} x {n_tokens} tokens", on(gpu));
                let x = values(n_tokens * cols, 5);
                let dx = gpu.upload(&x).unwrap();
                let mut q8 = gpu.zeros::<u8>(layout::q8_1_bytes(n_tokens, cols)).unwrap();
                let mut out = gpu.zeros::<f32>(n_tokens * rows).unwrap();
                gpu.linear(&dw, &dx, n_tokens, &mut q8, &mut out).unwrap();
                let got = gpu.download(&out, n_tokens * rows).unwrap();
                // Q8_1 activations (small batches of quantized types) cost about 1% of |w|·|x|.
                let small_q = ty.quantized() && n_tokens <= 8;
                let tol = if small_q { 0.05 } else { 1e-4 };
                close(
                    &got,
                    &matmul_ref(&deq, &x, rows, cols, n_tokens),
                    tol,
                    &what,
                );
                if small_q {
                    // Tighter: the same Q8_1 activations and run dots as the host mirror.
                    let per = ty.block_values() / 32;
                    let want: Vec<f32> = (0..n_tokens * rows)
                        .map(|i| {
                            let (t, r) = (i / rows, i % rows);
                            (0..cols / 32)
                                .map(|run| {
                                    let xs = x[t * cols + 32 * run..][..32].try_into().unwrap();
                                    let a = layout::Q8_1Block::quantize(xs);
                                    let blk =
                                        &bytes[r * row_bytes + run / per * ty.block_bytes()..];
                                    layout::dot_run32(ty, blk, run % per, &a).unwrap() as f64
                                })
                                .sum::<f64>() as f32
                        })
                        .collect();
                    close(&got, &want, 1e-4, &format!("{what} vs the host mirror"));
                }
            }
            let ids = gpu.upload(&[3u32, 0, 66]).unwrap();
            let mut rows_out = gpu.zeros::<f32>(3 * cols).unwrap();
            gpu.get_rows(&dw, &ids, 3, 2.0, &mut rows_out).unwrap();
            let got = gpu.download(&rows_out, 3 * cols).unwrap();
            for (i, r) in [3usize, 0, 66].into_iter().enumerate() {
                let want: Vec<f32> = deq[r * cols..][..cols].iter().map(|v| v * 2.0).collect();
                close(
                    &got[i * cols..][..cols],
                    &want,
                    0.0,
                    &format!("{}: {ty:?} get_rows {r}", on(gpu)),
                );
            }
        }
    }
}

#[test]
fn quantize_q8_1_matches_the_host_quantizer_bit_for_bit() {
    for gpu in devices("quantize_q8_1_matches_the_host_quantizer_bit_for_bit") {
        let mut x = values(32 * 10, 3);
        x[32..64].iter_mut().for_each(|v| *v = 0.0); // an all-zero block
        let dx = gpu.upload(&x).unwrap();
        let mut q = gpu.zeros::<u8>(10 * layout::Q8_1_BLOCK_BYTES).unwrap();
        gpu.quantize_q8_1(&dx, x.len(), &mut q).unwrap();
        let got = gpu.download(&q, 10 * layout::Q8_1_BLOCK_BYTES).unwrap();
        for (i, b) in got.chunks_exact(layout::Q8_1_BLOCK_BYTES).enumerate() {
            let want = layout::Q8_1Block::quantize(x[32 * i..][..32].try_into().unwrap());
            assert_eq!(
                u16::from_le_bytes([b[0], b[1]]),
                want.d,
                "{}: block {i} d",
                on(gpu)
            );
            assert_eq!(
                u16::from_le_bytes([b[2], b[3]]),
                want.s,
                "{}: block {i} s",
                on(gpu)
            );
            let qs: Vec<i8> = b[4..].iter().map(|&v| v as i8).collect();
            assert_eq!(qs, want.qs.to_vec(), "{}: block {i} qs", on(gpu));
        }
    }
}

#[test]
fn norm_elementwise_softmax_and_argmax_match_scalar_code() {
    for gpu in devices("norm_elementwise_softmax_and_argmax_match_scalar_code") {
        let d = on(gpu);
        let (n_rows, width) = (3usize, 640usize);
        let n = n_rows * width;
        let (x, w, up) = (values(n, 21), values(width, 22), values(n, 23));
        let (dx, dw, dup) = (
            gpu.upload(&x).unwrap(),
            gpu.upload(&w).unwrap(),
            gpu.upload(&up).unwrap(),
        );
        let mut y = gpu.zeros::<f32>(n).unwrap();
        gpu.rms_norm(&dx, Some(&dw), &mut y, n_rows, width, 1e-6)
            .unwrap();
        close(
            &gpu.download(&y, n).unwrap(),
            &rms_norm_ref(&x, &w, width, 1e-6),
            1e-5,
            &format!("{d}: rms_norm"),
        );
        let mut z = gpu.upload(&x).unwrap();
        gpu.rms_norm_in_place(&mut z, None, n_rows, width, 1e-6)
            .unwrap();
        let want = rms_norm_ref(&x, &vec![1.0; width], width, 1e-6);
        close(
            &gpu.download(&z, n).unwrap(),
            &want,
            1e-5,
            &format!("{d}: rms_norm in place"),
        );

        for gelu in [false, true] {
            let g: Vec<f32> = x.iter().map(|v| v * 30.0).collect(); // reaches GELU's clamps
            let mut dg = gpu.upload(&g).unwrap();
            gpu.glu(&mut dg, &dup, n, gelu).unwrap();
            close(
                &gpu.download(&dg, n).unwrap(),
                &glu_ref(&g, &up, gelu),
                1e-5,
                &format!("{d}: glu {gelu}"),
            );
        }

        let mut a = gpu.upload(&x).unwrap();
        gpu.add_scaled(&mut a, &dup, 0.5, n).unwrap();
        let want: Vec<f32> = x.iter().zip(&up).map(|(a, b)| a + 0.5 * b).collect();
        close(
            &gpu.download(&a, n).unwrap(),
            &want,
            0.0,
            &format!("{d}: add_scaled"),
        );
        gpu.scale(&mut a, 0.5, n).unwrap();
        let want: Vec<f32> = want.iter().map(|v| v * 0.5).collect();
        close(
            &gpu.download(&a, n).unwrap(),
            &want,
            0.0,
            &format!("{d}: scale"),
        );
        let mut b = gpu.upload(&x).unwrap();
        gpu.add_bias(&mut b, &dw, width, n).unwrap();
        let want: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v + w[i % width])
            .collect();
        close(
            &gpu.download(&b, n).unwrap(),
            &want,
            0.0,
            &format!("{d}: add_bias"),
        );
        let big: Vec<f32> = x.iter().map(|v| v * 100.0).collect();
        let mut c = gpu.upload(&big).unwrap();
        gpu.softcap(&mut c, 30.0, n).unwrap();
        let want: Vec<f32> = big.iter().map(|v| (v / 30.0).tanh() * 30.0).collect();
        close(
            &gpu.download(&c, n).unwrap(),
            &want,
            1e-6,
            &format!("{d}: softcap"),
        );
        let mut cols = gpu.zeros::<f32>(n_rows * 200).unwrap();
        gpu.copy_cols(&dx, width, 100, &mut cols, 200, n_rows)
            .unwrap();
        let want: Vec<f32> = (0..n_rows)
            .flat_map(|r| x[r * width + 100..r * width + 300].to_vec())
            .collect();
        close(
            &gpu.download(&cols, n_rows * 200).unwrap(),
            &want,
            0.0,
            &format!("{d}: copy_cols"),
        );
        let mut picked = gpu.zeros::<f32>(2 * width).unwrap();
        gpu.copy_rows(&dx, &[2, 0], width, &mut picked).unwrap();
        let want = [&x[2 * width..3 * width], &x[..width]].concat();
        close(
            &gpu.download(&picked, 2 * width).unwrap(),
            &want,
            0.0,
            &format!("{d}: copy_rows"),
        );

        let mut s = gpu.upload(&x).unwrap();
        gpu.softmax(&mut s, n_rows, width).unwrap();
        close(
            &gpu.download(&s, n).unwrap(),
            &softmax_ref(&x, width),
            1e-5,
            &format!("{d}: softmax"),
        );

        let mut logits = x.clone();
        logits[width + 7] = 5.0;
        logits[width + 300] = 5.0; // a tie: the lower index wins
        let dl = gpu.upload(&logits).unwrap();
        let mut am = gpu.zeros::<u32>(n_rows).unwrap();
        gpu.argmax(&dl, n_rows, width, &mut am).unwrap();
        assert_eq!(
            gpu.download(&am, n_rows).unwrap(),
            argmax_ref(&logits, width),
            "{d}: argmax"
        );
    }
}

#[test]
fn rope_matches_the_reference_in_every_mode() {
    for gpu in devices("rope_matches_the_reference_in_every_mode") {
        let (n_heads, head_dim, n_tokens) = (4usize, 80usize, 3usize);
        let positions = [0i32, 17, 4000];
        let ff: Vec<f32> = (0..32).map(|i| 1.0 + i as f32 * 0.25).collect();
        let dff = gpu.upload(&ff).unwrap();
        let dpos = gpu.upload(&positions).unwrap();
        for (neox, ext_factor, use_ff) in [
            (0, 0.0, false),
            (1, 0.0, false),
            (1, 1.0, false),
            (0, 0.0, true),
        ] {
            let p = RopeParams {
                n_heads: n_heads as i32,
                head_dim: head_dim as i32,
                n_rot: 64, // partial rotation: dims 64..80 stay
                neox,
                base: 10_000.0,
                freq_scale: if ext_factor != 0.0 { 0.25 } else { 1.0 },
                ext_factor,
                attn_factor: 1.0,
                corr0: 3.0,
                corr1: 20.0,
            };
            let x = values(n_tokens * n_heads * head_dim, 31);
            let mut dx = gpu.upload(&x).unwrap();
            gpu.rope(&mut dx, &dpos, use_ff.then_some(&dff), &p, n_tokens)
                .unwrap();
            let mut want = x.clone();
            for (t, &pos) in positions.iter().enumerate() {
                let row = &mut want[t * n_heads * head_dim..][..n_heads * head_dim];
                rope_ref(row, head_dim, pos as usize, &p, use_ff.then_some(&ff[..]));
            }
            let what = format!("{}: rope neox={neox} ext={ext_factor} ff={use_ff}", on(gpu));
            close(&gpu.download(&dx, x.len()).unwrap(), &want, 2e-3, &what);
        }
    }
}

#[test]
fn kv_store_and_paged_attention_match_naive_attention() {
    for gpu in devices("kv_store_and_paged_attention_match_naive_attention") {
        let d = on(gpu);
        let (n_head, n_kv, hd, bs, n_blocks) = (8usize, 2usize, 96usize, 16usize, 8usize);
        let (row, n_slots) = (n_kv * hd, n_blocks * bs);
        // Fill the pools through kv_store: every slot once, in reverse order.
        let (kf32, vf32) = (values(n_slots * row, 41), values(n_slots * row, 42));
        let slots: Vec<i32> = (0..n_slots as i32).rev().collect();
        let (dk32, dv32, dslots) = (
            gpu.upload(&kf32).unwrap(),
            gpu.upload(&vf32).unwrap(),
            gpu.upload(&slots).unwrap(),
        );
        let mut dk = gpu.zeros::<u16>(n_slots * row).unwrap();
        let mut dv = gpu.zeros::<u16>(n_slots * row).unwrap();
        gpu.kv_store(&dk32, &dv32, &dslots, &mut dk, &mut dv, row, row, n_slots)
            .unwrap();
        let (k16, v16) = (
            gpu.download(&dk, n_slots * row).unwrap(),
            gpu.download(&dv, n_slots * row).unwrap(),
        );
        for (t, &s) in slots.iter().enumerate() {
            for i in 0..row {
                assert_eq!(
                    k16[s as usize * row + i],
                    f16::from_f32(kf32[t * row + i]).to_bits(),
                    "{d}: kv_store k"
                );
                assert_eq!(
                    v16[s as usize * row + i],
                    f16::from_f32(vf32[t * row + i]).to_bits(),
                    "{d}: kv_store v"
                );
            }
        }
        let back = |v: &[u16]| {
            v.iter()
                .map(|&b| f16::from_bits(b).to_f32())
                .collect::<Vec<f32>>()
        };
        let (kf, vf) = (back(&k16), back(&v16));
        // Two sequences with shuffled blocks; the second lost its first block to a window.
        let t_a: Vec<Option<u32>> = vec![Some(5), Some(2), Some(7)];
        let t_b: Vec<Option<u32>> = vec![None, Some(1), Some(4)];
        let queries = [(0usize, 40usize), (0, 3), (1, 35), (0, 0)];
        for (window, softcap) in [(0i32, 0f32), (20, 0.0), (0, 30.0), (5, 50.0)] {
            let tables: Vec<&[Option<u32>]> = queries
                .iter()
                .map(|&(s, _)| if s == 0 { &t_a[..] } else { &t_b[..] })
                .collect();
            let flat = paged::flatten_tables(&tables).unwrap();
            let q = values(queries.len() * n_head * hd, 43);
            let positions: Vec<usize> = queries.iter().map(|&(_, p)| p).collect();
            let pos: Vec<i32> = positions.iter().map(|&p| p as i32).collect();
            let p = AttnParams {
                n_head: n_head as i32,
                n_head_kv: n_kv as i32,
                head_dim_k: hd as i32,
                head_dim_v: hd as i32,
                block_size: bs as i32,
                max_blocks: flat.max_blocks as i32,
                k_row: row as i32,
                v_row: row as i32,
                kq_scale: 0.1,
                softcap,
                window,
            };
            let (dq, dt, dp) = (
                gpu.upload(&q).unwrap(),
                gpu.upload(&flat.entries).unwrap(),
                gpu.upload(&pos).unwrap(),
            );
            let mut out = gpu.zeros::<f32>(queries.len() * n_head * hd).unwrap();
            gpu.attention(&dq, &dk, &dv, &dt, &dp, &mut out, &p, queries.len())
                .unwrap();
            let got = gpu.download(&out, queries.len() * n_head * hd).unwrap();
            let want = attention_ref(&q, &kf, &vf, &flat, &positions, &p);
            close(
                &got,
                &want,
                1e-4,
                &format!("{d}: attention window {window} softcap {softcap}"),
            );
        }
    }
}

#[test]
fn short_buffers_are_errors_not_launches() {
    for gpu in devices("short_buffers_are_errors_not_launches") {
        let x = gpu.upload(&[0f32; 64]).unwrap();
        let mut y = gpu.zeros::<f32>(64).unwrap();
        let e = gpu.rms_norm(&x, None, &mut y, 2, 32, 1e-6);
        assert!(e.is_ok(), "{}", on(gpu));
        let e = gpu.rms_norm(&x, None, &mut y, 2, 64, 1e-6).unwrap_err();
        assert!(e.to_string().contains("rms_norm"), "{e}");
        let e = gpu
            .quantize_q8_1(&x, 48, &mut gpu.zeros::<u8>(100).unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("whole blocks"), "{e}");
    }
}
