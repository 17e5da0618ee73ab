//! The read-bandwidth probe of `nanorun bench --bandwidth`: how fast `threads` threads can
//! stream a buffer far larger than any cache, measured in the same minutes as the decode it
//! is compared with (decode on a CPU is bandwidth-bound, so "GB/s of weights ÷ this" says how
//! close it comes to the limit).

use std::time::Instant;

use nanorun::kernels::bandwidth::{sum_words, ReadBuffer};
use nanorun::kernels::ThreadPool;

/// Bytes streamed per pass: 512 MiB, beyond the last-level cache of the machines we target.
const PROBE_BYTES: usize = 512 << 20;

/// A buffer for [`Probe::read_gb_per_s`], in the kind of memory the repacked weights live in
/// (huge pages where the OS has them), written once so that its pages are real.
pub struct Probe {
    buf: ReadBuffer,
}

impl Probe {
    /// Allocates and touches the buffer; errors when the OS refuses the memory.
    pub fn new() -> Result<Probe, String> {
        let buf = ReadBuffer::new(PROBE_BYTES).map_err(|e| format!("--bandwidth: {e}"))?;
        Ok(Probe { buf })
    }

    /// The best of `passes` passes of summing the buffer on `pool`, in GB/s.
    pub fn read_gb_per_s(&self, pool: &ThreadPool, passes: usize) -> f64 {
        let mut best = 0.0f64;
        for _ in 0..passes.max(1) {
            let t0 = Instant::now();
            let words = self.buf.words();
            std::hint::black_box(sum_words(pool, words));
            let secs = t0.elapsed().as_secs_f64();
            best = best.max(std::mem::size_of_val(words) as f64 / secs / 1e9);
        }
        best
    }
}
