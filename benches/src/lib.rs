//! nanorun-benches: criterion microbenchmarks for the kernels crate.
//!
//! The benchmarks live in `benches/`; this library holds only what they share: which ISAs to
//! run (every one the CPU has, or the one `NANORUN_ISA` names) and test matrices. It depends on
//! `nanorun-kernels` and `nanorun-formats`, never on the engine.

use nanorun_kernels::{GgmlType, Isa, Kernels};

/// The kernel tables to benchmark: the ISA named by `NANORUN_ISA` if set (panics with the error
/// if that ISA is unknown or unavailable), else every ISA this CPU can run.
pub fn isas() -> Vec<&'static Kernels> {
    match std::env::var("NANORUN_ISA") {
        Ok(s) if !s.trim().is_empty() => {
            let isa = Isa::parse(&s)
                .and_then(Isa::require)
                .unwrap_or_else(|e| panic!("NANORUN_ISA: {e}"));
            vec![Kernels::for_isa(isa).expect("checked above")]
        }
        _ => Isa::ALL
            .into_iter()
            .filter_map(|i| Kernels::for_isa(i).ok())
            .collect(),
    }
}

/// Deterministic pseudo-random values (SplitMix64 → roughly Gaussian via a sum of uniforms).
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n).map(|_| next() + next() + next() - 1.5).collect()
}

/// A `rows × cols` matrix of `ty`: a few distinct rows quantized with the reference quantizer,
/// repeated (the content does not change the speed; quantizing every row would take long).
/// Returned as 8-byte-aligned words plus the byte length.
pub fn matrix(ty: GgmlType, rows: usize, cols: usize) -> (Vec<u64>, usize) {
    let t = nanorun_kernels::type_traits(ty).expect("supported type");
    let row = t.row_bytes(cols).expect("cols fits the block size");
    let len = rows * row;
    let mut words = vec![0u64; len.div_ceil(8)];
    let bytes: &mut [u8] = &mut bytemuck::cast_slice_mut(&mut words)[..len];
    let distinct = 16.min(rows);
    for r in 0..distinct {
        t.quantize_row(&values(r as u64, cols), &mut bytes[r * row..(r + 1) * row])
            .expect("row");
    }
    for r in distinct..rows {
        bytes.copy_within((r % distinct) * row..(r % distinct + 1) * row, r * row);
    }
    (words, len)
}
