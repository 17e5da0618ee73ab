//! The matmuls of one Gemma 3 270M (Q4_K_M) decode step, with the real shapes and tensor types
//! (random weights): how fast the kernels alone could decode, per ISA and thread count.
//! Everything else a forward pass does (norms, attention, RoPE) is not included.
//!
//! `cargo run --release -p nanorun-benches --example gemma3_270m_matmuls -- [ISA] [THREADS] [STEPS [LAYOUT [BATCH]]]`
//!
//! The matrices are repacked into the layouts the ISA prefers, as the engine does at load,
//! unless LAYOUT is `rows`; BATCH tokens go through each matmul (default 1: decode).

use nanorun_benches::{matrix, values};
use nanorun_kernels::{matmul, GgmlType, Isa, Kernels, MatmulScratch, QMatrix, ThreadPool};

/// (type, rows, cols, count) per decode step; llama.cpp's Q4_K_M mix for this model (ne0 = 640
/// is not a multiple of 256, so most K-quant tensors fall back to Q5_0 / Q8_0).
const SHAPES: [(GgmlType, usize, usize, usize); 8] = [
    (GgmlType::Q5_0, 1024, 640, 18),   // attn_q
    (GgmlType::Q5_0, 256, 640, 27),    // attn_k ×18, attn_v ×9
    (GgmlType::Q8_0, 256, 640, 9),     // attn_v
    (GgmlType::Q4_K, 640, 1024, 18),   // attn_output
    (GgmlType::Q5_0, 2048, 640, 36),   // ffn_gate, ffn_up
    (GgmlType::Q6_K, 640, 2048, 9),    // ffn_down
    (GgmlType::Q4_K, 640, 2048, 9),    // ffn_down
    (GgmlType::Q8_0, 262_144, 640, 1), // output (tied token_embd)
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let isa = args
        .get(1)
        .map_or(Ok(Isa::best()), |s| Isa::parse(s))
        .expect("isa");
    let threads: usize = args.get(2).map_or(1, |s| s.parse().expect("threads"));
    let tokens: usize = args.get(3).map_or(20, |s| s.parse().expect("steps"));
    let repack = args.get(4).is_none_or(|s| s != "rows");
    let batch: usize = args.get(5).map_or(1, |s| s.parse().expect("batch"));
    let k = Kernels::for_isa(isa).expect("isa available");
    // One distinct matrix per tensor, so the memory traffic is the model's (~250 MB).
    let mats: Vec<_> = SHAPES
        .iter()
        .flat_map(|&(ty, rows, cols, count)| (0..count).map(move |_| (ty, rows, cols)))
        .map(|(ty, rows, cols)| {
            let (words, len) = matrix(ty, rows, cols);
            let bytes = &bytemuck::cast_slice::<u64, u8>(&words)[..len];
            let plain = QMatrix::new(bytes, ty, rows, cols).expect("matrix");
            let packed = k.repack(&plain).expect("repack").filter(|_| repack);
            (words, packed, ty, rows, cols, len)
        })
        .collect();
    let total: usize = mats.iter().map(|m| m.5).sum();
    let pool = ThreadPool::new(threads);
    let mut scratch = MatmulScratch::new();
    let x = values(3, 2048 * batch);
    let mut out = vec![0.0f32; 262_144 * batch];
    let step = |scratch: &mut MatmulScratch, out: &mut [f32]| {
        for (words, packed, ty, rows, cols, len) in &mats {
            let bytes = &bytemuck::cast_slice::<u64, u8>(words)[..*len];
            let w = match packed {
                Some(p) => p.matrix(),
                None => QMatrix::new(bytes, *ty, *rows, *cols).expect("matrix"),
            };
            let (x, out) = (&x[..cols * batch], &mut out[..rows * batch]);
            matmul(k, &pool, &w, x, batch, out, scratch).expect("matmul");
        }
    };
    step(&mut scratch, &mut out);
    let (cpu0, wall0) = (on_cpu_ns(), std::time::Instant::now());
    for _ in 0..tokens {
        step(&mut scratch, &mut out);
    }
    let wall = wall0.elapsed().as_secs_f64() / tokens as f64;
    let cpu = (on_cpu_ns() - cpu0) as f64 / 1e9 / tokens as f64;
    println!(
        "{isa} t{threads} x{batch} {}: {:.2} ms per decode step of matmuls, wall ({:.0} MB of weights, {:.1} GB/s, \
         ceiling {:.0} tok/s); calling thread on a CPU {:.2} ms",
        if repack { "repacked" } else { "row-major" },
        wall * 1e3,
        total as f64 / 1e6,
        total as f64 / wall / 1e9,
        1.0 / wall,
        cpu * 1e3
    );
}

/// Nanoseconds this thread has spent on a CPU.
fn on_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .expect("/proc/thread-self/schedstat")
}
