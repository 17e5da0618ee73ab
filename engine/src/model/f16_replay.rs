//! The value half of attention over an f16 cache, a block of keys at a time, with the
//! accumulators held in registers.
//!
//! llama.cpp's CPU flash attention takes the keys one by one: each key's score moves the row's
//! online softmax, which may rescale the f16 accumulator (`ggml_vec_scale_f16`), and then adds
//! the key's value with its weight (`ggml_vec_mad_f16`), both rounded to f16 element by
//! element. Key by key, that loads and stores the whole accumulator twice per key. The
//! operations are element-wise, so each element sees the same sequence whatever the loop
//! order: here a first pass runs the scores and the softmax of a block of keys and records
//! each key's rescale factor and weight ([`RowSteps`]), and [`replay`] then walks the block
//! once per 64 values of the accumulators with those values in registers. The bits are those
//! of the key-by-key order (tested against it below).

use half::f16;

use super::f16ops;

/// Keys whose steps are recorded before they are replayed.
pub(super) const KEY_BLOCK: usize = 64;

/// The weight of a key a row does not add (its score was −∞); real weights are exp(·) ≥ 0.
pub(super) const SKIP: f32 = -1.0;

/// One row's steps over a block of keys: before key `i`'s value, the accumulator is rescaled
/// by `scale[i]` (where it is not 1); then it gains `weight[i]` times the value (where the
/// weight is not [`SKIP`] and the key has a value).
pub(super) struct RowSteps<'a> {
    /// The row's accumulator: f16-rounded values, one per value dimension.
    pub acc: &'a mut [f32],
    /// Rescale factor before each key (1: none).
    pub scale: &'a mut [f32],
    /// Weight of each key's value ([`SKIP`]: none).
    pub weight: &'a mut [f32],
}

/// Applies each row's steps over the block of keys whose values are `values` (`None`: the key
/// has no value), exactly as `f16ops::scale` and `f16ops::mad` key by key would.
pub(super) fn replay(rows: &mut [RowSteps<'_>], values: &[Option<&[f16]>]) {
    for r in rows.iter() {
        assert!(r.scale.len() >= values.len() && r.weight.len() >= values.len());
        for v in values.iter().flatten() {
            assert_eq!(
                v.len(),
                r.acc.len(),
                "value rows as long as the accumulator"
            );
        }
    }
    #[cfg(target_arch = "x86_64")]
    if f16ops::use_avx512() {
        for group in rows.chunks_mut(4) {
            // SAFETY: AVX-512F/BW/VL, FMA and F16C were detected (the AVX-512 kernels are the
            // active ones); the lengths were checked above.
            unsafe {
                match group {
                    [a] => avx512::replay([a], values),
                    [a, b] => avx512::replay([a, b], values),
                    [a, b, c] => avx512::replay([a, b, c], values),
                    [a, b, c, d] => avx512::replay([a, b, c, d], values),
                    _ => unreachable!("chunks of one to four"),
                }
            }
        }
        return;
    }
    for r in rows.iter_mut() {
        replay_key_by_key(r, values);
    }
}

/// [`replay`] one key at a time through `f16ops` (every ISA; the reference of the tests).
fn replay_key_by_key(r: &mut RowSteps<'_>, values: &[Option<&[f16]>]) {
    for (i, v) in values.iter().enumerate() {
        if r.scale[i] != 1.0 {
            f16ops::scale(r.acc, r.scale[i]);
        }
        if let (Some(v), true) = (v, r.weight[i] != SKIP) {
            f16ops::mad(r.acc, v, r.weight[i]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{RowSteps, SKIP};

    /// Values per pass: four registers of sixteen per row.
    const CHUNK: usize = 64;

    /// `x` rounded to f16 and back, as `f16ops` rounds.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
    fn round(x: __m512) -> __m512 {
        _mm512_cvtph_ps(_mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x))
    }

    /// [`super::replay`] for `R` rows: for each 64 values, the rows' accumulators are loaded
    /// once, take every key's steps in registers, and are stored once.
    ///
    /// # Safety
    /// AVX-512F/BW/VL, FMA and F16C; every value row as long as every accumulator, every
    /// `scale` and `weight` at least `values.len()` long.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
    pub(super) unsafe fn replay<const R: usize>(
        rows: [&mut RowSteps<'_>; R],
        values: &[Option<&[f16]>],
    ) {
        let n = rows[0].acc.len();
        let accs: [*mut f32; R] = std::array::from_fn(|r| rows[r].acc.as_mut_ptr());
        let mut d0 = 0;
        while d0 < n {
            let len = (n - d0).min(CHUNK);
            // Lanes of the chunk's four registers that lie inside it.
            let mask: [__mmask16; 4] = std::array::from_fn(|z| {
                let lanes = len.saturating_sub(16 * z).min(16);
                ((1u32 << lanes) - 1) as __mmask16
            });
            // SAFETY (loads and stores): masked to the chunk, which lies inside every
            // accumulator and value row (all `n` long, the caller's promise).
            let mut acc: [[__m512; 4]; R] = std::array::from_fn(|r| {
                std::array::from_fn(|z| unsafe {
                    _mm512_maskz_loadu_ps(mask[z], accs[r].add(d0 + 16 * z))
                })
            });
            for (i, v) in values.iter().enumerate() {
                let v: Option<[__m512; 4]> = v.map(|v| {
                    let p = v.as_ptr().cast::<i16>();
                    std::array::from_fn(|z| unsafe {
                        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask[z], p.add(d0 + 16 * z)))
                    })
                });
                for (a, row) in acc.iter_mut().zip(&rows) {
                    let s = row.scale[i];
                    if s != 1.0 {
                        let s = _mm512_set1_ps(s);
                        for a in a.iter_mut() {
                            *a = round(_mm512_mul_ps(*a, s));
                        }
                    }
                    let w = row.weight[i];
                    if let (Some(v), true) = (&v, w != SKIP) {
                        let w = _mm512_set1_ps(w);
                        for (a, &v) in a.iter_mut().zip(v) {
                            *a = round(_mm512_fmadd_ps(v, w, *a));
                        }
                    }
                }
            }
            for (a, &p) in acc.iter().zip(&accs) {
                for (z, &a) in a.iter().enumerate() {
                    unsafe { _mm512_mask_storeu_ps(p.add(d0 + 16 * z), mask[z], a) };
                }
            }
            d0 += CHUNK;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of every count up to six (a group of four and a rest), value widths with and
    /// without a partial register, keys without a value, skipped keys, rescales: the block
    /// replay gives each row the bits of the key-by-key order.
    #[test]
    fn replay_gives_the_bits_of_key_by_key() {
        let mut s = 0x9e37_79b9u32;
        let mut next = move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32
        };
        for n in [256, 96, 80, 70, 7] {
            for n_rows in 1..=6 {
                let keys = 50;
                let vals: Vec<Vec<f16>> = (0..keys)
                    .map(|_| (0..n).map(|_| f16::from_f32(8.0 * next() - 4.0)).collect())
                    .collect();
                let values: Vec<Option<&[f16]>> = vals
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i % 11 != 5).then_some(&v[..]))
                    .collect();
                let mut scales = vec![1.0f32; n_rows * keys];
                let mut weights = vec![0.0f32; n_rows * keys];
                for (sc, w) in scales.iter_mut().zip(weights.iter_mut()) {
                    let x = next();
                    if x < 0.2 {
                        *sc = next();
                    }
                    *w = if x > 0.9 { SKIP } else { next() };
                }
                let start: Vec<f32> = (0..n_rows * n)
                    .map(|_| f16::from_f32(next() - 0.5).to_f32())
                    .collect();
                let run = |block: bool| {
                    let mut accs = start.clone();
                    let (mut scales, mut weights) = (scales.clone(), weights.clone());
                    let mut rows: Vec<RowSteps<'_>> = accs
                        .chunks_exact_mut(n)
                        .zip(
                            scales
                                .chunks_exact_mut(keys)
                                .zip(weights.chunks_exact_mut(keys)),
                        )
                        .map(|(acc, (scale, weight))| RowSteps { acc, scale, weight })
                        .collect();
                    if block {
                        replay(&mut rows, &values);
                    } else {
                        rows.iter_mut().for_each(|r| replay_key_by_key(r, &values));
                    }
                    accs
                };
                let (got, want) = (run(true), run(false));
                assert!(
                    got.iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "n={n} rows={n_rows}"
                );
            }
        }
    }
}
