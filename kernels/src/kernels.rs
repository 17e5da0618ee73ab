//! The per-ISA kernel tables and the process-wide choice between them.
//!
//! [`Kernels::for_isa`] builds (once) the scalar table with that ISA's SIMD kernels swapped in,
//! after checking the CPU can run them — the only way to reach a SIMD kernel, which is what
//! makes calling them sound. [`Kernels::active`] is the table `NANORUN_ISA` (or detection) picks.

use std::sync::OnceLock;

use nanorun_formats::GgmlType;

use crate::error::{KernelError, Result};
use crate::isa::Isa;
use crate::traits::{scalar_table, slot, TypeTraits, SUPPORTED};

/// The row kernels of every supported type for one ISA.
#[derive(Debug)]
pub struct Kernels {
    isa: Isa,
    table: [TypeTraits; SUPPORTED.len()],
}

static TABLES: [OnceLock<Kernels>; Isa::ALL.len()] = [const { OnceLock::new() }; Isa::ALL.len()];
static ACTIVE: OnceLock<Result<Isa>> = OnceLock::new();

impl Kernels {
    /// The kernels for `isa`, or [`KernelError::IsaUnavailable`] when this CPU lacks it.
    pub fn for_isa(isa: Isa) -> Result<&'static Kernels> {
        isa.require()?;
        let i = Isa::ALL.iter().position(|&x| x == isa).unwrap_or(0);
        Ok(TABLES[i].get_or_init(|| {
            let mut table = scalar_table();
            crate::arch::install(isa, &mut table);
            Kernels { isa, table }
        }))
    }

    /// The kernels chosen for this process: `NANORUN_ISA` when set, else the best the CPU has.
    /// Decided once; an unknown or unavailable `NANORUN_ISA` is an error every time.
    pub fn active() -> Result<&'static Kernels> {
        let isa = ACTIVE.get_or_init(Isa::from_env).clone()?;
        Kernels::for_isa(isa)
    }

    /// The ISA these kernels run on.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The traits and kernels of `ty`.
    pub fn traits(&self, ty: GgmlType) -> Result<&TypeTraits> {
        slot(ty)
            .map(|i| &self.table[i])
            .ok_or(KernelError::UnsupportedType(ty))
    }

    /// Dequantize a row of `ty` into `out` (`out.len()` values).
    pub fn dequantize_row(&self, ty: GgmlType, w: &[u8], out: &mut [f32]) -> Result<()> {
        self.traits(ty)?.dequantize_row(w, out)
    }

    /// Quantize `x` into a row of `ty` (e.g. activations into Q8_0 / Q8_K; weights with the
    /// reference quantizers).
    pub fn quantize_row(&self, ty: GgmlType, x: &[f32], out: &mut [u8]) -> Result<()> {
        self.traits(ty)?.quantize_row(x, out)
    }

    /// Dot product of an `n`-value weight row of `ty` with an activation row already quantized
    /// to `ty`'s `vec_dot_type`.
    pub fn vec_dot(&self, ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> Result<f32> {
        let wt = self.traits(ty)?;
        let at = self.traits(wt.vec_dot_type)?;
        wt.vec_dot(at, n, w, a)
    }

    /// y\[i\] += alpha·(row dequantized)\[i\] for a row of `ty` holding `y.len()` values — e.g.
    /// attention's weighted sum over a quantized V cache — without a dequantized copy of the
    /// row (it goes through a 256-value stack buffer with this ISA's dequantize kernel).
    pub fn axpy_row(&self, ty: GgmlType, alpha: f32, row: &[u8], y: &mut [f32]) -> Result<()> {
        let t = self.traits(ty)?;
        t.check_row("axpy row", row, y.len())?;
        const CHUNK: usize = 256;
        let blocks = (CHUNK / t.block_size).max(1);
        let mut tmp = [0.0f32; CHUNK];
        for (bytes, ys) in row
            .chunks(blocks * t.block_bytes)
            .zip(y.chunks_mut(blocks * t.block_size))
        {
            let tmp = &mut tmp[..ys.len()];
            (t.dequantize)(bytes, tmp);
            axpy_f32(alpha, tmp, ys);
        }
        Ok(())
    }

    /// Σ a\[i\]·b\[i\] over the shorter length, with this ISA's F32 dot kernel (for attention
    /// scores and other plain f32 math).
    pub fn dot_f32(&self, a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let f = self.table[F32_SLOT].vec_dot;
        f(bytemuck::cast_slice(&a[..n]), bytemuck::cast_slice(&b[..n]))
    }
}

/// Index of F32 in every table.
const F32_SLOT: usize = 0;
const _: () = assert!(matches!(SUPPORTED[F32_SLOT], GgmlType::F32));

/// y\[i\] += alpha·x\[i\] over the shorter length (LLVM vectorizes this loop for the build
/// target; it is memory-bound).
pub fn axpy_f32(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}
