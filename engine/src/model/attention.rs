//! Paged attention over the KV cache for every token of a batch at one layer.
//!
//! Each (token, head) pair is one task: scores of the token's query against the keys of its
//! sequence at positions `lo..=pos` (`lo` from the sliding window), read through the
//! sequence's block table; soft-cap, scale, softmax; weighted sum of the values. Tasks are
//! spread over the thread pool in contiguous chunks, each chunk with its own score buffer.

use half::f16;
use nanorun_kernels::ThreadPool;

use crate::batch::Batch;
use crate::error::Result;
use crate::kv::{CacheType, KvBuf, KvCache};

use super::attention_rows::{self, PREFETCH_KEYS};
use super::attention_tiled::{self, TileScratch};
use super::f16_replay::{self, RowSteps, KEY_BLOCK, SKIP};
use super::f16ops;

/// The attention facts of one layer.
#[derive(Clone, Copy, Debug)]
pub struct AttnParams {
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Key head dimension.
    pub head_dim_k: usize,
    /// Value head dimension.
    pub head_dim_v: usize,
    /// Multiplier applied to Q·K after soft-capping (1 when Q was pre-scaled).
    pub kq_scale: f32,
    /// Soft-cap of the raw scores.
    pub softcap: Option<f32>,
    /// Sliding window in tokens.
    pub window: Option<usize>,
    /// Compute as llama.cpp's tiled flash attention does (F16 cache, batches of
    /// [`TILE`](super::attention_tiled::TILE)+ rows, when the caller wants its rounding).
    pub tiled: bool,
}

/// Per-chunk score buffers, kept between calls.
#[derive(Debug, Default)]
pub struct AttnScratch {
    chunks: Vec<Vec<f32>>,
    tiles: Vec<TileScratch>,
    /// One task per token and head even where row groups would run (for the tests that
    /// compare the two).
    pub(super) one_row_only: bool,
}

/// A pointer handed to pool chunks; each chunk touches only its own part of what it points
/// into (see the uses).
#[derive(Clone, Copy)]
pub(super) struct SendPtr<T>(pub(super) *mut T);
// SAFETY: used only to give pool chunks disjoint parts of one `&mut` (see the uses).
unsafe impl<T> Sync for SendPtr<T> {}
unsafe impl<T> Send for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not the raw field).
    pub(super) fn get(&self) -> *mut T {
        self.0
    }
}

/// Pool chunks for `n_tasks` tasks — enough that a thread whose core is busy elsewhere does
/// not hold up the layer: (chunks, tasks per chunk).
fn task_chunks(pool: &ThreadPool, n_tasks: usize) -> (usize, usize) {
    let n_chunks = n_tasks.min(pool.threads_now() * 4).max(1);
    (n_chunks, n_tasks.div_ceil(n_chunks))
}

/// The first `n` of `chunks` (added where missing), each grown to at least `len` floats, as
/// pointers for the pool's chunks (chunk `c` alone uses buffer `c`).
fn chunk_buffers(chunks: &mut Vec<Vec<f32>>, n: usize, len: usize) -> Vec<SendPtr<f32>> {
    if chunks.len() < n {
        chunks.resize_with(n, Vec::new);
    }
    chunks[..n]
        .iter_mut()
        .map(|c| {
            if c.len() < len {
                c.resize(len, 0.0);
            }
            SendPtr(c.as_mut_ptr())
        })
        .collect()
}

/// What `attend` resolved that the tiled and row-group paths need too.
struct CacheViews<'a> {
    kbuf: &'a KvBuf,
    vbuf: &'a KvBuf,
    tables: &'a [&'a [Option<u32>]],
    bs: usize,
    k_row: usize,
    v_row: usize,
    group: usize,
}

/// [`attend`] the way llama.cpp's tiled flash attention computes it (see
/// [`attention_tiled`]): one task per head and run of up to `TILE` consecutive rows of one
/// sequence, each widening a tile of keys and values once for all its rows.
#[allow(clippy::too_many_arguments)]
fn attend_tiled(
    pool: &ThreadPool,
    batch: &Batch,
    p: &AttnParams,
    q: &[f32],
    out: &mut [f32],
    views: &CacheViews<'_>,
    tiles: &mut Vec<TileScratch>,
) {
    let runs = batch.sequence_runs(attention_tiled::TILE);
    let n_tasks = runs.len() * p.n_head;
    let (n_chunks, per_chunk) = task_chunks(pool, n_tasks);
    if tiles.len() < n_chunks {
        tiles.resize_with(n_chunks, TileScratch::default);
    }
    let tile_ptrs: Vec<SendPtr<TileScratch>> = tiles[..n_chunks]
        .iter_mut()
        .map(|t| SendPtr(t as *mut _))
        .collect();
    let (kbuf, vbuf) = (views.kbuf, views.vbuf);
    let (dk, dv) = (p.head_dim_k, p.head_dim_v);
    let out_ptr = SendPtr(out.as_mut_ptr());
    pool.run(n_chunks, |chunk| {
        // SAFETY: chunk `c` alone uses tile scratch `c`.
        let scratch = unsafe { &mut *tile_ptrs[chunk].get() };
        for task in chunk * per_chunk..((chunk + 1) * per_chunk).min(n_tasks) {
            // Latest runs first: they see the most keys, so handing them out first balances
            // the threads (longest task first).
            let (run, h) = (&runs[runs.len() - 1 - task / p.n_head], task % p.n_head);
            let kvh = h / views.group;
            let table = views.tables[run.start];
            let slot = |j: usize| table[j / views.bs].map(|b| b as usize * views.bs + j % views.bs);
            let spans: Vec<(usize, usize)> = run
                .clone()
                .map(|t| {
                    let pos = batch.positions[t];
                    (p.window.map_or(0, |w| (pos + 1).saturating_sub(w)), pos)
                })
                .collect();
            let qs: Vec<&[f32]> = run
                .clone()
                .map(|t| &q[t * p.n_head * dk + h * dk..][..dk])
                .collect();
            let key = |j: usize, o: &mut [f32]| {
                slot(j)
                    .inspect(|&sl| kbuf.read_head(sl, views.k_row, kvh * dk, o))
                    .is_some()
            };
            let value = |j: usize, o: &mut [f32]| {
                slot(j)
                    .inspect(|&sl| vbuf.read_head(sl, views.v_row, kvh * dv, o))
                    .is_some()
            };
            let rows = attention_tiled::Rows {
                spans: &spans,
                q: &qs,
            };
            let res =
                attention_tiled::attend_rows(&rows, key, value, p.kq_scale, p.softcap, dv, scratch);
            for (t, r) in run.clone().zip(res.chunks_exact(dv)) {
                // SAFETY: task (run, h) owns out[t][h·dv ..][..dv] for its rows t; tasks are
                // disjoint.
                let o = unsafe {
                    std::slice::from_raw_parts_mut(
                        out_ptr.get().add(t * p.n_head * dv + h * dv),
                        dv,
                    )
                };
                o.copy_from_slice(r);
            }
        }
    });
}

/// [`attend`] over an f16 cache by groups of rows ([`attention_rows`]): one task per run of
/// up to [`attention_rows::ROW_TOKENS`] tokens of a sequence and KV head (or part of its query
/// heads, see [`attention_rows::tasks`]), the same bits as one task per token and head.
#[allow(clippy::too_many_arguments)]
fn attend_by_rows(
    pool: &ThreadPool,
    batch: &Batch,
    p: &AttnParams,
    q: &[f32],
    out: &mut [f32],
    views: &CacheViews<'_>,
    tasks: &[attention_rows::RowTask],
    chunks: &mut Vec<Vec<f32>>,
) {
    let group = p.n_head / p.n_head_kv;
    let scratch_len = attention_rows::scratch_len(p, attention_rows::ROW_TOKENS * group);
    let (n_chunks, per_chunk) = task_chunks(pool, tasks.len());
    let scratch_ptrs = chunk_buffers(chunks, n_chunks, scratch_len);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let dv = p.head_dim_v;
    pool.run(n_chunks, |chunk| {
        // SAFETY: chunk `c` alone uses scratch buffer `c`, which holds `scratch_len` floats.
        let buf = unsafe { std::slice::from_raw_parts_mut(scratch_ptrs[chunk].get(), scratch_len) };
        let mine = (chunk * per_chunk).min(tasks.len())..((chunk + 1) * per_chunk).min(tasks.len());
        for task in &tasks[mine] {
            let table = views.tables[task.tokens.start];
            let bs = views.bs;
            let slot = |j: usize| table[j / bs].map(|b| b as usize * bs + j % bs);
            let cache = attention_rows::Cache {
                kbuf: views.kbuf,
                vbuf: views.vbuf,
                slot: &slot,
                k_row: views.k_row,
                v_row: views.v_row,
            };
            attention_rows::run(task, batch, p, q, &cache, buf, |t, h, vals| {
                // SAFETY: the task owns out[t][h·dv ..][..dv] for its tokens t and the query
                // heads h of its KV head; tasks are disjoint.
                let o = unsafe {
                    std::slice::from_raw_parts_mut(
                        out_ptr.get().add(t * p.n_head * dv + h * dv),
                        dv,
                    )
                };
                o.copy_from_slice(vals);
            });
        }
    });
}

/// Attention of every token of `batch` at `layer`. `q` holds `T × n_head·head_dim_k` values,
/// `out` receives `T × n_head·head_dim_v`. K/V of the batch's tokens must already be stored.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    pool: &ThreadPool,
    kv: &KvCache,
    layer: usize,
    batch: &Batch,
    p: &AttnParams,
    q: &[f32],
    out: &mut [f32],
    scratch: &mut AttnScratch,
) -> Result<()> {
    let n_tok = batch.len();
    // Resolve every token's block table up front (errors surface here, not in workers).
    let mut tables = Vec::with_capacity(n_tok);
    for &seq in &batch.seq_ids {
        tables.push(kv.table(layer, seq)?);
    }
    let (kbuf, vbuf) = kv.layer(layer).expect("attention layer has KV storage");
    let (type_k, type_v) = kv.types();
    let bs = kv.block_size();
    let k_row = p.n_head_kv * p.head_dim_k;
    let v_row = p.n_head_kv * p.head_dim_v;
    let group = p.n_head / p.n_head_kv;
    let views = CacheViews {
        kbuf,
        vbuf,
        tables: &tables,
        bs,
        k_row,
        v_row,
        group,
    };
    if p.tiled {
        attend_tiled(pool, batch, p, q, out, &views, &mut scratch.tiles);
        return Ok(());
    }
    if !scratch.one_row_only && type_k == CacheType::F16 && type_v == CacheType::F16 {
        // At least a task per thread: one decode token of a model with fewer KV heads than
        // threads splits each KV head's query heads (Gemma 3 270M: one KV head, four query
        // heads, two tasks of two on two threads; one task of four on one thread, which reads
        // the keys and values once where a task per head read them four times:
        // `examples/attention_step -s 1 -c 2048` 2.3–2.8 against 4.0–5.8 ms per step).
        let tasks = attention_rows::tasks(batch, p.n_head_kv, group, pool.threads_now());
        attend_by_rows(pool, batch, p, q, out, &views, &tasks, &mut scratch.chunks);
        return Ok(());
    }
    let n_tasks = n_tok * p.n_head;
    let (n_chunks, per_chunk) = task_chunks(pool, n_tasks);
    let max_span = batch
        .positions
        .iter()
        .map(|&pos| pos + 1)
        .max()
        .unwrap_or(0)
        .max(p.head_dim_v + 2 * KEY_BLOCK);
    let scratch_len = max_span + p.head_dim_k;
    let scratch_ptrs = chunk_buffers(&mut scratch.chunks, n_chunks, scratch_len);
    let out_ptr = SendPtr(out.as_mut_ptr());
    pool.run(n_chunks, |chunk| {
        // SAFETY: chunk `c` alone uses scratch buffer `c`, which holds `scratch_len` floats.
        let buf = unsafe { std::slice::from_raw_parts_mut(scratch_ptrs[chunk].get(), scratch_len) };
        let (scores, qh) = buf.split_at_mut(max_span);
        let qh = &mut qh[..p.head_dim_k];
        for task in chunk * per_chunk..((chunk + 1) * per_chunk).min(n_tasks) {
            let (t, h) = (task / p.n_head, task % p.n_head);
            let pos = batch.positions[t];
            let table = tables[t];
            let lo = p.window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let kvh = h / group;
            let q_row = &q[t * p.n_head * p.head_dim_k + h * p.head_dim_k..][..p.head_dim_k];
            let slot = |j: usize| table[j / bs].map(|b| b as usize * bs + j % bs);
            // SAFETY: task (t, h) owns out[t][h·head_dim_v ..][..head_dim_v]; tasks are disjoint.
            let o = unsafe {
                std::slice::from_raw_parts_mut(
                    out_ptr
                        .get()
                        .add(t * p.n_head * p.head_dim_v + h * p.head_dim_v),
                    p.head_dim_v,
                )
            };
            if type_k == CacheType::F16 {
                // llama.cpp converts Q to the cache's f16 before the dot product.
                f16ops::round_to_f16(qh, q_row);
            } else {
                qh.copy_from_slice(q_row);
            }
            let score = |j: usize| {
                let raw = match slot(j) {
                    Some(sl) => kbuf.dot(sl, k_row, kvh * p.head_dim_k, qh),
                    None => f32::NEG_INFINITY,
                };
                finish_score(raw, p)
            };
            if type_v == CacheType::F16 {
                online_softmax_f16(
                    lo..=pos,
                    score,
                    |j| {
                        let sl = slot(j)?;
                        // The value for the replay (a block of keys on).
                        vbuf.prefetch(sl, v_row, kvh * p.head_dim_v, p.head_dim_v);
                        vbuf.f16_head(sl, v_row, kvh * p.head_dim_v, p.head_dim_v)
                    },
                    |j| {
                        if let Some(sl) = slot(j) {
                            kbuf.prefetch(sl, k_row, kvh * p.head_dim_k, p.head_dim_k);
                        }
                    },
                    o,
                    &mut scores[..p.head_dim_v + 2 * KEY_BLOCK],
                );
                continue;
            }
            let span = &mut scores[..pos + 1 - lo];
            for (j, s) in (lo..=pos).zip(span.iter_mut()) {
                *s = score(j);
            }
            super::ops::softmax(span);
            o.fill(0.0);
            for (j, &w) in (lo..=pos).zip(span.iter()) {
                if let Some(sl) = slot(j) {
                    vbuf.axpy(sl, v_row, kvh * p.head_dim_v, w, o);
                }
            }
        }
    });
    Ok(())
}

/// Softmax-weighted sum of values the way llama.cpp's CPU flash-attention kernel computes it
/// over an f16 cache (its default): one pass over the keys in order with a running maximum,
/// the accumulator kept in f16 and rescaled when the maximum grows, divided by the sum at the
/// end (the value half a block of keys at a time, see [`f16_replay`]). `scratch` holds
/// `out.len() + 2·KEY_BLOCK` floats.
fn online_softmax_f16<'v>(
    keys: std::ops::RangeInclusive<usize>,
    score: impl Fn(usize) -> f32,
    value: impl Fn(usize) -> Option<&'v [f16]>,
    prefetch: impl Fn(usize),
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let (acc, steps) = scratch.split_at_mut(out.len());
    let (scale, weight) = steps.split_at_mut(KEY_BLOCK);
    acc.fill(0.0);
    let mut state = OnlineF16::default();
    let mut values = [None; KEY_BLOCK];
    let (lo, end) = (*keys.start(), *keys.end() + 1);
    for from in (lo..end).step_by(KEY_BLOCK) {
        let block = from..(from + KEY_BLOCK).min(end);
        for (i, j) in block.clone().enumerate() {
            if j + PREFETCH_KEYS < end {
                prefetch(j + PREFETCH_KEYS);
            }
            (scale[i], weight[i]) = state.step(score(j));
            values[i] = value(j);
        }
        let row = RowSteps {
            acc: &mut *acc,
            scale: &mut *scale,
            weight: &mut *weight,
        };
        f16_replay::replay(&mut [row], &values[..block.len()]);
    }
    let inv = state.inv_sum();
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = a * inv;
    }
}

/// A raw Q·K score soft-capped (where the layer caps) and scaled, as llama.cpp's CPU flash
/// attention finishes it.
pub(super) fn finish_score(raw: f32, p: &AttnParams) -> f32 {
    let x = match p.softcap {
        Some(cap) => (raw / cap).tanh() * cap,
        None => raw,
    };
    x * p.kq_scale
}

/// One row's running maximum and sum of llama.cpp's online softmax over an f16 accumulator.
pub(super) struct OnlineF16 {
    max: f32,
    sum: f32,
}

impl Default for OnlineF16 {
    fn default() -> OnlineF16 {
        OnlineF16 {
            max: f32::NEG_INFINITY,
            sum: 0.0,
        }
    }
}

impl OnlineF16 {
    /// Takes the next key's score `s` and returns what it does to the f16 accumulator (see
    /// [`RowSteps`]): the factor to rescale it by first (1: none, where the maximum stays) and
    /// the weight of the key's value, to add to it ([`SKIP`] for a score of −∞).
    pub(super) fn step(&mut self, s: f32) -> (f32, f32) {
        if s == f32::NEG_INFINITY {
            return (1.0, SKIP);
        }
        let (mut ms, mut vs) = (1.0f32, 1.0f32);
        if s > self.max {
            let old = self.max;
            self.max = s;
            ms = (old - self.max).exp();
        } else {
            vs = (s - self.max).exp();
        }
        // GCC contracts llama.cpp's `S*ms + vs` into a fused multiply-add.
        self.sum = self.sum.mul_add(ms, vs);
        (ms, vs)
    }

    /// 1 / the sum of the weights (0 when nothing was added), the accumulator's final factor.
    pub(super) fn inv_sum(&self) -> f32 {
        if self.sum == 0.0 {
            0.0
        } else {
            1.0 / self.sum
        }
    }
}
