//! The read loop that decode bandwidth is held against: summing a buffer far larger than any
//! cache, as fast as plain loads go (`nanorun bench --bandwidth`, the criterion probe).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::arena::{ArenaBuilder, WeightArena};
use crate::error::Result;
use crate::threads::ThreadPool;

/// A buffer to read in the kind of memory the weights live in (an [`crate::arena`], so huge
/// pages where the OS has them): the probe then measures what decode could reach.
pub struct ReadBuffer {
    arena: WeightArena,
}

impl ReadBuffer {
    /// `bytes` (rounded down to whole words) written once, so that every page is real.
    pub fn new(bytes: usize) -> Result<ReadBuffer> {
        let mut b = ArenaBuilder::new(&[bytes / 8 * 8])?;
        for span in b.spans_mut() {
            for (i, w) in span.chunks_exact_mut(8).enumerate() {
                w.copy_from_slice(&(i as u64).to_le_bytes());
            }
        }
        Ok(ReadBuffer { arena: b.finish()? })
    }

    /// The buffer as words, for [`sum_words`].
    pub fn words(&self) -> &[u64] {
        // Spans are 64-byte aligned and this one is whole words long.
        bytemuck::cast_slice(self.arena.span(0))
    }
}

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
    fn a_read_buffer_holds_its_word_indices() {
        let b = super::ReadBuffer::new((3 << 20) + 13).unwrap();
        assert_eq!(b.words().len(), ((3 << 20) + 13) / 8);
        assert!(b.words().iter().enumerate().all(|(i, &w)| w == i as u64));
    }

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
