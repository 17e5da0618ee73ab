//! SIMD versions of the row kernels, one file per ISA, under the same names as the scalar
//! reference in `crate::quant`. `install` swaps them into a copy of the scalar table.

#[cfg(target_arch = "aarch64")]
pub mod aarch64_neon;
#[cfg(target_arch = "aarch64")]
pub mod aarch64_neon_convert;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2_convert;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2_float;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2_int8;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2_int8_x8;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2_kdequant;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2_kquantize;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2_multi;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2_q4k_x8;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2_q6k;
#[cfg(target_arch = "x86_64")]
mod x86_avx2_q6k_x16;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx512;
#[cfg(target_arch = "x86_64")]
mod x86_avx512_int8_x8;
#[cfg(target_arch = "x86_64")]
mod x86_avx512_q4k_x16;
#[cfg(target_arch = "x86_64")]
mod x86_avx512_q5_0_ref_x8;
#[cfg(target_arch = "x86_64")]
mod x86_avx512_q6k_x16;
#[cfg(target_arch = "x86_64")]
mod x86_avx512_q8_0_x8;
#[cfg(target_arch = "x86_64")]
mod x86_avx512_x16_tokens;
#[cfg(target_arch = "x86_64")]
pub mod x86_avxvnni;

use crate::isa::Isa;
use crate::traits::TypeTraits;

/// What a SIMD dequantizer does after q·d, as the scalar reference writes it (multiply, then
/// subtract or add: never one FMA). `M` holds the offset, one per group of lanes.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[derive(Clone, Copy)]
pub(crate) enum Then<M> {
    /// Nothing: q·d.
    Keep,
    /// q·d − m.
    Sub(M),
    /// q·d + m.
    Add(M),
}

/// Replace the entries of `table` that `isa` has SIMD kernels for. The caller has checked that
/// the CPU supports `isa` (see `Kernels::for_isa`).
pub(crate) fn install(isa: Isa, table: &mut [TypeTraits]) {
    match isa {
        Isa::Scalar => {}
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86_avx2::install(table),
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni => x86_avxvnni::install(table),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86_avx512::install(table),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => aarch64_neon::install(table),
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

#[cfg(test)]
mod tests;
