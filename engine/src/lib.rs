//! nanorun: a quantized inference engine for 1–4B language models on small machines.
//!
//! This crate is the library: model configs and architectures, weights, caches, scheduler,
//! sampler, tokenizers and the public API. It depends on `nanorun-kernels` for compute and on
//! `nanorun-formats` for reading GGUF files, and on no async runtime.

pub mod chat;
pub mod sampler;
pub mod tokenizer;

pub use nanorun_formats as formats;
