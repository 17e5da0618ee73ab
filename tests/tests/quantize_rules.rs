//! llama.cpp's per-layer type rules on models unlike the 2-layer fixtures, quantized to every
//! mix: a synthetic 24-layer llama (GQA 4, so Q2_K's attn_v rule switches; feed-forward width
//! 288, so ffn_down rows do not split into 256-value blocks and take llama.cpp's fallback
//! types) and a 4-layer, 8-expert one (the `n_expert == 8` rules, 3-D expert tensors, layer
//! numbers from names, the router kept F32). The types per tensor must equal
//! `tests/data/quantize/<model>-types.tsv`, which were written from llama-quantize's output. With `NANORUN_LLAMA_QUANTIZE=path/to/llama-quantize`
//! the files are also compared with its output byte for byte (about a minute on two cores,
//! hence opt-in); `NANORUN_BLESS=1` with it rewrites the TSV from llama-quantize's files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use nanorun::formats::{GgmlType, Gguf, GgufWriter, MetadataValue};
use nanorun::quantize::{quantize_file, FileType};
use nanorun_tests::{data_path, skipped};

const N_EMBD: u64 = 256;
const N_KV: u64 = 64;
const N_VOCAB: u64 = 320;

const MIXES: [FileType; 11] = [
    FileType::Q4_0,
    FileType::Q8_0,
    FileType::Q2K,
    FileType::Q3KS,
    FileType::Q3KM,
    FileType::Q3KL,
    FileType::Q4KS,
    FileType::Q4KM,
    FileType::Q5KS,
    FileType::Q5KM,
    FileType::Q6K,
];

/// A deterministic pseudo-random tensor of values in (-1, 1).
fn tensor_bytes(n: u64, seed: &mut u64) -> Vec<u8> {
    (0..n)
        .flat_map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            v.to_le_bytes()
        })
        .collect()
}

/// A synthetic llama: layers, feed-forward width and experts (0: dense).
struct Shape {
    tag: &'static str,
    n_layer: usize,
    n_ff: u64,
    n_expert: u64,
}

const DEEP: Shape = Shape {
    tag: "llama24",
    n_layer: 24,
    n_ff: 288,
    n_expert: 0,
};

const MOE: Shape = Shape {
    tag: "llama4x8moe",
    n_layer: 4,
    n_ff: 256,
    n_expert: 8,
};

/// The synthetic model: the llama fixture's metadata (tokenizer included) with `shape`.
fn write_model(path: &Path, shape: &Shape) {
    let fixture = Gguf::open(data_path("fixtures/llama-Q4_K_M.gguf")).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in fixture.metadata() {
        if k != "general.quantization_version" {
            w.set(k, v.clone());
        }
    }
    w.set("general.file_type", MetadataValue::U32(0));
    w.set(
        "llama.block_count",
        MetadataValue::U32(shape.n_layer as u32),
    );
    w.set(
        "llama.feed_forward_length",
        MetadataValue::U32(shape.n_ff as u32),
    );
    w.set("llama.attention.head_count_kv", MetadataValue::U32(1));
    if shape.n_expert > 0 {
        w.set(
            "llama.expert_count",
            MetadataValue::U32(shape.n_expert as u32),
        );
        w.set("llama.expert_used_count", MetadataValue::U32(2));
    }
    let mut seed = 7;
    let mut add = |w: &mut GgufWriter, name: &str, dims: &[u64]| {
        let data = tensor_bytes(dims.iter().product(), &mut seed);
        w.add_tensor(name, GgmlType::F32, dims, data).unwrap();
    };
    add(&mut w, "token_embd.weight", &[N_EMBD, N_VOCAB]);
    let (ff, ne) = (shape.n_ff, shape.n_expert);
    for l in 0..shape.n_layer {
        let p = |s: &str| format!("blk.{l}.{s}.weight");
        add(&mut w, &p("attn_norm"), &[N_EMBD]);
        add(&mut w, &p("attn_q"), &[N_EMBD, N_EMBD]);
        add(&mut w, &p("attn_k"), &[N_EMBD, N_KV]);
        add(&mut w, &p("attn_v"), &[N_EMBD, N_KV]);
        add(&mut w, &p("attn_output"), &[N_EMBD, N_EMBD]);
        add(&mut w, &p("ffn_norm"), &[N_EMBD]);
        if ne == 0 {
            add(&mut w, &p("ffn_gate"), &[N_EMBD, ff]);
            add(&mut w, &p("ffn_up"), &[N_EMBD, ff]);
            add(&mut w, &p("ffn_down"), &[ff, N_EMBD]);
        } else {
            add(&mut w, &p("ffn_gate_inp"), &[N_EMBD, ne]);
            add(&mut w, &p("ffn_gate_exps"), &[N_EMBD, ff, ne]);
            add(&mut w, &p("ffn_up_exps"), &[N_EMBD, ff, ne]);
            add(&mut w, &p("ffn_down_exps"), &[ff, N_EMBD, ne]);
        }
    }
    add(&mut w, "output_norm.weight", &[N_EMBD]);
    add(&mut w, "output.weight", &[N_EMBD, N_VOCAB]);
    w.write_file(path).unwrap();
}

fn types_tsv(mix: FileType, g: &Gguf, out: &mut String) {
    for t in g.tensors() {
        writeln!(out, "{}\t{}\t{}", mix.name(), t.name, t.ty).unwrap();
    }
}

fn llama_quantize() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("NANORUN_LLAMA_QUANTIZE")?);
    p.is_file().then_some(p)
}

/// Quantizes `shape` to every mix; types against the TSV (and llama-quantize when given).
fn check(shape: &Shape) {
    let dir = std::env::temp_dir().join(format!(
        "nanorun-quantize-{}-{}",
        shape.tag,
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join(format!("{}-F32.gguf", shape.tag));
    write_model(&src, shape);
    let reference = llama_quantize();
    if reference.is_none() {
        skipped(
            "byte comparison with llama-quantize",
            "NANORUN_LLAMA_QUANTIZE not set (types compared with the TSV only)",
        );
    }
    let golden_path = data_path(&format!("quantize/{}-types.tsv", shape.tag));
    let bless = std::env::var_os("NANORUN_BLESS").is_some();
    let (mut ours_tsv, mut theirs_tsv) = (String::new(), String::new());
    for mix in MIXES {
        let out = dir.join(format!("ours-{}.gguf", mix.name()));
        let report = quantize_file(&src, &out, mix, 2, |_, _| {}).unwrap();
        let ours = Gguf::open(&out).unwrap();
        types_tsv(mix, &ours, &mut ours_tsv);
        // Every ffn_down row that does not split into 256 values falls back in the K mixes.
        let k_mix = mix.default_type().block_size() == 256;
        let expect = if k_mix && !shape.n_ff.is_multiple_of(256) {
            shape.n_layer
        } else {
            0
        };
        assert_eq!(report.n_fallback, expect, "{mix}");
        if let Some(q) = &reference {
            let theirs = dir.join(format!("theirs-{}.gguf", mix.name()));
            let st = Command::new(q)
                .arg(&src)
                .arg(&theirs)
                .arg(mix.name())
                .arg("2")
                .output()
                .unwrap();
            assert!(st.status.success(), "llama-quantize {mix} failed");
            types_tsv(mix, &Gguf::open(&theirs).unwrap(), &mut theirs_tsv);
            assert!(
                std::fs::read(&out).unwrap() == std::fs::read(&theirs).unwrap(),
                "{} {mix}: file differs from llama-quantize's",
                shape.tag
            );
        }
    }
    if bless {
        assert!(reference.is_some(), "bless needs llama-quantize");
        std::fs::create_dir_all(golden_path.parent().unwrap()).unwrap();
        std::fs::write(&golden_path, &theirs_tsv).unwrap();
    }
    let golden = std::fs::read_to_string(&golden_path).unwrap();
    for (i, (a, b)) in ours_tsv.lines().zip(golden.lines()).enumerate() {
        assert_eq!(a, b, "line {} of {}", i + 1, golden_path.display());
    }
    assert_eq!(ours_tsv.lines().count(), golden.lines().count());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn deep_model_gets_llama_cpps_types_in_every_mix() {
    check(&DEEP);
}

#[test]
fn eight_expert_model_gets_llama_cpps_types_in_every_mix() {
    check(&MOE);
}
