//! Generation for one sequence: prompt → chunked prefill → sample / decode loop → streamed
//! text. This is what `nanorun -m MODEL -p PROMPT` runs; the multi-request scheduler drives the
//! same `Model::forward` with batches of many sequences.

use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::batch::Batch;
use crate::error::{EngineError, Result};
use crate::kv::{KvCache, KvCacheConfig};
use crate::model::{ForwardState, Model};
use crate::sampler::{Sampler, SamplingParams};
use crate::tokenizer::Tokenizer;

/// Options of one generation.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Sampling parameters.
    pub sampling: SamplingParams,
    /// Tokens per prefill batch.
    pub batch_size: usize,
    /// Stop at an end-of-generation token (it is not printed).
    pub stop_at_eog: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 64,
            sampling: SamplingParams::default(),
            batch_size: 512,
            stop_at_eog: true,
        }
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// `max_tokens` reached.
    Length,
    /// An end-of-generation token was sampled.
    Stop,
    /// The context is full.
    ContextFull,
    /// The caller's callback asked to stop.
    Cancelled,
}

impl FinishReason {
    /// Lower-case name, as OpenAI spells the common ones.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Length => "length",
            FinishReason::Stop => "stop",
            FinishReason::ContextFull => "context_full",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// What a generation did.
#[derive(Clone, Debug)]
pub struct Generation {
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// Generated token ids (an end-of-generation token that stopped the run is included).
    pub generated_ids: Vec<u32>,
    /// Generated text.
    pub text: String,
    /// Why it stopped.
    pub finish: FinishReason,
    /// Time spent on the prompt.
    pub prefill_time: Duration,
    /// Time spent generating (from the first sampled token on).
    pub decode_time: Duration,
}

impl Generation {
    /// Prompt tokens per second.
    pub fn prefill_tps(&self) -> f64 {
        self.prompt_ids.len() as f64 / self.prefill_time.as_secs_f64().max(1e-9)
    }

    /// Generated tokens per second (decode steps only).
    pub fn decode_tps(&self) -> f64 {
        self.generated_ids.len().saturating_sub(1) as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }
}

/// Turns token pieces into text without splitting a UTF-8 character across chunks.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds bytes; returns the text that is complete so far.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_some() => self.pending.len(), // invalid bytes: flush lossily
            Err(e) => e.valid_up_to(),
        };
        let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        out
    }

    /// Whatever is left (lossily).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// A model with its own KV cache and buffers, generating for one sequence at a time.
pub struct Session<'m> {
    model: &'m Model,
    tokenizer: &'m Tokenizer,
    kv: KvCache,
    state: ForwardState,
    /// Replaces the CPU forward pass when set (see [`Session::set_backend`]).
    backend: Option<Box<dyn Backend>>,
    n_ctx: usize,
}

const SEQ: crate::kv::SeqId = 0;

impl<'m> Session<'m> {
    /// A session with room for `kv.n_blocks × kv.block_size` tokens and `n_threads` threads.
    pub fn new(
        model: &'m Model,
        tokenizer: &'m Tokenizer,
        kv: KvCacheConfig,
        n_threads: usize,
    ) -> Result<Session<'m>> {
        let n_ctx = kv.n_blocks * kv.block_size;
        Ok(Session {
            model,
            tokenizer,
            kv: KvCache::new(model.config(), kv)?,
            state: ForwardState::new(n_threads),
            backend: None,
            n_ctx,
        })
    }

    /// Runs the forward passes on `backend` (e.g. the CUDA one from [`crate::backend::open`])
    /// instead of the CPU.
    pub fn set_backend(&mut self, backend: Box<dyn Backend>) {
        self.backend = Some(backend);
    }

    /// The name of the backend the forward passes run on.
    pub fn backend_name(&self) -> &'static str {
        self.backend.as_ref().map_or("cpu", |b| b.name())
    }

    /// One forward pass of `batch` on the session's backend.
    fn step(&mut self, batch: &Batch) -> Result<&[f32]> {
        match &mut self.backend {
            Some(b) => b.forward(self.model, batch, &mut self.kv),
            None => self.model.forward(batch, &mut self.kv, &mut self.state),
        }
    }

    /// Context length in tokens.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Limits the context to `n` tokens (the cache, allocated in whole blocks, may hold a few
    /// more); `n` above the cache's capacity is clamped to it.
    pub fn set_n_ctx(&mut self, n: usize) {
        self.n_ctx = n.clamp(1, self.kv.config().n_blocks * self.kv.config().block_size);
    }

    /// Tokenizes `prompt` as llama.cpp does for completion: BOS when the model wants it,
    /// special tokens parsed.
    pub fn tokenize(&self, prompt: &str) -> Vec<u32> {
        self.tokenizer.encode(prompt, true, true)
    }

    /// Generates from `prompt_ids`. `on_text` receives each piece of text as it is decoded
    /// and returns `false` to stop.
    pub fn generate(
        &mut self,
        prompt_ids: &[u32],
        opts: &GenerateOptions,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        if prompt_ids.is_empty() {
            return Err(EngineError::InvalidRequest("the prompt is empty".into()));
        }
        if prompt_ids.len() >= self.n_ctx {
            return Err(EngineError::InvalidRequest(format!(
                "the prompt has {} tokens; the context holds {} (raise -c)",
                prompt_ids.len(),
                self.n_ctx
            )));
        }
        let n_vocab = self.model.config().n_vocab;
        if let Some(&bad) = prompt_ids.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(EngineError::InvalidRequest(format!(
                "prompt token {bad} is outside the vocabulary ({n_vocab})"
            )));
        }
        let mut sampler = Sampler::new(opts.sampling.clone())
            .map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
        self.kv.remove_sequence(SEQ);
        self.kv.add_sequence(SEQ)?;
        for &t in prompt_ids {
            sampler.accept(t);
        }

        // Prefill in chunks; logits only for the last prompt token.
        let t0 = Instant::now();
        let mut batch = Batch::new();
        let chunk = opts.batch_size.max(1);
        let mut logits = Vec::new();
        for (i, part) in prompt_ids.chunks(chunk).enumerate() {
            let start = i * chunk;
            let last = start + part.len() == prompt_ids.len();
            batch.clear();
            batch.push_sequence(part, start, SEQ, last);
            self.kv.grow_to(SEQ, start + part.len())?;
            let out = self.step(&batch)?;
            if last {
                logits.clear();
                logits.extend_from_slice(out);
            }
            self.kv.release_out_of_window(SEQ);
        }
        let prefill_time = t0.elapsed();

        let t1 = Instant::now();
        let mut generated = Vec::new();
        let mut text = String::new();
        let mut stream = Utf8Stream::default();
        let mut pos = prompt_ids.len();
        let finish = loop {
            if generated.len() >= opts.max_tokens {
                break FinishReason::Length;
            }
            let tok = sampler.sample(&logits);
            sampler.accept(tok);
            generated.push(tok);
            if opts.stop_at_eog && self.tokenizer.is_eog(tok) {
                break FinishReason::Stop;
            }
            let piece = stream.push(self.tokenizer.token_to_piece(tok, false)?);
            text.push_str(&piece);
            if !piece.is_empty() && !on_text(&piece) {
                break FinishReason::Cancelled;
            }
            if generated.len() >= opts.max_tokens {
                break FinishReason::Length;
            }
            if pos + 1 > self.n_ctx {
                break FinishReason::ContextFull;
            }
            batch.clear();
            batch.push(tok, pos, SEQ, true);
            self.kv.grow_to(SEQ, pos + 1)?;
            let out = self.step(&batch)?;
            logits.clear();
            logits.extend_from_slice(out);
            self.kv.release_out_of_window(SEQ);
            pos += 1;
        };
        let rest = stream.finish();
        if !rest.is_empty() {
            text.push_str(&rest);
            on_text(&rest);
        }
        self.kv.remove_sequence(SEQ);
        Ok(Generation {
            prompt_ids: prompt_ids.to_vec(),
            generated_ids: generated,
            text,
            finish,
            prefill_time,
            decode_time: t1.elapsed(),
        })
    }

    /// Logits of the last token of `prompt_ids` followed by each forced token in `forced`:
    /// row 0 is after the prompt, row i after `forced[..i]`. Used to compare with llama.cpp's
    /// per-step logits.
    pub fn score(&mut self, prompt_ids: &[u32], forced: &[u32]) -> Result<Vec<Vec<f32>>> {
        self.kv.remove_sequence(SEQ);
        self.kv.add_sequence(SEQ)?;
        let mut rows = Vec::new();
        let mut batch = Batch::new();
        batch.push_sequence(prompt_ids, 0, SEQ, true);
        self.kv.grow_to(SEQ, prompt_ids.len())?;
        rows.push(self.step(&batch)?.to_vec());
        for (i, &t) in forced.iter().enumerate() {
            let pos = prompt_ids.len() + i;
            batch.clear();
            batch.push(t, pos, SEQ, true);
            self.kv.grow_to(SEQ, pos + 1)?;
            rows.push(self.step(&batch)?.to_vec());
            self.kv.release_out_of_window(SEQ);
        }
        self.kv.remove_sequence(SEQ);
        Ok(rows)
    }
}
