//! The read loop that decode bandwidth is held against: summing a buffer far larger than any
//! cache, as fast as plain loads go (`nanorun bench --bandwidth`, the criterion probe).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::threads::ThreadPool;

/// The wrapping sum of `words`, read once on `pool` in chunks of 1 MiB handed out as threads
/// come (eight independent sums per thread, so the loads are never waiting on the adds).
pub fn sum_words(pool: &ThreadPool, words: &[u64]) -> u64 {
    let per = (1 << 20) / 8;
    let total = AtomicU64::new(0);
    pool.run(words.len().div_ceil(per), |c| {
        let part = &words[c * per..((c + 1) * per).min(words.len())];
        let mut acc = [0u64; 8];
        for w in part.chunks(8) {
            for (a, v) in acc.iter_mut().zip(w) {
                *a = a.wrapping_add(*v);
            }
        }
        let sum = acc.iter().fold(0u64, |s, v| s.wrapping_add(*v));
        total.fetch_add(sum, Ordering::Relaxed);
    });
    total.into_inner()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_every_word_once_on_any_thread_count() {
        let words: Vec<u64> = (0..(3 << 17) + 5).collect();
        let want = words.iter().fold(0u64, |s, v| s.wrapping_add(*v));
        for threads in [1, 2, 3] {
            let pool = crate::ThreadPool::new(threads);
            assert_eq!(super::sum_words(&pool, &words), want, "{threads} threads");
        }
    }
}
