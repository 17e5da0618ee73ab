//! Every architecture against llama.cpp's logits: the random-weight fixtures, prefill (24
//! tokens in one batch, logits for all) and prefill + token-by-token decode, compared with the
//! rule of the fixtures' README (relative error per row against the row's std, and argmax
//! agreement where llama.cpp's top-2 margin is clear).

use std::path::{Path, PathBuf};

use nanorun::{Batch, CacheType, ForwardState, KvCache, KvCacheConfig, Model};
use nanorun_tests::{data_path, gguf_files, shared_dir, skipped};

const N_VOCAB: usize = 320;
const TOKENS: [u32; 24] = [
    1, 14, 111, 208, 305, 85, 182, 279, 59, 156, 253, 33, 130, 227, 7, 104, 201, 298, 78, 175, 272,
    52, 149, 246,
];

fn read_f32(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// (rel_max, rel_mean) limits by weight type, from the fixtures' README.
fn limits(name: &str) -> (f32, f32, f32) {
    // (rel_max, rel_mean, argmax margin in stds)
    if name.ends_with("-F32") {
        (1e-4, 2e-5, 0.02)
    } else if name.ends_with("-F16") {
        (1e-2, 3e-3, 0.02)
    } else if name.ends_with("-BF16") {
        (5e-2, 1.5e-2, 0.02)
    } else {
        (0.30, 0.08, 0.2)
    }
}

fn compare(name: &str, what: &str, ours: &[f32], theirs: &[f32]) -> f32 {
    let (max_lim, mean_lim, margin_lim) = limits(name);
    let mut worst = 0f32;
    for (r, (e, l)) in ours
        .chunks_exact(N_VOCAB)
        .zip(theirs.chunks_exact(N_VOCAB))
        .enumerate()
    {
        let mean = l.iter().sum::<f32>() / N_VOCAB as f32;
        let std = (l.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / N_VOCAB as f32).sqrt();
        let diffs: Vec<f32> = e.iter().zip(l).map(|(a, b)| (a - b).abs()).collect();
        let rel_max = diffs.iter().copied().fold(0.0, f32::max) / std;
        let rel_mean = diffs.iter().sum::<f32>() / N_VOCAB as f32 / std;
        worst = worst.max(rel_max);
        assert!(
            rel_max.is_finite() && rel_max <= max_lim,
            "{name} {what} row {r}: rel_max {rel_max} > {max_lim}"
        );
        assert!(
            rel_mean <= mean_lim,
            "{name} {what} row {r}: rel_mean {rel_mean} > {mean_lim}"
        );
        let mut sorted: Vec<(usize, f32)> = l.iter().copied().enumerate().collect();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
        if sorted[0].1 - sorted[1].1 > margin_lim * std {
            let ours_top = e
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(
                ours_top, sorted[0].0,
                "{name} {what} row {r}: argmax differs"
            );
        }
    }
    worst
}

/// A 128-token cache with K/V of `ty`.
fn cache_of(model: &Model, ty: CacheType) -> KvCache {
    let mut cfg = KvCacheConfig::for_context(128);
    cfg.type_k = ty;
    cfg.type_v = ty;
    KvCache::new(model.config(), cfg).unwrap()
}

fn cache(model: &Model) -> KvCache {
    // The fixtures were made with an F32 KV cache.
    cache_of(model, CacheType::F32)
}

fn check_fixture(path: &Path) -> (f32, f32) {
    let name = path.file_stem().unwrap().to_string_lossy().to_string();
    let model = Model::open(path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut st = ForwardState::new(2);

    // Prefill: all 24 tokens in one batch, logits for every position.
    let mut kv = cache(&model);
    kv.add_sequence(0).unwrap();
    kv.grow_to(0, TOKENS.len()).unwrap();
    let mut batch = Batch::new();
    for (i, &t) in TOKENS.iter().enumerate() {
        batch.push(t, i, 0, true);
    }
    let logits = model.forward(&batch, &mut kv, &mut st).unwrap().to_vec();
    let prefill = compare(
        &name,
        "prefill",
        &logits,
        &read_f32(&path.with_extension("logits.f32")),
    );

    // Decode: tokens 0..15 in one batch (logits for the last), then one token per step.
    let mut kv = cache(&model);
    kv.add_sequence(7).unwrap();
    kv.grow_to(7, 16).unwrap();
    let mut batch = Batch::new();
    batch.push_sequence(&TOKENS[..16], 0, 7, true);
    let mut rows = model.forward(&batch, &mut kv, &mut st).unwrap().to_vec();
    for (pos, &t) in TOKENS.iter().enumerate().skip(16) {
        kv.grow_to(7, pos + 1).unwrap();
        batch.clear();
        batch.push(t, pos, 7, true);
        rows.extend_from_slice(model.forward(&batch, &mut kv, &mut st).unwrap());
    }
    let decode = compare(
        &name,
        "decode",
        &rows,
        &read_f32(&path.with_extension("decode.f32")),
    );
    (prefill, decode)
}

fn fixture_paths() -> Vec<PathBuf> {
    let mut paths = gguf_files(&data_path("fixtures"));
    match shared_dir() {
        Some(s) => {
            let have: Vec<_> = paths
                .iter()
                .map(|p| p.file_name().unwrap().to_owned())
                .collect();
            paths.extend(
                gguf_files(&s.join("fixtures"))
                    .into_iter()
                    .filter(|p| !have.contains(&p.file_name().unwrap().to_owned())),
            );
        }
        None => skipped("fixtures beyond the repo's copies", "../shared not found"),
    }
    paths
}

#[test]
fn every_architecture_matches_llama_cpp_logits() {
    let mut n = 0;
    for path in fixture_paths() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let (p, d) = check_fixture(&path);
        eprintln!("{name:<22} prefill rel_max {p:.2e}  decode rel_max {d:.2e}");
        n += 1;
    }
    assert!(n >= 2);
}

/// Logits of `tokens` run alone (all positions, one batch).
fn alone(model: &Model, tokens: &[u32], invariant: bool) -> Vec<f32> {
    alone_in(model, cache(model), tokens, invariant)
}

/// [`alone`] in the given (empty) cache.
fn alone_in(model: &Model, mut kv: KvCache, tokens: &[u32], invariant: bool) -> Vec<f32> {
    let mut st = ForwardState::new(2);
    st.set_batch_invariant(invariant);
    prefill(model, &mut kv, &mut st, tokens)
}

/// Logits of `tokens` as a new sequence (id 3) of `kv` in one batch, every position.
fn prefill(model: &Model, kv: &mut KvCache, st: &mut ForwardState, tokens: &[u32]) -> Vec<f32> {
    kv.add_sequence(3).unwrap();
    kv.grow_to(3, tokens.len()).unwrap();
    let mut batch = Batch::new();
    for (i, &t) in tokens.iter().enumerate() {
        batch.push(t, i, 3, true);
    }
    model.forward(&batch, kv, st).unwrap().to_vec()
}

/// Sequences A and B interleaved in one batch, in two steps so that the second step mixes a
/// continuing sequence with the rest of the other one: (A's logits, B's logits).
fn batched(model: &Model, a: &[u32], b: &[u32], invariant: bool) -> (Vec<f32>, Vec<f32>) {
    let mut kv = cache(model);
    let mut st = ForwardState::new(2);
    st.set_batch_invariant(invariant);
    kv.add_sequence(10).unwrap();
    kv.add_sequence(20).unwrap();
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    for (ra, rb) in [(0..6, 0..4), (6..13, 4..11)] {
        kv.grow_to(10, ra.end).unwrap();
        kv.grow_to(20, rb.end).unwrap();
        let mut batch = Batch::new();
        let (mut ia, mut ib) = (ra.clone(), rb.clone());
        loop {
            match (ia.next(), ib.next()) {
                (None, None) => break,
                (pa, pb) => {
                    if let Some(p) = pa {
                        batch.push(a[p], p, 10, true);
                    }
                    if let Some(p) = pb {
                        batch.push(b[p], p, 20, true);
                    }
                }
            }
        }
        let out = model.forward(&batch, &mut kv, &mut st).unwrap();
        for (row, &seq) in out.chunks_exact(N_VOCAB).zip(&batch.seq_ids) {
            if seq == 10 {
                got_a.extend_from_slice(row)
            } else {
                got_b.extend_from_slice(row)
            }
        }
    }
    (got_a, got_b)
}

#[test]
fn two_sequences_in_one_batch_give_the_same_logits_as_each_alone() {
    for name in ["llama-Q4_K_M", "gemma3-Q4_K_M", "phi3-Q4_K_M"] {
        let model = Model::open(data_path(&format!("fixtures/{name}.gguf"))).unwrap();
        let a = &TOKENS[..13];
        let b: Vec<u32> = TOKENS.iter().rev().take(11).copied().collect();

        // Batch-invariant numerics: bit for bit.
        let (want_a, want_b) = (alone(&model, a, true), alone(&model, &b, true));
        let (got_a, got_b) = batched(&model, a, &b, true);
        assert_eq!(got_a, want_a, "{name}: sequence A differs when batched");
        assert_eq!(got_b, want_b, "{name}: sequence B differs when batched");

        // Default (llama.cpp's batch-dependent float orders): the same logits up to rounding,
        // held to the fixtures' rule against the sequence run alone.
        let (want_a, want_b) = (alone(&model, a, false), alone(&model, &b, false));
        let (got_a, got_b) = batched(&model, a, &b, false);
        compare(name, "A batched", &got_a, &want_a);
        compare(name, "B batched", &got_b, &want_b);
    }
}

#[test]
fn tiled_flash_attention_agrees_with_the_one_row_kernel() {
    // 100 rows: llama.cpp's tiled F32 kernel (two tiles of keys, soft-capping on gemma2, the
    // sliding window on gemma2/3) against the one-row f16 kernel, held to the fixtures' rule.
    let tokens: Vec<u32> = TOKENS.iter().cycle().take(100).copied().collect();
    let mut n = 0;
    for path in gguf_files(&data_path("fixtures")) {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let model = Model::open(&path).unwrap();
        // Over an F16 cache (llama.cpp's default), with and without llama.cpp's batch-dependent
        // kernels.
        let f16 = || cache_of(&model, CacheType::F16);
        let tiled = alone_in(&model, f16(), &tokens, false);
        let one_row = alone_in(&model, f16(), &tokens, true);
        let worst = compare(&name, "tiled vs one-row", &tiled, &one_row);
        assert!(tiled != one_row, "{name}: the tiled kernel was not used");
        eprintln!("{name:<22} tiled vs one-row rel_max {worst:.2e}");
        n += 1;
    }
    assert!(n >= 2);
}

/// Logits of `tokens` in one batch (all positions) with the FFN run `slice` tokens at a time.
fn in_ffn_slices(model: &Model, tokens: &[u32], invariant: bool, slice: usize) -> Vec<f32> {
    let mut st = ForwardState::new(2);
    st.set_batch_invariant(invariant);
    st.set_ffn_slice(slice);
    prefill(model, &mut cache(model), &mut st, tokens)
}

#[test]
fn the_ffn_in_slices_gives_the_bits_of_one_batch() {
    // 110 tokens: slices of 8 leave a last piece of 14 (two tokens past a group of four), of
    // 12 a last piece of 14 too, of 64 one of 46; every matmul kind of every fixture.
    let tokens: Vec<u32> = (0..110u32)
        .map(|i| (i * 37 + 11) % N_VOCAB as u32)
        .collect();
    for path in fixture_paths() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let model = Model::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        for invariant in [false, true] {
            let whole = in_ffn_slices(&model, &tokens, invariant, usize::MAX);
            for slice in [8, 12, 64] {
                let sliced = in_ffn_slices(&model, &tokens, invariant, slice);
                let same = whole
                    .iter()
                    .zip(&sliced)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same && whole.len() == sliced.len(),
                    "{name}: slices of {slice} (invariant {invariant})"
                );
            }
        }
    }
}

/// Logits of `tokens[..split]` in one batch (all positions), then of each later token alone,
/// computed on `threads` threads with an F16 cache (the attention kernels that split their
/// work by the thread count).
fn on_threads(model: &Model, tokens: &[u32], split: usize, threads: usize) -> Vec<f32> {
    let mut st = ForwardState::new(threads);
    let mut kv = cache_of(model, CacheType::F16);
    let mut out = prefill(model, &mut kv, &mut st, &tokens[..split]);
    for (pos, &t) in tokens.iter().enumerate().skip(split) {
        kv.grow_to(3, pos + 1).unwrap();
        let mut batch = Batch::new();
        batch.push(t, pos, 3, true);
        out.extend_from_slice(model.forward(&batch, &mut kv, &mut st).unwrap());
    }
    out
}

#[test]
fn the_thread_count_does_not_change_a_bit() {
    // A pool that leaves a thread out while another process keeps its core busy must not
    // change the results: every split of the work by thread count gives the same bits.
    let tokens: Vec<u32> = (0..70u32).map(|i| (i * 53 + 5) % N_VOCAB as u32).collect();
    for path in fixture_paths() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let model = Model::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let one = on_threads(&model, &tokens, 62, 1);
        for threads in [2, 3] {
            let other = on_threads(&model, &tokens, 62, threads);
            let same = one.len() == other.len()
                && one
                    .iter()
                    .zip(&other)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{name}: {threads} threads against one");
        }
    }
}
