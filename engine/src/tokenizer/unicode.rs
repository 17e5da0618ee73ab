//! Unicode helpers with llama.cpp's exact semantics: lenient UTF-8 decoding (an invalid byte
//! becomes U+FFFD and decoding resumes at the next byte), code-point classification as
//! llama.cpp's `unicode_cpt_flags`, lowercase / NFD maps, and GPT-2's byte-to-unicode alphabet.

use super::unicode_tables::{CATEGORY_RANGES, LOWERCASE, NFD_RANGES, WHITESPACE};

/// The replacement character, produced for undecodable input bytes.
pub(crate) const REPLACEMENT: u32 = 0xFFFD;

const UNDEFINED: u16 = 0x01;
const NUMBER: u16 = 0x02;
const LETTER: u16 = 0x04;
const ACCENT_MARK: u16 = 0x10;
const PUNCTUATION: u16 = 0x20;
const SYMBOL: u16 = 0x40;
const CONTROL: u16 = 0x80;
const WHITESPACE_BIT: u16 = 0x100;

/// Classification of one code point; `Flags::default()` (all clear) stands for "no code point"
/// (a position outside the text), as llama.cpp's out-of-range lookups do.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Flags(u16);

impl Flags {
    pub(crate) fn is_number(self) -> bool {
        self.0 & NUMBER != 0
    }
    pub(crate) fn is_letter(self) -> bool {
        self.0 & LETTER != 0
    }
    pub(crate) fn is_whitespace(self) -> bool {
        self.0 & WHITESPACE_BIT != 0
    }
    pub(crate) fn is_accent_mark(self) -> bool {
        self.0 & ACCENT_MARK != 0
    }
    pub(crate) fn is_punctuation(self) -> bool {
        self.0 & PUNCTUATION != 0
    }
    pub(crate) fn is_symbol(self) -> bool {
        self.0 & SYMBOL != 0
    }
    pub(crate) fn is_control(self) -> bool {
        self.0 & CONTROL != 0
    }
    /// True for every real code point (llama.cpp's `as_uint() != 0`).
    pub(crate) fn any(self) -> bool {
        self.0 != 0
    }
}

/// The flags of a code point (category bits plus whitespace).
pub(crate) fn flags(cp: u32) -> Flags {
    if cp >= 0x110000 {
        return Flags(UNDEFINED);
    }
    let i = CATEGORY_RANGES.partition_point(|&(start, _)| start <= cp) - 1;
    let mut f = CATEGORY_RANGES[i].1 as u16;
    if is_whitespace(cp) {
        f |= WHITESPACE_BIT;
    }
    Flags(f)
}

fn is_whitespace(cp: u32) -> bool {
    if cp < 0x80 {
        return matches!(cp, 0x09..=0x0D | 0x20);
    }
    WHITESPACE.binary_search(&cp).is_ok()
}

/// Simple lowercase mapping (first code point of Python's `str.lower()`), as llama.cpp's
/// `unicode_tolower`.
pub(crate) fn to_lower(cp: u32) -> u32 {
    if cp < 0x80 {
        return (cp as u8).to_ascii_lowercase() as u32;
    }
    match LOWERCASE.binary_search_by_key(&cp, |&(c, _)| c) {
        Ok(i) => LOWERCASE[i].1,
        Err(_) => cp,
    }
}

/// First code point of the NFD decomposition, as llama.cpp's `unicode_cpts_normalize_nfd`.
pub(crate) fn nfd_first(cp: u32) -> u32 {
    let i = NFD_RANGES.partition_point(|&(first, _, _)| first <= cp);
    if i == 0 {
        return cp;
    }
    let (first, last, base) = NFD_RANGES[i - 1];
    if first <= cp && cp <= last {
        base
    } else {
        cp
    }
}

/// Length of the UTF-8 sequence a lead byte announces (1 for continuation / invalid bytes),
/// as llama.cpp's `unicode_len_utf8`.
pub(crate) fn utf8_len(lead: u8) -> usize {
    const LOOKUP: [usize; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LOOKUP[(lead >> 4) as usize]
}

/// Decodes one code point at `*offset`, advancing it; `None` (offset unchanged) on invalid input.
fn decode_one(s: &[u8], offset: &mut usize) -> Option<u32> {
    let i = *offset;
    let b0 = s[i] as u32;
    let cont = |k: usize| s.get(i + k).is_some_and(|&b| b & 0xC0 == 0x80);
    let c = |k: usize| (s[i + k] & 0x3F) as u32;
    let (cp, n) = if b0 & 0x80 == 0 {
        (b0, 1)
    } else if b0 & 0x40 == 0 {
        return None;
    } else if b0 & 0x20 == 0 {
        if !cont(1) {
            return None;
        }
        (((b0 & 0x1F) << 6) | c(1), 2)
    } else if b0 & 0x10 == 0 {
        if !(cont(1) && cont(2)) {
            return None;
        }
        (((b0 & 0x0F) << 12) | (c(1) << 6) | c(2), 3)
    } else if b0 & 0x08 == 0 {
        if !(cont(1) && cont(2) && cont(3)) {
            return None;
        }
        (((b0 & 0x07) << 18) | (c(1) << 12) | (c(2) << 6) | c(3), 4)
    } else {
        return None;
    };
    *offset += n;
    Some(cp)
}

/// Decodes UTF-8 leniently: each byte that does not start a valid sequence becomes U+FFFD.
pub(crate) fn decode_lossy(s: &[u8]) -> Vec<u32> {
    let mut out = Vec::with_capacity(s.len());
    let mut offset = 0;
    while offset < s.len() {
        match decode_one(s, &mut offset) {
            Some(cp) => out.push(cp),
            None => {
                offset += 1;
                out.push(REPLACEMENT);
            }
        }
    }
    out
}

/// Appends the UTF-8 encoding of `cp`; code points past U+10FFFF (which lenient decoding of
/// F5..F7 lead bytes can produce) are written as U+FFFD.
pub(crate) fn push_utf8(out: &mut Vec<u8>, cp: u32) {
    match cp {
        0..=0x7F => out.push(cp as u8),
        0x80..=0x7FF => out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]),
        0x800..=0xFFFF => out.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]),
        0x10000..=0x10FFFF => out.extend_from_slice(&[
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]),
        _ => push_utf8(out, REPLACEMENT),
    }
}

/// GPT-2's byte-to-unicode alphabet: printable Latin-1 bytes map to themselves, the other 68
/// bytes to U+0100.. in byte order.
pub(crate) fn byte_to_unicode(b: u8) -> u32 {
    let printable = |x: u8| matches!(x, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return b as u32;
    }
    let rank = (0..b).filter(|&x| !printable(x)).count() as u32;
    256 + rank
}

/// Table form of [`byte_to_unicode`] and its inverse.
pub(crate) struct ByteAlphabet {
    to_cp: [u32; 256],
    from_cp: Vec<i16>,
}

impl ByteAlphabet {
    /// Builds both directions.
    pub(crate) fn new() -> ByteAlphabet {
        let mut to_cp = [0u32; 256];
        let mut from_cp = vec![-1i16; 324];
        for b in 0..=255u8 {
            let cp = byte_to_unicode(b);
            to_cp[b as usize] = cp;
            from_cp[cp as usize] = b as i16;
        }
        ByteAlphabet { to_cp, from_cp }
    }

    /// Appends the UTF-8 form of byte `b`'s alphabet character.
    pub(crate) fn encode_byte(&self, out: &mut Vec<u8>, b: u8) {
        push_utf8(out, self.to_cp[b as usize]);
    }

    /// The byte a code point of the alphabet stands for.
    pub(crate) fn decode_cp(&self, cp: u32) -> Option<u8> {
        match self.from_cp.get(cp as usize) {
            Some(&b) if b >= 0 => Some(b as u8),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_ascii_like_llama_cpp() {
        assert!(flags('a' as u32).is_letter());
        assert!(flags('7' as u32).is_number());
        assert!(flags(' ' as u32).is_whitespace());
        assert!(flags('\n' as u32).is_whitespace());
        assert!(!flags(0x1C).is_whitespace());
        assert!(flags('!' as u32).is_punctuation());
        assert!(flags('$' as u32).is_symbol());
        assert!(flags(0x0301).is_accent_mark());
        assert!(flags(0x4E2D).is_letter());
        assert!(flags(0x3000).is_whitespace());
        assert!(flags(0x378).any());
        assert!(!Flags::default().any());
    }

    #[test]
    fn lowercase_and_nfd() {
        assert_eq!(to_lower('A' as u32), 'a' as u32);
        assert_eq!(to_lower(0x0130), 'i' as u32);
        assert_eq!(to_lower(0x0416), 0x0436);
        assert_eq!(nfd_first(0xE9), 'e' as u32);
        assert_eq!(nfd_first('e' as u32), 'e' as u32);
    }

    #[test]
    fn lenient_utf8() {
        assert_eq!(
            decode_lossy("aé€😀".as_bytes()),
            vec![0x61, 0xE9, 0x20AC, 0x1F600]
        );
        assert_eq!(decode_lossy(&[0x80, 0x61]), vec![REPLACEMENT, 0x61]);
        assert_eq!(decode_lossy(&[0xE2, 0x82]), vec![REPLACEMENT, REPLACEMENT]);
    }

    #[test]
    fn gpt2_byte_alphabet() {
        assert_eq!(byte_to_unicode(b' '), 0x120);
        assert_eq!(byte_to_unicode(b'\n'), 0x10A);
        assert_eq!(byte_to_unicode(b'a'), 'a' as u32);
        assert_eq!(byte_to_unicode(0xAD), 0x143);
        let a = ByteAlphabet::new();
        for b in 0..=255u8 {
            assert_eq!(a.decode_cp(byte_to_unicode(b)), Some(b));
        }
    }
}
