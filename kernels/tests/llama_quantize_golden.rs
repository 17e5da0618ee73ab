//! Our reference quantizers against llama-quantize's output (no importance matrix): every
//! quantized tensor of the shared `llama-<TYPE>.gguf` fixtures, re-quantized from
//! `llama-F32.gguf` with `TypeTraits::quantize_row`, must be byte-identical.
//!
//! The fixtures live outside the repo (`NANORUN_FIXTURES`, default `../shared/fixtures` from the
//! workspace root); the test says so and passes when they are absent. The compact copy in
//! `tests/data` (see `quantize_golden_compact.rs`) runs everywhere.

use std::path::PathBuf;

use nanorun_formats::Gguf;
use nanorun_kernels::{type_traits, GgmlType, Isa, Kernels};

fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("NANORUN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    dir.join("llama-F32.gguf").exists().then_some(dir)
}

#[test]
fn reference_quantizers_reproduce_llama_quantize_byte_for_byte() {
    let Some(dir) = fixtures() else {
        eprintln!("skipping: shared fixtures not found (set NANORUN_FIXTURES)");
        return;
    };
    let src = Gguf::open(dir.join("llama-F32.gguf")).expect("llama-F32.gguf");
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in [
        "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q6_K", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M",
    ] {
        let q = Gguf::open(dir.join(format!("llama-{file}.gguf"))).expect("fixture");
        for t in q.tensors() {
            if !t.ty.is_quantized() {
                continue;
            }
            let s = src.tensor(&t.name).expect("same tensor in the F32 file");
            let x: &[f32] = bytemuck::cast_slice(src.tensor_data(s));
            // The reference table and the best ISA's (SIMD quantizers where it has them).
            let best = Kernels::for_isa(Isa::best()).unwrap();
            let tables = [
                (Isa::Scalar, type_traits(t.ty).unwrap()),
                (best.isa(), best.traits(t.ty).unwrap()),
            ];
            for (isa, traits) in tables {
                let mut out = vec![0u16; t.n_bytes as usize / 2];
                let out: &mut [u8] = bytemuck::cast_slice_mut(&mut out);
                let row = traits.row_bytes(t.dims[0] as usize).unwrap();
                for (xr, or) in x.chunks(t.dims[0] as usize).zip(out.chunks_mut(row)) {
                    traits.quantize_weights_row(xr, or).unwrap();
                }
                let want = q.tensor_data(t);
                if out != want {
                    let first = out.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                    failures.push(format!(
                        "{isa} llama-{file} {} ({}): first difference at byte {first}",
                        t.name, t.ty
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} tensors differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 100);
}

#[test]
fn dequantized_fixture_weights_match_the_f32_originals() {
    let Some(dir) = fixtures() else {
        eprintln!("skipping: shared fixtures not found (set NANORUN_FIXTURES)");
        return;
    };
    let src = Gguf::open(dir.join("llama-F32.gguf")).expect("llama-F32.gguf");
    // Relative RMS error bounds per type for these Gaussian weights: the expected quantization
    // noise of each type with some margin (F16 / BF16 are rounding only).
    let bound = |ty: GgmlType| match ty {
        GgmlType::F16 => 5e-4,
        GgmlType::BF16 => 4e-3,
        GgmlType::Q8_0 => 6e-3,
        GgmlType::Q6_K => 2e-2,
        GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q5_K => 5e-2,
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4_K => 0.1,
        GgmlType::Q3_K => 0.2,
        _ => 0.4,
    };
    for file in [
        "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q6_K", "Q2_K", "Q3_K_M", "Q4_K_M",
        "Q5_K_M",
    ] {
        let q = Gguf::open(dir.join(format!("llama-{file}.gguf"))).expect("fixture");
        for t in q.tensors().iter().filter(|t| t.ty != GgmlType::F32) {
            let s = src.tensor(&t.name).expect("same tensor in the F32 file");
            let x: &[f32] = bytemuck::cast_slice(src.tensor_data(s));
            let mut y = vec![0.0f32; x.len()];
            let traits = type_traits(t.ty).unwrap();
            traits.dequantize_row(q.tensor_data(t), &mut y).unwrap();
            let err: f64 = x
                .iter()
                .zip(&y)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum();
            let norm: f64 = x.iter().map(|a| (*a as f64).powi(2)).sum();
            let rel = (err / norm).sqrt();
            assert!(
                rel <= bound(t.ty),
                "llama-{file} {} ({}): relative RMS error {rel}",
                t.name,
                t.ty
            );
        }
    }
}

/// Rows of `blk.0.attn_q.weight` kept in `tests/data` (see `quantize_golden_compact.rs`).
const COMPACT_ROWS: usize = 16;

/// Regenerates `tests/data/attn_q16.*` from the shared fixtures:
/// `cargo test -p nanorun-kernels --test llama_quantize_golden -- --ignored`.
#[test]
#[ignore]
fn write_compact_golden_data() {
    let dir = fixtures().expect("shared fixtures");
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    std::fs::create_dir_all(&data).unwrap();
    let name = "blk.0.attn_q.weight";
    let src = Gguf::open(dir.join("llama-F32.gguf")).unwrap();
    let s = src.tensor(name).unwrap();
    let n = s.dims[0] as usize * COMPACT_ROWS;
    std::fs::write(data.join("attn_q16.f32"), &src.tensor_data(s)[..4 * n]).unwrap();
    for file in [
        "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q6_K", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M",
    ] {
        let q = Gguf::open(dir.join(format!("llama-{file}.gguf"))).unwrap();
        let t = q.tensor(name).unwrap();
        let bytes = type_traits(t.ty).unwrap().row_bytes(n).unwrap();
        std::fs::write(
            data.join(format!("attn_q16.{}", t.ty)),
            &q.tensor_data(t)[..bytes],
        )
        .unwrap();
    }
}
