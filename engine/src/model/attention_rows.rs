//! Several query rows at once through the one-row attention over an f16 cache: the rows of
//! one sequence's consecutive tokens and of every query head that shares one KV head. Key by
//! key, each row takes the operations `online_softmax_f16` gives it alone (its score, its
//! running maximum and sum, its f16 accumulator, in key order), so every row keeps its bits;
//! what the rows share is the key and value rows, read once from the cache into L1 for all of
//! them instead of once per row. A prompt chunk's rows each stream the sequence's whole
//! history otherwise (at 1500 positions, 1.5 MiB per row and layer for Gemma 3's head size).

use std::ops::Range;

use crate::batch::Batch;
use crate::kv::KvBuf;

use super::attention::{finish_score, AttnParams, OnlineF16};
use super::f16_replay::{self, RowSteps, KEY_BLOCK, SKIP};
use super::f16ops;

/// Tokens of one sequence per task (times the query heads of a KV head: 16 rows for Gemma 3).
pub(super) const ROW_TOKENS: usize = 4;

/// How many keys ahead the scores ask for key rows ([`KvBuf::prefetch`]).
pub(super) const PREFETCH_KEYS: usize = 4;

/// One task: a run of consecutive tokens of one sequence, one KV head, and query heads it
/// serves.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RowTask {
    /// The batch's tokens.
    pub tokens: Range<usize>,
    /// The KV head.
    pub kvh: usize,
    /// Query heads of the KV head (all of `kvh·group ..` unless split, see [`tasks`]).
    pub heads: Range<usize>,
}

/// The tasks of `batch`: its runs of consecutive tokens of one sequence, cut into pieces of
/// [`ROW_TOKENS`], times each KV head; latest pieces first (they see the most keys). Where that
/// makes fewer than `min_tasks` tasks (one decode token of a model with few KV heads), each KV
/// head's `group` query heads are split into as many parts as it takes (each part reads the
/// KV head's rows once for its heads).
pub(super) fn tasks(
    batch: &Batch,
    n_head_kv: usize,
    group: usize,
    min_tasks: usize,
) -> Vec<RowTask> {
    let runs = batch.sequence_runs(ROW_TOKENS);
    let whole = runs.len() * n_head_kv;
    let parts = min_tasks.div_ceil(whole.max(1)).clamp(1, group.max(1));
    let per_part = group.div_ceil(parts).max(1);
    runs.iter()
        .rev()
        .flat_map(|r| {
            (0..n_head_kv).flat_map(move |kvh| {
                (0..group).step_by(per_part).map(move |h| RowTask {
                    tokens: r.clone(),
                    kvh,
                    heads: kvh * group + h..kvh * group + (h + per_part).min(group),
                })
            })
        })
        .collect()
}

/// Floats of scratch a task of `rows` rows needs.
pub(super) fn scratch_len(p: &AttnParams, rows: usize) -> usize {
    rows * (p.head_dim_k + p.head_dim_v + 2 * KEY_BLOCK)
}

/// One row's keys, f16-rounded query and online softmax (its accumulator and the steps of a
/// block of keys are its [`RowSteps`]).
struct Row<'a> {
    keys: Range<usize>,
    q: &'a mut [f32],
    softmax: OnlineF16,
}

/// The cache a task reads: K and V rows (f16), the sequence's slot of each position, and the
/// widths that place one KV head in a row.
pub(super) struct Cache<'a> {
    pub kbuf: &'a KvBuf,
    pub vbuf: &'a KvBuf,
    pub slot: &'a dyn Fn(usize) -> Option<usize>,
    pub k_row: usize,
    pub v_row: usize,
}

/// Runs `task`: for each of its rows (token t, query head h) writes
/// `out(t, h)` = softmax(scores)·V over keys `lo..=pos`, exactly as the one-row path does.
/// `q` is the batch's queries (`T × n_head·head_dim_k`), `scratch` at least
/// [`scratch_len`] floats for the task's rows.
pub(super) fn run(
    task: &RowTask,
    batch: &Batch,
    p: &AttnParams,
    q: &[f32],
    cache: &Cache<'_>,
    scratch: &mut [f32],
    mut out: impl FnMut(usize, usize, &[f32]),
) {
    let (dk, dv) = (p.head_dim_k, p.head_dim_v);
    let heads = task.heads.clone();
    let n_rows = task.tokens.len() * heads.len();
    let (qs, rest) = scratch.split_at_mut(n_rows * dk);
    let (accs, rest) = rest.split_at_mut(n_rows * dv);
    let (scales, weights) = rest.split_at_mut(n_rows * KEY_BLOCK);
    let row_heads = || {
        task.tokens
            .clone()
            .flat_map(|t| heads.clone().map(move |h| (t, h)))
    };
    let mut rows: Vec<Row<'_>> = row_heads()
        .zip(qs.chunks_exact_mut(dk))
        .map(|((t, h), qh)| {
            let pos = batch.positions[t];
            // llama.cpp converts Q to the cache's f16 before the dot product.
            f16ops::round_to_f16(qh, &q[t * p.n_head * dk + h * dk..][..dk]);
            Row {
                keys: p.window.map_or(0, |w| (pos + 1).saturating_sub(w))..pos + 1,
                q: qh,
                softmax: OnlineF16::default(),
            }
        })
        .collect();
    let mut steps: Vec<RowSteps<'_>> = accs
        .chunks_exact_mut(dv)
        .zip(scales.chunks_exact_mut(KEY_BLOCK))
        .zip(weights.chunks_exact_mut(KEY_BLOCK))
        .map(|((acc, scale), weight)| {
            acc.fill(0.0);
            RowSteps { acc, scale, weight }
        })
        .collect();
    let first = rows.iter().map(|r| r.keys.start).min().unwrap_or(0);
    let end = rows.iter().map(|r| r.keys.end).max().unwrap_or(0);
    let (k_off, v_off) = (task.kvh * dk, task.kvh * dv);
    let mut values = [None; KEY_BLOCK];
    for from in (first..end).step_by(KEY_BLOCK) {
        let block = from..(from + KEY_BLOCK).min(end);
        for (i, j) in block.clone().enumerate() {
            // (A position without a block scores −∞ before the soft-cap and adds no value, as
            // in the one-row path.)
            let sl = (cache.slot)(j);
            let k = sl.and_then(|sl| cache.kbuf.f16_head(sl, cache.k_row, k_off, dk));
            values[i] = sl.and_then(|sl| cache.vbuf.f16_head(sl, cache.v_row, v_off, dv));
            // The value for the replay below, a key row a few keys on for the scores.
            if let Some(sl) = sl {
                cache.vbuf.prefetch(sl, cache.v_row, v_off, dv);
            }
            if let Some(sl) = (j + PREFETCH_KEYS < end)
                .then(|| (cache.slot)(j + PREFETCH_KEYS))
                .flatten()
            {
                cache.kbuf.prefetch(sl, cache.k_row, k_off, dk);
            }
            // Four rows at a time (a token's heads where a KV head serves four), the key row
            // widened once for the four where all of them see this key.
            for (four, four_steps) in rows.chunks_mut(4).zip(steps.chunks_mut(4)) {
                let sees: [bool; 4] =
                    std::array::from_fn(|r| four.get(r).is_some_and(|r| r.keys.contains(&j)));
                let mut s = [f32::NEG_INFINITY; 4];
                match (k, &*four) {
                    (Some(k), [a, b, c, d]) if sees == [true; 4] => {
                        s = f16ops::dot_x4(k, [&*a.q, &*b.q, &*c.q, &*d.q]);
                    }
                    _ => {
                        for (r, row) in four.iter().enumerate().filter(|&(r, _)| sees[r]) {
                            if let Some(sl) = sl {
                                s[r] = cache.kbuf.dot(sl, cache.k_row, k_off, row.q);
                            }
                        }
                    }
                }
                // Each row's online-softmax step (as `online_softmax_f16` takes it).
                for (r, (row, st)) in four.iter_mut().zip(four_steps.iter_mut()).enumerate() {
                    (st.scale[i], st.weight[i]) = if sees[r] {
                        row.softmax.step(finish_score(s[r], p))
                    } else {
                        (1.0, SKIP)
                    };
                }
            }
        }
        f16_replay::replay(&mut steps, &values[..block.len()]);
    }
    for ((t, h), (row, st)) in row_heads().zip(rows.iter().zip(steps.iter_mut())) {
        let inv = row.softmax.inv_sum();
        st.acc.iter_mut().for_each(|a| *a *= inv);
        out(t, h, st.acc);
    }
}

#[cfg(test)]
mod tests {
    use nanorun_kernels::ThreadPool;

    use super::super::attention::{attend, AttnScratch};
    use super::*;
    use crate::kv::{CacheType, KvCache, KvCacheConfig};
    use crate::model::config::attention_test_config;

    /// A batch mixing a prompt chunk of one sequence (ten tokens, 150 keys: three blocks of
    /// keys) with single decode tokens of two others gives every row the bits of one task per
    /// token and head, and those of the key-by-key computation, for the global and the
    /// windowed layer, with and without a soft-cap.
    #[test]
    fn row_groups_give_each_row_the_bits_it_gets_alone() {
        // Global and a window of 6; 8 query heads over 2 KV heads; head size 96 (one 64-value
        // step of the f16 kernels and a tail).
        let c = attention_test_config(8, 2, 96, &[None, Some(6)]);
        let cfg = KvCacheConfig {
            type_k: CacheType::F16,
            type_v: CacheType::F16,
            ..KvCacheConfig::for_context(256)
        };
        let mut kv = KvCache::new(&c, cfg).unwrap();
        let mut seed = 0x2545_f491_u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 2001) as f32 / 1000.0 - 1.0
        };
        let (n_head, dk) = (8, 96);
        let row = 2 * dk;
        let lens = [(0u32, 150usize), (1, 9), (2, 17)];
        for &(seq, len) in &lens {
            kv.add_sequence(seq).unwrap();
            kv.grow_to(seq, len).unwrap();
            for layer in 0..2 {
                for pos in 0..len {
                    let slot = kv.slot(layer, seq, pos).unwrap();
                    let (k, v): (Vec<f32>, Vec<f32>) = (0..row).map(|_| (rand(), rand())).unzip();
                    kv.write(layer, slot, &k, &v);
                }
            }
        }
        let mut batch = Batch::new();
        for pos in 140..150 {
            batch.push(1, pos, 0, true);
        }
        batch.push(1, 8, 1, true);
        batch.push(1, 16, 2, true);
        let q: Vec<f32> = (0..batch.len() * n_head * dk)
            .map(|_| 3.0 * rand())
            .collect();
        let pool = ThreadPool::new(2);
        for layer in 0..2 {
            for softcap in [None, Some(2.0)] {
                let p = AttnParams {
                    n_head,
                    n_head_kv: 2,
                    head_dim_k: dk,
                    head_dim_v: dk,
                    kq_scale: 0.125,
                    softcap,
                    window: c.layers[layer].attention.sliding_window,
                    tiled: false,
                };
                let tasks = tasks(&batch, 2, 4, 2);
                assert!(tasks.len() >= 4, "the row path runs: {tasks:?}");
                let mut outs = [vec![f32::NAN; q.len()], vec![f32::NAN; q.len()]];
                for (one_row_only, out) in [false, true].into_iter().zip(outs.iter_mut()) {
                    let mut scratch = AttnScratch::default();
                    scratch.one_row_only = one_row_only;
                    attend(&pool, &kv, layer, &batch, &p, &q, out, &mut scratch).unwrap();
                }
                assert!(outs[0].iter().all(|v| v.is_finite()));
                let same = outs[0]
                    .iter()
                    .zip(&outs[1])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "layer {layer} softcap {softcap:?}");
                let want = key_by_key(&kv, layer, &batch, &p, &q);
                let same = outs[0]
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "key by key: layer {layer} softcap {softcap:?}");
            }
        }
    }

    /// Attention as llama.cpp's CPU flash attention runs it, one row and one key at a time
    /// (the accumulator rescaled and added to in place).
    fn key_by_key(
        kv: &KvCache,
        layer: usize,
        batch: &Batch,
        p: &AttnParams,
        q: &[f32],
    ) -> Vec<f32> {
        let (kbuf, vbuf) = kv.layer(layer).unwrap();
        let (dk, dv) = (p.head_dim_k, p.head_dim_v);
        let (k_row, v_row) = (p.n_head_kv * dk, p.n_head_kv * dv);
        let mut out = vec![0f32; batch.len() * p.n_head * dv];
        for t in 0..batch.len() {
            let pos = batch.positions[t];
            for h in 0..p.n_head {
                let kvh = h / (p.n_head / p.n_head_kv);
                let qh: Vec<f32> = q[(t * p.n_head + h) * dk..][..dk]
                    .iter()
                    .map(|&v| half::f16::from_f32(v).to_f32())
                    .collect();
                let mut acc = vec![0f32; dv];
                let mut softmax = OnlineF16::default();
                let lo = p.window.map_or(0, |w| (pos + 1).saturating_sub(w));
                for j in lo..=pos {
                    let slot = kv.slot(layer, batch.seq_ids[t], j).unwrap();
                    let s = finish_score(kbuf.dot(slot, k_row, kvh * dk, &qh), p);
                    let (scale, weight) = softmax.step(s);
                    if scale != 1.0 {
                        f16ops::scale(&mut acc, scale);
                    }
                    if weight != SKIP {
                        let v = vbuf.f16_head(slot, v_row, kvh * dv, dv).unwrap();
                        f16ops::mad(&mut acc, v, weight);
                    }
                }
                let inv = softmax.inv_sum();
                for (o, a) in out[(t * p.n_head + h) * dv..][..dv].iter_mut().zip(&acc) {
                    *o = a * inv;
                }
            }
        }
        out
    }

    #[test]
    fn tasks_cut_runs_of_one_sequence_into_pieces_latest_first() {
        let mut batch = Batch::new();
        for pos in 0..6 {
            batch.push(1, pos, 7, true);
        }
        batch.push(1, 3, 8, true);
        let got: Vec<_> = tasks(&batch, 2, 3, 4)
            .iter()
            .map(|t| (t.tokens.clone(), t.kvh, t.heads.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (6..7, 0, 0..3),
                (6..7, 1, 3..6),
                (4..6, 0, 0..3),
                (4..6, 1, 3..6),
                (0..4, 0, 0..3),
                (0..4, 1, 3..6)
            ]
        );
    }

    /// One token of a model with one KV head: its query heads split where the threads want
    /// more tasks than the KV heads make.
    #[test]
    fn one_token_splits_its_query_heads_for_the_threads() {
        let mut batch = Batch::new();
        batch.push(1, 9, 0, true);
        let heads = |n_head_kv, group, min_tasks| -> Vec<_> {
            tasks(&batch, n_head_kv, group, min_tasks)
                .iter()
                .map(|t| t.heads.clone())
                .collect()
        };
        assert_eq!(heads(1, 4, 1), vec![0..4_usize]);
        assert_eq!(heads(1, 4, 2), [0..2, 2..4]);
        assert_eq!(heads(1, 4, 3), [0..2, 2..4]);
        assert_eq!(heads(1, 4, 8), [0..1, 1..2, 2..3, 3..4]);
        assert_eq!(heads(2, 3, 4), [0..2, 2..3, 3..5, 5..6]);
        assert_eq!(
            heads(8, 4, 2),
            (0..8).map(|k| 4 * k..4 * k + 4).collect::<Vec<_>>()
        );
    }
}
