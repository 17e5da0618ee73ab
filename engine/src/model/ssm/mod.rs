//! Mamba2 layers (Granite 4.0-H's state-space blocks), batch-first like attention.
//!
//! For the tokens of a batch (already RMS-normed by the block): `ssm_in` gives
//! `z | xBC | dt` per token; per sequence, in batch order, xBC goes through the causal
//! depthwise convolution with the sequence's rolling conv state, then SiLU; dt becomes
//! `softplus(dt + dt_bias)`; the selective scan runs per (sequence, head) over the pool's
//! threads with per-head A and D and grouped B/C; then `y · silu(z)`, a grouped RMS norm
//! and `ssm_out`. The states live in the cache's recurrent slots
//! ([`RecurrentPool`](crate::kv::RecurrentPool)).
//!
//! Two forms of the scan, from one definition, agree to f32 rounding (tested): the
//! step-by-step recurrence and the chunked (state-space-duality) form, [`scan::CHUNK`] tokens
//! at a time. Decode always steps. Prefill steps too by default ([`ScanMode::Steps`]): on
//! CPUs it is the faster of the two (a head's 32 KiB state stays in L1 while the task walks the
//! tokens, and the chunked form does as many multiply-adds at d_state 128 / head_dim 64),
//! measured on a Granite-4.0-H-1B-shaped model, 256-token prompt, one AVX-512 core: scan
//! 4.5 % of prefill time stepping vs 7.3 % chunked. Stepping also makes a sequence's numbers
//! independent of how the scheduler splits its prompt over steps (chunk boundaries move with
//! the split). [`ScanMode::Chunked`] selects the chunked form for runs of several tokens (the
//! form a GPU backend wants: it is matrix products).

pub mod scan;

use nanorun_formats::Gguf;
use nanorun_kernels::{Kernels, ThreadPool};

use super::config::{LayerKind, SsmConfig};
use super::weights::Linear;
use super::Model;
use crate::batch::Batch;
use crate::error::{EngineError, Result};
use crate::kv::{KvCache, SeqId};
use crate::model::profile::Matmuls;
use scan::{ChunkScratch, HeadIo, CHUNK};

/// The tensors of one Mamba2 layer.
#[derive(Debug)]
pub struct SsmWeights {
    /// `ssm_in`: `n_embd → d_inner (z) + conv channels (xBC) + n_head (dt)`.
    pub in_proj: Linear,
    /// `ssm_conv1d.weight`, transposed at load to `[d_conv][conv channel]` (tap-major).
    pub conv_w: Vec<f32>,
    /// `ssm_conv1d.bias`, one per conv channel.
    pub conv_b: Option<Vec<f32>>,
    /// `ssm_dt.bias`, one per head.
    pub dt_bias: Vec<f32>,
    /// `ssm_a`: A per head (already negative, `−exp(A_log)`).
    pub a: Vec<f32>,
    /// `ssm_d`: skip weight per head.
    pub d: Vec<f32>,
    /// `ssm_norm.weight`, `[group][d_inner / n_group]`.
    pub norm: Option<Vec<f32>>,
    /// `ssm_out`: `d_inner → n_embd`.
    pub out_proj: Linear,
}

/// Finds and checks a matrix by name, input features and (optionally) output features.
pub type LinearLoader<'a> = dyn Fn(&str, usize, Option<usize>) -> Result<Linear> + 'a;

/// Reads a small tensor of any shape with exactly `len` elements as f32.
fn small(
    gguf: &Gguf,
    kernels: &Kernels,
    name: &str,
    len: usize,
    required: bool,
) -> Result<Option<Vec<f32>>> {
    let Some(t) = gguf.tensor(name) else {
        return match required {
            true => Err(EngineError::MissingTensor { name: name.into() }),
            false => Ok(None),
        };
    };
    if t.n_elements() as usize != len {
        return Err(EngineError::BadTensor {
            name: name.into(),
            reason: format!("shape {:?}, expected {len} elements", t.dims),
        });
    }
    let mut out = vec![0.0; len];
    kernels
        .dequantize_row(t.ty, gguf.tensor_data(t), &mut out)
        .map_err(|e| EngineError::BadTensor {
            name: name.into(),
            reason: e.to_string(),
        })?;
    Ok(Some(out))
}

impl SsmWeights {
    /// Loads layer `layer`'s Mamba2 tensors; `linear(name, cols, rows)` finds and checks a
    /// matrix (the weight loader's).
    pub fn load(
        gguf: &Gguf,
        kernels: &Kernels,
        layer: usize,
        s: &SsmConfig,
        n_embd: usize,
        linear: &LinearLoader<'_>,
    ) -> Result<SsmWeights> {
        let n = |t: &str| format!("blk.{layer}.{t}");
        let req = |t: &str, len| -> Result<Vec<f32>> {
            Ok(small(gguf, kernels, &n(t), len, true)?.unwrap_or_default())
        };
        let ch = s.conv_channels();
        Ok(SsmWeights {
            in_proj: linear(&n("ssm_in.weight"), n_embd, Some(s.in_proj_rows()))?,
            conv_w: scan::transpose_conv(&req("ssm_conv1d.weight", ch * s.d_conv)?, s.d_conv),
            conv_b: small(gguf, kernels, &n("ssm_conv1d.bias"), ch, false)?,
            dt_bias: req("ssm_dt.bias", s.n_head)?,
            a: req("ssm_a", s.n_head)?,
            d: req("ssm_d", s.n_head)?,
            norm: small(gguf, kernels, &n("ssm_norm.weight"), s.d_inner, false)?,
            out_proj: linear(&n("ssm_out.weight"), s.d_inner, Some(n_embd))?,
        })
    }
}

/// Which form of the selective scan runs for a sequence with several tokens in a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScanMode {
    /// The step-by-step recurrence (the default: fastest on CPUs, split-invariant).
    #[default]
    Steps,
    /// The chunked form, [`scan::CHUNK`] tokens at a time.
    Chunked,
}

/// Buffers of the Mamba2 layers, kept between calls, and the scan mode.
#[derive(Debug, Default)]
pub struct SsmScratch {
    mode: ScanMode,
    zxbcdt: Vec<f32>,
    xbc: Vec<f32>,
    dt: Vec<f32>,
    y: Vec<f32>,
    tasks: Vec<TaskScratch>,
}

impl SsmScratch {
    /// Selects the prefill scan form.
    pub fn set_mode(&mut self, mode: ScanMode) {
        self.mode = mode;
    }
}

#[derive(Debug, Default)]
struct TaskScratch {
    y: Vec<f32>,
    chunk: ChunkScratch,
}

#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: every task writes only its own head's state slice and its own head's `y` columns
// (see `mamba2_mix`); the pointers outlive the `pool.run` call.
unsafe impl Sync for Ptr {}
unsafe impl Send for Ptr {}

impl Ptr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Checks, before anything is written, that the batch can run on a hybrid model: the
/// recurrent positions continue each sequence's state, and every token has a KV slot in the
/// attention layers (so that a failure cannot leave the Mamba2 states half-advanced).
pub fn check_batch(model: &Model, batch: &Batch, kv: &KvCache) -> Result<()> {
    kv.recurrent()
        .check_batch(&batch.seq_ids, &batch.positions)?;
    let c = model.config();
    if let Some(l) = c.layers.iter().position(|l| l.kind == LayerKind::Attention) {
        for (&seq, &pos) in batch.seq_ids.iter().zip(&batch.positions) {
            kv.slot(l, seq, pos)?;
        }
    }
    Ok(())
}

/// The sequences of `batch` in order of first appearance, and each one's batch rows.
fn group_by_sequence(batch: &Batch) -> (Vec<SeqId>, Vec<Vec<usize>>) {
    let mut seqs: Vec<SeqId> = Vec::new();
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for (t, &s) in batch.seq_ids.iter().enumerate() {
        match seqs.iter().position(|&x| x == s) {
            Some(i) => rows[i].push(t),
            None => {
                seqs.push(s);
                rows.push(vec![t]);
            }
        }
    }
    (seqs, rows)
}

/// The Mamba2 mixer of layer `l` over the batch: `h` (`T × n_embd`, normed input) →
/// `out` (`T × n_embd`), advancing each sequence's conv and SSM state in `kv`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mamba2_mix(
    model: &Model,
    l: usize,
    batch: &Batch,
    kv: &mut KvCache,
    h: &[f32],
    out: &mut [f32],
    pool: &ThreadPool,
    mm: &mut Matmuls,
    sc: &mut SsmScratch,
) -> Result<()> {
    let c = model.config();
    let s = c.ssm.ok_or_else(|| EngineError::MissingKey {
        key: format!("{}.ssm.inner_size", c.arch.name()),
    })?;
    let w = model.weights().layers[l]
        .ssm
        .as_ref()
        .ok_or_else(|| EngineError::MissingTensor {
            name: format!("blk.{l}.ssm_in.weight"),
        })?;
    let t_n = batch.len();
    let (d_inner, ch, nh, ds) = (s.d_inner, s.conv_channels(), s.n_head, s.d_state);
    let (hd, in_rows) = (s.head_dim(), s.in_proj_rows());
    let grow = |b: &mut Vec<f32>, n: usize| {
        if b.len() < n {
            b.resize(n, 0.0);
        }
    };
    grow(&mut sc.zxbcdt, t_n * in_rows);
    grow(&mut sc.xbc, t_n * ch);
    grow(&mut sc.dt, t_n * nh);
    grow(&mut sc.y, t_n * d_inner);

    model.matmul(pool, mm, &w.in_proj, h, t_n, &mut sc.zxbcdt)?;

    let (seqs, rows) = group_by_sequence(batch);
    let mut states = kv.recurrent_mut().layer_states_mut(l, &seqs)?;

    // Convolution (cheap: d_conv multiply-adds per channel) and dt, per sequence in order.
    for ((conv_state, _), seq_rows) in states.iter_mut().zip(&rows) {
        for &r in seq_rows {
            let zx = &sc.zxbcdt[r * in_rows..(r + 1) * in_rows];
            scan::conv_step(
                &zx[d_inner..d_inner + ch],
                conv_state,
                &w.conv_w,
                w.conv_b.as_deref(),
                s.d_conv,
                &mut sc.xbc[r * ch..(r + 1) * ch],
            );
            for (hh, dt) in sc.dt[r * nh..(r + 1) * nh].iter_mut().enumerate() {
                *dt = scan::softplus(zx[d_inner + ch + hh] + w.dt_bias[hh]);
            }
        }
    }

    // The scan: one task per (sequence, head).
    let n_tasks = seqs.len() * nh;
    let n_chunks = n_tasks.min(pool.threads_now() * 4).max(1);
    let per_chunk = n_tasks.div_ceil(n_chunks);
    if sc.tasks.len() < n_chunks {
        sc.tasks.resize_with(n_chunks, TaskScratch::default);
    }
    let max_run = rows.iter().map(Vec::len).max().unwrap_or(0);
    for ts in &mut sc.tasks[..n_chunks] {
        grow(&mut ts.y, max_run.clamp(1, CHUNK) * hd);
    }
    let task_ptrs: Vec<usize> = sc.tasks[..n_chunks]
        .iter_mut()
        .map(|t| t as *mut TaskScratch as usize)
        .collect();
    let state_ptrs: Vec<Ptr> = states
        .iter_mut()
        .map(|(_, st)| Ptr(st.as_mut_ptr()))
        .collect();
    let y_ptr = Ptr(sc.y.as_mut_ptr());
    let (xbc, dt) = (&sc.xbc[..t_n * ch], &sc.dt[..t_n * nh]);
    let heads_per_group = nh / s.n_group;
    let mode = sc.mode;
    pool.run(n_chunks, |chunk| {
        // SAFETY: chunk `chunk` alone uses task scratch `chunk`.
        let ts = unsafe { &mut *(task_ptrs[chunk] as *mut TaskScratch) };
        for task in chunk * per_chunk..((chunk + 1) * per_chunk).min(n_tasks) {
            let (si, head) = (task / nh, task % nh);
            let g = head / heads_per_group;
            // SAFETY: head `head` of sequence `si` is this task's alone: `hd × ds` values at
            // `head · hd · ds` of that sequence's SSM state (`d_inner × d_state` long).
            let state = unsafe {
                std::slice::from_raw_parts_mut(state_ptrs[si].get().add(head * hd * ds), hd * ds)
            };
            let io = HeadIo {
                xbc,
                xbc_stride: ch,
                x_off: head * hd,
                b_off: d_inner + g * ds,
                c_off: d_inner + s.n_group * ds + g * ds,
                dt,
                dt_stride: nh,
                head,
                rows: &rows[si],
                head_dim: hd,
                d_state: ds,
                a: w.a[head],
            };
            let n = rows[si].len();
            let mut j = 0;
            while j < n {
                let e = if n == 1 { 1 } else { (j + CHUNK).min(n) };
                let y = &mut ts.y[..(e - j) * hd];
                if n == 1 || mode == ScanMode::Steps {
                    scan::scan_steps(state, &io, j..e, y);
                } else {
                    scan::scan_chunk(state, &io, j..e, y, &mut ts.chunk);
                }
                for (k, &r) in rows[si][j..e].iter().enumerate() {
                    let x = &xbc[r * ch + head * hd..][..hd];
                    // SAFETY: row `r`, columns of head `head`: written by this task only.
                    let yo = unsafe {
                        std::slice::from_raw_parts_mut(y_ptr.get().add(r * d_inner + head * hd), hd)
                    };
                    for ((o, &v), &xv) in yo.iter_mut().zip(&y[k * hd..(k + 1) * hd]).zip(x) {
                        *o = v + w.d[head] * xv;
                    }
                }
                j = e;
            }
        }
    });
    drop(states);

    // Gate, grouped RMS norm.
    let gs = d_inner / s.n_group;
    for r in 0..t_n {
        let z = &sc.zxbcdt[r * in_rows..r * in_rows + d_inner];
        let y = &mut sc.y[r * d_inner..(r + 1) * d_inner];
        for (v, &zv) in y.iter_mut().zip(z) {
            *v *= scan::silu(zv);
        }
        if let Some(nw) = &w.norm {
            for (yg, wg) in y.chunks_exact_mut(gs).zip(nw.chunks_exact(gs)) {
                super::ops::rms_norm_chunks(yg, gs, wg, c.norm_eps);
            }
        }
    }
    model.matmul(pool, mm, &w.out_proj, &sc.y, t_n, out)?;
    Ok(())
}
