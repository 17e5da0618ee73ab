//! Special tokens in text: before any tokenizer runs, llama.cpp cuts the text at every
//! occurrence of a special token (longest tokens first), so that `<start_of_turn>` becomes one
//! id instead of being spelled out. Control and unknown tokens take part only when the caller
//! asks to parse specials; user-defined tokens always do.

use super::vocab::{attr, Vocab};

/// A piece of the text to encode: raw bytes still to tokenize, or a token already decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// `text[start..end]` of the input.
    Raw(usize, usize),
    /// A special token.
    Token(u32),
}

/// The ids of control, user-defined and unknown tokens, longest text first (ties by id).
pub(crate) fn special_cache(vocab: &Vocab) -> Vec<u32> {
    let mask = attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN;
    let mut ids: Vec<u32> = (0..vocab.len() as u32)
        .filter(|&id| vocab.attr(id) & mask != 0)
        .collect();
    ids.sort_by(|&a, &b| {
        vocab
            .text(b)
            .len()
            .cmp(&vocab.text(a).len())
            .then(a.cmp(&b))
    });
    ids
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    let first = needle[0];
    let last_start = hay.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        match hay[i..=last_start].iter().position(|&b| b == first) {
            None => return None,
            Some(p) => {
                let at = i + p;
                if &hay[at..at + needle.len()] == needle {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

/// Which bytes and byte pairs occur in a text: a cheap filter that rules out most special
/// tokens before any substring search.
struct Bigrams {
    bytes: [bool; 256],
    pairs: Vec<u64>,
}

impl Bigrams {
    fn of(text: &[u8]) -> Bigrams {
        let mut b = Bigrams {
            bytes: [false; 256],
            pairs: vec![0; 65536 / 64],
        };
        for &c in text {
            b.bytes[c as usize] = true;
        }
        for w in text.windows(2) {
            let k = (w[0] as usize) << 8 | w[1] as usize;
            b.pairs[k / 64] |= 1 << (k % 64);
        }
        b
    }

    fn may_contain(&self, tok: &[u8]) -> bool {
        tok.iter().all(|&c| self.bytes[c as usize])
            && tok.windows(2).all(|w| {
                let k = (w[0] as usize) << 8 | w[1] as usize;
                self.pairs[k / 64] & (1 << (k % 64)) != 0
            })
    }
}

/// Splits `text` into fragments at special tokens, as llama.cpp's `tokenizer_st_partition`.
pub(crate) fn partition(
    vocab: &Vocab,
    cache: &[u32],
    text: &[u8],
    parse_special: bool,
) -> Vec<Fragment> {
    let mut frags = Vec::new();
    if text.is_empty() {
        return frags;
    }
    frags.push(Fragment::Raw(0, text.len()));
    let present = Bigrams::of(text);
    for &id in cache {
        let a = vocab.attr(id);
        if !parse_special && a & (attr::CONTROL | attr::UNKNOWN) != 0 {
            continue;
        }
        let tok = vocab.text(id);
        if tok.is_empty()
            || !present.may_contain(tok)
            || !frags
                .iter()
                .any(|f| matches!(f, Fragment::Raw(s, e) if find(&text[*s..*e], tok).is_some()))
        {
            continue;
        }
        let mut next = Vec::with_capacity(frags.len() + 2);
        for f in frags {
            let Fragment::Raw(mut start, end) = f else {
                next.push(f);
                continue;
            };
            while let Some(p) = find(&text[start..end], tok) {
                let at = start + p;
                let mut left_end = at;
                if a & attr::LSTRIP != 0 {
                    while left_end > start && text[left_end - 1].is_ascii_whitespace_c() {
                        left_end -= 1;
                    }
                }
                if left_end > start {
                    next.push(Fragment::Raw(start, left_end));
                }
                next.push(Fragment::Token(id));
                start = at + tok.len();
                if a & attr::RSTRIP != 0 {
                    while start < end && text[start].is_ascii_whitespace_c() {
                        start += 1;
                    }
                }
            }
            if start < end {
                next.push(Fragment::Raw(start, end));
            }
        }
        frags = next;
    }
    frags
}

/// C's `isspace` in the "C" locale (which, unlike Rust's `is_ascii_whitespace`, includes \v).
trait CSpace {
    fn is_ascii_whitespace_c(&self) -> bool;
}

impl CSpace for u8 {
    fn is_ascii_whitespace_c(&self) -> bool {
        matches!(self, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocab {
        let toks: Vec<&[u8]> = vec![b"<s>", b"<u>", b"a", b"<long>"];
        let attrs = [
            attr::CONTROL,
            attr::USER_DEFINED,
            attr::NORMAL,
            attr::CONTROL | attr::RSTRIP,
        ];
        Vocab::new(toks.into_iter(), &[], &attrs).unwrap()
    }

    #[test]
    fn cuts_at_specials() {
        let v = vocab();
        let cache = special_cache(&v);
        assert_eq!(cache, vec![3, 0, 1]);
        let text = b"x<s>y<u><long>  z";
        assert_eq!(
            partition(&v, &cache, text, true),
            vec![
                Fragment::Raw(0, 1),
                Fragment::Token(0),
                Fragment::Raw(4, 5),
                Fragment::Token(1),
                Fragment::Token(3),
                Fragment::Raw(16, 17)
            ]
        );
        // Without parse_special only user-defined tokens are cut.
        assert_eq!(
            partition(&v, &cache, text, false),
            vec![
                Fragment::Raw(0, 5),
                Fragment::Token(1),
                Fragment::Raw(8, 17)
            ]
        );
    }
}
