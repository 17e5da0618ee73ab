//! Every CUDA kernel against a scalar CPU reference, on a real device. Where there is no CUDA
//! device (or no driver or NVRTC) each test prints `SKIPPED: no CUDA device (<why>): <test>` and
//! passes: these tests have not run on a GPU yet (see docs/cuda.md).

mod common;

use half::f16;
use nanorun_cuda::device::{AttnParams, RopeParams};
use nanorun_cuda::layout::{self, WeightType};
use nanorun_cuda::{paged, Gpu};
use nanorun_kernels::{Isa, Kernels};

fn gpu_or_skip(test: &str) -> Option<Gpu> {
    if let Some(lib) = common::nvrtc_library() {
        let _ = nanorun_cuda::probe::preload_nvrtc(&lib);
    }
    match Gpu::with_cache(0, None) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("SKIPPED: no CUDA device ({e}): {test}");
            None
        }
    }
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn linear_matches_the_dequantized_product_for_every_type() {
    let Some(gpu) = gpu_or_skip("linear_matches_the_dequantized_product_for_every_type") else {
        return;
    };
    let k = Kernels::for_isa(Isa::Scalar).unwrap();
    let (rows, cols) = (67, 512);
    for ty in WeightType::ALL {
        let w = values(rows * cols, 11);
        let row_bytes = cols / ty.block_values() * ty.block_bytes();
        let mut bytes = vec![0u8; rows * row_bytes];
        for r in 0..rows {
            k.quantize_row(
                ty.ggml(),
                &w[r * cols..][..cols],
                &mut bytes[r * row_bytes..][..row_bytes],
            )
            .unwrap();
        }
        let mut deq = vec![0f32; rows * cols];
        k.dequantize_row(ty.ggml(), &bytes, &mut deq).unwrap();
        let dw = gpu
            .upload_weight("w", ty.ggml(), rows, cols, &bytes)
            .unwrap();
        for n_tokens in [1usize, 3, 40] {
            let x = values(n_tokens * cols, 5);
            let want: Vec<f32> = (0..n_tokens * rows)
                .map(|i| {
                    let (t, r) = (i / rows, i % rows);
                    (0..cols)
                        .map(|c| deq[r * cols + c] as f64 * x[t * cols + c] as f64)
                        .sum::<f64>() as f32
                })
                .collect();
            let dx = gpu.upload(&x).unwrap();
            let mut q8 = gpu.zeros::<u8>(layout::q8_1_bytes(n_tokens, cols)).unwrap();
            let mut out = gpu.zeros::<f32>(n_tokens * rows).unwrap();
            gpu.linear(&dw, &dx, n_tokens, &mut q8, &mut out).unwrap();
            let got = gpu.download(&out, n_tokens * rows).unwrap();
            // Q8_1 activations (small batches of quantized types) cost about 1% of |w|·|x|.
            let tol = if ty.quantized() && n_tokens <= 8 {
                0.05
            } else {
                1e-3
            };
            close(&got, &want, tol, &format!("{ty:?} x {n_tokens} tokens"));
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
                &format!("{ty:?} get_rows {r}"),
            );
        }
    }
}

#[test]
fn quantize_q8_1_matches_the_host_quantizer() {
    let Some(gpu) = gpu_or_skip("quantize_q8_1_matches_the_host_quantizer") else {
        return;
    };
    let x = values(32 * 10, 3);
    let dx = gpu.upload(&x).unwrap();
    let mut q = gpu.zeros::<u8>(10 * layout::Q8_1_BLOCK_BYTES).unwrap();
    gpu.quantize_q8_1(&dx, x.len(), &mut q).unwrap();
    let got = gpu.download(&q, 10 * layout::Q8_1_BLOCK_BYTES).unwrap();
    for (i, b) in got.chunks_exact(layout::Q8_1_BLOCK_BYTES).enumerate() {
        let want = layout::Q8_1Block::quantize(x[32 * i..][..32].try_into().unwrap());
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), want.d, "block {i} d");
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), want.s, "block {i} s");
        let qs: Vec<i8> = b[4..].iter().map(|&v| v as i8).collect();
        assert_eq!(qs, want.qs.to_vec(), "block {i} qs");
    }
}

#[test]
fn norms_activations_softmax_and_argmax_match_scalar_code() {
    let Some(gpu) = gpu_or_skip("norms_activations_softmax_and_argmax_match_scalar_code") else {
        return;
    };
    let (n_rows, width) = (3, 640);
    let x = values(n_rows * width, 21);
    let w = values(width, 22);
    let dx = gpu.upload(&x).unwrap();
    let dw = gpu.upload(&w).unwrap();
    let mut y = gpu.zeros::<f32>(n_rows * width).unwrap();
    gpu.rms_norm(&dx, Some(&dw), &mut y, n_rows, width, 1e-6)
        .unwrap();
    let got = gpu.download(&y, n_rows * width).unwrap();
    let mut want = vec![0f32; n_rows * width];
    for r in 0..n_rows {
        let xr = &x[r * width..][..width];
        let ms = xr.iter().map(|v| (v * v) as f64).sum::<f64>() / width as f64;
        let s = 1.0 / (ms as f32 + 1e-6).sqrt();
        for i in 0..width {
            want[r * width + i] = xr[i] * s * w[i];
        }
    }
    close(&got, &want, 1e-5, "rms_norm");

    let up = values(width, 23);
    let dup = gpu.upload(&up).unwrap();
    for gelu in [false, true] {
        let mut g = gpu.upload(&x[..width]).unwrap();
        gpu.glu(&mut g, &dup, width, gelu).unwrap();
        let got = gpu.download(&g, width).unwrap();
        let want: Vec<f32> = x[..width]
            .iter()
            .zip(&up)
            .map(|(&v, &u)| {
                let a = if gelu {
                    0.5 * v * (1.0 + (0.797_884_6 * v * (1.0 + 0.044715 * v * v)).tanh())
                } else {
                    v / (1.0 + (-v).exp())
                };
                a * u
            })
            .collect();
        close(&got, &want, 1e-5, if gelu { "geglu" } else { "swiglu" });
    }

    let mut s = gpu.upload(&x).unwrap();
    gpu.softmax(&mut s, n_rows, width).unwrap();
    let got = gpu.download(&s, n_rows * width).unwrap();
    for r in 0..n_rows {
        let xr = &x[r * width..][..width];
        let m = xr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let z: f64 = xr.iter().map(|&v| ((v - m) as f64).exp()).sum();
        let want: Vec<f32> = xr
            .iter()
            .map(|&v| (((v - m) as f64).exp() / z) as f32)
            .collect();
        close(&got[r * width..][..width], &want, 1e-5, "softmax");
    }

    let mut logits = x.clone();
    logits[width + 7] = 5.0;
    logits[width + 300] = 5.0; // a tie: the lower index wins
    let dl = gpu.upload(&logits).unwrap();
    let mut am = gpu.zeros::<u32>(n_rows).unwrap();
    gpu.argmax(&dl, n_rows, width, &mut am).unwrap();
    let got = gpu.download(&am, n_rows).unwrap();
    for r in 0..n_rows {
        let xr = &logits[r * width..][..width];
        let want = (0..width).fold(0, |b, i| if xr[i] > xr[b] { i } else { b });
        assert_eq!(got[r] as usize, want, "argmax row {r}");
    }
}

/// The engine's RoPE (`ops::Rope::cache` + `apply`) without YaRN, in f64.
fn rope_ref(x: &mut [f32], head_dim: usize, n_rot: usize, pos: usize, base: f64, neox: bool) {
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..n_rot / 2 {
            let theta = pos as f64 * base.powf(-2.0 * i as f64 / n_rot as f64);
            let (c, s) = (theta.cos(), theta.sin());
            let (i0, i1) = if neox {
                (i, i + n_rot / 2)
            } else {
                (2 * i, 2 * i + 1)
            };
            let (a, b) = (head[i0] as f64, head[i1] as f64);
            head[i0] = (a * c - b * s) as f32;
            head[i1] = (a * s + b * c) as f32;
        }
    }
}

#[test]
fn rope_matches_the_reference_in_both_modes() {
    let Some(gpu) = gpu_or_skip("rope_matches_the_reference_in_both_modes") else {
        return;
    };
    let (n_heads, head_dim, n_rot, n_tokens) = (4, 64, 64, 3);
    let positions = [0i32, 17, 4000];
    for neox in [false, true] {
        let x = values(n_tokens * n_heads * head_dim, 31);
        let mut dx = gpu.upload(&x).unwrap();
        let dpos = gpu.upload(&positions).unwrap();
        let p = RopeParams {
            n_heads: n_heads as i32,
            head_dim: head_dim as i32,
            n_rot: n_rot as i32,
            neox: neox as i32,
            base: 10_000.0,
            freq_scale: 1.0,
            ext_factor: 0.0,
            attn_factor: 1.0,
            corr0: 0.0,
            corr1: 0.0,
        };
        gpu.rope(&mut dx, &dpos, None, &p, n_tokens).unwrap();
        let got = gpu.download(&dx, x.len()).unwrap();
        let mut want = x.clone();
        for (t, &pos) in positions.iter().enumerate() {
            let row = &mut want[t * n_heads * head_dim..][..n_heads * head_dim];
            rope_ref(row, head_dim, n_rot, pos as usize, 10_000.0, neox);
        }
        close(
            &got,
            &want,
            2e-3,
            if neox { "rope neox" } else { "rope normal" },
        );
    }
}

#[test]
fn paged_attention_matches_naive_attention() {
    let Some(gpu) = gpu_or_skip("paged_attention_matches_naive_attention") else {
        return;
    };
    let (n_head, n_kv, hd, bs) = (4usize, 2usize, 64usize, 16usize);
    let row = n_kv * hd;
    let n_blocks = 8;
    let k_pool_f: Vec<f32> = values(n_blocks * bs * row, 41);
    let v_pool_f: Vec<f32> = values(n_blocks * bs * row, 42);
    let to16 = |v: &[f32]| {
        v.iter()
            .map(|&x| f16::from_f32(x).to_bits())
            .collect::<Vec<u16>>()
    };
    let k16 = to16(&k_pool_f);
    let v16 = to16(&v_pool_f);
    let back = |v: &[u16]| {
        v.iter()
            .map(|&b| f16::from_bits(b).to_f32())
            .collect::<Vec<f32>>()
    };
    let (kf, vf) = (back(&k16), back(&v16));
    let dk = gpu.upload(&k16).unwrap();
    let dv = gpu.upload(&v16).unwrap();
    // Two sequences with shuffled blocks; the second lost its first block to a window.
    let t_a: Vec<Option<u32>> = vec![Some(5), Some(2), Some(7)];
    let t_b: Vec<Option<u32>> = vec![None, Some(1), Some(4)];
    let queries = [(0usize, 40usize), (0, 3), (1, 35)];
    for (window, softcap) in [(0usize, 0f32), (20, 0.0), (0, 30.0)] {
        let tables: Vec<&[Option<u32>]> = queries
            .iter()
            .map(|&(s, _)| if s == 0 { &t_a[..] } else { &t_b[..] })
            .collect();
        let flat = paged::flatten_tables(&tables).unwrap();
        let q = values(queries.len() * n_head * hd, 43);
        let pos: Vec<i32> = queries.iter().map(|&(_, p)| p as i32).collect();
        let p = AttnParams {
            n_head: n_head as i32,
            n_head_kv: n_kv as i32,
            head_dim_k: hd as i32,
            head_dim_v: hd as i32,
            block_size: bs as i32,
            max_blocks: flat.max_blocks as i32,
            k_row: row as i32,
            v_row: row as i32,
            kq_scale: 0.125,
            softcap,
            window: window as i32,
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
        let mut want = vec![0f32; got.len()];
        for (t, &(_, qpos)) in queries.iter().enumerate() {
            let trow = &flat.entries[t * flat.max_blocks..][..flat.max_blocks];
            for h in 0..n_head {
                let kvh = h / (n_head / n_kv);
                let qh: Vec<f64> = q[(t * n_head + h) * hd..][..hd]
                    .iter()
                    .map(|&v| f16::from_f32(v).to_f32() as f64)
                    .collect();
                let mut scores = Vec::new();
                for j in paged::visible(qpos, window) {
                    if let Some(slot) = paged::slot(trow, bs, j) {
                        let kr = &kf[slot * row + kvh * hd..][..hd];
                        let mut s: f64 = qh.iter().zip(kr).map(|(a, &b)| a * b as f64).sum();
                        if softcap > 0.0 {
                            s = (s / softcap as f64).tanh() * softcap as f64;
                        }
                        scores.push((slot, s * 0.125));
                    }
                }
                let m = scores.iter().fold(f64::NEG_INFINITY, |a, &(_, s)| a.max(s));
                let z: f64 = scores.iter().map(|&(_, s)| (s - m).exp()).sum();
                for d in 0..hd {
                    let v: f64 = scores
                        .iter()
                        .map(|&(slot, s)| (s - m).exp() / z * vf[slot * row + kvh * hd + d] as f64)
                        .sum();
                    want[(t * n_head + h) * hd + d] = v as f32;
                }
            }
        }
        close(
            &got,
            &want,
            1e-4,
            &format!("attention window {window} softcap {softcap}"),
        );
    }
}
