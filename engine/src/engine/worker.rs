//! The engine thread: owns the model, the KV cache and the scheduler; takes commands from a
//! channel; each step runs the scheduler's batch through `Model::forward`, samples a token
//! for each sequence that asked, and sends the events back on each request's channel.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::embed::EmbedJob;
use super::metrics::Metrics;
use super::request::{Event, RequestId, Usage};
use crate::generate::{FinishReason, Utf8Stream};
use crate::kv::KvCache;
use crate::model::{ForwardState, Model};
use crate::sampler::{Sampler, StopStrings};
use crate::sched::{Scheduler, StepPlan};
use crate::tokenizer::Tokenizer;

/// A validated request, ready for the scheduler.
pub(crate) struct Job {
    pub id: RequestId,
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampler: Sampler,
    pub stop: StopStrings,
    pub ignore_eos: bool,
    pub events: Sender<Event>,
}

/// What callers send the engine thread.
pub(crate) enum Command {
    Submit(Box<Job>),
    /// Embedding request (served by the embedding worker only).
    Embed(EmbedJob),
    Cancel(RequestId),
    ClearCache,
    Shutdown,
}

/// A job while it runs.
struct Live {
    job: Job,
    utf8: Utf8Stream,
    generated: usize,
    cached: usize,
}

/// The engine thread's state.
pub(crate) struct Worker {
    /// Runs the forward passes instead of the CPU `state` when set (`--device cuda`).
    pub backend: Option<Box<dyn crate::backend::Backend>>,
    pub model: Model,
    pub tokenizer: Arc<Tokenizer>,
    pub sched: Scheduler<KvCache>,
    pub state: ForwardState,
    pub metrics: Arc<Metrics>,
    /// Longest sequence (prompt + generated) allowed.
    pub max_seq_len: usize,
}

impl Worker {
    /// Runs until `Shutdown` or until every sender is gone.
    pub fn run(mut self, commands: Receiver<Command>) {
        let mut live: HashMap<RequestId, Live> = HashMap::new();
        let mut plan = StepPlan::default();
        loop {
            // Block while idle; otherwise take whatever has arrived and go on.
            let mut first = if self.sched.is_idle() {
                match commands.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return,
                }
            } else {
                match commands.recv_timeout(Duration::ZERO) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            while let Some(cmd) = first.take().or_else(|| commands.try_recv().ok()) {
                match cmd {
                    Command::Submit(job) => self.admit(*job, &mut live),
                    Command::Cancel(id) => {
                        if let Some(l) = live.remove(&id) {
                            self.end(l, FinishReason::Cancelled);
                        }
                    }
                    Command::ClearCache => self.sched.clear_retained(),
                    Command::Embed(job) => {
                        let _ = job.reply.send(Err(crate::EngineError::InvalidRequest(
                            "this engine holds a generation model; it cannot embed".into(),
                        )));
                    }
                    Command::Shutdown => {
                        for (_, l) in live.drain() {
                            let _ = l.job.events.send(Event::Error("engine shut down".into()));
                            self.sched.finish(l.job.id);
                        }
                        return;
                    }
                }
            }
            self.step(&mut plan, &mut live);
            self.publish();
        }
    }

    fn admit(&mut self, job: Job, live: &mut HashMap<RequestId, Live>) {
        let id = job.id;
        if let Err(e) = self.sched.add(id, job.prompt.clone()) {
            let _ = job.events.send(Event::Error(e.to_string()));
            self.metrics.failed.fetch_add(1, Relaxed);
            return;
        }
        live.insert(
            id,
            Live {
                job,
                utf8: Utf8Stream::default(),
                generated: 0,
                cached: 0,
            },
        );
    }

    /// One scheduler step and one forward pass.
    fn step(&mut self, plan: &mut StepPlan, live: &mut HashMap<RequestId, Live>) {
        if let Err(e) = self.sched.schedule(plan) {
            // A scheduler error is a bug; fail everyone rather than loop on it.
            for (_, l) in live.drain() {
                let _ = l.job.events.send(Event::Error(format!("scheduler: {e}")));
                self.sched.finish(l.job.id);
                self.metrics.failed.fetch_add(1, Relaxed);
            }
            return;
        }
        for &seq in &plan.out_of_space {
            if let Some(l) = live.remove(&seq) {
                self.end(l, FinishReason::ContextFull);
            }
        }
        self.metrics
            .cached_tokens
            .fetch_add(plan.reused_tokens as u64, Relaxed);
        for &(seq, reused) in &plan.started {
            if let Some(l) = live.get_mut(&seq) {
                if l.generated == 0 {
                    l.cached = reused;
                }
            }
        }
        self.metrics
            .preemptions
            .fetch_add(plan.preempted.len() as u64, Relaxed);
        if plan.batch.is_empty() {
            if !self.sched.is_idle() {
                std::thread::sleep(Duration::from_millis(1));
            }
            return;
        }
        self.metrics
            .batch_tokens
            .store(plan.batch.len() as u64, Relaxed);
        self.metrics
            .batch_seqs
            .store(plan.seqs.len() as u64, Relaxed);
        self.metrics.steps.fetch_add(1, Relaxed);
        self.metrics
            .computed_tokens
            .fetch_add(plan.batch.len() as u64, Relaxed);
        let n_vocab = self.model.config().n_vocab;
        let forwarded = match &mut self.backend {
            Some(b) => b.forward(&self.model, &plan.batch, self.sched.kv_mut()),
            None => match self
                .model
                .forward(&plan.batch, self.sched.kv_mut(), &mut self.state)
            {
                // Read again through a shared borrow, so the pool can sample beside them.
                Ok(_) => Ok(self.state.logits()),
                Err(e) => Err(e),
            },
        };
        let logits = match forwarded {
            Ok(l) => l,
            Err(e) => {
                for p in &plan.seqs {
                    if let Some(l) = live.remove(&p.seq) {
                        let _ = l.job.events.send(Event::Error(e.to_string()));
                        self.sched.finish(p.seq);
                        self.metrics.failed.fetch_add(1, Relaxed);
                    }
                }
                return;
            }
        };
        self.sched.complete_step(plan);
        let tokens = sample_rows(self.state.pool(), plan, live, logits, n_vocab);
        let mut ended = Vec::new();
        for p in &plan.seqs {
            let Some(&tok) = tokens.get(&p.seq) else {
                continue;
            };
            let Some(l) = live.get_mut(&p.seq) else {
                continue;
            };
            l.job.sampler.accept(tok);
            l.generated += 1;
            self.metrics.generated_tokens.fetch_add(1, Relaxed);
            let finish = next_event(l, tok, &self.tokenizer, self.max_seq_len);
            match finish {
                None => {
                    let _ = self.sched.append_token(p.seq, tok);
                }
                Some(reason) => ended.push((p.seq, reason)),
            }
        }
        for (seq, reason) in ended {
            let l = live.remove(&seq).expect("live job");
            self.end(l, reason);
        }
    }

    /// Sends the last text and `Finished`, and frees the sequence.
    fn end(&mut self, mut l: Live, reason: FinishReason) {
        self.sched.finish(l.job.id);
        let mut text = String::new();
        if reason != FinishReason::Cancelled && l.job.stop.stopped().is_none() {
            let rest = l.utf8.finish();
            l.job.stop.push(&rest, &mut text);
            l.job.stop.finish(&mut text);
        }
        if !text.is_empty() {
            let _ = l.job.events.send(Event::Text(text));
        }
        let usage = Usage {
            prompt_tokens: l.job.prompt.len(),
            completion_tokens: l.generated,
            cached_tokens: l.cached,
        };
        let counter = if reason == FinishReason::Cancelled {
            &self.metrics.cancelled
        } else {
            &self.metrics.finished
        };
        counter.fetch_add(1, Relaxed);
        self.publish();
        let _ = l.job.events.send(Event::Finished { reason, usage });
    }

    fn publish(&self) {
        let m = &self.metrics;
        m.waiting.store(self.sched.n_waiting() as u64, Relaxed);
        m.running.store(self.sched.n_running() as u64, Relaxed);
        m.cached_seqs.store(self.sched.n_retained() as u64, Relaxed);
        m.kv_blocks_used
            .store(self.sched.kv().used_blocks() as u64, Relaxed);
        m.kv_blocks_free
            .store(self.sched.kv().free_blocks() as u64, Relaxed);
    }
}

/// Emits the event for a sampled token; returns why the request ends, if it does.
fn next_event(
    l: &mut Live,
    tok: u32,
    tokenizer: &Tokenizer,
    max_seq_len: usize,
) -> Option<FinishReason> {
    if !l.job.ignore_eos && tokenizer.is_eog(tok) {
        return Some(FinishReason::Stop);
    }
    let piece = tokenizer.token_to_piece(tok, false).unwrap_or(b"");
    let decoded = l.utf8.push(piece);
    let mut text = String::new();
    let stopped = l.job.stop.push(&decoded, &mut text).is_some();
    if l.job.events.send(Event::Token { id: tok, text }).is_err() {
        return Some(FinishReason::Cancelled);
    }
    if stopped {
        Some(FinishReason::Stop)
    } else if l.generated >= l.job.max_tokens {
        Some(FinishReason::Length)
    } else if l.job.prompt.len() + l.generated >= max_seq_len {
        Some(FinishReason::ContextFull)
    } else {
        None
    }
}

/// One sequence's sampling in [`sample_rows`]: its id, sampler, logits row and the token drawn.
type SampleJob<'a> = (RequestId, &'a mut Sampler, &'a [f32], u32);

/// Samples the next token of every sequence of `plan` that has a logits row, the samplers on
/// the pool's threads: each is independent, and a row of a large vocabulary costs up to a few
/// tenths of a millisecond to sample (Gemma 3: 262 144 entries), which eight sequences one after
/// another added to every step while the pool sat idle.
fn sample_rows(
    pool: &nanorun_kernels::ThreadPool,
    plan: &StepPlan,
    live: &mut HashMap<RequestId, Live>,
    logits: &[f32],
    n_vocab: usize,
) -> HashMap<RequestId, u32> {
    let rows: HashMap<RequestId, usize> = plan
        .seqs
        .iter()
        .filter_map(|p| Some((p.seq, p.logits_row?)))
        .collect();
    let jobs: Vec<Mutex<SampleJob<'_>>> = live
        .iter_mut()
        .filter_map(|(seq, l)| {
            let row = *rows.get(seq)?;
            let logits = &logits[row * n_vocab..(row + 1) * n_vocab];
            Some(Mutex::new((*seq, &mut l.job.sampler, logits, 0)))
        })
        .collect();
    pool.run(jobs.len(), |i| {
        let mut job = jobs[i].lock().unwrap_or_else(|e| e.into_inner());
        let (_, sampler, logits, token) = &mut *job;
        *token = sampler.sample(logits);
    });
    jobs.into_iter()
        .map(|j| {
            let (seq, _, _, token) = j.into_inner().unwrap_or_else(|e| e.into_inner());
            (seq, token)
        })
        .collect()
}
