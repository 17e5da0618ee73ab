//! Weight layouts other than row-major, and the repacking into them at load.
//!
//! A GGUF matrix is row-major: each row's blocks one after another. Where an ISA has kernels
//! that hold several rows in the lanes of a vector (x86 AVX2 and AVX-512: Q4_K and Q5_0, eight
//! rows), a caller repacks the matrix once with [`Kernels::repack`] and hands
//! [`RepackedMatrix::matrix`] to [`crate::matmul()`] from then on; the results are
//! bit-identical to the row-major matrix's.

use nanorun_formats::GgmlType;

use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::arena::{ArenaBuilder, WeightArena};
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

/// A matrix repacked into the layout its kernels prefer (or copied as it is, where that is
/// row-major: [`Kernels::repack_all`]): one span of a [`WeightArena`] it shares with the other matrices
/// repacked with it.
pub struct RepackedMatrix {
    arena: Arc<WeightArena>,
    span: usize,
    layout: Layout,
    ty: GgmlType,
    rows: usize,
    cols: usize,
}

impl std::fmt::Debug for RepackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepackedMatrix")
            .field("ty", &self.ty)
            .field("layout", &self.layout)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("len", &self.len())
            .finish()
    }
}

impl RepackedMatrix {
    /// The matrix, for [`crate::matmul()`].
    pub fn matrix(&self) -> QMatrix<'_> {
        QMatrix {
            data: self.arena.span(self.span),
            ty: self.ty,
            rows: self.rows,
            cols: self.cols,
            layout: self.layout,
        }
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.arena.span(self.span).len()
    }

    /// Whether the matrix holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Kernels {
    /// The layout these kernels run `ty` matrices fastest in.
    pub fn preferred_layout(&self, ty: GgmlType) -> Layout {
        match self.traits(ty) {
            Ok(t) if t.interleaved8.is_some_and(|p| p.for_batches) => Layout::Interleaved8,
            _ => Layout::RowMajor,
        }
    }

    /// The layout for a model's output projection (the logits) of type `ty`: the type's
    /// interleaved layout wherever it has one (x86 AVX-512: also Q8_0, which is not
    /// [`Kernels::preferred_layout`] there). Its Q8_0 kernels round as the scalar reference
    /// does, not as llama.cpp's x86 kernels do (`Interleaved8Path::scalar_bits`): harmless
    /// after the last layer, where nothing quantizes the results again, but inside a layer a
    /// one-ulp change flips activation quants downstream, and on Gemma 3 270M that moved
    /// top-5 logits by up to 1.6 and changed greedy tokens (the golden test), so layers keep
    /// llama.cpp's bits.
    pub fn output_layout(&self, ty: GgmlType) -> Layout {
        match self.traits(ty) {
            Ok(t) if t.interleaved8.is_some() => Layout::Interleaved8,
            _ => Layout::RowMajor,
        }
    }

    /// `m` (row-major) repacked into [`Kernels::preferred_layout`], or `None` when that is
    /// row-major or `m` has fewer rows than one group. Errors name a malformed matrix.
    pub fn repack(&self, m: &QMatrix<'_>) -> Result<Option<RepackedMatrix>> {
        Ok(self
            .repack_all(&[*m], 1, false, |_| false, |_, _| ())?
            .pop()
            .flatten())
    }

    /// Every matrix of `ms` repacked as [`Kernels::repack`] would, all into one
    /// [`WeightArena`] (huge pages), on up to `threads` threads; with `copy_row_major`, the
    /// matrices that stay row-major are copied into it too (each `Some`). Where `output(i)`
    /// (a model's output projection), `ms[i]` takes [`Kernels::output_layout`] instead of the
    /// preferred one. `done(i, bytes)` runs for each piece of `ms[i]` (a few MiB, a byte range
    /// of its data) as soon as it has been placed, and once more with the whole range when all
    /// of it has, so that a caller can let go of the source bytes as it goes: memory then never
    /// holds a large matrix twice.
    pub fn repack_all(
        &self,
        ms: &[QMatrix<'_>],
        threads: usize,
        copy_row_major: bool,
        output: impl Fn(usize) -> bool,
        done: impl Fn(usize, Range<usize>) + Sync,
    ) -> Result<Vec<Option<RepackedMatrix>>> {
        let mut todo = Vec::new();
        for (i, m) in ms.iter().enumerate() {
            match self.placement(m, output(i))? {
                Layout::RowMajor if !copy_row_major => {}
                layout => todo.push((i, layout)),
            }
        }
        let lens: Vec<usize> = todo.iter().map(|&(i, _)| ms[i].data.len()).collect();
        let mut arena = ArenaBuilder::new(&lens)?;
        let queue = Mutex::new(todo.iter().copied().zip(arena.spans_mut()));
        let work = || -> Result<()> {
            loop {
                // (A poisoned lock means another thread panicked; that panic is re-raised.)
                let Some(((i, layout), out)) = queue.lock().ok().and_then(|mut q| q.next()) else {
                    return Ok(());
                };
                let piece_done = |bytes| done(i, bytes);
                match layout {
                    Layout::RowMajor => {
                        for bytes in pieces(out.len(), 1) {
                            out[bytes.clone()].copy_from_slice(&ms[i].data[bytes.clone()]);
                            piece_done(bytes);
                        }
                    }
                    Layout::Interleaved8 => self.repack_into(&ms[i], out, piece_done)?,
                }
                done(i, 0..out.len());
            }
        };
        std::thread::scope(|s| {
            let helpers: Vec<_> = (1..threads.clamp(1, todo.len().max(1)))
                .map(|_| s.spawn(work))
                .collect();
            let mine = work();
            helpers
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .fold(mine, Result::and)
        })?;
        drop(queue);
        let arena = Arc::new(arena.finish()?);
        let mut out: Vec<Option<RepackedMatrix>> = ms.iter().map(|_| None).collect();
        for (span, &(i, layout)) in todo.iter().enumerate() {
            out[i] = Some(RepackedMatrix {
                arena: arena.clone(),
                span,
                layout,
                ty: ms[i].ty,
                rows: ms[i].rows,
                cols: ms[i].cols,
            });
        }
        Ok(out)
    }

    /// The layout `m` (row-major) is repacked into: [`Kernels::preferred_layout`] (or
    /// [`Kernels::output_layout`] for an output projection), but row-major where it has fewer
    /// rows than one group. Errors name a malformed matrix.
    fn placement(&self, m: &QMatrix<'_>, output: bool) -> Result<Layout> {
        if m.layout != Layout::RowMajor {
            return Err(KernelError::WrongLayout {
                what: "repack input",
                expected: Layout::RowMajor,
                got: m.layout,
            });
        }
        // Re-checks the byte count, and the alignment of the first row (so of every row).
        let m = QMatrix::new(m.data, m.ty, m.rows, m.cols)?;
        let t = self.traits(m.ty)?;
        let layout = if output {
            self.output_layout(m.ty)
        } else {
            self.preferred_layout(m.ty)
        };
        if layout == Layout::RowMajor || m.rows < INTERLEAVED_ROWS {
            return Ok(Layout::RowMajor);
        }
        t.check_row("weight matrix", &m.data[..t.row_bytes(m.cols)?], m.cols)?;
        Ok(Layout::Interleaved8)
    }

    /// Row-major `m`, checked by [`Kernels::placement`], repacked into `out` (as many bytes),
    /// `done(bytes)` after each piece.
    fn repack_into(
        &self,
        m: &QMatrix<'_>,
        out: &mut [u8],
        done: impl Fn(Range<usize>),
    ) -> Result<()> {
        let t = self.traits(m.ty)?;
        let Some(path) = t.interleaved8 else {
            return Err(KernelError::WrongLayout {
                what: "repack output",
                expected: Layout::RowMajor,
                got: Layout::Interleaved8,
            });
        };
        let row_bytes = t.row_bytes(m.cols)?;
        let nb = m.cols / t.block_size;
        let group_bytes = INTERLEAVED_ROWS * row_bytes;
        let tail = m.rows / INTERLEAVED_ROWS * group_bytes;
        for bytes in pieces(tail, group_bytes) {
            for (src, dst) in m.data[bytes.clone()]
                .chunks_exact(group_bytes)
                .zip(out[bytes.clone()].chunks_exact_mut(group_bytes))
            {
                (path.interleave)(src, nb, dst);
            }
            done(bytes);
        }
        out[tail..].copy_from_slice(&m.data[tail..]);
        done(tail..m.data.len());
        Ok(())
    }
}

/// Bytes per piece of a matrix placed between two `done` calls of [`Kernels::repack_all`].
const PIECE_BYTES: usize = 4 << 20;

/// `0..len` in pieces of about [`PIECE_BYTES`], each a whole multiple of `unit`.
fn pieces(len: usize, unit: usize) -> impl Iterator<Item = Range<usize>> {
    let step = (PIECE_BYTES / unit).max(1) * unit;
    (0..len)
        .step_by(step)
        .map(move |start| start..(start + step).min(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::{matmul, MatmulScratch};
    use crate::testutil::{random_weights, Rng};
    use crate::{Isa, ThreadPool};

    /// Every ISA with an interleaved path: a repacked matrix gives the row-major matrix's bits
    /// (or, for a path with `scalar_bits`, and batch-invariant on a path with reference-order
    /// kernels, the scalar reference's in its whole groups) for one token (the one-token
    /// kernels), batches in the batch-invariant order (the four-token kernels) and in the
    /// default order (llama.cpp's GEMM order from four tokens), with whole groups and a
    /// row-major tail, on one and two threads.
    #[test]
    fn repacked_matrices_give_the_bits_of_row_major_ones() {
        let mut rng = Rng::new(11);
        let mut tested = 0;
        let scalar = Kernels::for_isa(Isa::Scalar).unwrap();
        for isa in Isa::ALL {
            let Ok(k) = Kernels::for_isa(isa) else {
                continue;
            };
            for &ty in &crate::SUPPORTED {
                // (The output layout where it differs: its batches must keep the bits too.)
                if k.output_layout(ty) == Layout::RowMajor {
                    continue;
                }
                tested += 1;
                let path = k.traits(ty).unwrap().interleaved8.unwrap();
                for (rows, cols) in [(37, 512), (16, 2048), (8, 256)] {
                    let data = random_weights(&mut rng, ty, rows, cols);
                    let plain = QMatrix::new(data.bytes(), ty, rows, cols).unwrap();
                    let packed = k
                        .repack_all(&[plain], 1, false, |_| true, |_, _| ())
                        .unwrap()
                        .pop()
                        .flatten()
                        .unwrap();
                    assert_eq!(packed.len(), plain.data.len());
                    let m = packed.matrix();
                    assert_eq!(m.layout, Layout::Interleaved8);
                    for n_tokens in [1, 3, 4, 9, 23, 69, 130] {
                        let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.normal()).collect();
                        for (threads, invariant) in [(1, false), (2, false), (2, true)] {
                            let pool = ThreadPool::new(threads);
                            let run_on = |k: &Kernels, w: &QMatrix<'_>| {
                                let mut s = MatmulScratch::new();
                                s.set_batch_invariant(invariant);
                                let mut out = vec![f32::NAN; n_tokens * rows];
                                matmul(k, &pool, w, &x, n_tokens, &mut out, &mut s).unwrap();
                                out
                            };
                            let run = |w: &QMatrix<'_>| run_on(k, w);
                            let mut want = run(&plain);
                            // Batch-invariant matmuls take the reference-order kernels where
                            // the path has them.
                            if path.scalar_bits || (invariant && path.invariant.is_some()) {
                                // Whole groups: the scalar reference's bits; the tail rows
                                // stay row-major.
                                let reference = run_on(scalar, &plain);
                                let grouped = rows / INTERLEAVED_ROWS * INTERLEAVED_ROWS;
                                for (t, r) in
                                    (0..n_tokens).flat_map(|t| (0..grouped).map(move |r| (t, r)))
                                {
                                    want[t * rows + r] = reference[t * rows + r];
                                }
                            }
                            assert_eq!(
                                run(&m),
                                want,
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

    /// `repack_all` places every matrix in one arena: the repacked ones as `repack` makes
    /// them, the others (with `copy_row_major`) byte for byte; `done` hears of each piece and
    /// then of the whole matrix once.
    #[test]
    fn repack_all_places_every_matrix_once() {
        let mut rng = Rng::new(5);
        for isa in Isa::ALL {
            let Ok(k) = Kernels::for_isa(isa) else {
                continue;
            };
            let shapes = [
                (GgmlType::Q4_K, 16, 512),
                (GgmlType::Q6_K, 9, 256),
                (GgmlType::Q4_K, 4, 256),
                (GgmlType::Q8_0, 24, 64),
            ];
            let data: Vec<_> = shapes
                .iter()
                .map(|&(ty, r, c)| random_weights(&mut rng, ty, r, c))
                .collect();
            let ms: Vec<QMatrix<'_>> = shapes
                .iter()
                .zip(&data)
                .map(|(&(ty, r, c), d)| QMatrix::new(d.bytes(), ty, r, c).unwrap())
                .collect();
            for copy in [false, true] {
                let seen = Mutex::new(vec![Vec::new(); ms.len()]);
                let placed = k
                    .repack_all(
                        &ms,
                        3,
                        copy,
                        |_| false,
                        |i, bytes| seen.lock().unwrap()[i].push(bytes),
                    )
                    .unwrap();
                for (i, (m, p)) in ms.iter().zip(&placed).enumerate() {
                    let alone = k.repack(m).unwrap();
                    match (p, alone) {
                        (Some(p), Some(a)) => assert_eq!(p.matrix().data, a.matrix().data),
                        (Some(p), None) => {
                            assert!(copy, "{isa} matrix {i}");
                            assert_eq!(p.matrix().layout, Layout::RowMajor);
                            assert_eq!(p.matrix().data, m.data);
                        }
                        (None, alone) => assert!(!copy && alone.is_none(), "{isa} matrix {i}"),
                    }
                    // Pieces that tile the matrix, then the whole of it, last.
                    let mut got = seen.lock().unwrap()[i].clone();
                    let whole = 0..m.data.len();
                    assert_eq!(got.last().cloned(), p.as_ref().map(|_| whole), "{isa} {i}");
                    got.pop();
                    let mut end = 0;
                    for r in got {
                        assert_eq!(r.start, end, "{isa} matrix {i}: pieces in order");
                        end = r.end;
                    }
                    assert!(p.is_none() || end == m.data.len(), "{isa} matrix {i}");
                }
            }
        }
    }
}
