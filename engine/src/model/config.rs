//! Model hyper-parameters read from GGUF metadata (`<arch>.*` keys), and the per-layer spec
//! that makes one decoder block serve every architecture.
//!
//! Architectures are data: each supported `general.architecture` maps to an [`ArchTraits`]
//! (RoPE style, FFN activation, norms, which optional parts exist); everything numeric comes
//! from the file. Missing or ill-typed keys are errors that name the key.

use nanorun_formats::Gguf;

use crate::error::{EngineError, Result};

/// The architectures nanorun runs, named as llama.cpp names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3, SmolLM, TinyLlama, Mistral-style.
    Llama,
    /// Qwen2 / Qwen2.5 (QKV biases).
    Qwen2,
    /// Qwen3 (per-head Q/K RMS norm).
    Qwen3,
    /// Phi-3 / Phi-3.5 (fused QKV and gate-up).
    Phi3,
    /// Gemma (1).
    Gemma,
    /// Gemma 2 (soft-capping, post-norms, alternating sliding window).
    Gemma2,
    /// Gemma 3 (QK-norm, post-norms, 5:1 local/global layers).
    Gemma3,
    /// Granite 3 (multipliers).
    Granite,
    /// OLMo 2 (post-norms only, full-width Q/K norms).
    Olmo2,
    /// Granite 4.0-H: Mamba2 and attention layers (a layer is Mamba2 iff its KV head count
    /// is 0), Granite multipliers, NoPE when `rope.scaling.finetuned` is false.
    GraniteHybrid,
}

impl Arch {
    /// The architecture named by `general.architecture`.
    pub fn from_name(name: &str) -> Option<Arch> {
        Some(match name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "phi3" => Arch::Phi3,
            "gemma" => Arch::Gemma,
            "gemma2" => Arch::Gemma2,
            "gemma3" => Arch::Gemma3,
            "granite" => Arch::Granite,
            "olmo2" => Arch::Olmo2,
            "granitehybrid" => Arch::GraniteHybrid,
            _ => return None,
        })
    }

    /// The name as llama.cpp spells it (the metadata key prefix).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Phi3 => "phi3",
            Arch::Gemma => "gemma",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3",
            Arch::Granite => "granite",
            Arch::Olmo2 => "olmo2",
            Arch::GraniteHybrid => "granitehybrid",
        }
    }

    /// Every supported architecture name, for error messages.
    pub const SUPPORTED: &'static str =
        "llama, qwen2, qwen3, phi3, gemma, gemma2, gemma3, granite, olmo2, granitehybrid";
}

/// How RoPE pairs dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (2i, 2i+1): llama.cpp's `LLAMA_ROPE_TYPE_NORM`.
    Normal,
    /// Halves (i, i + n_rot/2): llama.cpp's `LLAMA_ROPE_TYPE_NEOX`.
    Neox,
}

/// The FFN's gate activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (SwiGLU).
    Silu,
    /// GELU, tanh approximation (GeGLU).
    GeluTanh,
}

/// Where Q/K normalisation applies, if anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkNorm {
    /// No Q/K norm.
    None,
    /// RMS norm over each head (weights of length head_dim): Qwen3, Gemma 3.
    PerHead,
    /// RMS norm over the whole Q (resp. K) vector: OLMo 2.
    Full,
}

/// Fixed facts of an architecture (llama.cpp's per-arch graph builders, as data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchTraits {
    /// RoPE pairing.
    pub rope: RopeStyle,
    /// FFN activation.
    pub activation: Activation,
    /// Q/K normalisation.
    pub qk_norm: QkNorm,
    /// Whether blocks have pre-attention / pre-FFN norms (OLMo 2 has none).
    pub pre_norms: bool,
    /// Whether blocks have post-attention / post-FFN norms.
    pub post_norms: bool,
    /// Multiply the input embedding by √n_embd (Gemma family).
    pub scale_embeddings_by_sqrt_dim: bool,
    /// Phi-3's fused QKV and gate|up tensors.
    pub fused_qkv_and_gate_up: bool,
}

impl Arch {
    /// The fixed facts of this architecture.
    pub fn traits(self) -> ArchTraits {
        let base = ArchTraits {
            rope: RopeStyle::Neox,
            activation: Activation::Silu,
            qk_norm: QkNorm::None,
            pre_norms: true,
            post_norms: false,
            scale_embeddings_by_sqrt_dim: false,
            fused_qkv_and_gate_up: false,
        };
        match self {
            Arch::Llama | Arch::Granite | Arch::GraniteHybrid => ArchTraits {
                rope: RopeStyle::Normal,
                ..base
            },
            Arch::Qwen2 => base,
            Arch::Qwen3 => ArchTraits {
                qk_norm: QkNorm::PerHead,
                ..base
            },
            Arch::Phi3 => ArchTraits {
                fused_qkv_and_gate_up: true,
                ..base
            },
            Arch::Gemma => ArchTraits {
                activation: Activation::GeluTanh,
                scale_embeddings_by_sqrt_dim: true,
                ..base
            },
            Arch::Gemma2 => ArchTraits {
                activation: Activation::GeluTanh,
                scale_embeddings_by_sqrt_dim: true,
                post_norms: true,
                ..base
            },
            Arch::Gemma3 => ArchTraits {
                activation: Activation::GeluTanh,
                scale_embeddings_by_sqrt_dim: true,
                post_norms: true,
                qk_norm: QkNorm::PerHead,
                ..base
            },
            Arch::Olmo2 => ArchTraits {
                qk_norm: QkNorm::Full,
                pre_norms: false,
                post_norms: true,
                ..base
            },
        }
    }
}

/// RoPE frequency scaling, as the metadata says.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// None.
    None,
    /// Linear: positions multiplied by `1/factor`.
    Linear {
        /// The scaling factor (> 1 stretches the context).
        factor: f32,
    },
    /// YaRN.
    Yarn {
        /// The scaling factor.
        factor: f32,
        /// The context length the model was trained with.
        original_context: u32,
        /// Extrapolation mix factor (llama.cpp's `ext_factor`; 1 unless the file says).
        ext_factor: f32,
        /// Attention magnitude factor.
        attn_factor: f32,
        /// Beta fast / slow ramp bounds.
        beta_fast: f32,
        /// See `beta_fast`.
        beta_slow: f32,
    },
}

/// Everything about one attention layer that may differ between layers.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionSpec {
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (GQA/MQA when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Sliding window in tokens (`None` = global attention).
    pub sliding_window: Option<usize>,
    /// RoPE base frequency for this layer.
    pub rope_base: f32,
    /// Whether this layer applies RoPE at all.
    pub rope: bool,
}

/// What mixes information between tokens in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// Self-attention over the KV cache.
    Attention,
    /// A Mamba2 state-space layer (recurrent state in the cache's slot pool).
    Mamba2,
}

/// One block of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// The attention part (unused, with `n_head_kv == 0`, in Mamba2 layers).
    pub attention: AttentionSpec,
    /// FFN hidden size.
    pub n_ff: usize,
    /// Attention or Mamba2.
    pub kind: LayerKind,
}

/// Hyper-parameters of the Mamba2 layers (`<arch>.ssm.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SsmConfig {
    /// Causal convolution width (`ssm.conv_kernel`).
    pub d_conv: usize,
    /// Inner width (`ssm.inner_size`): x, z and y have this many channels.
    pub d_inner: usize,
    /// State size per channel (`ssm.state_size`).
    pub d_state: usize,
    /// Groups sharing B and C (`ssm.group_count`).
    pub n_group: usize,
    /// SSM heads (`ssm.time_step_rank`): one dt, A and D per head.
    pub n_head: usize,
}

impl SsmConfig {
    /// Channels per head.
    pub fn head_dim(&self) -> usize {
        self.d_inner / self.n_head
    }
    /// Channels that go through the convolution: x, B and C.
    pub fn conv_channels(&self) -> usize {
        self.d_inner + 2 * self.n_group * self.d_state
    }
    /// Rows of `ssm_in`: z, xBC and dt.
    pub fn in_proj_rows(&self) -> usize {
        self.d_inner + self.conv_channels() + self.n_head
    }
}

/// The hyper-parameters of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Architecture.
    pub arch: Arch,
    /// Fixed facts of the architecture.
    pub traits: ArchTraits,
    /// Residual stream width.
    pub n_embd: usize,
    /// Vocabulary size (rows of the token embedding).
    pub n_vocab: usize,
    /// Context length the model was trained with.
    pub n_ctx_train: usize,
    /// Key head dimension.
    pub head_dim_k: usize,
    /// Value head dimension.
    pub head_dim_v: usize,
    /// Rotated dimensions per head.
    pub n_rot: usize,
    /// RMS norm epsilon.
    pub norm_eps: f32,
    /// RoPE scaling.
    pub rope_scaling: RopeScaling,
    /// Scale applied to Q·K (usually 1/√head_dim).
    pub attention_scale: f32,
    /// Attention logit soft-cap (Gemma 2).
    pub attn_softcap: Option<f32>,
    /// Final logit soft-cap (Gemma 2).
    pub final_softcap: Option<f32>,
    /// Input embedding multiplier.
    pub embedding_scale: f32,
    /// Multiplier on each block's attention and FFN output before the residual add (Granite).
    pub residual_scale: f32,
    /// Logits are divided by this (Granite's `logit_scale`).
    pub logit_divisor: f32,
    /// The blocks.
    pub layers: Vec<LayerSpec>,
    /// Mamba2 hyper-parameters (hybrid models only).
    pub ssm: Option<SsmConfig>,
}

/// Reads `<arch>.<key>` with the right prefix and names it in errors.
struct Keys<'a> {
    gguf: &'a Gguf,
    arch: &'static str,
}

impl Keys<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }
    fn u32(&self, k: &str) -> Result<usize> {
        Ok(self.gguf.get_u32(&self.key(k))? as usize)
    }
    fn opt_u32(&self, k: &str) -> Result<Option<usize>> {
        Ok(self.gguf.get_opt_u32(&self.key(k))?.map(|v| v as usize))
    }
    fn opt_f32(&self, k: &str) -> Result<Option<f32>> {
        Ok(self.gguf.get_opt_f32(&self.key(k))?)
    }
    fn opt_str(&self, k: &str) -> Result<Option<&str>> {
        Ok(self.gguf.get_opt_str(&self.key(k))?)
    }
    /// A per-layer count stored either as one u32 or as an array with one entry per layer.
    fn per_layer(&self, k: &str, n_layer: usize) -> Result<Option<Vec<usize>>> {
        let key = self.key(k);
        match self.gguf.get(&key) {
            None => Ok(None),
            Some(nanorun_formats::MetadataValue::Array(_)) => {
                let v: Vec<usize> = match self.gguf.get_u32_array(&key) {
                    Ok(a) => a.iter().map(|&x| x as usize).collect(),
                    Err(_) => self
                        .gguf
                        .get_i32_array(&key)?
                        .iter()
                        .map(|&x| x.max(0) as usize)
                        .collect(),
                };
                if v.len() != n_layer {
                    return Err(EngineError::BadMetadata {
                        key,
                        reason: format!("{} entries for {n_layer} layers", v.len()),
                    });
                }
                Ok(Some(v))
            }
            Some(_) => Ok(Some(vec![self.u32(k)?; n_layer])),
        }
    }
}

fn positive(key: String, v: usize) -> Result<usize> {
    if v == 0 || v > 1 << 24 {
        return Err(EngineError::BadMetadata {
            key,
            reason: format!("value {v} is out of range"),
        });
    }
    Ok(v)
}

/// The widest per-token activations over all layers, for sizing a batch's buffers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Widths {
    /// Queries (heads × key head size).
    pub q: usize,
    /// Keys (KV heads × key head size).
    pub k: usize,
    /// Values (KV heads × value head size).
    pub v: usize,
    /// Attention output (heads × value head size).
    pub attn: usize,
    /// FFN hidden size.
    pub ff: usize,
}

impl ModelConfig {
    /// [`Widths`] of this model.
    pub(crate) fn widths(&self) -> Widths {
        let widest = |f: &dyn Fn(&AttentionSpec) -> usize| {
            self.layers
                .iter()
                .map(|l| f(&l.attention))
                .max()
                .unwrap_or(0)
        };
        Widths {
            q: widest(&|a| a.n_head * self.head_dim_k),
            k: widest(&|a| a.n_head_kv * self.head_dim_k),
            v: widest(&|a| a.n_head_kv * self.head_dim_v),
            attn: widest(&|a| a.n_head * self.head_dim_v),
            ff: self.layers.iter().map(|l| l.n_ff).max().unwrap_or(0),
        }
    }

    /// Reads the config of the model in `gguf`. `n_vocab` comes from the token embedding's
    /// shape, which the caller has already checked.
    pub fn from_gguf(gguf: &Gguf, n_vocab: usize) -> Result<ModelConfig> {
        let name = gguf.architecture()?;
        let arch = Arch::from_name(name).ok_or_else(|| EngineError::UnsupportedArch {
            arch: name.to_string(),
        })?;
        let traits = arch.traits();
        let k = Keys {
            gguf,
            arch: arch.name(),
        };
        let n_layer = positive(k.key("block_count"), k.u32("block_count")?)?;
        let n_embd = positive(k.key("embedding_length"), k.u32("embedding_length")?)?;
        let n_head = k
            .per_layer("attention.head_count", n_layer)?
            .ok_or_else(|| EngineError::MissingKey {
                key: k.key("attention.head_count"),
            })?;
        let n_head_kv = k
            .per_layer("attention.head_count_kv", n_layer)?
            .unwrap_or_else(|| n_head.clone());
        let n_ff = k
            .per_layer("feed_forward_length", n_layer)?
            .ok_or_else(|| EngineError::MissingKey {
                key: k.key("feed_forward_length"),
            })?;
        let n_head0 = positive(k.key("attention.head_count"), n_head[0])?;
        let head_dim_k = match k.opt_u32("attention.key_length")? {
            Some(v) => v,
            None => n_embd / n_head0,
        };
        let head_dim_v = k.opt_u32("attention.value_length")?.unwrap_or(head_dim_k);
        positive(k.key("attention.key_length"), head_dim_k)?;
        positive(k.key("attention.value_length"), head_dim_v)?;
        let n_rot = k.opt_u32("rope.dimension_count")?.unwrap_or(head_dim_k);
        if n_rot > head_dim_k || n_rot % 2 != 0 {
            return Err(EngineError::BadMetadata {
                key: k.key("rope.dimension_count"),
                reason: format!("{n_rot} rotated dims for head dim {head_dim_k}"),
            });
        }
        let hybrid = arch == Arch::GraniteHybrid;
        let kind = |l: usize| match hybrid && n_head_kv[l] == 0 {
            true => LayerKind::Mamba2,
            false => LayerKind::Attention,
        };
        for (l, (&h, &kv)) in n_head.iter().zip(&n_head_kv).enumerate() {
            if kind(l) == LayerKind::Mamba2 {
                continue;
            }
            if h == 0 || kv == 0 || h % kv != 0 {
                return Err(EngineError::BadMetadata {
                    key: k.key("attention.head_count_kv"),
                    reason: format!(
                        "layer {l}: {h} query heads are not a multiple of {kv} KV heads"
                    ),
                });
            }
        }
        let norm_eps = k
            .opt_f32("attention.layer_norm_rms_epsilon")?
            .unwrap_or(1e-5);
        let n_ctx_train = k.opt_u32("context_length")?.unwrap_or(2048);
        let rope_base = k.opt_f32("rope.freq_base")?.unwrap_or(10_000.0);
        let rope_base_swa = k.opt_f32("rope.freq_base_swa")?.unwrap_or(match arch {
            Arch::Gemma3 => 10_000.0,
            _ => rope_base,
        });
        let rope_scaling = read_rope_scaling(&k, n_ctx_train)?;

        // Granite 4.0-H (ab)uses `rope.scaling.finetuned` as a RoPE switch (default on).
        let rope_enabled = match arch {
            Arch::Granite | Arch::GraniteHybrid => gguf
                .get_opt_bool(&k.key("rope.scaling.finetuned"))?
                .unwrap_or(true),
            _ => true,
        };
        let ssm = match hybrid {
            true => Some(read_ssm(&k)?),
            false => None,
        };
        let window = k.opt_u32("attention.sliding_window")?.filter(|&w| w > 0);
        let is_swa = |l: usize| -> bool {
            match (arch, window) {
                (_, None) => false,
                (Arch::Gemma2, Some(_)) => l.is_multiple_of(2),
                (Arch::Gemma3, Some(_)) => !(l + 1).is_multiple_of(6),
                (Arch::Phi3, Some(_)) => true,
                _ => false,
            }
        };
        let layers = (0..n_layer)
            .map(|l| {
                let swa = is_swa(l);
                LayerSpec {
                    attention: AttentionSpec {
                        n_head: n_head[l],
                        n_head_kv: n_head_kv[l],
                        sliding_window: if swa { window } else { None },
                        rope_base: if swa && arch == Arch::Gemma3 {
                            rope_base_swa
                        } else {
                            rope_base
                        },
                        rope: rope_enabled,
                    },
                    n_ff: n_ff[l],
                    kind: kind(l),
                }
            })
            .collect();

        let attention_scale = match k.opt_f32("attention.scale")? {
            Some(s) if s != 0.0 => s,
            _ => 1.0 / (head_dim_k as f32).sqrt(),
        };
        let embedding_scale = match (
            traits.scale_embeddings_by_sqrt_dim,
            k.opt_f32("embedding_scale")?,
        ) {
            (true, _) => (n_embd as f32).sqrt(),
            (false, Some(s)) => s,
            (false, None) => 1.0,
        };
        Ok(ModelConfig {
            arch,
            traits,
            n_embd,
            n_vocab,
            n_ctx_train,
            head_dim_k,
            head_dim_v,
            n_rot,
            norm_eps,
            rope_scaling,
            attention_scale,
            attn_softcap: k.opt_f32("attn_logit_softcapping")?.filter(|&c| c > 0.0),
            final_softcap: k.opt_f32("final_logit_softcapping")?.filter(|&c| c > 0.0),
            embedding_scale,
            residual_scale: k.opt_f32("residual_scale")?.unwrap_or(1.0),
            logit_divisor: k
                .opt_f32("logit_scale")?
                .filter(|&s| s != 0.0)
                .unwrap_or(1.0),
            layers,
            ssm,
        })
    }

    /// Number of blocks.
    pub fn n_layer(&self) -> usize {
        self.layers.len()
    }
}

/// The five `ssm.*` keys of a hybrid model, checked for consistency; MoE hybrids are refused.
fn read_ssm(k: &Keys<'_>) -> Result<SsmConfig> {
    if k.opt_u32("expert_count")?.unwrap_or(0) > 0 {
        return Err(EngineError::BadMetadata {
            key: k.key("expert_count"),
            reason: "mixture-of-experts hybrid models are not supported yet".into(),
        });
    }
    let get = |name: &str| -> Result<usize> {
        let v = k
            .opt_u32(name)?
            .ok_or_else(|| EngineError::MissingKey { key: k.key(name) })?;
        positive(k.key(name), v)
    };
    let s = SsmConfig {
        d_conv: get("ssm.conv_kernel")?,
        d_inner: get("ssm.inner_size")?,
        d_state: get("ssm.state_size")?,
        n_group: get("ssm.group_count")?,
        n_head: get("ssm.time_step_rank")?,
    };
    let bad = |key: &str, reason: String| EngineError::BadMetadata {
        key: k.key(key),
        reason,
    };
    if !s.d_inner.is_multiple_of(s.n_head) {
        return Err(bad(
            "ssm.time_step_rank",
            format!(
                "{} heads do not divide the inner size {}",
                s.n_head, s.d_inner
            ),
        ));
    }
    if !s.d_inner.is_multiple_of(s.n_group) || !s.n_head.is_multiple_of(s.n_group) {
        return Err(bad(
            "ssm.group_count",
            format!(
                "{} groups do not divide the inner size {} and the {} heads",
                s.n_group, s.d_inner, s.n_head
            ),
        ));
    }
    if s.d_conv > 64 {
        return Err(bad("ssm.conv_kernel", format!("{} is too wide", s.d_conv)));
    }
    Ok(s)
}

fn read_rope_scaling(k: &Keys<'_>, n_ctx_train: usize) -> Result<RopeScaling> {
    let factor = match k.opt_f32("rope.scaling.factor")? {
        Some(f) if f > 0.0 && f != 1.0 => f,
        _ => match k.opt_f32("rope.scale_linear")? {
            Some(f) if f > 0.0 && f != 1.0 => return Ok(RopeScaling::Linear { factor: f }),
            _ => return Ok(RopeScaling::None),
        },
    };
    match k.opt_str("rope.scaling.type")?.unwrap_or("linear") {
        "none" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear { factor }),
        "yarn" => Ok(RopeScaling::Yarn {
            factor,
            original_context: k
                .opt_u32("rope.scaling.original_context_length")?
                .unwrap_or(n_ctx_train) as u32,
            ext_factor: k.opt_f32("rope.scaling.yarn_ext_factor")?.unwrap_or(1.0),
            attn_factor: k.opt_f32("rope.scaling.attn_factor")?.unwrap_or(1.0),
            beta_fast: k.opt_f32("rope.scaling.yarn_beta_fast")?.unwrap_or(32.0),
            beta_slow: k.opt_f32("rope.scaling.yarn_beta_slow")?.unwrap_or(1.0),
        }),
        other => Err(EngineError::BadMetadata {
            key: k.key("rope.scaling.type"),
            reason: format!(
                "unsupported RoPE scaling type '{other}' (supported: none, linear, yarn)"
            ),
        }),
    }
}

/// A small Gemma 3 shaped configuration of attention layers, one per entry of `windows` (its
/// sliding window), for tests of the cache and attention.
#[cfg(test)]
pub(crate) fn attention_test_config(
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    windows: &[Option<usize>],
) -> ModelConfig {
    let arch = Arch::Gemma3;
    ModelConfig {
        arch,
        traits: arch.traits(),
        n_embd: 64,
        n_vocab: 10,
        n_ctx_train: 1024,
        head_dim_k: head_dim,
        head_dim_v: head_dim,
        n_rot: head_dim,
        norm_eps: 1e-6,
        rope_scaling: RopeScaling::None,
        attention_scale: 1.0,
        attn_softcap: None,
        final_softcap: None,
        embedding_scale: 1.0,
        residual_scale: 1.0,
        logit_divisor: 1.0,
        layers: windows
            .iter()
            .map(|&w| LayerSpec {
                attention: AttentionSpec {
                    n_head,
                    n_head_kv,
                    sliding_window: w,
                    rope_base: 1e4,
                    rope: true,
                },
                n_ff: 64,
                kind: LayerKind::Attention,
            })
            .collect(),
        ssm: None,
    }
}
