//! How many of a [`crate::ThreadPool`]'s threads its ops should use while other processes
//! compete for the cores.
//!
//! A pool of `n` threads on an `n`-core machine where another process keeps a core busy has
//! more runnable threads than cores. The calling thread, which also runs everything between
//! the ops (attention, norms, sampling), then waits for a core again and again. Decode became
//! slower with two threads than with one: 53.7 against 58.3 tok/s on a 2-core Zen 4 with a
//! busy loop on one core. So the pool measures, over windows of ops, how much of the wall
//! time its calling thread spent runnable but not running (Linux's
//! `/proc/thread-self/schedstat`). Above [`MAX_RUNQUEUE_SHARE`] for [`LOADED_WINDOWS`] windows
//! in a row, it leaves one worker out of its ops. After [`HOLD_WINDOWS`] windows it tries one
//! more thread again; a try that meets the load again within [`PROBATION_WINDOWS`] windows
//! drops the thread at the first loaded window and doubles the hold (up to
//! [`MAX_HOLD_WINDOWS`]), so a load that stays costs ever rarer tries: with a fixed hold, each
//! try (two slow windows out of eighteen) kept decode at 0.82–0.89× the one-thread speed.
//! Where the measurement is not available, every thread takes part, as before. Ops size
//! their split into chunks by the threads in use (`ThreadPool::threads_now`): split for two
//! threads, the one left ran sixteen chunks of each matmul where it would run one (Gemma 3
//! 270M decode under a busy core, `-t 2` against `-t 1`: 0.96 → 0.98–1.01).

use std::time::Instant;

/// Ops per measuring window.
pub(crate) const WINDOW_OPS: u32 = 64;

/// Loaded windows in a row that take a thread out (one alone may be a burst elsewhere, such as
/// a page-cache flush).
pub(crate) const LOADED_WINDOWS: u32 = 2;

/// Windows a lowered thread count is kept before one more thread is tried (the first time).
pub(crate) const HOLD_WINDOWS: u32 = 16;

/// The longest hold, after tries that kept meeting the load (about 200 Gemma 3 270M tokens).
pub(crate) const MAX_HOLD_WINDOWS: u32 = 512;

/// Windows after a try in which one loaded window suffices to drop the thread again; a try
/// that gets through them unloaded resets the hold to [`HOLD_WINDOWS`].
pub(crate) const PROBATION_WINDOWS: u32 = 4;

/// The share of a window's wall time the calling thread may spend waiting for a core before
/// the pool uses one thread fewer. Unloaded, a 2-core VM measured under 2 %; with another
/// process keeping a core busy, 25–60 %.
pub(crate) const MAX_RUNQUEUE_SHARE: f64 = 0.2;

/// The pool's current thread count and the window being measured.
#[derive(Debug)]
pub(crate) struct ThreadLimit {
    n_threads: usize,
    limit: usize,
    ops: u32,
    hold: u32,
    /// The hold the next drop starts (doubled by each failed try).
    hold_len: u32,
    /// Windows left in which the last try counts as failed at the first loaded window.
    probation: u32,
    /// Loaded windows in a row so far.
    loaded: u32,
    /// When the window began, and the runqueue wait counter then.
    start: Option<(Instant, u64)>,
}

impl ThreadLimit {
    /// All `n_threads` in use.
    pub(crate) fn new(n_threads: usize) -> ThreadLimit {
        ThreadLimit {
            n_threads,
            limit: n_threads,
            ops: 0,
            hold: 0,
            hold_len: HOLD_WINDOWS,
            probation: 0,
            loaded: 0,
            start: None,
        }
    }

    /// Threads the next op may use (the caller included), 1..=n_threads.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Counts one op. At the end of a window, measures and returns the new limit when it
    /// changed.
    pub(crate) fn op_done(&mut self) -> Option<usize> {
        if self.n_threads == 1 {
            return None;
        }
        self.ops += 1;
        if self.ops < WINDOW_OPS {
            return None;
        }
        self.ops = 0;
        let now = runqueue_wait_ns().map(|w| (Instant::now(), w));
        let share = match (self.start, now) {
            (Some((t0, w0)), Some((t1, w1))) => {
                let wall = t1.duration_since(t0).as_nanos() as f64;
                (wall > 0.0).then(|| w1.saturating_sub(w0) as f64 / wall)
            }
            _ => None,
        };
        self.start = now;
        self.decide(share)
    }

    /// The decision at a window's end, from the share of it the caller spent waiting for a
    /// core (`None`: not measured).
    fn decide(&mut self, share: Option<f64>) -> Option<usize> {
        if share.is_some_and(|s| s > MAX_RUNQUEUE_SHARE) {
            self.loaded += 1;
        } else {
            self.loaded = 0;
        }
        let needed = if self.probation > 0 {
            1
        } else {
            LOADED_WINDOWS
        };
        if self.loaded >= needed && self.limit > 1 {
            if self.probation > 0 {
                // The try met the load again: wait twice as long before the next.
                self.hold_len = (2 * self.hold_len).min(MAX_HOLD_WINDOWS);
                self.probation = 0;
            }
            self.loaded = 0;
            self.limit -= 1;
            self.hold = self.hold_len;
            return Some(self.limit);
        }
        if self.probation > 0 {
            self.probation -= 1;
            if self.probation == 0 {
                // The try held: the load is gone.
                self.hold_len = HOLD_WINDOWS;
            }
        }
        if self.limit < self.n_threads {
            self.hold = self.hold.saturating_sub(1);
            if self.hold == 0 {
                self.limit += 1;
                self.hold = self.hold_len;
                self.probation = PROBATION_WINDOWS;
                return Some(self.limit);
            }
        }
        None
    }

    /// Sets the limit (tests).
    #[cfg(test)]
    pub(crate) fn force(&mut self, limit: usize) {
        self.limit = limit.clamp(1, self.n_threads);
        self.hold = u32::MAX;
    }
}

/// Nanoseconds the calling thread has spent runnable but waiting for a CPU: the second field
/// of `/proc/thread-self/schedstat`. `None` where that file is missing or unreadable.
fn runqueue_wait_ns() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use std::io::Read;
        let mut buf = [0u8; 96];
        let mut f = std::fs::File::open("/proc/thread-self/schedstat").ok()?;
        let n = f.read(&mut buf).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        text.split_ascii_whitespace().nth(1)?.parse().ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_for_a_core_drops_a_thread_at_a_time_and_they_come_back() {
        let mut l = ThreadLimit::new(3);
        // Unloaded, or unmeasured: nothing changes.
        assert_eq!(l.decide(Some(0.01)), None);
        assert_eq!(l.decide(None), None);
        assert_eq!(l.limit(), 3);
        // One loaded window alone changes nothing.
        assert_eq!(l.decide(Some(0.5)), None);
        assert_eq!(l.decide(Some(0.0)), None);
        // Loaded windows in a row: one thread fewer per LOADED_WINDOWS, down to the caller.
        assert_eq!(LOADED_WINDOWS, 2);
        assert_eq!(l.decide(Some(0.5)), None);
        assert_eq!(l.decide(Some(0.5)), Some(2));
        assert_eq!(l.decide(Some(0.5)), None);
        assert_eq!(l.decide(Some(0.5)), Some(1));
        // Held for HOLD_WINDOWS windows, then one more thread is tried.
        for _ in 1..HOLD_WINDOWS {
            assert_eq!(l.decide(Some(0.0)), None);
        }
        assert_eq!(l.decide(Some(0.0)), Some(2));
        // Still loaded: back down at the first loaded window, and the next try waits twice as
        // long.
        assert_eq!(l.decide(Some(0.5)), Some(1));
        for _ in 1..2 * HOLD_WINDOWS {
            assert_eq!(l.decide(Some(0.0)), None);
        }
        assert_eq!(l.decide(Some(0.0)), Some(2));
        // The load goes away: the try holds, the hold is reset, and the threads come back one
        // hold at a time.
        let mut limits = Vec::new();
        for _ in 0..3 * HOLD_WINDOWS {
            limits.extend(l.decide(Some(0.0)));
        }
        assert_eq!(limits, [3]);
        assert_eq!(l.limit(), 3);
    }

    #[test]
    fn a_load_that_stays_makes_tries_ever_rarer() {
        let mut l = ThreadLimit::new(2);
        assert_eq!(l.decide(Some(0.5)), None);
        assert_eq!(l.decide(Some(0.5)), Some(1));
        // Every try meets the load at once: the gaps between tries double up to the cap.
        let mut gaps = Vec::new();
        let mut since = 0;
        for _ in 0..4 * MAX_HOLD_WINDOWS {
            since += 1;
            let loaded = l.limit() == 2;
            if l.decide(Some(if loaded { 0.5 } else { 0.0 })) == Some(2) {
                gaps.push(since);
                since = 0;
            }
        }
        // (Each gap after the first: the try's one loaded window, then the hold.)
        assert_eq!((HOLD_WINDOWS, MAX_HOLD_WINDOWS), (16, 512));
        assert_eq!(gaps[..7], [16, 33, 65, 129, 257, 513, 513], "{gaps:?}");
    }

    #[test]
    fn the_first_window_only_takes_a_baseline() {
        if cfg!(target_os = "linux") && std::path::Path::new("/proc/thread-self/schedstat").exists()
        {
            assert!(runqueue_wait_ns().is_some());
        }
        // Without a window behind it there is nothing to compare, whatever the machine's load.
        let mut l = ThreadLimit::new(2);
        for _ in 0..WINDOW_OPS {
            assert_eq!(l.op_done(), None);
        }
        assert_eq!(l.limit(), 2);
    }
}
