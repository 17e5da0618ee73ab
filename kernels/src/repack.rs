//! Weight layouts other than row-major, and the repacking into them at load.
//!
//! A GGUF matrix is row-major: each row's blocks one after another. Where an ISA has kernels
//! that hold several rows in the lanes of a vector (x86 AVX2 and AVX-512: Q4_K and Q5_0, eight
//! rows), a caller repacks the matrix once with [`Kernels::repack`] and hands
//! [`RepackedMatrix::matrix`] to [`crate::matmul()`] from then on; the results are
//! bit-identical to the row-major matrix's.

use nanorun_formats::GgmlType;

use crate::error::{KernelError, Result};
use crate::kernels::Kernels;
use crate::matmul::QMatrix;

/// How a [`QMatrix`]'s bytes are arranged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// As in the file: row r's blocks at `r × row_bytes`.
    #[default]
    RowMajor,
    /// Groups of eight rows with their blocks interleaved (`quant::q4_k_x8`, `q5_0_x8`), group
    /// k at `8k × row_bytes`; the rows after the last whole group stay row-major. Only for
    /// types whose kernels have an eight-row path ([`Kernels::preferred_layout`]).
    Interleaved8,
}

/// Rows per group of [`Layout::Interleaved8`].
pub use crate::quant::INTERLEAVED_ROWS;

/// A matrix repacked into the layout its kernels prefer (so far always
/// [`Layout::Interleaved8`]); owns its bytes.
pub struct RepackedMatrix {
    words: Vec<u64>,
    len: usize,
    ty: GgmlType,
    rows: usize,
    cols: usize,
}

impl std::fmt::Debug for RepackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepackedMatrix")
            .field("ty", &self.ty)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("len", &self.len)
            .finish()
    }
}

impl RepackedMatrix {
    /// The matrix, for [`crate::matmul()`].
    pub fn matrix(&self) -> QMatrix<'_> {
        QMatrix {
            data: &bytemuck::cast_slice(&self.words)[..self.len],
            ty: self.ty,
            rows: self.rows,
            cols: self.cols,
            layout: Layout::Interleaved8,
        }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the matrix holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Kernels {
    /// The layout these kernels run `ty` matrices fastest in.
    pub fn preferred_layout(&self, ty: GgmlType) -> Layout {
        match self.traits(ty) {
            Ok(t) if t.interleaved8.is_some() => Layout::Interleaved8,
            _ => Layout::RowMajor,
        }
    }

    /// `m` (row-major) repacked into [`Kernels::preferred_layout`], or `None` when that is
    /// row-major or `m` has fewer rows than one group. Errors name a malformed matrix.
    pub fn repack(&self, m: &QMatrix<'_>) -> Result<Option<RepackedMatrix>> {
        let t = self.traits(m.ty)?;
        let Some(path) = t.interleaved8 else {
            return Ok(None);
        };
        if m.layout != Layout::RowMajor {
            return Err(KernelError::WrongLayout {
                what: "repack input",
                expected: Layout::RowMajor,
                got: m.layout,
            });
        }
        // Re-checks the byte count, and the alignment of the first row (so of every row).
        let m = QMatrix::new(m.data, m.ty, m.rows, m.cols)?;
        let row_bytes = t.row_bytes(m.cols)?;
        let groups = m.rows / INTERLEAVED_ROWS;
        if groups == 0 {
            return Ok(None);
        }
        t.check_row("weight matrix", &m.data[..row_bytes], m.cols)?;
        let nb = m.cols / t.block_size;
        let mut words = vec![0u64; m.data.len().div_ceil(8)];
        let out: &mut [u8] = &mut bytemuck::cast_slice_mut(&mut words)[..m.data.len()];
        let group_bytes = INTERLEAVED_ROWS * row_bytes;
        for g in 0..groups {
            let span = g * group_bytes..(g + 1) * group_bytes;
            (path.interleave)(&m.data[span.clone()], nb, &mut out[span]);
        }
        let tail = groups * group_bytes;
        out[tail..].copy_from_slice(&m.data[tail..]);
        Ok(Some(RepackedMatrix {
            len: m.data.len(),
            words,
            ty: m.ty,
            rows: m.rows,
            cols: m.cols,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::{matmul, MatmulScratch};
    use crate::testutil::{random_weights, Rng};
    use crate::{Isa, ThreadPool};

    /// Every ISA with an interleaved path: a repacked matrix gives the row-major matrix's bits
    /// for one token (the one-token kernels), batches in the batch-invariant order (the
    /// four-token kernels) and in the default order (llama.cpp's GEMM order from four tokens),
    /// with whole groups and a row-major tail, on one and two threads.
    #[test]
    fn repacked_matrices_give_the_bits_of_row_major_ones() {
        let mut rng = Rng::new(11);
        let mut tested = 0;
        for isa in Isa::ALL {
            let Ok(k) = Kernels::for_isa(isa) else {
                continue;
            };
            for &ty in &crate::SUPPORTED {
                if k.preferred_layout(ty) == Layout::RowMajor {
                    continue;
                }
                tested += 1;
                for (rows, cols) in [(37, 512), (16, 2048), (8, 256)] {
                    let data = random_weights(&mut rng, ty, rows, cols);
                    let plain = QMatrix::new(data.bytes(), ty, rows, cols).unwrap();
                    let packed = k.repack(&plain).unwrap().unwrap();
                    assert_eq!(packed.len(), plain.data.len());
                    let m = packed.matrix();
                    assert_eq!(m.layout, Layout::Interleaved8);
                    for n_tokens in [1, 3, 4, 9, 23] {
                        let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.normal()).collect();
                        for (threads, invariant) in [(1, false), (2, false), (2, true)] {
                            let pool = ThreadPool::new(threads);
                            let run = |w: &QMatrix<'_>| {
                                let mut s = MatmulScratch::new();
                                s.set_batch_invariant(invariant);
                                let mut out = vec![f32::NAN; n_tokens * rows];
                                matmul(k, &pool, w, &x, n_tokens, &mut out, &mut s).unwrap();
                                out
                            };
                            assert_eq!(
                                run(&m),
                                run(&plain),
                                "{isa} {ty} {rows}x{cols} tokens {n_tokens} threads {threads} \
                                 invariant {invariant}"
                            );
                        }
                    }
                }
            }
        }
        if cfg!(target_arch = "x86_64") && Kernels::for_isa(Isa::Avx2).is_ok() {
            assert!(tested > 0, "AVX2 interleaves Q4_K");
        } else if tested == 0 {
            eprintln!("no ISA here has an interleaved layout: nothing to compare");
        }
    }

    #[test]
    fn repack_refuses_what_it_cannot_take() {
        let k = Kernels::for_isa(Isa::Scalar).unwrap();
        let data = crate::testutil::Aligned::zeroed(8 * 144);
        let m = QMatrix::new(data.bytes(), GgmlType::Q4_K, 8, 256).unwrap();
        // The scalar kernels run every matrix row-major.
        assert_eq!(k.preferred_layout(GgmlType::Q4_K), Layout::RowMajor);
        assert!(k.repack(&m).unwrap().is_none());
        let Some(k) = Isa::ALL
            .into_iter()
            .filter_map(|i| Kernels::for_isa(i).ok())
            .find(|k| k.preferred_layout(GgmlType::Q4_K) == Layout::Interleaved8)
        else {
            return;
        };
        // Fewer rows than a group: nothing to repack.
        let few = QMatrix::new(&data.bytes()[..4 * 144], GgmlType::Q4_K, 4, 256).unwrap();
        assert!(k.repack(&few).unwrap().is_none());
        let packed = k.repack(&m).unwrap().unwrap();
        assert!(matches!(
            k.repack(&packed.matrix()),
            Err(KernelError::WrongLayout { .. })
        ));
        // A kernel table without the interleaved path refuses the repacked matrix.
        let scalar = Kernels::for_isa(Isa::Scalar).unwrap();
        let pool = ThreadPool::new(1);
        let mut out = vec![0.0; 8];
        assert!(matches!(
            matmul(
                scalar,
                &pool,
                &packed.matrix(),
                &[0.0; 256],
                1,
                &mut out,
                &mut MatmulScratch::new()
            ),
            Err(KernelError::WrongLayout { .. })
        ));
    }
}
