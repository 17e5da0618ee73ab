//! The f16 vector operations of attention over an f16 KV cache, computed exactly as ggml's
//! AVX-512 build computes them (`ggml_vec_dot_f16`, `ggml_vec_mad_f16`, `ggml_vec_scale_f16`)
//! so that scores and outputs agree with llama.cpp bit for bit — with an AVX-512 version and a
//! portable one that performs the same float operations in the same order.

use std::sync::OnceLock;

use half::{f16, slice::HalfFloatSliceExt};
use nanorun_kernels::{Isa, Kernels};

pub(super) fn use_avx512() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| Kernels::active().is_ok_and(|k| k.isa() == Isa::Avx512))
}

/// AVX2 with FMA and F16C (every x86 ISA the kernels pick above scalar has them).
fn use_avx2() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| Kernels::active().is_ok_and(|k| k.isa() != Isa::Scalar))
}

const LANES: usize = 16;
const STEP: usize = 4 * LANES;

/// `dst[i]` = `src[i]` rounded to f16 (to nearest, ties to even) and back, as llama.cpp
/// converts a query to the cache's type before the dot products; a slice at a time, so that
/// F16C converts eight values an instruction where one at a time cost a call each.
pub fn round_to_f16(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    let mut buf = [f16::ZERO; 64];
    for (d, s) in dst.chunks_mut(64).zip(src.chunks(64)) {
        let b = &mut buf[..s.len()];
        b.convert_from_f32_slice(s);
        b.convert_to_f32_slice(d);
    }
}

/// The last steps of GCC's `_mm512_reduce_add_ps` on 16 lanes.
#[inline(always)]
pub(super) fn reduce16(v: &[f32; 16]) -> f32 {
    let mut h8 = [0f32; 8];
    for l in 0..8 {
        h8[l] = v[8 + l] + v[l];
    }
    let mut h4 = [0f32; 4];
    for l in 0..4 {
        h4[l] = h8[4 + l] + h8[l];
    }
    (h4[0] + h4[2]) + (h4[1] + h4[3])
}

/// `k · q`: four accumulators of 16 lanes fed 64 values at a time with fused multiply-adds,
/// reduced pairwise and across lanes, the tail added in f64; `q` holds f16-rounded values.
pub fn dot(k: &[f16], q: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if use_avx512() {
        // SAFETY: AVX-512F/FMA/F16C were detected (Kernels only picks AVX-512 when present).
        return unsafe { avx512::dot(k, q) };
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: AVX2/FMA/F16C were detected (the active kernels are an x86 SIMD ISA).
        return unsafe { avx2::dot(k, q) };
    }
    dot_portable(k, q)
}

fn dot_portable(k: &[f16], q: &[f32]) -> f32 {
    let n = k.len().min(q.len());
    let np = n - n % STEP;
    let mut acc = [[0f32; LANES]; 4];
    for (kc, qc) in k[..np].chunks_exact(STEP).zip(q[..np].chunks_exact(STEP)) {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, lane) in a.iter_mut().enumerate() {
                let i = j * LANES + l;
                *lane = kc[i].to_f32().mul_add(qc[i], *lane);
            }
        }
    }
    let mut v = [0f32; LANES];
    for l in 0..LANES {
        v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    }
    tail(reduce16(&v), &k[np..n], &q[np..n])
}

#[inline(always)]
fn tail(head: f32, k: &[f16], q: &[f32]) -> f32 {
    if k.is_empty() || q.is_empty() {
        // (f32 → f64 → f32 is the identity on every value an FMA produces.)
        return head;
    }
    let mut sum = head as f64;
    for (a, b) in k.iter().zip(q) {
        sum += (a.to_f32() * b) as f64;
    }
    sum as f32
}

/// `acc[i] = f16(acc[i] + x[i]·w)` with a fused multiply-add; `acc` holds f16-rounded values.
pub fn mad(acc: &mut [f32], x: &[f16], w: f32) {
    #[cfg(target_arch = "x86_64")]
    if use_avx512() {
        // SAFETY: as in `dot`.
        return unsafe { avx512::mad(acc, x, w) };
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: as in `dot`.
        return unsafe { avx2::mad(acc, x, w) };
    }
    for (a, v) in acc.iter_mut().zip(x) {
        *a = f16::from_f32(v.to_f32().mul_add(w, *a)).to_f32();
    }
}

/// `acc[i] = f16(acc[i]·s)`; `acc` holds f16-rounded values.
pub fn scale(acc: &mut [f32], s: f32) {
    #[cfg(target_arch = "x86_64")]
    if use_avx512() {
        // SAFETY: as in `dot`.
        return unsafe { avx512::scale(acc, s) };
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: as in `dot`.
        return unsafe { avx2::scale(acc, s) };
    }
    for a in acc.iter_mut() {
        *a = f16::from_f32(*a * s).to_f32();
    }
}

/// [`dot`] of one key row with four query rows, each result bit for bit `dot(k, q[r])`; on
/// AVX-512 the key row is widened once for the four.
pub fn dot_x4(k: &[f16], q: [&[f32]; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if use_avx512() && q.iter().all(|r| r.len() == k.len()) {
        // SAFETY: as in `dot`; the rows are as long as the key (checked).
        return unsafe { avx512::dot_x4(k, q) };
    }
    q.map(|r| dot(k, r))
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{tail, LANES, STEP};

    /// # Safety
    /// The CPU must have AVX-512F, FMA and F16C.
    #[target_feature(enable = "avx512f,fma,f16c")]
    pub unsafe fn dot(k: &[f16], q: &[f32]) -> f32 {
        let n = k.len().min(q.len());
        let np = n - n % STEP;
        let mut acc = [_mm512_setzero_ps(); 4];
        let (kp, qp) = (k.as_ptr() as *const u16, q.as_ptr());
        let mut i = 0;
        while i < np {
            for (j, a) in acc.iter_mut().enumerate() {
                let off = i + j * LANES;
                // SAFETY: off + 16 <= np <= n for both slices.
                let kv = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(kp.add(off).cast()) });
                let qv = unsafe { _mm512_loadu_ps(qp.add(off)) };
                *a = _mm512_fmadd_ps(kv, qv, *a);
            }
            i += STEP;
        }
        let v = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
        tail(reduce1(v), &k[np..n], &q[np..n])
    }

    /// [`reduce16`](super::reduce16) of the sixteen lanes of `v`, in registers: the same
    /// additions of the same pairs (halves, then quarters, then lanes 0 + 2 and 1 + 3, then
    /// those two).
    #[inline]
    #[target_feature(enable = "avx512f,fma,f16c")]
    fn reduce1(v: __m512) -> f32 {
        let h8 = _mm256_add_ps(
            _mm512_castps512_ps256(v),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
        );
        let h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps::<1>(h8));
        let h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
        _mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)))
    }

    /// [`reduce1`] of four vectors at once: each result the same additions of the same pairs,
    /// two rows per register for the halves, four for the quarters and lanes.
    #[inline]
    #[target_feature(enable = "avx512f,fma,f16c")]
    fn reduce_x4(v: [__m512; 4]) -> [f32; 4] {
        // [lanes 0..8 of rows a and b] + [lanes 8..16 of rows a and b].
        let halves = |a: __m512, b: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x44>(a, b),
                _mm512_shuffle_f32x4::<0xEE>(a, b),
            )
        };
        let (h01, h23) = (halves(v[0], v[1]), halves(v[2], v[3]));
        // Quarter r: lanes 0..4 of row r's eight + lanes 4..8.
        let h4 = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(h01, h23),
            _mm512_shuffle_f32x4::<0xDD>(h01, h23),
        );
        // Within each quarter: (0 + 2, 1 + 3), then their sum in lane 0.
        let h2 = _mm512_add_ps(h4, _mm512_permute_ps::<0b01_00_11_10>(h4));
        let h1 = _mm512_add_ps(h2, _mm512_permute_ps::<0b10_11_00_01>(h2));
        let mut lanes = [0f32; LANES];
        // SAFETY: 16 floats.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), h1) };
        [lanes[0], lanes[4], lanes[8], lanes[12]]
    }

    /// # Safety
    /// As [`dot`].
    #[target_feature(enable = "avx512f,fma,f16c")]
    pub unsafe fn mad(acc: &mut [f32], x: &[f16], w: f32) {
        let n = acc.len().min(x.len());
        let np = n - n % LANES;
        let wv = _mm512_set1_ps(w);
        let (ap, xp) = (acc.as_mut_ptr(), x.as_ptr() as *const u16);
        let mut i = 0;
        while i < np {
            // SAFETY: i + 16 <= n for both slices.
            unsafe {
                let y = _mm512_loadu_ps(ap.add(i));
                let xv = _mm512_cvtph_ps(_mm256_loadu_si256(xp.add(i).cast()));
                let r = _mm512_fmadd_ps(xv, wv, y);
                let r = _mm512_cvtph_ps(_mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(r));
                _mm512_storeu_ps(ap.add(i), r);
            }
            i += LANES;
        }
        for (a, v) in acc[np..n].iter_mut().zip(&x[np..n]) {
            *a = f16::from_f32(v.to_f32().mul_add(w, *a)).to_f32();
        }
    }

    /// [`dot`] for four rows of `k.len()` values, the key row widened once.
    ///
    /// # Safety
    /// As [`dot`]; every row is `k.len()` long.
    #[target_feature(enable = "avx512f,fma,f16c")]
    pub unsafe fn dot_x4(k: &[f16], q: [&[f32]; 4]) -> [f32; 4] {
        let n = k.len();
        assert!(q.iter().all(|r| r.len() == n));
        let np = n - n % STEP;
        let mut acc = [[_mm512_setzero_ps(); 4]; 4];
        let kp = k.as_ptr() as *const u16;
        let mut i = 0;
        let qp = q.map(<[f32]>::as_ptr);
        while i < np {
            let mut kv = [_mm512_setzero_ps(); 4];
            for (j, kv) in kv.iter_mut().enumerate() {
                // SAFETY: i + 64 <= np <= n for the key and every row.
                *kv = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(kp.add(i + j * LANES).cast()) });
            }
            for r in 0..4 {
                for j in 0..4 {
                    // SAFETY: as above.
                    let qv = unsafe { _mm512_loadu_ps(qp[r].add(i + j * LANES)) };
                    acc[r][j] = _mm512_fmadd_ps(kv[j], qv, acc[r][j]);
                }
            }
            i += STEP;
        }
        let mut v = [_mm512_setzero_ps(); 4];
        for (v, a) in v.iter_mut().zip(&acc) {
            *v = _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
        }
        let sums = reduce_x4(v);
        if np == n {
            return sums;
        }
        let mut out = [0f32; 4];
        for ((o, s), r) in out.iter_mut().zip(sums).zip(&q) {
            *o = tail(s, &k[np..n], &r[np..n]);
        }
        out
    }

    /// # Safety
    /// As [`dot`].
    #[target_feature(enable = "avx512f,fma,f16c")]
    pub unsafe fn scale(acc: &mut [f32], s: f32) {
        let n = acc.len();
        let np = n - n % LANES;
        let sv = _mm512_set1_ps(s);
        let ap = acc.as_mut_ptr();
        let mut i = 0;
        while i < np {
            // SAFETY: i + 16 <= n.
            unsafe {
                let r = _mm512_mul_ps(_mm512_loadu_ps(ap.add(i)), sv);
                let r = _mm512_cvtph_ps(_mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(r));
                _mm512_storeu_ps(ap.add(i), r);
            }
            i += LANES;
        }
        for a in acc[np..].iter_mut() {
            *a = f16::from_f32(*a * s).to_f32();
        }
    }
}

/// The same operations as [`avx512`] with each 16-lane register as two 8-lane halves.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{reduce16, tail, LANES, STEP};

    /// Eight f16 values at `p` widened.
    ///
    /// # Safety
    /// Eight readable values; AVX2/F16C.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8h(p: *const u16) -> __m256 {
        // SAFETY: the caller's.
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) })
    }

    /// Round eight lanes to f16 and back.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn round8h(v: __m256) -> __m256 {
        _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v))
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot(k: &[f16], q: &[f32]) -> f32 {
        let n = k.len().min(q.len());
        let np = n - n % STEP;
        // acc[j][h]: lanes 8h..8h+8 of the 16-lane accumulator j.
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        let (kp, qp) = (k.as_ptr() as *const u16, q.as_ptr());
        let mut i = 0;
        while i < np {
            for (j, a) in acc.iter_mut().enumerate() {
                for (h, ah) in a.iter_mut().enumerate() {
                    let off = i + j * LANES + 8 * h;
                    // SAFETY: off + 8 <= np <= n for both slices.
                    let (kv, qv) = unsafe { (load8h(kp.add(off)), _mm256_loadu_ps(qp.add(off))) };
                    *ah = _mm256_fmadd_ps(kv, qv, *ah);
                }
            }
            i += STEP;
        }
        let mut lanes = [0f32; LANES];
        for (h, half) in lanes.chunks_exact_mut(8).enumerate() {
            let v = _mm256_add_ps(
                _mm256_add_ps(acc[0][h], acc[2][h]),
                _mm256_add_ps(acc[1][h], acc[3][h]),
            );
            // SAFETY: `half` holds 8 floats.
            unsafe { _mm256_storeu_ps(half.as_mut_ptr(), v) };
        }
        tail(reduce16(&lanes), &k[np..n], &q[np..n])
    }

    /// # Safety
    /// As [`dot`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn mad(acc: &mut [f32], x: &[f16], w: f32) {
        let n = acc.len().min(x.len());
        let np = n - n % 8;
        let wv = _mm256_set1_ps(w);
        let (ap, xp) = (acc.as_mut_ptr(), x.as_ptr() as *const u16);
        let mut i = 0;
        while i < np {
            // SAFETY: i + 8 <= n for both slices.
            unsafe {
                let r = _mm256_fmadd_ps(load8h(xp.add(i)), wv, _mm256_loadu_ps(ap.add(i)));
                _mm256_storeu_ps(ap.add(i), round8h(r));
            }
            i += 8;
        }
        for (a, v) in acc[np..n].iter_mut().zip(&x[np..n]) {
            *a = f16::from_f32(v.to_f32().mul_add(w, *a)).to_f32();
        }
    }

    /// # Safety
    /// As [`dot`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn scale(acc: &mut [f32], s: f32) {
        let n = acc.len();
        let np = n - n % 8;
        let sv = _mm256_set1_ps(s);
        let ap = acc.as_mut_ptr();
        let mut i = 0;
        while i < np {
            // SAFETY: i + 8 <= n.
            unsafe {
                _mm256_storeu_ps(
                    ap.add(i),
                    round8h(_mm256_mul_ps(_mm256_loadu_ps(ap.add(i)), sv)),
                )
            };
            i += 8;
        }
        for a in acc[np..].iter_mut() {
            *a = f16::from_f32(*a * s).to_f32();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> (Vec<f16>, Vec<f32>) {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        };
        let k = (0..n).map(|_| f16::from_f32(next())).collect();
        let q = (0..n).map(|_| f16::from_f32(next()).to_f32()).collect();
        (k, q)
    }

    /// Four rows at once give each row the bits of its own `dot` (whole 64-value steps, a
    /// tail, a row shorter than a step).
    #[test]
    fn four_rows_at_once_give_each_row_its_own_bits() {
        for n in [256, 96, 100, 16, 7] {
            let (k, _) = data(n, 3 * n as u32);
            let qs: Vec<Vec<f32>> = (0..4).map(|r| data(n, 7 + r).1).collect();
            let q = [&qs[0][..], &qs[1][..], &qs[2][..], &qs[3][..]];
            let want = q.map(|r| dot(&k, r).to_bits());
            assert_eq!(dot_x4(&k, q).map(f32::to_bits), want, "dot n={n}");
        }
    }

    #[test]
    fn simd_and_portable_agree_bit_for_bit() {
        for n in [64, 70, 128, 256, 37] {
            let (k, q) = data(n, n as u32);
            assert_eq!(
                dot(&k, &q).to_bits(),
                dot_portable(&k, &q).to_bits(),
                "dot n={n}"
            );
            let mut a1: Vec<f32> = q.clone();
            let mut a2 = q.clone();
            mad(&mut a1, &k, 0.37);
            for (a, v) in a2.iter_mut().zip(&k) {
                *a = f16::from_f32(v.to_f32().mul_add(0.37, *a)).to_f32();
            }
            assert_eq!(a1, a2, "mad n={n}");
            let mut s1 = a1.clone();
            scale(&mut s1, 0.61);
            let s2: Vec<f32> = a1
                .iter()
                .map(|a| f16::from_f32(a * 0.61).to_f32())
                .collect();
            assert_eq!(s1, s2, "scale n={n}");
        }
    }

    /// The AVX2 versions wherever the CPU has AVX2 (`dot` etc. pick AVX-512 where present).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_and_portable_agree_bit_for_bit() {
        if !(is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        {
            eprintln!("skipping: no AVX2/FMA/F16C");
            return;
        }
        for n in [64, 70, 128, 256, 37, 7] {
            let (k, q) = data(n, 3 * n as u32);
            // SAFETY (all three): AVX2, FMA and F16C detected above.
            let d = unsafe { avx2::dot(&k, &q) };
            assert_eq!(d.to_bits(), dot_portable(&k, &q).to_bits(), "dot n={n}");
            let mut a1: Vec<f32> = q.clone();
            let mut a2 = q.clone();
            unsafe { avx2::mad(&mut a1, &k, -0.83) };
            for (a, v) in a2.iter_mut().zip(&k) {
                *a = f16::from_f32(v.to_f32().mul_add(-0.83, *a)).to_f32();
            }
            assert_eq!(a1, a2, "mad n={n}");
            let mut s1 = a1.clone();
            unsafe { avx2::scale(&mut s1, 1.7) };
            let s2: Vec<f32> = a1.iter().map(|a| f16::from_f32(a * 1.7).to_f32()).collect();
            assert_eq!(s1, s2, "scale n={n}");
        }
    }

    #[test]
    fn dot_is_close_to_exact() {
        let (k, q) = data(256, 7);
        let exact: f64 = k
            .iter()
            .zip(&q)
            .map(|(a, b)| a.to_f32() as f64 * *b as f64)
            .sum();
        assert!((dot(&k, &q) as f64 - exact).abs() < 1e-3);
    }
}
