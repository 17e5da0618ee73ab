//! The library API: [`Engine`] loads a model once and serves many concurrent generation
//! requests, each a stream of [`Event`]s.
//!
//! One engine thread owns the model, the paged KV cache and the
//! [`Scheduler`](crate::sched::Scheduler); requests arrive on a channel and events stream
//! back on one channel per request. Each step batches every running sequence's next token
//! with chunks of waiting prompts (continuous batching), so the weights are read once for all
//! of them. [`Engine`] is `Send + Sync`: share it (`Arc<Engine>`) between threads and submit
//! from any of them.
//!
//! ```no_run
//! use nanorun::{Engine, EngineConfig, Request};
//! let engine = Engine::load("models/gemma-3-270m-q4_k_m.gguf", EngineConfig::default())?;
//! let stream = engine.submit(Request::new("The capital of France is").max_tokens(16).greedy())?;
//! for event in stream.iter() {
//!     if let nanorun::Event::Token { text, .. } = event {
//!         print!("{text}");
//!     }
//! }
//! # Ok::<(), nanorun::EngineError>(())
//! ```
//!
//! An engine loaded from an embedding model (`bert`, `nomic-bert`, `gemma-embedding`)
//! serves [`Engine::embed`] instead: its thread owns the [`EmbedState`] and batches the
//! waiting embedding requests of all callers together, up to
//! [`EngineConfig::max_batch_tokens`] tokens per forward pass (see the `embed` module).
//! Generating with it, or embedding with a generation model, is refused with
//! [`EngineError::InvalidRequest`].
//!
//! ```no_run
//! use nanorun::{Engine, EngineConfig};
//! let engine = Engine::load("models/bge-small-en-v1.5-q8_0.gguf", EngineConfig::default())?;
//! let out = engine.embed(&["a query", "a passage"], true)?; // L2-normalised
//! assert_eq!(out.vectors.len(), 2);
//! println!("{} tokens", out.prompt_tokens);
//! # Ok::<(), nanorun::EngineError>(())
//! ```
//!
//! Cancel a request by dropping its [`RequestStream`] or with [`Engine::cancel`]: its KV blocks
//! are freed at once. A bad request (empty or too long prompt, bad sampling parameter, empty
//! stop string) is refused by [`Engine::submit`] with [`EngineError::InvalidRequest`].

mod embed;
mod metrics;
mod request;
mod worker;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use embed::{EmbedInputs, Embeddings};
pub use metrics::MetricsSnapshot;
pub use request::{Completion, Event, Prompt, Request, RequestId, Usage};

use nanorun_formats::Gguf;
use nanorun_kernels::Kernels;

use crate::chat::{BuiltinTemplate, ChatMessage, ChatTemplate};
use crate::error::{EngineError, Result};
use crate::generate::FinishReason;
use crate::kv::{CacheType, KvCache, KvCacheConfig};
use crate::model::encoder_config::EncoderArch;
use crate::model::{Arch, EmbedState, Embedder, ForwardState, Model, ModelConfig};
use crate::sampler::{Sampler, StopStrings};
use crate::sched::{Scheduler, SchedulerConfig};
use crate::tokenizer::Tokenizer;
use embed::{EmbedJob, EmbedWorker};
use worker::{Command, Job, Worker};

/// How the engine is set up. An embedding engine uses only `n_threads` and
/// `max_batch_tokens` (its numerics are always batch-invariant).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Threads of the forward pass (0 = all available cores).
    pub n_threads: usize,
    /// KV cache size in tokens, shared by all sequences (`-c`).
    pub n_ctx: usize,
    /// Sequences running at once (`-np`).
    pub max_seqs: usize,
    /// Tokens per forward pass (decode tokens plus prompt chunks; for an embedding model,
    /// whole inputs are batched up to this many tokens).
    pub max_batch_tokens: usize,
    /// K cache element type.
    pub type_k: CacheType,
    /// V cache element type.
    pub type_v: CacheType,
    /// Share identical prompt prefixes between requests (attention-only models).
    pub prefix_sharing: bool,
    /// Finished requests whose K/V is kept for later requests with the same prefix (a
    /// multi-turn chat resending its history, agents sharing a system prompt); evicted oldest
    /// first when blocks run short. 0 keeps none.
    pub prefix_cache: usize,
    /// Batch-invariant numerics (default on): a request's tokens are the same whatever it is
    /// batched with — and a shared or cached prefix gives the logits of a full prefill. Off,
    /// large prefill batches round as llama.cpp's do (see `ForwardState::set_batch_invariant`).
    pub batch_invariant: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            n_threads: 0,
            n_ctx: 8192,
            max_seqs: 8,
            max_batch_tokens: 512,
            type_k: CacheType::F16,
            type_v: CacheType::F16,
            prefix_sharing: true,
            prefix_cache: 16,
            batch_invariant: true,
        }
    }
}

/// A loaded model serving requests from its own thread: generation requests
/// ([`Engine::submit`], [`Engine::generate`]) for a generation model, [`Engine::embed`] for an
/// embedding model.
pub struct Engine {
    commands: Mutex<Sender<Command>>,
    kind: Kind,
    template: Option<ChatTemplate>,
    metrics: Arc<metrics::Metrics>,
    next_id: AtomicU32,
    max_seq_len: usize,
    n_kv_blocks: usize,
    thread: Option<JoinHandle<()>>,
}

/// What an engine runs.
enum Kind {
    /// A generation model (its thread is a [`Worker`]).
    Generation {
        tokenizer: Arc<Tokenizer>,
        config: ModelConfig,
    },
    /// An embedding model (its thread is an [`EmbedWorker`], sharing the model read-only).
    Embedding(Arc<Embedder>),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("arch", &self.arch_name())
            .field("max_seq_len", &self.max_seq_len)
            .finish()
    }
}

/// `n` threads, or all available cores for 0.
fn resolve_threads(n: usize) -> usize {
    if n == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        n
    }
}

/// Starts the engine thread `name` running `f`.
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| EngineError::InvalidRequest(format!("cannot start engine thread: {e}")))
}

impl Engine {
    /// Opens the GGUF file at `path` and starts the engine thread: an embedding engine when
    /// `general.architecture` is an encoder (`bert`, `nomic-bert`, `gemma-embedding`), a
    /// generation engine otherwise.
    pub fn load(path: impl AsRef<Path>, cfg: EngineConfig) -> Result<Engine> {
        let gguf = Arc::new(Gguf::open(path)?);
        let kernels = Kernels::active()?;
        if gguf.architecture().is_ok_and(EncoderArch::is_encoder) {
            return Engine::from_embedder(Embedder::from_gguf(gguf, kernels)?, cfg);
        }
        let model = Model::from_gguf(gguf, kernels)?;
        let tokenizer = Tokenizer::from_gguf(model.gguf())?;
        Engine::new(model, tokenizer, cfg)
    }

    /// Starts an embedding engine for a loaded embedding model (e.g. one opened with
    /// [`Embedder::from_gguf_with_pooling`] to override the pooling). Uses `cfg.n_threads`
    /// and `cfg.max_batch_tokens` only.
    pub fn from_embedder(embedder: Embedder, cfg: EngineConfig) -> Result<Engine> {
        if cfg.max_batch_tokens == 0 {
            return Err(EngineError::InvalidRequest(
                "engine needs a batch of at least 1 token".into(),
            ));
        }
        let embedder = Arc::new(embedder);
        let max_seq_len = embedder.config().n_ctx_train;
        let worker = EmbedWorker {
            embedder: embedder.clone(),
            state: EmbedState::new(resolve_threads(cfg.n_threads)),
            max_batch_tokens: cfg.max_batch_tokens,
        };
        let (tx, rx) = channel();
        let thread = spawn("nanorun-embed", move || worker.run(rx))?;
        Ok(Engine {
            commands: Mutex::new(tx),
            kind: Kind::Embedding(embedder),
            template: None,
            metrics: Arc::default(),
            next_id: AtomicU32::new(1),
            max_seq_len,
            n_kv_blocks: 0,
            thread: Some(thread),
        })
    }

    /// Starts the engine thread for a loaded model.
    pub fn new(model: Model, tokenizer: Tokenizer, cfg: EngineConfig) -> Result<Engine> {
        Engine::new_on(model, tokenizer, cfg, crate::backend::Device::Cpu)
    }

    /// [`Engine::new`] with the forward passes on `device` (the scheduler and the KV
    /// bookkeeping are the same; see [`crate::backend`]). Errors name why a CUDA device cannot
    /// be used.
    pub fn new_on(
        mut model: Model,
        tokenizer: Tokenizer,
        cfg: EngineConfig,
        device: crate::backend::Device,
    ) -> Result<Engine> {
        if cfg.n_ctx == 0 || cfg.max_seqs == 0 || cfg.max_batch_tokens == 0 {
            return Err(EngineError::InvalidRequest(
                "engine needs a context, a sequence and a batch of at least 1".into(),
            ));
        }
        let config = model.config().clone();
        let mut kv_cfg = KvCacheConfig::for_context(cfg.n_ctx);
        kv_cfg.type_k = cfg.type_k;
        kv_cfg.type_v = cfg.type_v;
        kv_cfg.max_seqs = cfg.max_seqs;
        let kv = KvCache::new(&config, kv_cfg)?;
        let n_kv_blocks = kv_cfg.n_blocks;
        let all_attention = config.layers.iter().all(|l| l.attention.n_head_kv > 0);
        let sched = Scheduler::new(
            SchedulerConfig {
                max_seqs: cfg.max_seqs,
                max_batch_tokens: cfg.max_batch_tokens.max(cfg.max_seqs),
                prefix_sharing: cfg.prefix_sharing && all_attention,
                retain_finished: cfg.prefix_cache,
            },
            kv,
        )?;
        let max_seq_len = (kv_cfg.n_blocks * kv_cfg.block_size).min(config.n_ctx_train.max(1));
        let template = match ChatTemplate::from_gguf(model.gguf(), None) {
            Ok(Some(t)) => Some(t),
            _ if matches!(config.arch, Arch::Gemma | Arch::Gemma2 | Arch::Gemma3) => {
                Some(ChatTemplate::builtin(BuiltinTemplate::Gemma))
            }
            _ => None,
        };
        let n_threads = resolve_threads(cfg.n_threads);
        let backend = match device {
            crate::backend::Device::Cpu => None,
            d => {
                let backend = crate::backend::open(&model, d, n_threads)?;
                // The device runs every matrix from the file's bytes.
                model.drop_repacked();
                Some(backend)
            }
        };
        let tokenizer = Arc::new(tokenizer);
        let metrics = Arc::new(metrics::Metrics::default());
        let (tx, rx) = channel();
        let worker = Worker {
            backend,
            model,
            tokenizer: tokenizer.clone(),
            sched,
            state: {
                let mut st = ForwardState::new(n_threads);
                st.set_batch_invariant(cfg.batch_invariant);
                st
            },
            metrics: metrics.clone(),
            max_seq_len,
        };
        let thread = spawn("nanorun-engine", move || worker.run(rx))?;
        Ok(Engine {
            commands: Mutex::new(tx),
            kind: Kind::Generation { tokenizer, config },
            template,
            metrics,
            next_id: AtomicU32::new(1),
            max_seq_len,
            n_kv_blocks,
            thread: Some(thread),
        })
    }

    /// The generation model's hyper-parameters; `None` for an embedding engine (see
    /// [`Engine::embedder`]).
    pub fn model_config(&self) -> Option<&ModelConfig> {
        match &self.kind {
            Kind::Generation { config, .. } => Some(config),
            Kind::Embedding(_) => None,
        }
    }

    /// The embedding model (its config, vector width, tokenizer); `None` for a generation
    /// engine.
    pub fn embedder(&self) -> Option<&Embedder> {
        match &self.kind {
            Kind::Embedding(e) => Some(e),
            Kind::Generation { .. } => None,
        }
    }

    /// Whether the engine holds an embedding model (serves [`Engine::embed`], not
    /// [`Engine::submit`]).
    pub fn is_embedding(&self) -> bool {
        matches!(self.kind, Kind::Embedding(_))
    }

    /// `general.architecture` of the model (`gemma3`, `bert`, …).
    pub fn arch_name(&self) -> &'static str {
        match &self.kind {
            Kind::Generation { config, .. } => config.arch.name(),
            Kind::Embedding(e) => e.config().arch.name(),
        }
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        match &self.kind {
            Kind::Generation { tokenizer, .. } => tokenizer,
            Kind::Embedding(e) => e.tokenizer(),
        }
    }

    /// The chat template: the model's own, or the built-in Gemma one for Gemma models that
    /// carry none; `None` otherwise (always for an embedding engine).
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    /// Replaces the chat template (e.g. a built-in one for a model that ships none).
    pub fn with_chat_template(mut self, template: ChatTemplate) -> Engine {
        self.template = Some(template);
        self
    }

    /// Renders a conversation with the chat template, ready to submit as a prompt (the
    /// template writes BOS itself where it wants one).
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        let t = self
            .template
            .as_ref()
            .ok_or_else(|| EngineError::InvalidRequest("the model has no chat template".into()))?;
        let tok = self.tokenizer();
        let text = |id: Option<u32>| {
            id.and_then(|i| tok.token_text(i).ok())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        t.render(messages, true, &text(tok.bos()), &text(tok.eos()))
            .map_err(|e| EngineError::InvalidRequest(format!("chat template: {e}")))
    }

    /// Longest sequence (prompt plus generated tokens) one request may reach; for an
    /// embedding engine, the longest input (`<arch>.context_length`).
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// KV blocks in the cache (per layer group; 0 for an embedding engine).
    pub fn n_kv_blocks(&self) -> usize {
        self.n_kv_blocks
    }

    /// Whether the engine thread is still serving (false after an internal failure killed
    /// it; every request then fails).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// The engine's counters now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Token ids of a text prompt as the engine would run it (BOS when the model wants it,
    /// special tokens parsed). For an embedding engine, as [`Embedder::tokenize`] (special
    /// tokens added, special-token text not parsed).
    pub fn tokenize(&self, prompt: &str) -> Vec<u32> {
        let tokenizer = match &self.kind {
            Kind::Generation { tokenizer, .. } => tokenizer,
            Kind::Embedding(e) => return e.tokenize(prompt),
        };
        let mut ids = tokenizer.encode(prompt, true, true);
        // A rendered chat template often writes BOS itself: do not double it.
        let bos = tokenizer.bos();
        if ids.len() >= 2 && bos.is_some_and(|b| ids[0] == b && ids[1] == b) {
            ids.remove(0);
        }
        ids
    }

    /// Validates `req` and queues it. Events arrive on the returned stream; dropping it
    /// cancels the request. An embedding engine refuses it ([`EngineError::InvalidRequest`]).
    pub fn submit(&self, req: Request) -> Result<RequestStream> {
        let Kind::Generation { config, .. } = &self.kind else {
            return Err(EngineError::InvalidRequest(format!(
                "this engine holds an embedding model ({}): it cannot generate (use Engine::embed)",
                self.arch_name()
            )));
        };
        let prompt = match req.prompt {
            Prompt::Text(t) => self.tokenize(&t),
            Prompt::Tokens(t) => t,
        };
        if prompt.is_empty() {
            return Err(EngineError::InvalidRequest("the prompt is empty".into()));
        }
        let n_vocab = config.n_vocab;
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(EngineError::InvalidRequest(format!(
                "prompt token {bad} is outside the vocabulary ({n_vocab})"
            )));
        }
        if prompt.len() >= self.max_seq_len {
            return Err(EngineError::InvalidRequest(format!(
                "the prompt has {} tokens; the context holds {}",
                prompt.len(),
                self.max_seq_len
            )));
        }
        let mut sampler =
            Sampler::new(req.sampling).map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
        for &t in &prompt {
            sampler.accept(t);
        }
        let stop =
            StopStrings::new(req.stop).map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = channel();
        let commands = self
            .commands
            .lock()
            .map_err(|_| EngineError::InvalidRequest("engine is shut down".into()))?
            .clone();
        self.metrics.requests.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .prompt_tokens
            .fetch_add(prompt.len() as u64, Ordering::Relaxed);
        if req.max_tokens == 0 {
            let usage = Usage {
                prompt_tokens: prompt.len(),
                ..Usage::default()
            };
            let _ = tx.send(Event::Finished {
                reason: FinishReason::Length,
                usage,
            });
            self.metrics.finished.fetch_add(1, Ordering::Relaxed);
        } else {
            let job = Job {
                id,
                prompt,
                max_tokens: req.max_tokens,
                sampler,
                stop,
                ignore_eos: req.ignore_eos,
                events: tx,
            };
            commands
                .send(Command::Submit(Box::new(job)))
                .map_err(|_| EngineError::InvalidRequest("engine thread has stopped".into()))?;
        }
        Ok(RequestStream {
            id,
            events: rx,
            commands,
            done: false,
        })
    }

    /// Frees the K/V kept from finished requests (the prefix cache).
    pub fn clear_prefix_cache(&self) {
        if let Ok(c) = self.commands.lock() {
            let _ = c.send(Command::ClearCache);
        }
    }

    /// Cancels request `id` (no-op when it has ended): its stream gets
    /// `Finished { reason: Cancelled }` and its KV blocks are freed.
    pub fn cancel(&self, id: RequestId) {
        if let Ok(c) = self.commands.lock() {
            let _ = c.send(Command::Cancel(id));
        }
    }

    /// Submits `req` and waits for the whole completion (refused by an embedding engine).
    pub fn generate(&self, req: Request) -> Result<Completion> {
        self.submit(req)?.wait()
    }

    /// Embeds `inputs` (texts, e.g. `&["a", "b"]`, or token-id sequences) with an embedding
    /// model and waits for the vectors, L2-normalised if `normalize` (raw pooled vectors
    /// otherwise, as llama.cpp's `llama_get_embeddings_seq()` returns them).
    ///
    /// Texts are tokenized on the calling thread; the engine thread then embeds this call's
    /// inputs together with those of every other call waiting, whole calls up to
    /// [`EngineConfig::max_batch_tokens`] tokens per forward pass. A vector does not depend on
    /// what it was batched with. Errors: no inputs, an empty, too long or out-of-vocabulary
    /// input, or a generation model in the engine ([`EngineError::InvalidRequest`]).
    pub fn embed(&self, inputs: impl Into<EmbedInputs>, normalize: bool) -> Result<Embeddings> {
        let Kind::Embedding(embedder) = &self.kind else {
            return Err(EngineError::InvalidRequest(format!(
                "this engine holds a generation model ({}): it cannot embed (load a bert, \
                 nomic-bert or gemma-embedding model)",
                self.arch_name()
            )));
        };
        let seqs: Vec<Vec<u32>> = match inputs.into() {
            EmbedInputs::Texts(t) => t.iter().map(|s| embedder.tokenize(s)).collect(),
            EmbedInputs::Tokens(t) => t,
        };
        if seqs.is_empty() {
            return Err(EngineError::InvalidRequest("nothing to embed".into()));
        }
        let n_tokens: Vec<usize> = seqs.iter().map(Vec::len).collect();
        let prompt_tokens = n_tokens.iter().sum::<usize>();
        let m = &self.metrics;
        m.requests.fetch_add(1, Ordering::Relaxed);
        m.prompt_tokens
            .fetch_add(prompt_tokens as u64, Ordering::Relaxed);
        let (reply, answer) = channel();
        let stopped = || EngineError::InvalidRequest("engine thread has stopped".into());
        self.commands
            .lock()
            .map_err(|_| stopped())?
            .send(Command::Embed(EmbedJob { seqs, reply }))
            .map_err(|_| stopped())?;
        let result = answer.recv().map_err(|_| stopped())?;
        let counter = if result.is_ok() {
            &m.finished
        } else {
            &m.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut vectors = result?;
        m.computed_tokens
            .fetch_add(prompt_tokens as u64, Ordering::Relaxed);
        if normalize {
            vectors
                .iter_mut()
                .for_each(|v| crate::model::encoder::l2_normalize(v));
        }
        Ok(Embeddings {
            vectors,
            n_tokens,
            prompt_tokens,
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Ok(c) = self.commands.lock() {
            let _ = c.send(Command::Shutdown);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The events of one request. Dropping it cancels the request.
#[derive(Debug)]
pub struct RequestStream {
    id: RequestId,
    events: Receiver<Event>,
    commands: Sender<Command>,
    done: bool,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl RequestStream {
    /// The request's id (for [`Engine::cancel`]).
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Asks the engine to cancel the request: the stream then ends with
    /// `Finished { reason: Cancelled }` (unless it ended first).
    pub fn cancel(&self) {
        let _ = self.commands.send(Command::Cancel(self.id));
    }

    /// The next event, waiting for it; `None` after the last one.
    pub fn recv(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let e = self.events.recv().ok();
        self.note(&e);
        e
    }

    /// The next event if one comes within `timeout`; `Ok(None)` after the last one,
    /// `Err(())` on timeout.
    #[allow(clippy::result_unit_err)]
    pub fn recv_timeout(&mut self, timeout: Duration) -> std::result::Result<Option<Event>, ()> {
        if self.done {
            return Ok(None);
        }
        match self.events.recv_timeout(timeout) {
            Ok(e) => {
                let e = Some(e);
                self.note(&e);
                Ok(e)
            }
            Err(RecvTimeoutError::Timeout) => Err(()),
            Err(RecvTimeoutError::Disconnected) => {
                self.done = true;
                Ok(None)
            }
        }
    }

    fn note(&mut self, e: &Option<Event>) {
        if matches!(
            e,
            None | Some(Event::Finished { .. }) | Some(Event::Error(_))
        ) {
            self.done = true;
        }
    }

    /// The events, until the request ends.
    pub fn iter(self) -> impl Iterator<Item = Event> {
        let mut s = self;
        std::iter::from_fn(move || s.recv())
    }

    /// Waits for the whole completion.
    pub fn wait(mut self) -> Result<Completion> {
        let (mut tokens, mut text) = (Vec::new(), String::new());
        while let Some(e) = self.recv() {
            match e {
                Event::Token { id, text: t } => {
                    tokens.push(id);
                    text.push_str(&t);
                }
                Event::Text(t) => text.push_str(&t),
                Event::Finished { reason, usage } => {
                    return Ok(Completion {
                        tokens,
                        text,
                        finish: reason,
                        usage,
                    })
                }
                Event::Error(e) => return Err(EngineError::InvalidRequest(e)),
            }
        }
        Err(EngineError::InvalidRequest(
            "engine stopped before the request ended".into(),
        ))
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.commands.send(Command::Cancel(self.id));
        }
    }
}
