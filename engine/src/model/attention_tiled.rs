//! llama.cpp's tiled flash attention (`ggml_compute_forward_flash_attn_ext_tiled`), which its
//! CPU backend runs instead of the one-row kernel once a batch has [`TILE`] or more query rows:
//! Q stays F32, keys and values are widened to F32, and the keys go by in tiles of [`TILE`]
//! cache positions. Per tile: scores by an F32 GEMM (one FMA chain over the head dimension),
//! the running maximum and sum updated once, the tile's weights from ggml's vectorised `expf`
//! summed in double per 16 lanes, and the values accumulated by an F32 GEMM (one FMA chain over
//! the tile's keys). Reproduced row by row here, which gives the same bits: a row's result does
//! not depend on the other rows of its tile. On AVX-512 the two GEMMs take four rows at a time
//! ([`attention_tiled_x4`], the same bits).

use super::attention_tiled_x4;

/// Query rows (and keys) per tile: `GGML_FA_TILE_Q` / `GGML_FA_TILE_KV`.
pub const TILE: usize = 64;

/// Scratch of one worker: a widened key tile (transposed) and value tile, and the running
/// state of up to [`TILE`] query rows.
#[derive(Debug, Default)]
pub struct TileScratch {
    kt: Vec<f32>,
    v: Vec<f32>,
    acc: Vec<f32>,
    key: Vec<f32>,
    max: Vec<f32>,
    sum: Vec<f32>,
    /// Each row's scores, then weights, for the tile at hand.
    p: Vec<[f32; TILE]>,
    /// Each row's visible keys in the tile at hand (the first `n_keys[r]`).
    keys: Vec<[u8; TILE]>,
    n_keys: Vec<usize>,
}

/// One sequence's query rows for one head: positions (each row sees `lo..=pos`), queries and
/// where the outputs go.
pub struct Rows<'a> {
    /// (lo, pos) of each row.
    pub spans: &'a [(usize, usize)],
    /// The rows' queries, `head_dim_k` each.
    pub q: &'a [&'a [f32]],
}

/// Attention of query rows of one sequence and head, the way ggml's tiled kernel computes each
/// row; returns the rows' outputs (`dv` values each) from the scratch. `key(j, out)` /
/// `value(j, out)` widen position `j`'s head to F32 and return false when `j` has no cache
/// slot. Scores are `dot · scale`, soft-capped as ggml does (`tanh(dot · scale/cap) · cap`).
#[allow(clippy::too_many_arguments)]
pub fn attend_rows<'s>(
    rows: &Rows<'_>,
    key: impl Fn(usize, &mut [f32]) -> bool,
    value: impl Fn(usize, &mut [f32]) -> bool,
    scale: f32,
    softcap: Option<f32>,
    dv: usize,
    s: &'s mut TileScratch,
) -> &'s [f32] {
    let n = rows.spans.len();
    let dk = rows.q.first().map_or(0, |q| q.len());
    assert!(rows.q.len() == n && rows.q.iter().all(|q| q.len() == dk));
    s.kt.resize(dk * TILE, 0.0);
    s.v.resize(TILE * dv, 0.0);
    s.acc.clear();
    s.acc.resize(n * dv, 0.0);
    s.key.resize(TILE * dk, 0.0);
    let scale = softcap.map_or(scale, |c| scale / c);
    s.max.clear();
    s.max.resize(n, f32::NEG_INFINITY);
    s.sum.clear();
    s.sum.resize(n, 0.0);
    s.p.resize(n, [0.0; TILE]);
    s.keys.resize(n, [0; TILE]);
    s.n_keys.resize(n, 0);
    let (max, sum) = (&mut s.max, &mut s.sum);
    let first = rows.spans.iter().map(|s| s.0).min().unwrap_or(0);
    let last = rows.spans.iter().map(|s| s.1).max().unwrap_or(0);
    let x4 = attention_tiled_x4::available();
    let mut present = [false; TILE];
    for start in (first - first % TILE..=last).step_by(TILE) {
        // Widen the tile once for every row: keys as rows, then transposed (lane = key);
        // values as rows.
        for (i, live) in present.iter_mut().enumerate() {
            let j = start + i;
            *live = j <= last && key(j, &mut s.key[i * dk..(i + 1) * dk]);
            if *live {
                value(j, &mut s.v[i * dv..(i + 1) * dv]);
            }
        }
        kernels::transpose(&s.key, dk, &mut s.kt);
        // Every row's scores, four rows at a time where the CPU can (the rows that see no key
        // of this tile get scores too, left unused).
        let mut r = 0;
        while x4 && r + 4 <= n {
            let p: &mut [[f32; TILE]; 4] = (&mut s.p[r..r + 4]).try_into().expect("4 rows");
            attention_tiled_x4::scores(std::array::from_fn(|k| rows.q[r + k]), &s.kt, p);
            r += 4;
        }
        for r in r..n {
            kernels::scores(rows.q[r], &s.kt, &mut s.p[r]);
        }
        for (r, &(lo, pos)) in rows.spans.iter().enumerate() {
            let visible = |i: usize| present[i] && (lo..=pos).contains(&(start + i));
            s.n_keys[r] = 0;
            if !(0..TILE).any(visible) {
                continue;
            }
            let p = &mut s.p[r];
            let mut tile_max = f32::NEG_INFINITY;
            for (i, x) in p.iter_mut().enumerate() {
                if visible(i) {
                    *x *= scale;
                    if let Some(cap) = softcap {
                        *x = x.tanh() * cap;
                    }
                    tile_max = tile_max.max(*x);
                } else {
                    *x = f32::NEG_INFINITY;
                }
            }
            let acc = &mut s.acc[r * dv..(r + 1) * dv];
            let new_max = max[r].max(tile_max);
            if new_max > max[r] {
                let ms = (max[r] - new_max).exp();
                acc.iter_mut().for_each(|o| *o *= ms);
                sum[r] *= ms;
            }
            max[r] = new_max;
            sum[r] = (sum[r] as f64 + kernels::exp_sum(p, new_max)) as f32;
            // The GEMM adds p·v for every key of the tile; masked keys have p = 0, which
            // leaves the accumulator's bits as they are, so only visible keys are visited.
            let keys = &mut s.keys[r];
            for i in (0..TILE).filter(|&i| visible(i)) {
                keys[s.n_keys[r]] = i as u8;
                s.n_keys[r] += 1;
            }
        }
        // The values, four rows at a time where four in a row see the same keys (all of a
        // tile before their diagonal), else one by one.
        let mut r = 0;
        while r < n {
            let keys = &s.keys[r][..s.n_keys[r]];
            let same = |k: usize| s.keys[r + k][..s.n_keys[r + k]] == *keys;
            if x4 && r + 4 <= n && dv.is_multiple_of(attention_tiled_x4::RUN) && (1..4).all(same) {
                let (acc, _) = s.acc[r * dv..].split_at_mut(4 * dv);
                let mut acc = acc.chunks_exact_mut(dv);
                let acc = std::array::from_fn(|_| acc.next().expect("4 rows"));
                let p = std::array::from_fn(|k| &s.p[r + k]);
                attention_tiled_x4::accumulate(acc, &s.v, p, keys);
                r += 4;
            } else {
                kernels::accumulate(&mut s.acc[r * dv..(r + 1) * dv], &s.v, &s.p[r], keys);
                r += 1;
            }
        }
    }
    for (r, acc) in s.acc.chunks_exact_mut(dv).enumerate() {
        let inv = if sum[r] == 0.0 { 0.0 } else { 1.0 / sum[r] };
        acc.iter_mut().for_each(|a| *a *= inv);
    }
    &s.acc
}

/// The inner loops, with fused multiply-adds in hardware where the CPU has them (a portable
/// `mul_add` compiles to a library call per element): the same operations either way.
mod kernels {
    use super::super::f16ops::reduce16;
    #[cfg(target_arch = "x86_64")]
    use super::has_fma;
    use super::{v_expf, TILE};

    #[inline(always)]
    fn scores_body(q: &[f32], kt: &[f32], p: &mut [f32; TILE]) {
        let mut acc = [0f32; TILE];
        for (d, &qd) in q.iter().enumerate() {
            let k = &kt[d * TILE..(d + 1) * TILE];
            for l in 0..TILE {
                acc[l] = k[l].mul_add(qd, acc[l]);
            }
        }
        *p = acc;
    }

    #[inline(always)]
    fn exp_sum_body(p: &mut [f32; TILE], max: f32) -> f64 {
        let mut total = 0f64;
        for lanes in p.chunks_exact_mut(16) {
            for x in lanes.iter_mut() {
                *x = v_expf(*x - max);
            }
            total += reduce16(&<[f32; 16]>::try_from(&*lanes).expect("16 lanes")) as f64;
        }
        total
    }

    /// [`exp_sum_body`] with eight lanes of [`v_expf`] at a time (the same bits).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn exp_sum_avx2(p: &mut [f32; TILE], max: f32) -> f64 {
        use std::arch::x86_64::*;
        let m = _mm256_set1_ps(max);
        let mut total = 0f64;
        for lanes in p.chunks_exact_mut(16) {
            for half in lanes.chunks_exact_mut(8) {
                // SAFETY: `half` holds eight floats.
                unsafe {
                    let x = _mm256_sub_ps(_mm256_loadu_ps(half.as_ptr()), m);
                    _mm256_storeu_ps(half.as_mut_ptr(), super::v_expf8(x));
                }
            }
            total += reduce16(&<[f32; 16]>::try_from(&*lanes).expect("16 lanes")) as f64;
        }
        total
    }

    /// Values per register-resident run of the accumulator in [`accumulate_body`].
    const RUN: usize = 64;

    /// `acc += Σ p[i]·v[i]` over `keys` in order, one fused multiply-add per key and element
    /// (ggml's value GEMM); `v` holds the tile's value rows of `acc.len()` values. Runs of
    /// [`RUN`] values stay in registers across the keys.
    #[inline(always)]
    fn accumulate_body(acc: &mut [f32], v: &[f32], p: &[f32; TILE], keys: &[u8]) {
        let dv = acc.len();
        let whole = dv - dv % RUN;
        for c in (0..whole).step_by(RUN) {
            let mut a: [f32; RUN] = acc[c..c + RUN].try_into().expect("run");
            for &i in keys {
                let i = i as usize;
                let vi: &[f32; RUN] = v[i * dv + c..][..RUN].try_into().expect("run");
                for l in 0..RUN {
                    a[l] = vi[l].mul_add(p[i], a[l]);
                }
            }
            acc[c..c + RUN].copy_from_slice(&a);
        }
        for &i in keys {
            let i = i as usize;
            for (a, &x) in acc[whole..]
                .iter_mut()
                .zip(&v[i * dv + whole..(i + 1) * dv])
            {
                *a = x.mul_add(p[i], *a);
            }
        }
    }

    /// Dispatches `$body` to an AVX2+FMA build of it when the CPU has one.
    macro_rules! dispatch {
        ($name:ident, $fast:ident, $body:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn $fast($($arg: $ty),*) -> $ret {
                $body($($arg),*)
            }

            pub(super) fn $name($($arg: $ty),*) -> $ret {
                #[cfg(target_arch = "x86_64")]
                if has_fma() {
                    // SAFETY: AVX2 and FMA were detected at run time.
                    return unsafe { $fast($($arg),*) };
                }
                $body($($arg),*)
            }
        };
    }

    /// `kt[d·TILE + i] = rows[i·dk + d]`: the tile's key rows transposed.
    pub(super) fn transpose(rows: &[f32], dk: usize, kt: &mut [f32]) {
        assert!(rows.len() >= TILE * dk && kt.len() >= TILE * dk);
        #[cfg(target_arch = "x86_64")]
        if has_fma() {
            // SAFETY: AVX2 was detected at run time; lengths checked above.
            unsafe { transpose_avx2(rows, dk, kt) };
            return transpose_range(rows, dk, kt, dk - dk % 8..dk);
        }
        transpose_range(rows, dk, kt, 0..dk);
    }

    /// [`transpose`] of dimensions `dims` only, one value at a time.
    fn transpose_range(rows: &[f32], dk: usize, kt: &mut [f32], dims: std::ops::Range<usize>) {
        for i in 0..TILE {
            for d in dims.clone() {
                kt[d * TILE + i] = rows[i * dk + d];
            }
        }
    }

    /// [`transpose`] of the first `dk − dk % 8` dimensions in 8 × 8 blocks.
    ///
    /// # Safety
    /// The CPU has AVX2; `rows` and `kt` hold `TILE · dk` values.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn transpose_avx2(rows: &[f32], dk: usize, kt: &mut [f32]) {
        use std::arch::x86_64::*;
        for i in (0..TILE).step_by(8) {
            for d in (0..dk - dk % 8).step_by(8) {
                // SAFETY: rows i..i + 8, values d..d + 8 lie in `rows`; lanes i..i + 8 of
                // rows d..d + 8 in `kt` (the caller's lengths).
                unsafe {
                    let r: [__m256; 8] = std::array::from_fn(|k| {
                        _mm256_loadu_ps(rows.as_ptr().add((i + k) * dk + d))
                    });
                    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
                    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
                    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
                    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
                    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
                    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
                    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
                    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
                    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let u1 = _mm256_shuffle_ps::<0xee>(t0, t2);
                    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let u3 = _mm256_shuffle_ps::<0xee>(t1, t3);
                    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                    let u5 = _mm256_shuffle_ps::<0xee>(t4, t6);
                    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                    let u7 = _mm256_shuffle_ps::<0xee>(t5, t7);
                    let cols = [
                        _mm256_permute2f128_ps::<0x20>(u0, u4),
                        _mm256_permute2f128_ps::<0x20>(u1, u5),
                        _mm256_permute2f128_ps::<0x20>(u2, u6),
                        _mm256_permute2f128_ps::<0x20>(u3, u7),
                        _mm256_permute2f128_ps::<0x31>(u0, u4),
                        _mm256_permute2f128_ps::<0x31>(u1, u5),
                        _mm256_permute2f128_ps::<0x31>(u2, u6),
                        _mm256_permute2f128_ps::<0x31>(u3, u7),
                    ];
                    for (k, c) in cols.iter().enumerate() {
                        _mm256_storeu_ps(kt.as_mut_ptr().add((d + k) * TILE + i), *c);
                    }
                }
            }
        }
    }

    dispatch!(scores, scores_fma, scores_body, (q: &[f32], kt: &[f32], p: &mut [f32; TILE]) -> ());
    dispatch!(accumulate, accumulate_fma, accumulate_body, (acc: &mut [f32], v: &[f32], p: &[f32; TILE], keys: &[u8]) -> ());

    pub(super) fn exp_sum(p: &mut [f32; TILE], max: f32) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if has_fma() {
            // SAFETY: AVX2 and FMA were detected at run time.
            return unsafe { exp_sum_avx2(p, max) };
        }
        exp_sum_body(p, max)
    }
}

/// ggml's vectorised `expf` (`ggml_v_expf`, AVX-512 form), one lane: a degree-5 polynomial on
/// the reduced argument, scaled by 2ⁿ; 0 or +∞ beyond |n| > 192.
pub fn v_expf(x: f32) -> f32 {
    let c = f32::from_bits;
    let r = c(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(c(0x3fb8_aa3b), r);
    let n = z - r;
    let b = (-n).mul_add(c(0x35bf_be8e), (-n).mul_add(c(0x3f31_7200), x));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let hi = c(0x3c07_2010).mul_add(b, c(0x3d2b_9f17));
    let mid = c(0x3e2a_af33).mul_add(b, c(0x3eff_fedb));
    let lo = c(0x3f7f_fff6).mul_add(b, 1.0);
    let j = hi.mul_add(u, mid).mul_add(u, lo);
    // vscalefps: j·2ⁿ rounded once (exact in f64, then one rounding to f32).
    // |n| ≤ 192 here, so 2ⁿ is a normal f64 built from its exponent bits.
    let two_n = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    (j as f64 * two_n) as f32
}

/// Whether the CPU has AVX2 and FMA: what [`v_expf8`] and the other vector loops of the
/// forward pass need.
#[cfg(target_arch = "x86_64")]
pub(super) fn has_fma() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// [`v_expf`] on eight lanes (the same bits on each).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) fn v_expf8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let c = |bits: u32| _mm256_set1_ps(f32::from_bits(bits));
    let r = c(0x4b40_0000);
    let z = _mm256_fmadd_ps(x, c(0x3fb8_aa3b), r);
    let n = _mm256_sub_ps(z, r);
    // (−n)·c + x is fnmadd(n, c, x): negation is exact.
    let b = _mm256_fnmadd_ps(n, c(0x35bf_be8e), _mm256_fnmadd_ps(n, c(0x3f31_7200), x));
    let u = _mm256_mul_ps(b, b);
    let hi = _mm256_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17));
    let mid = _mm256_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb));
    let lo = _mm256_fmadd_ps(c(0x3f7f_fff6), b, _mm256_set1_ps(1.0));
    let j = _mm256_fmadd_ps(_mm256_fmadd_ps(hi, u, mid), u, lo);
    // j·2ⁿ rounded once: exact in f64, four lanes at a time. Lanes with |n| > 192 (or NaN n)
    // build garbage here and are replaced below.
    let ni = _mm256_cvttps_epi32(n);
    let scale = |j4: __m128, n4: __m128i| {
        let e = _mm256_slli_epi64::<52>(_mm256_add_epi64(
            _mm256_cvtepi32_epi64(n4),
            _mm256_set1_epi64x(1023),
        ));
        _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(j4), _mm256_castsi256_pd(e)))
    };
    let lo4 = scale(_mm256_castps256_ps128(j), _mm256_castsi256_si128(ni));
    let hi4 = scale(
        _mm256_extractf128_ps::<1>(j),
        _mm256_extracti128_si256::<1>(ni),
    );
    let scaled = _mm256_set_m128(hi4, lo4);
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    let big = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(192.0));
    let sat = _mm256_blendv_ps(
        _mm256_set1_ps(f32::INFINITY),
        _mm256_setzero_ps(),
        _mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps()),
    );
    _mm256_blendv_ps(scaled, sat, big)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn v_expf8_is_v_expf_on_every_lane() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("skipping: no AVX2+FMA");
            return;
        }
        use std::arch::x86_64::*;
        let mut xs: Vec<f32> = (-2_000_000..=2_000_000).map(|i| i as f32 * 5e-5).collect();
        xs.extend((-400..=400).map(|i| i as f32 * 0.5));
        xs.extend([
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            -0.0,
            0.0,
            f32::MIN,
            f32::MAX,
            -87.5,
            88.8,
            -133.1,
            -192.4,
            193.0,
        ]);
        xs.resize(xs.len().next_multiple_of(8), 0.0);
        for x8 in xs.chunks_exact(8) {
            let mut got = [0f32; 8];
            // SAFETY: AVX2 and FMA detected above; eight floats in and out.
            unsafe { _mm256_storeu_ps(got.as_mut_ptr(), v_expf8(_mm256_loadu_ps(x8.as_ptr()))) };
            for (&x, g) in x8.iter().zip(got) {
                let want = v_expf(x);
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "{x}: {g} vs {want}"
                );
            }
        }
    }

    #[test]
    fn v_expf_is_close_to_exp_and_saturates_like_ggml() {
        for i in -1700..=1700 {
            let x = i as f32 * 0.05;
            let (a, b) = (v_expf(x), x.exp());
            assert!(
                (a - b).abs() <= 4e-7 * b.max(f32::MIN_POSITIVE),
                "{x}: {a} vs {b}"
            );
        }
        assert_eq!(v_expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(v_expf(-200.0), 0.0);
        assert_eq!(v_expf(200.0), f32::INFINITY);
    }

    /// Rows attended together (four at a time where the CPU has the kernels) give each row's
    /// bits when attended alone: full tiles, diagonal tiles, windows, a soft cap.
    #[test]
    fn rows_together_give_the_bits_of_rows_alone() {
        let (dk, dv) = (48, 128);
        let mut seed = 7u64;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let keys: Vec<f32> = (0..300 * dk).map(|_| rnd()).collect();
        let vals: Vec<f32> = (0..300 * dv).map(|_| rnd()).collect();
        let spans: Vec<(usize, usize)> = (0..11)
            .map(|r| (if r % 5 == 3 { 100 } else { 0 }, 180 + 9 * r))
            .collect();
        let qs: Vec<Vec<f32>> = (0..spans.len())
            .map(|_| (0..dk).map(|_| rnd()).collect())
            .collect();
        let key = |j: usize, o: &mut [f32]| {
            o.copy_from_slice(&keys[j * dk..(j + 1) * dk]);
            j != 150
        };
        let value = |j: usize, o: &mut [f32]| {
            o.copy_from_slice(&vals[j * dv..(j + 1) * dv]);
            j != 150
        };
        for softcap in [None, Some(0.7)] {
            let q: Vec<&[f32]> = qs.iter().map(|q| &q[..]).collect();
            let mut s = TileScratch::default();
            let rows = Rows {
                spans: &spans,
                q: &q,
            };
            let together = attend_rows(&rows, key, value, 0.3, softcap, dv, &mut s).to_vec();
            for (r, got) in together.chunks_exact(dv).enumerate() {
                let mut one = TileScratch::default();
                let row = Rows {
                    spans: &spans[r..r + 1],
                    q: &q[r..r + 1],
                };
                let alone = attend_rows(&row, key, value, 0.3, softcap, dv, &mut one);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(got), bits(alone), "row {r} softcap {softcap:?}");
            }
        }
    }

    #[test]
    fn key_tiles_transpose() {
        for dk in [256, 20, 5] {
            let rows: Vec<f32> = (0..TILE * dk).map(|v| v as f32).collect();
            let mut kt = vec![f32::NAN; TILE * dk];
            kernels::transpose(&rows, dk, &mut kt);
            for i in 0..TILE {
                for d in 0..dk {
                    assert_eq!(
                        kt[d * TILE + i],
                        rows[i * dk + d],
                        "dk {dk} key {i} value {d}"
                    );
                }
            }
        }
    }

    #[test]
    fn rows_are_softmax_weighted_sums() {
        let keys: Vec<[f32; 4]> = (0..200)
            .map(|j| [j as f32 * 0.01, 1.0 - j as f32 * 0.02, 0.3, -0.1])
            .collect();
        let vals: Vec<[f32; 2]> = (0..200).map(|j| [j as f32, 1.0]).collect();
        let qs = [[0.5f32, -1.0, 0.25, 2.0], [0.1, 0.2, -0.3, 0.4]];
        let spans = [(10, 90), (0, 150)];
        let q: Vec<&[f32]> = qs.iter().map(|q| &q[..]).collect();
        let mut s = TileScratch::default();
        let outs = attend_rows(
            &Rows {
                spans: &spans,
                q: &q,
            },
            |j, o| {
                o.copy_from_slice(&keys[j]);
                true
            },
            |j, o| {
                o.copy_from_slice(&vals[j]);
                true
            },
            0.5,
            None,
            2,
            &mut s,
        );
        for (r, &(lo, pos)) in spans.iter().enumerate() {
            let scores: Vec<f64> = (lo..=pos)
                .map(|j| {
                    0.5 * keys[j]
                        .iter()
                        .zip(&qs[r])
                        .map(|(a, b)| (a * b) as f64)
                        .sum::<f64>()
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::MIN, f64::max);
            let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let total: f64 = w.iter().sum();
            let want: f64 = (lo..=pos).zip(&w).map(|(j, w)| j as f64 * w).sum::<f64>() / total;
            assert!(
                (outs[2 * r] as f64 - want).abs() < 1e-4 * want,
                "{} vs {want}",
                outs[2 * r]
            );
            assert!((outs[2 * r + 1] - 1.0).abs() < 1e-5);
        }
    }
}
