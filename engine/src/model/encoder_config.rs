//! Encoder (embedding-model) architectures as data: `bert` (MiniLM, BGE), `nomic-bert`
//! (nomic-embed-text) and `gemma-embedding` (EmbeddingGemma), read from GGUF metadata and
//! tensors the way llama.cpp names them. [`EncoderConfig`] says which parts a block has
//! (LayerNorm or RMSNorm, learned positions or RoPE, FFN kind, pooling, dense heads);
//! [`EncoderWeights`] holds the tensors. The forward pass is in `encoder.rs`.

use nanorun_formats::Gguf;
use nanorun_kernels::Kernels;

use super::config::RopeStyle;
use super::weights::Linear;
use crate::error::{EngineError, Result};

/// The encoder architectures nanorun runs, named as llama.cpp names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderArch {
    /// BERT (all-MiniLM, BGE): learned positions, post-LayerNorm, GELU FFN with biases.
    Bert,
    /// Nomic BERT (nomic-embed-text): NeoX RoPE, fused QKV, SwiGLU FFN, post-LayerNorm.
    NomicBert,
    /// EmbeddingGemma: bidirectional Gemma 3 blocks, mean pooling and two dense heads.
    GemmaEmbedding,
}

impl EncoderArch {
    /// The architecture named by `general.architecture`, if it is an encoder nanorun runs.
    pub fn from_name(name: &str) -> Option<EncoderArch> {
        Some(match name {
            "bert" => EncoderArch::Bert,
            "nomic-bert" => EncoderArch::NomicBert,
            "gemma-embedding" => EncoderArch::GemmaEmbedding,
            _ => return None,
        })
    }

    /// The name as llama.cpp spells it (the metadata key prefix).
    pub fn name(self) -> &'static str {
        match self {
            EncoderArch::Bert => "bert",
            EncoderArch::NomicBert => "nomic-bert",
            EncoderArch::GemmaEmbedding => "gemma-embedding",
        }
    }

    /// Every supported encoder architecture name, for error messages.
    pub const SUPPORTED: &'static str = "bert, nomic-bert, gemma-embedding";

    /// Whether `general.architecture` = `name` is an encoder architecture nanorun runs.
    pub fn is_encoder(name: &str) -> bool {
        EncoderArch::from_name(name).is_some()
    }
}

/// How the per-token vectors of a sequence become one vector (`<arch>.pooling_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Average over every token of the sequence (1).
    Mean,
    /// The first token (`[CLS]`) (2).
    Cls,
    /// The last token (3).
    Last,
}

impl Pooling {
    /// The pooling with llama.cpp's number, or `None` for types nanorun does not pool with.
    pub fn from_id(id: u32) -> Option<Pooling> {
        match id {
            1 => Some(Pooling::Mean),
            2 => Some(Pooling::Cls),
            3 => Some(Pooling::Last),
            _ => None,
        }
    }

    /// The pooling named `mean`, `cls` or `last` (llama.cpp's `--pooling` values).
    pub fn from_name(name: &str) -> Option<Pooling> {
        match name {
            "mean" => Some(Pooling::Mean),
            "cls" => Some(Pooling::Cls),
            "last" => Some(Pooling::Last),
            _ => None,
        }
    }
}

/// The normalisation a block uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderNorm {
    /// BERT: LayerNorm (weight and bias) after each residual add.
    PostLayerNorm,
    /// Gemma: RMSNorm before attention/FFN and on their outputs, plus a final norm.
    PrePostRms,
}

/// Where position information comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Positions {
    /// A learned `position_embd` row added to the input (BERT).
    Learned,
    /// Rotary embeddings on Q and K.
    Rope {
        /// Pairing of the rotated dimensions.
        style: RopeStyle,
        /// Base frequency on global layers.
        base: f32,
        /// Base frequency on sliding-window layers.
        base_swa: f32,
    },
}

/// The FFN of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderFfn {
    /// `down(gelu(up(x) + b) ) + b` (BERT).
    Gelu,
    /// `down(silu(gate(x)) ⊙ up(x))` (nomic-bert).
    SwiGlu,
    /// `down(gelu_tanh(gate(x)) ⊙ up(x))` (Gemma).
    GeGlu,
}

/// Hyper-parameters of an encoder model.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    /// Architecture.
    pub arch: EncoderArch,
    /// Residual stream width.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Head dimension (keys, queries and values).
    pub head_dim: usize,
    /// Rotated dimensions per head (`rope.dimension_count`, default the head dimension).
    pub n_rot: usize,
    /// FFN hidden size.
    pub n_ff: usize,
    /// Vocabulary size (rows of the token embedding).
    pub n_vocab: usize,
    /// Longest sequence (`context_length`; rows of `position_embd` for BERT).
    pub n_ctx_train: usize,
    /// Norm epsilon (LayerNorm or RMSNorm as the arch uses).
    pub norm_eps: f32,
    /// Block normalisation layout.
    pub norm: EncoderNorm,
    /// Position information.
    pub positions: Positions,
    /// FFN kind.
    pub ffn: EncoderFfn,
    /// Multiplier on the input embedding (√n_embd for Gemma).
    pub embedding_scale: f32,
    /// Scale of Q·K.
    pub attention_scale: f32,
    /// Sliding window in tokens (symmetric: ±window/2 around each query) on the layers
    /// [`EncoderConfig::swa_layers`] marks.
    pub sliding_window: Option<usize>,
    /// Which layers use the sliding window (`attention.sliding_window_pattern`: a per-layer
    /// bool array, or a period `p`: layer `l` is windowed iff `p == 0 || l % p < p - 1`;
    /// default 6 for gemma-embedding).
    pub swa_layers: Vec<bool>,
    /// Pooling of the per-token vectors.
    pub pooling: Pooling,
    /// Width of the pooled output (after the dense heads, if any).
    pub n_embd_out: usize,
}

impl EncoderConfig {
    /// Whether layer `l` attends only within the sliding window, and its half width.
    pub fn window(&self, l: usize) -> Option<usize> {
        let w = self.sliding_window?;
        self.swa_layers
            .get(l)
            .copied()
            .unwrap_or(false)
            .then_some(w / 2)
    }

    /// Reads the config of the encoder in `gguf`; `n_vocab` comes from the token embedding.
    /// `pooling` overrides `<arch>.pooling_type` (which is then not needed).
    pub fn from_gguf(
        gguf: &Gguf,
        n_vocab: usize,
        pooling: Option<Pooling>,
    ) -> Result<EncoderConfig> {
        let name = gguf.architecture()?;
        let arch = EncoderArch::from_name(name).ok_or_else(|| EngineError::UnsupportedArch {
            arch: name.to_string(),
        })?;
        let p = arch.name();
        let key = |k: &str| format!("{p}.{k}");
        let req = |k: &str| -> Result<usize> {
            let v = gguf
                .get_opt_u32(&key(k))?
                .ok_or_else(|| EngineError::MissingKey { key: key(k) })?
                as usize;
            if v == 0 || v > 1 << 24 {
                return Err(EngineError::BadMetadata {
                    key: key(k),
                    reason: format!("value {v} is out of range"),
                });
            }
            Ok(v)
        };
        let n_embd = req("embedding_length")?;
        let n_layer = req("block_count")?;
        let n_head = req("attention.head_count")?;
        let n_head_kv = match gguf.get_opt_u32(&key("attention.head_count_kv"))? {
            Some(v) => v as usize,
            None => n_head,
        };
        if n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(EngineError::BadMetadata {
                key: key("attention.head_count_kv"),
                reason: format!("{n_head} query heads are not a multiple of {n_head_kv}"),
            });
        }
        let head_dim = match gguf.get_opt_u32(&key("attention.key_length"))? {
            Some(v) => v as usize,
            None => n_embd / n_head,
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(EngineError::BadMetadata {
                key: key("attention.key_length"),
                reason: format!("head dimension {head_dim}"),
            });
        }
        let n_rot = match gguf.get_opt_u32(&key("rope.dimension_count"))? {
            Some(r) => r as usize,
            None => head_dim,
        };
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(EngineError::BadMetadata {
                key: key("rope.dimension_count"),
                reason: format!("{n_rot} rotated dims for head dimension {head_dim}"),
            });
        }
        let n_ff = req("feed_forward_length")?;
        let n_ctx_train = gguf.get_opt_u32(&key("context_length"))?.unwrap_or(512) as usize;
        let pooling = match pooling {
            Some(p) => p,
            None => {
                let id = gguf.get_opt_u32(&key("pooling_type"))?.ok_or_else(|| {
                    EngineError::MissingKey {
                        key: key("pooling_type"),
                    }
                })?;
                Pooling::from_id(id).ok_or_else(|| EngineError::BadMetadata {
                    key: key("pooling_type"),
                    reason: format!("pooling type {id} is not supported (1 mean, 2 cls, 3 last)"),
                })?
            }
        };
        let gemma = arch == EncoderArch::GemmaEmbedding;
        let norm_eps = match gemma {
            true => gguf.get_opt_f32(&key("attention.layer_norm_rms_epsilon"))?,
            false => gguf.get_opt_f32(&key("attention.layer_norm_epsilon"))?,
        }
        .unwrap_or(if gemma { 1e-6 } else { 1e-12 });
        let base = gguf
            .get_opt_f32(&key("rope.freq_base"))?
            .unwrap_or(10_000.0);
        let positions = match arch {
            EncoderArch::Bert => Positions::Learned,
            EncoderArch::NomicBert => Positions::Rope {
                style: RopeStyle::Neox,
                base,
                base_swa: base,
            },
            EncoderArch::GemmaEmbedding => Positions::Rope {
                style: RopeStyle::Neox,
                base,
                base_swa: gguf
                    .get_opt_f32(&key("rope.freq_base_swa"))?
                    .unwrap_or(10_000.0),
            },
        };
        let (sliding_window, swa_layers) = match gemma {
            false => (None, vec![false; n_layer]),
            true => (
                Some(req("attention.sliding_window")?),
                swa_pattern(gguf, &key("attention.sliding_window_pattern"), n_layer)?,
            ),
        };
        let mut n_embd_out = n_embd;
        if gemma {
            if let Some(out) = gguf.get_opt_u32(&key("dense_3_feat_out"))? {
                if out as usize != n_embd {
                    return Err(EngineError::BadMetadata {
                        key: key("dense_3_feat_out"),
                        reason: format!("{out}, must equal the embedding width {n_embd}"),
                    });
                }
                n_embd_out = out as usize;
            }
        }
        Ok(EncoderConfig {
            arch,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            n_ff,
            n_vocab,
            n_ctx_train,
            norm_eps,
            norm: if gemma {
                EncoderNorm::PrePostRms
            } else {
                EncoderNorm::PostLayerNorm
            },
            positions,
            ffn: match arch {
                EncoderArch::Bert => EncoderFfn::Gelu,
                EncoderArch::NomicBert => EncoderFfn::SwiGlu,
                EncoderArch::GemmaEmbedding => EncoderFfn::GeGlu,
            },
            embedding_scale: if gemma { (n_embd as f32).sqrt() } else { 1.0 },
            attention_scale: 1.0 / (head_dim as f32).sqrt(),
            sliding_window,
            swa_layers,
            pooling,
            n_embd_out,
        })
    }
}

/// The sliding-window layers from `key`: a bool per layer, or a period (default 6) as
/// llama.cpp's `set_swa_pattern` reads it.
fn swa_pattern(gguf: &Gguf, key: &str, n_layer: usize) -> Result<Vec<bool>> {
    use nanorun_formats::{MetadataArray, MetadataValue};
    if let Some(MetadataValue::Array(a)) = gguf.get(key) {
        let v: Vec<bool> = match a {
            MetadataArray::Bool(b) => b.clone(),
            MetadataArray::U32(b) => b.iter().map(|&x| x != 0).collect(),
            MetadataArray::I32(b) => b.iter().map(|&x| x != 0).collect(),
            _ => Vec::new(),
        };
        if v.len() != n_layer {
            return Err(EngineError::BadMetadata {
                key: key.to_string(),
                reason: format!("expected {n_layer} per-layer flags"),
            });
        }
        return Ok(v);
    }
    let p = gguf.get_opt_u32(key)?.unwrap_or(6) as usize;
    Ok((0..n_layer).map(|l| p == 0 || l % p < p - 1).collect())
}

/// A LayerNorm or RMSNorm: weight and optional bias.
#[derive(Clone, Debug)]
pub struct Norm {
    /// Weight.
    pub w: Vec<f32>,
    /// Bias (LayerNorm only).
    pub b: Option<Vec<f32>>,
}

/// A matrix and its optional bias.
#[derive(Clone, Debug)]
pub struct Proj {
    /// The matrix.
    pub w: Linear,
    /// The bias.
    pub b: Option<Vec<f32>>,
}

/// The tensors of one encoder block (which exist depends on the arch).
#[derive(Debug)]
pub struct EncoderLayer {
    /// Separate Q, K, V projections (bert, gemma-embedding).
    pub qkv: Option<[Proj; 3]>,
    /// Fused Q|K|V projection (nomic-bert).
    pub wqkv: Option<Proj>,
    /// Output projection.
    pub wo: Proj,
    /// Per-head Q and K RMSNorm weights (gemma-embedding).
    pub qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    /// Pre-attention norm (gemma) or post-attention LayerNorm (bert).
    pub attn_norm: Norm,
    /// Norm of the attention output before the residual add (gemma).
    pub post_attn_norm: Option<Norm>,
    /// Pre-FFN norm (gemma) or the layer's output LayerNorm (bert).
    pub ffn_norm: Norm,
    /// Norm of the FFN output before the residual add (gemma).
    pub post_ffn_norm: Option<Norm>,
    /// FFN gate (gated FFNs).
    pub gate: Option<Proj>,
    /// FFN up.
    pub up: Proj,
    /// FFN down.
    pub down: Proj,
}

/// All tensors of an encoder.
#[derive(Debug)]
pub struct EncoderWeights {
    /// Token embedding, `n_vocab × n_embd`.
    pub token_embd: Linear,
    /// Row 0 of `token_types` (the only row llama.cpp ever adds).
    pub token_type0: Option<Vec<f32>>,
    /// Learned positions, `n_ctx_train × n_embd`, dequantized (BERT).
    pub position_embd: Option<Vec<f32>>,
    /// LayerNorm of the input embedding (BERT family).
    pub embd_norm: Option<Norm>,
    /// The blocks.
    pub layers: Vec<EncoderLayer>,
    /// Final norm (gemma-embedding).
    pub output_norm: Option<Norm>,
    /// Dense heads applied after pooling, in order (gemma-embedding `dense_2`, `dense_3`).
    pub dense: Vec<Linear>,
}

struct Ld<'a> {
    gguf: &'a Gguf,
    kernels: &'static Kernels,
}

impl Ld<'_> {
    fn bad(name: &str, reason: String) -> EngineError {
        EngineError::BadTensor {
            name: name.to_string(),
            reason,
        }
    }

    fn opt_linear(&self, name: &str, cols: usize, rows: usize) -> Result<Option<Linear>> {
        let Some(t) = self.gguf.tensor(name) else {
            return Ok(None);
        };
        if t.dims.len() != 2 || t.dims[0] as usize != cols || t.dims[1] as usize != rows {
            return Err(Self::bad(
                name,
                format!("shape {:?}, expected [{cols}, {rows}]", t.dims),
            ));
        }
        self.kernels
            .traits(t.ty)
            .map_err(|_| Self::bad(name, format!("type {} is not supported for matrices", t.ty)))?;
        Ok(Some(Linear {
            name: name.to_string(),
            ty: t.ty,
            rows,
            cols,
            offset: (self.gguf.data_offset() + t.offset) as usize,
            len: t.n_bytes as usize,
            repacked: None,
        }))
    }

    fn linear(&self, name: &str, cols: usize, rows: usize) -> Result<Linear> {
        self.opt_linear(name, cols, rows)?
            .ok_or_else(|| EngineError::MissingTensor {
                name: name.to_string(),
            })
    }

    /// A whole tensor of `len` values (any shape), dequantized.
    fn opt_values(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        let Some(t) = self.gguf.tensor(name) else {
            return Ok(None);
        };
        if t.n_elements() as usize != len {
            return Err(Self::bad(
                name,
                format!("shape {:?}, expected {len} values", t.dims),
            ));
        }
        let mut out = vec![0.0; len];
        let row = t.dims.first().copied().unwrap_or(1).max(1) as usize;
        let data = self.gguf.tensor_data(t);
        let row_bytes = data.len() / (len / row).max(1);
        for (i, chunk) in out.chunks_mut(row).enumerate() {
            self.kernels
                .dequantize_row(t.ty, &data[i * row_bytes..(i + 1) * row_bytes], chunk)
                .map_err(|e| Self::bad(name, e.to_string()))?;
        }
        Ok(Some(out))
    }

    fn values(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        self.opt_values(name, len)?
            .ok_or_else(|| EngineError::MissingTensor {
                name: name.to_string(),
            })
    }

    fn norm(&self, base: &str, len: usize, bias: bool) -> Result<Norm> {
        Ok(Norm {
            w: self.values(&format!("{base}.weight"), len)?,
            b: match bias {
                true => Some(self.values(&format!("{base}.bias"), len)?),
                false => None,
            },
        })
    }

    fn proj(&self, base: &str, cols: usize, rows: usize) -> Result<Proj> {
        Ok(Proj {
            w: self.linear(&format!("{base}.weight"), cols, rows)?,
            b: self.opt_values(&format!("{base}.bias"), rows)?,
        })
    }
}

impl EncoderWeights {
    /// Finds and checks every tensor `c` needs.
    pub fn load(gguf: &Gguf, c: &EncoderConfig, kernels: &'static Kernels) -> Result<Self> {
        let ld = Ld { gguf, kernels };
        let e = c.n_embd;
        let ln = c.norm == EncoderNorm::PostLayerNorm;
        let token_embd = ld.linear("token_embd.weight", e, c.n_vocab)?;
        let token_type0 = match gguf.tensor("token_types.weight") {
            None => None,
            Some(t) => {
                let rows = t.dims.get(1).copied().unwrap_or(1).max(1) as usize;
                let all = ld.values("token_types.weight", rows * e)?;
                Some(all[..e].to_vec())
            }
        };
        let position_embd = match c.positions {
            Positions::Learned => Some(ld.values("position_embd.weight", c.n_ctx_train * e)?),
            Positions::Rope { .. } => None,
        };
        let embd_norm = match ln {
            true => Some(ld.norm("token_embd_norm", e, true)?),
            false => None,
        };
        let q_dim = c.n_head * c.head_dim;
        let kv_dim = c.n_head_kv * c.head_dim;
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let (qkv, wqkv) = match gguf.tensor(&n("attn_qkv.weight")) {
                Some(_) => (None, Some(ld.proj(&n("attn_qkv"), e, q_dim + 2 * kv_dim)?)),
                None => (
                    Some([
                        ld.proj(&n("attn_q"), e, q_dim)?,
                        ld.proj(&n("attn_k"), e, kv_dim)?,
                        ld.proj(&n("attn_v"), e, kv_dim)?,
                    ]),
                    None,
                ),
            };
            let gated = c.ffn != EncoderFfn::Gelu;
            let layer = EncoderLayer {
                qkv,
                wqkv,
                wo: ld.proj(&n("attn_output"), q_dim, e)?,
                qk_norm: match c.arch {
                    EncoderArch::GemmaEmbedding => Some((
                        ld.values(&n("attn_q_norm.weight"), c.head_dim)?,
                        ld.values(&n("attn_k_norm.weight"), c.head_dim)?,
                    )),
                    _ => None,
                },
                attn_norm: match ln {
                    true => ld.norm(&n("attn_output_norm"), e, true)?,
                    false => ld.norm(&n("attn_norm"), e, false)?,
                },
                post_attn_norm: match ln {
                    true => None,
                    false => Some(ld.norm(&n("post_attention_norm"), e, false)?),
                },
                ffn_norm: match ln {
                    true => ld.norm(&n("layer_output_norm"), e, true)?,
                    false => ld.norm(&n("ffn_norm"), e, false)?,
                },
                post_ffn_norm: match ln {
                    true => None,
                    false => Some(ld.norm(&n("post_ffw_norm"), e, false)?),
                },
                gate: match gated {
                    true => Some(ld.proj(&n("ffn_gate"), e, c.n_ff)?),
                    false => None,
                },
                up: ld.proj(&n("ffn_up"), e, c.n_ff)?,
                down: ld.proj(&n("ffn_down"), c.n_ff, e)?,
            };
            layers.push(layer);
        }
        let output_norm = match ln {
            true => None,
            false => Some(ld.norm("output_norm", e, false)?),
        };
        let mut dense = Vec::new();
        if c.arch == EncoderArch::GemmaEmbedding {
            let key = |k: &str| format!("{}.{k}", c.arch.name());
            if let (Some(out2), Some(in3)) = (
                gguf.get_opt_u32(&key("dense_2_feat_out"))?,
                gguf.get_opt_u32(&key("dense_3_feat_in"))?,
            ) {
                dense.push(ld.linear("dense_2.weight", e, out2 as usize)?);
                dense.push(ld.linear("dense_3.weight", in3 as usize, c.n_embd_out)?);
            }
        }
        Ok(EncoderWeights {
            token_embd,
            token_type0,
            position_embd,
            embd_norm,
            layers,
            output_norm,
            dense,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanorun_formats::{GgufWriter, MetadataArray};

    fn gguf(edit: impl Fn(&mut GgufWriter<'_>)) -> Gguf {
        let mut w = GgufWriter::new();
        w.set_str("general.architecture", "gemma-embedding");
        edit(&mut w);
        let mut buf = Vec::new();
        w.write_to(&mut buf).unwrap();
        Gguf::from_bytes(buf).unwrap()
    }

    #[test]
    fn swa_pattern_as_llama_cpp_reads_it() {
        let k = "p";
        let g = gguf(|_| {});
        let default = swa_pattern(&g, k, 12).unwrap();
        let globals: Vec<usize> = (0..12).filter(|&l| !default[l]).collect();
        assert_eq!(globals, [5, 11]);
        let g = gguf(|w| w.set_u32(k, 0));
        assert!(swa_pattern(&g, k, 4).unwrap().iter().all(|&s| s));
        let g = gguf(|w| w.set_u32(k, 2));
        assert_eq!(swa_pattern(&g, k, 4).unwrap(), [true, false, true, false]);
        let g = gguf(|w| w.set_array(k, MetadataArray::Bool(vec![false, true, true])));
        assert_eq!(swa_pattern(&g, k, 3).unwrap(), [false, true, true]);
        assert!(swa_pattern(&g, k, 4).is_err());
    }

    #[test]
    fn pooling_ids() {
        assert_eq!(Pooling::from_id(1), Some(Pooling::Mean));
        assert_eq!(Pooling::from_id(2), Some(Pooling::Cls));
        assert_eq!(Pooling::from_id(3), Some(Pooling::Last));
        assert_eq!(Pooling::from_id(0), None);
        assert_eq!(Pooling::from_id(4), None);
        assert!(EncoderArch::is_encoder("nomic-bert") && !EncoderArch::is_encoder("gemma3"));
    }
}
