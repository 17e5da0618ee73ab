//! `exp` for the sampler's weights, written so that the compiler vectorises it: a draw over a
//! whole vocabulary weighs every token whose weight is not negligible, and one `expf` call per
//! token (262 144 for Gemma 3) cost more than a millisecond a step. The sampler needs weights
//! in the right proportions, not `expf`'s bits: this is within a few ulp of it.

/// e^x for x ≤ 0, with x clamped to −87 (about 1.6e-38, where f32 stops being normal).
/// Branch-free, so a loop of it vectorises.
#[inline]
pub(super) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two, so that x − n·ln 2 is exact to f32 precision.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5·2²³: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.max(-87.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // e^r on |r| ≤ ln 2 / 2: Taylor terms to r⁶ (truncation error under 2e-8 there). Plain
    // products and sums: `mul_add` without FMA enabled at build time is a library call.
    let p = 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // 2ⁿ, n in −126..=0 (x ≥ −87 keeps it normal). `shifted`'s low bits hold n (its bits are
    // those of 1.5·2²³ plus n), which spares a float-to-int conversion (saturating in Rust,
    // which does not vectorise).
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    p * scale
}

/// `out[i]` = e^((x[i] − max) / t) for each `x[i]` ≥ `floor`, and 0 below it (NaN too).
/// `t` > 0, `max` finite and at least every `x[i]`.
pub(super) fn weights(x: &[f32], max: f32, t: f32, floor: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was just detected.
        unsafe { weights_avx2(x, max, t, floor, out) };
        return;
    }
    weights_portable(x, max, t, floor, out);
}

/// [`weights`] compiled for AVX2 (eight lanes where the baseline build has four).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn weights_avx2(x: &[f32], max: f32, t: f32, floor: f32, out: &mut [f32]) {
    weights_portable(x, max, t, floor, out);
}

#[inline(always)]
fn weights_portable(x: &[f32], max: f32, t: f32, floor: f32, out: &mut [f32]) {
    let inv_t = 1.0 / t;
    for (o, &v) in out.iter_mut().zip(x) {
        let w = exp_nonpositive(((v - max) * inv_t).min(0.0));
        *o = if v >= floor { w } else { 0.0 };
    }
}

/// The sum of `x`, sixteen lanes at a time (vectorised).
pub(super) fn sum(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (s, &v) in lanes.iter_mut().zip(c) {
            *s += v;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Values per run of [`pick`]'s scan.
const RUN: usize = 256;

/// The index at which the running sum of the weights `w` (≥ 0) first exceeds `u` times their
/// total (`u` in [0, 1)): index i with probability w[i] / Σw. Runs whose sum stays under the
/// target are skipped whole. `None` when no weight is positive.
pub(super) fn pick(w: &[f32], u: f32) -> Option<usize> {
    let total = sum(w);
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let target = u * total;
    let mut cum = 0f32;
    for (r, run) in w.chunks(RUN).enumerate() {
        let s = sum(run);
        if cum + s <= target {
            cum += s;
            continue;
        }
        for (i, &x) in run.iter().enumerate() {
            cum += x;
            if x > 0.0 && target < cum {
                return Some(r * RUN + i);
            }
        }
    }
    // Rounding left the sum a hair under the target: the last token with any weight.
    w.iter().rposition(|&x| x > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_a_few_ulp_of_expf() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let (got, want) = (exp_nonpositive(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_37;
        }
        assert!(
            worst < 4.0 * f32::EPSILON as f64,
            "relative error {worst:e}"
        );
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(f32::NEG_INFINITY) < 1e-37);
        assert!(exp_nonpositive(-200.0) < 1e-37);
    }

    #[test]
    fn pick_lands_where_the_running_sum_crosses() {
        let mut w = vec![0f32; 1000];
        w[3] = 1.0;
        w[400] = 2.0;
        w[999] = 1.0;
        assert_eq!(pick(&w, 0.0), Some(3));
        assert_eq!(pick(&w, 0.2), Some(3));
        assert_eq!(pick(&w, 0.3), Some(400));
        assert_eq!(pick(&w, 0.74), Some(400));
        assert_eq!(pick(&w, 0.76), Some(999));
        assert_eq!(pick(&w, 0.999_999_9), Some(999));
        assert_eq!(pick(&[0.0; 5], 0.5), None);
    }

    #[test]
    fn weights_zero_below_the_floor_and_nan() {
        let x = [0.0, -1.0, -50.0, f32::NAN, 2.0];
        let mut w = [9.0; 5];
        weights(&x, 2.0, 0.5, -10.0, &mut w);
        let want = [(-4.0f32).exp(), (-6.0f32).exp(), 0.0, 0.0, 1.0];
        for (g, e) in w.iter().zip(want) {
            assert!((g - e).abs() <= 4.0 * f32::EPSILON * e, "{w:?}");
        }
    }
}
