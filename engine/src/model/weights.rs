//! The model's tensors, found by llama.cpp's names and checked against the config's shapes.
//! A [`Linear`] is a typed view of a matrix by offset into the mmap. For the CPU kernels every
//! matrix is then moved once at load into one arena of huge pages ([`Weights::repack`]),
//! repacked where the kernels run its type faster in another layout, and its pages of the map
//! released: decode streams every weight each token, and 2 MiB pages stream faster than the
//! map's mix of page sizes. Norms and biases, which are small, are converted to f32 once at
//! load.

use std::sync::Arc;

use nanorun_formats::{GgmlType, Gguf, TensorInfo};
use nanorun_kernels::{Kernels, QMatrix, RepackedMatrix};

use super::config::ModelConfig;
use crate::error::{EngineError, Result};

/// A weight matrix `rows × cols` (GGUF `ne = [cols, rows]`) stored in the file.
#[derive(Clone, Debug)]
pub struct Linear {
    /// Tensor name, for errors.
    pub name: String,
    /// Element type.
    pub ty: GgmlType,
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// Absolute byte offset in the file.
    pub offset: usize,
    /// Byte length.
    pub len: usize,
    /// The matrix as placed for the CPU kernels at load, repacked or copied
    /// ([`Weights::repack`]); CPU matmuls use it instead of the file's bytes (the same size,
    /// the same results).
    pub repacked: Option<Arc<RepackedMatrix>>,
}

impl Linear {
    /// The matrix for the CPU kernels: the repacked one if any, else the bytes in `file`.
    pub fn matrix<'a>(&'a self, file: &'a [u8]) -> Result<QMatrix<'a>> {
        match &self.repacked {
            Some(r) => Ok(r.matrix()),
            None => Ok(QMatrix::new(
                self.bytes(file),
                self.ty,
                self.rows,
                self.cols,
            )?),
        }
    }

    /// The matrix bytes inside `file`.
    pub fn bytes<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        &file[self.offset..self.offset + self.len]
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.len / self.rows.max(1)
    }

    /// Row `r` of the matrix in the file, read into `buf` (resized to the row) without going
    /// through the map ([`Gguf::read_at`]): for lookups such as token embeddings, which touch
    /// scattered rows of a tensor whose mapped pages were released. `r` < `rows`.
    pub fn read_row<'b>(&self, gguf: &Gguf, r: usize, buf: &'b mut Vec<u64>) -> &'b [u8] {
        let n = self.row_bytes();
        assert!(r < self.rows, "row {r} of {} rows", self.rows);
        // (u64 words: the row's blocks keep the alignment their f16 and f32 fields want.)
        buf.resize(n.div_ceil(8), 0);
        let row = &mut bytemuck::cast_slice_mut::<u64, u8>(buf)[..n];
        gguf.read_at(self.offset + r * n, row);
        row
    }
}

/// Tensors of one block; absent parts are `None` (which parts exist depends on the arch).
#[derive(Debug, Default)]
pub struct LayerWeights {
    /// Pre-attention norm.
    pub attn_norm: Option<Vec<f32>>,
    /// Q, K, V projections (separate).
    pub wq: Option<Linear>,
    /// See `wq`.
    pub wk: Option<Linear>,
    /// See `wq`.
    pub wv: Option<Linear>,
    /// Fused QKV projection (Phi-3).
    pub wqkv: Option<Linear>,
    /// Q, K, V biases (Qwen2).
    pub bq: Option<Vec<f32>>,
    /// See `bq`.
    pub bk: Option<Vec<f32>>,
    /// See `bq`.
    pub bv: Option<Vec<f32>>,
    /// Output projection.
    pub wo: Option<Linear>,
    /// Output projection bias.
    pub bo: Option<Vec<f32>>,
    /// Q norm weights (per head or full width).
    pub q_norm: Option<Vec<f32>>,
    /// K norm weights.
    pub k_norm: Option<Vec<f32>>,
    /// Norm applied to the attention output before the residual add.
    pub post_attn_norm: Option<Vec<f32>>,
    /// Pre-FFN norm.
    pub ffn_norm: Option<Vec<f32>>,
    /// FFN gate projection (absent when fused into `up`).
    pub gate: Option<Linear>,
    /// FFN up projection (gate|up halves when fused).
    pub up: Option<Linear>,
    /// FFN down projection.
    pub down: Option<Linear>,
    /// Norm applied to the FFN output before the residual add.
    pub post_ffn_norm: Option<Vec<f32>>,
    /// The Mamba2 tensors (Mamba2 layers of hybrid models; these have no attention tensors).
    pub ssm: Option<super::ssm::SsmWeights>,
}

/// All tensors of a model.
#[derive(Debug)]
pub struct Weights {
    /// Token embedding, `n_vocab × n_embd`.
    pub token_embd: Linear,
    /// Final norm.
    pub output_norm: Vec<f32>,
    /// Output projection (the token embedding when tied).
    pub output: Linear,
    /// RoPE frequency factors (Llama 3 scaling, Phi-3 LongRoPE), one per rotated pair.
    pub rope_freqs: Option<Vec<f32>>,
    /// The blocks.
    pub layers: Vec<LayerWeights>,
}

struct Loader<'a> {
    gguf: &'a Gguf,
    kernels: &'static Kernels,
}

impl Loader<'_> {
    fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.gguf.tensor(name)
    }

    fn bad(name: &str, reason: String) -> EngineError {
        EngineError::BadTensor {
            name: name.to_string(),
            reason,
        }
    }

    fn linear(&self, name: &str, cols: usize, rows: Option<usize>) -> Result<Option<Linear>> {
        let Some(t) = self.info(name) else {
            return Ok(None);
        };
        if t.dims.len() != 2
            || t.dims[0] as usize != cols
            || rows.is_some_and(|r| r != t.dims[1] as usize)
        {
            return Err(Self::bad(
                name,
                format!(
                    "shape {:?}, expected [{cols}, {}]",
                    t.dims,
                    rows.map_or("?".into(), |r| r.to_string())
                ),
            ));
        }
        self.kernels
            .traits(t.ty)
            .map_err(|_| Self::bad(name, format!("type {} is not supported for matrices", t.ty)))?;
        Ok(Some(Linear {
            name: name.to_string(),
            ty: t.ty,
            rows: t.dims[1] as usize,
            cols,
            offset: (self.gguf.data_offset() + t.offset) as usize,
            len: t.n_bytes as usize,
            repacked: None,
        }))
    }

    fn require_linear(&self, name: &str, cols: usize, rows: Option<usize>) -> Result<Linear> {
        self.linear(name, cols, rows)?
            .ok_or_else(|| EngineError::MissingTensor {
                name: name.to_string(),
            })
    }

    fn vector(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        let Some(t) = self.info(name) else {
            return Ok(None);
        };
        if t.n_elements() as usize != len || t.dims.len() != 1 {
            return Err(Self::bad(
                name,
                format!("shape {:?}, expected [{len}]", t.dims),
            ));
        }
        let mut out = vec![0.0; len];
        self.kernels
            .dequantize_row(t.ty, self.gguf.tensor_data(t), &mut out)
            .map_err(|e| Self::bad(name, e.to_string()))?;
        Ok(Some(out))
    }

    fn require_vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        self.vector(name, len)?
            .ok_or_else(|| EngineError::MissingTensor {
                name: name.to_string(),
            })
    }
}

impl Weights {
    /// Every matrix the forward pass multiplies by (the output projection once, even when it
    /// is the token embedding), to change.
    fn matrices_mut(&mut self) -> impl Iterator<Item = &mut Linear> {
        let layers = self.layers.iter_mut().flat_map(|l| {
            let ssm = l.ssm.as_mut().map(|s| [&mut s.in_proj, &mut s.out_proj]);
            [
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wqkv,
                &mut l.wo,
                &mut l.gate,
                &mut l.up,
                &mut l.down,
            ]
            .into_iter()
            .flatten()
            .chain(ssm.into_iter().flatten())
        });
        std::iter::once(&mut self.output).chain(layers)
    }

    /// Moves every matrix into one arena of huge pages ([`Kernels::repack_all`]), repacking
    /// those whose type `kernels` run faster in another layout ([`Kernels::preferred_layout`])
    /// and copying the others as they are, on up to four threads, one matrix per thread at a
    /// time. The map's pages are released piece by piece as they are copied (they are read back
    /// from the file if touched again, e.g. by a token embedding lookup), so that memory grows
    /// by a few MiB per thread at a time. Returns the bytes placed.
    ///
    /// The output projection takes the kernels' output layout ([`Kernels::output_layout`]).
    pub fn repack(&mut self, gguf: &Gguf, kernels: &Kernels) -> Result<usize> {
        // (`matrices_mut` yields the output projection first.)
        let (is_output, mut todo): (Vec<bool>, Vec<&mut Linear>) = self
            .matrices_mut()
            .enumerate()
            .filter(|(_, l)| l.repacked.is_none())
            .map(|(i, l)| (i == 0, l))
            .unzip();
        let plain = todo
            .iter()
            .map(|l| l.matrix(gguf.bytes()))
            .collect::<Result<Vec<_>>>()?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let repacked = kernels.repack_all(
            &plain,
            threads,
            true,
            |i| is_output[i],
            |i, bytes| gguf.release(todo[i].offset + bytes.start, bytes.len()),
        )?;
        let mut total = 0;
        for (lin, r) in todo.iter_mut().zip(repacked) {
            if let Some(r) = r {
                total += r.len();
                lin.repacked = Some(Arc::new(r));
            }
        }
        Ok(total)
    }

    /// Drops every repacked matrix (for a backend that reads the file's bytes instead).
    pub fn drop_repacked(&mut self) {
        for lin in self.matrices_mut() {
            lin.repacked = None;
        }
    }

    /// Finds and checks every tensor `config` needs.
    pub fn load(gguf: &Gguf, config: &ModelConfig, kernels: &'static Kernels) -> Result<Weights> {
        let ld = Loader { gguf, kernels };
        let c = config;
        let token_embd = ld.require_linear("token_embd.weight", c.n_embd, Some(c.n_vocab))?;
        let output = match ld.linear("output.weight", c.n_embd, Some(c.n_vocab))? {
            Some(o) => o,
            None => token_embd.clone(),
        };
        let output_norm = ld.require_vector("output_norm.weight", c.n_embd)?;
        // Llama 3 frequency factors, or Phi-3's LongRoPE short factors (llama.cpp uses the long
        // ones only for contexts beyond the original training length).
        let rope_freqs = match ld.vector("rope_freqs.weight", c.n_rot / 2)? {
            Some(f) => Some(f),
            None => ld.vector("rope_factors_short.weight", c.n_rot / 2)?,
        };
        let mut layers = Vec::with_capacity(c.n_layer());
        for (i, spec) in c.layers.iter().enumerate() {
            let a = &spec.attention;
            let n = |s: &str| format!("blk.{i}.{s}");
            let q_dim = a.n_head * c.head_dim_k;
            let k_dim = a.n_head_kv * c.head_dim_k;
            let v_dim = a.n_head_kv * c.head_dim_v;
            let mamba2 = spec.kind == super::config::LayerKind::Mamba2;
            let mut lw = LayerWeights {
                attn_norm: ld.vector(&n("attn_norm.weight"), c.n_embd)?,
                wo: match mamba2 {
                    true => None,
                    false => Some(ld.require_linear(
                        &n("attn_output.weight"),
                        a.n_head * c.head_dim_v,
                        Some(c.n_embd),
                    )?),
                },
                bo: ld.vector(&n("attn_output.bias"), c.n_embd)?,
                post_attn_norm: ld.vector(&n("post_attention_norm.weight"), c.n_embd)?,
                ffn_norm: ld.vector(&n("ffn_norm.weight"), c.n_embd)?,
                down: Some(ld.require_linear(&n("ffn_down.weight"), spec.n_ff, Some(c.n_embd))?),
                post_ffn_norm: ld.vector(&n("post_ffw_norm.weight"), c.n_embd)?,
                ..LayerWeights::default()
            };
            if mamba2 {
                let s = c.ssm.as_ref().ok_or_else(|| EngineError::MissingKey {
                    key: format!("{}.ssm.inner_size", c.arch.name()),
                })?;
                let linear = |name: &str, cols, rows| ld.require_linear(name, cols, rows);
                lw.ssm = Some(super::ssm::SsmWeights::load(
                    gguf, kernels, i, s, c.n_embd, &linear,
                )?);
                lw.gate =
                    Some(ld.require_linear(&n("ffn_gate.weight"), c.n_embd, Some(spec.n_ff))?);
                lw.up = Some(ld.require_linear(&n("ffn_up.weight"), c.n_embd, Some(spec.n_ff))?);
            } else if c.traits.fused_qkv_and_gate_up {
                lw.wqkv = Some(ld.require_linear(
                    &n("attn_qkv.weight"),
                    c.n_embd,
                    Some(q_dim + k_dim + v_dim),
                )?);
                lw.up =
                    Some(ld.require_linear(&n("ffn_up.weight"), c.n_embd, Some(2 * spec.n_ff))?);
            } else {
                lw.wq = Some(ld.require_linear(&n("attn_q.weight"), c.n_embd, Some(q_dim))?);
                lw.wk = Some(ld.require_linear(&n("attn_k.weight"), c.n_embd, Some(k_dim))?);
                lw.wv = Some(ld.require_linear(&n("attn_v.weight"), c.n_embd, Some(v_dim))?);
                lw.bq = ld.vector(&n("attn_q.bias"), q_dim)?;
                lw.bk = ld.vector(&n("attn_k.bias"), k_dim)?;
                lw.bv = ld.vector(&n("attn_v.bias"), v_dim)?;
                lw.gate =
                    Some(ld.require_linear(&n("ffn_gate.weight"), c.n_embd, Some(spec.n_ff))?);
                lw.up = Some(ld.require_linear(&n("ffn_up.weight"), c.n_embd, Some(spec.n_ff))?);
            }
            let (qn, kn) = match c.traits.qk_norm {
                super::config::QkNorm::None => (None, None),
                super::config::QkNorm::PerHead => (
                    Some(ld.require_vector(&n("attn_q_norm.weight"), c.head_dim_k)?),
                    Some(ld.require_vector(&n("attn_k_norm.weight"), c.head_dim_k)?),
                ),
                super::config::QkNorm::Full => (
                    Some(ld.require_vector(&n("attn_q_norm.weight"), q_dim)?),
                    Some(ld.require_vector(&n("attn_k_norm.weight"), k_dim)?),
                ),
            };
            lw.q_norm = qn;
            lw.k_norm = kn;
            if c.traits.pre_norms && lw.attn_norm.is_none() {
                return Err(EngineError::MissingTensor {
                    name: n("attn_norm.weight"),
                });
            }
            if c.traits.pre_norms && lw.ffn_norm.is_none() {
                return Err(EngineError::MissingTensor {
                    name: n("ffn_norm.weight"),
                });
            }
            if c.traits.post_norms && (lw.post_attn_norm.is_none() || lw.post_ffn_norm.is_none()) {
                return Err(EngineError::MissingTensor {
                    name: n("post_attention_norm.weight / post_ffw_norm.weight"),
                });
            }
            layers.push(lw);
        }
        Ok(Weights {
            token_embd,
            output_norm,
            output,
            rope_freqs,
            layers,
        })
    }
}
