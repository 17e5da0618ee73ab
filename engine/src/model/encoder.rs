//! The encoder forward pass of embedding models (`bert`, `nomic-bert`, `gemma-embedding`):
//! many sequences in one batch, bidirectional attention inside each sequence (no KV cache),
//! pooling to one vector per sequence, then the dense heads if the model has them.
//!
//! Numerics follow ggml's CPU backend where it matters (LayerNorm/RMSNorm sums in f64, GELU
//! through the f16 table, quantized activations in the matmuls), so vectors agree with
//! `llama_get_embeddings_seq()` within the tolerance of `tests/data/embed/README.md`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use nanorun_formats::Gguf;
use nanorun_kernels::{matmul, Kernels, MatmulScratch, ThreadPool};

use super::config::RopeStyle;
use super::encoder_config::{
    EncoderConfig, EncoderFfn, EncoderNorm, EncoderWeights, Norm, Pooling, Positions, Proj,
};
use super::ops::{self, Rope};
use super::weights::Linear;
use crate::error::{EngineError, Result};
use crate::tokenizer::Tokenizer;

/// An embedding model ready to run: its file (mapped), config, tensors and tokenizer.
pub struct Embedder {
    gguf: Arc<Gguf>,
    config: EncoderConfig,
    weights: EncoderWeights,
    tokenizer: Tokenizer,
    kernels: &'static Kernels,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("arch", &self.config.arch)
            .field("n_layer", &self.config.n_layer)
            .finish()
    }
}

/// Thread pool and matmul scratch of [`Embedder::embed`], owned by one caller and reused.
pub struct EmbedState {
    pool: ThreadPool,
    mm: MatmulScratch,
}

impl EmbedState {
    /// State with a pool of `n_threads` threads (at least 1). Its matmuls are batch-invariant
    /// (see `MatmulScratch::set_batch_invariant`): a text gets the same vector whatever it is
    /// batched with, which an index built in batches and queried one text at a time relies on.
    pub fn new(n_threads: usize) -> EmbedState {
        let mut mm = MatmulScratch::new();
        mm.set_batch_invariant(true);
        EmbedState {
            pool: ThreadPool::new(n_threads.max(1)),
            mm,
        }
    }
}

/// Divides `v` by its L2 norm (leaves an all-zero vector alone).
pub fn l2_normalize(v: &mut [f32]) {
    let n = v
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt();
    if n > 0.0 {
        let s = (1.0 / n) as f32;
        v.iter_mut().for_each(|x| *x *= s);
    }
}

/// ggml's LayerNorm: `(x - mean) / sqrt(var + eps) · w + b`, sums in f64.
fn layer_norm(x: &mut [f32], n: &Norm, eps: f32) {
    let len = x.len();
    let mean = (x.iter().map(|&v| v as f64).sum::<f64>() / len as f64) as f32;
    let mut sum2 = 0f64;
    for v in x.iter_mut() {
        *v -= mean;
        sum2 += (*v as f64) * (*v as f64);
    }
    let scale = 1.0 / ((sum2 / len as f64) as f32 + eps).sqrt();
    for (i, v) in x.iter_mut().enumerate() {
        *v = *v * scale * n.w[i] + n.b.as_ref().map_or(0.0, |b| b[i]);
    }
}

/// Applies `n` to every `width`-wide row of `x`: LayerNorm when it has a bias, else RMSNorm.
fn norm_rows(x: &mut [f32], width: usize, n: &Norm, eps: f32, layer: bool) {
    if layer {
        x.chunks_exact_mut(width)
            .for_each(|r| layer_norm(r, n, eps));
    } else {
        ops::rms_norm_chunks(x, width, &n.w, eps);
    }
}

/// `a · b` with eight partial sums (so that the compiler can vectorise it).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Where each sequence's tokens sit in the flat batch.
struct Spans {
    /// `(start, len)` per sequence.
    spans: Vec<(usize, usize)>,
}

impl Embedder {
    /// Opens `path` and loads the embedding model with the best kernels for this CPU.
    pub fn open(path: impl AsRef<Path>) -> Result<Embedder> {
        let gguf = Gguf::open(path)?;
        Embedder::from_gguf(Arc::new(gguf), Kernels::active()?)
    }

    /// Loads the embedding model in an opened file with the given kernels.
    pub fn from_gguf(gguf: Arc<Gguf>, kernels: &'static Kernels) -> Result<Embedder> {
        Embedder::from_gguf_with_pooling(gguf, kernels, None)
    }

    /// As [`Embedder::from_gguf`], pooling with `pooling` instead of the file's
    /// `<arch>.pooling_type` when given (like llama.cpp's `--pooling`).
    pub fn from_gguf_with_pooling(
        gguf: Arc<Gguf>,
        kernels: &'static Kernels,
        pooling: Option<Pooling>,
    ) -> Result<Embedder> {
        let n_vocab = gguf
            .tensor("token_embd.weight")
            .ok_or_else(|| EngineError::MissingTensor {
                name: "token_embd.weight".into(),
            })?
            .dims
            .get(1)
            .copied()
            .unwrap_or(0) as usize;
        let config = EncoderConfig::from_gguf(&gguf, n_vocab, pooling)?;
        let weights = EncoderWeights::load(&gguf, &config, kernels)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        Ok(Embedder {
            gguf,
            config,
            weights,
            tokenizer,
            kernels,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// The tokenizer of the model.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Width of the vectors [`Embedder::embed`] returns.
    pub fn n_embd_out(&self) -> usize {
        self.config.n_embd_out
    }

    /// Token ids of `text` as llama.cpp tokenizes embedding inputs (special tokens added,
    /// special-token text not parsed).
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, true, false)
    }

    /// Tokenizes and embeds `texts` in one batch; L2-normalises the vectors if `normalize`.
    pub fn embed_texts(
        &self,
        texts: &[&str],
        normalize: bool,
        st: &mut EmbedState,
    ) -> Result<Vec<Vec<f32>>> {
        let seqs: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenize(t)).collect();
        let mut out = self.embed(&seqs, st)?;
        if normalize {
            out.iter_mut().for_each(|v| l2_normalize(v));
        }
        Ok(out)
    }

    fn check(&self, sequences: &[Vec<u32>]) -> Result<Spans> {
        let c = &self.config;
        let mut spans = Vec::with_capacity(sequences.len());
        let mut start = 0;
        for (s, seq) in sequences.iter().enumerate() {
            if seq.is_empty() {
                return Err(EngineError::InvalidRequest(format!(
                    "sequence {s} has no tokens"
                )));
            }
            if seq.len() > c.n_ctx_train {
                return Err(EngineError::InvalidRequest(format!(
                    "sequence {s} has {} tokens; {}.context_length allows {}",
                    seq.len(),
                    c.arch.name(),
                    c.n_ctx_train
                )));
            }
            if let Some(&bad) = seq.iter().find(|&&t| t as usize >= c.n_vocab) {
                return Err(EngineError::InvalidRequest(format!(
                    "sequence {s}: token id {bad} is outside the vocabulary ({})",
                    c.n_vocab
                )));
            }
            spans.push((start, seq.len()));
            start += seq.len();
        }
        Ok(Spans { spans })
    }

    fn mm(
        &self,
        st: &mut EmbedState,
        w: &Linear,
        x: &[f32],
        t: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let m = w.matrix(self.gguf.bytes())?;
        matmul(
            self.kernels,
            &st.pool,
            &m,
            &x[..t * w.cols],
            t,
            &mut out[..t * w.rows],
            &mut st.mm,
        )?;
        Ok(())
    }

    /// `out = x · Wᵀ + b` for `t` rows.
    fn proj(&self, st: &mut EmbedState, p: &Proj, x: &[f32], t: usize) -> Result<Vec<f32>> {
        let mut out = vec![0.0; t * p.w.rows];
        self.mm(st, &p.w, x, t, &mut out)?;
        if let Some(b) = &p.b {
            out.chunks_exact_mut(p.w.rows)
                .for_each(|r| ops::add_scaled(r, b, 1.0));
        }
        Ok(out)
    }

    /// Embeds every sequence of token ids (all in one batch, positions from 0 in each) and
    /// returns one pooled vector of [`Embedder::n_embd_out`] values per sequence, raw (not
    /// normalised), as llama.cpp's `llama_get_embeddings_seq()` returns them.
    ///
    /// Errors (nothing is run) when a sequence is empty, longer than the model's
    /// `context_length`, or holds an id outside the vocabulary.
    pub fn embed(&self, sequences: &[Vec<u32>], st: &mut EmbedState) -> Result<Vec<Vec<f32>>> {
        if sequences.is_empty() {
            return Ok(Vec::new());
        }
        let spans = self.check(sequences)?;
        let c = &self.config;
        let w = &self.weights;
        let e = c.n_embd;
        let t_n: usize = sequences.iter().map(Vec::len).sum();
        let ln = c.norm == EncoderNorm::PostLayerNorm;

        // Input embeddings.
        let mut x = vec![0.0f32; t_n * e];
        let mut row_buf = Vec::new();
        let mut t = 0;
        for seq in sequences {
            for (pos, &tok) in seq.iter().enumerate() {
                let xr = &mut x[t * e..(t + 1) * e];
                let row = w
                    .token_embd
                    .read_row(&self.gguf, tok as usize, &mut row_buf);
                self.kernels.dequantize_row(w.token_embd.ty, row, xr)?;
                if c.embedding_scale != 1.0 {
                    xr.iter_mut().for_each(|v| *v *= c.embedding_scale);
                }
                if let Some(tt) = &w.token_type0 {
                    ops::add_scaled(xr, tt, 1.0);
                }
                if let Some(pe) = &w.position_embd {
                    ops::add_scaled(xr, &pe[pos * e..(pos + 1) * e], 1.0);
                }
                t += 1;
            }
        }
        if let Some(n) = &w.embd_norm {
            norm_rows(&mut x, e, n, c.norm_eps, true);
        }

        for (l, lw) in w.layers.iter().enumerate() {
            // Attention.
            let h = match ln {
                true => x.clone(),
                false => {
                    let mut h = x.clone();
                    norm_rows(&mut h, e, &lw.attn_norm, c.norm_eps, false);
                    h
                }
            };
            let (q, k, v) = self.qkv(st, lw, &h, t_n)?;
            let attn = self.attend(&st.pool, l, q, k, v, &spans)?;
            let mut o = self.proj(st, &lw.wo, &attn, t_n)?;
            if let Some(pn) = &lw.post_attn_norm {
                norm_rows(&mut o, e, pn, c.norm_eps, false);
            }
            ops::add_scaled(&mut x, &o, 1.0);
            if ln {
                norm_rows(&mut x, e, &lw.attn_norm, c.norm_eps, true);
            }

            // FFN.
            let h = match ln {
                true => x.clone(),
                false => {
                    let mut h = x.clone();
                    norm_rows(&mut h, e, &lw.ffn_norm, c.norm_eps, false);
                    h
                }
            };
            let mut up = self.proj(st, &lw.up, &h, t_n)?;
            match (c.ffn, &lw.gate) {
                (EncoderFfn::Gelu, _) => ops::gelu(&mut up),
                (EncoderFfn::SwiGlu, Some(g)) => {
                    let mut gate = self.proj(st, g, &h, t_n)?;
                    ops::swiglu(&mut gate, &up);
                    up = gate;
                }
                (EncoderFfn::GeGlu, Some(g)) => {
                    let mut gate = self.proj(st, g, &h, t_n)?;
                    ops::geglu(&mut gate, &up);
                    up = gate;
                }
                (_, None) => {
                    return Err(EngineError::MissingTensor {
                        name: format!("blk.{l}.ffn_gate.weight"),
                    })
                }
            }
            let mut f = self.proj(st, &lw.down, &up, t_n)?;
            if let Some(pn) = &lw.post_ffn_norm {
                norm_rows(&mut f, e, pn, c.norm_eps, false);
            }
            ops::add_scaled(&mut x, &f, 1.0);
            if ln {
                norm_rows(&mut x, e, &lw.ffn_norm, c.norm_eps, true);
            }
        }
        if let Some(n) = &w.output_norm {
            norm_rows(&mut x, e, n, c.norm_eps, ln);
        }

        // Pooling.
        let n_seq = sequences.len();
        let mut pooled = vec![0.0f32; n_seq * e];
        for (s, &(start, len)) in spans.spans.iter().enumerate() {
            let out = &mut pooled[s * e..(s + 1) * e];
            match c.pooling {
                Pooling::Cls => out.copy_from_slice(&x[start * e..(start + 1) * e]),
                Pooling::Last => {
                    let last = start + len - 1;
                    out.copy_from_slice(&x[last * e..(last + 1) * e]);
                }
                Pooling::Mean => {
                    let inv = 1.0 / len as f32;
                    for row in x[start * e..(start + len) * e].chunks_exact(e) {
                        ops::add_scaled(out, row, inv);
                    }
                }
            }
        }

        // Dense heads.
        let mut width = e;
        for d in &w.dense {
            let mut next = vec![0.0; n_seq * d.rows];
            self.mm(st, d, &pooled, n_seq, &mut next)?;
            pooled = next;
            width = d.rows;
        }
        Ok(pooled.chunks_exact(width).map(<[f32]>::to_vec).collect())
    }

    /// [`Embedder::embed`] in forwards of at most `max_batch_tokens` tokens each (whole
    /// sequences only; a longer sequence goes alone), the vectors in input order.
    pub fn embed_chunked(
        &self,
        sequences: &[Vec<u32>],
        max_batch_tokens: usize,
        st: &mut EmbedState,
    ) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(sequences.len());
        let mut start = 0;
        while start < sequences.len() {
            let mut end = start + 1;
            let mut tokens = sequences[start].len();
            while end < sequences.len() && tokens + sequences[end].len() <= max_batch_tokens {
                tokens += sequences[end].len();
                end += 1;
            }
            out.extend(self.embed(&sequences[start..end], st)?);
            start = end;
        }
        Ok(out)
    }

    /// Q, K, V (`t × heads × head_dim` each), with Q/K norms and RoPE applied.
    fn qkv(
        &self,
        st: &mut EmbedState,
        lw: &super::encoder_config::EncoderLayer,
        h: &[f32],
        t_n: usize,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let c = &self.config;
        let q_dim = c.n_head * c.head_dim;
        let kv_dim = c.n_head_kv * c.head_dim;
        let (mut q, mut k, v) = match (&lw.qkv, &lw.wqkv) {
            (Some([pq, pk, pv]), _) => (
                self.proj(st, pq, h, t_n)?,
                self.proj(st, pk, h, t_n)?,
                self.proj(st, pv, h, t_n)?,
            ),
            (None, Some(p)) => {
                let fused = self.proj(st, p, h, t_n)?;
                let w = q_dim + 2 * kv_dim;
                let (mut q, mut k, mut v) = (
                    Vec::with_capacity(t_n * q_dim),
                    Vec::with_capacity(t_n * kv_dim),
                    Vec::with_capacity(t_n * kv_dim),
                );
                for row in fused.chunks_exact(w) {
                    q.extend_from_slice(&row[..q_dim]);
                    k.extend_from_slice(&row[q_dim..q_dim + kv_dim]);
                    v.extend_from_slice(&row[q_dim + kv_dim..]);
                }
                (q, k, v)
            }
            (None, None) => {
                return Err(EngineError::MissingTensor {
                    name: "attn_q.weight / attn_qkv.weight".into(),
                })
            }
        };
        if let Some((qn, kn)) = &lw.qk_norm {
            ops::rms_norm_chunks(&mut q, c.head_dim, qn, c.norm_eps);
            ops::rms_norm_chunks(&mut k, c.head_dim, kn, c.norm_eps);
        }
        Ok((q, k, v))
    }

    /// Bidirectional attention inside each sequence (with RoPE and the symmetric window of
    /// layer `l`); returns `t × n_head × head_dim`.
    fn attend(
        &self,
        pool: &ThreadPool,
        l: usize,
        mut q: Vec<f32>,
        mut k: Vec<f32>,
        v: Vec<f32>,
        spans: &Spans,
    ) -> Result<Vec<f32>> {
        let c = &self.config;
        let d = c.head_dim;
        let q_dim = c.n_head * d;
        let kv_dim = c.n_head_kv * d;
        let window = c.window(l);
        if let Positions::Rope {
            style,
            base,
            base_swa,
        } = c.positions
        {
            let rope = Rope {
                n_rot: c.n_rot,
                base: if window.is_some() { base_swa } else { base },
                freq_scale: 1.0,
                ext_factor: 0.0,
                attn_factor: 1.0,
                corr_dims: [0.0, 0.0],
                neox: style == RopeStyle::Neox,
            };
            let mut cache = vec![0.0f32; c.n_rot];
            for &(start, len) in &spans.spans {
                for pos in 0..len {
                    let t = start + pos;
                    rope.cache(pos, None, &mut cache);
                    rope.apply(&mut q[t * q_dim..(t + 1) * q_dim], d, &cache);
                    rope.apply(&mut k[t * kv_dim..(t + 1) * kv_dim], d, &cache);
                }
            }
        }
        let group = c.n_head / c.n_head_kv;
        let t_n = q.len() / q_dim;
        let mut out = vec![0.0f32; t_n * q_dim];
        // One task per query token (all its heads): (sequence start, sequence length, i).
        let tasks: Vec<(usize, usize, usize)> = spans
            .spans
            .iter()
            .flat_map(|&(start, len)| (0..len).map(move |i| (start, len, i)))
            .collect();
        let rows: Vec<Mutex<&mut [f32]>> = out.chunks_mut(q_dim).map(Mutex::new).collect();
        let (q, k, v) = (&q, &k, &v);
        pool.run(tasks.len(), |ti| {
            let (start, len, i) = tasks[ti];
            let (lo, hi) = match window {
                Some(half) => (i.saturating_sub(half), (i + half + 1).min(len)),
                None => (0, len),
            };
            let mut row = rows[ti].lock().unwrap_or_else(|p| p.into_inner());
            let mut scores = Vec::with_capacity(hi - lo);
            for hd in 0..c.n_head {
                let kh = hd / group;
                let qv = &q[ti * q_dim + hd * d..][..d];
                scores.clear();
                for j in lo..hi {
                    let kv = &k[(start + j) * kv_dim + kh * d..][..d];
                    let dot = dot(qv, kv);
                    scores.push(dot * c.attention_scale);
                }
                ops::softmax(&mut scores);
                let o = &mut row[hd * d..(hd + 1) * d];
                for (j, &p) in (lo..hi).zip(&scores) {
                    let vv = &v[(start + j) * kv_dim + kh * d..][..d];
                    ops::add_scaled(o, vv, p);
                }
            }
        });
        drop(rows);
        Ok(out)
    }
}
