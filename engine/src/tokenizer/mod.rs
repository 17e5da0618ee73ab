//! Tokenizers read from GGUF metadata, byte-exact with llama.cpp.
//!
//! - `llama` (SentencePiece vocabularies: Gemma, TinyLlama, Phi-3): llama.cpp's greedy
//!   score-merge with `<0xXX>` byte fallback (`spm.rs`).
//! - `gpt2` (byte-level BPE: Llama 3, Qwen2, SmolLM, GPT-2, OLMo, ...): the pre-tokenizer named by
//!   `tokenizer.ggml.pre`, GPT-2's byte alphabet, merges by rank (`bpe.rs`, [`pretokenize`]).
//! - `gemma4` (BPE over raw UTF-8 with ▁ for spaces and `<0xXX>` byte fallback, `bpe.rs`).
//! - `bert` (WordPiece): BERT normalisation and greedy longest match (`wpm.rs`).
//! - `t5` (SentencePiece unigram: T5, XLM-RoBERTa): precompiled character map, Viterbi
//!   (`ugm.rs`).
//!
//! ```no_run
//! use nanorun::formats::Gguf;
//! use nanorun::tokenizer::{StreamDecoder, Tokenizer};
//!
//! let gguf = Gguf::open("models/gemma-3-270m-q4_k_m.gguf")?;
//! let tok = Tokenizer::from_gguf(&gguf)?;
//! // As llama.cpp's `llama_tokenize(text, add_special = true, parse_special = true)`.
//! let ids = tok.encode("<start_of_turn>user\nHi<end_of_turn>\n", true, true);
//! // Streaming: pieces may end inside a UTF-8 character; the decoder holds such bytes back.
//! let mut stream = StreamDecoder::new();
//! for &id in &ids {
//!     if tok.is_eog(id) {
//!         break;
//!     }
//!     print!("{}", stream.push(tok.token_to_piece(id, false)?));
//! }
//! print!("{}", stream.finish());
//! assert_eq!(tok.decode(&ids[1..], true)?, "<start_of_turn>user\nHi<end_of_turn>\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Special tokens (control, user-defined) are cut out of the text first (`special.rs`); decoding
//! goes through per-token pieces so that a streamer can hold back incomplete UTF-8
//! ([`StreamDecoder`]).
//!
//! Decoding an id outside the vocabulary is an error ([`TokenizerError::TokenOutOfRange`]);
//! nothing here panics on user input.
//!
//! Where llama.cpp's behaviour is undefined or fatal, this module chooses:
//! - an SPM byte with no `<0xXX>` token becomes the unknown token (dropped if there is none);
//!   llama.cpp aborts;
//! - the end-of-turn token found by text is the first of llama.cpp's candidate list present
//!   (llama.cpp takes whichever its hash map yields first); the end-of-generation set is the same;
//! - special tokens of equal length are matched in id order (llama.cpp's sort is unstable);
//! - Unicode categories are Unicode 15.1's, as llama.cpp's tables (`gen_unicode_tables.py`).
//!
//! Not implemented (an error at load): `rwkv`, `plamo2`, `whitespace` and
//! `hybriddna` vocabularies and the rarer BPE pre-tokenizers (`deepseek-llm`, `spark2_5`,
//! `chameleon`, `kimi-k2`, `superbpe`, `afmoe`, `exaone-moe`, `jais-2`, `laguna`).
//!
//! Verification: besides llama.cpp's suites and goldens (the tests), the tokenizers were run
//! against llama.cpp itself (its vendored copy in llama-cpp-python 0.3.36, through
//! `llama_tokenize` / `llama_detokenize` / `llama_token_to_piece`) on ~9000 random texts per
//! vocabulary (every byte, mixed scripts, combining marks, odd whitespace, invalid UTF-8,
//! special tokens, BOS on and off) and every token's piece, for all the vocabularies in
//! `tests/data/vocab` and `../shared/vocab`, Gemma 3, the fixtures' models, a synthetic Gemma 4
//! vocabulary and GPT-2's vocabulary under each implemented pre-tokenizer: all identical.
//! `tools/README.md` says how to repeat that.

mod bpe;
mod decode;
mod load;
pub mod pretokenize;
mod special;
mod spm;
mod ugm;
mod unicode;
mod unicode_tables;
pub mod vocab;
mod wpm;

pub use decode::StreamDecoder;
pub use load::TokenizerSpec;
pub use pretokenize::PreTokenizer;

use special::Fragment;
use vocab::{attr, Vocab};

/// Why a tokenizer could not be built or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A metadata key could not be read (wrong type, bad UTF-8, ...); the error names the key.
    #[error(transparent)]
    Metadata(#[from] nanorun_formats::GgufError),
    /// A required key is absent.
    #[error("GGUF metadata key '{key}' is missing")]
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// A key is present but its value cannot be used.
    #[error("GGUF metadata key '{key}': {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `tokenizer.ggml.model` names a tokenizer this crate does not implement.
    #[error(
        "unsupported tokenizer model '{0}' (tokenizer.ggml.model); supported: llama, gpt2, gemma4, bert, t5"
    )]
    UnsupportedModel(String),
    /// `tokenizer.ggml.pre` names a BPE pre-tokenizer this crate does not implement.
    #[error("unsupported BPE pre-tokenizer '{0}' (tokenizer.ggml.pre)")]
    UnsupportedPre(String),
    /// Two tokens have the same text (`tokenizer.ggml.tokens`).
    #[error("duplicate token in tokenizer.ggml.tokens: '{text}' has ids {first} and {second}")]
    DuplicateToken {
        /// The text.
        text: String,
        /// The first id.
        first: u32,
        /// The second id.
        second: u32,
    },
    /// A token id outside the vocabulary was given to decode.
    #[error("token id {id} is out of range (the vocabulary has {n_vocab} tokens)")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// The vocabulary size.
        n_vocab: usize,
    },
}

/// Which algorithm a tokenizer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// SentencePiece vocabulary, llama.cpp's greedy merge (`llama`).
    Spm,
    /// Byte-level BPE (`gpt2`).
    Bpe,
    /// WordPiece (`bert`).
    Wpm,
    /// SentencePiece unigram (`t5`).
    Ugm,
}

enum Model {
    Spm,
    Bpe(Box<bpe::BpeModel>),
    Wpm(wpm::Normalizer),
    Ugm(Box<ugm::UgmModel>),
}

/// What `load` hands to [`Tokenizer::assemble`].
struct Parts {
    vocab: Vocab,
    model: Model,
    specials: Vec<u32>,
    eog: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    unk: Option<u32>,
    sep: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_sep: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
}

/// A tokenizer: text ↔ token ids, as llama.cpp's `llama_vocab`.
pub struct Tokenizer {
    p: Parts,
    /// Each token's piece as llama.cpp renders it with `special = true`, back to back.
    pieces: Vec<u8>,
    piece_offsets: Vec<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind())
            .field("n_vocab", &self.n_vocab())
            .field("bos", &self.p.bos)
            .field("eos", &self.p.eos)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    fn assemble(p: Parts) -> Tokenizer {
        let (pieces, piece_offsets) = decode::build_pieces(&p.vocab, &p.model);
        Tokenizer {
            p,
            pieces,
            piece_offsets,
        }
    }

    /// Which algorithm this tokenizer runs.
    pub fn kind(&self) -> TokenizerKind {
        match self.p.model {
            Model::Spm => TokenizerKind::Spm,
            Model::Bpe(_) => TokenizerKind::Bpe,
            Model::Wpm(_) => TokenizerKind::Wpm,
            Model::Ugm(_) => TokenizerKind::Ugm,
        }
    }

    /// Number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.p.vocab.len()
    }

    /// The beginning-of-sequence token (for BERT: `[CLS]`).
    pub fn bos(&self) -> Option<u32> {
        self.p.bos
    }

    /// The end-of-sequence token.
    pub fn eos(&self) -> Option<u32> {
        self.p.eos
    }

    /// The end-of-turn token (`tokenizer.ggml.eot_token_id`, or found by text such as
    /// `<end_of_turn>`, `<|im_end|>`, `<|eot_id|>`).
    pub fn eot(&self) -> Option<u32> {
        self.p.eot
    }

    /// The unknown token.
    pub fn unk(&self) -> Option<u32> {
        self.p.unk
    }

    /// The separator token (BERT's `[SEP]`).
    pub fn sep(&self) -> Option<u32> {
        self.p.sep
    }

    /// The padding token.
    pub fn pad(&self) -> Option<u32> {
        self.p.pad
    }

    /// Whether `encode(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.p.add_bos
    }

    /// Whether `encode(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.p.add_eos
    }

    /// Whether the model wants a separator between paired inputs (rerankers; BERT), as
    /// llama.cpp's `llama_vocab_get_add_sep`. `encode` itself never adds it except for BERT's
    /// closing `[SEP]`.
    pub fn add_sep(&self) -> bool {
        self.p.add_sep
    }

    /// Whether SPM prepends a space to text at the start or after a special token.
    pub fn add_space_prefix(&self) -> bool {
        self.p.add_space_prefix
    }

    /// Whether `id` ends generation: EOS, EOT, EOM and the tokens llama.cpp recognises by text.
    pub fn is_eog(&self, id: u32) -> bool {
        self.p.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation ids, sorted.
    pub fn eog_ids(&self) -> &[u32] {
        &self.p.eog
    }

    /// Whether `id` is a control token (rendered only when decoding with `special = true`).
    pub fn is_control(&self, id: u32) -> bool {
        (id as usize) < self.n_vocab() && self.p.vocab.attr(id) & attr::CONTROL != 0
    }

    /// The raw text of token `id` as stored in the vocabulary.
    pub fn token_text(&self, id: u32) -> Result<&[u8], TokenizerError> {
        self.check(id)?;
        Ok(self.p.vocab.text(id))
    }

    /// The id of the token whose vocabulary text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.p.vocab.id(text.as_bytes())
    }

    fn check(&self, id: u32) -> Result<(), TokenizerError> {
        if (id as usize) < self.n_vocab() {
            Ok(())
        } else {
            Err(TokenizerError::TokenOutOfRange {
                id,
                n_vocab: self.n_vocab(),
            })
        }
    }

    /// Tokenizes `text` as llama.cpp's `llama_tokenize(text, add_special, parse_special)`:
    /// `add_special` adds BOS/EOS as the metadata says (BERT: `[CLS]` … `[SEP]`);
    /// `parse_special` lets control tokens written in the text (`<start_of_turn>`) become
    /// their ids.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        self.encode_bytes(text.as_bytes(), add_special, parse_special)
    }

    /// [`Tokenizer::encode`] for arbitrary bytes (invalid UTF-8 is handled as llama.cpp does).
    pub fn encode_bytes(&self, text: &[u8], add_special: bool, parse_special: bool) -> Vec<u32> {
        let p = &self.p;
        let frags = special::partition(&p.vocab, &p.specials, text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        match &p.model {
            Model::Spm => {
                if add_special && p.add_bos {
                    out.extend(p.bos);
                }
                let mut prev_special = true;
                let mut buf = Vec::new();
                for f in frags {
                    match f {
                        Fragment::Raw(s, e) => {
                            buf.clear();
                            if p.add_space_prefix && prev_special {
                                buf.extend_from_slice("\u{2581}".as_bytes());
                            }
                            buf.extend_from_slice(&bpe::escape_spaces(&text[s..e]));
                            spm::tokenize(&p.vocab, &buf, p.unk, &mut out);
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
                if add_special && p.add_eos {
                    out.extend(p.eos);
                }
            }
            Model::Bpe(bpe) => {
                if add_special && p.add_bos {
                    out.extend(p.bos);
                }
                for f in frags {
                    match f {
                        Fragment::Raw(s, e) => bpe.tokenize(&p.vocab, &text[s..e], &mut out),
                        Fragment::Token(id) => out.push(id),
                    }
                }
                if add_special && p.add_eos {
                    out.extend(p.eos);
                }
            }
            Model::Ugm(ugm) => {
                if add_special && p.add_bos {
                    out.extend(p.bos);
                }
                for f in frags {
                    match f {
                        Fragment::Raw(s, e) => ugm.tokenize(&p.vocab, &text[s..e], p.unk, &mut out),
                        Fragment::Token(id) => out.push(id),
                    }
                }
                if add_special && p.add_eos {
                    out.extend(p.eos);
                }
            }
            Model::Wpm(norm) => {
                if add_special {
                    out.extend(p.bos);
                }
                for f in frags {
                    match f {
                        Fragment::Raw(s, e) => {
                            wpm::tokenize(&p.vocab, &text[s..e], *norm, p.unk, &mut out)
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
                if add_special {
                    out.extend(p.sep);
                }
            }
        }
        out
    }

    /// The bytes token `id` stands for, as llama.cpp's `llama_token_to_piece(id, special)`:
    /// byte tokens give their byte, ▁ becomes a space (SPM), GPT-2's alphabet maps back to
    /// bytes (BPE); control and unknown tokens give their text when `special` and nothing
    /// otherwise. A piece may end in the middle of a UTF-8 character: see [`StreamDecoder`].
    pub fn token_to_piece(&self, id: u32, special: bool) -> Result<&[u8], TokenizerError> {
        self.check(id)?;
        if !special && self.p.vocab.attr(id) & (attr::UNKNOWN | attr::CONTROL) != 0 {
            return Ok(&[]);
        }
        let i = id as usize;
        Ok(&self.pieces[self.piece_offsets[i] as usize..self.piece_offsets[i + 1] as usize])
    }

    /// Detokenizes to bytes as llama.cpp's `llama_detokenize(ids, remove_special = false,
    /// unparse_special = special)`: pieces concatenated, the SPM prefix space of the first
    /// token removed, and (for BPE and BERT vocabularies) spaces before punctuation cleaned up.
    pub fn decode_bytes(&self, ids: &[u32], special: bool) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::new();
        let mut remove_space = self.p.add_space_prefix;
        for &id in ids {
            let mut piece = self.token_to_piece(id, special)?;
            if remove_space && piece.first() == Some(&b' ') {
                piece = &piece[1..];
            }
            remove_space = false;
            out.extend_from_slice(piece);
        }
        if self.p.clean_spaces {
            decode::clean_spaces(&mut out);
        }
        Ok(out)
    }

    /// [`Tokenizer::decode_bytes`] as a string (invalid UTF-8 becomes U+FFFD).
    pub fn decode(&self, ids: &[u32], special: bool) -> Result<String, TokenizerError> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids, special)?).into_owned())
    }
}

#[cfg(test)]
mod tests;
