//! The CUDA backend (cargo feature `cuda`): the llama / Gemma family of decoder blocks on one
//! GPU through `nanorun-cuda`. Weights are uploaded once, in their GGUF block layout; norms and
//! biases as f32. K/V live in an f16 pool per layer on the device with the same slot numbering
//! as the host [`KvCache`], whose block tables (and only those) the backend reads, so the
//! scheduler and the KV bookkeeping are the CPU path's. One backend serves one KV cache at a
//! time.
//!
//! The forward pass mirrors `model::forward` step for step: embeddings (scaled), per layer
//! pre-norm, Q/K/V (separate or fused, biases), Q/K norms, RoPE, Gemma's Q scaling,
//! paged attention (GQA, sliding window, soft-capping), output projection, post-norm,
//! residual; FFN with SwiGLU or GeGLU; final norm, logits for the tokens that want them,
//! logit divisor and final soft-capping.
//!
//! Not done: Mamba2 (hybrid) layers, q8_0 KV caches. Verified under the CPU emulation of the
//! device against the CPU backend (engine/tests/cuda_backend.rs); **unverified** on a GPU (see
//! `docs/cuda.md`).

use std::collections::HashMap;
use std::sync::Arc;

use nanorun_cuda::device::{AttnParams, RopeParams};
use nanorun_cuda::{layout, DevBuf, DeviceWeight, Gpu};

use super::Backend;
use crate::batch::Batch;
use crate::error::{EngineError, Result};
use crate::kv::{CacheType, KvCache};
use crate::model::config::{Activation, LayerKind, QkNorm};
use crate::model::weights::Linear;
use crate::model::Model;

fn err(e: nanorun_cuda::CudaError) -> EngineError {
    EngineError::Backend(e.to_string())
}

/// Norms and biases of one layer on the device.
#[derive(Default)]
struct LayerVecs {
    attn_norm: Option<DevBuf<f32>>,
    bq: Option<DevBuf<f32>>,
    bk: Option<DevBuf<f32>>,
    bv: Option<DevBuf<f32>>,
    bo: Option<DevBuf<f32>>,
    q_norm: Option<DevBuf<f32>>,
    k_norm: Option<DevBuf<f32>>,
    post_attn_norm: Option<DevBuf<f32>>,
    ffn_norm: Option<DevBuf<f32>>,
    post_ffn_norm: Option<DevBuf<f32>>,
}

/// Activation buffers for up to `cap` tokens.
struct Bufs {
    cap: usize,
    x: DevBuf<f32>,
    h: DevBuf<f32>,
    q: DevBuf<f32>,
    k: DevBuf<f32>,
    v: DevBuf<f32>,
    fused: DevBuf<f32>,
    attn: DevBuf<f32>,
    o: DevBuf<f32>,
    gate: DevBuf<f32>,
    up: DevBuf<f32>,
    q8: DevBuf<u8>,
}

/// The model on one CUDA device (see the module docs).
pub struct CudaBackend {
    gpu: Arc<Gpu>,
    /// Matrices by file offset (a tied output shares the embedding's upload).
    mats: HashMap<usize, DeviceWeight>,
    layers: Vec<LayerVecs>,
    output_norm: DevBuf<f32>,
    rope_freqs: Option<DevBuf<f32>>,
    /// K and V pools per attention layer, `pool_slots` slots each.
    pools: Vec<Option<(DevBuf<u16>, DevBuf<u16>)>>,
    pool_slots: usize,
    bufs: Option<Bufs>,
    out_h: Option<DevBuf<f32>>,
    logits_dev: Option<DevBuf<f32>>,
    logits: Vec<f32>,
}

impl CudaBackend {
    /// Opens CUDA device `ordinal` and uploads `model`'s weights. Errors name what is missing
    /// (driver, device, NVRTC) or what the backend does not run (Mamba2 layers, a weight type
    /// without kernels).
    pub fn new(model: &Model, ordinal: usize) -> Result<CudaBackend> {
        CudaBackend::check_model(model)?;
        CudaBackend::with_gpu(model, Arc::new(Gpu::new(ordinal).map_err(err)?))
    }

    /// Errors for what the backend does not run.
    fn check_model(model: &Model) -> Result<()> {
        if model
            .config()
            .layers
            .iter()
            .any(|l| l.kind == LayerKind::Mamba2)
        {
            return Err(EngineError::Backend(
                "the CUDA backend does not run Mamba2 (hybrid) layers yet; use --device cpu".into(),
            ));
        }
        Ok(())
    }

    /// The backend on an opened `gpu` — a CUDA device, or the CPU emulation of one
    /// ([`Gpu::emulated`]) with which the tests run this whole forward pass without a GPU.
    pub fn with_gpu(model: &Model, gpu: Arc<Gpu>) -> Result<CudaBackend> {
        CudaBackend::check_model(model)?;
        let w = model.weights();
        let file = model.gguf().bytes();
        let mut mats = HashMap::new();
        let mut upload = |l: &Linear| -> Result<()> {
            if let std::collections::hash_map::Entry::Vacant(slot) = mats.entry(l.offset) {
                slot.insert(
                    gpu.upload_weight(&l.name, l.ty, l.rows, l.cols, l.bytes(file))
                        .map_err(err)?,
                );
            }
            Ok(())
        };
        upload(&w.token_embd)?;
        upload(&w.output)?;
        for lw in &w.layers {
            for l in [
                &lw.wq, &lw.wk, &lw.wv, &lw.wqkv, &lw.wo, &lw.gate, &lw.up, &lw.down,
            ]
            .into_iter()
            .flatten()
            {
                upload(l)?;
            }
        }
        let vec = |v: &Option<Vec<f32>>| -> Result<Option<DevBuf<f32>>> {
            v.as_deref().map(|v| gpu.upload(v).map_err(err)).transpose()
        };
        let mut layers = Vec::with_capacity(w.layers.len());
        for lw in &w.layers {
            layers.push(LayerVecs {
                attn_norm: vec(&lw.attn_norm)?,
                bq: vec(&lw.bq)?,
                bk: vec(&lw.bk)?,
                bv: vec(&lw.bv)?,
                bo: vec(&lw.bo)?,
                q_norm: vec(&lw.q_norm)?,
                k_norm: vec(&lw.k_norm)?,
                post_attn_norm: vec(&lw.post_attn_norm)?,
                ffn_norm: vec(&lw.ffn_norm)?,
                post_ffn_norm: vec(&lw.post_ffn_norm)?,
            });
        }
        let output_norm = gpu.upload(&w.output_norm).map_err(err)?;
        let rope_freqs = vec(&w.rope_freqs)?;
        Ok(CudaBackend {
            gpu,
            mats,
            layers,
            output_norm,
            rope_freqs,
            pools: Vec::new(),
            pool_slots: 0,
            bufs: None,
            out_h: None,
            logits_dev: None,
            logits: Vec::new(),
        })
    }

    fn mat(&self, l: &Linear) -> Result<&DeviceWeight> {
        self.mats
            .get(&l.offset)
            .ok_or_else(|| EngineError::Backend(format!("tensor '{}' was not uploaded", l.name)))
    }

    /// Allocates the K/V pools for `kv`'s slot count (keeps them when already that size).
    fn ensure_pools(&mut self, model: &Model, kv: &KvCache) -> Result<()> {
        if kv.types() != (CacheType::F16, CacheType::F16) {
            return Err(EngineError::Backend(
                "the CUDA backend keeps K/V in f16 only (use -k f16 -v f16)".into(),
            ));
        }
        let slots = kv.config().n_blocks * kv.config().block_size;
        if slots == self.pool_slots && !self.pools.is_empty() {
            return Ok(());
        }
        let c = model.config();
        self.pools.clear();
        for l in &c.layers {
            let a = &l.attention;
            self.pools.push(if a.n_head_kv > 0 {
                let k = self
                    .gpu
                    .zeros::<u16>(slots * a.n_head_kv * c.head_dim_k)
                    .map_err(err)?;
                let v = self
                    .gpu
                    .zeros::<u16>(slots * a.n_head_kv * c.head_dim_v)
                    .map_err(err)?;
                Some((k, v))
            } else {
                None
            });
        }
        self.pool_slots = slots;
        Ok(())
    }

    /// Grows the activation buffers to `t` tokens.
    fn ensure_bufs(&mut self, model: &Model, t: usize) -> Result<()> {
        if self.bufs.as_ref().is_some_and(|b| b.cap >= t) {
            return Ok(());
        }
        let c = model.config();
        let w = c.widths();
        let (max_q, max_k, max_v, max_attn, max_ff) = (w.q, w.k, w.v, w.attn, w.ff);
        let max_cols = self.mats.values().map(|m| m.layout.cols).max().unwrap_or(0);
        let g = &self.gpu;
        let z = |n: usize| g.zeros::<f32>(n).map_err(err);
        self.bufs = Some(Bufs {
            cap: t,
            x: z(t * c.n_embd)?,
            h: z(t * c.n_embd)?,
            q: z(t * max_q)?,
            k: z(t * max_k)?,
            v: z(t * max_v)?,
            fused: z(t * (max_q + max_k + max_v).max(2 * max_ff))?,
            attn: z(t * max_attn)?,
            o: z(t * c.n_embd)?,
            gate: z(t * max_ff)?,
            up: z(t * max_ff)?,
            q8: g
                .zeros::<u8>(layout::q8_1_bytes(t, max_cols))
                .map_err(err)?,
        });
        Ok(())
    }
}

#[path = "cuda_forward.rs"]
mod forward;

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn forward<'s>(
        &'s mut self,
        model: &Model,
        batch: &Batch,
        kv: &mut KvCache,
    ) -> Result<&'s [f32]> {
        model.check_batch(batch)?;
        self.ensure_pools(model, kv)?;
        self.ensure_bufs(model, batch.len())?;
        self.run(model, batch, kv)?;
        Ok(&self.logits)
    }
}

/// RoPE parameters of `layer` for the kernel, from the CPU path's [`crate::model::ops::Rope`].
fn rope_params(model: &Model, layer: usize, n_heads: usize) -> RopeParams {
    let r = model.rope_for(layer);
    RopeParams {
        n_heads: n_heads as i32,
        head_dim: model.config().head_dim_k as i32,
        n_rot: r.n_rot as i32,
        neox: r.neox as i32,
        base: r.base,
        freq_scale: r.freq_scale,
        ext_factor: r.ext_factor,
        attn_factor: r.attn_factor,
        corr0: r.corr_dims[0],
        corr1: r.corr_dims[1],
    }
}

/// The attention kernel's parameters for `layer`.
fn attn_params(
    model: &Model,
    layer: usize,
    kv: &KvCache,
    max_blocks: usize,
    kq_scale: f32,
) -> AttnParams {
    let c = model.config();
    let a = &c.layers[layer].attention;
    AttnParams {
        n_head: a.n_head as i32,
        n_head_kv: a.n_head_kv as i32,
        head_dim_k: c.head_dim_k as i32,
        head_dim_v: c.head_dim_v as i32,
        block_size: kv.block_size() as i32,
        max_blocks: max_blocks as i32,
        k_row: (a.n_head_kv * c.head_dim_k) as i32,
        v_row: (a.n_head_kv * c.head_dim_v) as i32,
        kq_scale,
        softcap: c.attn_softcap.unwrap_or(0.0),
        window: a.sliding_window.unwrap_or(0) as i32,
    }
}

fn qk_norm_widths(
    c: &crate::model::ModelConfig,
    q_dim: usize,
    k_dim: usize,
) -> Option<(usize, usize)> {
    match c.traits.qk_norm {
        QkNorm::None => None,
        QkNorm::PerHead => Some((c.head_dim_k, c.head_dim_k)),
        QkNorm::Full => Some((q_dim, k_dim)),
    }
}

fn gelu(c: &crate::model::ModelConfig) -> bool {
    c.traits.activation == Activation::GeluTanh
}
