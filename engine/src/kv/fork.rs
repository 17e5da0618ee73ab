//! Prefix sharing: a new sequence starts from the first `len` positions of another one.
//!
//! Full blocks are shared (their reference counts go up, nobody writes them again: both
//! sequences only ever write positions past `len`); the last, partial block is copied into a
//! fresh block, since both sequences will write into the rest of it (copy-on-write done at
//! fork time).

use super::{KvBuf, KvCache, SeqEntry};
use crate::error::{EngineError, Result};
use crate::kv::SeqId;

impl KvCache {
    /// Creates `dst` holding the K/V of `src`'s positions `0..len` (`len` at most `src`'s
    /// length; the caller vouches that those positions are computed). Full blocks are shared,
    /// a partial last block is copied. All or nothing: on error nothing changed. Fails when
    /// `dst` exists, `src` does not, a block `dst` still needs has left `src`'s sliding window,
    /// or no block is free for the copy ([`EngineError::KvExhausted`]). With recurrent
    /// (Mamba2) layers, `len` must be `src`'s current length (anything else fails): `dst`
    /// then gets a copy of `src`'s recurrent state.
    pub fn fork_prefix(&mut self, src: SeqId, dst: SeqId, len: usize) -> Result<()> {
        if self.seqs.contains_key(&dst) {
            return Err(EngineError::BadBatch(format!(
                "sequence {dst} already exists"
            )));
        }
        let s = self
            .seqs
            .get(&src)
            .ok_or_else(|| EngineError::BadBatch(format!("unknown sequence {src}")))?;
        if len > s.len {
            return Err(EngineError::BadBatch(format!(
                "cannot share {len} positions of sequence {src}, which holds {}",
                s.len
            )));
        }
        let bs = self.cfg.block_size;
        let (full, partial) = (len / bs, len % bs);
        // Check first: every block the new sequence can still see is present, and a free block
        // for the partial copy exists in every group.
        for (g, table) in self.groups.iter().zip(&s.tables) {
            let first_visible = g.window.map_or(0, |w| (len + 1).saturating_sub(w)) / bs;
            let needed_end = if partial > 0 { full + 1 } else { full };
            if (first_visible..needed_end).any(|i| table.get(i).is_none_or(|b| b.is_none())) {
                return Err(EngineError::BadBatch(format!(
                    "sequence {src}: positions below {len} have left the sliding window"
                )));
            }
            if partial > 0 && g.pool.n_free() == 0 {
                return Err(EngineError::KvExhausted { needed: 1, free: 0 });
            }
        }
        // Recurrent (Mamba2) layers keep one state per sequence, at its latest position only:
        // a hybrid model can fork only there, copying the state (see `recurrent.rs`).
        if self.recurrent.has_layers() {
            let at = self.recurrent.n_past(src);
            if at != Some(len) {
                return Err(EngineError::BadBatch(format!(
                    "sequence {src}: its recurrent state is at position {}, not {len}; a \
                     hybrid model's prefix must be recomputed",
                    at.unwrap_or(0)
                )));
            }
            self.recurrent.attach(dst)?;
            self.recurrent.copy_state(src, dst)?;
        }
        let src_tables = s.tables.clone();
        let mut tables = Vec::with_capacity(self.groups.len());
        let mut copies = Vec::new();
        for (gi, (g, table)) in self.groups.iter_mut().zip(&src_tables).enumerate() {
            let first_visible = g.window.map_or(0, |w| (len + 1).saturating_sub(w)) / bs;
            let mut t: Vec<Option<u32>> = Vec::with_capacity(full + 1);
            for (i, b) in table.iter().take(full).enumerate() {
                match b {
                    Some(b) if i >= first_visible => {
                        g.pool.retain(*b);
                        t.push(Some(*b));
                    }
                    _ => t.push(None),
                }
            }
            if partial > 0 {
                let fresh = g.pool.allocate().expect("free block checked above");
                let from = table[full].expect("presence checked above");
                copies.push((gi, from, fresh));
                t.push(Some(fresh));
            }
            tables.push(t);
        }
        let n_slots = self.cfg.n_blocks * bs;
        for (gi, from, to) in copies {
            for layer in self.layers.iter_mut().flatten() {
                if layer.group != gi {
                    continue;
                }
                for p in 0..partial {
                    let (a, b) = (from as usize * bs + p, to as usize * bs + p);
                    copy_row(&mut layer.k, n_slots, a, b);
                    copy_row(&mut layer.v, n_slots, a, b);
                }
            }
        }
        self.seqs.insert(dst, SeqEntry { len, tables });
        Ok(())
    }
}

/// Copies row `from` of a buffer of `n_slots` rows to row `to`.
fn copy_row(buf: &mut KvBuf, n_slots: usize, from: usize, to: usize) {
    fn copy<T: Copy>(v: &mut [T], n_slots: usize, from: usize, to: usize) {
        let row = v.len() / n_slots;
        v.copy_within(from * row..(from + 1) * row, to * row);
    }
    match buf {
        KvBuf::F32(v) => copy(v, n_slots, from, to),
        KvBuf::F16(v) => copy(v, n_slots, from, to),
        KvBuf::Q8_0(v) => copy(v, n_slots, from, to),
    }
}
