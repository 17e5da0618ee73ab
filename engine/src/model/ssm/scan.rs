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

/// The one reduction of the scans, per instruction set.
trait Dot {
    /// Σ a\[i\]·b\[i\] over equal lengths.
    fn dot(a: &[f32], b: &[f32]) -> f32;
}

/// Plain Rust (the build target's vectors).
struct Plain;

impl Dot for Plain {
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for i in 0..8 {
                acc[i] += x[i] * y[i];
            }
        }
        let mut sum: f32 = acc.iter().sum();
        for (x, y) in ra.iter().zip(rb) {
            sum += x * y;
        }
        sum
    }
}

/// AVX2 + FMA, two accumulators.
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Dot for Avx2 {
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: `Avx2` is only used inside functions that checked for AVX2 and FMA.
        unsafe { dot_avx2(a, b) }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    // SAFETY (all loads): `i + 16 <= n` resp. `i + 8 <= n`, within both slices.
    while i + 16 <= n {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
        s1 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + 8)),
            _mm256_loadu_ps(pb.add(i + 8)),
            s1,
        );
        i += 16;
    }
    if i + 8 <= n {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
        i += 8;
    }
    let s = _mm256_add_ps(s0, s1);
    let q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    let mut sum = _mm_cvtss_f32(q);
    while i < n {
        sum += a[i] * b[i];
        i += 1;
    }
    sum
}

/// One token through the causal depthwise convolution, then bias and SiLU. `state` holds the
/// previous `d_conv − 1` inputs of every channel, tap-major (`[d_conv − 1][channel]`, oldest
/// first) and is shifted by this token; `w_t` is the weight tap-major too
/// (`[d_conv][channel]`, tap `d_conv − 1` on the current input; see [`transpose_conv`]). Taps
/// are summed in order, then the bias added, as ggml does; every loop runs along channels.
pub fn conv_step(
    input: &[f32],
    state: &mut [f32],
    w_t: &[f32],
    bias: Option<&[f32]>,
    d_conv: usize,
    out: &mut [f32],
) {
    let (ch, k) = (input.len(), d_conv - 1);
    let out = &mut out[..ch];
    out.fill(0.0);
    for i in 0..k {
        let (st, w) = (&state[i * ch..(i + 1) * ch], &w_t[i * ch..(i + 1) * ch]);
        for ((o, &x), &wi) in out.iter_mut().zip(st).zip(w) {
            *o += x * wi;
        }
    }
    for ((o, &x), &wi) in out.iter_mut().zip(input).zip(&w_t[k * ch..(k + 1) * ch]) {
        *o += x * wi;
    }
    if let Some(b) = bias {
        for (o, &bi) in out.iter_mut().zip(b) {
            *o += bi;
        }
    }
    for o in out.iter_mut() {
        *o = silu(*o);
    }
    if k > 0 {
        state.copy_within(ch..k * ch, 0);
        state[(k - 1) * ch..k * ch].copy_from_slice(input);
    }
}

/// `ssm_conv1d.weight` as stored (`[channel][d_conv]`) to the tap-major layout of
/// [`conv_step`] (`[d_conv][channel]`).
pub fn transpose_conv(w: &[f32], d_conv: usize) -> Vec<f32> {
    let ch = w.len() / d_conv;
    let mut t = vec![0.0; w.len()];
    for c in 0..ch {
        for i in 0..d_conv {
            t[i * ch + c] = w[c * d_conv + i];
        }
    }
    t
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

/// Whether the AVX2+FMA builds of the scans can run here (checked once, cached by std).
#[cfg(target_arch = "x86_64")]
fn have_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// The recurrence over the tokens `range` (indices into `io.rows`): updates `state`
/// (`head_dim × d_state`) and writes `y` (`range.len() × head_dim`, without `D·x`).
///
/// The same Rust code is compiled twice, for the build target and with AVX2 + FMA (dot
/// products with FMA), and the better one is picked at run time, so on one machine prefill
/// and decode always use the same arithmetic.
pub fn scan_steps(state: &mut [f32], io: &HeadIo<'_>, range: Range<usize>, y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if have_avx2() {
        // SAFETY: AVX2 and FMA were detected just above.
        return unsafe { scan_steps_avx2(state, io, range, y) };
    }
    scan_steps_impl::<Plain>(state, io, range, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scan_steps_avx2(state: &mut [f32], io: &HeadIo<'_>, range: Range<usize>, y: &mut [f32]) {
    scan_steps_impl::<Avx2>(state, io, range, y)
}

#[inline(always)]
fn scan_steps_impl<D: Dot>(state: &mut [f32], io: &HeadIo<'_>, range: Range<usize>, y: &mut [f32]) {
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
            y[n * hd + p] = D::dot(row, c);
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
/// [`scan_steps`] (and compiled twice like it).
pub fn scan_chunk(
    state: &mut [f32],
    io: &HeadIo<'_>,
    range: Range<usize>,
    y: &mut [f32],
    scratch: &mut ChunkScratch,
) {
    #[cfg(target_arch = "x86_64")]
    if have_avx2() {
        // SAFETY: AVX2 and FMA were detected just above.
        return unsafe { scan_chunk_avx2(state, io, range, y, scratch) };
    }
    scan_chunk_impl::<Plain>(state, io, range, y, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scan_chunk_avx2(
    state: &mut [f32],
    io: &HeadIo<'_>,
    range: Range<usize>,
    y: &mut [f32],
    scratch: &mut ChunkScratch,
) {
    scan_chunk_impl::<Avx2>(state, io, range, y, scratch)
}

#[inline(always)]
fn scan_chunk_impl<D: Dot>(
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
            *o = decay * D::dot(&state[p * ds..(p + 1) * ds], c);
        }
        for s in 0..=t {
            let g = D::dot(c, io.b(j0 + s)) * (cum[t] - cum[s]).exp() * io.dt(j0 + s);
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

    /// Which builds of the scans to compare: the dispatched one, then the plain one.
    fn builds() -> [(StepFn, ChunkFn); 2] {
        [
            (scan_steps, scan_chunk),
            (scan_steps_impl::<Plain>, scan_chunk_impl::<Plain>),
        ]
    }

    type StepFn = fn(&mut [f32], &HeadIo<'_>, Range<usize>, &mut [f32]);
    type ChunkFn = fn(&mut [f32], &HeadIo<'_>, Range<usize>, &mut [f32], &mut ChunkScratch);

    #[test]
    fn chunked_scan_equals_step_by_step() {
        for (steps, chunk) in builds() {
            compare_scans(steps, chunk);
        }
    }

    fn compare_scans(scan_steps: StepFn, scan_chunk: ChunkFn) {
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
            conv_step(
                inp,
                &mut state,
                &transpose_conv(&w, 3),
                Some(&b),
                3,
                &mut out,
            );
            for c in 0..2 {
                let at = |k: usize| if t >= k { inputs[t - k][c] } else { 0.0 };
                let pre = w[c * 3] * at(2) + w[c * 3 + 1] * at(1) + w[c * 3 + 2] * at(0) + b[c];
                assert!((out[c] - silu(pre)).abs() < 1e-6);
            }
        }
        // Tap-major: the two previous inputs of channel 0, then of channel 1, interleaved.
        assert_eq!(state, vec![3.0, -1.0, 0.5, 4.0]);
    }
}
