//! The engine's error type: every variant names what was wrong (file, key, tensor, field).

use nanorun_formats::GgufError;

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What went wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The GGUF file is unreadable or malformed.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A kernel refused its input (a bug or an unsupported tensor type).
    #[error("kernel: {0}")]
    Kernel(#[from] nanorun_kernels::KernelError),
    /// The tokenizer metadata is unusable.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// `general.architecture` names an architecture nanorun does not run.
    #[error(
        "unsupported architecture '{arch}' (supported: {})",
        crate::model::config::Arch::SUPPORTED
    )]
    UnsupportedArch {
        /// The architecture found.
        arch: String,
    },
    /// A required metadata key is absent.
    #[error("metadata key '{key}' not found")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata value is out of range or inconsistent.
    #[error("metadata key '{key}': {reason}")]
    BadMetadata {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A required tensor is absent.
    #[error("tensor '{name}' not found")]
    MissingTensor {
        /// The tensor name.
        name: String,
    },
    /// A tensor has the wrong shape or type.
    #[error("tensor '{name}': {reason}")]
    BadTensor {
        /// The tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The KV cache has no free block left.
    #[error("KV cache exhausted: {needed} more blocks needed, {free} free")]
    KvExhausted {
        /// Blocks still needed.
        needed: usize,
        /// Blocks free.
        free: usize,
    },
    /// A batch is malformed (unknown sequence, position without KV space, bad token id, …).
    #[error("bad batch: {0}")]
    BadBatch(String),
    /// A request or option is invalid.
    #[error("{0}")]
    InvalidRequest(String),
    /// The compute backend cannot run (no CUDA support in this build, no driver, no device)
    /// or failed.
    #[error("{0}")]
    Backend(String),
}
