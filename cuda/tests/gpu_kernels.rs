//! Every CUDA kernel against a scalar CPU reference, on a real device. Where there is no CUDA
//! device (or no driver or NVRTC) each test prints `SKIPPED: no CUDA device (<why>): <test>`
//! and passes: these tests have not run on a GPU yet (see docs/cuda.md). The same checks run
//! on the CPU under an emulation of CUDA in `emulated.rs`.

mod common;

use common::{
    argmax_ref, attention_ref, close, glu_ref, matmul_ref, quantized_matrix, rms_norm_ref,
    rope_ref, softmax_ref, values,
};
use half::f16;
use nanorun_cuda::device::{AttnParams, RopeParams};
use nanorun_cuda::layout::{self, WeightType};
use nanorun_cuda::{paged, Gpu};

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

#[test]
fn linear_matches_the_dequantized_product_for_every_type() {
    let Some(gpu) = gpu_or_skip("linear_matches_the_dequantized_product_for_every_type") else {
        return;
    };
    let (rows, cols) = (67, 512);
    for ty in WeightType::ALL {
        let (bytes, deq) = quantized_matrix(ty, rows, cols, 11);
        let dw = gpu
            .upload_weight("w", ty.ggml(), rows, cols, &bytes)
            .unwrap();
        for n_tokens in [1usize, 3, 40] {
            let x = values(n_tokens * cols, 5);
            let want = matmul_ref(&deq, &x, rows, cols, n_tokens);
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
    close(&got, &rms_norm_ref(&x, &w, width, 1e-6), 1e-5, "rms_norm");

    let up = values(width, 23);
    let dup = gpu.upload(&up).unwrap();
    for gelu in [false, true] {
        let mut g = gpu.upload(&x[..width]).unwrap();
        gpu.glu(&mut g, &dup, width, gelu).unwrap();
        let got = gpu.download(&g, width).unwrap();
        close(&got, &glu_ref(&x[..width], &up, gelu), 1e-5, "glu");
    }

    let mut s = gpu.upload(&x).unwrap();
    gpu.softmax(&mut s, n_rows, width).unwrap();
    let got = gpu.download(&s, n_rows * width).unwrap();
    close(&got, &softmax_ref(&x, width), 1e-5, "softmax");

    let mut logits = x.clone();
    logits[width + 7] = 5.0;
    logits[width + 300] = 5.0; // a tie: the lower index wins
    let dl = gpu.upload(&logits).unwrap();
    let mut am = gpu.zeros::<u32>(n_rows).unwrap();
    gpu.argmax(&dl, n_rows, width, &mut am).unwrap();
    assert_eq!(
        gpu.download(&am, n_rows).unwrap(),
        argmax_ref(&logits, width)
    );
}

#[test]
fn rope_matches_the_reference_in_both_modes() {
    let Some(gpu) = gpu_or_skip("rope_matches_the_reference_in_both_modes") else {
        return;
    };
    let (n_heads, head_dim, n_tokens) = (4usize, 64usize, 3usize);
    let positions = [0i32, 17, 4000];
    for neox in [0, 1] {
        let p = RopeParams {
            n_heads: n_heads as i32,
            head_dim: head_dim as i32,
            n_rot: 64,
            neox,
            base: 10_000.0,
            freq_scale: 1.0,
            ext_factor: 0.0,
            attn_factor: 1.0,
            corr0: 0.0,
            corr1: 0.0,
        };
        let x = values(n_tokens * n_heads * head_dim, 31);
        let mut dx = gpu.upload(&x).unwrap();
        let dpos = gpu.upload(&positions).unwrap();
        gpu.rope(&mut dx, &dpos, None, &p, n_tokens).unwrap();
        let got = gpu.download(&dx, x.len()).unwrap();
        let mut want = x.clone();
        for (t, &pos) in positions.iter().enumerate() {
            rope_ref(
                &mut want[t * n_heads * head_dim..][..n_heads * head_dim],
                head_dim,
                pos as usize,
                &p,
                None,
            );
        }
        close(&got, &want, 2e-3, &format!("rope neox={neox}"));
    }
}

#[test]
fn paged_attention_matches_naive_attention() {
    let Some(gpu) = gpu_or_skip("paged_attention_matches_naive_attention") else {
        return;
    };
    let (n_head, n_kv, hd, bs, n_blocks) = (4usize, 2usize, 64usize, 16usize, 8usize);
    let row = n_kv * hd;
    let to16 = |v: &[f32]| {
        v.iter()
            .map(|&x| f16::from_f32(x).to_bits())
            .collect::<Vec<u16>>()
    };
    let back = |v: &[u16]| {
        v.iter()
            .map(|&b| f16::from_bits(b).to_f32())
            .collect::<Vec<f32>>()
    };
    let (k16, v16) = (
        to16(&values(n_blocks * bs * row, 41)),
        to16(&values(n_blocks * bs * row, 42)),
    );
    let (kf, vf) = (back(&k16), back(&v16));
    let (dk, dv) = (gpu.upload(&k16).unwrap(), gpu.upload(&v16).unwrap());
    // Two sequences with shuffled blocks; the second lost its first block to a window.
    let t_a: Vec<Option<u32>> = vec![Some(5), Some(2), Some(7)];
    let t_b: Vec<Option<u32>> = vec![None, Some(1), Some(4)];
    let queries = [(0usize, 40usize), (0, 3), (1, 35)];
    for (window, softcap) in [(0i32, 0f32), (20, 0.0), (0, 30.0)] {
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
            kq_scale: 0.125,
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
            &format!("attention window {window} softcap {softcap}"),
        );
    }
}
