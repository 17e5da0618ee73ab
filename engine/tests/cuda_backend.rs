//! The CUDA backend against the CPU backend: whole-model logits on the random-weight fixtures
//! of every attention-only architecture (prefill, decode, two sequences in one batch), and
//! greedy generation on the real model. Needs `--features cuda` and a CUDA device; elsewhere
//! each test prints SKIPPED and passes. These tests have not run on a GPU yet (docs/cuda.md).

#[test]
fn an_engine_on_cuda_where_cuda_cannot_run_is_an_error() {
    use nanorun::backend::{check_cuda, Device};
    if check_cuda(0).is_ok() {
        println!("SKIPPED: this machine can run CUDA");
        return;
    }
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/fixtures/gemma3-Q4_K_M.gguf");
    let model = nanorun::Model::open(&path).unwrap();
    let tok = nanorun::tokenizer::Tokenizer::from_gguf(model.gguf()).unwrap();
    let cfg = nanorun::EngineConfig::default();
    match nanorun::Engine::new_on(model, tok, cfg, Device::Cuda(0)) {
        Ok(_) => panic!("an engine started on CUDA without CUDA"),
        Err(e) => {
            let msg = e.to_string();
            let named = ["--features cuda", "driver", "device", "NVRTC"];
            assert!(named.iter().any(|w| msg.contains(w)), "{msg}");
        }
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_backend_tests_need_the_cuda_feature() {
    println!("SKIPPED: built without the cuda feature (cargo test -p nanorun --features cuda)");
}

#[cfg(feature = "cuda")]
mod with_cuda {
    use std::path::PathBuf;

    use nanorun::backend::{self, Backend, Device};
    use nanorun::{Batch, ForwardState, KvCache, KvCacheConfig, Model};

    const FIXTURES: &[&str] = &[
        "gemma-Q4_K_M",
        "gemma2-Q4_K_M",
        "gemma3-Q4_K_M",
        "granite-Q4_K_M",
        "llama-Q4_K_M",
        "olmo2-Q4_K_M",
        "phi3-Q4_K_M",
        "qwen2-Q4_K_M",
        "qwen3-Q4_K_M",
    ];

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn no_device(test: &str) -> bool {
        match backend::check_cuda(0) {
            Ok(()) => false,
            Err(e) => {
                println!("SKIPPED: no CUDA device ({e}): {test}");
                true
            }
        }
    }

    /// Runs the same batches through `b` with a fresh cache: a 19-token prefill of sequence 0
    /// (logits for every token), then three steps decoding sequence 0 and prefilling sequence
    /// 1 in one batch. Returns every logits row.
    fn drive(model: &Model, b: &mut dyn Backend) -> Vec<Vec<f32>> {
        let n_vocab = model.config().n_vocab;
        let mut kv = KvCache::new(model.config(), KvCacheConfig::for_context(256)).unwrap();
        kv.add_sequence(0).unwrap();
        kv.add_sequence(1).unwrap();
        let tok = |i: usize| (3 + (i * 37) % (n_vocab - 3)) as u32;
        let mut rows = Vec::new();
        let mut batch = Batch::new();
        let prompt: Vec<u32> = (0..19).map(tok).collect();
        batch.push_sequence(&prompt, 0, 0, false);
        batch.want_logits.iter_mut().for_each(|w| *w = true);
        kv.grow_to(0, 19).unwrap();
        let out = b.forward(model, &batch, &mut kv).unwrap();
        rows.extend(out.chunks_exact(n_vocab).map(|r| r.to_vec()));
        for step in 0..3 {
            batch.clear();
            batch.push(tok(100 + step), 19 + step, 0, true);
            batch.push_sequence(&[tok(200 + step), tok(300 + step)], 2 * step, 1, true);
            kv.grow_to(0, 20 + step).unwrap();
            kv.grow_to(1, 2 * step + 2).unwrap();
            let out = b.forward(model, &batch, &mut kv).unwrap();
            rows.extend(out.chunks_exact(n_vocab).map(|r| r.to_vec()));
        }
        rows
    }

    #[test]
    fn fixture_logits_match_the_cpu_backend() {
        if no_device("fixture_logits_match_the_cpu_backend") {
            return;
        }
        for name in FIXTURES {
            let path = root().join(format!("tests/data/fixtures/{name}.gguf"));
            let model = Model::open(&path).unwrap();
            let mut cpu = ForwardState::new(2);
            let mut gpu = backend::open(&model, Device::Cuda(0), 1).unwrap();
            let want = drive(&model, &mut cpu);
            let got = drive(&model, gpu.as_mut());
            compare(name, &want, &got);
        }
    }

    /// The whole forward pass on the CPU emulation of a device (the kernel sources built by
    /// g++, see `nanorun_cuda::emulate`): the host orchestration — uploads, buffer sizes,
    /// launch order, K/V pool, block tables — and the kernels, without a GPU.
    #[test]
    fn fixture_logits_match_the_cpu_backend_under_the_device_emulation() {
        let gpu = match nanorun_cuda::Gpu::emulated() {
            Ok(g) => std::sync::Arc::new(g),
            Err(e) => {
                println!("SKIPPED: no CPU emulation of the device ({e})");
                return;
            }
        };
        for name in FIXTURES {
            let path = root().join(format!("tests/data/fixtures/{name}.gguf"));
            let model = Model::open(&path).unwrap();
            let mut cpu = ForwardState::new(2);
            let mut emu =
                nanorun::backend::cuda::CudaBackend::with_gpu(&model, gpu.clone()).unwrap();
            compare(name, &drive(&model, &mut cpu), &drive(&model, &mut emu));
        }
    }

    /// Each logits row against the CPU's: cosine ≥ 0.995 and no logit off by more than 10% of
    /// the row's largest. The two differ in activation rounding (Q8_1 for every quantized type
    /// against the CPU's Q8_K for K-quants; f32 activations in the prefill matmul; GELU
    /// computed against the CPU's f16 table). Under the emulation the worst rows over all
    /// fixtures measured cos 0.998 and 6.6%; a real bug (K not rotated, say) gives cos ~0.2.
    fn compare(name: &str, want: &[Vec<f32>], got: &[Vec<f32>]) {
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
            let worst = g.iter().zip(w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            let dot: f64 = g.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum();
            let norm = |v: &[f32]| v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let cos = dot / (norm(g) * norm(w)).max(1e-30);
            assert!(
                cos >= 0.995 && worst <= 0.1 * scale,
                "{name} row {i}: cos {cos:.5}, max diff {worst} of {scale}"
            );
        }
    }

    #[test]
    fn greedy_generation_matches_the_cpu_on_the_real_model() {
        if no_device("greedy_generation_matches_the_cpu_on_the_real_model") {
            return;
        }
        let path = root().join("models/gemma-3-270m-q4_k_m.gguf");
        if !path.exists() {
            println!("SKIPPED: {} is absent", path.display());
            return;
        }
        let model = Model::open(&path).unwrap();
        let n_vocab = model.config().n_vocab;
        let prompt = [2u32, 818, 5279, 529, 7001, 563]; // "The capital of France is"
        let greedy = |b: &mut dyn Backend| -> Vec<(u32, Vec<f32>)> {
            let mut kv = KvCache::new(model.config(), KvCacheConfig::for_context(128)).unwrap();
            kv.add_sequence(0).unwrap();
            let mut batch = Batch::new();
            batch.push_sequence(&prompt, 0, 0, true);
            kv.grow_to(0, prompt.len()).unwrap();
            let mut logits = b.forward(&model, &batch, &mut kv).unwrap().to_vec();
            let mut out = Vec::new();
            for i in 0..32 {
                let tok = (0..n_vocab).fold(0, |m, j| if logits[j] > logits[m] { j } else { m });
                out.push((tok as u32, logits.clone()));
                batch.clear();
                batch.push(tok as u32, prompt.len() + i, 0, true);
                kv.grow_to(0, prompt.len() + i + 1).unwrap();
                logits = b.forward(&model, &batch, &mut kv).unwrap().to_vec();
            }
            out
        };
        let mut cpu = ForwardState::new(2);
        let mut gpu = backend::open(&model, Device::Cuda(0), 1).unwrap();
        let want = greedy(&mut cpu);
        let got = greedy(gpu.as_mut());
        for (i, ((g, _), (w, wl))) in got.iter().zip(&want).enumerate() {
            if g != w {
                // The near-tie rule: a different pick is accepted only where the CPU's two
                // candidates are within 0.25 of each other; the texts part there.
                let gap = (wl[*w as usize] - wl[*g as usize]).abs();
                assert!(gap < 0.25, "step {i}: cuda {g}, cpu {w}, cpu gap {gap}");
                println!("step {i}: near tie (gap {gap}), generations part here");
                return;
            }
        }
    }
}
