//! Serving many sequences: batch invariance of `Model::forward`, prefix sharing through
//! `KvCache::fork_prefix`, and the `Engine` (concurrent requests give the tokens each gives
//! alone, cancellation frees blocks, bad requests are refused). The random-weight fixtures
//! run in well under a second; the real Gemma 3 270M test skips when the model is absent.

use std::path::PathBuf;
use std::sync::Arc;

use nanorun::sampler::SamplingParams;
use nanorun::tokenizer::Tokenizer;
use nanorun::{
    Batch, Engine, EngineConfig, Event, FinishReason, ForwardState, KvCache, KvCacheConfig, Model,
    Request,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/data/fixtures/{name}.gguf"))
}

fn real_model() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/gemma-3-270m-q4_k_m.gguf");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {} is absent", p.display());
        None
    }
}

fn prompt(seed: u32, len: usize) -> Vec<u32> {
    (0..len as u32)
        .map(|i| 3 + (seed * 37 + i * 11) % 300)
        .collect()
}

/// A forward state with batch-invariant numerics: what these tests compare bit for bit is
/// only equal when a token's float order does not depend on its batch (as in `Engine`).
fn invariant_state() -> ForwardState {
    let mut st = ForwardState::new(2);
    st.set_batch_invariant(true);
    st
}

/// Logits of the last token of each prompt, computed in one batch or one sequence at a time.
fn last_logits(model: &Model, prompts: &[Vec<u32>], together: bool) -> Vec<Vec<f32>> {
    let mut kv = KvCache::new(model.config(), KvCacheConfig::for_context(1024)).unwrap();
    let mut st = invariant_state();
    let n_vocab = model.config().n_vocab;
    let mut out = Vec::new();
    let mut batch = Batch::new();
    for (i, p) in prompts.iter().enumerate() {
        kv.add_sequence(i as u32).unwrap();
        kv.grow_to(i as u32, p.len()).unwrap();
        batch.push_sequence(p, 0, i as u32, true);
        if !together {
            out.push(model.forward(&batch, &mut kv, &mut st).unwrap().to_vec());
            batch.clear();
        }
    }
    if together {
        let l = model.forward(&batch, &mut kv, &mut st).unwrap();
        out = l.chunks(n_vocab).map(<[f32]>::to_vec).collect();
    }
    out
}

#[test]
fn sequences_batched_together_give_the_logits_each_gives_alone() {
    for name in ["llama-Q4_K_M", "gemma3-Q4_K_M"] {
        let model = Model::open(fixture(name)).unwrap();
        let prompts = vec![prompt(1, 7), prompt(2, 19), prompt(3, 1)];
        let alone = last_logits(&model, &prompts, false);
        let together = last_logits(&model, &prompts, true);
        assert_eq!(alone, together, "{name}: batch changed the logits");
    }
}

#[test]
fn a_forked_prefix_gives_the_logits_of_a_full_prefill() {
    for name in ["llama-Q4_K_M", "gemma3-Q4_K_M"] {
        let model = Model::open(fixture(name)).unwrap();
        let mut kv = KvCache::new(model.config(), KvCacheConfig::for_context(512)).unwrap();
        let mut st = invariant_state();
        let shared = prompt(9, 37); // 2 full blocks of 16 and a partial one
        let mut full = shared.clone();
        full.extend(prompt(4, 5));
        // Sequence 0 reads the shared part only.
        let mut b = Batch::new();
        kv.add_sequence(0).unwrap();
        kv.grow_to(0, shared.len()).unwrap();
        b.push_sequence(&shared, 0, 0, true);
        model.forward(&b, &mut kv, &mut st).unwrap();
        // Sequence 1 starts from it and reads only its own tail.
        let free_before = kv.free_blocks();
        kv.fork_prefix(0, 1, shared.len()).unwrap();
        assert_eq!(
            kv.free_blocks()[0],
            free_before[0] - 1,
            "only the partial block is copied"
        );
        kv.grow_to(1, full.len()).unwrap();
        b.clear();
        b.push_sequence(&full[shared.len()..], shared.len(), 1, true);
        let forked = model.forward(&b, &mut kv, &mut st).unwrap().to_vec();
        // Sequence 0 goes on differently: the shared blocks must not change under it.
        kv.grow_to(0, shared.len() + 1).unwrap();
        b.clear();
        b.push(5, shared.len(), 0, false);
        model.forward(&b, &mut kv, &mut st).unwrap();
        // Sequence 2 reads everything itself.
        kv.add_sequence(2).unwrap();
        kv.grow_to(2, full.len()).unwrap();
        b.clear();
        b.push_sequence(&full, 0, 2, true);
        let direct = model.forward(&b, &mut kv, &mut st).unwrap().to_vec();
        assert_eq!(forked, direct, "{name}");
        for s in 0..3 {
            kv.remove_sequence(s);
        }
        assert_eq!(kv.free_blocks(), kv.total_blocks(), "{name}: blocks leaked");
    }
}

/// Clears the prefix cache and waits until no block is in use; returns the metrics then.
fn drained(e: &Engine) -> nanorun::MetricsSnapshot {
    e.clear_prefix_cache();
    for _ in 0..1000 {
        let m = e.metrics();
        if m.kv_blocks_used == 0 && m.running == 0 && m.waiting == 0 && m.cached_seqs == 0 {
            return m;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("blocks still in use: {:?}", e.metrics());
}

fn engine(path: PathBuf, cfg: EngineConfig) -> Engine {
    let model = Model::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(model.gguf()).unwrap();
    Engine::new(model, tok, cfg).unwrap()
}

fn greedy_tokens(e: &Engine, p: Vec<u32>, n: usize) -> Vec<u32> {
    let req = Request::from_tokens(p).max_tokens(n).greedy();
    let mut r = req;
    r.ignore_eos = true;
    e.generate(r).unwrap().tokens
}

#[test]
fn concurrent_greedy_requests_give_the_tokens_each_gives_alone() {
    let cfg = EngineConfig {
        n_threads: 2,
        n_ctx: 1024,
        max_seqs: 4,
        max_batch_tokens: 32,
        ..EngineConfig::default()
    };
    let e = Arc::new(engine(fixture("gemma3-Q4_K_M"), cfg));
    let prompts: Vec<Vec<u32>> = (0..6).map(|i| prompt(i, 5 + 9 * i as usize)).collect();
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| greedy_tokens(&e, p.clone(), 12))
        .collect();
    let handles: Vec<_> = prompts
        .iter()
        .cloned()
        .map(|p| {
            let e = e.clone();
            std::thread::spawn(move || greedy_tokens(&e, p, 12))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), alone[i], "request {i}");
    }
    let m = drained(&e);
    assert_eq!(m.finished, 12);
}

#[test]
fn a_small_cache_preempts_and_still_gives_the_same_tokens() {
    let cfg = EngineConfig {
        n_threads: 2,
        n_ctx: 160, // 10 blocks of 16: four sequences of 60 tokens cannot all fit
        max_seqs: 4,
        max_batch_tokens: 64,
        prefix_sharing: false,
        ..EngineConfig::default()
    };
    let e = Arc::new(engine(fixture("llama-Q4_K_M"), cfg));
    let prompts: Vec<Vec<u32>> = (0..4).map(|i| prompt(i + 20, 30)).collect();
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| greedy_tokens(&e, p.clone(), 30))
        .collect();
    let streams: Vec<_> = prompts
        .iter()
        .map(|p| {
            let mut r = Request::from_tokens(p.clone()).max_tokens(30).greedy();
            r.ignore_eos = true;
            e.submit(r).unwrap()
        })
        .collect();
    for (i, s) in streams.into_iter().enumerate() {
        assert_eq!(s.wait().unwrap().tokens, alone[i], "request {i}");
    }
    let m = drained(&e);
    assert!(m.preemptions > 0, "expected preemptions: {m:?}");
}

#[test]
fn shared_prompt_prefixes_skip_prefill_and_change_nothing() {
    let cfg = EngineConfig {
        n_threads: 2,
        n_ctx: 2048,
        max_seqs: 4,
        max_batch_tokens: 256,
        prefix_cache: 0, // live sharing only: the runs alone must not lend their prefixes
        ..EngineConfig::default()
    };
    // (Not gemma3: its fixture's window of 8 tokens has moved past the shared prefix.)
    let e = engine(fixture("llama-Q4_K_M"), cfg);
    let system = prompt(42, 100);
    let prompts: Vec<Vec<u32>> = (0..4)
        .map(|i| [system.clone(), prompt(i, 10)].concat())
        .collect();
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| greedy_tokens(&e, p.clone(), 8))
        .collect();
    let before = e.metrics();
    let streams: Vec<_> = prompts
        .iter()
        .map(|p| {
            let mut r = Request::from_tokens(p.clone()).max_tokens(8).greedy();
            r.ignore_eos = true;
            e.submit(r).unwrap()
        })
        .collect();
    let mut cached = 0;
    for (i, s) in streams.into_iter().enumerate() {
        let c = s.wait().unwrap();
        assert_eq!(c.tokens, alone[i], "request {i}");
        cached += c.usage.cached_tokens;
    }
    let after = e.metrics();
    assert_eq!(
        cached,
        3 * 100,
        "three of four requests reuse the 100-token prefix"
    );
    assert_eq!(after.cached_tokens - before.cached_tokens, 300);
    drained(&e);
}

#[test]
fn dropping_or_cancelling_a_stream_frees_its_blocks() {
    let cfg = EngineConfig {
        n_threads: 2,
        n_ctx: 1024,
        prefix_cache: 0,
        ..EngineConfig::default()
    };
    let e = engine(fixture("llama-Q4_K_M"), cfg);
    let mut a = Request::from_tokens(prompt(1, 20)).max_tokens(100_000);
    a.ignore_eos = true;
    let mut sa = e.submit(a.clone()).unwrap();
    let sb = e.submit(a).unwrap();
    assert!(matches!(sa.recv(), Some(Event::Token { .. })));
    // Both at once, right after the first token: the fixture's 128-token context lets a fast
    // machine finish a sequence by length within milliseconds.
    drop(sa);
    e.cancel(sb.id());
    let end = sb.iter().last().unwrap();
    assert!(
        matches!(
            end,
            Event::Finished {
                reason: FinishReason::Cancelled,
                ..
            }
        ),
        "{end:?}"
    );
    for _ in 0..500 {
        let m = e.metrics();
        if m.kv_blocks_used == 0 && m.running == 0 && m.cancelled == 2 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("blocks not freed: {:?}", e.metrics());
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    let cfg = EngineConfig {
        n_threads: 1,
        n_ctx: 64,
        ..EngineConfig::default()
    };
    let e = engine(fixture("llama-Q4_K_M"), cfg);
    let err = |r: Request| e.submit(r).unwrap_err().to_string();
    assert!(err(Request::from_tokens(vec![])).contains("empty"));
    assert!(err(Request::from_tokens(vec![1; 64])).contains("context"));
    assert!(err(Request::from_tokens(vec![100_000])).contains("vocabulary"));
    let bad = SamplingParams {
        temperature: -1.0,
        ..SamplingParams::default()
    };
    assert!(err(Request::from_tokens(vec![1]).sampling(bad)).contains("temperature"));
    assert!(err(Request::from_tokens(vec![1]).stop([""])).contains("stop"));
    // The engine still serves.
    let c = e
        .generate(Request::from_tokens(vec![1, 5, 9]).max_tokens(3).greedy())
        .unwrap();
    assert!(c.usage.completion_tokens <= 3 && c.usage.prompt_tokens == 3);
}

#[test]
fn real_model_concurrent_greedy_matches_alone() {
    let Some(path) = real_model() else { return };
    let cfg = EngineConfig {
        n_ctx: 4096,
        max_seqs: 4,
        ..EngineConfig::default()
    };
    let e = Arc::new(engine(path, cfg));
    let texts = [
        "The capital of France is",
        "Once upon a time",
        "1, 2, 3, 4,",
        "def fibonacci(n):",
    ];
    let run = |e: &Engine, t: &str| {
        let c = e.generate(Request::new(t).max_tokens(16).greedy()).unwrap();
        (c.tokens, c.text)
    };
    let alone: Vec<_> = texts.iter().map(|t| run(&e, t)).collect();
    let handles: Vec<_> = texts
        .iter()
        .map(|t| {
            let (e, t) = (e.clone(), t.to_string());
            std::thread::spawn(move || run(&e, &t))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), alone[i], "prompt {:?}", texts[i]);
    }
    drained(&e);
}

/// 16 client threads submit random requests (shared and distinct prompts, random lengths,
/// greedy and sampled) into a cache small enough to force preemption, and cancel some at
/// random, by id or by dropping the stream. Runs 2 s by default; `NANORUN_SOAK_SECS=300`
/// makes it the few-minute soak. Every request must end cleanly and no block may leak.
#[test]
fn soak_random_requests_and_cancellations_leak_nothing() {
    let secs: u64 = std::env::var("NANORUN_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let cfg = EngineConfig {
        n_threads: 2,
        n_ctx: 256, // 16 blocks: six sequences of up to 128 tokens need preemption
        max_seqs: 6,
        max_batch_tokens: 48,
        ..EngineConfig::default()
    };
    let e = Arc::new(engine(fixture("llama-Q4_K_M"), cfg));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let shared = prompt(77, 40);
    let clients: Vec<_> = (0..16u64)
        .map(|c| {
            let (e, shared) = (e.clone(), shared.clone());
            std::thread::spawn(move || {
                let mut rng =
                    0x9E37_79B9_7F4A_7C15u64 ^ (c + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                let mut next = move |n: u64| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng % n
                };
                let mut done = 0;
                while std::time::Instant::now() < deadline {
                    let mut p = if next(2) == 0 {
                        shared.clone()
                    } else {
                        Vec::new()
                    };
                    p.extend(prompt(next(1000) as u32, 1 + next(60) as usize));
                    let mut r = Request::from_tokens(p).max_tokens(1 + next(40) as usize);
                    if next(2) == 0 {
                        r = r.greedy();
                    }
                    r.ignore_eos = next(2) == 0;
                    let mut s = e.submit(r).expect("valid request");
                    match next(4) {
                        0 => {
                            // Drop after a few tokens.
                            for _ in 0..next(5) {
                                s.recv();
                            }
                            drop(s);
                        }
                        1 => {
                            e.cancel(s.id());
                            let end = s.iter().last().expect("an end event");
                            assert!(matches!(end, Event::Finished { .. }), "{end:?}");
                        }
                        _ => {
                            s.wait().expect("request ends cleanly");
                        }
                    }
                    done += 1;
                }
                done
            })
        })
        .collect();
    let total: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    for _ in 0..500 {
        let m = e.metrics();
        if m.running == 0 && m.waiting == 0 {
            let m = drained(&e);
            assert_eq!(m.failed, 0);
            assert_eq!(m.requests as usize, total);
            eprintln!(
                "soak: {total} requests in {secs} s, {} preemptions",
                m.preemptions
            );
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("blocks leaked or requests stuck: {:?}", e.metrics());
}

#[test]
fn a_later_request_reuses_a_finished_requests_prefix() {
    let cfg = EngineConfig {
        n_threads: 2,
        n_ctx: 1024,
        prefix_cache: 4,
        ..EngineConfig::default()
    };
    let e = engine(fixture("llama-Q4_K_M"), cfg);
    // Turn 1, then turn 2 resending turn 1 and its answer, as a chat client does.
    let turn1 = prompt(3, 50);
    let c1 = e
        .generate(Request::from_tokens(turn1.clone()).max_tokens(10).greedy())
        .unwrap();
    assert_eq!(c1.usage.cached_tokens, 0);
    let turn2 = [turn1, c1.tokens.clone(), prompt(4, 20)].concat();
    let c2 = e
        .generate(Request::from_tokens(turn2.clone()).max_tokens(5).greedy())
        .unwrap();
    // Everything turn 1 computed: its prompt and all but its last generated token.
    assert_eq!(c2.usage.cached_tokens, 50 + c1.tokens.len() - 1);
    let fresh = engine(
        fixture("llama-Q4_K_M"),
        EngineConfig {
            n_threads: 2,
            n_ctx: 1024,
            prefix_cache: 0,
            ..EngineConfig::default()
        },
    );
    let c2_fresh = fresh
        .generate(Request::from_tokens(turn2).max_tokens(5).greedy())
        .unwrap();
    assert_eq!(c2.tokens, c2_fresh.tokens, "reused K/V changes nothing");
    assert_eq!(e.metrics().cached_seqs, 2);
    drained(&e);
}

#[test]
fn stop_strings_end_the_text_before_them_and_seeded_sampling_is_reproducible() {
    let Some(path) = real_model() else { return };
    let cfg = EngineConfig {
        n_ctx: 2048,
        max_seqs: 4,
        ..EngineConfig::default()
    };
    let e = Arc::new(engine(path, cfg));
    let full = e
        .generate(
            Request::new("The capital of France is")
                .max_tokens(24)
                .greedy(),
        )
        .unwrap();
    // A stop string from the middle of the text: the completion ends right before it.
    let mid = full.text.char_indices().map(|(i, _)| i).nth(12).unwrap();
    let stop: String = full.text[mid..].chars().take(4).collect();
    let c = e
        .generate(
            Request::new("The capital of France is")
                .max_tokens(24)
                .greedy()
                .stop([stop.clone()]),
        )
        .unwrap();
    assert_eq!(c.finish, FinishReason::Stop, "{c:?}");
    assert_eq!(
        c.text,
        full.text[..full.text.find(&stop).unwrap()],
        "stop {stop:?}"
    );
    // Seeded sampling: the same tokens alone and among other requests.
    let sampled = |seed| {
        Request::new("Once upon a time")
            .max_tokens(16)
            .sampling(SamplingParams {
                seed: Some(seed),
                ..SamplingParams::default()
            })
    };
    let alone: Vec<Vec<u32>> = (0..3)
        .map(|s| e.generate(sampled(s)).unwrap().tokens)
        .collect();
    let streams: Vec<_> = (0..3).map(|s| e.submit(sampled(s)).unwrap()).collect();
    for (s, st) in streams.into_iter().enumerate() {
        assert_eq!(st.wait().unwrap().tokens, alone[s], "seed {s}");
    }
}
