//! The vocabulary as plain data: token texts, scores and attributes, a byte-string → id table,
//! and the BPE merge table. Built once; every algorithm reads it.

/// Token attribute bits (llama.cpp's `llama_token_attr`).
pub mod attr {
    /// The unknown token.
    pub const UNKNOWN: u32 = 1 << 0;
    /// Declared but unused (e.g. Gemma's `<unused0>`).
    pub const UNUSED: u32 = 1 << 1;
    /// An ordinary token.
    pub const NORMAL: u32 = 1 << 2;
    /// A control token (BOS, EOS, chat markers).
    pub const CONTROL: u32 = 1 << 3;
    /// A user-defined token: matched in raw text before the tokenizer runs.
    pub const USER_DEFINED: u32 = 1 << 4;
    /// A byte-fallback token `<0xXX>`.
    pub const BYTE: u32 = 1 << 5;
    /// Whitespace to its left is swallowed when it is matched in text.
    pub const LSTRIP: u32 = 1 << 7;
    /// Whitespace to its right is swallowed when it is matched in text.
    pub const RSTRIP: u32 = 1 << 8;

    /// Maps a GGUF `tokenizer.ggml.token_type` value to attribute bits.
    pub fn from_token_type(t: i32) -> u32 {
        match t {
            1 => NORMAL,
            2 => UNKNOWN,
            3 => CONTROL,
            4 => USER_DEFINED,
            5 => UNUSED,
            6 => BYTE,
            _ => 0,
        }
    }
}

/// An open-addressing hash table from byte strings (stored back to back in one buffer) to
/// `u32` values. Building it costs two allocations, whatever the number of strings, which keeps
/// a 262k-token vocabulary fast to load.
#[derive(Clone, Debug, Default)]
pub struct StrTable {
    bytes: Vec<u8>,
    offsets: Vec<u32>,
    values: Vec<u32>,
    slots: Vec<u32>,
}

const EMPTY: u32 = u32::MAX;

fn hash_bytes(s: &[u8]) -> u64 {
    // FxHash-style multiply-rotate over 8-byte words, finished with a mixer.
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = s.len() as u64;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let mut tail = 0u64;
    for (i, &b) in chunks.remainder().iter().enumerate() {
        tail |= (b as u64) << (8 * i);
    }
    h = (h.rotate_left(5) ^ tail).wrapping_mul(K);
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 32)
}

impl StrTable {
    /// Builds the table from `(string, value)` pairs; a repeated string keeps its first value.
    pub fn build<'a>(items: impl ExactSizeIterator<Item = (&'a [u8], u32)>) -> StrTable {
        let n = items.len();
        let cap = (n * 2).next_power_of_two().max(16);
        let mut t = StrTable {
            bytes: Vec::new(),
            offsets: Vec::with_capacity(n + 1),
            values: Vec::with_capacity(n),
            slots: vec![EMPTY; cap],
        };
        t.offsets.push(0);
        for (s, v) in items {
            t.insert(s, v);
        }
        t
    }

    fn key(&self, i: u32) -> &[u8] {
        let i = i as usize;
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    fn insert(&mut self, s: &[u8], v: u32) {
        let mask = self.slots.len() - 1;
        let mut pos = hash_bytes(s) as usize & mask;
        loop {
            let slot = self.slots[pos];
            if slot == EMPTY {
                let idx = self.values.len() as u32;
                self.bytes.extend_from_slice(s);
                self.offsets.push(self.bytes.len() as u32);
                self.values.push(v);
                self.slots[pos] = idx;
                return;
            }
            if self.key(slot) == s {
                return;
            }
            pos = (pos + 1) & mask;
        }
    }

    /// The value stored for `s`.
    pub fn get(&self, s: &[u8]) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut pos = hash_bytes(s) as usize & mask;
        loop {
            let slot = self.slots[pos];
            if slot == EMPTY {
                return None;
            }
            if self.key(slot) == s {
                return Some(self.values[slot as usize]);
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Number of distinct strings stored.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Token texts (raw bytes as stored in the GGUF), scores and attributes, indexed by id.
#[derive(Clone, Debug, Default)]
pub struct Vocab {
    text: Vec<u8>,
    offsets: Vec<u32>,
    scores: Vec<f32>,
    attrs: Vec<u32>,
    ids: StrTable,
    max_token_len: usize,
}

impl Vocab {
    /// Builds a vocabulary. `scores` and `attrs` may be shorter than `tokens` (missing entries
    /// read as score 0 and [`attr::NORMAL`]). Returns the first duplicated token as an error
    /// value `(text, first id, second id)`.
    pub fn new<'a>(
        tokens: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
        scores: &[f32],
        attrs: &[u32],
    ) -> Result<Vocab, (Vec<u8>, u32, u32)> {
        let n = tokens.len();
        let total: usize = tokens.clone().map(|t| t.len()).sum();
        let mut text = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0u32);
        let mut max_token_len = 0;
        for t in tokens {
            text.extend_from_slice(t);
            offsets.push(text.len() as u32);
            max_token_len = max_token_len.max(t.len());
        }
        let mut v = Vocab {
            text,
            offsets,
            scores: (0..n)
                .map(|i| scores.get(i).copied().unwrap_or(0.0))
                .collect(),
            attrs: (0..n)
                .map(|i| attrs.get(i).copied().unwrap_or(attr::NORMAL))
                .collect(),
            ids: StrTable::default(),
            max_token_len,
        };
        v.ids = StrTable::build(
            (0..n)
                .map(|i| (v.token_text_at(i), i as u32))
                .collect::<Vec<_>>()
                .into_iter(),
        );
        if v.ids.len() != n {
            for i in 0..n {
                let first = v.ids.get(v.token_text_at(i)).unwrap_or(i as u32);
                if first != i as u32 {
                    return Err((v.token_text_at(i).to_vec(), first, i as u32));
                }
            }
        }
        Ok(v)
    }

    fn token_text_at(&self, i: usize) -> &[u8] {
        &self.text[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// True for an empty vocabulary.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The text of token `id` (panics if out of range: callers check first).
    pub fn text(&self, id: u32) -> &[u8] {
        self.token_text_at(id as usize)
    }

    /// The score of token `id`.
    pub fn score(&self, id: u32) -> f32 {
        self.scores[id as usize]
    }

    /// The attribute bits of token `id`.
    pub fn attr(&self, id: u32) -> u32 {
        self.attrs[id as usize]
    }

    /// Replaces the attribute bits of token `id`.
    pub fn set_attr(&mut self, id: u32, a: u32) {
        self.attrs[id as usize] = a;
    }

    /// The id of the token whose text is exactly `s`.
    pub fn id(&self, s: &[u8]) -> Option<u32> {
        self.ids.get(s)
    }

    /// Length in bytes of the longest token.
    pub fn max_token_len(&self) -> usize {
        self.max_token_len
    }
}

/// BPE merge ranks keyed by the merge line `"left right"` as stored in the GGUF.
#[derive(Clone, Debug, Default)]
pub struct Merges {
    table: StrTable,
}

impl Merges {
    /// Builds the table; the rank of a merge is its index in `lines` (first occurrence wins).
    pub fn new<'a>(lines: impl ExactSizeIterator<Item = &'a [u8]>) -> Merges {
        let items: Vec<(&[u8], u32)> = lines.enumerate().map(|(i, l)| (l, i as u32)).collect();
        Merges {
            table: StrTable::build(items.into_iter()),
        }
    }

    /// Rank of merging `left` and `right`; `scratch` is a reusable key buffer.
    pub fn rank(&self, left: &[u8], right: &[u8], scratch: &mut Vec<u8>) -> Option<u32> {
        scratch.clear();
        scratch.extend_from_slice(left);
        scratch.push(b' ');
        scratch.extend_from_slice(right);
        self.table.get(scratch)
    }

    /// Number of merges.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_table_finds_every_key_and_keeps_first() {
        let keys: Vec<Vec<u8>> = (0..5000).map(|i| format!("tok{i}").into_bytes()).collect();
        let t = StrTable::build(
            keys.iter()
                .map(|k| (k.as_slice(), 7))
                .chain([(&b"tok3"[..], 9)])
                .collect::<Vec<_>>()
                .into_iter(),
        );
        assert_eq!(t.len(), 5000);
        assert_eq!(t.get(b"tok3"), Some(7));
        assert_eq!(t.get(b"tok4999"), Some(7));
        assert_eq!(t.get(b"nope"), None);
        assert_eq!(t.get(b""), None);
    }

    #[test]
    fn vocab_rejects_duplicates() {
        let toks: Vec<&[u8]> = vec![b"a", b"b", b"a"];
        let err = Vocab::new(toks.into_iter(), &[], &[]).unwrap_err();
        assert_eq!(err, (b"a".to_vec(), 0, 2));
    }

    #[test]
    fn merges_rank_by_line() {
        let lines: Vec<&[u8]> = vec![b"a b", b"ab c", b"a b"];
        let m = Merges::new(lines.into_iter());
        let mut s = Vec::new();
        assert_eq!(m.rank(b"a", b"b", &mut s), Some(0));
        assert_eq!(m.rank(b"ab", b"c", &mut s), Some(1));
        assert_eq!(m.rank(b"b", b"c", &mut s), None);
    }
}
