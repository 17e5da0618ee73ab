//! Matrix × activations over a quantized weight matrix: `out[t][r] = W[r,:] · x[t,:]`.
//!
//! Each activation row is quantized once to the weight type's `vec_dot_type` (into a reusable
//! [`MatmulScratch`]); rows of W are split into chunks handed out by the [`ThreadPool`]; inside a
//! chunk, tiles of [`ROW_TILE`] weight rows are dotted with every token before moving on, so a
//! loaded weight block is reused across the batch from L1 instead of being re-read from memory,
//! and where the ISA has a four-token kernel each weight block is also unpacked once per four
//! tokens. Types with an `Int8Path` (x86: Q4_0, Q5_0, Q8_0) go further from two tokens on:
//! the activations are unpacked once into signed bytes and f32 scales, and each weight block is
//! decoded once per group of eight, four or two tokens (Q5_0 batches of 64 or more unpack each
//! tile of rows once instead). Either way a token's result is bit-identical to a batch of one.
//! Matrices repacked with eight rows interleaved take `matmul_interleaved.rs`'s tiles; large
//! batches of a type with a `Tile16Path` (x86 Q6_K: wide batches, and on AVX-512 batch-invariant
//! ones of 16+ tokens) take `matmul_tile16.rs`'s, sixteen rows unpacked once per tile.

use nanorun_formats::GgmlType;

use crate::error::{KernelError, Result};
use crate::int8_acts::{in_groups_of_8_4_2, ActsForm, Int8Buf};
use crate::kernels::Kernels;
use crate::repack::{Layout, INTERLEAVED_ROWS};
use crate::threads::ThreadPool;
use crate::traits::{
    Int8Path, Int8Row, Int8RowMut, Interleaved8Batch, Interleaved8Path, Tile16Path, TypeTraits,
    VecDotFn, VecDotX4Fn,
};
use interleaved::interleaved_tile;
use tile16::{tile16_tokens, TILE16_ROWS};

/// Weight rows dotted with every token before moving on to the next rows.
pub const ROW_TILE: usize = 4;

/// How far ahead of the current row tile the weights are software-prefetched, in bytes, for
/// the types whose ISA table asks for it (`TypeTraits::soft_prefetch`). Whether it helps
/// depends on the CPU, so each table says, from measurements of the Gemma 3 270M matmul mix
/// (`examples/gemma3_270m_matmuls`):
/// - AVX2 (set for the types with blocks of fewer than 256 values): on an AVX2-only EPYC
///   (Zen 3), prefetching took one-thread decode from 35.6 to 30.2 ms per step. 0–64 KiB all
///   measured alike once any prefetch was issued. The K-quants are not prefetched: there it
///   made Q4_K and Q6_K decode slower (a Llama-3.2-1B-shaped Q4_K_M model ran at 8.6 instead
///   of 11.9 tok/s).
/// - AVX-512 (set for none): on a Zen 4 EPYC every prefetch distance from 128 B to 64 KiB
///   made things slower. The 262144 × 640 Q8_0 Gemma output projection, one thread
///   (`kernel_cycles Q8_0 avx512 20 1 1 262144 640`), fell from 14.5–15.1 GB/s without
///   prefetching to 12.0–12.6 GB/s at 128 B–1 KiB ahead and 8.7–9.1 GB/s at 16 KiB ahead.
///   The whole mix went from 18.1 to 29.5 ms per step on one thread and from 12.9 to 16.4 ms
///   on two (16 KiB ahead). There the hardware prefetchers alone do better.
pub const PREFETCH_AHEAD: usize = 16 * 1024;

/// A quantized matrix: `rows` rows of `cols` values of type `ty`, each row
/// `ty.row_bytes(cols)` bytes, as a GGUF tensor with `ne = [cols, rows]`; row-major as in the
/// file, or repacked ([`Kernels::repack`]) into another [`Layout`] of the same size.
#[derive(Clone, Copy, Debug)]
pub struct QMatrix<'a> {
    /// The bytes (`rows × row_bytes`).
    pub data: &'a [u8],
    /// The element type.
    pub ty: GgmlType,
    /// Number of rows (outputs).
    pub rows: usize,
    /// Values per row (inputs).
    pub cols: usize,
    /// How the bytes are arranged.
    pub layout: Layout,
}

impl<'a> QMatrix<'a> {
    /// A row-major matrix view, checked: `cols` a multiple of the block size and `data` exactly
    /// `rows × row_bytes` long.
    pub fn new(data: &'a [u8], ty: GgmlType, rows: usize, cols: usize) -> Result<QMatrix<'a>> {
        let row_bytes = crate::traits::type_traits(ty)?.row_bytes(cols)?;
        let expected = rows
            .checked_mul(row_bytes)
            .ok_or(KernelError::LengthMismatch {
                what: "matrix bytes",
                expected: usize::MAX,
                got: data.len(),
            })?;
        if data.len() != expected {
            return Err(KernelError::LengthMismatch {
                what: "matrix bytes",
                expected,
                got: data.len(),
            });
        }
        Ok(QMatrix {
            data,
            ty,
            rows,
            cols,
            layout: Layout::RowMajor,
        })
    }
}

/// A caller's matmul state: the reusable buffer for quantized activations (grows to the largest
/// op seen, then never allocates again) and the numerics option.
#[derive(Debug, Default)]
pub struct MatmulScratch {
    buf: Vec<u64>,
    int8: Int8Buf,
    batch_invariant: bool,
}

thread_local! {
    /// The current row tile, unpacked, of the matmul chunk this thread is running.
    static WEIGHT_TILE: std::cell::RefCell<Int8Buf> = std::cell::RefCell::default();
}

/// Smallest batch that takes a type's [`Int8Path`]: from two tokens, converting the
/// activations once costs less than the multi-token kernels' f16 scale gathers (measured
/// 1.4–1.8× on Q8_0 and Q5_0 rows with two and four tokens; one token stays on `vec_dot`).
pub const INT8_MIN_TOKENS: usize = 2;

/// Weight rows unpacked at a time on the [`Int8Path`]: a whole cache line of each token's
/// output, and (at 640 values a row) 11.5 KiB of unpacked rows beside the eight tokens'
/// 5.8 KiB in L1.
const INT8_ROW_TILE: usize = 16;

/// Interleaved groups per tile for one token (see `matmul`).
const ONE_TOKEN_GROUPS: usize = 8;

impl MatmulScratch {
    /// An empty scratch buffer.
    pub fn new() -> MatmulScratch {
        MatmulScratch::default()
    }

    /// By default a matmul of a large enough batch switches some types to the float order
    /// llama.cpp uses for such batches (see [`crate::WideBatch`]), so that prefill matches it
    /// bit for bit; the same token then rounds differently depending on its batch. With
    /// `on`, every token gets the one-token order whatever the batch: a sequence's results no
    /// longer depend on what it is batched with.
    pub fn set_batch_invariant(&mut self, on: bool) {
        self.batch_invariant = on;
    }

    /// Whether [`MatmulScratch::set_batch_invariant`] is on.
    pub fn batch_invariant(&self) -> bool {
        self.batch_invariant
    }

    /// `n` bytes, 8-byte aligned (enough for every block type).
    fn bytes(&mut self, n: usize) -> &mut [u8] {
        let words = n.div_ceil(8);
        if self.buf.len() < words {
            self.buf.resize(words, 0);
        }
        &mut bytemuck::cast_slice_mut(&mut self.buf[..words])[..n]
    }
}

#[derive(Clone, Copy)]
struct SyncPtr<T>(*mut T);
// SAFETY: used only to hand disjoint parts of one `&mut` slice to pool chunks (see the uses).
unsafe impl<T> Sync for SyncPtr<T> {}
unsafe impl<T> Send for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not the raw field).
    fn get(&self) -> *mut T {
        self.0
    }
}

/// `out[t·rows + r] = W[r,:] · x[t·cols ..][..cols]` for `n_tokens` tokens.
///
/// `x` holds `n_tokens × w.cols` values, `out` `n_tokens × w.rows`. Activations are quantized
/// once with `kernels`' quantizer for W's `vec_dot_type`; rows are split across `pool`.
pub fn matmul(
    kernels: &Kernels,
    pool: &ThreadPool,
    w: &QMatrix<'_>,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
    scratch: &mut MatmulScratch,
) -> Result<()> {
    matmul_many(kernels, pool, [(*w, out)], x, n_tokens, scratch)
}

/// [`matmul`] of several matrices over the same activations (a layer's Q, K and V
/// projections, or its FFN gate and up): `parts[i].1 = parts[i].0 · x`, each result exactly
/// what [`matmul`] gives. Where they share the activation type (and, for batches, its int8
/// form), the activations are quantized once and all the matrices' row chunks go to `pool` as
/// one op, in order, so that the threads stream matrices placed one after another as one run
/// of memory and meet once at the end instead of once per matrix; otherwise they run one after
/// another.
pub fn matmul_many<const N: usize>(
    kernels: &Kernels,
    pool: &ThreadPool,
    parts: [(QMatrix<'_>, &mut [f32]); N],
    x: &[f32],
    n_tokens: usize,
    scratch: &mut MatmulScratch,
) -> Result<()> {
    let mut planned: [Option<Plan<'_>>; N] = std::array::from_fn(|_| None);
    for (slot, (w, out)) in planned.iter_mut().zip(parts) {
        *slot = Some(Plan::new(
            kernels,
            pool.threads_now(),
            &w,
            x,
            n_tokens,
            out,
            scratch,
        )?);
    }
    let plans = planned.map(|p| p.expect("every part was planned just above"));
    if n_tokens == 0 {
        return Ok(());
    }
    let shares_acts = |p: &Plan<'_>, q: &Plan<'_>| {
        p.at.ty == q.at.ty
            && p.w.cols == q.w.cols
            && (p.int8.is_none() || q.int8.is_none() || p.acts_form == q.acts_form)
    };
    if plans
        .iter()
        .all(|p| plans.iter().all(|q| shares_acts(p, q)))
    {
        run_plans(pool, &plans, x, n_tokens, scratch);
    } else {
        for plan in &plans {
            run_plans(pool, std::slice::from_ref(plan), x, n_tokens, scratch);
        }
    }
    Ok(())
}

/// Smallest chunk of weight bytes handed to a thread: each chunk starts a new stream for the
/// hardware prefetchers, which costs a few misses at full memory latency before they follow.
/// On a two-core Zen 4, per-op times of Gemma 3 270M's small layer matrices at two threads
/// (one token) went from 30 to 23 µs (Q, 450 KB) and from 13 to 9 µs (V, 174 KB) with chunks
/// of at least 64 KiB instead of a sixteenth of the matrix.
const MIN_CHUNK_BYTES: usize = 64 * 1024;

/// One matrix of an op, checked, with its kernels and its split into chunks chosen.
struct Plan<'a> {
    w: QMatrix<'a>,
    at: TypeTraits,
    w_row: usize,
    a_row: usize,
    nb: usize,
    wide: bool,
    vec_dot: VecDotFn,
    vec_dot_x4: Option<VecDotX4Fn>,
    interleaved: Option<Interleaved8Path>,
    tile16: Option<Tile16Path>,
    int8: Option<(Int8Path, Int8Path)>,
    acts_form: ActsForm,
    soft_prefetch: bool,
    tile_rows: usize,
    grouped_rows: usize,
    per_chunk: usize,
    n_chunks: usize,
    out: SyncPtr<f32>,
}

impl<'a> Plan<'a> {
    /// Checks `w` against the activations and output of an op of `n_tokens` tokens and plans
    /// its kernels and chunks for `threads` threads.
    fn new(
        kernels: &Kernels,
        threads: usize,
        w: &QMatrix<'a>,
        x: &[f32],
        n_tokens: usize,
        out: &mut [f32],
        scratch: &MatmulScratch,
    ) -> Result<Plan<'a>> {
        let wt = *kernels.traits(w.ty)?;
        let at = *kernels.traits(wt.vec_dot_type)?;
        let w_row = wt.row_bytes(w.cols)?;
        let a_row = at.row_bytes(w.cols)?;
        let check = |what, expected: usize, got: usize| {
            if expected == got {
                Ok(())
            } else {
                Err(KernelError::LengthMismatch {
                    what,
                    expected,
                    got,
                })
            }
        };
        check("matrix bytes", w.rows * w_row, w.data.len())?;
        check("activations", n_tokens * w.cols, x.len())?;
        check("output", n_tokens * w.rows, out.len())?;
        if w.rows > 0 && n_tokens > 0 {
            // Row r starts at r·w_row, a multiple of the block size, so one check covers
            // every row.
            wt.check_row("weight matrix", &w.data[..w_row], w.cols)?;
        }
        let wide = wt
            .wide
            .filter(|w| !scratch.batch_invariant && n_tokens >= w.min_tokens);
        let (vec_dot, vec_dot_x4) = match wide {
            Some(w) => (w.vec_dot, w.vec_dot_x4),
            None => (wt.vec_dot, wt.vec_dot_x4),
        };
        let interleaved = match w.layout {
            Layout::RowMajor => None,
            Layout::Interleaved8 => Some(wt.interleaved8.ok_or(KernelError::WrongLayout {
                what: "weight matrix",
                expected: Layout::RowMajor,
                got: w.layout,
            })?),
        };
        // Batch-invariant: the path's reference-order kernels where it has them.
        let interleaved = interleaved.map(|p| match p.invariant {
            Some(r) if scratch.batch_invariant => Interleaved8Path {
                x1: r.x1,
                batch: r.batch,
                ..p
            },
            _ => p,
        });
        // Sixteen-row tiles in the order the batch takes: the wide kernels' or the type's own.
        let tile16 = match wide {
            Some(w) => w.tile16,
            None => wt.tile16,
        }
        .filter(|p| interleaved.is_none() && n_tokens >= p.min_tokens);
        let int8 = match (wide, wt.int8, at.int8) {
            (None, Some(w8), Some(a8)) if n_tokens >= INT8_MIN_TOKENS => Some((w8, a8)),
            _ => None,
        };
        let acts_form = match interleaved.map(|p| p.batch) {
            Some(Interleaved8Batch::Int8Tokens { .. }) => ActsForm::Grouped,
            _ => int8.map_or(ActsForm::Signed, |(w8, _)| ActsForm::of(&w8)),
        };
        // (Multiples of 8, so that the tiles of an interleaved matrix start at group bounds.)
        let tile_rows = if int8.is_some() {
            INT8_ROW_TILE
        } else if tile16.is_some() {
            TILE16_ROWS
        } else if interleaved.is_some() && n_tokens == 1 {
            // One token visits each group once: several groups per tile spread the per-tile
            // costs (a call, the split into groups, the stores) over more of the kernel's work.
            ONE_TOKEN_GROUPS * INTERLEAVED_ROWS
        } else if interleaved.is_some_and(|p| p.batch.in_pairs()) {
            // Tiles of two groups for the kernels that take them together.
            2 * INTERLEAVED_ROWS
        } else if interleaved.is_some() {
            INTERLEAVED_ROWS
        } else {
            ROW_TILE
        };
        let rows = w.rows;
        // Enough chunks that a thread whose core is busy elsewhere does not hold up the op,
        // none under `MIN_CHUNK_BYTES`.
        let per_chunk = if threads == 1 {
            rows.max(1)
        } else {
            rows.div_ceil(threads * 8)
                .max(MIN_CHUNK_BYTES.div_ceil(w_row.max(1)))
                .next_multiple_of(tile_rows)
        };
        Ok(Plan {
            w: *w,
            at,
            w_row,
            a_row,
            nb: w.cols / wt.block_size,
            wide: wide.is_some(),
            vec_dot,
            vec_dot_x4,
            interleaved,
            tile16,
            int8,
            acts_form,
            soft_prefetch: wt.soft_prefetch,
            tile_rows,
            // Rows in whole interleaved groups (the rest are row-major).
            grouped_rows: interleaved.map_or(0, |_| rows / INTERLEAVED_ROWS * INTERLEAVED_ROWS),
            per_chunk,
            n_chunks: rows.div_ceil(per_chunk),
            out: SyncPtr(out.as_mut_ptr()),
        })
    }

    /// Chunk `c`: its rows times every token, written to the plan's output.
    fn run_chunk(&self, c: usize, acts: &[u8], int8_acts: &Int8Buf, n_tokens: usize) {
        let Plan {
            w,
            w_row,
            a_row,
            nb,
            vec_dot,
            vec_dot_x4,
            interleaved,
            tile16,
            int8,
            soft_prefetch,
            tile_rows,
            grouped_rows,
            per_chunk,
            out: out_ptr,
            ..
        } = *self;
        let rows = w.rows;
        let r0 = c * per_chunk;
        let r1 = (r0 + per_chunk).min(rows);
        let act = |t: usize| &acts[t * a_row..(t + 1) * a_row];
        let row = |r: usize| &w.data[r * w_row..(r + 1) * w_row];
        // SAFETY (both writes): t < n_tokens and r < rows, so the index is inside `out`
        // (checked length n_tokens·rows); chunk c alone writes rows r0..r1.
        let put = |t: usize, r: usize, v: f32| unsafe { *out_ptr.get().add(t * rows + r) = v };
        // SAFETY: as for `put`, for the rows r..r + v.len() <= r1.
        let put_run = |t: usize, r: usize, v: &[f32]| unsafe {
            debug_assert!(t < n_tokens && r + v.len() <= r1);
            let dst = out_ptr.get().add(t * rows + r);
            match <&[f32; INT8_ROW_TILE]>::try_from(v) {
                // A whole tile: a fixed-size copy the compiler inlines (not a memcpy call).
                Ok(whole) => dst.cast::<[f32; INT8_ROW_TILE]>().write_unaligned(*whole),
                Err(_) => std::ptr::copy_nonoverlapping(v.as_ptr(), dst, v.len()),
            }
        };
        for tile in (r0..r1).step_by(tile_rows) {
            let tile_end = (tile + tile_rows).min(r1);
            // An interleaved matrix's whole groups first (tiles start at multiples of 8
            // there), then any row-major rows.
            let split = tile_end.min(grouped_rows).max(tile);
            if let Some(path) = interleaved.filter(|_| split > tile) {
                if soft_prefetch {
                    // The kernels read a group lane by lane (one 32-byte slice of every block
                    // per pass), which the hardware prefetchers do not follow far enough.
                    let len = (split - tile) * w_row;
                    prefetch(w.data, split * w_row + PREFETCH_AHEAD, len);
                }
                interleaved_tile(
                    &path,
                    self.wide,
                    int8.map(|(w8, _)| w8),
                    (tile..split, &w.data[tile * w_row..split * w_row]),
                    (int8_acts, nb),
                    (&act, n_tokens),
                    &put_run,
                );
            }
            let tile = split;
            if tile == tile_end {
                continue;
            }
            let mut t = 0;
            // (The int8 path's row-major kernels take the activations in its own form only.)
            if let Some(path) = tile16.filter(|_| tile_end - tile == TILE16_ROWS) {
                let rows = (tile, &w.data[tile * w_row..tile_end * w_row]);
                t = tile16_tokens(&path, rows, nb, (&act, n_tokens), &put_run);
            } else if let Some((w8, _)) = int8.filter(|(w8, _)| self.acts_form == ActsForm::of(w8))
            {
                t = int8_tile(&w8, tile..tile_end, &row, nb, int8_acts, n_tokens, &put_run);
            } else if soft_prefetch {
                prefetch(w.data, tile_end * w_row + PREFETCH_AHEAD, ROW_TILE * w_row);
            }
            if let Some(x4) = vec_dot_x4 {
                while t + 4 <= n_tokens {
                    for r in tile..tile_end {
                        let v = x4(
                            &w.data[r * w_row..(r + 1) * w_row],
                            [act(t), act(t + 1), act(t + 2), act(t + 3)],
                        );
                        for (k, vk) in v.into_iter().enumerate() {
                            put(t + k, r, vk);
                        }
                    }
                    t += 4;
                }
            }
            for t in t..n_tokens {
                for r in tile..tile_end {
                    put(t, r, vec_dot(row(r), act(t)));
                }
            }
        }
    }
}

/// Quantizes the activations once for `plans` (which share their activation type and int8
/// form), then runs every plan's chunks as one pool op.
fn run_plans(
    pool: &ThreadPool,
    plans: &[Plan<'_>],
    x: &[f32],
    n_tokens: usize,
    scratch: &mut MatmulScratch,
) {
    let Some(first) = plans.first() else {
        return;
    };
    let (at, cols, a_row) = (first.at, first.w.cols, first.a_row);
    let x = &x[..n_tokens * cols];
    let mut int8_acts = std::mem::take(&mut scratch.int8);
    let acts = scratch.bytes(n_tokens * a_row);
    quantize_rows(&at, pool, x, cols, acts, a_row);
    let acts: &[u8] = acts;
    let int8 = plans
        .iter()
        .find_map(|p| Some((p.nb, p.int8?, p.acts_form)));
    if let Some((nb, (w8, a8), form)) = int8 {
        int8_acts.reserve(n_tokens, nb);
        let (qs, d) = (
            SyncPtr(int8_acts.qs.as_mut_ptr()),
            SyncPtr(int8_acts.d.as_mut_ptr()),
        );
        let unpack = |t: usize| {
            // SAFETY: token t's blocks t·nb..(t+1)·nb lie in both buffers (reserved above for
            // n_tokens rows) and belong to this call alone.
            let (qs, d) = unsafe {
                (
                    std::slice::from_raw_parts_mut(qs.get().add(t * nb), nb),
                    std::slice::from_raw_parts_mut(d.get().add(t * nb), nb),
                )
            };
            (a8.unpack)(&acts[t * a_row..(t + 1) * a_row], Int8RowMut { qs, d });
            if form == ActsForm::Offset {
                w8.adapt_acts(qs);
            }
        };
        // (A few tokens convert faster on this thread than a pool op costs.)
        if n_tokens > 8 {
            pool.run(n_tokens, unpack);
        } else {
            (0..n_tokens).for_each(unpack);
        }
        if form == ActsForm::Grouped {
            int8_acts.group_tokens(n_tokens, nb);
        }
    }
    let total = plans.iter().map(|p| p.n_chunks).sum();
    let int8_acts_ref = &int8_acts;
    pool.run(total, |mut c| {
        // Chunk c of the op: the plans' chunks one after another.
        for plan in plans {
            if c < plan.n_chunks {
                plan.run_chunk(c, acts, int8_acts_ref, n_tokens);
                return;
            }
            c -= plan.n_chunks;
        }
    });
    scratch.int8 = int8_acts;
}

/// Rows `rows` (one tile) times every whole group of eight tokens through `path`, then one
/// group of four and one of two as far as tokens are left: the rows are read packed, or for a
/// batch over `packed_max_tokens` unpacked once into this thread's [`WEIGHT_TILE`]. Returns the
/// first token not done (at most one is left).
fn int8_tile<'w>(
    path: &Int8Path,
    rows: std::ops::Range<usize>,
    row: &impl Fn(usize) -> &'w [u8],
    nb: usize,
    acts: &Int8Buf,
    n_tokens: usize,
    put_run: &impl Fn(usize, usize, &[f32]),
) -> usize {
    assert!(rows.len() <= INT8_ROW_TILE);
    let out = TileOut {
        rows: rows.clone(),
        acts,
        nb,
        put_run,
    };
    if n_tokens > path.packed_max_tokens {
        return WEIGHT_TILE.with_borrow_mut(|tile| {
            tile.reserve(rows.len(), nb);
            for (i, r) in rows.clone().enumerate() {
                (path.unpack)(row(r), tile.row_mut(i, nb));
            }
            let unpacked = |i: usize| tile.row(i, nb);
            in_groups_of_8_4_2(
                n_tokens,
                |t| out.group(t, |i, a| (path.dot_x8)(unpacked(i), a)),
                |t| out.group(t, |i, a| (path.dot_x4)(unpacked(i), a)),
                |t| out.group(t, |i, a| (path.dot_x2)(unpacked(i), a)),
            )
        });
    }
    let packed = |i: usize| row(rows.start + i);
    in_groups_of_8_4_2(
        n_tokens,
        |t| out.group(t, |i, a| (path.packed_x8)(packed(i), a)),
        |t| out.group(t, |i, a| (path.packed_x4)(packed(i), a)),
        |t| out.group(t, |i, a| (path.packed_x2)(packed(i), a)),
    )
}

/// Where [`int8_tile`]'s groups of tokens get their activations and put their results.
struct TileOut<'a, P> {
    rows: std::ops::Range<usize>,
    acts: &'a Int8Buf,
    nb: usize,
    put_run: &'a P,
}

impl<P: Fn(usize, usize, &[f32])> TileOut<'_, P> {
    /// Tokens `t..t + N` times the tile's rows through `dot` (row index within the tile and the
    /// tokens' unpacked activations → one result per token); the results are gathered per
    /// token, then stored as one run of the tile's rows: a few stores per token instead of one
    /// per value to lines a whole output row apart.
    fn group<const N: usize>(&self, t: usize, dot: impl Fn(usize, &[Int8Row<'_>; N]) -> [f32; N]) {
        let a = std::array::from_fn(|k| self.acts.row(t + k, self.nb));
        let mut res = [[0.0f32; INT8_ROW_TILE]; N];
        for i in 0..self.rows.len() {
            for (res_k, vk) in res.iter_mut().zip(dot(i, &a)) {
                res_k[i] = vk;
            }
        }
        for (k, res_k) in res.iter().enumerate() {
            (self.put_run)(t + k, self.rows.start, &res_k[..self.rows.len()]);
        }
    }
}

/// Ask the CPU to start loading `data[start..start + len]` into cache (clipped to `data`).
#[inline]
fn prefetch(data: &[u8], start: usize, len: usize) {
    let start = start.min(data.len());
    let end = (start + len).min(data.len());
    for off in (start..end).step_by(64) {
        let p = data[off..].as_ptr();
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetching is a hint that never faults; SSE is baseline on x86-64 and `p`
        // points inside `data` anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }
}

/// Quantize each of the `x.len() / cols` rows into `acts` (stride `a_row` bytes), in parallel
/// for batches.
fn quantize_rows(
    at: &TypeTraits,
    pool: &ThreadPool,
    x: &[f32],
    cols: usize,
    acts: &mut [u8],
    a_row: usize,
) {
    let n = x.len() / cols;
    let quantize = at.quantize;
    if n == 1 {
        quantize(x, acts);
        return;
    }
    let base = SyncPtr(acts.as_mut_ptr());
    pool.run(n, |t| {
        // SAFETY: token t owns bytes t·a_row..(t+1)·a_row of `acts` (length n·a_row); the
        // chunks are disjoint and `acts` outlives the op.
        let dst = unsafe { std::slice::from_raw_parts_mut(base.get().add(t * a_row), a_row) };
        quantize(&x[t * cols..(t + 1) * cols], dst);
    });
}

#[path = "matmul_interleaved.rs"]
mod interleaved;
#[path = "matmul_tile16.rs"]
mod tile16;

#[cfg(test)]
#[path = "matmul_tests.rs"]
mod tests;
