//! Every CUDA kernel module compiles to PTX with NVRTC (loaded through cudarc's dynamic
//! loading) for Ampere (sm_80), Jetson Orin (sm_87) and Hopper (sm_90), and defines every
//! kernel the host loads from it. Needs no GPU: only the NVRTC library, which
//! `pip install nvidia-cuda-nvrtc-cu12` provides; without it the test says SKIPPED and passes.

mod common;

use nanorun_cuda::compile::{self, Arch};
use nanorun_cuda::source::MODULES;

#[test]
fn every_module_compiles_to_ptx_for_every_target() {
    if !common::nvrtc_or_skip("every_module_compiles_to_ptx_for_every_target") {
        return;
    }
    let mut compiled = 0;
    for arch in [Arch::SM80, Arch::SM87, Arch::SM90] {
        for m in MODULES {
            let ptx = compile::compile_ptx(m, arch).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                ptx.contains(&format!(".target sm_{}{}", arch.major, arch.minor)),
                "{}: PTX for another target",
                m.name
            );
            let entries = compile::ptx_entries(&ptx);
            for k in m.kernels {
                assert!(
                    entries.iter().any(|e| e == k),
                    "{}.cu for {}: kernel {k} missing from the PTX (has {entries:?})",
                    m.name,
                    arch.compute_name()
                );
            }
            assert_eq!(
                entries.len(),
                m.kernels.len(),
                "{}.cu defines kernels the host does not list: {entries:?}",
                m.name
            );
            compiled += 1;
        }
    }
    println!("compiled {compiled} module/target pairs to PTX");
}

#[test]
fn a_broken_source_is_a_compile_error_with_the_log() {
    if !common::nvrtc_or_skip("a_broken_source_is_a_compile_error_with_the_log") {
        return;
    }
    let bad = nanorun_cuda::source::ModuleSource {
        name: "broken",
        body: "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }",
        kernels: &["k"],
    };
    let err = compile::compile_ptx(&bad, Arch::SM80).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("broken") && msg.contains("undefined_name"),
        "{msg}"
    );
}

#[test]
fn the_ptx_cache_compiles_once_then_reads_the_file() {
    if !common::nvrtc_or_skip("the_ptx_cache_compiles_once_then_reads_the_file") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nanorun-ptx-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let m = &MODULES[0];
    let first = compile::load_or_compile(m, Arch::SM87, Some(&dir)).unwrap();
    let key = compile::cache_key(&m.full_source(), Arch::SM87);
    let file = compile::cache_file(&dir, m.name, Arch::SM87, key);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first);
    // A cached file is what the next load returns (proved by planting a marker in it).
    let planted = format!("{first}\n// planted\n");
    std::fs::write(&file, &planted).unwrap();
    assert_eq!(
        compile::load_or_compile(m, Arch::SM87, Some(&dir)).unwrap(),
        planted
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The byte size of every argument each launch in `device.rs` / `device_ops.rs` pushes, in
/// order (pointers and u64 8, i32/f32 4, parameter structs their size).
fn launch_arg_sizes(kernel: &str) -> Vec<usize> {
    use nanorun_cuda::device::{AttnParams, RopeParams};
    let rope = std::mem::size_of::<RopeParams>();
    let attn = std::mem::size_of::<AttnParams>();
    if kernel.starts_with("mmv_") {
        return vec![8, 8, 4, 4, 8, 8];
    }
    if kernel.starts_with("mm_") {
        return vec![8, 8, 4, 4, 8, 4, 8];
    }
    if kernel.starts_with("get_rows_") {
        return vec![8, 8, 4, 8, 4, 8];
    }
    match kernel {
        "quantize_q8_1" => vec![8, 8, 4],
        "rms_norm" => vec![8, 8, 8, 4, 4],
        "add_scaled" | "add_bias" => vec![8, 8, 4, 4],
        "scale" | "softcap" => vec![8, 4, 4],
        "copy_cols" => vec![8, 4, 4, 8, 4, 4],
        "swiglu" | "geglu" => vec![8, 8, 4],
        "rope" => vec![8, 8, 8, rope],
        "paged_attention" => vec![8, 8, 8, 8, 8, 8, attn],
        "kv_store" => vec![8, 8, 8, 8, 8, 4, 4],
        "softmax" => vec![8, 4],
        "argmax" => vec![8, 4, 8],
        other => panic!("no launch signature for kernel {other}"),
    }
}

#[test]
fn every_launch_passes_the_parameters_the_compiled_kernel_declares() {
    if !common::nvrtc_or_skip("every_launch_passes_the_parameters_the_compiled_kernel_declares") {
        return;
    }
    for m in MODULES {
        let ptx = compile::compile_ptx(m, Arch::SM87).unwrap_or_else(|e| panic!("{e}"));
        for k in m.kernels {
            let declared = compile::ptx_param_sizes(&ptx, k)
                .unwrap_or_else(|| panic!("{}.cu: no parameter list for {k}", m.name));
            assert_eq!(declared, launch_arg_sizes(k), "{}.cu: {k}", m.name);
        }
    }
}
