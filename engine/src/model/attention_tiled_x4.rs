//! Four query rows at a time through the two GEMMs of the tiled attention
//! ([`super::attention_tiled`]), on AVX-512: one row at a time, every FMA of the score GEMM
//! loads its own key value (64 KiB of widened keys per row and tile at head size 256, more
//! than L1 holds), and every FMA of the value GEMM its own value; four rows share each load.
//! Each (row, key) score and each (row, element) output is still one FMA chain in the same
//! order as the one-row kernels, so the results keep their bits.

use super::attention_tiled::TILE;

/// Whether this CPU runs the four-row kernels.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Values of the value GEMM's accumulator held in registers at a time, per row.
pub(super) const RUN: usize = 64;

/// `p[r][l] = Σ_d kt[d·TILE + l] · q[r][d]`, one FMA chain over d per row and key, for four
/// rows of equal length; the keys `kt` transposed (`q[0].len()` rows of [`TILE`]).
///
/// # Panics
/// If the rows differ in length or `kt` is too short. Only when [`available`].
pub(super) fn scores(q: [&[f32]; 4], kt: &[f32], p: &mut [[f32; TILE]; 4]) {
    let dk = q[0].len();
    assert!(q.iter().all(|r| r.len() == dk) && kt.len() >= dk * TILE && available());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F, AVX2 and FMA are available (asserted); lengths checked above.
    unsafe {
        avx512::scores(q, kt, p)
    }
}

/// `acc[r] += Σ_i p[r][i] · v[i]` over `keys` in order (one FMA per key and element), for four
/// rows that see the same keys; `v` holds the tile's value rows of `acc[r].len()` values.
///
/// # Panics
/// If the rows differ in length, their length is not a multiple of [`RUN`], `v` is too short
/// for a key, or the kernels are not [`available`].
pub(super) fn accumulate(acc: [&mut [f32]; 4], v: &[f32], p: [&[f32; TILE]; 4], keys: &[u8]) {
    let dv = acc[0].len();
    assert!(acc.iter().all(|a| a.len() == dv) && dv.is_multiple_of(RUN) && available());
    assert!(keys.iter().all(|&i| (i as usize + 1) * dv <= v.len()));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F, AVX2 and FMA are available (asserted); lengths checked above.
    unsafe {
        avx512::accumulate(acc, v, p, keys)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{RUN, TILE};

    /// See [`super::scores`].
    ///
    /// # Safety
    /// AVX-512F, AVX2 and FMA are available; every row of `q` has `q[0].len()` values and `kt`
    /// at least `q[0].len() · TILE`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn scores(q: [&[f32]; 4], kt: &[f32], p: &mut [[f32; TILE]; 4]) {
        let mut acc = [[_mm512_setzero_ps(); TILE / 16]; 4];
        for d in 0..q[0].len() {
            // SAFETY: d < dk, so key row d (TILE values) lies in `kt`, and q[r][d] in q[r].
            unsafe {
                let k = kt.as_ptr().add(d * TILE);
                let kv: [__m512; TILE / 16] =
                    std::array::from_fn(|j| _mm512_loadu_ps(k.add(16 * j)));
                for (acc, q) in acc.iter_mut().zip(&q) {
                    let qd = _mm512_set1_ps(*q.get_unchecked(d));
                    for (a, k) in acc.iter_mut().zip(&kv) {
                        *a = _mm512_fmadd_ps(*k, qd, *a);
                    }
                }
            }
        }
        for (p, acc) in p.iter_mut().zip(&acc) {
            for (j, a) in acc.iter().enumerate() {
                // SAFETY: 16 floats at 16j < TILE.
                unsafe { _mm512_storeu_ps(p.as_mut_ptr().add(16 * j), *a) };
            }
        }
    }

    /// See [`super::accumulate`].
    ///
    /// # Safety
    /// AVX-512F, AVX2 and FMA are available; every row of `acc` has `dv` values, a multiple of
    /// RUN, and `v` at least `(i + 1) · dv` for every key i.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn accumulate(
        mut acc: [&mut [f32]; 4],
        v: &[f32],
        p: [&[f32; TILE]; 4],
        keys: &[u8],
    ) {
        let dv = acc[0].len();
        for c in (0..dv).step_by(RUN) {
            // SAFETY (every load and store below): c + RUN <= dv, the rows' length and each
            // key's value row's; the caller vouches for `v`.
            let mut a: [[__m512; RUN / 16]; 4] = std::array::from_fn(|r| {
                std::array::from_fn(|j| unsafe { _mm512_loadu_ps(acc[r].as_ptr().add(c + 16 * j)) })
            });
            for &i in keys {
                let i = i as usize;
                let vi = v[i * dv + c..].as_ptr();
                let vv: [__m512; RUN / 16] =
                    std::array::from_fn(|j| unsafe { _mm512_loadu_ps(vi.add(16 * j)) });
                for (a, p) in a.iter_mut().zip(&p) {
                    let pi = _mm512_set1_ps(p[i]);
                    for (a, v) in a.iter_mut().zip(&vv) {
                        *a = _mm512_fmadd_ps(*v, pi, *a);
                    }
                }
            }
            for (acc, a) in acc.iter_mut().zip(&a) {
                for (j, a) in a.iter().enumerate() {
                    unsafe { _mm512_storeu_ps(acc.as_mut_ptr().add(c + 16 * j), *a) };
                }
            }
        }
    }
}
