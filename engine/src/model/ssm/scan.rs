//! The Mamba2 math of one sequence, free of threads and caches: the causal depthwise
//! convolution with its rolling state, and the selective scan of one head in two forms from
//! one definition,
//!
//! ```text
//! s_t = exp(dt_t·A) · s_{t−1} + dt_t · x_t ⊗ B_t        (state: head_dim × d_state)
//! y_t = s_t · C_t
//! ```
//!
//! * [`scan_steps`]: the recurrence token by token (decode; also llama.cpp's only form);
//! * [`scan_chunk`]: a chunk of tokens at once (prefill), the state-space-duality form:
//!   with `L_t = Σ_{k≤t} dt_k·A` inside the chunk,
//!   `y_t = Σ_{s≤t} exp(L_t − L_s)·dt_s·(C_t·B_s)·x_s + exp(L_t)·(s_0 · C_t)` and
//!   `s_end = exp(L_n)·s_0 + Σ_s exp(L_n − L_s)·dt_s·x_s ⊗ B_s`.
//!
//! Both give the same numbers up to f32 rounding (tested below). `D·x` and the gate are
//! applied by the caller.

use std::ops::Range;

/// `log(1 + e^x)`, as ggml computes it (identity above 20).
pub fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        (1.0 + x.exp()).ln()
    }
}

/// `x · sigmoid(x)`, as ggml computes it.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Dot product with eight partial sums (vectorises; order fixed, so results are
/// deterministic).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// One token through the causal depthwise convolution, then bias and SiLU. `state` holds the
/// previous `d_conv − 1` inputs of each channel (`[channel][d_conv − 1]`, oldest first) and
/// is shifted by this token; `w` is `[channel][d_conv]`, tap `d_conv − 1` on the current input.
pub fn conv_step(
    input: &[f32],
    state: &mut [f32],
    w: &[f32],
    bias: Option<&[f32]>,
    d_conv: usize,
    out: &mut [f32],
) {
    let k = d_conv - 1;
    for (c, (&cur, o)) in input.iter().zip(out.iter_mut()).enumerate() {
        let st = &mut state[c * k..(c + 1) * k];
        let wc = &w[c * d_conv..(c + 1) * d_conv];
        let mut sum = 0f32;
        for i in 0..k {
            sum += st[i] * wc[i];
        }
        sum += cur * wc[k];
        if let Some(b) = bias {
            sum += b[c];
        }
        *o = silu(sum);
        if k > 0 {
            st.copy_within(1.., 0);
            st[k - 1] = cur;
        }
    }
}

/// Where one head's inputs are, for the tokens of one sequence.
#[derive(Clone, Copy, Debug)]
pub struct HeadIo<'a> {
    /// Conv outputs (x | B | C), one row of `xbc_stride` values per batch token.
    pub xbc: &'a [f32],
    /// Row length of `xbc`.
    pub xbc_stride: usize,
    /// Offsets of this head's x, its group's B and C inside a row.
    pub x_off: usize,
    /// See `x_off`.
    pub b_off: usize,
    /// See `x_off`.
    pub c_off: usize,
    /// Softplus'd dt of every head, one row of `dt_stride` values per batch token.
    pub dt: &'a [f32],
    /// Row length of `dt`.
    pub dt_stride: usize,
    /// This head's index in a `dt` row.
    pub head: usize,
    /// The sequence's batch rows, in order.
    pub rows: &'a [usize],
    /// Channels per head.
    pub head_dim: usize,
    /// State size.
    pub d_state: usize,
    /// The head's A (negative).
    pub a: f32,
}

impl HeadIo<'_> {
    fn x(&self, j: usize) -> &[f32] {
        &self.xbc[self.rows[j] * self.xbc_stride + self.x_off..][..self.head_dim]
    }
    fn b(&self, j: usize) -> &[f32] {
        &self.xbc[self.rows[j] * self.xbc_stride + self.b_off..][..self.d_state]
    }
    fn c(&self, j: usize) -> &[f32] {
        &self.xbc[self.rows[j] * self.xbc_stride + self.c_off..][..self.d_state]
    }
    fn dt(&self, j: usize) -> f32 {
        self.dt[self.rows[j] * self.dt_stride + self.head]
    }
}

/// The recurrence over the tokens `range` (indices into `io.rows`): updates `state`
/// (`head_dim × d_state`) and writes `y` (`range.len() × head_dim`, without `D·x`).
pub fn scan_steps(state: &mut [f32], io: &HeadIo<'_>, range: Range<usize>, y: &mut [f32]) {
    let (hd, ds) = (io.head_dim, io.d_state);
    for (n, j) in range.enumerate() {
        let dt = io.dt(j);
        let da = (dt * io.a).exp();
        let (x, b, c) = (io.x(j), io.b(j), io.c(j));
        for p in 0..hd {
            let xdt = x[p] * dt;
            let row = &mut state[p * ds..(p + 1) * ds];
            for (s, &bi) in row.iter_mut().zip(b) {
                *s = *s * da + bi * xdt;
            }
            y[n * hd + p] = dot(row, c);
        }
    }
}

/// Per-task buffers of [`scan_chunk`].
#[derive(Debug, Default)]
pub struct ChunkScratch {
    cum: Vec<f32>,
    w: Vec<f32>,
}

/// Tokens per chunk of the chunked scan.
pub const CHUNK: usize = 64;

/// The chunked form over the tokens `range` (at most [`CHUNK`] of them): same contract as
/// [`scan_steps`].
pub fn scan_chunk(
    state: &mut [f32],
    io: &HeadIo<'_>,
    range: Range<usize>,
    y: &mut [f32],
    scratch: &mut ChunkScratch,
) {
    let (hd, ds) = (io.head_dim, io.d_state);
    let n = range.len();
    let j0 = range.start;
    scratch.cum.resize(n, 0.0);
    scratch.w.resize(n, 0.0);
    let mut acc = 0f32;
    for i in 0..n {
        acc += io.dt(j0 + i) * io.a;
        scratch.cum[i] = acc;
    }
    let cum = &scratch.cum;
    // Contribution of the initial state, then of the chunk's own tokens.
    for t in 0..n {
        let c = io.c(j0 + t);
        let yt = &mut y[t * hd..(t + 1) * hd];
        let decay = cum[t].exp();
        for (p, o) in yt.iter_mut().enumerate() {
            *o = decay * dot(&state[p * ds..(p + 1) * ds], c);
        }
        for s in 0..=t {
            let g = dot(c, io.b(j0 + s)) * (cum[t] - cum[s]).exp() * io.dt(j0 + s);
            for (o, &xs) in yt.iter_mut().zip(io.x(j0 + s)) {
                *o += g * xs;
            }
        }
    }
    // The state at the end of the chunk.
    let last = cum[n - 1];
    let total = last.exp();
    for (s, (w, &cs)) in scratch.w.iter_mut().zip(cum).enumerate() {
        *w = (last - cs).exp() * io.dt(j0 + s);
    }
    for p in 0..hd {
        let row = &mut state[p * ds..(p + 1) * ds];
        row.iter_mut().for_each(|v| *v *= total);
        for s in 0..n {
            let coef = scratch.w[s] * io.x(j0 + s)[p];
            for (v, &bi) in row.iter_mut().zip(io.b(j0 + s)) {
                *v += coef * bi;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rnd(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[test]
    fn chunked_scan_equals_step_by_step() {
        let (hd, ds, n_tok) = (8, 16, 150);
        let (stride, x_off, b_off, c_off) = (hd + 2 * ds, 0, hd, hd + ds);
        let mut seed = 7;
        let xbc: Vec<f32> = (0..n_tok * stride).map(|_| rnd(&mut seed)).collect();
        let dt: Vec<f32> = (0..n_tok).map(|_| softplus(rnd(&mut seed) * 2.0)).collect();
        let rows: Vec<usize> = (0..n_tok).collect();
        let io = HeadIo {
            xbc: &xbc,
            xbc_stride: stride,
            x_off,
            b_off,
            c_off,
            dt: &dt,
            dt_stride: 1,
            head: 0,
            rows: &rows,
            head_dim: hd,
            d_state: ds,
            a: -0.7,
        };
        let init: Vec<f32> = (0..hd * ds).map(|_| rnd(&mut seed)).collect();
        let (mut s1, mut s2) = (init.clone(), init);
        let mut y1 = vec![0.0; n_tok * hd];
        let mut y2 = vec![0.0; n_tok * hd];
        // Step by step, split unevenly; chunked in CHUNK pieces.
        scan_steps(&mut s1, &io, 0..5, &mut y1[..5 * hd]);
        scan_steps(&mut s1, &io, 5..n_tok, &mut y1[5 * hd..]);
        let mut sc = ChunkScratch::default();
        let mut j = 0;
        while j < n_tok {
            let e = (j + CHUNK).min(n_tok);
            scan_chunk(&mut s2, &io, j..e, &mut y2[j * hd..e * hd], &mut sc);
            j = e;
        }
        let max_y = y1.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in y1.iter().zip(&y2) {
            assert!((a - b).abs() <= 1e-5 * max_y.max(1.0), "y {a} vs {b}");
        }
        for (a, b) in s1.iter().zip(&s2) {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "state {a} vs {b}");
        }
    }

    #[test]
    fn conv_state_rolls() {
        // Two channels, width 3: out_t = w0·in_{t−2} + w1·in_{t−1} + w2·in_t + b, then SiLU.
        let w = [1.0, 2.0, 3.0, 0.5, 0.0, -1.0];
        let b = [0.1, -0.2];
        let mut state = vec![0.0; 4];
        let inputs = [[1.0, 2.0], [3.0, -1.0], [0.5, 4.0]];
        let mut out = [0.0; 2];
        for (t, inp) in inputs.iter().enumerate() {
            conv_step(inp, &mut state, &w, Some(&b), 3, &mut out);
            for c in 0..2 {
                let at = |k: usize| if t >= k { inputs[t - k][c] } else { 0.0 };
                let pre = w[c * 3] * at(2) + w[c * 3 + 1] * at(1) + w[c * 3 + 2] * at(0) + b[c];
                assert!((out[c] - silu(pre)).abs() < 1e-6);
            }
        }
        assert_eq!(state, vec![3.0, 0.5, -1.0, 4.0]);
    }
}
