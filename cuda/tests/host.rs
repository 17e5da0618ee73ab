//! Host-side logic of the CUDA backend, tested without a device: the kernels' element index
//! math (mirrored in `layout::dequant_element`) against the CPU dequantizers, the upload
//! layout of GGUF tensors, launch geometry, the paged-KV table and slot arithmetic, PTX cache
//! keys, and the errors a machine without CUDA gets.

use nanorun_cuda::compile::{self, Arch};
use nanorun_cuda::geometry::{self, ATT_WARPS, MMV_ROWS};
use nanorun_cuda::layout::{self, WeightType};
use nanorun_cuda::paged;
use nanorun_cuda::{probe, CudaError};
use nanorun_formats::GgmlType;
use nanorun_kernels::{Isa, Kernels};

/// Deterministic values with a spread of magnitudes and signs (xorshift).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            u * if i % 37 == 0 { 8.0 } else { 1.0 }
        })
        .collect()
}

/// One row of `cols` values of `ty`, quantized by the CPU reference quantizer.
fn quantized_row(ty: WeightType, cols: usize, seed: u64) -> Vec<u8> {
    let x = values(cols, seed);
    let bytes = cols / ty.block_values() * ty.block_bytes();
    let mut out = vec![0u8; bytes];
    Kernels::for_isa(Isa::Scalar)
        .unwrap()
        .quantize_row(ty.ggml(), &x, &mut out)
        .unwrap();
    out
}

#[test]
fn the_kernels_element_math_matches_the_cpu_dequantizers_bit_for_bit() {
    let k = Kernels::for_isa(Isa::Scalar).unwrap();
    for ty in WeightType::ALL {
        let cols = 1024;
        for seed in 1..4u64 {
            let row = quantized_row(ty, cols, seed * 7919);
            let mut cpu = vec![0f32; cols];
            k.dequantize_row(ty.ggml(), &row, &mut cpu).unwrap();
            for (c, &want) in cpu.iter().enumerate() {
                let got = layout::dequant_row_element(ty, &row, c);
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{ty:?} seed {seed} col {c}: kernel math {got}, CPU {want}"
                );
            }
        }
    }
}

#[test]
fn the_kernels_run_dot_products_match_the_dequantized_dot() {
    // dot32 of every run of every quantized type against Σ dequant(w)·(q·d) in f64: checks
    // which quants and which scales each run pairs (an index slip is off by far more).
    for ty in WeightType::ALL.into_iter().filter(|t| t.quantized()) {
        let cols = 512;
        let row = quantized_row(ty, cols, 4242);
        let x = values(cols, 99);
        for run in 0..cols / 32 {
            let xs: [f32; 32] = x[32 * run..32 * run + 32].try_into().unwrap();
            let a = layout::Q8_1Block::quantize(&xs);
            let d = half::f16::from_bits(a.d).to_f32() as f64;
            let want: f64 = (0..32)
                .map(|l| {
                    layout::dequant_row_element(ty, &row, 32 * run + l) as f64 * a.qs[l] as f64 * d
                })
                .sum();
            let per = ty.block_values() / 32;
            let block = &row[run / per * ty.block_bytes()..];
            let got = layout::dot_run32(ty, block, run % per, &a).unwrap() as f64;
            // s is rounded to f16, the rest is f32: allow that, relative to the terms' size.
            let scale: f64 = (0..32)
                .map(|l| {
                    (layout::dequant_row_element(ty, &row, 32 * run + l) as f64
                        * a.qs[l] as f64
                        * d)
                        .abs()
                })
                .sum::<f64>()
                + 1e-6;
            assert!(
                (got - want).abs() <= 2e-3 * scale,
                "{ty:?} run {run}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn q8_1_activations_match_the_cpu_activation_quantizer() {
    let x = values(32 * 8, 7);
    let mut cpu = vec![nanorun_kernels::quant::BlockQ8_1::default(); 8];
    nanorun_kernels::quant::q8_1::quantize_row_act(&x, &mut cpu);
    for (i, c) in cpu.iter().enumerate() {
        let a = layout::Q8_1Block::quantize(x[32 * i..32 * i + 32].try_into().unwrap());
        assert_eq!(
            (a.d, a.s, a.qs),
            (c.d.to_bits(), c.s.to_bits(), c.qs),
            "block {i}"
        );
    }
}

#[test]
fn weight_types_map_to_ggml_and_back_with_ggmls_block_sizes() {
    for ty in WeightType::ALL {
        let g = ty.ggml();
        assert_eq!(WeightType::from_ggml(g), Some(ty));
        assert_eq!(g.block_size(), ty.block_values(), "{ty:?}");
        assert_eq!(g.block_bytes(), ty.block_bytes(), "{ty:?}");
    }
    for g in [
        GgmlType::Q4_1,
        GgmlType::Q5_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::BF16,
    ] {
        assert_eq!(WeightType::from_ggml(g), None, "{g:?}");
    }
}

#[test]
fn matrix_layout_gives_row_strides_and_checks_the_file_size() {
    let cases = [
        (GgmlType::F32, 64, 4 * 64),
        (GgmlType::F16, 64, 2 * 64),
        (GgmlType::Q4_0, 512, 16 * 18),
        (GgmlType::Q5_0, 512, 16 * 22),
        (GgmlType::Q8_0, 512, 16 * 34),
        (GgmlType::Q4_K, 512, 2 * 144),
        (GgmlType::Q5_K, 512, 2 * 176),
        (GgmlType::Q6_K, 512, 2 * 210),
    ];
    for (ty, cols, row_bytes) in cases {
        let rows = 3;
        let l = layout::matrix_layout("w", ty, rows, cols, rows * row_bytes).unwrap();
        assert_eq!(
            (l.row_bytes, l.bytes, l.rows, l.cols),
            (row_bytes, rows * row_bytes, rows, cols)
        );
        let e = layout::matrix_layout("blk.0.w", ty, rows, cols, rows * row_bytes - 1).unwrap_err();
        assert!(
            matches!(e, CudaError::Shape(_)) && e.to_string().contains("blk.0.w"),
            "{e}"
        );
    }
    // Rows that are not whole blocks.
    let e = layout::matrix_layout("w", GgmlType::Q4_K, 1, 300, 0).unwrap_err();
    assert!(e.to_string().contains("300"), "{e}");
    // A type without kernels names the tensor, the type and what is supported.
    let e = layout::matrix_layout("blk.1.ffn_up.weight", GgmlType::Q4_1, 2, 64, 2 * 2 * 20)
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("blk.1.ffn_up.weight") && msg.contains("Q4_1") && msg.contains("Q6_K"),
        "{msg}"
    );
    assert_eq!(layout::q8_1_bytes(3, 256), 3 * 8 * 36);
}

#[test]
fn launch_geometry_covers_every_row_and_token_once() {
    for rows in [1usize, 3, 4, 5, 640, 1000, 262_144] {
        for t in [1usize, 2, 7, 8] {
            let l = geometry::matvec(rows, t).unwrap();
            assert_eq!(l.block, (32, MMV_ROWS, 1));
            let gx = l.grid.0 as usize * MMV_ROWS as usize;
            assert!(gx >= rows && gx - rows < MMV_ROWS as usize, "{rows}");
            assert_eq!(l.grid.1 as usize, t);
        }
        for t in [9usize, 32, 33, 512] {
            let l = geometry::matmul(rows, t).unwrap();
            assert_eq!(l.grid.0 as usize, rows.div_ceil(32));
            assert_eq!(l.grid.1 as usize, t.div_ceil(32));
            // Each thread covers 4 tokens of its tile: 8 thread rows × 4 = 32.
            assert_eq!(l.block.1 * 4, geometry::MM_TILE);
        }
    }
    assert_eq!(geometry::quantize_q8_1(9).unwrap().grid, (3, 1, 1));
    assert_eq!(geometry::elementwise(257).unwrap().grid, (2, 1, 1));
    assert_eq!(geometry::rope(8, 5, 64).unwrap().block, (32, 1, 1));
    assert_eq!(geometry::rope(8, 5, 512).unwrap().block, (128, 1, 1));
    let a = geometry::attention(8, 2, 256, 256, 17).unwrap();
    assert_eq!((a.grid, a.block), ((8, 17, 1), (32, ATT_WARPS, 1)));
    assert_eq!(a.config().block_dim, (32, ATT_WARPS, 1));
    // What the kernels cannot take is an error, not a bad launch.
    assert!(geometry::matvec(10, 70_000).is_err());
    assert!(geometry::matvec(0, 1).is_err());
    assert!(geometry::rope(8, 1, 7).is_err());
    assert!(geometry::attention(8, 3, 64, 64, 1).is_err());
    assert!(geometry::attention(8, 2, 512, 64, 1).is_err());
}

#[test]
fn flattened_block_tables_give_the_engines_slots() {
    let bs = 16;
    let a: Vec<Option<u32>> = vec![Some(3), Some(0), Some(7)];
    let b: Vec<Option<u32>> = vec![None, Some(5)];
    let flat = paged::flatten_tables(&[&a, &a, &b]).unwrap();
    assert_eq!(flat.max_blocks, 3);
    assert_eq!(flat.entries, vec![3, 0, 7, 3, 0, 7, -1, 5, -1]);
    let row = |t: usize| &flat.entries[t * flat.max_blocks..(t + 1) * flat.max_blocks];
    // The engine's KvCache::slot: block · block_size + pos % block_size.
    for pos in 0..48 {
        let want = a[pos / bs].map(|blk| blk as usize * bs + pos % bs);
        assert_eq!(paged::slot(row(0), bs, pos), want, "pos {pos}");
    }
    assert_eq!(paged::slot(row(2), bs, 3), None);
    assert_eq!(paged::slot(row(2), bs, 17), Some(5 * 16 + 1));
    assert_eq!(paged::slot(row(2), bs, 40), None);
    assert!(paged::flatten_tables(&[&[Some(u32::MAX)]]).is_none());
    assert_eq!(paged::flatten_tables(&[]).unwrap().max_blocks, 1);
}

#[test]
fn the_attention_kernels_key_walk_visits_each_visible_position_once() {
    for pos in [0usize, 1, 5, 31, 100] {
        for window in [0usize, 1, 4, 512] {
            let vis = paged::visible(pos, window);
            // The CPU attention's window: lo = (pos + 1).saturating_sub(w).
            let lo = if window > 0 {
                (pos + 1).saturating_sub(window)
            } else {
                0
            };
            assert_eq!(vis, lo..=pos);
            // paged_attention: warp w takes lo + w, lo + w + ATT_WARPS, ... up to pos.
            let mut seen = vec![0; pos + 1];
            for w in 0..ATT_WARPS as usize {
                let mut j = lo + w;
                while j <= pos {
                    seen[j] += 1;
                    j += ATT_WARPS as usize;
                }
            }
            for (j, &n) in seen.iter().enumerate() {
                assert_eq!(
                    n,
                    usize::from(vis.contains(&j)),
                    "pos {pos} window {window} j {j}"
                );
            }
        }
    }
}

#[test]
fn ptx_cache_keys_change_with_source_and_target_only() {
    let m = &nanorun_cuda::source::MODULES[0];
    let src = m.full_source();
    let k80 = compile::cache_key(&src, Arch::SM80);
    assert_eq!(k80, compile::cache_key(&src, Arch::SM80));
    assert_ne!(k80, compile::cache_key(&src, Arch::SM87));
    assert_ne!(k80, compile::cache_key(&format!("{src} "), Arch::SM80));
    // Part boundaries count: moving a byte between parts changes the hash.
    assert_ne!(
        compile::fnv1a64(&[b"ab", b"c"]),
        compile::fnv1a64(&[b"a", b"bc"])
    );
    let f = compile::cache_file(std::path::Path::new("/c"), "matvec", Arch::SM87, 0xabc);
    assert_eq!(
        f,
        std::path::Path::new("/c/matvec-compute_87-0000000000000abc.ptx")
    );
    assert_eq!(Arch::SM90.compute_name(), "compute_90");
}

#[test]
fn every_kernel_the_host_launches_is_listed_once_in_a_module() {
    let mut all: Vec<&str> = nanorun_cuda::source::MODULES
        .iter()
        .flat_map(|m| m.kernels.iter().copied())
        .collect();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "a kernel name appears twice");
    for ty in WeightType::ALL {
        for prefix in ["mmv", "mm", "get_rows"] {
            let name = format!("{prefix}_{}", ty.suffix());
            assert!(nanorun_cuda::source::module_of(&name).is_some(), "{name}");
        }
    }
}

#[test]
fn ptx_entries_reads_kernel_names() {
    let ptx = ".version 8.8\n.target sm_87\n.visible .entry mmv_q4_0(\n\t.param .u64 a\n)\n\
               .entry local_k(\n)\n.func helper(\n)\n";
    assert_eq!(compile::ptx_entries(ptx), vec!["mmv_q4_0", "local_k"]);
    let ptx = ".visible .entry rope(\n\t.param .u64 rope_param_0,\n\t.param .u32 rope_param_1,\n\t\
               .param .align 4 .b8 rope_param_2[40]\n)\n.visible .entry rope_b(\n)\n";
    assert_eq!(compile::ptx_param_sizes(ptx, "rope"), Some(vec![8, 4, 40]));
    assert_eq!(compile::ptx_param_sizes(ptx, "rope_b"), Some(vec![]));
    assert_eq!(compile::ptx_param_sizes(ptx, "ro"), None);
}

#[test]
fn a_bad_nvrtc_path_is_an_error_that_names_it() {
    let e = probe::preload_nvrtc(std::path::Path::new("/nonexistent/libnvrtc.so.12")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("/nonexistent/libnvrtc.so.12") && msg.contains("NANORUN_NVRTC_LIB"),
        "{msg}"
    );
}

#[test]
fn without_a_driver_opening_the_gpu_is_an_error_not_a_panic() {
    match probe::ensure_driver() {
        Ok(()) => {
            eprintln!("SKIPPED: the CUDA driver is present; its absence cannot be tested here")
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("libcuda.so.1") && msg.contains("driver"),
                "{msg}"
            );
            let gpu = nanorun_cuda::Gpu::new(0);
            let msg = gpu.err().expect("no driver, yet a GPU opened").to_string();
            assert!(msg.contains("CUDA driver library"), "{msg}");
            assert!(probe::available().is_err());
        }
    }
}
