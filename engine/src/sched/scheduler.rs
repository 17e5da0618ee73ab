//! Continuous batching: which tokens of which sequences go into the next forward pass.
//!
//! A waiting queue and a running set. Each step takes every running sequence's next token (or
//! the next chunk of a prompt still being read), then admits waiting sequences with chunks of
//! their prompts while the step's token budget lasts (chunked prefill), reserving KV blocks as
//! it goes. When blocks run out it preempts the newest running sequence: its blocks are freed
//! and it goes back to the waiting queue to be recomputed later (its tokens, generated ones
//! included, are kept). Finished and cancelled sequences free their blocks at once.
//!
//! The scheduler never touches tensors: the caller runs the planned [`Batch`], samples from
//! the logits rows the plan names, and reports back ([`Scheduler::complete_step`],
//! [`Scheduler::append_token`], [`Scheduler::finish`]).

use std::collections::VecDeque;

use super::kv_manager::{Donor, KvManager, KvSpace};
use crate::batch::Batch;
use crate::error::{EngineError, Result};
use crate::kv::SeqId;

/// Limits of the scheduler.
#[derive(Clone, Copy, Debug)]
pub struct SchedulerConfig {
    /// Sequences running at once (`-np`).
    pub max_seqs: usize,
    /// Tokens per forward pass (decode tokens plus prefill chunks); at least `max_seqs`.
    pub max_batch_tokens: usize,
    /// Share identical prompt prefixes between sequences.
    pub prefix_sharing: bool,
    /// Finished sequences whose K/V is kept for later requests to share (a prefix cache,
    /// evicted oldest first when blocks run short); 0 keeps none. Needs `prefix_sharing`.
    pub retain_finished: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_seqs: 8,
            max_batch_tokens: 512,
            prefix_sharing: true,
            retain_finished: 0,
        }
    }
}

/// One sequence as the scheduler sees it.
#[derive(Clone, Debug)]
struct SeqState {
    id: SeqId,
    /// Prompt followed by the generated tokens.
    tokens: Vec<u32>,
    /// Tokens whose K/V is in the cache.
    n_computed: usize,
    /// Order of arrival (older first); preempted sequences keep theirs.
    arrival: u64,
    /// Whether the KV cache holds the sequence (started, not preempted).
    started: bool,
}

/// One sequence's share of a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheduled {
    /// The sequence.
    pub seq: SeqId,
    /// Its first position in this batch.
    pub start: usize,
    /// Tokens it has in this batch.
    pub n_tokens: usize,
    /// Row of the returned logits that belongs to it, when its last token asked for logits
    /// (it then needs a new token sampled).
    pub logits_row: Option<usize>,
}

/// What one step runs, and what the scheduler did to make room.
#[derive(Clone, Debug, Default)]
pub struct StepPlan {
    /// The tokens to run.
    pub batch: Batch,
    /// Per sequence in the batch, in batch order.
    pub seqs: Vec<Scheduled>,
    /// Sequences preempted in this step (blocks freed; they will be recomputed).
    pub preempted: Vec<SeqId>,
    /// Sequences that can never fit in the cache, even alone: removed; the caller ends them
    /// (context full).
    pub out_of_space: Vec<SeqId>,
    /// Prompt tokens whose K/V was taken from another sequence this step.
    pub reused_tokens: usize,
    /// Sequences started (or restarted after preemption) this step, with the tokens each
    /// took from another sequence.
    pub started: Vec<(SeqId, usize)>,
}

impl StepPlan {
    fn clear(&mut self) {
        self.batch.clear();
        self.seqs.clear();
        self.preempted.clear();
        self.out_of_space.clear();
        self.reused_tokens = 0;
        self.started.clear();
    }
}

/// Running totals, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Tokens run through the model.
    pub computed_tokens: u64,
    /// Prompt tokens whose K/V came from another sequence (prefill saved).
    pub reused_tokens: u64,
    /// Preemptions.
    pub preemptions: u64,
}

/// The waiting queue, the running set and the KV manager.
#[derive(Debug)]
pub struct Scheduler<K> {
    cfg: SchedulerConfig,
    kv: KvManager<K>,
    waiting: VecDeque<SeqState>,
    /// Sorted by arrival, oldest first.
    running: Vec<SeqState>,
    /// Finished sequences kept for their prefix, least recently used first. Their K/V stays
    /// in the cache until they are evicted.
    retained: VecDeque<SeqState>,
    next_arrival: u64,
    stats: SchedulerStats,
}

impl<K: KvSpace> Scheduler<K> {
    /// A scheduler over `kv`. Fails when the limits are zero or the budget cannot hold one
    /// token per running sequence.
    pub fn new(cfg: SchedulerConfig, kv: K) -> Result<Scheduler<K>> {
        if cfg.max_seqs == 0 || cfg.max_batch_tokens < cfg.max_seqs {
            return Err(EngineError::InvalidRequest(format!(
                "scheduler needs at least one sequence and a batch of at least one token per \
                 sequence (max_seqs {}, max_batch_tokens {})",
                cfg.max_seqs, cfg.max_batch_tokens
            )));
        }
        Ok(Scheduler {
            cfg,
            kv: KvManager::new(kv),
            waiting: VecDeque::new(),
            running: Vec::new(),
            retained: VecDeque::new(),
            next_arrival: 0,
            stats: SchedulerStats::default(),
        })
    }

    /// The limits.
    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// The KV manager.
    pub fn kv(&self) -> &KvManager<K> {
        &self.kv
    }

    /// The cache, mutably (for the forward pass).
    pub fn kv_mut(&mut self) -> &mut K {
        self.kv.kv_mut()
    }

    /// Running totals.
    pub fn stats(&self) -> SchedulerStats {
        self.stats
    }

    /// Sequences waiting (new or preempted).
    pub fn n_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Sequences running.
    pub fn n_running(&self) -> usize {
        self.running.len()
    }

    /// Finished sequences kept for their prefix.
    pub fn n_retained(&self) -> usize {
        self.retained.len()
    }

    /// Drops every retained finished sequence, freeing its blocks.
    pub fn clear_retained(&mut self) {
        while self.evict_one() {}
    }

    /// Frees the least recently used retained sequence; false when none is left.
    fn evict_one(&mut self) -> bool {
        match self.retained.pop_front() {
            Some(s) => {
                self.kv.free(s.id);
                true
            }
            None => false,
        }
    }

    /// Whether nothing is waiting or running (retained sequences do not count).
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Whether `seq` is known (waiting or running).
    pub fn contains(&self, seq: SeqId) -> bool {
        self.running.iter().any(|s| s.id == seq) || self.waiting.iter().any(|s| s.id == seq)
    }

    /// Queues a new sequence with its prompt (at least one token; `seq` must be unused).
    pub fn add(&mut self, seq: SeqId, prompt: Vec<u32>) -> Result<()> {
        if prompt.is_empty() {
            return Err(EngineError::InvalidRequest("the prompt is empty".into()));
        }
        if self.contains(seq) {
            return Err(EngineError::BadBatch(format!(
                "sequence {seq} already scheduled"
            )));
        }
        if let Some(i) = self.retained.iter().position(|r| r.id == seq) {
            // The id is reused: the old K/V goes.
            let old = self.retained.remove(i).expect("index found above");
            self.kv.free(old.id);
        }
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.waiting.push_back(SeqState {
            id: seq,
            tokens: prompt,
            n_computed: 0,
            arrival,
            started: false,
        });
        Ok(())
    }

    /// Plans the next step into `plan` (cleared first). An empty batch means there is nothing
    /// to run (idle, or waiting sequences that do not fit yet).
    pub fn schedule(&mut self, plan: &mut StepPlan) -> Result<()> {
        plan.clear();
        let mut budget = self.cfg.max_batch_tokens;
        self.schedule_running(plan, &mut budget)?;
        self.admit_waiting(plan, &mut budget)?;
        Ok(())
    }

    /// Every running sequence's next token(s), oldest first, preempting the newest when the
    /// blocks run out.
    fn schedule_running(&mut self, plan: &mut StepPlan, budget: &mut usize) -> Result<()> {
        let mut i = 0;
        while i < self.running.len() {
            let s = &self.running[i];
            let n = (s.tokens.len() - s.n_computed).min(*budget);
            if n == 0 {
                i += 1;
                continue;
            }
            let (id, end) = (s.id, s.n_computed + n);
            if self.kv.try_grow(id, end)? {
                self.push(plan, i, n);
                *budget -= n;
                i += 1;
                continue;
            }
            // Out of blocks: drop a retained prefix first, then free the newest running
            // sequence (this one, when it is the newest).
            if self.evict_one() {
                continue;
            }
            let victim = self.running.len() - 1;
            if victim == 0 {
                // Alone and still no room: it can never fit.
                let s = self.running.remove(0);
                self.kv.free(s.id);
                plan.out_of_space.push(s.id);
                continue;
            }
            self.preempt(victim, plan);
        }
        Ok(())
    }

    /// Admits waiting sequences (oldest first) while the budget, the sequence limit and the
    /// blocks last.
    fn admit_waiting(&mut self, plan: &mut StepPlan, budget: &mut usize) -> Result<()> {
        while *budget > 0 && self.running.len() < self.cfg.max_seqs {
            let Some(mut s) = self.waiting.pop_front() else {
                break;
            };
            if self.should_wait_for_prefix(&s) {
                self.waiting.push_front(s);
                break;
            }
            let mut reused_now = usize::MAX;
            if !s.started {
                let donors = self.running.iter().chain(&self.retained).map(|r| Donor {
                    seq: r.id,
                    tokens: &r.tokens,
                    n_computed: r.n_computed,
                });
                let (reused, donor) = if self.cfg.prefix_sharing {
                    self.kv.start(s.id, &s.tokens, donors)?
                } else {
                    self.kv.start(s.id, &s.tokens, std::iter::empty())?
                };
                if let Some(i) = donor.and_then(|d| self.retained.iter().position(|r| r.id == d)) {
                    // Used: now the most recently used.
                    let r = self.retained.remove(i).expect("index found above");
                    self.retained.push_back(r);
                }
                s.n_computed = reused;
                reused_now = reused;
                s.started = true;
                plan.reused_tokens += reused;
                self.stats.reused_tokens += reused as u64;
            }
            let n = (s.tokens.len() - s.n_computed).min(*budget);
            let mut grown = self.kv.try_grow(s.id, s.n_computed + n)?;
            while !grown && self.evict_one() {
                grown = self.kv.try_grow(s.id, s.n_computed + n)?;
            }
            if !grown {
                self.kv.free(s.id);
                if self.running.is_empty() {
                    plan.out_of_space.push(s.id);
                    continue;
                }
                // Undo the start (shared blocks included); retry when blocks are freed.
                plan.reused_tokens -= s.n_computed.min(plan.reused_tokens);
                self.stats.reused_tokens -= (s.n_computed as u64).min(self.stats.reused_tokens);
                s.n_computed = 0;
                s.started = false;
                self.waiting.push_front(s);
                break;
            }
            if reused_now != usize::MAX {
                plan.started.push((s.id, reused_now));
            }
            let at = self.running.partition_point(|r| r.arrival < s.arrival);
            self.running.insert(at, s);
            self.push(plan, at, n);
            *budget -= n;
        }
        Ok(())
    }

    /// Whether a running sequence still reading its prompt will soon hold a longer prefix of
    /// `s` (at least a block more) than it does now: then `s` waits a step to share it rather
    /// than computing the same tokens twice.
    fn should_wait_for_prefix(&self, s: &SeqState) -> bool {
        if !self.cfg.prefix_sharing || s.started {
            return false;
        }
        let bs = self.kv.kv().block_size().max(1);
        self.running.iter().any(|r| {
            r.n_computed < r.tokens.len()
                && super::kv_manager::common_prefix(&r.tokens, &s.tokens).min(s.tokens.len() - 1)
                    >= r.n_computed + bs
        })
    }

    /// Adds the next `n` tokens of running sequence `i` to the plan.
    fn push(&mut self, plan: &mut StepPlan, i: usize, n: usize) {
        let s = &self.running[i];
        let start = s.n_computed;
        let last = start + n == s.tokens.len();
        plan.batch
            .push_sequence(&s.tokens[start..start + n], start, s.id, last);
        let logits_row = last.then(|| plan.batch.n_outputs() - 1);
        // Keep the plan in batch order (admissions may insert in the middle of `running`).
        plan.seqs.push(Scheduled {
            seq: s.id,
            start,
            n_tokens: n,
            logits_row,
        });
    }

    /// Frees running sequence `i`'s blocks and puts it back in the waiting queue (in arrival
    /// order) to be recomputed.
    fn preempt(&mut self, i: usize, plan: &mut StepPlan) {
        let mut s = self.running.remove(i);
        self.kv.free(s.id);
        s.n_computed = 0;
        s.started = false;
        plan.preempted.push(s.id);
        self.stats.preemptions += 1;
        let at = self.waiting.partition_point(|w| w.arrival < s.arrival);
        self.waiting.insert(at, s);
    }

    /// Records that the planned batch ran: its tokens' K/V is now in the cache.
    pub fn complete_step(&mut self, plan: &StepPlan) {
        for p in &plan.seqs {
            if let Some(s) = self.running.iter_mut().find(|s| s.id == p.seq) {
                s.n_computed = s.n_computed.max(p.start + p.n_tokens);
                self.stats.computed_tokens += p.n_tokens as u64;
            }
        }
        for s in &self.running {
            self.kv.kv_mut().release_out_of_window(s.id);
        }
    }

    /// Appends a sampled token to running sequence `seq` (to be run next step).
    pub fn append_token(&mut self, seq: SeqId, token: u32) -> Result<()> {
        let s = self
            .running
            .iter_mut()
            .find(|s| s.id == seq)
            .ok_or_else(|| EngineError::BadBatch(format!("sequence {seq} is not running")))?;
        s.tokens.push(token);
        Ok(())
    }

    /// Ends `seq` (finished or cancelled), waiting or running, and frees its blocks at once
    /// (or, with `retain_finished`, keeps them for later requests to share until evicted).
    /// Returns whether it was known.
    pub fn finish(&mut self, seq: SeqId) -> bool {
        if let Some(i) = self.running.iter().position(|s| s.id == seq) {
            let mut s = self.running.remove(i);
            let keep = self.cfg.prefix_sharing
                && self.cfg.retain_finished > 0
                && s.n_computed >= self.kv.min_share();
            if keep {
                s.tokens.truncate(s.n_computed);
                self.retained.push_back(s);
                if self.retained.len() > self.cfg.retain_finished {
                    self.evict_one();
                }
            } else {
                self.kv.free(seq);
            }
            return true;
        }
        if let Some(i) = self.waiting.iter().position(|s| s.id == seq) {
            let s = self.waiting.remove(i).expect("index found above");
            if s.started {
                self.kv.free(seq);
            }
            return true;
        }
        false
    }

    /// Tokens (prompt and generated) of a known sequence.
    pub fn tokens(&self, seq: SeqId) -> Option<&[u32]> {
        self.running
            .iter()
            .chain(self.waiting.iter())
            .find(|s| s.id == seq)
            .map(|s| s.tokens.as_slice())
    }
}
