//! Recurrent state of Mamba2 layers: a fixed pool of slots, one per live sequence, next to
//! the KV block pool and owned by the same [`KvCache`](super::KvCache).
//!
//! A slot holds, for every Mamba2 layer, the convolution state (the last `d_conv − 1` inputs
//! of each conv channel, `[d_conv − 1][channel]`) and the SSM state (`[head][head_dim][d_state]`),
//! plus the number of tokens the state has consumed. A slot is taken when the sequence is added
//! ([`KvCache::add_sequence`](super::KvCache::add_sequence)), zeroed then, and returned when the
//! sequence is removed. The pool's capacity (`KvCacheConfig::max_seqs`) is fixed; the memory
//! of a slot is allocated the first time the slot is used and kept for reuse, so a large
//! capacity costs nothing until that many sequences run at once. When every slot is taken,
//! adding a sequence fails with an [`EngineError::InvalidRequest`] that says so, and changes
//! nothing.
//!
//! Unlike K/V, the state cannot be rewound: it summarises the whole prefix. A batch must
//! therefore feed each sequence's tokens at consecutive positions starting exactly at the
//! number of tokens already consumed ([`RecurrentPool::check_batch`]); to go back, remove
//! the sequence and recompute.
//!
//! **Prefix sharing does not apply to this state.** KV blocks of a shared prefix can be
//! referenced by several sequences, but an SSM state is only valid at the one position it
//! was computed for. [`RecurrentPool::copy_state`] copies a whole slot (conv + SSM state and
//! its token count) from one sequence to another: that is correct exactly when the fork
//! point is the source's current length (e.g. several samples from one prompt). For any
//! other fork point the cache has no state to offer, and the new sequence must recompute its
//! prefix through the Mamba2 layers (the scheduler should treat such a prefix hit as a miss
//! for hybrid models; [`RecurrentPool::has_layers`] says whether a model is one).

use std::collections::HashMap;

use super::SeqId;
use crate::error::{EngineError, Result};
use crate::model::config::{LayerKind, ModelConfig};

/// Sizes of one layer's state, in f32 values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateShape {
    /// Conv state: `conv_channels × (d_conv − 1)`.
    pub conv: usize,
    /// SSM state: `d_inner × d_state`.
    pub ssm: usize,
}

#[derive(Default)]
struct Slot {
    /// Every Mamba2 layer's conv state then SSM state, back to back (empty until first use).
    data: Vec<f32>,
    /// Tokens consumed.
    n_past: usize,
}

/// The fixed pool of recurrent-state slots.
pub struct RecurrentPool {
    /// Model layer → index among the Mamba2 layers.
    layer_index: Vec<Option<usize>>,
    n_ssm_layers: usize,
    shape: StateShape,
    slots: Vec<Slot>,
    free: Vec<u32>,
    owner: HashMap<SeqId, u32>,
}

impl RecurrentPool {
    /// A pool of `capacity` slots for the Mamba2 layers of `model` (none for pure-attention
    /// models, in which case every sequence is accepted and nothing is stored).
    pub fn new(model: &ModelConfig, capacity: usize) -> RecurrentPool {
        let mut n = 0;
        let layer_index = model
            .layers
            .iter()
            .map(|l| {
                (l.kind == LayerKind::Mamba2).then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect();
        let shape = match &model.ssm {
            Some(s) if n > 0 => StateShape {
                conv: s.conv_channels() * (s.d_conv - 1),
                ssm: s.d_inner * s.d_state,
            },
            _ => StateShape { conv: 0, ssm: 0 },
        };
        let capacity = if n > 0 { capacity } else { 0 };
        RecurrentPool {
            layer_index,
            n_ssm_layers: n,
            shape,
            slots: (0..capacity).map(|_| Slot::default()).collect(),
            free: (0..capacity as u32).rev().collect(),
            owner: HashMap::new(),
        }
    }

    /// Whether the model has recurrent layers at all.
    pub fn has_layers(&self) -> bool {
        self.n_ssm_layers > 0
    }

    /// Per-layer state sizes.
    pub fn shape(&self) -> StateShape {
        self.shape
    }

    /// Total slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Slots not owned by a sequence.
    pub fn n_free(&self) -> usize {
        self.free.len()
    }

    fn per_layer(&self) -> usize {
        self.shape.conv + self.shape.ssm
    }

    /// Gives `seq` a zeroed slot. Fails, changing nothing, when the pool is exhausted or the
    /// sequence already has one. A no-op for models without recurrent layers.
    pub fn attach(&mut self, seq: SeqId) -> Result<()> {
        if !self.has_layers() {
            return Ok(());
        }
        if self.owner.contains_key(&seq) {
            return Err(EngineError::BadBatch(format!(
                "sequence {seq} already has a recurrent state slot"
            )));
        }
        let Some(id) = self.free.pop() else {
            return Err(EngineError::InvalidRequest(format!(
                "recurrent state pool exhausted: all {} slots are in use (raise max_seqs)",
                self.capacity()
            )));
        };
        let len = self.n_ssm_layers * self.per_layer();
        let slot = &mut self.slots[id as usize];
        if slot.data.len() != len {
            slot.data = vec![0.0; len];
        } else {
            slot.data.fill(0.0);
        }
        slot.n_past = 0;
        self.owner.insert(seq, id);
        Ok(())
    }

    /// Returns `seq`'s slot to the pool (no-op when it has none).
    pub fn detach(&mut self, seq: SeqId) {
        if let Some(id) = self.owner.remove(&seq) {
            self.free.push(id);
        }
    }

    /// Zeroes `seq`'s state so that it starts again at position 0.
    pub fn reset(&mut self, seq: SeqId) -> Result<()> {
        let id = self.slot_of(seq)?;
        let slot = &mut self.slots[id];
        slot.data.fill(0.0);
        slot.n_past = 0;
        Ok(())
    }

    /// Copies `src`'s whole state (and token count) into `dst`'s slot: a fork at `src`'s
    /// current length (see the module doc for why no other fork point can be served).
    pub fn copy_state(&mut self, src: SeqId, dst: SeqId) -> Result<()> {
        if !self.has_layers() || src == dst {
            return Ok(());
        }
        let (s, d) = (self.slot_of(src)?, self.slot_of(dst)?);
        let (from, to) = if s < d {
            let (a, b) = self.slots.split_at_mut(d);
            (&a[s], &mut b[0])
        } else {
            let (a, b) = self.slots.split_at_mut(s);
            (&b[0], &mut a[d])
        };
        to.data.copy_from_slice(&from.data);
        to.n_past = from.n_past;
        Ok(())
    }

    fn slot_of(&self, seq: SeqId) -> Result<usize> {
        self.owner
            .get(&seq)
            .map(|&id| id as usize)
            .ok_or_else(|| EngineError::BadBatch(format!("sequence {seq} has no recurrent state")))
    }

    /// Tokens `seq`'s state has consumed.
    pub fn n_past(&self, seq: SeqId) -> Option<usize> {
        self.owner
            .get(&seq)
            .map(|&id| self.slots[id as usize].n_past)
    }

    /// Checks that every sequence of the batch owns a slot and that its tokens come in batch
    /// order at consecutive positions starting at the tokens already consumed.
    pub fn check_batch(&self, seq_ids: &[SeqId], positions: &[usize]) -> Result<()> {
        if !self.has_layers() {
            return Ok(());
        }
        let mut next: HashMap<SeqId, usize> = HashMap::new();
        for (&seq, &pos) in seq_ids.iter().zip(positions) {
            let want = match next.get(&seq) {
                Some(&n) => n,
                None => self.slots[self.slot_of(seq)?].n_past,
            };
            if pos != want {
                return Err(EngineError::BadBatch(format!(
                    "sequence {seq}: position {pos} given, but its recurrent (Mamba2) state is \
                     at position {want}; recurrent state cannot skip or rewind"
                )));
            }
            next.insert(seq, pos + 1);
        }
        Ok(())
    }

    /// Records that the batch's tokens were consumed (after a successful forward pass).
    pub fn advance(&mut self, seq_ids: &[SeqId], positions: &[usize]) {
        for (&seq, &pos) in seq_ids.iter().zip(positions) {
            if let Some(&id) = self.owner.get(&seq) {
                let s = &mut self.slots[id as usize];
                s.n_past = s.n_past.max(pos + 1);
            }
        }
    }

    /// The conv and SSM states of model layer `layer` for each of `seqs` (distinct), in order.
    pub fn layer_states_mut(
        &mut self,
        layer: usize,
        seqs: &[SeqId],
    ) -> Result<Vec<(&mut [f32], &mut [f32])>> {
        let li = self
            .layer_index
            .get(layer)
            .copied()
            .flatten()
            .ok_or_else(|| EngineError::BadBatch(format!("layer {layer} is not recurrent")))?;
        let ids: Vec<usize> = seqs
            .iter()
            .map(|&s| self.slot_of(s))
            .collect::<Result<_>>()?;
        let per = self.per_layer();
        let conv = self.shape.conv;
        let mut picked: Vec<Option<(&mut [f32], &mut [f32])>> =
            (0..seqs.len()).map(|_| None).collect();
        for (id, slot) in self.slots.iter_mut().enumerate() {
            let Some(i) = ids.iter().position(|&x| x == id) else {
                continue;
            };
            let (c, s) = slot.data[li * per..(li + 1) * per].split_at_mut(conv);
            picked[i] = Some((c, s));
        }
        picked
            .into_iter()
            .map(|p| p.ok_or_else(|| EngineError::BadBatch("sequence listed twice".into())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{
        Arch, AttentionSpec, LayerSpec, ModelConfig, RopeScaling, SsmConfig,
    };

    pub(crate) fn hybrid_config() -> ModelConfig {
        let layer = |kind| LayerSpec {
            attention: AttentionSpec {
                n_head: 2,
                n_head_kv: if kind == LayerKind::Mamba2 { 0 } else { 1 },
                sliding_window: None,
                rope_base: 10_000.0,
                rope: false,
            },
            n_ff: 8,
            kind,
        };
        ModelConfig {
            arch: Arch::GraniteHybrid,
            traits: Arch::GraniteHybrid.traits(),
            n_embd: 8,
            n_vocab: 4,
            n_ctx_train: 64,
            head_dim_k: 4,
            head_dim_v: 4,
            n_rot: 4,
            norm_eps: 1e-5,
            rope_scaling: RopeScaling::None,
            attention_scale: 0.5,
            attn_softcap: None,
            final_softcap: None,
            embedding_scale: 1.0,
            residual_scale: 1.0,
            logit_divisor: 1.0,
            layers: vec![layer(LayerKind::Mamba2), layer(LayerKind::Attention)],
            ssm: Some(SsmConfig {
                d_conv: 4,
                d_inner: 16,
                d_state: 4,
                n_group: 1,
                n_head: 2,
            }),
        }
    }

    #[test]
    fn slots_are_taken_and_returned() {
        let mut p = RecurrentPool::new(&hybrid_config(), 2);
        assert!(p.has_layers());
        p.attach(1).unwrap();
        p.attach(2).unwrap();
        assert!(p.attach(3).is_err(), "exhausted pool refuses cleanly");
        assert!(p.attach(1).is_err());
        assert_eq!(p.n_free(), 0);
        p.detach(1);
        p.detach(1);
        assert_eq!(p.n_free(), 1);
        p.attach(3).unwrap();
        for s in [2, 3] {
            p.detach(s);
        }
        assert_eq!(p.n_free(), 2);
    }

    #[test]
    fn positions_must_continue_the_state() {
        let mut p = RecurrentPool::new(&hybrid_config(), 2);
        p.attach(0).unwrap();
        p.attach(1).unwrap();
        p.check_batch(&[0, 1, 0], &[0, 0, 1]).unwrap();
        assert!(p.check_batch(&[0], &[1]).is_err());
        assert!(p.check_batch(&[0, 0], &[0, 2]).is_err());
        assert!(p.check_batch(&[5], &[0]).is_err());
        p.advance(&[0, 1, 0], &[0, 0, 1]);
        assert_eq!(p.n_past(0), Some(2));
        p.check_batch(&[0, 1], &[2, 1]).unwrap();
        p.reset(0).unwrap();
        assert_eq!(p.n_past(0), Some(0));
    }

    #[test]
    fn copy_and_borrow_states() {
        let mut p = RecurrentPool::new(&hybrid_config(), 3);
        for s in [4, 5] {
            p.attach(s).unwrap();
        }
        {
            let mut st = p.layer_states_mut(0, &[5, 4]).unwrap();
            st[0].1[0] = 3.0;
            st[1].0[0] = 1.0;
        }
        assert!(
            p.layer_states_mut(1, &[4]).is_err(),
            "attention layer has no state"
        );
        p.advance(&[5], &[0]);
        p.copy_state(5, 4).unwrap();
        assert_eq!(p.n_past(4), Some(1));
        let st = p.layer_states_mut(0, &[4]).unwrap();
        assert_eq!(st[0].1[0], 3.0);
        assert_eq!(st[0].0[0], 0.0);
    }
}
