//! Byte-level BPE (`tokenizer.ggml.model = gpt2`), as llama.cpp's `llm_tokenizer_bpe_session`:
//! pre-tokenize into words, map each word's UTF-8 bytes to GPT-2's unicode alphabet, then merge
//! adjacent symbols by lowest merge rank (ties: leftmost) until no merge applies.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::pretokenize::{split, PreTokenizer};
use super::unicode::{decode_lossy, push_utf8, utf8_len, ByteAlphabet};
use super::vocab::{Merges, Vocab};

/// What BPE needs besides the vocabulary.
pub(crate) struct BpeModel {
    pub(crate) merges: Merges,
    pub(crate) pre: PreTokenizer,
    /// A word that is itself a token is emitted whole (Llama 3's `ignore_merges`).
    pub(crate) ignore_merges: bool,
    /// Words go through GPT-2's byte alphabet (false: raw UTF-8 with `<0xXX>` byte fallback,
    /// as Gemma 4's SPM-style BPE).
    pub(crate) byte_encode: bool,
    /// Spaces become ▁ before splitting (Gemma 4).
    pub(crate) escape_spaces: bool,
    /// A word of newlines only that is a token is emitted whole (llama.cpp's Gemma 4 fix).
    pub(crate) newline_words: bool,
    pub(crate) alphabet: ByteAlphabet,
}

#[derive(Clone, Copy)]
struct Symbol {
    next: i32,
    prev: i32,
    start: usize,
    len: usize,
}

impl BpeModel {
    /// Tokenizes one raw-text fragment, appending ids to `out`.
    pub(crate) fn tokenize(&self, vocab: &Vocab, text: &[u8], out: &mut Vec<u32>) {
        let escaped;
        let text = if self.escape_spaces {
            escaped = escape_spaces(text);
            &escaped
        } else {
            text
        };
        let cpts = decode_lossy(text);
        let mut word = Vec::new();
        let mut utf8 = Vec::new();
        let mut scratch = Vec::new();
        for (a, b) in split(self.pre, &cpts) {
            utf8.clear();
            for &cp in &cpts[a..b] {
                push_utf8(&mut utf8, cp);
            }
            if !self.byte_encode {
                self.tokenize_word(vocab, &utf8, &mut scratch, out);
                continue;
            }
            word.clear();
            for &byte in &utf8 {
                self.alphabet.encode_byte(&mut word, byte);
            }
            self.tokenize_word(vocab, &word, &mut scratch, out);
        }
    }

    fn tokenize_word(&self, vocab: &Vocab, word: &[u8], scratch: &mut Vec<u8>, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        let whole = self.ignore_merges || (self.newline_words && word.iter().all(|&b| b == b'\n'));
        if whole {
            if let Some(id) = vocab.id(word) {
                out.push(id);
                return;
            }
        }
        let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
        let mut offs = 0;
        while offs < word.len() {
            let len = utf8_len(word[offs]).min(word.len() - offs);
            let idx = symbols.len() as i32;
            symbols.push(Symbol {
                prev: idx - 1,
                next: if offs + len == word.len() {
                    -1
                } else {
                    idx + 1
                },
                start: offs,
                len,
            });
            offs += len;
        }

        // (rank, left, right, size), popped smallest first.
        let mut queue: BinaryHeap<Reverse<(u32, i32, i32, usize)>> = BinaryHeap::new();
        let add = |symbols: &[Symbol],
                   queue: &mut BinaryHeap<_>,
                   scratch: &mut Vec<u8>,
                   left: i32,
                   right: i32| {
            if left < 0 || right < 0 {
                return;
            }
            let (l, r) = (symbols[left as usize], symbols[right as usize]);
            let lt = &word[l.start..l.start + l.len];
            let rt = &word[r.start..r.start + r.len];
            if let Some(rank) = self.merges.rank(lt, rt, scratch) {
                queue.push(Reverse((rank, left, right, l.len + r.len)));
            }
        };
        for i in 1..symbols.len() as i32 {
            add(&symbols, &mut queue, scratch, i - 1, i);
        }
        while let Some(Reverse((_, left, right, size))) = queue.pop() {
            let (l, r) = (symbols[left as usize], symbols[right as usize]);
            if l.len == 0 || r.len == 0 || l.len + r.len != size {
                continue; // outdated
            }
            symbols[left as usize].len += r.len;
            symbols[right as usize].len = 0;
            symbols[left as usize].next = r.next;
            if r.next >= 0 {
                symbols[r.next as usize].prev = left;
            }
            add(&symbols, &mut queue, scratch, l.prev, left);
            add(&symbols, &mut queue, scratch, left, r.next);
        }

        for s in symbols.iter().filter(|s| s.len > 0) {
            let piece = &word[s.start..s.start + s.len];
            match vocab.id(piece) {
                Some(id) => out.push(id),
                None => {
                    // llama.cpp looks each byte up (as a one-byte token, or `<0xXX>` without
                    // byte encoding) and drops misses.
                    for &b in piece {
                        let id = if self.byte_encode {
                            vocab.id(&[b])
                        } else {
                            vocab.id(format!("<0x{b:02X}>").as_bytes())
                        };
                        out.extend(id);
                    }
                }
            }
        }
    }
}

/// Spaces replaced by ▁ (U+2581), as llama.cpp's `llama_escape_whitespace`.
pub(crate) fn escape_spaces(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 8);
    for &b in text {
        if b == b' ' {
            out.extend_from_slice("\u{2581}".as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_by_rank() {
        let toks: Vec<&[u8]> = vec![
            b"a",
            b"b",
            b"c",
            b"ab",
            b"bc",
            b"abc",
            "\u{120}".as_bytes(),
            "\u{120}a".as_bytes(),
        ];
        let vocab = Vocab::new(toks.into_iter(), &[], &[]).unwrap();
        let merges: Vec<&[u8]> = vec![b"b c", b"a b", b"a bc", "\u{120} a".as_bytes()];
        let m = BpeModel {
            merges: Merges::new(merges.into_iter()),
            pre: PreTokenizer::Gpt2,
            ignore_merges: false,
            byte_encode: true,
            escape_spaces: false,
            newline_words: false,
            alphabet: ByteAlphabet::new(),
        };
        let mut out = Vec::new();
        m.tokenize(&vocab, b"abc ab", &mut out);
        // "abc": b+c first (rank 0), then a+bc; " ab": space+a (rank 3) vs a+b (rank 1) -> a+b.
        assert_eq!(out, vec![5, 6, 3]);
    }
}
