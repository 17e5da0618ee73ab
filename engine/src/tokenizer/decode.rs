//! Ids back to bytes: the per-token piece table, llama.cpp's `clean_up_tokenization_spaces`
//! pass, and a streaming UTF-8 assembler.

use super::unicode::{decode_lossy, ByteAlphabet};
use super::vocab::{attr, Vocab};
use super::Model;

/// Parses the `XX` of a `<0xXX>` byte token as C's `strtol(text.substr(3, 2), 16)` does.
fn byte_of(text: &[u8]) -> u8 {
    let mut v = 0u8;
    for &c in text.iter().skip(3).take(2) {
        match (c as char).to_digit(16) {
            Some(d) => v = v.wrapping_mul(16).wrapping_add(d as u8),
            None => break,
        }
    }
    v
}

/// Appends token `id`'s piece as llama.cpp renders it with `special = true`.
fn push_piece(out: &mut Vec<u8>, vocab: &Vocab, model: &Model, alphabet: &ByteAlphabet, id: u32) {
    let a = vocab.attr(id);
    let text = vocab.text(id);
    if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
        out.extend_from_slice(text);
    } else if a & attr::NORMAL != 0 {
        match model {
            Model::Bpe(bpe) if !bpe.escape_spaces => push_byte_level(out, alphabet, text),
            _ => {
                let mut i = 0;
                while i < text.len() {
                    if text[i..].starts_with("\u{2581}".as_bytes()) {
                        out.push(b' ');
                        i += 3;
                    } else {
                        out.push(text[i]);
                        i += 1;
                    }
                }
            }
        }
    } else if a & attr::BYTE != 0 {
        out.push(byte_of(text));
    }
}

/// GPT-2's alphabet back to bytes; a character outside it becomes llama.cpp's
/// `[UNK_BYTE_0x..<text>]` marker.
fn push_byte_level(out: &mut Vec<u8>, alphabet: &ByteAlphabet, text: &[u8]) {
    for cp in decode_lossy(text) {
        match alphabet.decode_cp(cp) {
            Some(b) => out.push(b),
            None => {
                let mut utf8 = Vec::new();
                super::unicode::push_utf8(&mut utf8, cp);
                out.extend_from_slice(b"[UNK_BYTE_0x");
                for b in utf8 {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text);
                out.push(b']');
            }
        }
    }
}

/// Every token's piece, back to back, and the offsets (`n_vocab + 1` of them).
pub(crate) fn build_pieces(vocab: &Vocab, model: &Model) -> (Vec<u8>, Vec<u32>) {
    let alphabet = ByteAlphabet::new();
    let mut pieces = Vec::with_capacity(vocab.len() * 6);
    let mut offsets = Vec::with_capacity(vocab.len() + 1);
    offsets.push(0);
    for id in 0..vocab.len() as u32 {
        push_piece(&mut pieces, vocab, model, &alphabet, id);
        offsets.push(pieces.len() as u32);
    }
    (pieces, offsets)
}

/// llama.cpp's three clean-up passes over detokenized text: drop the space before `? ! . ,`,
/// collapse ` ' ` to `'`, and drop the space before `'s 'm 're 've`.
pub(crate) fn clean_spaces(t: &mut Vec<u8>) {
    // Pass 1.
    let n = t.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
    // Pass 2 (in place, as llama.cpp: the space after the apostrophe is overwritten by NUL).
    let n = t.len();
    let mut total = usize::from(n > 0);
    let mut i = 1;
    while i < n {
        let x = t[i];
        if x == b'\'' && i + 1 < n && t[i - 1] == b' ' && t[i + 1] == b' ' {
            total -= 1;
            i += 1;
            t[i] = 0;
        }
        t[total] = x;
        total += 1;
        i += 1;
    }
    t.truncate(total);
    // Pass 3.
    let n = t.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = t[i + 1];
            let short = x1 == b's' || x1 == b'm';
            let long = i + 2 < n && (x1 == b'r' || x1 == b'v') && t[i + 2] == b'e';
            if short || long {
                total -= 1;
            }
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
}

/// Assembles streamed token pieces into text without ever splitting a UTF-8 character:
/// bytes of an incomplete trailing sequence are held back until the next piece completes them.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

/// Length of the longest prefix of `b` that does not end inside an incomplete (but so far
/// valid) UTF-8 sequence.
fn complete_prefix(b: &[u8]) -> usize {
    let n = b.len();
    // An incomplete sequence is at most 3 bytes long: look back that far for a lead byte.
    for back in 1..=n.min(3) {
        let lead = b[n - back];
        if lead & 0xC0 == 0x80 {
            continue; // continuation byte: keep looking for its lead
        }
        let need = match lead {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return n,
        };
        return if back < need
            && std::str::from_utf8(&b[n - back..])
                .err()
                .is_some_and(|e| e.error_len().is_none())
        {
            n - back
        } else {
            n
        };
    }
    n
}

impl StreamDecoder {
    /// A decoder with nothing pending.
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Adds a piece; returns the text that is now complete (invalid bytes become U+FFFD).
    pub fn push(&mut self, piece: &[u8]) -> String {
        self.pending.extend_from_slice(piece);
        let k = complete_prefix(&self.pending);
        let text = String::from_utf8_lossy(&self.pending[..k]).into_owned();
        self.pending.drain(..k);
        text
    }

    /// Returns whatever is still held back (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }

    /// True when bytes are held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_spaces_like_llama_cpp() {
        let mut t = b"Hello , world ! it 's I 'm we 're ' x".to_vec();
        clean_spaces(&mut t);
        assert_eq!(
            String::from_utf8(t).unwrap(),
            "Hello, world! it's I'm we're'x"
        );
    }

    #[test]
    fn stream_decoder_holds_back_partial_characters() {
        let mut d = StreamDecoder::new();
        let e = "é€😀".as_bytes();
        assert_eq!(d.push(&e[..1]), "");
        assert_eq!(d.push(&e[1..3]), "é");
        assert_eq!(d.push(&e[3..6]), "€");
        assert!(d.has_pending());
        assert_eq!(d.push(&e[6..]), "😀");
        assert_eq!(d.push(b"a\xff"), "a\u{fffd}");
        assert_eq!(d.push(&[0xE2, 0x82]), "");
        assert_eq!(d.finish(), "\u{fffd}");
    }

    #[test]
    fn byte_token_parse() {
        assert_eq!(byte_of(b"<0x0A>"), 10);
        assert_eq!(byte_of(b"<0xFF>"), 255);
    }
}
