//! nanorun: a quantized inference engine for 1–4B language models on small machines.
//!
//! This crate is the library: model configs and architectures, weights, caches, scheduler,
//! sampler, tokenizers and the public API. It depends on `nanorun-kernels` for compute and on
//! `nanorun-formats` for reading GGUF files, and on no async runtime.

pub mod backend;
pub mod batch;
pub mod chat;
pub mod engine;
pub mod error;
pub mod generate;
pub mod kv;
pub mod model;
pub mod quantize;
pub mod sampler;
pub mod sched;
pub mod tokenizer;

pub use nanorun_formats as formats;
pub use nanorun_kernels as kernels;

pub use backend::{Backend, CpuBackend, Device};
pub use batch::Batch;
pub use engine::{
    Completion, EmbedInputs, Embeddings, Engine, EngineConfig, Event, MetricsSnapshot, Prompt,
    Request, RequestId, RequestStream, Usage,
};
pub use error::{EngineError, Result};
pub use generate::{FinishReason, GenerateOptions, Generation, Session};
pub use kv::{CacheType, KvCache, KvCacheConfig, SeqId};
pub use model::{EmbedState, Embedder, ForwardState, Model, ModelConfig};
