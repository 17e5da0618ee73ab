//! Which instruction set the kernels run on: detected once with std's runtime feature
//! detection, or forced with `NANORUN_ISA=scalar|avx2|avxvnni|avx512|neon`.
//!
//! AMX is never used: the CPUs we develop on advertise it, but its tile instructions fault.

use std::fmt;

use crate::error::{KernelError, Result};

/// An instruction set the kernels have a version for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust: the reference every other version is tested against.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX2 + FMA + F16C with AVX-VNNI (256-bit `vpdpbusd`) and no AVX-512.
    AvxVnni,
    /// x86-64 AVX-512 F/BW/VL + VNNI (plus AVX2, FMA, F16C).
    Avx512,
    /// aarch64 NEON with the dotprod (`sdot`) extension.
    Neon,
}

impl Isa {
    /// Every ISA, from least to most capable.
    pub const ALL: [Isa; 5] = [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512, Isa::Neon];

    /// The name `NANORUN_ISA` uses.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parse a name as `NANORUN_ISA` spells it (case-insensitive).
    pub fn parse(s: &str) -> Result<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| s.trim().eq_ignore_ascii_case(i.name()))
            .ok_or_else(|| KernelError::UnknownIsa(s.to_string()))
    }

    /// Whether this CPU can run this ISA's kernels.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => x86_has_avx2(),
            Isa::AvxVnni => x86_has_avxvnni(),
            Isa::Avx512 => x86_has_avx512(),
            Isa::Neon => arm_has_dotprod(),
        }
    }

    /// The most capable ISA this CPU can run.
    pub fn best() -> Isa {
        [Isa::Avx512, Isa::AvxVnni, Isa::Avx2, Isa::Neon]
            .into_iter()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Scalar)
    }

    /// `NANORUN_ISA` if set (an error when it names an unknown ISA or one this CPU lacks),
    /// otherwise [`Isa::best`].
    pub fn from_env() -> Result<Isa> {
        match std::env::var("NANORUN_ISA") {
            Ok(s) if !s.trim().is_empty() => Isa::parse(&s)?.require(),
            _ => Ok(Isa::best()),
        }
    }

    /// `Ok(self)` when available, else [`KernelError::IsaUnavailable`].
    pub fn require(self) -> Result<Isa> {
        if self.is_available() {
            Ok(self)
        } else {
            Err(KernelError::IsaUnavailable(self.name()))
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn x86_has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

#[cfg(target_arch = "x86_64")]
fn x86_has_avx512() -> bool {
    x86_has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

#[cfg(target_arch = "x86_64")]
fn x86_has_avxvnni() -> bool {
    x86_has_avx2() && is_x86_feature_detected!("avxvnni")
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_has_avx2() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_has_avxvnni() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_has_avx512() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn arm_has_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
        && std::arch::is_aarch64_feature_detected!("dotprod")
}

#[cfg(not(target_arch = "aarch64"))]
fn arm_has_dotprod() -> bool {
    false
}
