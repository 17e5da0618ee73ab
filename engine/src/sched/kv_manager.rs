//! The scheduler's view of the KV cache: "can this sequence get blocks for `n` more
//! positions", "start this sequence from another one's prefix", "free this sequence". It knows
//! sequences and token ids but no tensors; the blocks themselves are counted by
//! [`BlockPool`](crate::kv::BlockPool) inside the cache.
//!
//! [`KvSpace`] is the narrow interface the scheduler needs from a cache. [`KvCache`] implements
//! it; unit tests implement it with a fake that only counts blocks.

use crate::error::{EngineError, Result};
use crate::kv::{KvCache, SeqId};

/// What the scheduler needs from a paged KV cache.
pub trait KvSpace {
    /// Starts an empty sequence.
    fn add_sequence(&mut self, seq: SeqId) -> Result<()>;
    /// Reserves positions `0..len` for `seq`, all or nothing ([`EngineError::KvExhausted`]
    /// when blocks are missing).
    fn grow_to(&mut self, seq: SeqId, len: usize) -> Result<()>;
    /// Creates `dst` sharing the K/V of `src`'s positions `0..len`.
    fn fork_prefix(&mut self, src: SeqId, dst: SeqId, len: usize) -> Result<()>;
    /// Ends `seq`, releasing its blocks.
    fn remove_sequence(&mut self, seq: SeqId);
    /// Releases blocks that fell out of `seq`'s sliding window.
    fn release_out_of_window(&mut self, seq: SeqId);
    /// Free blocks per pool.
    fn free_blocks(&self) -> Vec<usize>;
    /// Total blocks per pool.
    fn total_blocks(&self) -> Vec<usize>;
    /// Tokens per block.
    fn block_size(&self) -> usize;
}

impl KvSpace for KvCache {
    fn add_sequence(&mut self, seq: SeqId) -> Result<()> {
        KvCache::add_sequence(self, seq)
    }
    fn grow_to(&mut self, seq: SeqId, len: usize) -> Result<()> {
        KvCache::grow_to(self, seq, len)
    }
    fn fork_prefix(&mut self, src: SeqId, dst: SeqId, len: usize) -> Result<()> {
        KvCache::fork_prefix(self, src, dst, len)
    }
    fn remove_sequence(&mut self, seq: SeqId) {
        KvCache::remove_sequence(self, seq)
    }
    fn release_out_of_window(&mut self, seq: SeqId) {
        KvCache::release_out_of_window(self, seq)
    }
    fn free_blocks(&self) -> Vec<usize> {
        KvCache::free_blocks(self)
    }
    fn total_blocks(&self) -> Vec<usize> {
        KvCache::total_blocks(self)
    }
    fn block_size(&self) -> usize {
        KvCache::block_size(self)
    }
}

/// A live sequence that may lend its prefix: its id, its token ids and how many of them have
/// their K/V computed.
#[derive(Clone, Copy, Debug)]
pub struct Donor<'a> {
    /// The sequence.
    pub seq: SeqId,
    /// Its tokens (prompt and generated).
    pub tokens: &'a [u32],
    /// Tokens whose K/V is in the cache.
    pub n_computed: usize,
}

/// Allocation decisions over a [`KvSpace`].
#[derive(Debug)]
pub struct KvManager<K> {
    kv: K,
    /// Shortest prefix worth sharing, in tokens.
    min_share: usize,
}

impl<K: KvSpace> KvManager<K> {
    /// A manager over `kv`; prefixes shorter than one block are not shared.
    pub fn new(kv: K) -> KvManager<K> {
        let min_share = kv.block_size().max(1);
        KvManager { kv, min_share }
    }

    /// The cache.
    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// The cache, mutably (the model writes K/V into it).
    pub fn kv_mut(&mut self) -> &mut K {
        &mut self.kv
    }

    /// Tries to reserve positions `0..len` for `seq`: `Ok(false)` when blocks ran out (nothing
    /// was allocated), an error for anything else.
    pub fn try_grow(&mut self, seq: SeqId, len: usize) -> Result<bool> {
        match self.kv.grow_to(seq, len) {
            Ok(()) => Ok(true),
            Err(EngineError::KvExhausted { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The longest prefix of `tokens` (at most `tokens.len() - 1`, so that one token is left
    /// to compute) whose K/V some donor holds: `(donor, length)`, or `None` below one block.
    pub fn best_prefix<'a>(
        &self,
        tokens: &[u32],
        donors: impl IntoIterator<Item = Donor<'a>>,
    ) -> Option<(SeqId, usize)> {
        let cap = tokens.len().saturating_sub(1);
        donors
            .into_iter()
            .map(|d| {
                let n = common_prefix(&d.tokens[..d.n_computed.min(d.tokens.len())], tokens);
                (d.seq, n.min(cap))
            })
            .filter(|&(_, n)| n >= self.min_share)
            .max_by_key(|&(seq, n)| (n, std::cmp::Reverse(seq)))
    }

    /// Starts `seq`, sharing the longest useful prefix of `tokens` with a donor. Returns the
    /// tokens whose K/V it starts with (0 when nothing was shared) and the donor used.
    pub fn start<'a>(
        &mut self,
        seq: SeqId,
        tokens: &[u32],
        donors: impl IntoIterator<Item = Donor<'a>>,
    ) -> Result<(usize, Option<SeqId>)> {
        if let Some((donor, n)) = self.best_prefix(tokens, donors) {
            if self.kv.fork_prefix(donor, seq, n).is_ok() {
                return Ok((n, Some(donor)));
            }
            // No block for the partial copy, or the window moved on: share full blocks only.
            let aligned = n / self.kv.block_size() * self.kv.block_size();
            if aligned >= self.min_share && self.kv.fork_prefix(donor, seq, aligned).is_ok() {
                return Ok((aligned, Some(donor)));
            }
        }
        self.kv.add_sequence(seq)?;
        Ok((0, None))
    }

    /// Shortest prefix worth sharing, in tokens (one block).
    pub fn min_share(&self) -> usize {
        self.min_share
    }

    /// Ends `seq` and frees its blocks.
    pub fn free(&mut self, seq: SeqId) {
        self.kv.remove_sequence(seq);
    }

    /// Blocks in use, summed over the pools.
    pub fn used_blocks(&self) -> usize {
        self.total_blocks() - self.free_blocks()
    }

    /// Free blocks, summed over the pools.
    pub fn free_blocks(&self) -> usize {
        self.kv.free_blocks().iter().sum()
    }

    /// Total blocks, summed over the pools.
    pub fn total_blocks(&self) -> usize {
        self.kv.total_blocks().iter().sum()
    }
}

/// Length of the common prefix of two token lists.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
