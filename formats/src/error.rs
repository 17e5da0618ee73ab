//! Errors of the GGUF reader and writer. Every variant names what was at fault: the byte
//! offset, the metadata key or the tensor.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = GgufError> = std::result::Result<T, E>;

/// What went wrong reading or writing a GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing failed.
    #[error("write failed: {0}")]
    Write(#[from] std::io::Error),
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: bad magic {found:02x?} at offset 0 (expected \"GGUF\")")]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
    },
    /// A version this reader does not support.
    #[error("unsupported GGUF version {version} at offset 4{hint}")]
    BadVersion {
        /// The version word found.
        version: u32,
        /// Extra explanation (e.g. a big-endian file).
        hint: &'static str,
    },
    /// The file ends before a field it declares.
    #[error(
        "file truncated: {what} at offset {offset} needs {needed} bytes, only {available} left"
    )]
    Truncated {
        /// What was being read.
        what: String,
        /// Where.
        offset: u64,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// A count or length that cannot fit in the file.
    #[error("implausible {what} {value} at offset {offset}: the file has only {file_len} bytes")]
    Implausible {
        /// Which count or length.
        what: String,
        /// Its value.
        value: u64,
        /// Where it was read.
        offset: u64,
        /// The file size.
        file_len: u64,
    },
    /// A metadata value type id that does not exist.
    #[error("metadata key '{key}': unknown value type {type_id} at offset {offset}")]
    BadValueType {
        /// The key.
        key: String,
        /// The type id found.
        type_id: u32,
        /// Where.
        offset: u64,
    },
    /// Some structural rule about a metadata key was broken.
    #[error("metadata key '{key}' at offset {offset}: {reason}")]
    BadKey {
        /// The key (lossy UTF-8).
        key: String,
        /// Where.
        offset: u64,
        /// What rule.
        reason: String,
    },
    /// The same key appears twice.
    #[error("duplicate metadata key '{key}' at offset {offset}")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Where the second copy starts.
        offset: u64,
    },
    /// A tensor-info record breaks a rule.
    #[error("tensor '{tensor}' (info at offset {offset}): {reason}")]
    BadTensor {
        /// The tensor name (lossy UTF-8).
        tensor: String,
        /// Where its info record starts.
        offset: u64,
        /// What rule.
        reason: String,
    },
    /// A key was looked up that the file does not have.
    #[error("metadata key '{key}' not found")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A key holds another type than the one asked for.
    #[error("metadata key '{key}': expected {expected}, found {found}")]
    WrongType {
        /// The key.
        key: String,
        /// The type asked for.
        expected: String,
        /// The type stored.
        found: String,
    },
    /// The writer was asked to produce an invalid file.
    #[error("cannot write GGUF: {0}")]
    InvalidWrite(String),
}

/// A name or key as shown in an error message: at most 80 characters, so that a corrupt length
/// never turns into a megabyte-long message.
pub(crate) fn short(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}
