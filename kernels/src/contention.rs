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
//! more thread again. Where the measurement is not available, every thread takes part, as
//! before.

use std::time::Instant;

/// Ops per measuring window.
pub(crate) const WINDOW_OPS: u32 = 64;

/// Loaded windows in a row that take a thread out (one alone may be a burst elsewhere, such as
/// a page-cache flush).
pub(crate) const LOADED_WINDOWS: u32 = 2;

/// Windows a lowered thread count is kept before one more thread is tried.
pub(crate) const HOLD_WINDOWS: u32 = 16;

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
        if self.loaded >= LOADED_WINDOWS && self.limit > 1 {
            self.loaded = 0;
            self.limit -= 1;
            self.hold = HOLD_WINDOWS;
            return Some(self.limit);
        }
        if self.limit < self.n_threads {
            self.hold = self.hold.saturating_sub(1);
            if self.hold == 0 {
                self.limit += 1;
                self.hold = HOLD_WINDOWS;
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
        // Still loaded: back down.
        assert_eq!(l.decide(Some(0.5)), None);
        assert_eq!(l.decide(Some(0.5)), Some(1));
        // The load goes away: the threads come back one hold at a time.
        let mut limits = Vec::new();
        for _ in 0..3 * HOLD_WINDOWS {
            limits.extend(l.decide(Some(0.0)));
        }
        assert_eq!(limits, [2, 3]);
        assert_eq!(l.limit(), 3);
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
