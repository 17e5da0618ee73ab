//! The forward pass of [`CudaBackend`], launch by launch (see the parent module's docs).

use nanorun_cuda::{paged, DevBuf};

use super::{attn_params, err, gelu, qk_norm_widths, rope_params, Bufs, CudaBackend, LayerVecs};
use crate::batch::Batch;
use crate::error::{EngineError, Result};
use crate::kv::KvCache;
use crate::model::weights::Linear;
use crate::model::Model;

type Pool = Option<(DevBuf<u16>, DevBuf<u16>)>;

fn missing(name: String) -> EngineError {
    EngineError::MissingTensor { name }
}

impl CudaBackend {
    /// Runs `batch`; leaves the wanted logits in `self.logits`.
    pub(super) fn run(&mut self, model: &Model, batch: &Batch, kv: &KvCache) -> Result<()> {
        let mut bufs = self
            .bufs
            .take()
            .ok_or_else(|| EngineError::Backend("activation buffers not allocated".into()))?;
        let mut pools = std::mem::take(&mut self.pools);
        let r = self.run_with(model, batch, kv, &mut bufs, &mut pools);
        self.bufs = Some(bufs);
        self.pools = pools;
        r
    }

    fn linear(
        &self,
        w: &Linear,
        x: &DevBuf<f32>,
        t: usize,
        q8: &mut DevBuf<u8>,
        out: &mut DevBuf<f32>,
    ) -> Result<()> {
        self.gpu.linear(self.mat(w)?, x, t, q8, out).map_err(err)
    }

    /// `h = rms_norm(x) · w`, or `h = x` without a norm.
    fn pre_norm(
        &self,
        model: &Model,
        w: Option<&DevBuf<f32>>,
        b: &mut Bufs,
        t: usize,
    ) -> Result<()> {
        let c = model.config();
        let e = c.n_embd;
        match w {
            Some(wn) => self
                .gpu
                .rms_norm(&b.x, Some(wn), &mut b.h, t, e, c.norm_eps),
            None => self.gpu.copy_cols(&b.x, e, 0, &mut b.h, e, t),
        }
        .map_err(err)
    }

    /// `x += residual_scale · post_norm(o + bias)`.
    fn finish_residual(
        &self,
        model: &Model,
        bias: Option<&DevBuf<f32>>,
        post_norm: Option<&DevBuf<f32>>,
        b: &mut Bufs,
        t: usize,
    ) -> Result<()> {
        let c = model.config();
        let e = c.n_embd;
        let g = &self.gpu;
        if let Some(bias) = bias {
            g.add_bias(&mut b.o, bias, e, t * e).map_err(err)?;
        }
        if let Some(wn) = post_norm {
            g.rms_norm_in_place(&mut b.o, Some(wn), t, e, c.norm_eps)
                .map_err(err)?;
        }
        g.add_scaled(&mut b.x, &b.o, c.residual_scale, t * e)
            .map_err(err)
    }

    fn run_with(
        &mut self,
        model: &Model,
        batch: &Batch,
        kv: &KvCache,
        b: &mut Bufs,
        pools: &mut [Pool],
    ) -> Result<()> {
        let c = model.config();
        let w = model.weights();
        let (t, e) = (batch.len(), c.n_embd);
        let g = &self.gpu;
        let ids = g.upload(&batch.tokens).map_err(err)?;
        let pos: Vec<i32> = batch
            .positions
            .iter()
            .map(|&p| {
                i32::try_from(p)
                    .map_err(|_| EngineError::BadBatch(format!("position {p} is too large")))
            })
            .collect::<Result<_>>()?;
        let dpos = g.upload(&pos).map_err(err)?;
        g.get_rows(
            self.mat(&w.token_embd)?,
            &ids,
            t,
            c.embedding_scale,
            &mut b.x,
        )
        .map_err(err)?;
        if pools.len() != c.n_layer() {
            return Err(EngineError::Backend(
                "K/V pools do not match the layers".into(),
            ));
        }
        for (l, pool) in pools.iter_mut().enumerate() {
            let pool = pool
                .as_mut()
                .ok_or_else(|| EngineError::Backend(format!("layer {l} has no K/V pool")))?;
            self.attention_block(model, l, batch, kv, &dpos, b, pool)?;
            self.ffn_block(model, l, b, t)?;
        }

        // Final norm and logits for the rows that want them.
        let rows: Vec<usize> = (0..t).filter(|&i| batch.want_logits[i]).collect();
        let n_out = rows.len();
        self.logits.clear();
        if n_out == 0 {
            return Ok(());
        }
        let g = &self.gpu;
        g.rms_norm(&b.x, Some(&self.output_norm), &mut b.h, t, e, c.norm_eps)
            .map_err(err)?;
        let n_vocab = c.n_vocab;
        let mut oh = match self.out_h.take() {
            Some(o) if o.len() >= n_out * e => o,
            _ => g.zeros::<f32>(n_out * e).map_err(err)?,
        };
        let mut lg = match self.logits_dev.take() {
            Some(o) if o.len() >= n_out * n_vocab => o,
            _ => g.zeros::<f32>(n_out * n_vocab).map_err(err)?,
        };
        let r = (|| -> Result<Vec<f32>> {
            g.copy_rows(&b.h, &rows, e, &mut oh).map_err(err)?;
            self.linear(&w.output, &oh, n_out, &mut b.q8, &mut lg)?;
            if c.logit_divisor != 1.0 {
                g.scale(&mut lg, 1.0 / c.logit_divisor, n_out * n_vocab)
                    .map_err(err)?;
            }
            if let Some(cap) = c.final_softcap {
                g.softcap(&mut lg, cap, n_out * n_vocab).map_err(err)?;
            }
            g.download(&lg, n_out * n_vocab).map_err(err)
        })();
        self.out_h = Some(oh);
        self.logits_dev = Some(lg);
        self.logits = r?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn attention_block(
        &self,
        model: &Model,
        l: usize,
        batch: &Batch,
        kv: &KvCache,
        dpos: &DevBuf<i32>,
        b: &mut Bufs,
        (k_pool, v_pool): &mut (DevBuf<u16>, DevBuf<u16>),
    ) -> Result<()> {
        let c = model.config();
        let lw = &model.weights().layers[l];
        let lv: &LayerVecs = &self.layers[l];
        let spec = &c.layers[l].attention;
        let t = batch.len();
        let g = &self.gpu;
        let (hd_k, hd_v) = (c.head_dim_k, c.head_dim_v);
        let (q_dim, k_dim, v_dim) = (
            spec.n_head * hd_k,
            spec.n_head_kv * hd_k,
            spec.n_head_kv * hd_v,
        );

        self.pre_norm(model, lv.attn_norm.as_ref(), b, t)?;
        if let Some(wqkv) = &lw.wqkv {
            let width = q_dim + k_dim + v_dim;
            self.linear(wqkv, &b.h, t, &mut b.q8, &mut b.fused)?;
            g.copy_cols(&b.fused, width, 0, &mut b.q, q_dim, t)
                .map_err(err)?;
            g.copy_cols(&b.fused, width, q_dim, &mut b.k, k_dim, t)
                .map_err(err)?;
            g.copy_cols(&b.fused, width, q_dim + k_dim, &mut b.v, v_dim, t)
                .map_err(err)?;
        } else {
            let name = || format!("blk.{l}.attn_q/k/v.weight");
            self.linear(
                lw.wq.as_ref().ok_or_else(|| missing(name()))?,
                &b.h,
                t,
                &mut b.q8,
                &mut b.q,
            )?;
            self.linear(
                lw.wk.as_ref().ok_or_else(|| missing(name()))?,
                &b.h,
                t,
                &mut b.q8,
                &mut b.k,
            )?;
            self.linear(
                lw.wv.as_ref().ok_or_else(|| missing(name()))?,
                &b.h,
                t,
                &mut b.q8,
                &mut b.v,
            )?;
        }
        for (buf, bias, width) in [
            (&mut b.q, &lv.bq, q_dim),
            (&mut b.k, &lv.bk, k_dim),
            (&mut b.v, &lv.bv, v_dim),
        ] {
            if let Some(bias) = bias {
                g.add_bias(buf, bias, width, t * width).map_err(err)?;
            }
        }
        if let Some((qw, kw)) = qk_norm_widths(c, q_dim, k_dim) {
            g.rms_norm_in_place(&mut b.q, lv.q_norm.as_ref(), t * q_dim / qw, qw, c.norm_eps)
                .map_err(err)?;
            g.rms_norm_in_place(&mut b.k, lv.k_norm.as_ref(), t * k_dim / kw, kw, c.norm_eps)
                .map_err(err)?;
        }
        if spec.rope {
            let ff = self.rope_freqs.as_ref();
            g.rope(&mut b.q, dpos, ff, &rope_params(model, l, spec.n_head), t)
                .map_err(err)?;
            g.rope(
                &mut b.k,
                dpos,
                ff,
                &rope_params(model, l, spec.n_head_kv),
                t,
            )
            .map_err(err)?;
        }
        // The Gemma family scales Q before attention; the others scale the scores.
        let kq_scale = if c.traits.scale_embeddings_by_sqrt_dim {
            g.scale(&mut b.q, c.attention_scale, t * q_dim)
                .map_err(err)?;
            1.0
        } else {
            c.attention_scale
        };
        let mut slots = Vec::with_capacity(t);
        let mut tables = Vec::with_capacity(t);
        for i in 0..t {
            let (seq, p) = (batch.seq_ids[i], batch.positions[i]);
            let s = kv.slot(l, seq, p)?;
            slots.push(
                i32::try_from(s)
                    .map_err(|_| EngineError::Backend(format!("KV slot {s} is too large")))?,
            );
            tables.push(kv.table(l, seq)?);
        }
        let flat = paged::flatten_tables(&tables)
            .ok_or_else(|| EngineError::Backend("a KV block id does not fit an i32".into()))?;
        let dslots = g.upload(&slots).map_err(err)?;
        let dtables = g.upload(&flat.entries).map_err(err)?;
        g.kv_store(&b.k, &b.v, &dslots, k_pool, v_pool, k_dim, v_dim, t)
            .map_err(err)?;
        let p = attn_params(model, l, kv, flat.max_blocks, kq_scale);
        g.attention(&b.q, k_pool, v_pool, &dtables, dpos, &mut b.attn, &p, t)
            .map_err(err)?;
        let wo = lw
            .wo
            .as_ref()
            .ok_or_else(|| missing(format!("blk.{l}.attn_output.weight")))?;
        self.linear(wo, &b.attn, t, &mut b.q8, &mut b.o)?;
        self.finish_residual(model, lv.bo.as_ref(), lv.post_attn_norm.as_ref(), b, t)
    }

    fn ffn_block(&self, model: &Model, l: usize, b: &mut Bufs, t: usize) -> Result<()> {
        let c = model.config();
        let lw = &model.weights().layers[l];
        let lv: &LayerVecs = &self.layers[l];
        let ff = c.layers[l].n_ff;
        let g = &self.gpu;
        self.pre_norm(model, lv.ffn_norm.as_ref(), b, t)?;
        let up = lw
            .up
            .as_ref()
            .ok_or_else(|| missing(format!("blk.{l}.ffn_up.weight")))?;
        match &lw.gate {
            Some(gate) => {
                self.linear(gate, &b.h, t, &mut b.q8, &mut b.gate)?;
                self.linear(up, &b.h, t, &mut b.q8, &mut b.up)?;
            }
            None => {
                self.linear(up, &b.h, t, &mut b.q8, &mut b.fused)?;
                g.copy_cols(&b.fused, 2 * ff, 0, &mut b.gate, ff, t)
                    .map_err(err)?;
                g.copy_cols(&b.fused, 2 * ff, ff, &mut b.up, ff, t)
                    .map_err(err)?;
            }
        }
        g.glu(&mut b.gate, &b.up, t * ff, gelu(c)).map_err(err)?;
        let down = lw
            .down
            .as_ref()
            .ok_or_else(|| missing(format!("blk.{l}.ffn_down.weight")))?;
        self.linear(down, &b.gate, t, &mut b.q8, &mut b.o)?;
        self.finish_residual(model, None, lv.post_ffn_norm.as_ref(), b, t)
    }
}
