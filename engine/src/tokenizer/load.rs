//! Building a [`Tokenizer`] from GGUF metadata (or the same data given by hand): the defaults
//! and rules llama.cpp's `llama_vocab::impl::load` applies — default special ids per model,
//! pre-tokenizer selection, end-of-generation detection by token text, attribute fix-ups.

use std::borrow::Cow;

use nanorun_formats::{Gguf, MetadataArray};

use super::bpe::BpeModel;
use super::pretokenize::PreTokenizer;
use super::special::special_cache;
use super::ugm::UgmModel;
use super::unicode::ByteAlphabet;
use super::vocab::{attr, Merges, Vocab};
use super::wpm::Normalizer;
use super::{Model, Tokenizer, TokenizerError};

/// Everything a tokenizer is built from, as plain data: what the `tokenizer.ggml.*` keys of a
/// GGUF file hold. `None` means "key absent" (llama.cpp's default applies).
#[derive(Clone, Debug, Default)]
pub struct TokenizerSpec<'a> {
    /// `tokenizer.ggml.model`: `llama`, `gpt2` or `bert`.
    pub model: &'a str,
    /// `tokenizer.ggml.pre` (BPE pre-tokenizer name).
    pub pre: Option<&'a str>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<&'a [u8]>,
    /// `tokenizer.ggml.scores` (empty: all 0).
    pub scores: Cow<'a, [f32]>,
    /// `tokenizer.ggml.token_type` (empty: all normal).
    pub token_types: Cow<'a, [i32]>,
    /// `tokenizer.ggml.merges` (BPE only).
    pub merges: Vec<&'a [u8]>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`.
    pub eot: Option<u32>,
    /// `tokenizer.ggml.eom_token_id`.
    pub eom: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk: Option<u32>,
    /// `tokenizer.ggml.seperator_token_id` (sic, as llama.cpp spells it).
    pub sep: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.fim_pad_token_id`.
    pub fim_pad: Option<u32>,
    /// `tokenizer.ggml.fim_rep_token_id`.
    pub fim_rep: Option<u32>,
    /// `tokenizer.ggml.fim_sep_token_id`.
    pub fim_sep: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_sep_token`.
    pub add_sep: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.ggml.precompiled_charsmap` (unigram; empty: none).
    pub precompiled_charsmap: Cow<'a, [u8]>,
    /// `tokenizer.ggml.remove_extra_whitespaces` (unigram).
    pub remove_extra_whitespaces: Option<bool>,
    /// `tokenizer.ggml.normalizer.lowercase` (WordPiece).
    pub lowercase: Option<bool>,
    /// `tokenizer.ggml.normalizer.strip_accents` (WordPiece).
    pub strip_accents: Option<bool>,
    /// `general.name`: llama.cpp sets some token attributes by model name (Phi-3).
    pub model_name: Option<&'a str>,
    /// `general.architecture`.
    pub architecture: Option<&'a str>,
}

/// Reads `key` as an optional `u32` token id.
fn opt_id(g: &Gguf, key: &str) -> Result<Option<u32>, TokenizerError> {
    Ok(g.get_opt_u32(key)?)
}

impl<'a> TokenizerSpec<'a> {
    /// Collects the tokenizer keys of a GGUF file (borrowing its strings).
    pub fn from_gguf(g: &'a Gguf) -> Result<TokenizerSpec<'a>, TokenizerError> {
        const TOKENS: &str = "tokenizer.ggml.tokens";
        let model = g
            .get_opt_str("tokenizer.ggml.model")?
            .ok_or(TokenizerError::MissingKey {
                key: "tokenizer.ggml.model",
            })?;
        if g.get(TOKENS).is_none() {
            return Err(TokenizerError::MissingKey { key: TOKENS });
        }
        let tokens: Vec<&[u8]> = g.get_str_array(TOKENS)?.iter().collect();
        let n = tokens.len();
        let scores: Cow<[f32]> = match g.get("tokenizer.ggml.scores") {
            None => Cow::Borrowed(&[]),
            Some(_) => match g.get_f32_array("tokenizer.ggml.scores") {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => Cow::Owned(
                    g.get_i32_array("tokenizer.ggml.scores")?
                        .iter()
                        .map(|&x| x as f32)
                        .collect(),
                ),
            },
        };
        if !scores.is_empty() && scores.len() < n {
            return Err(TokenizerError::Invalid {
                key: "tokenizer.ggml.scores",
                reason: format!("{} scores for {n} tokens", scores.len()),
            });
        }
        let token_types: Cow<[i32]> = match g.get("tokenizer.ggml.token_type") {
            None => Cow::Borrowed(&[]),
            Some(_) => Cow::Borrowed(g.get_i32_array("tokenizer.ggml.token_type")?),
        };
        if !token_types.is_empty() && token_types.len() < n {
            return Err(TokenizerError::Invalid {
                key: "tokenizer.ggml.token_type",
                reason: format!("{} token types for {n} tokens", token_types.len()),
            });
        }
        let merges: Vec<&[u8]> = match g.get("tokenizer.ggml.merges") {
            None => Vec::new(),
            Some(_) => g.get_str_array("tokenizer.ggml.merges")?.iter().collect(),
        };
        const CHARSMAP: &str = "tokenizer.ggml.precompiled_charsmap";
        let precompiled_charsmap: Cow<[u8]> = match g.get(CHARSMAP) {
            None => Cow::Borrowed(&[]),
            Some(_) => match g.get_array(CHARSMAP)? {
                MetadataArray::U8(v) => Cow::Borrowed(v.as_slice()),
                MetadataArray::I8(v) => Cow::Owned(v.iter().map(|&b| b as u8).collect()),
                other => {
                    return Err(TokenizerError::Invalid {
                        key: CHARSMAP,
                        reason: format!("array of {:?}, expected u8 or i8", other.element_type()),
                    })
                }
            },
        };
        Ok(TokenizerSpec {
            model,
            precompiled_charsmap,
            remove_extra_whitespaces: g.get_opt_bool("tokenizer.ggml.remove_extra_whitespaces")?,
            pre: g.get_opt_str("tokenizer.ggml.pre")?,
            tokens,
            scores,
            token_types,
            merges,
            bos: opt_id(g, "tokenizer.ggml.bos_token_id")?,
            eos: opt_id(g, "tokenizer.ggml.eos_token_id")?,
            eot: opt_id(g, "tokenizer.ggml.eot_token_id")?,
            eom: opt_id(g, "tokenizer.ggml.eom_token_id")?,
            unk: opt_id(g, "tokenizer.ggml.unknown_token_id")?,
            sep: opt_id(g, "tokenizer.ggml.seperator_token_id")?,
            pad: opt_id(g, "tokenizer.ggml.padding_token_id")?,
            fim_pad: opt_id(g, "tokenizer.ggml.fim_pad_token_id")?,
            fim_rep: opt_id(g, "tokenizer.ggml.fim_rep_token_id")?,
            fim_sep: opt_id(g, "tokenizer.ggml.fim_sep_token_id")?,
            add_bos: g.get_opt_bool("tokenizer.ggml.add_bos_token")?,
            add_eos: g.get_opt_bool("tokenizer.ggml.add_eos_token")?,
            add_sep: g.get_opt_bool("tokenizer.ggml.add_sep_token")?,
            add_space_prefix: g.get_opt_bool("tokenizer.ggml.add_space_prefix")?,
            lowercase: g.get_opt_bool("tokenizer.ggml.normalizer.lowercase")?,
            strip_accents: g.get_opt_bool("tokenizer.ggml.normalizer.strip_accents")?,
            model_name: g.get_opt_str("general.name").ok().flatten(),
            architecture: g.get_opt_str("general.architecture").ok().flatten(),
        })
    }
}

/// What a `tokenizer.ggml.pre` value selects for BPE.
struct PreConfig {
    pre: PreTokenizer,
    ignore_merges: bool,
    /// Default of `add_bos_token`.
    add_bos: bool,
    clean_spaces: bool,
    /// Gemma 4 style: spaces escaped to ▁, raw UTF-8 (no byte alphabet), `<0xXX>` fallback.
    spm_style: bool,
}

/// The [`PreConfig`] of a `tokenizer.ggml.pre` name, or `None` for names not implemented.
fn bpe_pre(pre: &str) -> Option<PreConfig> {
    let spm_style = |clean_spaces| PreConfig {
        pre: PreTokenizer::Lines,
        ignore_merges: false,
        add_bos: false,
        clean_spaces,
        spm_style: true,
    };
    match pre {
        "gemma4" | "granite-embed-multi-311m" => return Some(spm_style(true)),
        "sarvam-moe" => return Some(spm_style(false)),
        _ => {}
    }
    let (pre, ignore_merges, add_bos, clean_spaces) = byte_level_pre(pre)?;
    Some(PreConfig {
        pre,
        ignore_merges,
        add_bos,
        clean_spaces,
        spm_style: false,
    })
}

/// Byte-level pre-tokenizers: (pre-tokenizer, ignore_merges, add_bos default, clean_spaces).
fn byte_level_pre(pre: &str) -> Option<(PreTokenizer, bool, bool, bool)> {
    use PreTokenizer::*;
    Some(match pre {
        "" | "default" => (Default, false, false, true),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => (Llama3, true, true, true),
        "dbrx" | "smaug-bpe" | "chatglm-bpe" => (Llama3, false, false, true),
        "glm4" | "glm5" => (Llama3, true, false, true),
        "qwen35" => (Qwen35, false, false, false),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "exaone4" | "mpt" | "olmo" | "jais"
        | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" => (Gpt2, false, false, true),
        "trillion" | "granite-docling" => (Gpt2, false, false, false),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            (StarCoder, false, false, true)
        }
        "command-r" | "smollm" => (StarCoder, false, false, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open"
        | "grok-2" => (Qwen2, false, false, false),
        "megrez" | "stablelm2" => (Qwen2, false, false, true),
        "bailingmoe" | "bailingmoe2" | "llada-moe" => (Qwen2, false, false, false),
        "seed-coder" => (SeedCoder, false, false, false),
        "ufakzeka" => (NoContractions, false, false, false),
        "falcon" => (Falcon, false, false, true),
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => (Gpt4o, false, false, false),
        "tekken" => (Tekken, true, true, false),
        "deepseek-coder" => (DeepSeekCoder, false, false, false),
        "bloom" | "gpt3-finnish" => (Bloom, false, false, true),
        "poro-chat" => (Bloom, false, false, false),
        "viking" => (Viking, false, false, false),
        "deepseek-v3" | "hunyuan-dense" | "joyai-llm" | "hy_v4" => (DeepSeek3, false, false, false),
        "minicpm5" => (MiniCpm5, true, false, true),
        "tiny_aya" | "cohere2moe" => (TinyAya, false, false, false),
        "youtu" => (Youtu, true, false, false),
        "granite-embed-multi-97m" => (GraniteEmbedMulti, true, false, false),
        _ => return None,
    })
}

/// Token texts llama.cpp treats as end-of-turn when `eot_token_id` is absent.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const FIM_TEXTS: &[&[&str]] = &[
    &[
        "<|fim_prefix|>",
        "<fim-prefix>",
        "<fim_prefix>",
        "<｜fim▁begin｜>",
        "<PRE>",
        "▁<PRE>",
        "<|code_prefix|>",
        "<|prefix|>",
    ],
    &[
        "<|fim_suffix|>",
        "<fim-suffix>",
        "<fim_suffix>",
        "<｜fim▁hole｜>",
        "<SUF>",
        "▁<SUF>",
        "<|code_suffix|>",
        "<|suffix|>",
    ],
    &[
        "<|fim_middle|>",
        "<fim-middle>",
        "<fim_middle>",
        "<｜fim▁end｜>",
        "<MID>",
        "▁<MID>",
        "<|code_middle|>",
        "<|middle|>",
    ],
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Token texts that end generation whatever the metadata says.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// The first of `texts` (in list order: llama.cpp walks a hash map, whose order is arbitrary,
/// so the list's order of preference stands in for it) that is a token.
fn find_text(vocab: &Vocab, texts: &[&str]) -> Option<u32> {
    texts.iter().find_map(|t| vocab.id(t.as_bytes()))
}

fn mark_control(vocab: &mut Vocab, id: u32) {
    vocab.set_attr(id, vocab.attr(id) | attr::CONTROL);
}

/// The id the metadata gives (when in range), else the first token whose text is one of
/// `texts`, which then becomes a control token.
fn detect(vocab: &mut Vocab, meta: Option<u32>, texts: &[&str]) -> Option<u32> {
    if let Some(id) = meta.filter(|&id| (id as usize) < vocab.len()) {
        return Some(id);
    }
    let id = find_text(vocab, texts)?;
    mark_control(vocab, id);
    Some(id)
}

/// Resolves a special id: metadata value when in range, else the default when in range.
fn resolve(meta: Option<u32>, default: Option<u32>, n: usize) -> Option<u32> {
    let default = default.filter(|&d| (d as usize) < n);
    match meta {
        Some(id) if (id as usize) < n => Some(id),
        _ => default,
    }
}

/// llama.cpp's defaults for one tokenizer model, before the metadata overrides them.
struct Defaults {
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    sep: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_sep: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
}

/// The algorithm `tokenizer.ggml.model` (and, for BPE, `tokenizer.ggml.pre`) selects, with its
/// defaults.
fn model_and_defaults(spec: &TokenizerSpec<'_>) -> Result<(Model, Defaults), TokenizerError> {
    Ok(match spec.model {
        "llama" => {
            let d = Defaults {
                bos: Some(1),
                eos: Some(2),
                unk: Some(0),
                sep: None,
                pad: None,
                add_bos: true,
                add_sep: false,
                add_space_prefix: true,
                clean_spaces: false,
            };
            (Model::Spm, d)
        }
        "bert" => {
            let lowercase = spec.lowercase.unwrap_or(true);
            let norm = Normalizer {
                lowercase,
                strip_accents: spec.strip_accents.unwrap_or(lowercase),
            };
            let d = Defaults {
                bos: Some(101),
                eos: None,
                unk: Some(100),
                sep: Some(102),
                pad: Some(0),
                add_bos: true,
                add_sep: true,
                add_space_prefix: false,
                clean_spaces: true,
            };
            (Model::Wpm(norm), d)
        }
        "gpt2" | "gemma4" => {
            // A `gemma4` vocabulary is BPE with Gemma 4's pre-tokenizer whatever `pre` says.
            let name = if spec.model == "gemma4" {
                "gemma4"
            } else {
                spec.pre.unwrap_or("")
            };
            let c =
                bpe_pre(name).ok_or_else(|| TokenizerError::UnsupportedPre(name.to_string()))?;
            if spec.merges.is_empty() {
                return Err(TokenizerError::MissingKey {
                    key: "tokenizer.ggml.merges",
                });
            }
            let bpe = BpeModel {
                merges: Merges::new(spec.merges.iter().copied()),
                pre: c.pre,
                ignore_merges: c.ignore_merges,
                byte_encode: !c.spm_style,
                escape_spaces: c.spm_style,
                newline_words: name == "gemma4" || name == "granite-embed-multi-311m",
                alphabet: ByteAlphabet::new(),
            };
            let no_bos = spec.model == "gemma4" || matches!(name, "glm4" | "glm5" | "chatglm-bpe");
            let d = Defaults {
                bos: if no_bos { None } else { Some(11) },
                eos: if spec.model == "gemma4" {
                    None
                } else {
                    Some(11)
                },
                unk: None,
                sep: None,
                pad: None,
                add_bos: c.add_bos,
                add_sep: matches!(name, "jina-v1-en" | "jina-v2-code" | "roberta-bpe"),
                add_space_prefix: false,
                clean_spaces: c.clean_spaces,
            };
            (Model::Bpe(Box::new(bpe)), d)
        }
        "t5" => {
            // The unigram model needs the vocabulary: it is built in `from_spec`.
            let d = Defaults {
                bos: None,
                eos: Some(1),
                unk: Some(2),
                sep: None,
                pad: Some(0),
                add_bos: false,
                add_sep: false,
                add_space_prefix: false,
                clean_spaces: false,
            };
            (Model::Spm, d)
        }
        other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
    })
}

/// The vocabulary of `spec`, with llama.cpp's renaming of empty tokens to `[EMPTY_<id>]`.
fn build_vocab(spec: &TokenizerSpec<'_>) -> Result<Vocab, TokenizerError> {
    let n = spec.tokens.len();
    if n == 0 || n > u32::MAX as usize / 2 {
        return Err(TokenizerError::Invalid {
            key: "tokenizer.ggml.tokens",
            reason: format!("{n} tokens"),
        });
    }
    let renamed: Vec<(usize, Vec<u8>)> = (0..n)
        .filter(|&i| spec.tokens[i].is_empty())
        .map(|i| (i, format!("[EMPTY_{i}]").into_bytes()))
        .collect();
    let mut texts: Vec<&[u8]> = spec.tokens.clone();
    for (i, t) in &renamed {
        texts[*i] = t;
    }
    let attrs: Vec<u32> = spec
        .token_types
        .iter()
        .map(|&t| attr::from_token_type(t))
        .collect();
    Vocab::new(texts.iter().copied(), &spec.scores, &attrs).map_err(|(text, first, second)| {
        TokenizerError::DuplicateToken {
            text: String::from_utf8_lossy(&text).into_owned(),
            first,
            second,
        }
    })
}

/// Fails like llama.cpp when `add_*` is set but the token it adds is not.
fn require(
    add: bool,
    id: Option<u32>,
    add_key: &'static str,
    id_key: &str,
) -> Result<(), TokenizerError> {
    if add && id.is_none() {
        return Err(TokenizerError::Invalid {
            key: add_key,
            reason: format!("true, but {id_key} is not set"),
        });
    }
    Ok(())
}

/// The end-of-turn token and the end-of-generation set, found by text where the metadata is
/// silent, as llama.cpp does (tokens found that way become control tokens); also marks
/// "unused" control tokens and applies llama.cpp's o200k / Gemma 4 exceptions.
fn end_of_generation(
    vocab: &mut Vocab,
    spec: &TokenizerSpec<'_>,
    eos: Option<u32>,
) -> (Option<u32>, Vec<u32>) {
    let eot = detect(vocab, spec.eot, EOT_TEXTS);
    let eom = detect(vocab, spec.eom, &["<|eom_id|>"]);
    for group in FIM_TEXTS {
        detect(vocab, None, group);
    }
    let fim_pad = detect(vocab, spec.fim_pad, FIM_PAD_TEXTS);
    let fim_rep = detect(vocab, spec.fim_rep, FIM_REP_TEXTS);
    let fim_sep = detect(vocab, spec.fim_sep, FIM_SEP_TEXTS);
    for id in 0..vocab.len() as u32 {
        let a = vocab.attr(id);
        if a & attr::CONTROL != 0 && a & attr::UNUSED == 0 && contains(vocab.text(id), b"unused") {
            vocab.set_attr(id, a | attr::UNUSED);
        }
    }
    let mut eog: Vec<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
    for t in EOG_TEXTS {
        if let Some(id) = vocab.id(t.as_bytes()) {
            eog.push(id);
            mark_control(vocab, id);
        }
    }
    for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
        if let Some(id) = vocab.id(t.as_bytes()) {
            vocab.set_attr(id, attr::USER_DEFINED);
        }
    }
    eog.extend([eos, eot, eom].into_iter().flatten());
    eog.sort_unstable();
    eog.dedup();
    let has = |vocab: &Vocab, eog: &[u32], t: &str| {
        vocab
            .id(t.as_bytes())
            .is_some_and(|id| eog.binary_search(&id).is_ok())
    };
    // o200k harmony / solar-open: "<|end|>" is not end-of-generation there.
    if let Some(end) = vocab.id(b"<|end|>").filter(|_| has(vocab, &eog, "<|end|>")) {
        let call = has(vocab, &eog, "<|call|>") || has(vocab, &eog, "<|calls|>");
        if call && (has(vocab, &eog, "<|return|>") || has(vocab, &eog, "<|flush|>")) {
            eog.retain(|&x| x != end);
            vocab.set_attr(end, attr::USER_DEFINED);
        }
    }
    // Gemma 4 and PLaMo have a normal "</s>" (PaddleOCR's ends generation).
    if let Some(s) = vocab.id(b"</s>") {
        let normal_s = has(vocab, &eog, "<|tool_response>") || has(vocab, &eog, "<|plamo:eos|>");
        if has(vocab, &eog, "</s>") && normal_s {
            eog.retain(|&x| x != s);
            vocab.set_attr(s, attr::NORMAL);
        }
    }
    (eot, eog)
}

impl Tokenizer {
    /// Builds a tokenizer from plain data (see [`TokenizerSpec`]).
    pub fn from_spec(spec: &TokenizerSpec<'_>) -> Result<Tokenizer, TokenizerError> {
        let mut vocab = build_vocab(spec)?;
        let n = vocab.len();
        let (model, d) = model_and_defaults(spec)?;
        let bos = resolve(spec.bos, d.bos, n);
        let eos = resolve(spec.eos, d.eos, n);
        let unk = resolve(spec.unk, d.unk, n);
        let sep = resolve(spec.sep, d.sep, n);
        let pad = resolve(spec.pad, d.pad, n);
        let mut add_bos = spec.add_bos.unwrap_or(d.add_bos);
        if let Model::Bpe(bpe) = &model {
            // llama.cpp forces a BOS for Gemma 4 whatever the metadata says.
            add_bos |= bpe.newline_words;
        }
        let add_eos = spec.add_eos.unwrap_or(spec.model == "t5");
        let add_sep = spec.add_sep.unwrap_or(d.add_sep);
        let add_space_prefix = spec.add_space_prefix.unwrap_or(d.add_space_prefix);
        let model = if spec.model == "t5" {
            let ugm = UgmModel::new(
                &vocab,
                &spec.precompiled_charsmap,
                add_space_prefix,
                spec.remove_extra_whitespaces.unwrap_or(false),
            )
            .map_err(|reason| TokenizerError::Invalid {
                key: "tokenizer.ggml.precompiled_charsmap",
                reason: reason.to_string(),
            })?;
            Model::Ugm(Box::new(ugm))
        } else {
            model
        };
        require(
            add_bos,
            bos,
            "tokenizer.ggml.add_bos_token",
            "tokenizer.ggml.bos_token_id",
        )?;
        require(
            add_eos,
            eos,
            "tokenizer.ggml.add_eos_token",
            "tokenizer.ggml.eos_token_id",
        )?;
        require(
            add_sep,
            sep,
            "tokenizer.ggml.add_sep_token",
            "tokenizer.ggml.seperator_token_id",
        )?;

        let (eot, eog) = end_of_generation(&mut vocab, spec, eos);
        let specials = special_cache(&vocab);
        apply_name_attrs(&mut vocab, &specials, spec);

        Ok(Tokenizer::assemble(super::Parts {
            vocab,
            model,
            specials,
            eog,
            bos,
            eos,
            eot,
            unk,
            sep,
            pad,
            add_bos,
            add_eos,
            add_sep,
            add_space_prefix,
            clean_spaces: d.clean_spaces,
        }))
    }

    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*` keys). Errors name the
    /// missing or malformed key; unsupported models and pre-tokenizers are errors too.
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_spec(&TokenizerSpec::from_gguf(g)?)
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Attributes llama.cpp sets by model, pre-tokenizer or architecture name.
fn apply_name_attrs(vocab: &mut Vocab, specials: &[u32], spec: &TokenizerSpec<'_>) {
    let name = spec.model_name.unwrap_or("").to_ascii_lowercase();
    let pre = spec.pre.unwrap_or("");
    let arch = spec.architecture.unwrap_or("");
    let set = |vocab: &mut Vocab, text: &str, bit: u32, on: bool| {
        if let Some(id) = vocab.id(text.as_bytes()) {
            let a = vocab.attr(id);
            vocab.set_attr(id, if on { a | bit } else { a & !bit });
        }
    };
    if ["jina-v2-de", "jina-v2-es", "jina-v2-code"]
        .iter()
        .any(|p| pre.contains(p))
        || ["nomic-bert-moe", "jina-bert-v3"]
            .iter()
            .any(|a| arch.contains(a))
    {
        set(vocab, "<mask>", attr::LSTRIP, true);
    } else if name.contains("phi-3") || name.contains("phi3") {
        for &id in specials {
            vocab.set_attr(id, vocab.attr(id) | attr::RSTRIP);
        }
        set(vocab, "</s>", attr::RSTRIP, true);
        for t in ["<unk>", "<s>", "<|endoftext|>"] {
            set(vocab, t, attr::RSTRIP, false);
        }
    } else if name.contains("modern-bert") {
        set(vocab, "[MASK]", attr::LSTRIP, true);
    }
}
