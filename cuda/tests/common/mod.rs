//! Helpers shared by the CUDA crate's integration tests (each test binary uses some of them).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The NVRTC library to test with: `NANORUN_NVRTC_LIB` (a file or its directory), else the
/// one `pip install nvidia-cuda-nvrtc-cu12` put in python3's site-packages, else `None`.
pub fn nvrtc_library() -> Option<PathBuf> {
    if let Some(p) = nanorun_cuda::probe::nvrtc_env_path() {
        return p.is_file().then_some(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import nvidia.cuda_nvrtc as m, os; print(os.path.join(list(m.__path__)[0], 'lib'))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let lib = dir.join(nanorun_cuda::probe::NVRTC_SONAME);
    lib.is_file().then_some(lib)
}

/// Loads NVRTC for the test, or prints why the test skips and returns `false`.
pub fn nvrtc_or_skip(test: &str) -> bool {
    match nvrtc_library() {
        Some(lib) => {
            if let Err(e) = nanorun_cuda::probe::preload_nvrtc(&lib) {
                panic!("{test}: {e}");
            }
            true
        }
        None => {
            // Without NANORUN_NVRTC_LIB or the wheel, a system NVRTC may still be there.
            if nanorun_cuda::probe::ensure_nvrtc().is_ok() {
                return true;
            }
            eprintln!("SKIPPED: NVRTC not found (pip install nvidia-cuda-nvrtc-cu12): {test}");
            false
        }
    }
}

/// Deterministic values in [-0.5, 0.5) (xorshift).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
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

/// Asserts `|got − want| ≤ tol·(1 + |want|)` element-wise.
pub fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// A `rows × cols` matrix of `ty` quantized by the CPU reference quantizer, and its
/// dequantized values.
pub fn quantized_matrix(
    ty: nanorun_cuda::WeightType,
    rows: usize,
    cols: usize,
    seed: u64,
) -> (Vec<u8>, Vec<f32>) {
    let k = nanorun_kernels::Kernels::for_isa(nanorun_kernels::Isa::Scalar).unwrap();
    let w = values(rows * cols, seed);
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
    (bytes, deq)
}

/// `out[t][r] = Σ w[r][c]·x[t][c]` in f64.
pub fn matmul_ref(w: &[f32], x: &[f32], rows: usize, cols: usize, t: usize) -> Vec<f32> {
    (0..t * rows)
        .map(|i| {
            let (t, r) = (i / rows, i % rows);
            (0..cols)
                .map(|c| w[r * cols + c] as f64 * x[t * cols + c] as f64)
                .sum::<f64>() as f32
        })
        .collect()
}

/// RMSNorm of each `width` row times `w`.
pub fn rms_norm_ref(x: &[f32], w: &[f32], width: usize, eps: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (xr, o) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let ms = xr.iter().map(|v| (v * v) as f64).sum::<f64>() / width as f64;
        let s = 1.0 / (ms as f32 + eps).sqrt();
        for i in 0..width {
            o[i] = xr[i] * s * w[i];
        }
    }
    out
}

/// `act(g)·u`: SiLU, or tanh-GELU with ggml's clamps.
pub fn glu_ref(g: &[f32], u: &[f32], gelu: bool) -> Vec<f32> {
    g.iter()
        .zip(u)
        .map(|(&v, &u)| {
            let a = if !gelu {
                v / (1.0 + (-v).exp())
            } else if v <= -10.0 {
                0.0
            } else if v >= 10.0 {
                v
            } else {
                0.5 * v * (1.0 + (0.797_884_6 * v * (1.0 + 0.044715 * v * v)).tanh())
            };
            a * u
        })
        .collect()
}

/// Softmax of each `width` row, in f64.
pub fn softmax_ref(x: &[f32], width: usize) -> Vec<f32> {
    x.chunks_exact(width)
        .flat_map(|r| {
            let m = r.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let z: f64 = r.iter().map(|&v| ((v - m) as f64).exp()).sum();
            r.iter()
                .map(move |&v| (((v - m) as f64).exp() / z) as f32)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Index of the largest value of each `width` row (lowest among ties).
pub fn argmax_ref(x: &[f32], width: usize) -> Vec<u32> {
    x.chunks_exact(width)
        .map(|r| (0..width).fold(0, |b, i| if r[i] > r[b] { i } else { b }) as u32)
        .collect()
}

/// The engine's RoPE (`ops::Rope::cache` + `apply`, YaRN included) in f64, on the heads of
/// one token row at position `pos`.
pub fn rope_ref(
    x: &mut [f32],
    head_dim: usize,
    pos: usize,
    p: &nanorun_cuda::device::RopeParams,
    ff: Option<&[f32]>,
) {
    let n_rot = p.n_rot as usize;
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..n_rot / 2 {
            let extrap = pos as f64 * (p.base as f64).powf(-2.0 * i as f64 / n_rot as f64)
                / ff.map_or(1.0, |f| f[i] as f64);
            let interp = p.freq_scale as f64 * extrap;
            let (mut theta, mut mscale) = (interp, p.attn_factor as f64);
            if p.ext_factor != 0.0 {
                let y = (i as f64 - p.corr0 as f64) / (p.corr1 as f64 - p.corr0 as f64).max(0.001);
                let ramp = (1.0 - y.clamp(0.0, 1.0)) * p.ext_factor as f64;
                theta = interp * (1.0 - ramp) + extrap * ramp;
                mscale *= 1.0 + 0.1 * (1.0 / p.freq_scale as f64).ln();
            }
            let (c, s) = (theta.cos() * mscale, theta.sin() * mscale);
            let (i0, i1) = if p.neox != 0 {
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

/// Naive attention of query rows `q` (one per token) over an f16 pool read through flattened
/// block tables, in f64: what `paged_attention` must compute.
pub fn attention_ref(
    q: &[f32],
    k_pool: &[f32],
    v_pool: &[f32],
    flat: &nanorun_cuda::paged::FlatTables,
    positions: &[usize],
    p: &nanorun_cuda::device::AttnParams,
) -> Vec<f32> {
    let (n_head, n_kv) = (p.n_head as usize, p.n_head_kv as usize);
    let (hk, hv, bs) = (
        p.head_dim_k as usize,
        p.head_dim_v as usize,
        p.block_size as usize,
    );
    let (k_row, v_row) = (p.k_row as usize, p.v_row as usize);
    let mut out = vec![0f32; positions.len() * n_head * hv];
    for (t, &pos) in positions.iter().enumerate() {
        let row = &flat.entries[t * flat.max_blocks..][..flat.max_blocks];
        for h in 0..n_head {
            let kvh = h / (n_head / n_kv);
            let qh: Vec<f64> = q[(t * n_head + h) * hk..][..hk]
                .iter()
                .map(|&v| half::f16::from_f32(v).to_f32() as f64)
                .collect();
            let mut scores = Vec::new();
            for j in nanorun_cuda::paged::visible(pos, p.window.max(0) as usize) {
                if let Some(slot) = nanorun_cuda::paged::slot(row, bs, j) {
                    let kr = &k_pool[slot * k_row + kvh * hk..][..hk];
                    let mut s: f64 = qh.iter().zip(kr).map(|(a, &b)| a * b as f64).sum();
                    if p.softcap > 0.0 {
                        s = (s / p.softcap as f64).tanh() * p.softcap as f64;
                    }
                    scores.push((slot, s * p.kq_scale as f64));
                }
            }
            let m = scores.iter().fold(f64::NEG_INFINITY, |a, &(_, s)| a.max(s));
            let z: f64 = scores.iter().map(|&(_, s)| (s - m).exp()).sum();
            for d in 0..hv {
                let v: f64 = scores
                    .iter()
                    .map(|&(slot, s)| {
                        (s - m).exp() / z * v_pool[slot * v_row + kvh * hv + d] as f64
                    })
                    .sum();
                out[(t * n_head + h) * hv + d] = v as f32;
            }
        }
    }
    out
}
