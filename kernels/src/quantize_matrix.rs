//! Quantize a whole row-major f32 matrix of weights to a type, rows split across the thread
//! pool — what `nanorun quantize` needs per tensor. Uses the table's weight quantizers
//! ([`crate::TypeTraits::quantize_weights_row`]): byte-identical to llama-quantize without an
//! importance matrix, SIMD where the ISA has a version.

use nanorun_formats::GgmlType;

use crate::error::{KernelError, Result};
use crate::kernels::Kernels;
use crate::threads::ThreadPool;

/// Rows per pool chunk: large enough that a chunk outweighs the handing-out.
const ROWS_PER_CHUNK: usize = 16;

/// Quantize `x` (`x.len() / cols` rows of `cols` values) into `out` (rows × `ty`'s row bytes).
pub fn quantize_matrix(
    kernels: &Kernels,
    pool: &ThreadPool,
    ty: GgmlType,
    x: &[f32],
    cols: usize,
    out: &mut [u8],
) -> Result<()> {
    let t = kernels.traits(ty)?;
    let row_bytes = t.row_bytes(cols)?;
    if cols == 0 || !x.len().is_multiple_of(cols) {
        return Err(KernelError::LengthMismatch {
            what: "matrix values",
            expected: cols,
            got: x.len(),
        });
    }
    let rows = x.len() / cols;
    if out.len() != rows * row_bytes {
        return Err(KernelError::LengthMismatch {
            what: "quantized matrix",
            expected: rows * row_bytes,
            got: out.len(),
        });
    }
    if rows == 0 {
        return Ok(());
    }
    t.check_row("quantized matrix", &out[..row_bytes], cols)?;
    let quantize = t.quantize_weights_fn();
    let base = SendPtr(out.as_mut_ptr());
    pool.run(rows.div_ceil(ROWS_PER_CHUNK), |c| {
        let (r0, r1) = (c * ROWS_PER_CHUNK, ((c + 1) * ROWS_PER_CHUNK).min(rows));
        // SAFETY: chunk c alone owns bytes r0·row_bytes..r1·row_bytes of `out` (checked length
        // rows·row_bytes), and `out` outlives the op.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(base.get().add(r0 * row_bytes), (r1 - r0) * row_bytes)
        };
        for (r, d) in (r0..r1).zip(dst.chunks_exact_mut(row_bytes)) {
            quantize(&x[r * cols..(r + 1) * cols], d);
        }
    });
    Ok(())
}

#[derive(Clone, Copy)]
struct SendPtr(*mut u8);
// SAFETY: used only to hand disjoint row ranges of one `&mut [u8]` to pool chunks.
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the `Sync` wrapper).
    fn get(&self) -> *mut u8 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{random_values, Rng};
    use crate::{type_traits, Isa, SUPPORTED};

    #[test]
    fn threaded_matrix_quantization_equals_row_by_row_reference() {
        let mut rng = Rng::new(21);
        let k = Kernels::for_isa(Isa::best()).unwrap();
        let pool = ThreadPool::new(3);
        for &ty in &SUPPORTED {
            let cols = 2 * ty.block_size().max(256);
            let rows = 37;
            let x = random_values(&mut rng, rows * cols);
            let t = type_traits(ty).unwrap();
            let rb = t.row_bytes(cols).unwrap();
            let mut want = vec![0u64; (rows * rb).div_ceil(8)];
            let want: &mut [u8] = &mut bytemuck::cast_slice_mut(&mut want)[..rows * rb];
            for r in 0..rows {
                t.quantize_weights_row(
                    &x[r * cols..(r + 1) * cols],
                    &mut want[r * rb..(r + 1) * rb],
                )
                .unwrap();
            }
            let mut got = vec![0u64; (rows * rb).div_ceil(8)];
            let got: &mut [u8] = &mut bytemuck::cast_slice_mut(&mut got)[..rows * rb];
            quantize_matrix(k, &pool, ty, &x, cols, got).unwrap();
            assert!(got == want, "{ty}");
            assert!(quantize_matrix(k, &pool, ty, &x[..cols + 1], cols, got).is_err());
        }
    }
}
