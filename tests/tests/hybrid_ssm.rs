//! Granite 4.0-H (Mamba2 + attention layers) on the engine's batches and cache, with the
//! random-weight `granitehybrid` fixture: batching does not change a sequence's numbers,
//! prefill (chunked scan) agrees with token-by-token decode (step scan), recurrent-state slots
//! are allocated and freed with their sequences, and misuse is refused without corrupting
//! state. (Agreement with llama.cpp's logits is in `fixture_logits`.)

// Schedules are lists of position ranges; a one-range schedule is a real case, not a typo.
#![allow(clippy::single_range_in_vec_init)]

use std::ops::Range;
use std::sync::Arc;

use nanorun::formats::{Gguf, GgufWriter};
use nanorun::model::ssm::ScanMode;
use nanorun::tokenizer::Tokenizer;
use nanorun::{
    Batch, CacheType, Engine, EngineConfig, ForwardState, KvCache, KvCacheConfig, Model, Request,
    SeqId,
};
use nanorun_tests::data_path;

const N_VOCAB: usize = 320;
const TOKENS: [u32; 24] = [
    1, 14, 111, 208, 305, 85, 182, 279, 59, 156, 253, 33, 130, 227, 7, 104, 201, 298, 78, 175, 272,
    52, 149, 246,
];

fn model() -> Model {
    Model::open(data_path("fixtures/granitehybrid-Q4_K_M.gguf")).unwrap()
}

fn cache(model: &Model, max_seqs: usize) -> KvCache {
    let mut cfg = KvCacheConfig::for_context(256);
    cfg.type_k = CacheType::F32;
    cfg.type_v = CacheType::F32;
    cfg.max_seqs = max_seqs;
    KvCache::new(model.config(), cfg).unwrap()
}

/// Runs `tokens` of `seq` in steps covering `splits`, logits for every token.
fn run(
    model: &Model,
    kv: &mut KvCache,
    st: &mut ForwardState,
    seq: SeqId,
    tokens: &[u32],
    splits: &[Range<usize>],
) -> Vec<f32> {
    let mut out = Vec::new();
    for r in splits {
        kv.grow_to(seq, r.end).unwrap();
        let mut batch = Batch::new();
        for p in r.clone() {
            batch.push(tokens[p], p, seq, true);
        }
        out.extend_from_slice(model.forward(&batch, kv, st).unwrap());
    }
    out
}

/// Batch-invariant numerics: the bit-for-bit comparisons below hold only when a token's float
/// order does not depend on the batch it is in (by default large batches round as llama.cpp's).
fn invariant_state() -> ForwardState {
    let mut st = ForwardState::new(2);
    st.set_batch_invariant(true);
    st
}

fn alone(model: &Model, tokens: &[u32], splits: &[Range<usize>]) -> Vec<f32> {
    alone_with(model, tokens, splits, ScanMode::default())
}

fn alone_with(model: &Model, tokens: &[u32], splits: &[Range<usize>], mode: ScanMode) -> Vec<f32> {
    let mut kv = cache(model, 1);
    let mut st = invariant_state();
    st.set_ssm_scan(mode);
    kv.add_sequence(3).unwrap();
    run(model, &mut kv, &mut st, 3, tokens, splits)
}

#[test]
fn two_sequences_in_one_batch_equal_each_alone() {
    let model = model();
    let a = &TOKENS[..14];
    let b: Vec<u32> = TOKENS.iter().rev().take(12).copied().collect();
    // Prefill in two parts, then one decode step each: the batches mix a continuing
    // sequence with the other's prompt, then two decodes.
    let sa = [0..6, 6..13, 13..14];
    let sb = [0..4, 4..11, 11..12];
    let (want_a, want_b) = (alone(&model, a, &sa), alone(&model, &b, &sb));

    let mut kv = cache(&model, 2);
    let mut st = invariant_state();
    kv.add_sequence(10).unwrap();
    kv.add_sequence(20).unwrap();
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    for (ra, rb) in sa.iter().zip(&sb) {
        kv.grow_to(10, ra.end).unwrap();
        kv.grow_to(20, rb.end).unwrap();
        let mut batch = Batch::new();
        let (mut ia, mut ib) = (ra.clone(), rb.clone());
        loop {
            let (pa, pb) = (ia.next(), ib.next());
            if pa.is_none() && pb.is_none() {
                break;
            }
            if let Some(p) = pb {
                batch.push(b[p], p, 20, true);
            }
            if let Some(p) = pa {
                batch.push(a[p], p, 10, true);
            }
        }
        let out = model.forward(&batch, &mut kv, &mut st).unwrap();
        for (row, &seq) in out.chunks_exact(N_VOCAB).zip(&batch.seq_ids) {
            match seq {
                10 => got_a.extend_from_slice(row),
                _ => got_b.extend_from_slice(row),
            }
        }
    }
    assert_eq!(got_a, want_a, "sequence A differs when batched");
    assert_eq!(got_b, want_b, "sequence B differs when batched");
}

/// Largest |a − b| over a row, relative to the row's standard deviation.
fn rel_max(a: &[f32], b: &[f32]) -> f32 {
    let mut worst = 0f32;
    for (p, d) in a.chunks_exact(N_VOCAB).zip(b.chunks_exact(N_VOCAB)) {
        let mean = p.iter().sum::<f32>() / N_VOCAB as f32;
        let std = (p.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / N_VOCAB as f32).sqrt();
        let m = p
            .iter()
            .zip(d)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        worst = worst.max(m / std);
    }
    worst
}

#[test]
fn prefill_agrees_with_token_by_token_decode_in_both_scan_forms() {
    let model = model();
    let n = TOKENS.len();
    let steps: Vec<Range<usize>> = (0..n).map(|p| p..p + 1).collect();
    let decode = alone(&model, &TOKENS, &steps);
    for mode in [ScanMode::Steps, ScanMode::Chunked] {
        let prefill = alone_with(&model, &TOKENS, &[0..n], mode);
        let r = rel_max(&prefill, &decode);
        assert!(r < 1e-4, "{mode:?}: rel_max {r}");
    }
}

#[test]
fn stepping_prefill_does_not_depend_on_how_the_prompt_is_split() {
    let model = model();
    let whole = alone(&model, &TOKENS, &[0..24]);
    assert_eq!(alone(&model, &TOKENS, &[0..5, 5..17, 17..24]), whole);
    assert_eq!(alone(&model, &TOKENS, &[0..1, 1..2, 2..24]), whole);
    // The chunked form agrees to rounding, whatever the split.
    let chunked = alone_with(&model, &TOKENS, &[0..5, 5..17, 17..24], ScanMode::Chunked);
    let r = rel_max(&chunked, &whole);
    assert!(r < 1e-4, "chunked vs steps: rel_max {r}");
}

#[test]
fn recurrent_slots_come_and_go_with_sequences() {
    let model = model();
    let mut kv = cache(&model, 2);
    let mut st = ForwardState::new(1);
    assert!(kv.recurrent().has_layers());
    assert_eq!(kv.recurrent().capacity(), 2);
    kv.add_sequence(0).unwrap();
    kv.add_sequence(1).unwrap();
    let err = kv.add_sequence(2).unwrap_err().to_string();
    assert!(err.contains("recurrent state pool exhausted"), "{err}");
    assert!(
        !kv.has_sequence(2),
        "a refused sequence leaves nothing behind"
    );
    kv.remove_sequence(0);
    kv.add_sequence(2).unwrap();
    for i in 0..40u32 {
        let seq = 100 + i;
        kv.remove_sequence(if i == 0 { 1 } else { seq - 1 });
        kv.add_sequence(seq).unwrap();
        run(&model, &mut kv, &mut st, seq, &TOKENS[..3], &[0..3]);
        assert_eq!(kv.recurrent().n_free(), 0);
    }
    kv.remove_sequence(139);
    kv.remove_sequence(2);
    assert_eq!(kv.recurrent().n_free(), 2, "every slot is back");
    assert_eq!(
        kv.free_blocks(),
        kv.total_blocks(),
        "every KV block is back"
    );
}

#[test]
fn misplaced_tokens_are_refused_and_state_survives() {
    let model = model();
    let want = alone(&model, &TOKENS[..8], &[0..5, 5..8]);
    let mut kv = cache(&model, 2);
    let mut st = invariant_state();
    kv.add_sequence(1).unwrap();
    let mut got = run(&model, &mut kv, &mut st, 1, &TOKENS, &[0..5]);
    kv.grow_to(1, 9).unwrap();
    for (pos, seq) in [(3usize, 1), (6, 1), (5, 9)] {
        let mut batch = Batch::new();
        batch.push(TOKENS[pos], pos, seq, true);
        assert!(
            model.forward(&batch, &mut kv, &mut st).is_err(),
            "pos {pos}"
        );
    }
    // A sequence repeating a position within one batch is refused too.
    let mut batch = Batch::new();
    batch.push(TOKENS[5], 5, 1, true);
    batch.push(TOKENS[5], 5, 1, true);
    assert!(model.forward(&batch, &mut kv, &mut st).is_err());
    got.extend(run(&model, &mut kv, &mut st, 1, &TOKENS, &[5..8]));
    assert_eq!(got, want, "refused batches left the state untouched");

    // Removing and re-adding a sequence starts it afresh.
    kv.remove_sequence(1);
    kv.add_sequence(1).unwrap();
    let again = run(&model, &mut kv, &mut st, 1, &TOKENS, &[0..5, 5..8]);
    assert_eq!(again, want);
}

#[test]
fn ssm_keys_are_required_and_named() {
    let path = data_path("fixtures/granitehybrid-Q4_K_M.gguf");
    let gguf = Gguf::open(&path).unwrap();
    let dir = std::env::temp_dir().join(format!("nanorun-hybrid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for key in [
        "granitehybrid.ssm.state_size",
        "granitehybrid.ssm.conv_kernel",
        "granitehybrid.ssm.group_count",
    ] {
        let mut w = GgufWriter::from_gguf(&gguf);
        w.remove(key);
        let out = dir.join("missing.gguf");
        w.write_file(&out).unwrap();
        let err = Model::open(&out).unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
    let mut w = GgufWriter::from_gguf(&gguf);
    w.set_u32("granitehybrid.ssm.time_step_rank", 7);
    let out = dir.join("bad.gguf");
    w.write_file(&out).unwrap();
    let err = Model::open(&out).unwrap_err().to_string();
    assert!(err.contains("granitehybrid.ssm.time_step_rank"), "{err}");
    // Mixture-of-experts hybrids (Granite 4.0-H Tiny/Small) are refused by name.
    let mut w = GgufWriter::from_gguf(&gguf);
    w.set_u32("granitehybrid.expert_count", 4);
    let out = dir.join("moe.gguf");
    w.write_file(&out).unwrap();
    let err = Model::open(&out).unwrap_err().to_string();
    assert!(err.contains("granitehybrid.expert_count"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn prefix_sharing_copies_state_only_at_the_source_end() {
    let model = model();
    let want = alone(&model, &TOKENS[..10], &[0..7, 7..10]);
    let mut kv = cache(&model, 3);
    let mut st = invariant_state();
    kv.add_sequence(1).unwrap();
    run(&model, &mut kv, &mut st, 1, &TOKENS, &[0..7]);
    // Mid-prefix: the state is not available there; refused, nothing taken.
    let free = (kv.recurrent().n_free(), kv.free_blocks());
    assert!(kv.fork_prefix(1, 2, 5).is_err());
    assert!(!kv.has_sequence(2));
    assert_eq!((kv.recurrent().n_free(), kv.free_blocks()), free);
    // At the source's end: K/V shared, state copied; both continue like a lone sequence.
    kv.fork_prefix(1, 2, 7).unwrap();
    let tail = &want[7 * N_VOCAB..];
    assert_eq!(run(&model, &mut kv, &mut st, 2, &TOKENS, &[7..10]), tail);
    assert_eq!(run(&model, &mut kv, &mut st, 1, &TOKENS, &[7..10]), tail);
    kv.remove_sequence(1);
    kv.remove_sequence(2);
    assert_eq!(kv.recurrent().n_free(), 3);
}

fn prompt(seed: u32, len: usize) -> Vec<u32> {
    (0..len as u32)
        .map(|i| 3 + (seed * 37 + i * 11) % 300)
        .collect()
}

fn engine(cfg: EngineConfig) -> Arc<Engine> {
    let model = model();
    let tok = Tokenizer::from_gguf(model.gguf()).unwrap();
    Arc::new(Engine::new(model, tok, cfg).unwrap())
}

fn greedy(e: &Engine, p: Vec<u32>, n: usize) -> Vec<u32> {
    let mut r = Request::from_tokens(p).max_tokens(n).greedy();
    r.ignore_eos = true;
    e.generate(r).unwrap().tokens
}

/// Submits every prompt at once and checks each gets the tokens it gets alone.
fn concurrent_equals_alone(e: &Engine, prompts: &[Vec<u32>], n: usize) {
    let alone: Vec<Vec<u32>> = prompts.iter().map(|p| greedy(e, p.clone(), n)).collect();
    let streams: Vec<_> = prompts
        .iter()
        .map(|p| {
            let mut r = Request::from_tokens(p.clone()).max_tokens(n).greedy();
            r.ignore_eos = true;
            e.submit(r).unwrap()
        })
        .collect();
    for (i, s) in streams.into_iter().enumerate() {
        assert_eq!(s.wait().unwrap().tokens, alone[i], "request {i}");
    }
}

#[test]
fn engine_serves_hybrid_requests_concurrently_as_alone() {
    let e = engine(EngineConfig {
        n_threads: 2,
        n_ctx: 1024,
        max_seqs: 3,
        max_batch_tokens: 24,
        ..EngineConfig::default()
    });
    // Six requests over three recurrent slots, prompts split over steps by the token budget.
    let prompts: Vec<Vec<u32>> = (0..6).map(|i| prompt(i, 5 + 9 * i as usize)).collect();
    concurrent_equals_alone(&e, &prompts, 10);
    let m = e.metrics();
    assert_eq!(m.kv_blocks_used, 0);
}

#[test]
fn engine_preempts_hybrid_requests_and_still_matches() {
    let e = engine(EngineConfig {
        n_threads: 2,
        n_ctx: 160,
        max_seqs: 4,
        max_batch_tokens: 64,
        prefix_sharing: false,
        ..EngineConfig::default()
    });
    let prompts: Vec<Vec<u32>> = (0..4).map(|i| prompt(i + 20, 30)).collect();
    concurrent_equals_alone(&e, &prompts, 30);
    let m = e.metrics();
    assert!(m.preemptions > 0, "expected preemptions: {m:?}");
    assert_eq!(m.kv_blocks_used, 0);
}

#[test]
fn engine_prefix_sharing_on_a_hybrid_changes_nothing() {
    let e = engine(EngineConfig {
        n_threads: 2,
        n_ctx: 2048,
        max_seqs: 4,
        max_batch_tokens: 256,
        ..EngineConfig::default()
    });
    let system = prompt(42, 100);
    let prompts: Vec<Vec<u32>> = (0..4)
        .map(|i| [system.clone(), prompt(i, 10)].concat())
        .collect();
    concurrent_equals_alone(&e, &prompts, 8);
    assert_eq!(e.metrics().kv_blocks_used, 0);
}
