//! nanorun-benches: criterion microbenchmarks for the kernels crate.
//!
//! The benchmarks live in `benches/`; this library holds only the small helpers they share
//! (deterministic random rows). It depends on `nanorun-kernels` and `nanorun-formats`, never on
//! the engine.
