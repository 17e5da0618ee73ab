//! nanorun-kernels: everything that touches quantized bytes.
//!
//! Block types byte-for-byte as ggml lays them out, a scalar reference for every kernel
//! (the oracle), and SIMD versions per ISA selected once at run time. This crate knows
//! nothing of models; it depends only on `nanorun-formats` for the tensor type ids.
