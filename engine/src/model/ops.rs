//! Element-wise f32 operations of the forward pass, computed the way ggml's CPU backend
//! computes them (sums of squares in f64, GELU through an f16 table, RoPE angles by repeated
//! f32 multiplication) so that logits agree with llama.cpp's.

use std::sync::OnceLock;

use half::f16;

use super::attention_tiled::v_expf;

/// `y = x / rms(x) * w` over one row (`w` may be empty: no weight).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    if w.is_empty() {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v * scale;
        }
    } else {
        for ((o, &v), &g) in y.iter_mut().zip(x).zip(w) {
            *o = (v * scale) * g;
        }
    }
}

/// In-place [`rms_norm`] of each `width`-wide chunk of `x` with weight `w`.
pub fn rms_norm_chunks(x: &mut [f32], width: usize, w: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(width) {
        let sum: f64 = row.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum / width as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for (v, &g) in row.iter_mut().zip(w) {
            *v = (*v * scale) * g;
        }
    }
}

/// ggml's tanh-approximation GELU in f32.
fn gelu_f32(x: f32) -> f32 {
    const GELU_COEF_A: f32 = 0.044715;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    // GCC contracts ggml's `1.0f + GELU_COEF_A*x*x` into an FMA (one table entry differs
    // without it).
    let inner = (GELU_COEF_A * x).mul_add(x, 1.0);
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * inner).tanh())
}

/// GELU of every f16 value, rounded to f16 (ggml's `ggml_table_gelu_f16`).
fn gelu_table() -> &'static [f16] {
    &gelu_table_padded()[..1 << 16]
}

/// [`gelu_table`] and one entry more (zero), so that a 32-bit gather at any entry stays inside.
fn gelu_table_padded() -> &'static [f16] {
    static TABLE: OnceLock<Vec<f16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| f16::from_f32(gelu_f32(f16::from_bits(bits).to_f32())))
            .chain([f16::ZERO])
            .collect()
    })
}

/// `gate[i] = gelu(gate[i]) * up[i]` as ggml's `geglu` computes it: the input rounded to f16 and
/// looked up in the f16 GELU table, saturating outside (-10, 10).
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if geglu_x86::available() {
        return geglu_x86::geglu(gate, up, gelu_table_padded());
    }
    geglu_scalar(gate, up);
}

/// [`geglu`] one value at a time (what the vector version must equal).
fn geglu_scalar(gate: &mut [f32], up: &[f32]) {
    let table = gelu_table();
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x * u
        } else {
            table[f16::from_f32(x).to_bits() as usize].to_f32() * u
        };
    }
}

/// `x[i] = gelu(x[i])` as ggml's CPU `gelu` computes it (f16 table, saturating outside
/// (-10, 10)).
pub fn gelu(x: &mut [f32]) {
    let table = gelu_table();
    for v in x {
        let a = *v;
        *v = if a <= -10.0 {
            0.0
        } else if a >= 10.0 {
            a
        } else {
            table[f16::from_f32(a).to_bits() as usize].to_f32()
        };
    }
}

/// `gate[i] = silu(gate[i]) * up[i]` (SwiGLU) as ggml's AVX-512 `ggml_vec_swiglu_f32`
/// computes it: `x / (1 + v_expf(0 − x)) · u` sixteen values at a time (ggml's vectorised
/// `expf`, [`v_expf`]), the values past a multiple of 16 with libm's `expf`.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let whole = n - n % 16;
    #[cfg(target_arch = "x86_64")]
    if super::attention_tiled::has_fma() {
        swiglu_x86::swiglu(&mut gate[..whole], &up[..whole]);
    } else {
        swiglu_whole(&mut gate[..whole], &up[..whole]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    swiglu_whole(&mut gate[..whole], &up[..whole]);
    for (g, &u) in gate[whole..n].iter_mut().zip(&up[whole..n]) {
        let x = *g;
        *g = x / (1.0 + (-x).exp()) * u;
    }
}

/// [`swiglu`]'s vector part one value at a time (what the vector version must equal).
fn swiglu_whole(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = x / (1.0 + v_expf(0.0 - x)) * u;
    }
}

/// [`swiglu`]'s vector part eight values at a time with AVX2 + FMA ([`v_expf8`]).
#[cfg(target_arch = "x86_64")]
mod swiglu_x86 {
    use std::arch::x86_64::*;

    use super::super::attention_tiled::{has_fma, v_expf8};

    /// See [`super::swiglu_whole`] (lengths multiples of 8).
    pub(super) fn swiglu(gate: &mut [f32], up: &[f32]) {
        assert!(has_fma() && gate.len().is_multiple_of(8) && up.len() >= gate.len());
        // SAFETY: AVX2 and FMA are available (asserted).
        unsafe { swiglu_avx2(gate, up) }
    }

    #[target_feature(enable = "avx2,fma")]
    fn swiglu_avx2(gate: &mut [f32], up: &[f32]) {
        for (g, u) in gate.chunks_exact_mut(8).zip(up.chunks_exact(8)) {
            // SAFETY: eight floats in each chunk.
            unsafe {
                let x = _mm256_loadu_ps(g.as_ptr());
                let e = v_expf8(_mm256_sub_ps(_mm256_setzero_ps(), x));
                let silu = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e));
                let y = _mm256_mul_ps(silu, _mm256_loadu_ps(u.as_ptr()));
                _mm256_storeu_ps(g.as_mut_ptr(), y);
            }
        }
    }
}

/// `x = cap · tanh(x / cap)` for every element.
pub fn softcap(x: &mut [f32], cap: f32) {
    for v in x {
        *v = (*v / cap).tanh() * cap;
    }
}

/// `y[i] += s · x[i]`.
pub fn add_scaled(y: &mut [f32], x: &[f32], s: f32) {
    if s == 1.0 {
        for (a, &b) in y.iter_mut().zip(x) {
            *a += b;
        }
    } else {
        for (a, &b) in y.iter_mut().zip(x) {
            *a += b * s;
        }
    }
}

/// In-place softmax over `x` (already scaled); returns nothing. Sums in f64 as ggml does.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        let e = (*v - max).exp();
        *v = e;
        sum += e as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// RoPE parameters for one layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rope {
    /// Rotated dimensions per head.
    pub n_rot: usize,
    /// Base frequency.
    pub base: f32,
    /// Position multiplier (1/linear factor).
    pub freq_scale: f32,
    /// YaRN extrapolation mix (0 = off).
    pub ext_factor: f32,
    /// Magnitude factor for cos/sin.
    pub attn_factor: f32,
    /// YaRN correction dims.
    pub corr_dims: [f32; 2],
    /// NeoX pairing (halves) instead of adjacent pairs.
    pub neox: bool,
}

impl Rope {
    /// The cos/sin pairs for position `pos` into `cache` (`n_rot` values: cos, sin, cos, …),
    /// optionally divided by per-pair frequency factors.
    pub fn cache(&self, pos: usize, freq_factors: Option<&[f32]>, cache: &mut [f32]) {
        let theta_scale = self.base.powf(-2.0 / self.n_rot as f32);
        let mut theta = pos as f32;
        for i0 in (0..self.n_rot).step_by(2) {
            let ff = freq_factors.map_or(1.0, |f| f[i0 / 2]);
            let theta_extrap = theta / ff;
            let theta_interp = self.freq_scale * theta_extrap;
            let mut mscale = self.attn_factor;
            let mut th = theta_interp;
            if self.ext_factor != 0.0 {
                let y = ((i0 / 2) as f32 - self.corr_dims[0])
                    / (self.corr_dims[1] - self.corr_dims[0]).max(0.001);
                let ramp = (1.0 - y.clamp(0.0, 1.0)) * self.ext_factor;
                th = theta_interp * (1.0 - ramp) + theta_extrap * ramp;
                mscale *= 1.0 + 0.1 * (1.0 / self.freq_scale).ln();
            }
            cache[i0] = th.cos() * mscale;
            cache[i0 + 1] = th.sin() * mscale;
            theta *= theta_scale;
        }
    }

    /// Rotates every `head_dim`-wide head of `x` with the cos/sin `cache` of its position.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, cache: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if super::attention_tiled::has_fma() {
            // SAFETY: FMA (and AVX2) were detected.
            unsafe { self.apply_fma(x, head_dim, cache) };
            return;
        }
        self.apply_portable(x, head_dim, cache);
    }

    /// [`Rope::apply`] built with FMA, where `mul_add` is one instruction instead of a call to
    /// the C library's `fmaf` (the same fused result, so the same bits).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    fn apply_fma(&self, x: &mut [f32], head_dim: usize, cache: &[f32]) {
        self.apply_portable(x, head_dim, cache);
    }

    #[inline(always)]
    fn apply_portable(&self, x: &mut [f32], head_dim: usize, cache: &[f32]) {
        let n = self.n_rot;
        for head in x.chunks_exact_mut(head_dim) {
            if self.neox {
                let half = n / 2;
                for i in 0..half {
                    let (c, s) = (cache[2 * i], cache[2 * i + 1]);
                    let (a, b) = (head[i], head[i + half]);
                    (head[i], head[i + half]) = rotate::<true>(a, b, c, s);
                }
            } else {
                for i in (0..n).step_by(2) {
                    let (c, s) = (cache[i], cache[i + 1]);
                    let (a, b) = (head[i], head[i + 1]);
                    (head[i], head[i + 1]) = rotate::<false>(a, b, c, s);
                }
            }
        }
    }
}

/// (a·c − b·s, a·s + b·c) with the fused multiply-adds GCC makes of ggml's `rotate_pairs`
/// (`-ffp-contract=fast`): one product rounded, the other fused with it. NeoX mode (pairs half
/// a head apart) stays scalar there and fuses `a·s` in the second result; normal mode (adjacent
/// pairs) is vectorized into `vfmaddsub` and fuses `b·c`.
#[inline(always)]
fn rotate<const NEOX: bool>(a: f32, b: f32, c: f32, s: f32) -> (f32, f32) {
    let second = if NEOX {
        a.mul_add(s, b * c)
    } else {
        b.mul_add(c, a * s)
    };
    (a.mul_add(c, -(b * s)), second)
}

/// YaRN correction dims (ggml's `ggml_rope_yarn_corr_dims`).
pub fn yarn_corr_dims(
    n_rot: usize,
    n_ctx_orig: u32,
    base: f32,
    beta_fast: f32,
    beta_slow: f32,
) -> [f32; 2] {
    let dim = |beta: f32| {
        n_rot as f32 * (n_ctx_orig as f32 / (beta * 2.0 * std::f32::consts::PI)).ln()
            / (2.0 * base.ln())
    };
    [
        dim(beta_fast).floor().max(0.0),
        dim(beta_slow).ceil().min(n_rot as f32 - 1.0),
    ]
}

/// [`geglu`] eight values at a time with AVX2 and F16C: the inputs rounded to f16 by
/// `vcvtps2ph` (to nearest even, as `f16::from_f32`), the table entries gathered, widened and
/// multiplied; the same bits as [`geglu_scalar`].
#[cfg(target_arch = "x86_64")]
mod geglu_x86 {
    use std::arch::x86_64::*;

    use half::f16;

    /// Whether the CPU has AVX2 and F16C.
    pub(super) fn available() -> bool {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c"))
    }

    /// `gate[i] = gelu(gate[i]) · up[i]`; `table` is the padded GELU table (2¹⁶ + 1 entries).
    pub(super) fn geglu(gate: &mut [f32], up: &[f32], table: &[f16]) {
        assert!(table.len() > 1 << 16 && available());
        // SAFETY: AVX2 and F16C are available; the table is padded (both asserted).
        unsafe { geglu_avx2(gate, up, table) }
    }

    /// See [`geglu`].
    ///
    /// # Safety
    /// The CPU has AVX2 and F16C, and `table` has more than 2¹⁶ entries.
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn geglu_avx2(gate: &mut [f32], up: &[f32], table: &[f16]) {
        let n = gate.len().min(up.len());
        let whole = n - n % 8;
        let (lo, hi) = (_mm256_set1_ps(-10.0), _mm256_set1_ps(10.0));
        for i in (0..whole).step_by(8) {
            // SAFETY: i + 8 <= n, inside both slices; each gather reads 4 bytes at entry
            // h ≤ 2¹⁶ − 1, inside the padded table.
            unsafe {
                let x = _mm256_loadu_ps(gate.as_ptr().add(i));
                let u = _mm256_loadu_ps(up.as_ptr().add(i));
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
                let at = _mm256_cvtepu16_epi32(h);
                let g = _mm256_i32gather_epi32::<2>(table.as_ptr().cast(), at);
                // Each lane's low 16 bits are its entry: pack them into eight f16s.
                let g = _mm256_and_si256(g, _mm256_set1_epi32(0xffff));
                let g = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(g, g));
                let y = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(g)), u);
                let big = _mm256_cmp_ps::<_CMP_GE_OQ>(x, hi);
                let y = _mm256_blendv_ps(y, _mm256_mul_ps(x, u), big);
                let small = _mm256_cmp_ps::<_CMP_LE_OQ>(x, lo);
                _mm256_storeu_ps(gate.as_mut_ptr().add(i), _mm256_andnot_ps(small, y));
            }
        }
        super::geglu_scalar(&mut gate[whole..n], &up[whole..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_normalises() {
        let x = [3.0f32, 4.0];
        let mut y = [0.0; 2];
        rms_norm(&x, &[1.0, 2.0], 0.0, &mut y);
        let rms = (12.5f32).sqrt();
        assert!((y[0] - 3.0 / rms).abs() < 1e-6 && (y[1] - 8.0 / rms).abs() < 1e-6);
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut x = [1.0f32, 2.0, 3.0, -1.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[2] > x[1] && x[1] > x[0] && x[0] > x[3]);
    }

    #[test]
    fn geglu_matches_gelu_closely_and_saturates() {
        let mut g = [-11.0f32, -1.0, 0.0, 0.5, 2.0, 11.0];
        let up = [1.0f32; 6];
        let want: Vec<f32> = g
            .iter()
            .map(|&x| {
                if x < -10.0 {
                    0.0
                } else if x > 10.0 {
                    x
                } else {
                    gelu_f32(x)
                }
            })
            .collect();
        geglu(&mut g, &up);
        for (a, b) in g.iter().zip(&want) {
            assert!((a - b).abs() <= 2e-3 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn geglu_gives_the_bits_of_one_value_at_a_time() {
        let mut xs: Vec<f32> = (-12_000..12_000).map(|i| i as f32 * 1e-3).collect();
        xs.extend([
            -10.0,
            10.0,
            -9.999_999,
            9.999_999,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            1e-30,
            65_504.0,
            70_000.0,
        ]);
        let up: Vec<f32> = (0..xs.len()).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
        let (mut got, mut want) = (xs.clone(), xs.clone());
        geglu(&mut got, &up);
        geglu_scalar(&mut want, &up);
        for ((x, g), w) in xs.iter().zip(&got).zip(&want) {
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{x}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn swiglu_gives_the_bits_of_one_value_at_a_time() {
        // The edge values first, so that they go through the vector part.
        let mut xs = vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            -200.0,
            200.0,
        ];
        xs.extend((-20_000..20_000).map(|i| i as f32 * 5e-3));
        let up: Vec<f32> = (0..xs.len()).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
        let (mut got, mut want) = (xs.clone(), xs.clone());
        swiglu(&mut got, &up);
        let whole = xs.len() - xs.len() % 16;
        swiglu_whole(&mut want[..whole], &up[..whole]);
        for (w, (&x, &u)) in want[whole..]
            .iter_mut()
            .zip(xs[whole..].iter().zip(&up[whole..]))
        {
            *w = x / (1.0 + (-x).exp()) * u;
        }
        for ((x, g), w) in xs.iter().zip(&got).zip(&want) {
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{x}: {g} vs {w}"
            );
        }
        // Close to silu · up.
        for (i, &x) in xs[..whole].iter().enumerate().skip(7).step_by(97) {
            let exact = (x as f64 / (1.0 + (-x as f64).exp())) * up[i] as f64;
            assert!(
                (got[i] as f64 - exact).abs() <= 1e-5 * exact.abs().max(1e-3),
                "{x}"
            );
        }
    }

    #[test]
    fn gelu_table_is_ggmls_bit_for_bit() {
        // FNV-1a of llama.cpp's `ggml_table_gelu_f16` entries for the finite inputs in
        // (-10, 10), the ones `geglu` looks up (read from the built libggml-cpu after
        // `ggml_cpu_init`; one entry differs without ggml's FMA).
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut n = 0;
        for (bits, v) in gelu_table().iter().enumerate() {
            let x = f16::from_bits(bits as u16).to_f32();
            if x.is_finite() && x > -10.0 && x < 10.0 {
                n += 1;
                for b in v.to_bits().to_le_bytes() {
                    h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        assert_eq!((n, h), (37_376, 0xc6e6_387b_bbd2_64fa));
    }

    #[test]
    fn rope_position_zero_is_identity_and_preserves_norm() {
        let rope = Rope {
            n_rot: 8,
            base: 10_000.0,
            freq_scale: 1.0,
            ext_factor: 0.0,
            attn_factor: 1.0,
            corr_dims: [0.0, 0.0],
            neox: true,
        };
        let mut cache = [0.0; 8];
        let orig: Vec<f32> = (0..16).map(|i| i as f32 * 0.1 - 0.5).collect();
        let mut x = orig.clone();
        rope.cache(0, None, &mut cache);
        rope.apply(&mut x, 8, &cache);
        assert_eq!(x, orig);
        rope.cache(7, None, &mut cache);
        rope.apply(&mut x, 8, &cache);
        let n0: f32 = orig.iter().map(|v| v * v).sum();
        let n1: f32 = x.iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-4);
    }
}
