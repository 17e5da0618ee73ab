//! Scheduler tests with a fake cache (a block pool whose "K/V" is the token id stored at each
//! slot) and a fake model (the next token is a hash of every token the sequence can read back
//! through its block table), so wrong sharing, copying or preemption changes the output.

use std::collections::HashMap;

use super::*;
use crate::error::{EngineError, Result};
use crate::kv::{BlockPool, SeqId};

struct FakeKv {
    bs: usize,
    pool: BlockPool,
    slots: Vec<Option<u32>>,
    tables: HashMap<SeqId, (usize, Vec<u32>)>,
}

impl FakeKv {
    fn new(n_blocks: usize, bs: usize) -> FakeKv {
        FakeKv {
            bs,
            pool: BlockPool::new(n_blocks),
            slots: vec![None; n_blocks * bs],
            tables: HashMap::new(),
        }
    }

    fn slot(&self, seq: SeqId, pos: usize) -> usize {
        let (len, t) = &self.tables[&seq];
        assert!(pos < *len, "seq {seq} pos {pos} not reserved ({len})");
        t[pos / self.bs] as usize * self.bs + pos % self.bs
    }
}

impl KvSpace for FakeKv {
    fn add_sequence(&mut self, seq: SeqId) -> Result<()> {
        assert!(self.tables.insert(seq, (0, Vec::new())).is_none());
        Ok(())
    }
    fn grow_to(&mut self, seq: SeqId, len: usize) -> Result<()> {
        let (cur, t) = self.tables.get_mut(&seq).expect("known seq");
        let need = len.div_ceil(self.bs).saturating_sub(t.len());
        if need > self.pool.n_free() {
            return Err(EngineError::KvExhausted {
                needed: need,
                free: self.pool.n_free(),
            });
        }
        for _ in 0..need {
            t.push(self.pool.allocate().unwrap());
        }
        *cur = (*cur).max(len);
        Ok(())
    }
    fn fork_prefix(&mut self, src: SeqId, dst: SeqId, len: usize) -> Result<()> {
        let (slen, st) = self.tables[&src].clone();
        assert!(len <= slen);
        let (full, partial) = (len / self.bs, len % self.bs);
        if partial > 0 && self.pool.n_free() == 0 {
            return Err(EngineError::KvExhausted { needed: 1, free: 0 });
        }
        let mut t: Vec<u32> = st[..full].to_vec();
        for &b in &t {
            self.pool.retain(b);
        }
        if partial > 0 {
            let b = self.pool.allocate().unwrap();
            for p in 0..partial {
                self.slots[b as usize * self.bs + p] = self.slots[st[full] as usize * self.bs + p];
            }
            t.push(b);
        }
        assert!(self.tables.insert(dst, (len, t)).is_none());
        Ok(())
    }
    fn remove_sequence(&mut self, seq: SeqId) {
        if let Some((_, t)) = self.tables.remove(&seq) {
            for b in t {
                self.pool.release(b);
            }
        }
    }
    fn release_out_of_window(&mut self, _seq: SeqId) {}
    fn free_blocks(&self) -> Vec<usize> {
        vec![self.pool.n_free()]
    }
    fn total_blocks(&self) -> Vec<usize> {
        vec![self.pool.capacity()]
    }
    fn block_size(&self) -> usize {
        self.bs
    }
}

/// The fake forward pass: stores each token, then for each token that wants logits returns
/// the "next token", a hash of the sequence's tokens `0..=pos` read back from the cache.
fn fake_forward(kv: &mut FakeKv, batch: &crate::Batch) -> Vec<u32> {
    for t in 0..batch.len() {
        let slot = kv.slot(batch.seq_ids[t], batch.positions[t]);
        kv.slots[slot] = Some(batch.tokens[t]);
    }
    let mut out = Vec::new();
    for t in 0..batch.len() {
        if !batch.want_logits[t] {
            continue;
        }
        let mut h: u64 = 1469598103934665603;
        for p in 0..=batch.positions[t] {
            let tok = kv.slots[kv.slot(batch.seq_ids[t], p)].expect("position written");
            h = (h ^ tok as u64).wrapping_mul(1099511628211);
        }
        out.push((h % 1000) as u32);
    }
    out
}

/// Runs every prompt to `max_new` tokens; returns the generated tokens per sequence and the
/// scheduler (for its stats and pool).
fn drive(
    cfg: SchedulerConfig,
    kv: FakeKv,
    prompts: &[Vec<u32>],
    max_new: usize,
    cancel_after: Option<(SeqId, usize)>,
) -> (HashMap<SeqId, Vec<u32>>, Scheduler<FakeKv>, usize) {
    let mut s = Scheduler::new(cfg, kv).unwrap();
    for (i, p) in prompts.iter().enumerate() {
        s.add(i as SeqId, p.clone()).unwrap();
    }
    let mut out: HashMap<SeqId, Vec<u32>> = HashMap::new();
    let mut plan = StepPlan::default();
    let mut steps = 0;
    let mut max_batch_seqs = 0;
    while !s.is_idle() {
        steps += 1;
        assert!(steps < 10_000, "scheduler made no progress");
        s.schedule(&mut plan).unwrap();
        for &seq in &plan.out_of_space {
            out.entry(seq).or_default();
        }
        if plan.batch.is_empty() {
            continue;
        }
        assert!(plan.batch.len() <= cfg.max_batch_tokens);
        max_batch_seqs = max_batch_seqs.max(plan.seqs.len());
        let next = fake_forward(s.kv_mut(), &plan.batch);
        s.complete_step(&plan);
        for p in plan.seqs.clone() {
            let Some(row) = p.logits_row else { continue };
            let gen = out.entry(p.seq).or_default();
            // A recomputed sequence re-reaches its end: only sample past what it has.
            let n_tokens = s.tokens(p.seq).unwrap().len();
            let prompt_len = prompts[p.seq as usize].len();
            assert_eq!(n_tokens, prompt_len + gen.len());
            gen.push(next[row]);
            let cancelled = cancel_after.is_some_and(|(c, n)| c == p.seq && gen.len() >= n);
            if gen.len() >= max_new || cancelled {
                assert!(s.finish(p.seq));
            } else {
                s.append_token(p.seq, next[row]).unwrap();
            }
        }
    }
    (out, s, max_batch_seqs)
}

fn prompt(seed: u32, len: usize) -> Vec<u32> {
    (0..len as u32).map(|i| (seed * 31 + i * 7) % 97).collect()
}

fn alone(p: &[u32], max_new: usize) -> Vec<u32> {
    let cfg = SchedulerConfig {
        max_seqs: 1,
        max_batch_tokens: 64,
        prefix_sharing: false,
        ..SchedulerConfig::default()
    };
    let (out, _, _) = drive(cfg, FakeKv::new(64, 4), &[p.to_vec()], max_new, None);
    out[&0].clone()
}

#[test]
fn concurrent_sequences_match_each_alone_and_free_every_block() {
    let prompts: Vec<Vec<u32>> = (0..6).map(|i| prompt(i, 5 + 3 * i as usize)).collect();
    let cfg = SchedulerConfig {
        max_seqs: 4,
        max_batch_tokens: 8,
        prefix_sharing: true,
        ..SchedulerConfig::default()
    };
    let (out, s, max_batch) = drive(cfg, FakeKv::new(64, 4), &prompts, 10, None);
    for (i, p) in prompts.iter().enumerate() {
        assert_eq!(out[&(i as SeqId)], alone(p, 10), "sequence {i}");
    }
    assert!(max_batch >= 3, "sequences were batched together");
    assert_eq!(s.kv().free_blocks(), 64);
}

#[test]
fn running_out_of_blocks_preempts_and_recomputes() {
    let prompts: Vec<Vec<u32>> = (0..5).map(|i| prompt(i + 10, 9)).collect();
    let cfg = SchedulerConfig {
        max_seqs: 5,
        max_batch_tokens: 32,
        prefix_sharing: false,
        ..SchedulerConfig::default()
    };
    // 5 sequences of 9 + 12 tokens need 6 blocks of 4 each; 14 blocks force preemptions.
    let (out, s, _) = drive(cfg, FakeKv::new(14, 4), &prompts, 12, None);
    assert!(s.stats().preemptions > 0, "expected preemptions");
    for (i, p) in prompts.iter().enumerate() {
        assert_eq!(out[&(i as SeqId)], alone(p, 12), "sequence {i}");
    }
    assert_eq!(s.kv().free_blocks(), 14);
}

#[test]
fn shared_prefixes_are_reused_and_give_the_same_tokens() {
    let system = prompt(99, 22); // 5 full blocks of 4 and a partial one
    let prompts: Vec<Vec<u32>> = (0..4)
        .map(|i| {
            let mut p = system.clone();
            p.extend(prompt(i, 3 + i as usize));
            p
        })
        .collect();
    let cfg = SchedulerConfig {
        max_seqs: 4,
        max_batch_tokens: 64,
        prefix_sharing: true,
        ..SchedulerConfig::default()
    };
    let (out, s, _) = drive(cfg, FakeKv::new(64, 4), &prompts, 6, None);
    for (i, p) in prompts.iter().enumerate() {
        assert_eq!(out[&(i as SeqId)], alone(p, 6), "sequence {i}");
    }
    // The first computes the shared 22 tokens; the three others reuse them.
    assert_eq!(s.stats().reused_tokens, 3 * 22);
    assert_eq!(s.kv().free_blocks(), 64);
}

#[test]
fn an_identical_prompt_shares_all_but_its_last_token() {
    let p = prompt(5, 16);
    let cfg = SchedulerConfig::default();
    let (out, s, _) = drive(cfg, FakeKv::new(64, 4), &[p.clone(), p.clone()], 4, None);
    assert_eq!(out[&0], out[&1]);
    assert_eq!(s.stats().reused_tokens, 15);
}

#[test]
fn cancelled_and_out_of_space_sequences_free_their_blocks() {
    let prompts = vec![prompt(1, 10), prompt(2, 10), prompt(3, 40)];
    let cfg = SchedulerConfig {
        max_seqs: 3,
        max_batch_tokens: 16,
        prefix_sharing: true,
        ..SchedulerConfig::default()
    };
    // 8 blocks of 4 = 32 tokens: the 40-token prompt can never fit.
    let (out, s, _) = drive(cfg, FakeKv::new(8, 4), &prompts, 5, Some((1, 2)));
    assert_eq!(out[&0].len(), 5);
    assert_eq!(out[&1].len(), 2);
    assert!(out[&2].is_empty());
    assert_eq!(s.kv().free_blocks(), 8);
    assert!(s.is_idle());
}

#[test]
fn finishing_a_waiting_sequence_removes_it() {
    let mut s = Scheduler::new(SchedulerConfig::default(), FakeKv::new(8, 4)).unwrap();
    s.add(7, vec![1, 2, 3]).unwrap();
    assert!(s.add(7, vec![1]).is_err());
    assert!(s.add(8, vec![]).is_err());
    assert!(s.finish(7));
    assert!(!s.finish(7));
    assert!(s.is_idle());
}

#[test]
fn bad_limits_are_refused() {
    let cfg = SchedulerConfig {
        max_seqs: 8,
        max_batch_tokens: 4,
        prefix_sharing: true,
        ..SchedulerConfig::default()
    };
    assert!(Scheduler::new(cfg, FakeKv::new(8, 4)).is_err());
}

#[test]
fn finished_sequences_lend_their_prefix_until_blocks_run_short() {
    let system = prompt(7, 24);
    let a = [system.clone(), prompt(1, 4)].concat();
    let b = [system.clone(), prompt(2, 4)].concat();
    let cfg = SchedulerConfig {
        max_seqs: 2,
        max_batch_tokens: 64,
        prefix_sharing: true,
        retain_finished: 4,
    };
    // One after the other: the second reuses the first's prefix after it finished.
    let mut s = Scheduler::new(cfg, FakeKv::new(16, 4)).unwrap();
    let mut plan = StepPlan::default();
    let mut run = |s: &mut Scheduler<FakeKv>, id: SeqId, p: &[u32]| {
        s.add(id, p.to_vec()).unwrap();
        let mut out = Vec::new();
        while out.len() < 3 {
            s.schedule(&mut plan).unwrap();
            let next = fake_forward(s.kv_mut(), &plan.batch);
            s.complete_step(&plan);
            let row = plan.seqs[0].logits_row.expect("logits");
            out.push(next[row]);
            s.append_token(id, next[row]).unwrap();
        }
        s.finish(id);
        out
    };
    let out_a = run(&mut s, 0, &a);
    assert_eq!(s.n_retained(), 1);
    let before = s.stats().reused_tokens;
    let out_b = run(&mut s, 1, &b);
    assert_eq!(
        s.stats().reused_tokens - before,
        24,
        "the shared prefix came from the cache"
    );
    assert_eq!(out_a, alone(&a, 3));
    assert_eq!(out_b, alone(&b, 3));
    assert_eq!(s.n_retained(), 2);
    // A long request needs the blocks: the retained prefixes are evicted, nothing preempted.
    let long = prompt(9, 60);
    let out_c = run(&mut s, 2, &long);
    assert_eq!(out_c, alone(&long, 3));
    assert_eq!(s.stats().preemptions, 0);
    s.clear_retained();
    assert_eq!(s.kv().free_blocks(), 16);
}
