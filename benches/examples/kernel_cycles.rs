//! Runs one kernel in a loop and reports weight bytes per second of *on-CPU* time (from
//! `/proc/self/schedstat`), which other processes sharing the machine disturb far less than
//! criterion's wall-clock times (this VM has no performance counters for `perf stat`):
//!
//! `cargo run --release -p nanorun-benches --example kernel_cycles -- TYPE ISA REPS [THREADS [TOKENS [ROWS COLS [LAYOUT [COPIES]]]]]`
//! e.g. `-- Q4_K avx2 300` (bytes count each token's pass over the weights). With THREADS > 1
//! only the wall-clock figure means anything. The matrix is placed in a huge-page arena,
//! repacked into the layout the ISA prefers (for one token: its output-projection layout), as
//! the engine does at load; with LAYOUT `output` into the output-projection layout whatever the
//! token count (`Kernels::output_layout`: Q8_0 on AVX-512), with `rows` it stays row-major in
//! an ordinary allocation. With COPIES > 1 the matrix is placed that many times, one after
//! another as a model's matrices lie in its arena, and the ops take them in turn: with enough
//! copies to overflow the caches, each op reads its weights from memory, as a decode step's
//! small layer matrices do (e.g. `-- Q5_0 avx512 3000 2 1 2048 640 interleaved 64`).
//! `--invariant` anywhere runs the batch-invariant kernels a server's batches take
//! (`MatmulScratch::set_batch_invariant`) instead of llama.cpp's orders.

use nanorun_benches::{matrix, values};
use nanorun_kernels::{matmul, GgmlType, Isa, Kernels, MatmulScratch, QMatrix, ThreadPool};

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let invariant = args.iter().any(|a| a == "--invariant");
    args.retain(|a| a != "--invariant");
    let ty = GgmlType::from_name(args.get(1).map_or("Q4_K", |s| s)).expect("type name");
    let isa = Isa::parse(args.get(2).map_or("avx2", |s| s)).expect("isa");
    let reps: usize = args.get(3).map_or(100, |s| s.parse().expect("reps"));
    let threads: usize = args.get(4).map_or(1, |s| s.parse().expect("threads"));
    let n_tokens: usize = args.get(5).map_or(1, |s| s.parse().expect("tokens"));
    let rows: usize = args.get(6).map_or(2048, |s| s.parse().expect("rows"));
    let cols: usize = args.get(7).map_or(2048, |s| s.parse().expect("cols"));
    let k = Kernels::for_isa(isa).expect("isa available");
    let (words, len) = matrix(ty, rows, cols);
    let w = QMatrix::new(
        &bytemuck::cast_slice::<u64, u8>(&words)[..len],
        ty,
        rows,
        cols,
    )
    .expect("matrix");
    let copies: usize = args.get(9).map_or(1, |s| s.parse().expect("copies"));
    let placed = match args.get(8).map(String::as_str) {
        Some("rows") => (0..copies).map(|_| None).collect(),
        _ => k
            .repack_all(
                &vec![w; copies],
                1,
                true,
                |_| n_tokens == 1 || args.get(8).is_some_and(|l| l == "output"),
                |_, _| (),
            )
            .expect("repack"),
    };
    let ws: Vec<QMatrix<'_>> = placed
        .iter()
        .map(|p| p.as_ref().map_or(w, |r| r.matrix()))
        .collect();
    let w = ws[0];
    let x = values(1, cols * n_tokens);
    let pool = ThreadPool::new(threads);
    let mut scratch = MatmulScratch::new();
    scratch.set_batch_invariant(invariant);
    let mut out = vec![0.0f32; rows * n_tokens];
    matmul(k, &pool, &w, &x, n_tokens, &mut out, &mut scratch).expect("warm-up");
    let (cpu0, wall0) = (on_cpu_ns(), std::time::Instant::now());
    for rep in 0..reps {
        let w = &ws[rep % copies];
        matmul(k, &pool, w, &x, n_tokens, &mut out, &mut scratch).expect("matmul");
    }
    let cpu = (on_cpu_ns() - cpu0) as f64 / 1e9;
    let wall = wall0.elapsed().as_secs_f64();
    let bytes = (len * reps * n_tokens) as f64;
    println!(
        "{ty:>5} {isa:>6} {:?}{} t{threads} x{n_tokens}: {:6.2} GB/s per CPU-second of the calling thread, \
         {:6.2} GB/s wall ({:.1} µs per op), checksum {}",
        w.layout,
        if invariant { " invariant" } else { "" },
        bytes / cpu / 1e9,
        bytes / wall / 1e9,
        wall / reps as f64 * 1e6,
        out.iter().sum::<f32>()
    );
}

/// Nanoseconds this thread has spent on a CPU.
fn on_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .expect("/proc/thread-self/schedstat")
}
