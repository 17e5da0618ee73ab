//! SentencePiece unigram (`tokenizer.ggml.model = t5`: T5, XLM-RoBERTa-based embedding models),
//! as llama.cpp's `llm_tokenizer_ugm`: normalise with the precompiled character map (an
//! XOR-compressed double array of byte prefixes and their replacements), map spaces to ▁, then
//! Viterbi over the token scores, with an unknown-token penalty for characters no token covers.

use std::collections::HashSet;

use super::unicode::utf8_len;
use super::vocab::{attr, Vocab};

/// The unigram model's data besides the vocabulary.
pub(crate) struct UgmModel {
    /// XCDA nodes of the precompiled character map (empty: no normalisation map).
    xcda: Vec<u32>,
    /// NUL-terminated replacement strings the XCDA leaves point into.
    replacements: Vec<u8>,
    /// Score of the unknown token: the lowest normal score minus 10.
    unknown_score: f32,
    /// Every prefix of every user-defined token (llama.cpp's user-defined trie: text that
    /// follows any of its paths is passed through unnormalised).
    user_defined_prefixes: HashSet<Vec<u8>>,
    pub(crate) add_space_prefix: bool,
    remove_extra_whitespaces: bool,
}

/// Why a precompiled character map is unusable.
pub(crate) type CharsmapError = &'static str;

impl UgmModel {
    /// Builds the model; `charsmap` is `tokenizer.ggml.precompiled_charsmap` (may be empty).
    pub(crate) fn new(
        vocab: &Vocab,
        charsmap: &[u8],
        add_space_prefix: bool,
        remove_extra_whitespaces: bool,
    ) -> Result<UgmModel, CharsmapError> {
        let (mut xcda, mut replacements) = (Vec::new(), Vec::new());
        if !charsmap.is_empty() {
            if charsmap.len() < 4 {
                return Err("too small for its size header");
            }
            let blob =
                u32::from_le_bytes([charsmap[0], charsmap[1], charsmap[2], charsmap[3]]) as usize;
            if blob + 4 >= charsmap.len() {
                return Err("its XCDA size runs past its end");
            }
            xcda = charsmap[4..4 + blob / 4 * 4]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            replacements = charsmap[4 + blob..].to_vec();
        }
        let mut min_score = f32::MAX;
        let mut user_defined_prefixes = HashSet::new();
        for id in 0..vocab.len() as u32 {
            let a = vocab.attr(id);
            if a & attr::NORMAL != 0 {
                min_score = min_score.min(vocab.score(id));
            }
            if a & attr::USER_DEFINED != 0 {
                let t = vocab.text(id);
                for n in 1..=t.len() {
                    user_defined_prefixes.insert(t[..n].to_vec());
                }
            }
        }
        Ok(UgmModel {
            xcda,
            replacements,
            unknown_score: min_score - 10.0,
            user_defined_prefixes,
            add_space_prefix,
            remove_extra_whitespaces,
        })
    }

    /// Length of the longest prefix of `s` that is also a prefix of a user-defined token (as
    /// llama.cpp's `naive_trie::get_longest_prefix`, which does not require a whole token).
    fn user_defined_prefix(&self, s: &[u8]) -> usize {
        let mut n = 0;
        while n < s.len() && self.user_defined_prefixes.contains(&s[..n + 1]) {
            n += 1;
        }
        n
    }

    /// The longest prefix of `s` the character map replaces: (bytes consumed, replacement).
    fn charsmap_prefix(&self, s: &[u8]) -> Option<(usize, &[u8])> {
        let node = |i: usize| self.xcda.get(i).copied();
        let base = |n: u32| (n >> 10) << ((n & (1 << 9)) >> 6);
        let mut index = base(node(0)?) as usize;
        let mut best = None;
        for (k, &c) in s.iter().enumerate() {
            if c == 0 {
                break;
            }
            index ^= c as usize;
            let Some(n) = node(index) else { break };
            if n & ((1 << 31) | 0xFF) != c as u32 {
                break;
            }
            let leaf = (n >> 8) & 1 == 1;
            index ^= base(n) as usize;
            if leaf {
                let Some(v) = node(index) else { break };
                best = Some((k + 1, (v & ((1 << 31) - 1)) as usize));
            }
        }
        let (len, offset) = best?;
        let rest = self.replacements.get(offset..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some((len, &rest[..end]))
    }

    /// llama.cpp's `normalize`: character map, then spaces as ▁ (optionally merged, optionally
    /// one prepended).
    fn normalize(&self, input: &[u8]) -> Vec<u8> {
        const SPACE: &[u8] = "\u{2581}".as_bytes();
        let merge = self.remove_extra_whitespaces;
        let mut out = Vec::with_capacity(input.len() * 3);
        let (mut prepended, mut in_word) = (false, false);
        let mut offset = 0;
        while offset < input.len() {
            let rest = &input[offset..];
            let ud = if self.user_defined_prefixes.is_empty() {
                0
            } else {
                self.user_defined_prefix(rest)
            };
            let (consumed, piece): (usize, &[u8]) = if ud > 0 {
                (ud, &rest[..ud])
            } else if let Some((n, repl)) = self.charsmap_prefix(rest) {
                (n, repl)
            } else {
                let n = utf8_char_len(rest);
                if n > 0 {
                    (n, &rest[..n])
                } else {
                    (1, "\u{fffd}".as_bytes())
                }
            };
            for &c in piece {
                if c != b' ' {
                    if !in_word {
                        in_word = true;
                        if (self.add_space_prefix && !prepended) || merge {
                            out.extend_from_slice(SPACE);
                            prepended = true;
                        }
                    }
                    out.push(c);
                } else {
                    in_word = false;
                    if !merge {
                        out.extend_from_slice(SPACE);
                    }
                }
            }
            offset += consumed;
        }
        out
    }

    /// Tokenizes one raw-text fragment, appending ids to `out`. The unknown token is emitted
    /// as `unk` (nothing when the vocabulary has none).
    pub(crate) fn tokenize(
        &self,
        vocab: &Vocab,
        text: &[u8],
        unk: Option<u32>,
        out: &mut Vec<u32>,
    ) {
        let s = self.normalize(text);
        let n = s.len();
        if n == 0 {
            return;
        }
        let max_len = vocab.max_token_len();
        // Best (token, start, score) ending at each byte offset; `None` token = unknown.
        let mut best: Vec<(Option<u32>, usize, f64)> = vec![(None, 0, f64::MIN); n + 1];
        best[0] = (None, 0, 0.0);
        let mut offset = 0;
        while offset < n {
            let char_len = utf8_len(s[offset]).min(n - offset);
            let base = best[offset].2;
            let mut whole_char = false;
            for end in offset + 1..=n.min(offset + max_len) {
                let Some(id) = vocab.id(&s[offset..end]) else {
                    continue;
                };
                let a = vocab.attr(id);
                if a & (attr::NORMAL | attr::USER_DEFINED | attr::UNUSED) == 0 {
                    continue;
                }
                if end - offset == char_len {
                    whole_char = true;
                }
                let score = if a & attr::USER_DEFINED != 0 {
                    0.0
                } else {
                    vocab.score(id) as f64
                };
                if base + score > best[end].2 {
                    best[end] = (Some(id), offset, base + score);
                }
            }
            if !whole_char {
                let end = offset + char_len;
                let challenger = base + self.unknown_score as f64;
                if challenger > best[end].2 {
                    best[end] = (None, offset, challenger);
                }
            }
            offset += char_len;
        }
        // Walk back from the end; consecutive unknowns become one.
        let start = out.len();
        let mut at = n;
        let mut prev_unknown = false;
        loop {
            let (tok, from, _) = best[at];
            let is_unknown = tok.is_none() || tok == unk;
            if !(prev_unknown && is_unknown) {
                out.extend(tok.or(unk));
            }
            if from == 0 {
                break;
            }
            prev_unknown = is_unknown;
            at = from;
        }
        out[start..].reverse();
    }
}

/// Length of the valid UTF-8 character `s` starts with (llama.cpp's rules), 0 if invalid.
fn utf8_char_len(s: &[u8]) -> usize {
    let cont = |k: usize| s.get(k).is_some_and(|&b| b & 0xC0 == 0x80);
    match s[0] {
        b if b & 0x80 == 0 => 1,
        b if b & 0x40 == 0 => 0,
        b if b & 0x20 == 0 => usize::from(cont(1)) * 2,
        b if b & 0x10 == 0 => usize::from(cont(1) && cont(2)) * 3,
        b if b & 0x08 == 0 => usize::from(cont(1) && cont(2) && cont(3)) * 4,
        _ => 0,
    }
}
