//! nanorun-formats: the GGUF file format, read and written.
//!
//! [`Gguf`] opens a file through mmap, validates it as strictly as llama.cpp's loader (every
//! count and length is bounded by the file size before anything is allocated) and hands out
//! typed metadata and zero-copy tensor views. [`GgufWriter`] writes files in the same layout.
//! This crate knows nothing of compute: it depends on no kernel and no model code.

mod cursor;
mod error;
mod ggml_type;
mod metadata;
mod reader;
mod writer;

pub use error::{GgufError, Result};
pub use ggml_type::GgmlType;
pub use metadata::{MetadataArray, MetadataValue, StringArray, ValueType};
pub use reader::{Gguf, TensorInfo, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS, MAX_TENSOR_NAME};
pub use writer::GgufWriter;
