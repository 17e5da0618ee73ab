//! A persistent thread pool built for decode: many small parallel ops per token.
//!
//! - Workers live as long as the pool; an op allocates nothing.
//! - Work is split into chunks, and the chunks into one contiguous range per thread, each
//!   handed out in order by an atomic counter; a thread done with its own range takes chunks
//!   from the others' (see `claim`). So a worker that lost its core to another process simply
//!   takes fewer chunks — the op never waits for a sleeping worker to wake up unless that
//!   worker already holds a chunk — while a matmul's threads each stream one run of memory.
//! - Waiting spins briefly (`spin`, 50 µs by default) and then parks on a condition variable:
//!   never a long busy-spin (on a 2-core machine another process often holds a core).
//! - While other processes keep the calling thread waiting for a core, ops use fewer of the
//!   workers (see the `contention` module); the others park until they are let back in.
//!
//! The calling thread takes part in every op, so `ThreadPool::new(n)` starts `n − 1` workers.

use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::contention::ThreadLimit;

type JobFn = dyn Fn(usize) + Sync;

struct Job {
    f: *const JobFn,
    n_chunks: usize,
    /// Thread k's own range of chunks is `(k + rotation) % n_threads` (see [`claim`]).
    rotation: usize,
}

struct Shared {
    /// Bumped once per op (and at shutdown): what parked workers wait for.
    epoch: AtomicU64,
    /// The current op; written only while no worker can be inside an op (see `run`).
    job: UnsafeCell<Job>,
    /// True from publishing an op until its caller stops accepting helpers.
    open: AtomicBool,
    /// The next chunk of each range (see [`claim`]).
    next: Box<[AtomicUsize]>,
    done: AtomicUsize,
    /// Workers currently inside an op (between checking `open` and leaving).
    active: AtomicUsize,
    shutdown: AtomicBool,
    panicked: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
    finished: Condvar,
    sleepers: AtomicUsize,
    caller_sleeping: AtomicBool,
    spin: Duration,
    /// Threads ops may use (the caller included): workers numbered from this up stay out.
    limit: AtomicUsize,
}

// SAFETY: `job` is written only by the caller of `run` while `open` is false and no worker is
// active (the previous op waited for `active == 0` after closing), and read by workers only
// between `active += 1` + seeing `open` for the current epoch and `active -= 1`. The closure it
// points to is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// A fixed set of worker threads that run closures over chunk indices.
pub struct ThreadPool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    n_threads: usize,
    /// Held by the op in progress; decides how many threads ops use.
    run_lock: Mutex<ThreadLimit>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("n_threads", &self.n_threads)
            .finish()
    }
}

/// Spin until `ready()` or `budget` elapsed; true when ready.
#[inline]
fn spin_until(budget: Duration, ready: impl Fn() -> bool) -> bool {
    if ready() {
        return true;
    }
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
        if ready() {
            return true;
        }
        if start.elapsed() >= budget {
            return false;
        }
    }
}

impl ThreadPool {
    /// A pool running ops on `n_threads` threads in all (the caller plus `n_threads − 1`
    /// workers; 0 is treated as 1).
    ///
    /// # Panics
    /// When the operating system refuses to start a thread; [`ThreadPool::try_new`] returns
    /// that as an error instead (use it where the count comes from a user).
    pub fn new(n_threads: usize) -> ThreadPool {
        ThreadPool::try_new(n_threads, Duration::from_micros(50))
            .expect("starting thread-pool workers")
    }

    /// As [`ThreadPool::new`], with the time a waiting thread spins before it parks.
    ///
    /// # Panics
    /// As [`ThreadPool::new`].
    pub fn with_spin(n_threads: usize, spin: Duration) -> ThreadPool {
        ThreadPool::try_new(n_threads, spin).expect("starting thread-pool workers")
    }

    /// A pool of `n_threads` threads in all that spin `spin` before parking, or the operating
    /// system's error when it cannot start the workers (those already started are stopped).
    pub fn try_new(n_threads: usize, spin: Duration) -> std::io::Result<ThreadPool> {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: UnsafeCell::new(Job {
                f: std::ptr::null::<fn(usize)>() as *const JobFn,
                n_chunks: 0,
                rotation: 0,
            }),
            open: AtomicBool::new(false),
            next: (0..n_threads).map(|_| AtomicUsize::new(0)).collect(),
            done: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            finished: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            caller_sleeping: AtomicBool::new(false),
            spin,
            limit: AtomicUsize::new(n_threads),
        });
        // Dropping a partially built pool stops and joins the workers started so far.
        let mut pool = ThreadPool {
            shared,
            handles: Vec::new(),
            n_threads,
            run_lock: Mutex::new(ThreadLimit::new(n_threads)),
        };
        for i in 1..n_threads {
            let s = Arc::clone(&pool.shared);
            let handle = std::thread::Builder::new()
                .name(format!("nanorun-worker-{i}"))
                .spawn(move || worker(&s, i))?;
            pool.handles.push(handle);
        }
        Ok(pool)
    }

    /// Threads the pool runs ops on (workers plus the caller); while other processes keep it
    /// waiting for cores, an op may use fewer (see the module doc).
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Threads the next op will run on: [`ThreadPool::n_threads`], or fewer while the pool
    /// leaves threads out because other processes keep their cores busy. What an op's split
    /// into chunks should be sized by (a split for threads that sit out only adds per-chunk
    /// costs to the one that does the work); results must not depend on it.
    pub fn threads_now(&self) -> usize {
        self.shared.limit.load(SeqCst).clamp(1, self.n_threads)
    }

    /// Run `f(i)` for every `i` in `0..n_chunks`, spread over the pool's threads; returns when
    /// all have run. Each index runs exactly once. A panic in `f` is re-raised here after every
    /// thread has left the op.
    ///
    /// Called from inside an op (from `f`, on any pool's thread), it runs `f` over the chunks
    /// serially on the calling thread instead of deadlocking.
    pub fn run<F: Fn(usize) + Sync>(&self, n_chunks: usize, f: F) {
        if self.n_threads == 1 || n_chunks <= 1 || IN_OP.with(Cell::get) {
            (0..n_chunks).for_each(f);
            return;
        }
        let mut limit = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let _in_op = InOp::enter();
        if limit.limit() == 1 {
            (0..n_chunks).for_each(f);
            self.op_done(&mut limit);
            return;
        }
        let s = &*self.shared;
        let f_ref: &(dyn Fn(usize) + Sync + '_) = &f;
        // SAFETY: erasing the closure's lifetime is sound because this function does not return
        // (nor unwind, see `Close`) before every worker has left the op (`active == 0` after
        // `open` is cleared), and workers touch the job only inside an op.
        let f_ptr: *const JobFn =
            unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static JobFn>(f_ref) };
        // SAFETY: no worker is inside an op (the previous `run` waited for that), so nobody
        // reads `job` while we write it.
        let rotation = (unsafe { &*s.job.get() }.rotation + 1) % self.n_threads;
        // SAFETY: as above.
        unsafe {
            *s.job.get() = Job {
                f: f_ptr,
                n_chunks,
                rotation,
            }
        };
        for (r, next) in s.next.iter().enumerate() {
            next.store(range(r, self.n_threads, n_chunks).start, SeqCst);
        }
        s.done.store(0, SeqCst);
        s.open.store(true, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let close = Close(s);
        // SAFETY: written above by this thread; workers only read it.
        let job = unsafe { &*s.job.get() };
        while let Some(i) = claim(s, 0, job) {
            f(i);
            s.done.fetch_add(1, SeqCst);
        }
        wait_caller(s, || s.done.load(SeqCst) >= n_chunks);
        drop(close);
        self.op_done(&mut limit);
        if s.panicked.swap(false, SeqCst) {
            resume_unwind(Box::new("a thread-pool worker panicked"));
        }
    }

    /// Counts an op; when the thread limit changes, publishes it (between ops: no worker is
    /// inside one) and wakes the workers it lets back in.
    fn op_done(&self, limit: &mut ThreadLimit) {
        let Some(new) = limit.op_done() else {
            return;
        };
        self.publish_limit(new);
    }

    fn publish_limit(&self, new: usize) {
        let s = &*self.shared;
        if s.limit.swap(new, SeqCst) < new {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
    }

    /// Uses at most `n` threads from the next op on, until the pool's own measurements change
    /// it (tests).
    #[cfg(test)]
    fn force_limit(&self, n: usize) {
        let mut limit = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        limit.force(n);
        self.publish_limit(limit.limit());
    }
}

thread_local! {
    /// Whether this thread is running a pool op's chunks (a worker always is).
    static IN_OP: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as inside an op until dropped.
struct InOp;

impl InOp {
    fn enter() -> InOp {
        IN_OP.with(|c| c.set(true));
        InOp
    }
}

impl Drop for InOp {
    fn drop(&mut self) {
        IN_OP.with(|c| c.set(false));
    }
}

/// Closes the current op and waits until no worker is inside it (also when unwinding).
struct Close<'a>(&'a Shared);

impl Drop for Close<'_> {
    fn drop(&mut self) {
        let s = self.0;
        s.open.store(false, SeqCst);
        wait_caller(s, || s.active.load(SeqCst) == 0);
    }
}

fn wait_caller(s: &Shared, ready: impl Fn() -> bool) {
    if spin_until(s.spin, &ready) {
        return;
    }
    let mut g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
    s.caller_sleeping.store(true, SeqCst);
    while !ready() {
        g = s.finished.wait(g).unwrap_or_else(|e| e.into_inner());
    }
    s.caller_sleeping.store(false, SeqCst);
}

fn notify_caller(s: &Shared) {
    if s.caller_sleeping.load(SeqCst) {
        let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
        s.finished.notify_all();
    }
}

/// Chunks `range(r, n, n_chunks)` of an op form thread range r of n: contiguous, in order.
fn range(r: usize, n: usize, n_chunks: usize) -> std::ops::Range<usize> {
    r * n_chunks / n..(r + 1) * n_chunks / n
}

/// The next chunk for thread `k` of the current op, if any is left: first from its own range,
/// in order, then from the others' (a thread that lost its core leaves its range to them). A
/// matmul's chunks lie in memory in chunk order, so each thread streams one run of memory per
/// op instead of a new run per chunk, and the ranges rotate by one per op so that the thread
/// that read the end of one op's memory starts the next op where it left off (the next matrix
/// follows in the weight arena).
fn claim(s: &Shared, k: usize, job: &Job) -> Option<usize> {
    let n = s.next.len();
    (0..n).find_map(|step| {
        let r = (k + job.rotation + step) % n;
        let i = s.next[r].fetch_add(1, SeqCst);
        (i < range(r, n, job.n_chunks).end).then_some(i)
    })
}

/// Worker number `index` (1..n_threads; the caller is 0).
fn worker(s: &Shared, index: usize) {
    IN_OP.with(|c| c.set(true));
    let mut seen = 0u64;
    loop {
        if !spin_until(s.spin, || s.epoch.load(SeqCst) != seen) {
            let mut g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, SeqCst);
            while s.epoch.load(SeqCst) == seen {
                g = s.wake.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            s.sleepers.fetch_sub(1, SeqCst);
        }
        seen = s.epoch.load(SeqCst);
        if s.shutdown.load(SeqCst) {
            return;
        }
        if index >= s.limit.load(SeqCst) {
            // Left out of ops: park without counting as a sleeper (ops do not wake it) until
            // the limit lets it back in or the pool shuts down, then wait for the next op.
            let mut g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            while index >= s.limit.load(SeqCst) && !s.shutdown.load(SeqCst) {
                g = s.wake.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            drop(g);
            if s.shutdown.load(SeqCst) {
                return;
            }
            seen = s.epoch.load(SeqCst);
            continue;
        }
        s.active.fetch_add(1, SeqCst);
        if s.open.load(SeqCst) && s.epoch.load(SeqCst) == seen {
            // SAFETY: the op is open and ours (same epoch) and we are counted in `active`, so
            // the caller is still inside `run` and the closure is alive (see `Shared`).
            let job = unsafe { &*s.job.get() };
            let f = unsafe { &*job.f };
            while let Some(i) = claim(s, index, job) {
                if catch_unwind(AssertUnwindSafe(|| f(i))).is_err() {
                    s.panicked.store(true, SeqCst);
                }
                s.done.fetch_add(1, SeqCst);
            }
        }
        s.active.fetch_sub(1, SeqCst);
        notify_caller(s);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, SeqCst);
        {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.epoch.fetch_add(1, SeqCst);
            s.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_chunk_runs_exactly_once() {
        for n_threads in [1, 2, 3, 5] {
            let pool = ThreadPool::new(n_threads);
            for n_chunks in [0, 1, 2, 7, 64, 1000] {
                let hits: Vec<AtomicU32> = (0..n_chunks).map(|_| AtomicU32::new(0)).collect();
                pool.run(n_chunks, |i| {
                    hits[i].fetch_add(1, Relaxed);
                });
                assert!(
                    hits.iter().all(|h| h.load(Relaxed) == 1),
                    "{n_threads} threads, {n_chunks} chunks"
                );
            }
        }
    }

    /// The threads' ranges cut an op's chunks into contiguous runs, in order, that cover each
    /// chunk once; and one thread alone claims every chunk once, its own range first.
    #[test]
    fn ranges_cover_the_chunks_in_order() {
        for n in 1..6 {
            for n_chunks in 0..40 {
                let mut next = 0;
                for r in 0..n {
                    let run = range(r, n, n_chunks);
                    assert_eq!(run.start, next, "{n} ranges, {n_chunks} chunks");
                    next = run.end;
                }
                assert_eq!(next, n_chunks);
            }
        }
        let pool = ThreadPool::new(3);
        let s = &*pool.shared;
        let job = Job {
            f: std::ptr::null::<fn(usize)>() as *const JobFn,
            n_chunks: 10,
            rotation: 2,
        };
        for (r, next) in s.next.iter().enumerate() {
            next.store(range(r, 3, 10).start, SeqCst);
        }
        // Thread 1 owns range (1 + 2) % 3 = 0, then takes ranges 1 and 2.
        let order: Vec<usize> = std::iter::from_fn(|| claim(s, 1, &job)).collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn many_small_ops_back_to_back_and_after_parking() {
        let pool = ThreadPool::with_spin(3, Duration::from_micros(1));
        let total = AtomicUsize::new(0);
        for round in 0..2000 {
            pool.run(4, |i| {
                total.fetch_add(i + 1, Relaxed);
            });
            if round % 500 == 0 {
                std::thread::sleep(Duration::from_millis(2)); // let the workers park
            }
        }
        assert_eq!(total.load(Relaxed), 2000 * 10);
    }

    #[test]
    fn a_nested_run_runs_inline_instead_of_deadlocking() {
        let pool = ThreadPool::new(2);
        let count = AtomicUsize::new(0);
        pool.run(8, |_| {
            pool.run(4, |_| {
                count.fetch_add(1, Relaxed);
            });
        });
        assert_eq!(count.load(Relaxed), 32);
        // And the pool is still parallel afterwards.
        pool.run(8, |_| {
            count.fetch_add(1, Relaxed);
        });
        assert_eq!(count.load(Relaxed), 40);
    }

    #[test]
    fn workers_left_out_of_ops_park_and_come_back() {
        let pool = ThreadPool::new(3);
        let caller = std::thread::current().id();
        // Chunks that take long enough for every thread to take some when it may.
        let run = |n_chunks: usize| {
            let hits: Vec<AtomicU32> = (0..n_chunks).map(|_| AtomicU32::new(0)).collect();
            let on_workers = AtomicUsize::new(0);
            pool.run(n_chunks, |i| {
                std::thread::sleep(Duration::from_millis(1));
                hits[i].fetch_add(1, Relaxed);
                if std::thread::current().id() != caller {
                    on_workers.fetch_add(1, Relaxed);
                }
            });
            assert!(hits.iter().all(|h| h.load(Relaxed) == 1));
            on_workers.into_inner()
        };
        pool.force_limit(1);
        assert_eq!((pool.threads_now(), pool.n_threads()), (1, 3));
        for _ in 0..3 {
            assert_eq!(run(8), 0, "the caller alone");
        }
        pool.force_limit(2);
        assert_eq!(pool.threads_now(), 2);
        run(8);
        pool.force_limit(3);
        assert_eq!(pool.threads_now(), 3);
        assert!(run(16) > 0, "the workers are back");
        // Dropping the pool stops parked and left-out workers alike.
        pool.force_limit(1);
        run(4);
        drop(pool);
    }

    #[test]
    fn a_panic_in_a_chunk_reaches_the_caller_and_the_pool_survives() {
        let pool = ThreadPool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(16, |i| assert!(i != 5, "chunk 5"))
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(16, |_| {
            count.fetch_add(1, Relaxed);
        });
        assert_eq!(count.load(Relaxed), 16);
    }
}
