//! A batch: the unit of work of one forward pass. A flat list of tokens, each with its
//! sequence, its position in that sequence and whether its logits are wanted. One sequence's
//! decode step is a batch of one; a prompt is a batch of many; continuous batching mixes them.

use crate::kv::SeqId;

/// Tokens of one forward pass.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Token ids.
    pub tokens: Vec<u32>,
    /// Position of each token in its sequence.
    pub positions: Vec<usize>,
    /// Sequence of each token.
    pub seq_ids: Vec<SeqId>,
    /// Whether each token's logits are wanted.
    pub want_logits: Vec<bool>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Appends one token.
    pub fn push(&mut self, token: u32, position: usize, seq: SeqId, want_logits: bool) {
        self.tokens.push(token);
        self.positions.push(position);
        self.seq_ids.push(seq);
        self.want_logits.push(want_logits);
    }

    /// Appends `tokens` of sequence `seq` at positions `start..`; logits only for the last one
    /// when `logits_for_last` is set.
    pub fn push_sequence(
        &mut self,
        tokens: &[u32],
        start: usize,
        seq: SeqId,
        logits_for_last: bool,
    ) {
        for (i, &t) in tokens.iter().enumerate() {
            self.push(t, start + i, seq, logits_for_last && i + 1 == tokens.len());
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Number of tokens whose logits are wanted.
    pub fn n_outputs(&self) -> usize {
        self.want_logits.iter().filter(|&&w| w).count()
    }

    /// The batch's runs of consecutive tokens of one sequence, each cut into pieces of at most
    /// `max_len` tokens (at least 1), in batch order.
    pub(crate) fn sequence_runs(&self, max_len: usize) -> Vec<std::ops::Range<usize>> {
        let mut runs = Vec::new();
        let mut start = 0;
        for t in 1..=self.len() {
            if t == self.len() || self.seq_ids[t] != self.seq_ids[start] || t - start == max_len {
                runs.push(start..t);
                start = t;
            }
        }
        runs
    }

    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.tokens.clear();
        self.positions.clear();
        self.seq_ids.clear();
        self.want_logits.clear();
    }
}
