//! Counters and gauges the engine thread updates and anyone may read (the server's
//! `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters, shared between the engine thread and readers.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub requests: AtomicU64,
    pub finished: AtomicU64,
    pub cancelled: AtomicU64,
    pub failed: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub cached_tokens: AtomicU64,
    pub computed_tokens: AtomicU64,
    pub preemptions: AtomicU64,
    pub steps: AtomicU64,
    pub waiting: AtomicU64,
    pub running: AtomicU64,
    pub cached_seqs: AtomicU64,
    pub kv_blocks_used: AtomicU64,
    pub kv_blocks_free: AtomicU64,
    pub batch_tokens: AtomicU64,
    pub batch_seqs: AtomicU64,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            requests: self.requests.load(Relaxed),
            finished: self.finished.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            failed: self.failed.load(Relaxed),
            prompt_tokens: self.prompt_tokens.load(Relaxed),
            generated_tokens: self.generated_tokens.load(Relaxed),
            cached_tokens: self.cached_tokens.load(Relaxed),
            computed_tokens: self.computed_tokens.load(Relaxed),
            preemptions: self.preemptions.load(Relaxed),
            steps: self.steps.load(Relaxed),
            waiting: self.waiting.load(Relaxed),
            running: self.running.load(Relaxed),
            cached_seqs: self.cached_seqs.load(Relaxed),
            kv_blocks_used: self.kv_blocks_used.load(Relaxed),
            kv_blocks_free: self.kv_blocks_free.load(Relaxed),
            batch_tokens: self.batch_tokens.load(Relaxed),
            batch_seqs: self.batch_seqs.load(Relaxed),
        }
    }
}

/// A copy of the engine's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Requests accepted.
    pub requests: u64,
    /// Requests that ended normally (stop, length, context full).
    pub finished: u64,
    /// Requests cancelled (by id or by dropping their stream).
    pub cancelled: u64,
    /// Requests that failed in the engine.
    pub failed: u64,
    /// Prompt tokens of accepted requests.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Prompt tokens whose K/V was shared instead of computed (prefill saved).
    pub cached_tokens: u64,
    /// Tokens run through the model (prefill and decode, recomputation included).
    pub computed_tokens: u64,
    /// Sequences preempted for lack of KV blocks.
    pub preemptions: u64,
    /// Forward passes run.
    pub steps: u64,
    /// Requests waiting to start (queue depth).
    pub waiting: u64,
    /// Requests running.
    pub running: u64,
    /// Finished requests whose K/V is kept for prefix sharing (their blocks count as used).
    pub cached_seqs: u64,
    /// KV blocks in use.
    pub kv_blocks_used: u64,
    /// KV blocks free.
    pub kv_blocks_free: u64,
    /// Tokens in the last forward pass.
    pub batch_tokens: u64,
    /// Sequences in the last forward pass.
    pub batch_seqs: u64,
}
