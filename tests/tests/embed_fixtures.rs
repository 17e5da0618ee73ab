//! Embedding models against llama.cpp: the random-weight encoder fixtures of
//! `tests/data/embed/` (and `../shared/fixtures/embed/` for the files not copied here), three
//! sequences embedded together in one batch, pooled vectors compared per sequence with the
//! README's rule (`rel_max = max |e − l| / rms(l)` and cosine), and the tokenizations.

use std::path::{Path, PathBuf};

use nanorun::formats::{Gguf, GgufWriter};
use nanorun::model::encoder::l2_normalize;
use nanorun::model::{EmbedState, Embedder};
use nanorun_tests::{data_path, shared_dir, skipped};

const MODELS: [&str; 9] = [
    "bert-F32",
    "bert-Q8_0",
    "bert-Q4_K_M",
    "nomic-bert-F32",
    "nomic-bert-Q8_0",
    "nomic-bert-Q4_K_M",
    "gemma-embedding-F32",
    "gemma-embedding-Q8_0",
    "gemma-embedding-Q4_K_M",
];

const WPM_SEQS: [&[u32]; 3] = [
    &[2, 16, 113, 210, 307, 89, 3],
    &[2, 77, 174, 271, 53, 150, 247, 29, 126, 223, 5, 3],
    &[
        2, 138, 235, 17, 114, 211, 308, 90, 187, 284, 66, 163, 260, 42, 139, 236, 18, 115, 212,
        309, 91, 188, 285, 3,
    ],
];

const SPM_SEQS: [&[u32]; 3] = [
    &[1, 14, 111, 208, 305, 85, 2],
    &[1, 75, 172, 269, 49, 146, 243, 23, 120, 217, 314, 2],
    &[
        1, 136, 233, 13, 110, 207, 304, 84, 181, 278, 58, 155, 252, 32, 129, 226, 6, 103, 200, 297,
        77, 174, 271, 2,
    ],
];

/// The file `name` in `$NANORUN_EMBED_DIR` (e.g. where `gen_embed.py` regenerated
/// `gemma-embedding-F32.gguf`), the repository's copy, else `../shared/fixtures/embed/`.
fn find(name: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("NANORUN_EMBED_DIR") {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    let local = data_path("embed").join(name);
    if local.is_file() {
        return Some(local);
    }
    let shared = shared_dir()?.join("fixtures").join("embed").join(name);
    shared.is_file().then_some(shared)
}

fn read_f32(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn seqs(model: &str) -> Vec<Vec<u32>> {
    let s = match model.starts_with("gemma") {
        true => SPM_SEQS,
        false => WPM_SEQS,
    };
    s.iter().map(|v| v.to_vec()).collect()
}

/// (rel_max, cos) of `e` against `l`.
fn rel_cos(e: &[f32], l: &[f32]) -> (f64, f64) {
    let n = l.len() as f64;
    let rms = (l.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n).sqrt();
    let max = e
        .iter()
        .zip(l)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .fold(0.0, f64::max);
    let dot: f64 = e.iter().zip(l).map(|(&a, &b)| a as f64 * b as f64).sum();
    let ne = e.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    let nl = l.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    (max / rms, dot / (ne * nl))
}

/// The README's limits: F32 files (2e-3, 0.99999), quantized files (0.2, 0.998).
fn limits(model: &str) -> (f64, f64) {
    match model.ends_with("-F32") {
        true => (2e-3, 0.99999),
        false => (0.2, 0.998),
    }
}

/// The fixtures present with llama.cpp's vectors: `(name, gguf, .emb.f32)` (the others are
/// reported as skipped).
fn fixtures_with_references() -> Vec<(&'static str, PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for model in MODELS {
        match (
            find(&format!("{model}.gguf")),
            find(&format!("{model}.emb.f32")),
        ) {
            (Some(gguf), Some(emb)) => out.push((model, gguf, emb)),
            _ => skipped(model, "model or reference embeddings not present"),
        }
    }
    out
}

/// Checks `ours` (one vector per sequence) against llama.cpp's vectors in `emb` with the
/// README's limits for `model`; returns the worst (rel_max, cos).
fn check_against_llama_cpp(model: &str, ours: &[Vec<f32>], emb: &Path) -> (f64, f64) {
    let want = read_f32(emb);
    assert_eq!(ours.len(), 3);
    let (max_lim, cos_lim) = limits(model);
    let mut worst = (0f64, 1f64);
    for (s, (v, l)) in ours.iter().zip(want.chunks_exact(256)).enumerate() {
        let (rel, cos) = rel_cos(v, l);
        assert!(
            rel.is_finite() && rel <= max_lim && cos >= cos_lim,
            "{model} seq {s}: rel_max {rel:.3e} (limit {max_lim}), cos {cos:.6} (limit {cos_lim})"
        );
        worst = (worst.0.max(rel), worst.1.min(cos));
    }
    worst
}

#[test]
fn embeddings_match_llama_cpp() {
    let mut st = EmbedState::new(2);
    let mut ran = 0;
    for (model, gguf, emb) in fixtures_with_references() {
        let e = Embedder::open(&gguf).unwrap_or_else(|err| panic!("{model}: {err}"));
        assert_eq!(e.n_embd_out(), 256, "{model}");
        let input = seqs(model);
        let ours = e.embed(&input, &mut st).expect("embed");
        let worst = check_against_llama_cpp(model, &ours, &emb);
        // Against the float64 reference on the same (dequantized) weights.
        let mut ref_note = String::new();
        if let Some(r) = find(&format!("{model}.ref.f32")) {
            let r = read_f32(&r);
            let rel = ours
                .iter()
                .zip(r.chunks_exact(256))
                .map(|(v, l)| rel_cos(v, l).0)
                .fold(0.0, f64::max);
            ref_note = format!(", vs numpy f64 rel_max {rel:.2e}");
        }
        // One sequence alone gives the same vector as in the batch.
        let alone = e.embed(&input[2..], &mut st).expect("embed alone");
        let (rel_alone, _) = rel_cos(&alone[0], &ours[2]);
        assert!(
            rel_alone < 1e-4,
            "{model}: alone vs batched {rel_alone:.2e}"
        );
        eprintln!(
            "{model}: rel_max {:.2e}, min cos {:.7} vs llama.cpp{ref_note}; alone vs batched {rel_alone:.1e}",
            worst.0, worst.1
        );
        ran += 1;
    }
    assert!(ran >= 5, "only {ran} embedding fixtures ran");
}

#[test]
fn normalized_embeddings_have_unit_norm() {
    let Some(gguf) = find("bert-Q8_0.gguf") else {
        skipped("normalize", "bert-Q8_0.gguf not present");
        return;
    };
    let e = Embedder::open(gguf).expect("open");
    let mut st = EmbedState::new(1);
    let v = e
        .embed_texts(&["hello world", "the lazy dog"], true, &mut st)
        .expect("embed");
    for mut x in v {
        let n: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5, "norm {n}");
        l2_normalize(&mut x);
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let Some(gguf) = find("bert-Q8_0.gguf") else {
        skipped("bad input", "bert-Q8_0.gguf not present");
        return;
    };
    let e = Embedder::open(gguf).expect("open");
    let mut st = EmbedState::new(1);
    assert!(e.embed(&[vec![2, 9999, 3]], &mut st).is_err());
    assert!(e.embed(&[vec![]], &mut st).is_err());
    assert!(e.embed(&[vec![5; 129]], &mut st).is_err());
    assert!(e.embed(&[], &mut st).expect("empty").is_empty());
}

/// The `(text, ids)` cases of a `<arch>.tokenize.json` file.
fn tokenize_cases(path: &Path) -> Vec<(String, Vec<u32>)> {
    let text = std::fs::read_to_string(path).expect("read tokenize.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|c| {
            let t = c["text"].as_str().expect("text").to_string();
            let ids = c["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|x| x.as_u64().expect("id") as u32)
                .collect();
            (t, ids)
        })
        .collect()
}

#[test]
fn tokenizations_match_llama_cpp() {
    for (arch, model) in [
        ("bert", "bert-Q8_0"),
        ("nomic-bert", "nomic-bert-Q8_0"),
        ("gemma-embedding", "gemma-embedding-Q4_K_M"),
    ] {
        let (Some(gguf), Some(json)) = (
            find(&format!("{model}.gguf")),
            find(&format!("{arch}.tokenize.json")),
        ) else {
            skipped(arch, "model or tokenize.json not present");
            continue;
        };
        let e = Embedder::open(gguf).expect("open");
        let cases = tokenize_cases(&json);
        assert!(cases.len() >= 6, "{arch}: {} cases", cases.len());
        for (text, ids) in &cases {
            assert_eq!(&e.tokenize(text), ids, "{arch}: {text:?}");
        }
        eprintln!("{arch}: {0}/{0} tokenizations identical", cases.len());
    }
}

/// `model` rewritten with `edit` applied to its metadata and without the tensor `drop`, opened
/// as an embedding model: the error message.
fn load_error(model: &str, edit: &dyn Fn(&mut GgufWriter<'_>), drop: Option<&str>) -> String {
    let path = find(&format!("{model}.gguf")).expect("fixture");
    let g = Gguf::open(path).expect("open");
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        w.set(k, v.clone());
    }
    for t in g.tensors().iter().filter(|t| Some(t.name.as_str()) != drop) {
        w.add_tensor(&t.name, t.ty, &t.dims, g.tensor_data(t))
            .expect("add tensor");
    }
    edit(&mut w);
    let mut buf = Vec::new();
    w.write_to(&mut buf).expect("write");
    let g = Gguf::from_bytes(buf).expect("reopen");
    let kernels = nanorun::kernels::Kernels::active().expect("kernels");
    match Embedder::from_gguf(std::sync::Arc::new(g), kernels) {
        Ok(_) => panic!("{model}: a broken file loaded"),
        Err(e) => e.to_string(),
    }
}

/// (model, metadata edit, tensor to drop, what the error must name).
type Case<'a> = (
    &'a str,
    &'a dyn Fn(&mut GgufWriter<'_>),
    Option<&'a str>,
    &'a str,
);

#[test]
fn broken_files_are_errors_naming_the_key_or_tensor() {
    let none = |_: &mut GgufWriter<'_>| {};
    let cases: [Case; 6] = [
        (
            "bert-Q8_0",
            &|w| w.set_u32("bert.pooling_type", 0),
            None,
            "bert.pooling_type",
        ),
        (
            "bert-Q8_0",
            &|w| w.set_u32("bert.pooling_type", 4),
            None,
            "bert.pooling_type",
        ),
        (
            "bert-Q8_0",
            &|w| w.remove("bert.pooling_type"),
            None,
            "bert.pooling_type",
        ),
        (
            "bert-Q8_0",
            &none,
            Some("position_embd.weight"),
            "position_embd.weight",
        ),
        (
            "nomic-bert-Q8_0",
            &none,
            Some("blk.1.ffn_gate.weight"),
            "blk.1.ffn_gate.weight",
        ),
        (
            "gemma-embedding-Q4_K_M",
            &|w| w.set_u32("gemma-embedding.dense_3_feat_out", 100),
            None,
            "gemma-embedding.dense_3_feat_out",
        ),
    ];
    for (model, edit, drop, want) in cases {
        if find(&format!("{model}.gguf")).is_none() {
            skipped(model, "fixture not present");
            continue;
        }
        let err = load_error(model, edit, drop);
        assert!(err.contains(want), "{model}: {err:?} does not name {want}");
    }
}

#[test]
fn pooling_override_cls_last_and_mean() {
    use nanorun::model::encoder_config::Pooling;
    let Some(path) = find("bert-Q8_0.gguf") else {
        skipped("pooling override", "bert-Q8_0.gguf not present");
        return;
    };
    let kernels = nanorun::kernels::Kernels::active().expect("kernels");
    let g = std::sync::Arc::new(Gguf::open(path).expect("open"));
    let mut st = EmbedState::new(1);
    let with =
        |p: Pooling| Embedder::from_gguf_with_pooling(g.clone(), kernels, Some(p)).expect("load");
    let (mean, cls, last) = (with(Pooling::Mean), with(Pooling::Cls), with(Pooling::Last));
    // One token: every pooling gives its vector.
    let one = [vec![2u32]];
    let m = mean.embed(&one, &mut st).unwrap();
    assert_eq!(m, cls.embed(&one, &mut st).unwrap());
    assert_eq!(m, last.embed(&one, &mut st).unwrap());
    // Longer sequences: the three poolings give different vectors.
    let seqs = seqs("bert");
    let c = cls.embed(&seqs, &mut st).unwrap();
    let l = last.embed(&seqs, &mut st).unwrap();
    let mn = mean.embed(&seqs, &mut st).unwrap();
    assert!(c != l && c != mn && l != mn);
    // The file's own pooling (mean) is what the override `mean` gives.
    let file = Embedder::from_gguf(g.clone(), kernels).unwrap();
    assert_eq!(file.embed(&seqs, &mut st).unwrap(), mn);
}

// ---- Engine::embed: the library's one-call embedding API over the same fixtures.

/// An embedding engine on `path`: 2 threads, `budget` tokens per forward pass.
fn embed_engine(path: &Path, budget: usize) -> nanorun::Engine {
    let cfg = nanorun::EngineConfig {
        n_threads: 2,
        max_batch_tokens: budget,
        ..nanorun::EngineConfig::default()
    };
    nanorun::Engine::load(path, cfg).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn engine_embed_matches_embedder_and_llama_cpp() {
    let mut st = EmbedState::new(2);
    let mut ran = 0;
    for (model, gguf, emb) in fixtures_with_references() {
        let input = seqs(model);
        let direct = Embedder::open(&gguf)
            .expect("open")
            .embed(&input, &mut st)
            .expect("embed");
        // 20 tokens per forward pass: the three sequences (7, 12, 24 tokens) run in three.
        let engine = embed_engine(&gguf, 20);
        assert!(
            engine.is_embedding() && engine.model_config().is_none(),
            "{model}"
        );
        assert_eq!(engine.embedder().map(Embedder::n_embd_out), Some(256));
        let out = engine
            .embed(nanorun::EmbedInputs::Tokens(input.clone()), false)
            .expect("Engine::embed");
        assert_eq!(out.n_tokens, vec![7, 12, 24], "{model}");
        assert_eq!(out.prompt_tokens, 43);
        assert_eq!(
            out.vectors, direct,
            "{model}: Engine::embed differs from Embedder::embed"
        );
        check_against_llama_cpp(model, &out.vectors, &emb);
        let unit = engine
            .embed(nanorun::EmbedInputs::Tokens(input), true)
            .expect("normalised");
        for (mut raw, u) in direct.into_iter().zip(&unit.vectors) {
            l2_normalize(&mut raw);
            assert_eq!(&raw, u, "{model}: normalised");
        }
        let m = engine.metrics();
        assert_eq!((m.requests, m.finished, m.prompt_tokens), (2, 2, 86));
        ran += 1;
    }
    assert!(ran >= 5, "only {ran} embedding fixtures ran");
}

#[test]
fn engine_embed_texts_from_concurrent_callers() {
    let Some(gguf) = find("bert-Q8_0.gguf") else {
        skipped("Engine::embed texts", "bert-Q8_0.gguf not present");
        return;
    };
    let texts = [
        "hello world",
        "the lazy dog",
        "a quick brown fox",
        "search the graph",
    ];
    let e = Embedder::open(&gguf).expect("open");
    let mut st = EmbedState::new(1);
    let want = e.embed_texts(&texts, true, &mut st).expect("embed_texts");
    let engine = std::sync::Arc::new(embed_engine(&gguf, 512));
    let out = engine.embed(&texts, true).expect("Engine::embed");
    assert_eq!(out.vectors, want);
    let n: Vec<usize> = texts.iter().map(|t| e.tokenize(t).len()).collect();
    assert_eq!(out.n_tokens, n);
    assert_eq!(engine.tokenize(texts[0]), e.tokenize(texts[0]));
    // Eight callers at once share forward passes; each gets its own vector, bit for bit.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let engine = engine.clone();
            std::thread::spawn(move || engine.embed(texts[i % 4], true).expect("embed"))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let got = h.join().expect("thread");
        assert_eq!(got.vectors, vec![want[i % 4].clone()], "caller {i}");
    }
}

#[test]
fn engine_embed_errors_are_clear() {
    let Some(gguf) = find("bert-Q8_0.gguf") else {
        skipped("Engine::embed errors", "bert-Q8_0.gguf not present");
        return;
    };
    let engine = embed_engine(&gguf, 64);
    let err = |r: nanorun::Result<nanorun::Embeddings>| r.expect_err("must fail").to_string();
    assert!(err(engine.embed(Vec::<String>::new(), false)).contains("nothing to embed"));
    let bad = err(engine.embed(vec![vec![2, 9999, 3]], false));
    assert!(bad.contains("vocabulary"), "{bad}");
    assert!(err(engine.embed(vec![vec![]], false)).contains("no tokens"));
    assert!(err(engine.embed(vec![vec![5; 129]], false)).contains("context_length"));
    // Generation on an embedding engine is refused, not a panic.
    let gen = engine
        .generate(nanorun::Request::new("hello").max_tokens(4))
        .expect_err("an embedding engine cannot generate")
        .to_string();
    assert!(
        gen.contains("embedding model") && gen.contains("bert"),
        "{gen}"
    );
    assert!(engine.chat_template().is_none() && engine.n_kv_blocks() == 0);
    // Still serving after the refusals.
    assert!(engine.is_running());
    assert_eq!(
        engine
            .embed("hello world", false)
            .expect("embed")
            .vectors
            .len(),
        1
    );

    // Embedding with a generation model is refused too.
    let gen_model = nanorun_tests::data_path("fixtures").join("gemma-Q4_K_M.gguf");
    if !gen_model.is_file() {
        skipped(
            "embed on a generation engine",
            "gemma-Q4_K_M.gguf not present",
        );
        return;
    }
    let g = nanorun::Engine::load(&gen_model, nanorun::EngineConfig::default()).expect("load");
    assert!(!g.is_embedding() && g.embedder().is_none() && g.model_config().is_some());
    let msg = err(g.embed(&["hello"], true));
    assert!(
        msg.contains("generation model") && msg.contains("cannot embed"),
        "{msg}"
    );
}
