//! Byte-identity with llama-quantize on data kept in the repo: the first 16 rows of the llama
//! fixture's `blk.0.attn_q.weight` (F32) and llama-quantize's bytes for the same rows in every
//! type (regenerate with `write_compact_golden_data` in `llama_quantize_golden.rs`).

use nanorun_kernels::{type_traits, GgmlType};

#[test]
fn reference_quantizers_match_llama_quantize_on_the_compact_copy() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let raw = std::fs::read(dir.join("attn_q16.f32")).expect("tests/data/attn_q16.f32");
    let x: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let types = [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q6_K,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
    ];
    for ty in types {
        let want = std::fs::read(dir.join(format!("attn_q16.{ty}"))).expect("golden bytes");
        let t = type_traits(ty).unwrap();
        let mut got = vec![0u8; t.row_bytes(x.len()).unwrap()];
        for (xr, or) in x.chunks(256).zip(got.chunks_mut(t.row_bytes(256).unwrap())) {
            t.quantize_weights_row(xr, or).unwrap();
        }
        assert!(
            got == want,
            "{ty}: our reference quantizer differs from llama-quantize"
        );
    }
}
