//! llama.cpp's SPM tokenizer (`tokenizer.ggml.model = llama`): not SentencePiece's unigram
//! Viterbi but a greedy merge. The text is split into UTF-8 characters; the adjacent pair whose
//! concatenation is a vocabulary token with the highest score is merged (ties: leftmost pair),
//! repeatedly; pieces that are not tokens fall back to `<0xXX>` byte tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::unicode::utf8_len;
use super::vocab::Vocab;

#[derive(Clone, Copy)]
struct Symbol {
    prev: i32,
    next: i32,
    start: usize,
    len: usize,
}

struct Bigram {
    left: i32,
    right: i32,
    score: f32,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// The byte-fallback token for byte `b`: `<0xXX>`, else the one-byte token, else `None`.
pub(crate) fn byte_token(vocab: &Vocab, b: u8) -> Option<u32> {
    let hex = format!("<0x{b:02X}>");
    vocab.id(hex.as_bytes()).or_else(|| vocab.id(&[b]))
}

/// Tokenizes `text` (spaces already escaped to ▁) and appends the ids to `out`. Bytes with no
/// byte-fallback token are emitted as `unk` when there is one and dropped otherwise (llama.cpp
/// aborts there).
pub(crate) fn tokenize(vocab: &Vocab, text: &[u8], unk: Option<u32>, out: &mut Vec<u32>) {
    if text.is_empty() {
        return;
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    let mut offs = 0;
    while offs < text.len() {
        let len = utf8_len(text[offs]).min(text.len() - offs);
        let idx = symbols.len() as i32;
        symbols.push(Symbol {
            prev: idx - 1,
            next: if offs + len == text.len() {
                -1
            } else {
                idx + 1
            },
            start: offs,
            len,
        });
        offs += len;
    }

    let mut queue = BinaryHeap::with_capacity(symbols.len());
    let try_add = |symbols: &[Symbol], queue: &mut BinaryHeap<Bigram>, left: i32, right: i32| {
        if left < 0 || right < 0 {
            return;
        }
        let (l, r) = (symbols[left as usize], symbols[right as usize]);
        let piece = &text[l.start..l.start + l.len + r.len];
        if let Some(id) = vocab.id(piece) {
            queue.push(Bigram {
                left,
                right,
                score: vocab.score(id),
                size: piece.len(),
            });
        }
    };
    for i in 1..symbols.len() as i32 {
        try_add(&symbols, &mut queue, i - 1, i);
    }

    while let Some(b) = queue.pop() {
        let (l, r) = (symbols[b.left as usize], symbols[b.right as usize]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue; // stale: one side was merged since
        }
        symbols[b.left as usize].len += r.len;
        symbols[b.right as usize].len = 0;
        symbols[b.left as usize].next = r.next;
        if r.next >= 0 {
            symbols[r.next as usize].prev = b.left;
        }
        try_add(&symbols, &mut queue, l.prev, b.left);
        try_add(&symbols, &mut queue, b.left, r.next);
    }

    let mut i = 0i32;
    while i != -1 {
        let s = symbols[i as usize];
        let piece = &text[s.start..s.start + s.len];
        match vocab.id(piece) {
            Some(id) => out.push(id),
            None => {
                for &byte in piece {
                    if let Some(id) = byte_token(vocab, byte).or(unk) {
                        out.push(id);
                    }
                }
            }
        }
        i = s.next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[(&str, f32)]) -> Vocab {
        let texts: Vec<&[u8]> = tokens.iter().map(|t| t.0.as_bytes()).collect();
        let scores: Vec<f32> = tokens.iter().map(|t| t.1).collect();
        Vocab::new(texts.into_iter(), &scores, &[]).unwrap()
    }

    fn run(v: &Vocab, s: &str) -> Vec<u32> {
        let mut out = Vec::new();
        tokenize(v, s.as_bytes(), None, &mut out);
        out
    }

    #[test]
    fn merges_highest_score_first() {
        // "abc": "ab" (score -1) beats "bc" (score -2); "abc" is then reachable.
        let v = vocab(&[
            ("a", -10.0),
            ("b", -10.0),
            ("c", -10.0),
            ("ab", -1.0),
            ("bc", -2.0),
            ("abc", -3.0),
        ]);
        assert_eq!(run(&v, "abc"), vec![5]);
        let v = vocab(&[
            ("a", -10.0),
            ("b", -10.0),
            ("c", -10.0),
            ("ab", -2.0),
            ("bc", -1.0),
        ]);
        assert_eq!(run(&v, "abc"), vec![0, 4]);
    }

    #[test]
    fn ties_go_to_the_leftmost_pair() {
        let v = vocab(&[("a", 0.0), ("aa", -1.0)]);
        assert_eq!(run(&v, "aaa"), vec![1, 0]);
    }

    #[test]
    fn byte_fallback() {
        let mut toks: Vec<(String, f32)> =
            (0..256).map(|b| (format!("<0x{b:02X}>"), 0.0)).collect();
        toks.push(("a".into(), 0.0));
        let refs: Vec<(&str, f32)> = toks.iter().map(|(s, f)| (s.as_str(), *f)).collect();
        let v = vocab(&refs);
        assert_eq!(run(&v, "aé"), vec![256, 0xC3, 0xA9]);
    }
}
