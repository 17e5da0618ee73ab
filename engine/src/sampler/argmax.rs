//! The index of the highest logit, for greedy sampling without penalties: once per sequence
//! per step over the whole vocabulary (262144 logits for Gemma 3, a mebibyte that the output
//! projection has just written, mostly out of this core's caches).

/// The index of the highest logit, ties to the lowest, NaN never chosen (0 when no logit is
/// above −∞): what the penalty-free greedy loop returns.
pub(super) fn argmax(logits: &[f32]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected.
        return unsafe { avx2::argmax(logits) };
    }
    argmax_portable(logits)
}

/// [`argmax`] in two passes the compiler vectorizes (a max over sixteen lanes, then the first
/// chunk and index holding it), where the loop's branch per logit cost about 1 ms per
/// 262144-entry vocabulary.
pub(super) fn argmax_portable(logits: &[f32]) -> u32 {
    const LANES: usize = 16;
    let max = super::max_of(logits);
    if max == f32::NEG_INFINITY {
        return 0;
    }
    // The first chunk holding the maximum (a compare per lane, no branch per logit), then its
    // first lane holding it.
    let chunk = logits
        .chunks(LANES)
        .position(|c| c.iter().fold(false, |hit, &l| hit | (l == max)))
        .unwrap_or(0);
    let at = logits[chunk * LANES..].iter().position(|&l| l == max);
    (chunk * LANES + at.unwrap_or(0)) as u32
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Logits per iteration: four registers of eight.
    const STEP: usize = 32;

    /// [`super::argmax`] in one pass (the two passes of the portable version read the logits
    /// one and a half times, from memory: 90–140 µs per sequence and step for Gemma 3 inside
    /// an eight-stream step): each of 32 lanes keeps its maximum and the first index holding
    /// it (a strictly greater logit replaces them, which NaN never is), then the lanes' best
    /// is the highest, ties to the lowest index.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn argmax(logits: &[f32]) -> u32 {
        let n = logits.len().min(i32::MAX as usize);
        let np = n - n % STEP;
        let p = logits.as_ptr();
        let mut best = [_mm256_set1_ps(f32::NEG_INFINITY); 4];
        let mut best_at = [_mm256_setzero_si256(); 4];
        let mut at: [__m256i; 4] = std::array::from_fn(|r| {
            let base = 8 * r as i32;
            _mm256_setr_epi32(
                base,
                base + 1,
                base + 2,
                base + 3,
                base + 4,
                base + 5,
                base + 6,
                base + 7,
            )
        });
        let step = _mm256_set1_epi32(STEP as i32);
        let mut i = 0;
        while i < np {
            for r in 0..4 {
                // SAFETY: i + 32 <= np <= n.
                let x = unsafe { _mm256_loadu_ps(p.add(i + 8 * r)) };
                let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(x, best[r]);
                best[r] = _mm256_blendv_ps(best[r], x, gt);
                best_at[r] = _mm256_blendv_epi8(best_at[r], at[r], _mm256_castps_si256(gt));
                at[r] = _mm256_add_epi32(at[r], step);
            }
            i += STEP;
        }
        let (mut values, mut indices) = ([0f32; STEP], [0i32; STEP]);
        for r in 0..4 {
            // SAFETY: eight floats and eight i32s at 8r of the 32.
            unsafe {
                _mm256_storeu_ps(values.as_mut_ptr().add(8 * r), best[r]);
                _mm256_storeu_si256(indices.as_mut_ptr().add(8 * r).cast(), best_at[r]);
            }
        }
        let (mut max, mut arg) = (f32::NEG_INFINITY, 0usize);
        for (&v, &a) in values.iter().zip(&indices) {
            if v > max || (v == max && (a as usize) < arg) {
                (max, arg) = (v, a as usize);
            }
        }
        // The rest come after every lane's indices: only a greater logit wins.
        for (j, &x) in logits.iter().enumerate().take(n).skip(np) {
            if x > max {
                (max, arg) = (x, j);
            }
        }
        if max == f32::NEG_INFINITY {
            0
        } else {
            arg as u32
        }
    }
}
