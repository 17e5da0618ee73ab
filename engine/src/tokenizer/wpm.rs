//! WordPiece (`tokenizer.ggml.model = bert`), as llama.cpp's `llm_tokenizer_wpm`: BERT-style
//! normalisation and word splitting, then per word a greedy longest match over the word with a
//! leading ▁ (llama.cpp's converter stores word-initial pieces with ▁ and continuations bare).
//! A word that cannot be covered completely becomes the unknown token.

use super::unicode::{decode_lossy, flags, nfd_first, push_utf8, to_lower, REPLACEMENT};
use super::vocab::Vocab;

/// BERT normaliser switches (`tokenizer.ggml.normalizer.*`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Normalizer {
    pub(crate) lowercase: bool,
    pub(crate) strip_accents: bool,
}

fn is_chinese_char(cp: u32) -> bool {
    matches!(cp,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F |
        0x2B740..=0x2B81F | 0x2B920..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// Splits normalised text into words: whitespace separates, punctuation, ASCII symbols and CJK
/// ideographs stand alone, control characters and U+0000 / U+FFFD vanish.
fn preprocess(text: &[u8], norm: Normalizer) -> Vec<Vec<u8>> {
    let mut words: Vec<Vec<u8>> = vec![Vec::new()];
    for mut cp in decode_lossy(text) {
        if norm.strip_accents {
            cp = nfd_first(cp);
        }
        let f = flags(cp);
        if f.is_whitespace() {
            if !words.last().is_some_and(|w| w.is_empty()) {
                words.push(Vec::new());
            }
            continue;
        }
        if cp == 0 || cp == REPLACEMENT || f.is_control() {
            continue;
        }
        if norm.strip_accents && f.is_accent_mark() {
            continue;
        }
        let out_cp = if norm.lowercase { to_lower(cp) } else { cp };
        if f.is_punctuation() || (cp < 0x7F && f.is_symbol()) || is_chinese_char(cp) {
            if !words.last().is_some_and(|w| w.is_empty()) {
                words.push(Vec::new());
            }
            push_utf8(words.last_mut().expect("never empty"), out_cp);
            words.push(Vec::new());
        } else {
            push_utf8(words.last_mut().expect("never empty"), out_cp);
        }
    }
    if words.last().is_some_and(|w| w.is_empty()) {
        words.pop();
    }
    words
}

/// Tokenizes one raw-text fragment, appending ids to `out`.
pub(crate) fn tokenize(
    vocab: &Vocab,
    text: &[u8],
    norm: Normalizer,
    unk: Option<u32>,
    out: &mut Vec<u32>,
) {
    let max_len = vocab.max_token_len();
    let mut word1 = Vec::new();
    for word in preprocess(text, norm) {
        if word.is_empty() {
            continue;
        }
        word1.clear();
        word1.extend_from_slice("\u{2581}".as_bytes());
        word1.extend_from_slice(&word);
        let n = word1.len();
        let before = out.len();
        let mut i = 0;
        while i < n {
            let mut matched = false;
            let mut j = n.min(i + max_len + 1);
            while j > i {
                if let Some(id) = vocab.id(&word1[i..j]) {
                    out.push(id);
                    matched = true;
                    i = j;
                    break;
                }
                j -= 1;
            }
            if !matched {
                out.truncate(before);
                break;
            }
        }
        if out.len() == before {
            if let Some(u) = unk {
                out.push(u);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_bert() {
        let norm = Normalizer {
            lowercase: true,
            strip_accents: true,
        };
        let w: Vec<String> = preprocess("Héllo, wörld!中文 a$b".as_bytes(), norm)
            .into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect();
        assert_eq!(w, ["hello", ",", "world", "!", "中", "文", "a", "$", "b"]);
    }

    #[test]
    fn greedy_longest_match_with_unk() {
        let toks: Vec<&[u8]> = vec![
            "[UNK]".as_bytes(),
            "▁un".as_bytes(),
            "aff".as_bytes(),
            "able".as_bytes(),
            "▁x".as_bytes(),
        ];
        let v = Vocab::new(toks.into_iter(), &[], &[]).unwrap();
        let norm = Normalizer {
            lowercase: true,
            strip_accents: false,
        };
        let mut out = Vec::new();
        tokenize(&v, b"Unaffable xy x", norm, Some(0), &mut out);
        assert_eq!(out, vec![1, 2, 3, 0, 4]);
    }
}
