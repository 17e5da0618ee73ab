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
    match widest() {
        // SAFETY (both): the features were just detected.
        Wide::Avx512 => return unsafe { weights_avx512(x, max, t, floor, out) },
        Wide::Avx2 => return unsafe { weights_avx2(x, max, t, floor, out) },
        Wide::None => {}
    }
    weights_portable(x, max, t, floor, out);
}

/// The widest vectors this x86 CPU has for the loops here. Each lane's operations are the
/// same whatever the width (no FMA: the compiler never fuses), so the results are too.
#[cfg(target_arch = "x86_64")]
enum Wide {
    Avx512,
    Avx2,
    None,
}

#[cfg(target_arch = "x86_64")]
fn widest() -> Wide {
    if std::arch::is_x86_feature_detected!("avx512f") {
        Wide::Avx512
    } else if std::arch::is_x86_feature_detected!("avx2") {
        Wide::Avx2
    } else {
        Wide::None
    }
}

/// [`weights`] compiled for AVX2 (eight lanes where the baseline build has four).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn weights_avx2(x: &[f32], max: f32, t: f32, floor: f32, out: &mut [f32]) {
    weights_portable(x, max, t, floor, out);
}

/// [`weights`] compiled for AVX-512 (sixteen lanes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn weights_avx512(x: &[f32], max: f32, t: f32, floor: f32, out: &mut [f32]) {
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
    sum_lanes(x)
}

#[inline(always)]
fn sum_lanes(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (s, &v) in lanes.iter_mut().zip(c) {
            *s += v;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Values per run of [`pick_by_runs`]' scan.
pub(super) const RUN: usize = 256;

/// The weights of a whole row `x` (see [`weights`]) summed by runs of [`RUN`] into `sums`,
/// without being kept: the draw over a whole vocabulary reads the row twice (its maximum, then
/// this) and writes nothing, then weighs one run again in [`pick_by_runs`].
pub(super) fn run_sums(x: &[f32], max: f32, t: f32, floor: f32, sums: &mut Vec<f32>) {
    sums.clear();
    #[cfg(target_arch = "x86_64")]
    match widest() {
        // SAFETY (both): the features were just detected.
        Wide::Avx512 => return unsafe { run_sums_avx512(x, max, t, floor, sums) },
        Wide::Avx2 => return unsafe { run_sums_avx2(x, max, t, floor, sums) },
        Wide::None => {}
    }
    run_sums_portable(x, max, t, floor, sums);
}

/// [`run_sums`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn run_sums_avx2(x: &[f32], max: f32, t: f32, floor: f32, sums: &mut Vec<f32>) {
    run_sums_portable(x, max, t, floor, sums);
}

/// [`run_sums`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn run_sums_avx512(x: &[f32], max: f32, t: f32, floor: f32, sums: &mut Vec<f32>) {
    run_sums_portable(x, max, t, floor, sums);
}

#[inline(always)]
fn run_sums_portable(x: &[f32], max: f32, t: f32, floor: f32, sums: &mut Vec<f32>) {
    let mut buf = [0f32; RUN];
    for run in x.chunks(RUN) {
        let w = &mut buf[..run.len()];
        weights_portable(run, max, t, floor, w);
        sums.push(sum_lanes(w));
    }
}

/// The index at which the running sum of the weights (≥ 0) first exceeds `u` times their
/// total (`u` in [0, 1)): index i with probability w[i] / Σw. The weights come by runs of
/// [`RUN`]: `sums` holds each run's sum, and `weigh(r, buf)` writes run r's weights into
/// `buf` and returns how many; runs whose sum stays under the target are skipped whole.
/// `None` when no weight is positive.
pub(super) fn pick_by_runs(
    sums: &[f32],
    u: f32,
    weigh: impl Fn(usize, &mut [f32; RUN]) -> usize,
) -> Option<usize> {
    let total: f32 = sums.iter().sum();
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let target = u * total;
    let mut cum = 0f32;
    let mut buf = [0f32; RUN];
    for (r, &s) in sums.iter().enumerate() {
        if cum + s <= target {
            cum += s;
            continue;
        }
        let n = weigh(r, &mut buf);
        for (i, &x) in buf[..n].iter().enumerate() {
            cum += x;
            if x > 0.0 && target < cum {
                return Some(r * RUN + i);
            }
        }
    }
    // Rounding left the sum a hair under the target: the last token with any weight.
    let r = sums.iter().rposition(|&s| s > 0.0)?;
    let n = weigh(r, &mut buf);
    buf[..n].iter().rposition(|&x| x > 0.0).map(|i| r * RUN + i)
}

/// [`pick_by_runs`] over weights at hand (`sums`: scratch for the run sums).
pub(super) fn pick(w: &[f32], u: f32, sums: &mut Vec<f32>) -> Option<usize> {
    sums.clear();
    sums.extend(w.chunks(RUN).map(sum));
    pick_by_runs(sums, u, |r, buf| {
        let run = &w[r * RUN..(r * RUN + RUN).min(w.len())];
        buf[..run.len()].copy_from_slice(run);
        run.len()
    })
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
        let mut sums = Vec::new();
        let mut pick = |w: &[f32], u| pick(w, u, &mut sums);
        assert_eq!(pick(&w, 0.0), Some(3));
        assert_eq!(pick(&w, 0.2), Some(3));
        assert_eq!(pick(&w, 0.3), Some(400));
        assert_eq!(pick(&w, 0.74), Some(400));
        assert_eq!(pick(&w, 0.76), Some(999));
        assert_eq!(pick(&w, 0.999_999_9), Some(999));
        assert_eq!(pick(&[0.0; 5], 0.5), None);
    }

    #[test]
    fn every_vector_width_gives_the_same_weights() {
        // The dispatched (AVX2 or AVX-512) loops against the baseline build's, bit for bit:
        // a seeded draw must not depend on the CPU.
        let x: Vec<f32> = (0..4099)
            .map(|i| ((i * 7919 % 1000) as f32 - 900.0) * 0.037)
            .chain([f32::NAN, -1e30, 0.0])
            .collect();
        let max = x
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .fold(f32::MIN, f32::max);
        for t in [0.3, 1.0, 1.7] {
            let (mut got, mut want) = (vec![0f32; x.len()], vec![0f32; x.len()]);
            weights(&x, max, t, -20.0, &mut got);
            weights_portable(&x, max, t, -20.0, &mut want);
            let bits = |v: &[f32]| v.iter().map(|w| w.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "t = {t}");
            let (mut sums, mut plain) = (Vec::new(), Vec::new());
            run_sums(&x, max, t, -20.0, &mut sums);
            run_sums_portable(&x, max, t, -20.0, &mut plain);
            assert_eq!(bits(&sums), bits(&plain), "t = {t}");
        }
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

    /// A row's run sums and the runs weighed again pick what the weights written out pick.
    #[test]
    fn picking_from_a_row_by_runs_matches_picking_from_its_weights() {
        let x: Vec<f32> = (0..3000)
            .map(|i| ((i * 7919) % 1000) as f32 / 40.0 - 20.0)
            .collect();
        let (max, t) = (x.iter().cloned().fold(f32::MIN, f32::max), 0.8);
        let floor = max - 15.0;
        let mut w = vec![0f32; x.len()];
        weights(&x, max, t, floor, &mut w);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        run_sums(&x, max, t, floor, &mut a);
        for k in 0..200 {
            let u = k as f32 / 200.0;
            let by_runs = pick_by_runs(&a, u, |r, buf| {
                let run = &x[r * RUN..(r * RUN + RUN).min(x.len())];
                weights(run, max, t, floor, &mut buf[..run.len()]);
                run.len()
            });
            assert_eq!(by_runs, pick(&w, u, &mut b), "u {u}");
        }
    }
}
