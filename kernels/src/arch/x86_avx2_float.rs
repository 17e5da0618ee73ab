//! x86-64 AVX2 dot products of float rows (F32, F16, BF16 weights with F32 activations).
//!
//! Same safety contract as `x86_avx2`: every `#[target_feature]` function here runs only through
//! the table `x86_avx2::install` fills, handed out after AVX2, FMA and F16C were detected.

use std::arch::x86_64::*;

use half::f16;

use super::x86_avx2::hsum_ps;

/// F32 · F32.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_f32(w: &[f32], a: &[f32]) -> f32 {
    let n = w.len().min(a.len());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, ak) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8k + 8 <= n for both slices.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(w.as_ptr().add(i + 8 * k)),
                    _mm256_loadu_ps(a.as_ptr().add(i + 8 * k)),
                )
            };
            *ak = _mm256_fmadd_ps(x, y, *ak);
        }
        i += 32;
    }
    let mut sum = hsum_ps(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    for j in i..n {
        sum += w[j] * a[j];
    }
    sum
}

/// Eight f16 or bf16 weights from `p[i..i + 8]` as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load8_half<const BF16: bool>(p: &[u16], i: usize) -> __m256 {
    assert!(i + 8 <= p.len());
    // SAFETY: 8 u16 readable at i (checked).
    let h = unsafe { _mm_loadu_si128(p.as_ptr().add(i).cast()) };
    if BF16 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    } else {
        _mm256_cvtph_ps(h)
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_half<const BF16: bool>(w: &[u16], a: &[f32]) -> f32 {
    let n = w.len().min(a.len());
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut i = 0;
    while i + 16 <= n {
        for (k, ak) in acc.iter_mut().enumerate() {
            let x = load8_half::<BF16>(w, i + 8 * k);
            // SAFETY: i + 8k + 8 <= n.
            let y = unsafe { _mm256_loadu_ps(a.as_ptr().add(i + 8 * k)) };
            *ak = _mm256_fmadd_ps(x, y, *ak);
        }
        i += 16;
    }
    let mut sum = hsum_ps(_mm256_add_ps(acc[0], acc[1]));
    for j in i..n {
        let x = if BF16 {
            f32::from_bits((w[j] as u32) << 16)
        } else {
            f16::from_bits(w[j]).to_f32()
        };
        sum += x * a[j];
    }
    sum
}

/// F16 · F32.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_f16(w: &[u16], a: &[f32]) -> f32 {
    dot_half::<false>(w, a)
}

/// BF16 · F32.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn vec_dot_bf16(w: &[u16], a: &[f32]) -> f32 {
    dot_half::<true>(w, a)
}
