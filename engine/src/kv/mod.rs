//! The paged KV cache: per-layer K/V storage in fixed-size blocks, a block table per sequence,
//! and window-based release for sliding-window layers.
//!
//! Layers are split in two groups, each with its own [`BlockPool`]: global-attention layers and
//! sliding-window layers. A global layer needs every past position; a sliding-window layer only
//! the last `window`, so its blocks that fall out of the window go back to the pool as the
//! sequence grows (llama.cpp's iSWA cache does the same with two caches).

mod block_pool;
mod fork;
mod recurrent;
mod storage;

use std::collections::HashMap;

pub use block_pool::{BlockId, BlockPool};
pub use recurrent::{RecurrentPool, StateShape};
pub use storage::{CacheType, KvBuf};

use crate::error::{EngineError, Result};
use crate::model::config::ModelConfig;

/// A sequence's id, chosen by the caller.
pub type SeqId = u32;

/// Tokens per block unless configured otherwise.
pub const DEFAULT_BLOCK_SIZE: usize = 16;

/// How big the cache is and what it stores.
#[derive(Clone, Copy, Debug)]
pub struct KvCacheConfig {
    /// Tokens per block.
    pub block_size: usize,
    /// Blocks per layer group (global layers and sliding-window layers each get this many).
    pub n_blocks: usize,
    /// Element type of K.
    pub type_k: CacheType,
    /// Element type of V.
    pub type_v: CacheType,
    /// Recurrent-state slots (sequences alive at once) for models with Mamba2 layers; a
    /// slot's memory is allocated on first use.
    pub max_seqs: usize,
}

/// Recurrent-state slots unless configured otherwise.
pub const DEFAULT_MAX_SEQS: usize = 16;

impl KvCacheConfig {
    /// Room for `n_ctx` tokens in total (over all sequences), F16 K and V.
    pub fn for_context(n_ctx: usize) -> KvCacheConfig {
        KvCacheConfig {
            block_size: DEFAULT_BLOCK_SIZE,
            n_blocks: n_ctx.div_ceil(DEFAULT_BLOCK_SIZE).max(1),
            type_k: CacheType::F16,
            type_v: CacheType::F16,
            max_seqs: DEFAULT_MAX_SEQS,
        }
    }
}

struct Group {
    pool: BlockPool,
    window: Option<usize>,
}

struct LayerKv {
    group: usize,
    k: KvBuf,
    v: KvBuf,
}

struct SeqEntry {
    len: usize,
    /// Per group: block of each `block_size` positions (`None` once released by the window).
    tables: Vec<Vec<Option<BlockId>>>,
}

/// The paged KV cache of one model.
pub struct KvCache {
    cfg: KvCacheConfig,
    groups: Vec<Group>,
    layers: Vec<Option<LayerKv>>,
    seqs: HashMap<SeqId, SeqEntry>,
    recurrent: RecurrentPool,
}

impl KvCache {
    /// Storage for every attention layer of `model`.
    pub fn new(model: &ModelConfig, cfg: KvCacheConfig) -> Result<KvCache> {
        if cfg.block_size == 0 || cfg.n_blocks == 0 {
            return Err(EngineError::InvalidRequest(
                "KV cache needs at least one block of one token".into(),
            ));
        }
        for (name, ty) in [("K", cfg.type_k), ("V", cfg.type_v)] {
            let dim = if name == "K" {
                model.head_dim_k
            } else {
                model.head_dim_v
            };
            if ty == CacheType::Q8_0 && dim % 32 != 0 {
                return Err(EngineError::InvalidRequest(format!(
                    "q8_0 {name} cache needs a head dimension that is a multiple of 32, not {dim}"
                )));
            }
        }
        let windows: Vec<Option<usize>> = model
            .layers
            .iter()
            .map(|l| l.attention.sliding_window)
            .collect();
        let swa_window = windows.iter().flatten().copied().max();
        let mut groups = vec![Group {
            pool: BlockPool::new(cfg.n_blocks),
            window: None,
        }];
        if swa_window.is_some() {
            groups.push(Group {
                pool: BlockPool::new(cfg.n_blocks),
                window: swa_window,
            });
        }
        let n_slots = cfg.n_blocks * cfg.block_size;
        let layers = model
            .layers
            .iter()
            .map(|l| {
                let a = &l.attention;
                (a.n_head_kv > 0).then(|| LayerKv {
                    group: usize::from(a.sliding_window.is_some()),
                    k: KvBuf::new(cfg.type_k, n_slots, a.n_head_kv * model.head_dim_k),
                    v: KvBuf::new(cfg.type_v, n_slots, a.n_head_kv * model.head_dim_v),
                })
            })
            .collect();
        Ok(KvCache {
            cfg,
            groups,
            layers,
            seqs: HashMap::new(),
            recurrent: RecurrentPool::new(model, cfg.max_seqs),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KvCacheConfig {
        &self.cfg
    }

    /// Starts an empty sequence.
    pub fn add_sequence(&mut self, seq: SeqId) -> Result<()> {
        if self.seqs.contains_key(&seq) {
            return Err(EngineError::BadBatch(format!(
                "sequence {seq} already exists"
            )));
        }
        self.recurrent.attach(seq)?;
        let tables = vec![Vec::new(); self.groups.len()];
        self.seqs.insert(seq, SeqEntry { len: 0, tables });
        Ok(())
    }

    /// Whether `seq` exists.
    pub fn has_sequence(&self, seq: SeqId) -> bool {
        self.seqs.contains_key(&seq)
    }

    /// Positions stored (or reserved) for `seq`.
    pub fn seq_len(&self, seq: SeqId) -> Option<usize> {
        self.seqs.get(&seq).map(|s| s.len)
    }

    /// Blocks still needed so that `seq` can hold `len` positions, per group.
    fn blocks_needed(&self, entry: &SeqEntry, len: usize) -> Vec<usize> {
        let want = len.div_ceil(self.cfg.block_size);
        entry
            .tables
            .iter()
            .map(|t| want.saturating_sub(t.len()))
            .collect()
    }

    /// Whether `extra` more positions fit for `seq` right now.
    pub fn can_grow(&self, seq: SeqId, extra: usize) -> bool {
        let Some(e) = self.seqs.get(&seq) else {
            return false;
        };
        let need = self.blocks_needed(e, e.len + extra);
        need.iter()
            .zip(&self.groups)
            .all(|(&n, g)| n <= g.pool.n_free())
    }

    /// Reserves slots so that `seq` holds positions `0..len`; all or nothing. When a pool runs
    /// out, nothing is allocated and the error says how many blocks were missing.
    pub fn grow_to(&mut self, seq: SeqId, len: usize) -> Result<()> {
        let entry = self
            .seqs
            .get(&seq)
            .ok_or_else(|| EngineError::BadBatch(format!("unknown sequence {seq}")))?;
        let need = self.blocks_needed(entry, len);
        for (g, &n) in self.groups.iter().zip(&need) {
            if n > g.pool.n_free() {
                return Err(EngineError::KvExhausted {
                    needed: n,
                    free: g.pool.n_free(),
                });
            }
        }
        let entry = self.seqs.get_mut(&seq).expect("checked above");
        for ((g, &n), table) in self.groups.iter_mut().zip(&need).zip(&mut entry.tables) {
            for _ in 0..n {
                table.push(Some(g.pool.allocate().expect("free count checked")));
            }
        }
        entry.len = entry.len.max(len);
        Ok(())
    }

    /// Releases the blocks of sliding-window layers that no future token of `seq` can see.
    /// Call after a step: the next token's position is at least the sequence length.
    pub fn release_out_of_window(&mut self, seq: SeqId) {
        let Some(entry) = self.seqs.get_mut(&seq) else {
            return;
        };
        for (g, table) in self.groups.iter_mut().zip(&mut entry.tables) {
            let Some(window) = g.window else { continue };
            // The next query (position >= len) sees positions > len - window.
            let first_visible = (entry.len + 1).saturating_sub(window);
            let dead_blocks = first_visible / self.cfg.block_size;
            for slot in table.iter_mut().take(dead_blocks) {
                if let Some(b) = slot.take() {
                    g.pool.release(b);
                }
            }
        }
    }

    /// Ends `seq` and returns all its blocks to the pools.
    pub fn remove_sequence(&mut self, seq: SeqId) {
        self.recurrent.detach(seq);
        if let Some(entry) = self.seqs.remove(&seq) {
            for (g, table) in self.groups.iter_mut().zip(entry.tables) {
                for b in table.into_iter().flatten() {
                    g.pool.release(b);
                }
            }
        }
    }

    /// Free blocks in each group (global first).
    pub fn free_blocks(&self) -> Vec<usize> {
        self.groups.iter().map(|g| g.pool.n_free()).collect()
    }

    /// Total blocks in each group.
    pub fn total_blocks(&self) -> Vec<usize> {
        self.groups.iter().map(|g| g.pool.capacity()).collect()
    }

    /// The physical slot of (`seq`, `pos`) in `layer`'s storage.
    pub fn slot(&self, layer: usize, seq: SeqId, pos: usize) -> Result<usize> {
        let group = self.layers[layer].as_ref().map_or(0, |l| l.group);
        let entry = self
            .seqs
            .get(&seq)
            .ok_or_else(|| EngineError::BadBatch(format!("unknown sequence {seq}")))?;
        let bs = self.cfg.block_size;
        match entry.tables[group].get(pos / bs) {
            Some(Some(b)) => Ok(*b as usize * bs + pos % bs),
            Some(None) => Err(EngineError::BadBatch(format!(
                "sequence {seq}: position {pos} has left the sliding window"
            ))),
            None => Err(EngineError::BadBatch(format!(
                "sequence {seq}: no KV slot reserved for position {pos}"
            ))),
        }
    }

    /// Tokens per block.
    pub fn block_size(&self) -> usize {
        self.cfg.block_size
    }

    /// The block table `layer` uses for `seq` (entry `i` covers positions `i·block_size..`).
    pub fn table(&self, layer: usize, seq: SeqId) -> Result<&[Option<BlockId>]> {
        let group = self.layers[layer].as_ref().map_or(0, |l| l.group);
        self.seqs
            .get(&seq)
            .map(|e| e.tables[group].as_slice())
            .ok_or_else(|| EngineError::BadBatch(format!("unknown sequence {seq}")))
    }

    /// Stores the K and V rows of one token of `layer` in `slot`.
    pub fn write(&mut self, layer: usize, slot: usize, k: &[f32], v: &[f32]) {
        let l = self.layers[layer].as_mut().expect("attention layer");
        l.k.write(slot, k);
        l.v.write(slot, v);
    }

    /// K and V storage of `layer`.
    pub fn layer(&self, layer: usize) -> Option<(&KvBuf, &KvBuf)> {
        self.layers[layer].as_ref().map(|l| (&l.k, &l.v))
    }

    /// The recurrent-state slots of Mamba2 layers.
    pub fn recurrent(&self) -> &RecurrentPool {
        &self.recurrent
    }

    /// Mutable access to the recurrent-state slots.
    pub fn recurrent_mut(&mut self) -> &mut RecurrentPool {
        &mut self.recurrent
    }

    /// Element types of K and V.
    pub fn types(&self) -> (CacheType, CacheType) {
        (self.cfg.type_k, self.cfg.type_v)
    }
}

#[cfg(test)]
mod tests;
