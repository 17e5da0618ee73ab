//! The batch-first forward pass: embeddings → blocks (attention + FFN, parameterised by the
//! layer spec) → final norm → logits for the tokens that want them. Every buffer lives in a
//! [`ForwardState`] allocated once and reused; nothing is allocated per token.

use nanorun_kernels::{matmul_many, ThreadPool};

use super::attention::{attend, AttnParams, AttnScratch, SendPtr};
use super::config::{Activation, LayerKind, QkNorm, RopeScaling};
use super::ops::{self, Rope};
use super::profile::{Laps, LayerTimes, Matmuls, Part};
use super::rope_tables::RopeTables;
use super::ssm::{self, SsmScratch};
use super::weights::Linear;
use super::Model;
use crate::batch::Batch;
use crate::error::{EngineError, Result};
use crate::kv::{CacheType, KvCache};

/// Activation buffers and scratch space of the forward pass, owned by one caller.
pub struct ForwardState {
    pool: ThreadPool,
    n_tokens: usize,
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    fused: Vec<f32>,
    attn: Vec<f32>,
    o: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    out_rows: Vec<usize>,
    out_h: Vec<f32>,
    logits: Vec<f32>,
    /// Floats of `logits` the last forward pass wrote.
    logits_len: usize,
    mm: Matmuls,
    attn_scratch: AttnScratch,
    ssm: SsmScratch,
    rope_tables: RopeTables,
    profile: Option<LayerTimes>,
    /// Tokens the FFN takes at a time (see [`ffn_pieces`]).
    ffn_slice: usize,
    /// One token embedding row, read from the file.
    embd_row: Vec<u64>,
}

/// Tokens the FFN takes at a time by default: its gate and up rows are the largest activation
/// buffers of a prefill (32 MiB for 512 tokens of a Llama-3.2-1B shape), and 128 tokens keep
/// each matmul's batch large enough that weights re-read per slice cost ~1 % of a prefill.
const FFN_SLICE: usize = 128;

/// The token ranges the FFN of a batch of `n` runs in: `slice` tokens at a time (rounded down
/// to a multiple of 4, at least 8) while at least 8 would be left, then the rest. Every piece
/// starts at a multiple of 4 and holds at least 8 tokens (or the whole of a smaller batch), so
/// its matmuls take the kernels the whole batch would and group tokens by four from the same
/// offsets: the same bits (see docs/NUMERICS.md).
fn ffn_pieces(n: usize, slice: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let slice = (slice.max(8) / 4) * 4;
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= n {
            return None;
        }
        let end = if n - start >= slice.saturating_add(8) {
            start + slice
        } else {
            n
        };
        let piece = start..end;
        start = end;
        Some(piece)
    })
}

impl ForwardState {
    /// State for `model` with a pool of `n_threads` threads (at least 1).
    pub fn new(n_threads: usize) -> ForwardState {
        ForwardState {
            pool: ThreadPool::new(n_threads.max(1)),
            n_tokens: 0,
            x: Vec::new(),
            h: Vec::new(),
            q: Vec::new(),
            k: Vec::new(),
            v: Vec::new(),
            fused: Vec::new(),
            attn: Vec::new(),
            o: Vec::new(),
            gate: Vec::new(),
            up: Vec::new(),
            out_rows: Vec::new(),
            out_h: Vec::new(),
            logits: Vec::new(),
            logits_len: 0,
            mm: Matmuls::default(),
            attn_scratch: AttnScratch::default(),
            ssm: SsmScratch::default(),
            rope_tables: RopeTables::default(),
            profile: None,
            ffn_slice: FFN_SLICE,
            embd_row: Vec::new(),
        }
    }

    /// Runs the FFN `tokens` at a time (default 128; see [`ffn_pieces`]): less memory for
    /// long prompt batches, the same results whatever the value (tests set small ones).
    pub fn set_ffn_slice(&mut self, tokens: usize) {
        self.ffn_slice = tokens;
    }

    /// The thread pool.
    pub fn pool(&self) -> &ThreadPool {
        &self.pool
    }

    /// The logits of the last forward pass (what [`Model::forward`] returned), for a caller
    /// that wants them beside the pool.
    pub fn logits(&self) -> &[f32] {
        &self.logits[..self.logits_len]
    }

    /// Selects the selective-scan form Mamba2 layers use for prompts (see [`ssm::ScanMode`]).
    pub fn set_ssm_scan(&mut self, mode: ssm::ScanMode) {
        self.ssm.set_mode(mode);
    }

    /// Batch-invariant numerics (off by default): every token's matmuls use the one-token float
    /// order whatever the batch, so a sequence gets bit-identical logits alone or batched with
    /// others. Off, large batches use the orders llama.cpp uses for them, which matches its
    /// prefill bit for bit (see docs/NUMERICS.md and `MatmulScratch::set_batch_invariant`).
    pub fn set_batch_invariant(&mut self, on: bool) {
        self.mm.scratch.set_batch_invariant(on);
    }

    /// Switches timing of the forward pass's parts and of its matmuls per kind of weight
    /// matrix on (from zero) or off.
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(LayerTimes::default);
        self.mm.times = on.then(Vec::new);
    }

    /// The time per part and per kind of matrix since profiling was switched on (`None` when
    /// off).
    pub fn profile(&self) -> Option<LayerTimes> {
        let mut p = self.profile.clone()?;
        p.matmuls = self.mm.times.clone().unwrap_or_default();
        Some(p)
    }

    /// Grows the buffers for a batch of `t` tokens (no-op once large enough).
    fn reserve(&mut self, model: &Model, t: usize) {
        let c = model.config();
        let w = c.widths();
        let (max_q, max_k, max_v, max_attn, max_ff) = (w.q, w.k, w.v, w.attn, w.ff);
        let grow = |b: &mut Vec<f32>, n: usize| {
            if b.len() < n {
                b.resize(n, 0.0);
            }
        };
        grow(&mut self.x, t * c.n_embd);
        grow(&mut self.h, t * c.n_embd);
        grow(&mut self.o, t * c.n_embd);
        grow(&mut self.q, t * max_q);
        grow(&mut self.k, t * max_k);
        grow(&mut self.v, t * max_v);
        grow(&mut self.attn, t * max_attn);
        let piece = ffn_pieces(t, self.ffn_slice)
            .map(|p| p.len())
            .max()
            .unwrap_or(0);
        grow(&mut self.gate, piece * max_ff);
        grow(&mut self.up, piece * max_ff);
        if c.traits.fused_qkv_and_gate_up {
            grow(
                &mut self.fused,
                (t * (max_q + max_k + max_v)).max(piece * 2 * max_ff),
            );
        }
        self.n_tokens = t;
    }
}

impl Model {
    pub(super) fn matmul(
        &self,
        st_pool: &ThreadPool,
        mm: &mut Matmuls,
        w: &Linear,
        x: &[f32],
        t: usize,
        out: &mut [f32],
    ) -> Result<()> {
        self.matmul_many(st_pool, mm, [(w, out)], x, t)
    }

    /// [`Model::matmul`] of several matrices over the same activations as one pool op where
    /// they allow it ([`matmul_many`]): each result exactly what its own matmul gives.
    pub(super) fn matmul_many<const N: usize>(
        &self,
        pool: &ThreadPool,
        mm: &mut Matmuls,
        parts: [(&Linear, &mut [f32]); N],
        x: &[f32],
        t: usize,
    ) -> Result<()> {
        let cols = parts.first().map_or(0, |(w, _)| w.cols);
        let bytes = self.gguf().bytes();
        let mut mats = [None; N];
        for (m, (w, _)) in mats.iter_mut().zip(&parts) {
            *m = Some(w.matrix(bytes)?);
        }
        let names = parts.each_ref().map(|(w, _)| w.name.as_str());
        let mut mats = mats.into_iter().flatten();
        let mut weight_bytes = 0;
        let parts = parts.map(|(w, out)| {
            let m = mats.next().expect("every matrix was found just above");
            weight_bytes += m.data.len();
            (m, &mut out[..t * w.rows])
        });
        let start = mm.start();
        matmul_many(
            self.kernels(),
            pool,
            parts,
            &x[..t * cols],
            t,
            &mut mm.scratch,
        )?;
        mm.record(start, names.into_iter(), weight_bytes);
        Ok(())
    }

    pub(crate) fn rope_for(&self, layer: usize) -> Rope {
        let c = self.config();
        let spec = &c.layers[layer].attention;
        let (freq_scale, ext_factor, attn_factor, corr_dims) = match c.rope_scaling {
            RopeScaling::None => (1.0, 0.0, 1.0, [0.0, 0.0]),
            RopeScaling::Linear { factor } => (1.0 / factor, 0.0, 1.0, [0.0, 0.0]),
            RopeScaling::Yarn {
                factor,
                original_context,
                ext_factor,
                attn_factor,
                beta_fast,
                beta_slow,
            } => (
                1.0 / factor,
                ext_factor,
                attn_factor,
                ops::yarn_corr_dims(
                    c.n_rot,
                    original_context,
                    spec.rope_base,
                    beta_fast,
                    beta_slow,
                ),
            ),
        };
        // Gemma 3's sliding-window layers use their own base and no scaling.
        let unscaled = spec.sliding_window.is_some() && c.arch == super::Arch::Gemma3;
        Rope {
            n_rot: c.n_rot,
            base: spec.rope_base,
            freq_scale: if unscaled { 1.0 } else { freq_scale },
            ext_factor: if unscaled { 0.0 } else { ext_factor },
            attn_factor: if unscaled { 1.0 } else { attn_factor },
            corr_dims,
            neox: c.traits.rope == super::config::RopeStyle::Neox,
        }
    }

    pub(crate) fn check_batch(&self, batch: &Batch) -> Result<()> {
        let n = batch.tokens.len();
        if n == 0 {
            return Err(EngineError::BadBatch("empty batch".into()));
        }
        if batch.positions.len() != n || batch.seq_ids.len() != n || batch.want_logits.len() != n {
            return Err(EngineError::BadBatch(
                "tokens, positions, sequences and logit flags differ in length".into(),
            ));
        }
        if let Some(&bad) = batch
            .tokens
            .iter()
            .find(|&&t| t as usize >= self.config().n_vocab)
        {
            return Err(EngineError::BadBatch(format!(
                "token id {bad} is outside the vocabulary ({})",
                self.config().n_vocab
            )));
        }
        Ok(())
    }

    /// Runs `batch` through the model, storing its K/V in `kv` (space for every token's
    /// position must have been reserved with [`KvCache::grow_to`]). Returns the logits of the
    /// tokens that asked for them, `n_outputs × n_vocab`, in batch order.
    pub fn forward<'s>(
        &self,
        batch: &Batch,
        kv: &mut KvCache,
        st: &'s mut ForwardState,
    ) -> Result<&'s [f32]> {
        self.check_batch(batch)?;
        let c = self.config();
        let w = self.weights();
        let t_n = batch.len();
        let e = c.n_embd;
        st.reserve(self, t_n);
        st.rope_tables.clear();
        let mut laps = Laps::start(&st.profile);

        // Embeddings: each row read from the file, not through the map (see
        // `Linear::read_row`).
        for (t, &tok) in batch.tokens.iter().enumerate() {
            let row = w
                .token_embd
                .read_row(self.gguf(), tok as usize, &mut st.embd_row);
            let x = &mut st.x[t * e..(t + 1) * e];
            self.kernels().dequantize_row(w.token_embd.ty, row, x)?;
            if c.embedding_scale != 1.0 {
                x.iter_mut().for_each(|v| *v *= c.embedding_scale);
            }
        }

        let recurrent = kv.recurrent().has_layers();
        if recurrent {
            ssm::check_batch(self, batch, kv)?;
        }
        laps.lap(&mut st.profile, Part::Other);
        for l in 0..c.n_layer() {
            let part = match c.layers[l].kind {
                LayerKind::Attention => {
                    self.attention_block(l, batch, kv, st)?;
                    Part::Attention
                }
                LayerKind::Mamba2 => {
                    self.mamba2_block(l, batch, kv, st)?;
                    Part::Mamba2
                }
            };
            laps.lap(&mut st.profile, part);
            self.ffn_block(l, st)?;
            laps.lap(&mut st.profile, Part::Ffn);
        }
        if recurrent {
            kv.recurrent_mut().advance(&batch.seq_ids, &batch.positions);
        }

        // Final norm and logits for the rows that want them.
        st.out_rows.clear();
        st.out_rows
            .extend((0..t_n).filter(|&t| batch.want_logits[t]));
        let n_out = st.out_rows.len();
        if st.out_h.len() < n_out * e {
            st.out_h.resize(n_out * e, 0.0);
        }
        for (i, &t) in st.out_rows.iter().enumerate() {
            ops::rms_norm(
                &st.x[t * e..(t + 1) * e],
                &w.output_norm,
                c.norm_eps,
                &mut st.out_h[i * e..(i + 1) * e],
            );
        }
        let n_vocab = c.n_vocab;
        if st.logits.len() < n_out * n_vocab {
            st.logits.resize(n_out * n_vocab, 0.0);
        }
        if n_out > 0 {
            self.matmul(
                &st.pool,
                &mut st.mm,
                &w.output,
                &st.out_h,
                n_out,
                &mut st.logits,
            )?;
        }
        st.logits_len = n_out * n_vocab;
        let logits = &mut st.logits[..n_out * n_vocab];
        if c.logit_divisor != 1.0 {
            let s = 1.0 / c.logit_divisor;
            logits.iter_mut().for_each(|v| *v *= s);
        }
        if let Some(cap) = c.final_softcap {
            ops::softcap(logits, cap);
        }
        laps.lap(&mut st.profile, Part::Other);
        if let Some(p) = &mut st.profile {
            p.forwards += 1;
            p.tokens += t_n;
        }
        Ok(logits)
    }

    fn attention_block(
        &self,
        l: usize,
        batch: &Batch,
        kv: &mut KvCache,
        st: &mut ForwardState,
    ) -> Result<()> {
        let c = self.config();
        let lw = &self.weights().layers[l];
        let spec = &c.layers[l].attention;
        let t_n = st.n_tokens;
        let (hd_k, hd_v) = (c.head_dim_k, c.head_dim_v);
        let (q_dim, k_dim, v_dim) = (
            spec.n_head * hd_k,
            spec.n_head_kv * hd_k,
            spec.n_head_kv * hd_v,
        );

        self.pre_norm(lw.attn_norm.as_deref(), st);
        if let Some(wqkv) = &lw.wqkv {
            let width = q_dim + k_dim + v_dim;
            self.matmul(&st.pool, &mut st.mm, wqkv, &st.h, t_n, &mut st.fused)?;
            for t in 0..t_n {
                let row = &st.fused[t * width..(t + 1) * width];
                st.q[t * q_dim..(t + 1) * q_dim].copy_from_slice(&row[..q_dim]);
                st.k[t * k_dim..(t + 1) * k_dim].copy_from_slice(&row[q_dim..q_dim + k_dim]);
                st.v[t * v_dim..(t + 1) * v_dim].copy_from_slice(&row[q_dim + k_dim..]);
            }
        } else {
            let (wq, wk, wv) = (lw.wq.as_ref(), lw.wk.as_ref(), lw.wv.as_ref());
            let missing = || EngineError::MissingTensor {
                name: format!("blk.{l}.attn_q/k/v.weight"),
            };
            self.matmul_many(
                &st.pool,
                &mut st.mm,
                [
                    (wq.ok_or_else(missing)?, &mut st.q[..]),
                    (wk.ok_or_else(missing)?, &mut st.k[..]),
                    (wv.ok_or_else(missing)?, &mut st.v[..]),
                ],
                &st.h,
                t_n,
            )?;
        }
        for (buf, bias, width) in [
            (&mut st.q, &lw.bq, q_dim),
            (&mut st.k, &lw.bk, k_dim),
            (&mut st.v, &lw.bv, v_dim),
        ] {
            if let Some(b) = bias {
                for row in buf[..t_n * width].chunks_exact_mut(width) {
                    ops::add_scaled(row, b, 1.0);
                }
            }
        }
        // Q/K norm widths: each head (Qwen3, Gemma 3) or the whole projection (OLMo 2).
        let qk_widths = match c.traits.qk_norm {
            QkNorm::None => None,
            QkNorm::PerHead => Some((hd_k, hd_k)),
            QkNorm::Full => Some((q_dim, k_dim)),
        };
        // Per token: Q/K norms, then RoPE (token by token, so the same bits however the
        // tokens are split across the pool).
        let rope = spec.rope.then(|| self.rope_for(l));
        let freq_factors = self.weights().rope_freqs.as_deref();
        let rope_table = rope.as_ref().map(|r| {
            st.rope_tables
                .get(r, &batch.positions, freq_factors, &st.pool)
        });
        let (q_norm, k_norm) = (
            lw.q_norm.as_deref().unwrap_or(&[]),
            lw.k_norm.as_deref().unwrap_or(&[]),
        );
        let prepare = |t: usize, q: &mut [f32], k: &mut [f32]| {
            if let Some((qw, kw)) = qk_widths {
                ops::rms_norm_chunks(q, qw, q_norm, c.norm_eps);
                ops::rms_norm_chunks(k, kw, k_norm, c.norm_eps);
            }
            if let (Some(rope), Some(table)) = (&rope, rope_table) {
                let cache = &table[t * rope.n_rot..(t + 1) * rope.n_rot];
                rope.apply(q, hd_k, cache);
                rope.apply(k, hd_k, cache);
            }
        };
        if qk_widths.is_some() || rope.is_some() {
            // One token, or one thread: the pool runs the tokens in this thread, in order.
            assert!(st.q.len() >= t_n * q_dim && st.k.len() >= t_n * k_dim);
            let (qp, kp) = (SendPtr(st.q.as_mut_ptr()), SendPtr(st.k.as_mut_ptr()));
            st.pool.run(t_n, |t| {
                // SAFETY: token t alone touches its rows of q and k, inside both buffers
                // (asserted above).
                let (q, k) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(qp.get().add(t * q_dim), q_dim),
                        std::slice::from_raw_parts_mut(kp.get().add(t * k_dim), k_dim),
                    )
                };
                prepare(t, q, k);
            });
        }
        // The Gemma family scales Q before attention; the others scale the scores.
        let kq_scale = if c.traits.scale_embeddings_by_sqrt_dim {
            st.q[..t_n * q_dim]
                .iter_mut()
                .for_each(|v| *v *= c.attention_scale);
            1.0
        } else {
            c.attention_scale
        };
        for t in 0..t_n {
            let slot = kv.slot(l, batch.seq_ids[t], batch.positions[t])?;
            kv.write(
                l,
                slot,
                &st.k[t * k_dim..(t + 1) * k_dim],
                &st.v[t * v_dim..(t + 1) * v_dim],
            );
        }
        let params = AttnParams {
            n_head: spec.n_head,
            n_head_kv: spec.n_head_kv,
            head_dim_k: hd_k,
            head_dim_v: hd_v,
            kq_scale,
            softcap: c.attn_softcap,
            window: spec.sliding_window,
            // llama.cpp switches its flash attention to the tiled kernel from 64 query rows.
            tiled: !st.mm.scratch.batch_invariant()
                && t_n >= super::attention_tiled::TILE
                && kv.types() == (CacheType::F16, CacheType::F16),
        };
        let attn_width = spec.n_head * hd_v;
        attend(
            &st.pool,
            kv,
            l,
            batch,
            &params,
            &st.q[..t_n * q_dim],
            &mut st.attn[..t_n * attn_width],
            &mut st.attn_scratch,
        )?;
        let wo = lw.wo.as_ref().ok_or_else(|| EngineError::MissingTensor {
            name: format!("blk.{l}.attn_output.weight"),
        })?;
        self.matmul(&st.pool, &mut st.mm, wo, &st.attn, t_n, &mut st.o)?;
        self.finish_residual(l, lw.bo.as_deref(), lw.post_attn_norm.as_deref(), st);
        Ok(())
    }

    /// Norm, Mamba2 mixer (see [`ssm`]), residual.
    fn mamba2_block(
        &self,
        l: usize,
        batch: &Batch,
        kv: &mut KvCache,
        st: &mut ForwardState,
    ) -> Result<()> {
        let c = self.config();
        let lw = &self.weights().layers[l];
        let (t_n, e) = (st.n_tokens, c.n_embd);
        self.pre_norm(lw.attn_norm.as_deref(), st);
        ssm::mamba2_mix(
            self,
            l,
            batch,
            kv,
            &st.h[..t_n * e],
            &mut st.o,
            &st.pool,
            &mut st.mm,
            &mut st.ssm,
        )?;
        self.finish_residual(l, None, None, st);
        Ok(())
    }

    /// `h = rms_norm(x) · w` for each token, or `h = x` when the block has no such norm.
    fn pre_norm(&self, w: Option<&[f32]>, st: &mut ForwardState) {
        let (t_n, e) = (st.n_tokens, self.config().n_embd);
        match w {
            Some(wn) => {
                let (x, eps) = (&st.x[..t_n * e], self.config().norm_eps);
                rows_on_pool(&st.pool, &mut st.h[..t_n * e], e, |t, h| {
                    ops::rms_norm(&x[t * e..(t + 1) * e], wn, eps, h);
                });
            }
            None => st.h[..t_n * e].copy_from_slice(&st.x[..t_n * e]),
        }
    }

    /// `x += residual_scale · post_norm(o + bias)`.
    fn finish_residual(
        &self,
        _l: usize,
        bias: Option<&[f32]>,
        post_norm: Option<&[f32]>,
        st: &mut ForwardState,
    ) {
        let c = self.config();
        let (t_n, e) = (st.n_tokens, c.n_embd);
        let o = &mut st.o[..t_n * e];
        let o_ptr = SendPtr(o.as_mut_ptr());
        rows_on_pool(&st.pool, &mut st.x[..t_n * e], e, |t, x| {
            // SAFETY: row t of `o` (t < t_n, inside `o`) is touched by this row's call alone.
            let o = unsafe { std::slice::from_raw_parts_mut(o_ptr.get().add(t * e), e) };
            if let Some(b) = bias {
                ops::add_scaled(o, b, 1.0);
            }
            if let Some(wn) = post_norm {
                ops::rms_norm_chunks(o, e, wn, c.norm_eps);
            }
            ops::add_scaled(x, o, c.residual_scale);
        });
    }

    fn ffn_block(&self, l: usize, st: &mut ForwardState) -> Result<()> {
        let c = self.config();
        let lw = &self.weights().layers[l];
        let (t_n, ff, e) = (st.n_tokens, c.layers[l].n_ff, c.n_embd);
        self.pre_norm(lw.ffn_norm.as_deref(), st);
        let missing = |what: &str| EngineError::MissingTensor {
            name: format!("blk.{l}.ffn_{what}.weight"),
        };
        let up = lw.up.as_ref().ok_or_else(|| missing("up"))?;
        let down = lw.down.as_ref().ok_or_else(|| missing("down"))?;
        let glu = match c.traits.activation {
            Activation::Silu => ops::swiglu,
            Activation::GeluTanh => ops::geglu,
        };
        for piece in ffn_pieces(t_n, st.ffn_slice) {
            let n = piece.len();
            let h = &st.h[piece.start * e..piece.end * e];
            match &lw.gate {
                Some(gate) => {
                    self.matmul_many(
                        &st.pool,
                        &mut st.mm,
                        [(gate, &mut st.gate[..]), (up, &mut st.up[..])],
                        h,
                        n,
                    )?;
                }
                None => {
                    self.matmul(&st.pool, &mut st.mm, up, h, n, &mut st.fused)?;
                    for t in 0..n {
                        let row = &st.fused[t * 2 * ff..(t + 1) * 2 * ff];
                        st.gate[t * ff..(t + 1) * ff].copy_from_slice(&row[..ff]);
                        st.up[t * ff..(t + 1) * ff].copy_from_slice(&row[ff..]);
                    }
                }
            }
            glu_rows(&st.pool, glu, &mut st.gate[..n * ff], &st.up[..n * ff], ff);
            let o = &mut st.o[piece.start * e..piece.end * e];
            self.matmul(&st.pool, &mut st.mm, down, &st.gate, n, o)?;
        }
        self.finish_residual(l, None, lw.post_ffn_norm.as_deref(), st);
        Ok(())
    }
}

/// `f(r, row)` for every row of `width` values of `data`, the rows split across the pool
/// (each row's result its own, so the same bits however they are split; a batch of one runs
/// in the calling thread).
pub(super) fn rows_on_pool(
    pool: &ThreadPool,
    data: &mut [f32],
    width: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let rows = data.len() / width.max(1);
    if rows < 2 || pool.threads_now() == 1 {
        for (r, row) in data.chunks_exact_mut(width.max(1)).enumerate() {
            f(r, row);
        }
        return;
    }
    let chunks = rows.min(pool.threads_now() * 4);
    let per_chunk = rows.div_ceil(chunks);
    let p = SendPtr(data.as_mut_ptr());
    pool.run(chunks, |c| {
        for r in c * per_chunk..((c + 1) * per_chunk).min(rows) {
            // SAFETY: row r (r < rows, inside `data`) belongs to chunk c alone.
            let row = unsafe { std::slice::from_raw_parts_mut(p.get().add(r * width), width) };
            f(r, row);
        }
    });
}

/// `glu(gate, up)` over rows of `ff` values, the rows split across the pool (element-wise, so
/// the same bits however they are split).
fn glu_rows(pool: &ThreadPool, glu: fn(&mut [f32], &[f32]), g: &mut [f32], u: &[f32], ff: usize) {
    assert!(u.len() >= g.len());
    rows_on_pool(pool, g, ff, |r, gr| glu(gr, &u[r * ff..(r + 1) * ff]));
}
