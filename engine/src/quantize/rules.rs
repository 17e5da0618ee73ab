//! llama.cpp's per-tensor type choice (`src/llama-quant.cpp`): which tensors may be quantized,
//! the type each one gets in a mix (`llama_tensor_get_type_impl`, with its layer counters and
//! `use_more_bits`), and the fallback for rows that do not split into the type's blocks. The
//! tensors are visited in llama.cpp's order (non-layer tensors first, then layer by layer, by
//! name within each), because the counters depend on it.

use nanorun_formats::{GgmlType, Gguf, MetadataValue, TensorInfo};

use super::FileType;
use crate::error::{EngineError, Result};

/// Broad tensor roles, as llama.cpp's `tensor_category`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttnQ,
    AttnV,
    AttnK,
    AttnQkv,
    AttnKvB,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

fn category(name: &str) -> Category {
    if name == "output.weight" {
        return Category::Output;
    }
    if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        return Category::TokenEmbd;
    }
    let table = [
        ("attn_qkv.weight", Category::AttnQkv),
        ("attn_kv_b.weight", Category::AttnKvB),
        ("attn_v.weight", Category::AttnV),
        ("attn_k.weight", Category::AttnK),
        ("attn_q.weight", Category::AttnQ),
        ("attn_output.weight", Category::AttnOutput),
        ("ffn_up", Category::FfnUp),
        ("ffn_gate", Category::FfnGate),
        ("ffn_down", Category::FfnDown),
    ];
    table
        .iter()
        .find(|(pat, _)| name.contains(pat))
        .map_or(Category::Other, |&(_, c)| c)
}

fn is_attn_v_like(c: Category) -> bool {
    matches!(c, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
}

/// ggml's `ggml_n_dims`: the number of dimensions up to the last one above 1 (at least 1).
fn n_dims(dims: &[u64]) -> usize {
    dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// The layer number of `blk.N.…` names (what `sscanf(name, "blk.%d.")` reads), else -1.
pub(crate) fn layer_of(name: &str) -> i64 {
    let Some(rest) = name.strip_prefix("blk.") else {
        return -1;
    };
    let (neg, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let n: String = digits.chars().take_while(char::is_ascii_digit).collect();
    match n.parse::<i64>() {
        Ok(v) if neg => -v,
        Ok(v) => v,
        Err(_) => -1,
    }
}

/// llama.cpp's `tensor_allows_quantization` (the parts that apply to the architectures and
/// options here): 2-D or larger `*weight` tensors that are not norms, gates, convolutions,
/// positional tables or other small special cases.
fn allows_quantization(t: &TensorInfo) -> bool {
    if n_dims(&t.dims) < 2 {
        return false;
    }
    let name = t.name.as_str();
    if !name.ends_with("weight") || name.contains("_norm.weight") {
        return false;
    }
    const NEVER: &[&str] = &[
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    if NEVER.iter().any(|p| name.contains(p)) {
        return false;
    }
    name != "position_embd.weight" && name != "token_types.weight"
}

/// The model facts the rules look at.
struct Hparams {
    arch: String,
    n_layer: i64,
    n_gqa: i64,
    n_expert: i64,
    is_70b: bool,
}

fn first_int(v: Option<&MetadataValue>) -> Option<i64> {
    match v? {
        MetadataValue::Array(a) => a.get(0).and_then(|x| x.as_integer()),
        x => x.as_integer(),
    }
    .and_then(|i| i64::try_from(i).ok())
}

impl Hparams {
    fn read(gguf: &Gguf) -> Result<Hparams> {
        let arch = gguf.architecture()?.to_string();
        let key = |k: &str| format!("{arch}.{k}");
        let n_layer =
            first_int(gguf.get(&key("block_count"))).ok_or_else(|| EngineError::MissingKey {
                key: key("block_count"),
            })?;
        let n_head = first_int(gguf.get(&key("attention.head_count"))).unwrap_or(0);
        let n_head_kv = first_int(gguf.get(&key("attention.head_count_kv"))).unwrap_or(n_head);
        let n_gqa = if n_head_kv == 0 {
            0
        } else {
            n_head / n_head_kv
        };
        let n_expert = first_int(gguf.get(&key("expert_count"))).unwrap_or(0);
        // The 70B size class of llama.cpp's `load_hparams` (it gives attn_v more bits).
        let is_70b = match arch.as_str() {
            "llama" => n_layer == 80 && n_head != n_head_kv,
            "deci" | "olmo" | "qwen2" => n_layer == 80,
            "jais2" => n_layer == 68,
            _ => false,
        };
        Ok(Hparams {
            arch,
            n_layer,
            n_gqa,
            n_expert,
            is_70b,
        })
    }
}

fn use_more_bits(i_layer: i64, n_layers: i64) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

/// The layer counters of llama.cpp's `quantize_state_impl`.
struct State {
    hp: Hparams,
    tied_embeddings: bool,
    n_attention_wv: i64,
    i_attention_wv: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
    n_fallback: usize,
}

impl State {
    /// `layer_info`: the counter, or the layer in the name for mixture-of-experts models.
    fn layer(&self, counter: i64, name: &str) -> Result<(i64, i64)> {
        if self.hp.n_expert > 1 {
            let i = layer_of(name);
            if !name.starts_with("blk.") || i < 0 || i >= self.hp.n_layer {
                return Err(EngineError::BadTensor {
                    name: name.to_string(),
                    reason: format!("no layer in [0, {}) in its name", self.hp.n_layer),
                });
            }
            return Ok((i, self.hp.n_layer));
        }
        Ok((counter, self.hp.n_layer))
    }

    /// `llama_tensor_get_type_impl` for the file types of [`FileType`].
    fn mix_type(
        &mut self,
        mut ty: GgmlType,
        t: &TensorInfo,
        ft: FileType,
        cat: Category,
    ) -> Result<GgmlType> {
        use FileType as F;
        use GgmlType as G;
        let falcon = self.hp.arch == "falcon";
        let n_expert = self.hp.n_expert;
        if cat == Category::Output || (self.tied_embeddings && cat == Category::TokenEmbd) {
            let nx = t.row_len();
            if falcon || !nx.is_multiple_of(ty.block_size() as u64) {
                ty = G::Q8_0;
            } else if ty != G::Q8_0 {
                ty = G::Q6_K;
            }
        } else if cat == Category::TokenEmbd {
            // Only the IQ / ternary mixes change untied token embeddings.
        } else if is_attn_v_like(cat) {
            let gqa = self.hp.n_gqa;
            let i = self.i_attention_wv;
            match ft {
                F::Q2K => ty = if gqa >= 4 { G::Q4_K } else { G::Q3_K },
                F::Q3KM => ty = if i < 2 { G::Q5_K } else { G::Q4_K },
                F::Q3KL => ty = G::Q5_K,
                F::Q4KM | F::Q5KM if use_more_bits(i, self.n_attention_wv) => ty = G::Q6_K,
                F::Q4KS if i < 4 => ty = G::Q5_K,
                _ => {}
            }
            if self.hp.is_70b && (ty == G::Q3_K || ty == G::Q4_K) {
                ty = G::Q5_K;
            }
            if n_expert == 8 {
                ty = G::Q8_0;
            }
            self.i_attention_wv += 1;
        } else if cat == Category::AttnK {
            if n_expert == 8 {
                ty = G::Q8_0;
            }
        } else if cat == Category::FfnDown {
            let (i, n) = self.layer(self.i_ffn_down, &t.name)?;
            match ft {
                F::Q2K => ty = G::Q3_K,
                F::Q3KM => {
                    ty = if i < n / 16 {
                        G::Q5_K
                    } else if !falcon || use_more_bits(i, n) {
                        G::Q4_K
                    } else {
                        G::Q3_K
                    }
                }
                F::Q3KL => ty = if falcon { G::Q4_K } else { G::Q5_K },
                F::Q4KM => {
                    if falcon {
                        ty = if i < n / 16 {
                            G::Q6_K
                        } else if use_more_bits(i, n) {
                            G::Q5_K
                        } else {
                            G::Q4_K
                        };
                    } else if use_more_bits(i, n) {
                        ty = G::Q6_K;
                    }
                }
                F::Q5KM if use_more_bits(i, n) => ty = G::Q6_K,
                F::Q4KS if !falcon && i < n / 8 => ty = G::Q5_K,
                _ => {}
            }
            self.i_ffn_down += 1;
        } else if cat == Category::AttnOutput {
            if !falcon {
                if n_expert == 8 {
                    if matches!(ft, F::Q2K | F::Q3KS | F::Q3KM | F::Q4KS | F::Q4KM) {
                        ty = G::Q5_K;
                    }
                } else {
                    match ft {
                        F::Q2K => ty = G::Q3_K,
                        F::Q3KM => ty = G::Q4_K,
                        F::Q3KL => ty = G::Q5_K,
                        _ => {}
                    }
                }
            } else if ft == F::Q3KL {
                ty = G::Q4_K;
            }
        } else if cat == Category::FfnGate {
            // Only IQ3_XS changes these; the counter (and the name check) still run.
            self.layer(self.i_ffn_gate, &t.name)?;
            self.i_ffn_gate += 1;
        } else if cat == Category::FfnUp {
            self.layer(self.i_ffn_up, &t.name)?;
            self.i_ffn_up += 1;
        }
        Ok(ty)
    }

    /// `tensor_type_fallback`: a type whose blocks divide the row, else F16.
    fn fallback(&mut self, t: &TensorInfo, ty: GgmlType) -> GgmlType {
        use GgmlType as G;
        let cols = t.row_len();
        if cols.is_multiple_of(ty.block_size() as u64) {
            return ty;
        }
        self.n_fallback += 1;
        let alt = match ty {
            G::Q2_K | G::Q3_K => G::Q4_0,
            G::Q4_K => G::Q5_0,
            G::Q5_K => G::Q5_1,
            G::Q6_K => G::Q8_0,
            other => other,
        };
        if cols.is_multiple_of(alt.block_size() as u64) {
            alt
        } else {
            G::F16
        }
    }
}

/// The type chosen for one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorPlan {
    /// Index of the tensor in the input file's tensor table.
    pub index: usize,
    /// The tensor's name.
    pub name: String,
    /// Its type in the input.
    pub from: GgmlType,
    /// Its type in the output.
    pub to: GgmlType,
}

/// llama.cpp's tensor order: tensors outside layers first, then layer by layer; by name
/// within each group (`llama_model_loader::weight_name_comparer`).
pub fn llama_order(tensors: &[TensorInfo]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        let (ta, tb) = (&tensors[a].name, &tensors[b].name);
        layer_of(ta)
            .cmp(&layer_of(tb))
            .then_with(|| ta.as_bytes().cmp(tb.as_bytes()))
    });
    order
}

/// The output type of every tensor of `gguf` for file type `ft`, in the order llama-quantize
/// writes them; also the number of tensors that needed a fallback type.
pub fn plan(gguf: &Gguf, ft: FileType) -> Result<(Vec<TensorPlan>, usize)> {
    let tensors = gguf.tensors();
    let order = llama_order(tensors);
    let cats: Vec<Category> = tensors.iter().map(|t| category(&t.name)).collect();
    let mut st = State {
        hp: Hparams::read(gguf)?,
        tied_embeddings: !cats.contains(&Category::Output),
        n_attention_wv: cats.iter().filter(|&&c| is_attn_v_like(c)).count() as i64,
        i_attention_wv: 0,
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
        n_fallback: 0,
    };
    let default = ft.default_type();
    let mut out = Vec::with_capacity(tensors.len());
    for &i in &order {
        let t = &tensors[i];
        let to = if !allows_quantization(t) {
            t.ty
        } else if default.is_quantized() {
            let ty = st.mix_type(default, t, ft, cats[i])?;
            st.fallback(t, ty)
        } else {
            default
        };
        out.push(TensorPlan {
            index: i,
            name: t.name.clone(),
            from: t.ty,
            to,
        });
    }
    Ok((out, st.n_fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_numbers_and_more_bits() {
        assert_eq!(layer_of("blk.12.attn_q.weight"), 12);
        assert_eq!(layer_of("output.weight"), -1);
        assert_eq!(layer_of("blk.x"), -1);
        // 2 layers: layer 1 gets more bits (7·2/8 = 1), layer 0 does not.
        assert!(!use_more_bits(0, 2));
        assert!(use_more_bits(1, 2));
        // 32 layers: the first 4, the last 4 and every third in between.
        let more: Vec<i64> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
        assert_eq!(
            more,
            [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
    }

    #[test]
    fn categories_and_dims() {
        assert_eq!(category("blk.0.ffn_down_exps.weight"), Category::FfnDown);
        assert_eq!(category("blk.0.attn_qkv.weight"), Category::AttnQkv);
        assert_eq!(category("output_norm.weight"), Category::Other);
        assert_eq!(n_dims(&[256, 1]), 1);
        assert_eq!(n_dims(&[256, 2, 1]), 2);
    }
}
