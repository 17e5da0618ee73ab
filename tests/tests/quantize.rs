//! `nanorun::quantize` against llama-quantize: the shared `llama-F32.gguf` quantized to every
//! type of the shared fixtures gives the same type per tensor, byte-identical data for the
//! non-K types and Q6_K, K-quant tensors with an RMS error (against the F32 original) no larger
//! than llama.cpp's, and in fact the same file byte for byte. The output re-reads, loads and
//! gives the fixture's logits. The type rules are also checked on every architecture of the
//! repository's fixtures (an F32 model rebuilt from each `*-Q4_K_M.gguf`), and bad input fails
//! with a clear error.

use std::path::{Path, PathBuf};

use nanorun::formats::{GgmlType, Gguf, GgufWriter};
use nanorun::kernels::Kernels;
use nanorun::quantize::{quantize_file, FileType};
use nanorun::{Batch, CacheType, ForwardState, KvCache, KvCacheConfig, Model};
use nanorun_tests::{data_path, gguf_files, shared_dir, skipped};

/// Slack on the RMS comparison with llama.cpp's K-quant tensors.
const RMS_SLACK: f64 = 1e-6;

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nanorun-quantize-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn shared_f32() -> Option<PathBuf> {
    let p = shared_dir()?.join("fixtures").join("llama-F32.gguf");
    p.is_file().then_some(p)
}

/// The tensor's values as f32 (any type the kernels dequantize).
fn values(g: &Gguf, name: &str) -> Vec<f32> {
    let t = g.tensor(name).unwrap();
    let k = Kernels::active().unwrap();
    let tr = k.traits(t.ty).unwrap();
    let mut out = vec![0f32; t.n_elements() as usize];
    tr.dequantize_row(g.tensor_data(t), &mut out).unwrap();
    out
}

fn rms(a: &[f32], b: &[f32]) -> f64 {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    (s / a.len() as f64).sqrt()
}

#[test]
fn llama_f32_quantizes_like_llama_quantize_in_every_fixture_type() {
    let Some(src) = shared_f32() else {
        skipped(
            "quantize vs llama-quantize",
            "../shared/fixtures/llama-F32.gguf absent",
        );
        return;
    };
    let f32_model = Gguf::open(&src).unwrap();
    let dir = tmp_dir("fixtures");
    let mut n = 0;
    for ft in FileType::ALL {
        let theirs_path = src.with_file_name(format!("llama-{}.gguf", ft.name()));
        if ft == FileType::F32 || !theirs_path.is_file() {
            continue;
        }
        let out = dir.join(format!("llama-{}.gguf", ft.name()));
        let mut calls = Vec::new();
        let report = quantize_file(&src, &out, ft, 2, |d, t| calls.push((d, t))).unwrap();
        assert_eq!(calls.first(), Some(&(0, 21)));
        assert_eq!(calls.last(), Some(&(21, 21)));
        assert_eq!(report.tensors.len(), 21);

        let ours = Gguf::open(&out).unwrap();
        let theirs = Gguf::open(&theirs_path).unwrap();
        assert_eq!(ours.get_u32("general.file_type").unwrap(), ft.id());
        assert_eq!(ours.alignment(), theirs.alignment());
        let names = |g: &Gguf| {
            g.tensors()
                .iter()
                .map(|t| t.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&ours), names(&theirs), "{ft}: tensor order");
        let mut worst = 0f64;
        for (a, b) in ours.tensors().iter().zip(theirs.tensors()) {
            assert_eq!(a.ty, b.ty, "{ft}: type of {}", a.name);
            assert_eq!(a.dims, b.dims, "{ft}: shape of {}", a.name);
            match a.ty {
                GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K => {
                    let orig = values(&f32_model, &a.name);
                    let e_ours = rms(&values(&ours, &a.name), &orig);
                    let e_theirs = rms(&values(&theirs, &a.name), &orig);
                    assert!(
                        e_ours <= e_theirs + RMS_SLACK,
                        "{ft} {}: RMS error {e_ours} > llama.cpp's {e_theirs}",
                        a.name
                    );
                    worst = worst.max(e_ours - e_theirs);
                }
                _ => assert!(
                    ours.tensor_data(a) == theirs.tensor_data(b),
                    "{ft}: bytes of {} ({})",
                    a.name,
                    a.ty
                ),
            }
        }
        // The quantizers are ggml's reference ones, so in fact the whole file is identical.
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(&theirs_path).unwrap(),
            "{ft}: file differs from llama-quantize's"
        );
        eprintln!("{ft:<7} identical to llama-quantize (K-quant RMS excess {worst:e})");
        n += 1;
    }
    assert!(n >= 10, "only {n} fixture types found");
    std::fs::remove_dir_all(&dir).ok();
}

/// Prefill logits of the fixtures' 24 tokens.
fn prefill_logits(model: &Model) -> Vec<f32> {
    const TOKENS: [u32; 24] = [
        1, 14, 111, 208, 305, 85, 182, 279, 59, 156, 253, 33, 130, 227, 7, 104, 201, 298, 78, 175,
        272, 52, 149, 246,
    ];
    let mut cfg = KvCacheConfig::for_context(128);
    cfg.type_k = CacheType::F32;
    cfg.type_v = CacheType::F32;
    let mut kv = KvCache::new(model.config(), cfg).unwrap();
    kv.add_sequence(0).unwrap();
    kv.grow_to(0, TOKENS.len()).unwrap();
    let mut batch = Batch::new();
    for (i, &t) in TOKENS.iter().enumerate() {
        batch.push(t, i, 0, true);
    }
    let mut st = ForwardState::new(2);
    model.forward(&batch, &mut kv, &mut st).unwrap().to_vec()
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn quantized_output_loads_and_gives_the_fixture_logits() {
    let Some(src) = shared_f32() else {
        skipped(
            "quantized model logits",
            "../shared/fixtures/llama-F32.gguf absent",
        );
        return;
    };
    let dir = tmp_dir("logits");
    for ft in [FileType::Q8_0, FileType::Q4KM] {
        let out = dir.join(format!("llama-{}.gguf", ft.name()));
        quantize_file(&src, &out, ft, 2, |_, _| {}).unwrap();
        let g = Gguf::open(&out).unwrap();
        assert_eq!(g.tensors().len(), 21);
        let model = Model::open(&out).unwrap();
        let ours = prefill_logits(&model);
        let theirs = read_f32(&src.with_file_name(format!("llama-{}.logits.f32", ft.name())));
        assert_eq!(ours.len(), theirs.len());
        // The fixtures' rule for quantized types: |diff| / std of llama.cpp's row.
        for (r, (e, l)) in ours
            .chunks_exact(320)
            .zip(theirs.chunks_exact(320))
            .enumerate()
        {
            let mean = l.iter().sum::<f32>() / 320.0;
            let std = (l.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 320.0).sqrt();
            let diffs: Vec<f32> = e.iter().zip(l).map(|(a, b)| (a - b).abs()).collect();
            let rel_max = diffs.iter().copied().fold(0.0, f32::max) / std;
            let rel_mean = diffs.iter().sum::<f32>() / 320.0 / std;
            assert!(
                rel_max <= 0.30 && rel_mean <= 0.08,
                "{ft} row {r}: {rel_max} {rel_mean}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// An F32 copy of `g` (every tensor dequantized), metadata unchanged.
fn to_f32_file(g: &Gguf, path: &Path) {
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        w.set(k, v.clone());
    }
    for t in g.tensors() {
        let bytes: Vec<u8> = values(g, &t.name)
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        w.add_tensor(&t.name, GgmlType::F32, &t.dims, bytes)
            .unwrap();
    }
    w.write_file(path).unwrap();
}

#[test]
fn every_architecture_gets_llama_cpps_q4_k_m_types() {
    let dir = tmp_dir("archs");
    let mut n = 0;
    for fixture in gguf_files(&data_path("fixtures")) {
        let name = fixture.file_stem().unwrap().to_string_lossy().to_string();
        let Some(arch) = name.strip_suffix("-Q4_K_M") else {
            continue;
        };
        let theirs = Gguf::open(&fixture).unwrap();
        let src = dir.join(format!("{arch}-F32.gguf"));
        to_f32_file(&theirs, &src);
        let out = dir.join(format!("{arch}-Q4_K_M.gguf"));
        let report = quantize_file(&src, &out, FileType::Q4KM, 1, |_, _| {}).unwrap();
        let ours = Gguf::open(&out).unwrap();
        assert_eq!(report.tensors.len(), theirs.tensors().len());
        for (a, b) in ours.tensors().iter().zip(theirs.tensors()) {
            assert_eq!(a.name, b.name, "{arch}: tensor order");
            assert_eq!(a.ty, b.ty, "{arch}: type of {}", a.name);
        }
        n += 1;
    }
    assert!(n >= 8, "only {n} architectures");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_is_a_clear_error() {
    let err = FileType::from_name("Q4_K_X").unwrap_err().to_string();
    assert!(err.contains("unknown quantization type 'Q4_K_X'") && err.contains("Q4_K_M"));
    assert_eq!(FileType::from_name("q4_k").unwrap(), FileType::Q4KM);

    let dir = tmp_dir("bad");
    let text = dir.join("not.gguf");
    std::fs::write(&text, b"hello, this is not a model file").unwrap();
    let err = quantize_file(&text, dir.join("o.gguf"), FileType::Q8_0, 1, |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a GGUF file"), "{err}");

    let src = data_path("fixtures/llama-Q4_K_M.gguf");
    // Already quantized: requantizing is refused, as llama-quantize does by default.
    let err = quantize_file(&src, dir.join("o.gguf"), FileType::Q8_0, 1, |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("requantizing from type"), "{err}");

    let f32_src = dir.join("llama-F32.gguf");
    to_f32_file(&Gguf::open(&src).unwrap(), &f32_src);
    let missing = dir.join("no-such-folder").join("o.gguf");
    let err = quantize_file(&f32_src, &missing, FileType::Q8_0, 1, |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-folder"), "{err}");
    // Failed runs leave no temporary files behind.
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            !name.ends_with(".quantizing") && !name.ends_with(".partial"),
            "{name} left behind"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
