//! The one error type of this crate: every variant names what was wrong.

use nanorun_formats::GgmlType;

/// Why a kernel call was refused. Kernels never panic on bad sizes: they return one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// The type has no kernels in this crate (e.g. the IQ types).
    #[error("tensor type {0} is not supported by the CPU kernels")]
    UnsupportedType(GgmlType),
    /// A row length is not a multiple of the type's block size.
    #[error("row length {n} is not a multiple of {ty}'s block size {block}")]
    RowLength {
        /// The type whose block size was violated.
        ty: GgmlType,
        /// The offending number of values.
        n: usize,
        /// The type's block size.
        block: usize,
    },
    /// A buffer has the wrong length for the values it should hold.
    #[error("{what}: expected {expected} elements, got {got}")]
    LengthMismatch {
        /// Which argument was wrong.
        what: &'static str,
        /// The length it should have had.
        expected: usize,
        /// The length it had.
        got: usize,
    },
    /// A byte buffer is not aligned for the block type it holds.
    #[error("{what}: buffer at {addr:#x} is not {align}-byte aligned for {ty}")]
    Misaligned {
        /// Which argument was wrong.
        what: &'static str,
        /// The block type.
        ty: GgmlType,
        /// Required alignment in bytes.
        align: usize,
        /// The buffer's address.
        addr: usize,
    },
    /// A matrix is not in the layout an operation needs (or these kernels cannot run it).
    #[error("{what}: expected a {expected:?} matrix, got {got:?}")]
    WrongLayout {
        /// Which argument was wrong.
        what: &'static str,
        /// The layout needed.
        expected: crate::repack::Layout,
        /// The layout given.
        got: crate::repack::Layout,
    },
    /// The OS refused memory for weights (or a size overflowed).
    #[error("cannot map {bytes} bytes for weights: {reason}")]
    Alloc {
        /// The bytes asked for.
        bytes: usize,
        /// Why not.
        reason: String,
    },
    /// `NANORUN_ISA` (or a caller) named an ISA this CPU cannot run.
    #[error("instruction set {0} is not available on this CPU")]
    IsaUnavailable(&'static str),
    /// `NANORUN_ISA` named something that is not an ISA.
    #[error("unknown instruction set {0:?} (expected scalar, avx2, avxvnni, avx512 or neon)")]
    UnknownIsa(String),
}

/// Result alias for this crate.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;
