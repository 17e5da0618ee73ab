//! The matmuls of one Gemma-3-270M-shaped decode step, in the engine's order, from one weight
//! arena laid out as the engine lays it out (the 262144 × 640 Q8_0 output projection first,
//! then each of the 18 layers' Q, K, V (Q5_0), O (Q4_K), gate and up (Q5_0) and down (Q4_K)),
//! with the same pool ops (Q+K+V and gate+up as one `matmul_many` each). The weights are
//! random; the point is the memory traffic of a real step (every op reads its matrix from
//! memory, right after the one before it in the arena) without the engine's other work, which
//! `GAP_US` of busy waiting on the calling thread between ops stands in for:
//!
//! `cargo run --release -p nanorun-benches --example step_mix -- [THREADS [GAP_US [STEPS]]]`
//!
//! Prints µs per call of each kind of op (the mean over the steps after the first) and of the
//! output projection. First use (2-core Zen 4): the layers' small ops ran about as fast on two
//! threads as on one (gate+up 62–70 against 74–81 µs), as inside `nanorun bench --profile`.

use std::time::Instant;

use nanorun_benches::{matrix, values};
use nanorun_kernels::{
    matmul, matmul_many, GgmlType, Isa, Kernels, MatmulScratch, QMatrix, ThreadPool,
};

/// Layers of Gemma 3 270M.
const LAYERS: usize = 18;

/// One layer's matrices in arena order: type, rows, columns.
const LAYER: [(GgmlType, usize, usize); 7] = [
    (GgmlType::Q5_0, 1024, 640), // Q
    (GgmlType::Q5_0, 256, 640),  // K
    (GgmlType::Q5_0, 256, 640),  // V
    (GgmlType::Q4_K, 640, 1024), // O
    (GgmlType::Q5_0, 2048, 640), // gate
    (GgmlType::Q5_0, 2048, 640), // up
    (GgmlType::Q4_K, 640, 2048), // down
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| {
        args.get(i)
            .map_or(default, |s| s.parse().expect("a number"))
    };
    let (threads, gap_us, steps) = (arg(1, 2), arg(2, 0) as u64, arg(3, 30).max(2));
    let k = Kernels::for_isa(Isa::best()).expect("the best ISA is available");
    let shapes: Vec<_> = std::iter::once((GgmlType::Q8_0, 262_144, 640))
        .chain((0..LAYERS).flat_map(|_| LAYER))
        .collect();
    let data: Vec<_> = shapes.iter().map(|&(t, r, c)| matrix(t, r, c)).collect();
    let plain: Vec<QMatrix<'_>> = shapes
        .iter()
        .zip(&data)
        .map(|(&(t, r, c), (words, len))| {
            QMatrix::new(&bytemuck::cast_slice::<u64, u8>(words)[..*len], t, r, c).expect("matrix")
        })
        .collect();
    let placed = k
        .repack_all(&plain, 2, true, |i| i == 0, |_, _| ())
        .expect("arena");
    let ms: Vec<QMatrix<'_>> = placed
        .iter()
        .map(|p| p.as_ref().expect("every matrix is placed").matrix())
        .collect();
    let pool = ThreadPool::new(threads);
    let mut s = MatmulScratch::new();
    let (x640, x1024, x2048) = (values(1, 640), values(2, 1024), values(3, 2048));
    let mut logits = vec![0f32; 262_144];
    let [mut q, mut kk, mut v, mut o, mut g, mut u, mut d] =
        LAYER.map(|(_, rows, _)| vec![0f32; rows]);
    let gap = || {
        let t = Instant::now();
        while t.elapsed().as_micros() < u128::from(gap_us) {
            std::hint::spin_loop();
        }
    };
    // Seconds in Q+K+V, O, gate+up, down and the output projection, over the steps after the
    // first.
    let mut total = [0f64; 5];
    for step in 0..steps {
        let mut t = [0f64; 5];
        let mut timed = |i: usize, op: &mut dyn FnMut()| {
            let t0 = Instant::now();
            op();
            t[i] += t0.elapsed().as_secs_f64();
            gap();
        };
        for l in 0..LAYERS {
            let m = &ms[1 + LAYER.len() * l..][..LAYER.len()];
            timed(0, &mut || {
                let parts = [(m[0], &mut q[..]), (m[1], &mut kk[..]), (m[2], &mut v[..])];
                matmul_many(k, &pool, parts, &x640, 1, &mut s).expect("Q+K+V");
            });
            timed(1, &mut || {
                matmul(k, &pool, &m[3], &x1024, 1, &mut o, &mut s).expect("O")
            });
            timed(2, &mut || {
                let parts = [(m[4], &mut g[..]), (m[5], &mut u[..])];
                matmul_many(k, &pool, parts, &x640, 1, &mut s).expect("gate+up");
            });
            timed(3, &mut || {
                matmul(k, &pool, &m[6], &x2048, 1, &mut d, &mut s).expect("down")
            });
        }
        timed(4, &mut || {
            matmul(k, &pool, &ms[0], &x640, 1, &mut logits, &mut s).expect("output")
        });
        if step > 0 {
            total.iter_mut().zip(t).for_each(|(a, b)| *a += b);
        }
    }
    let per_call = |i: usize, calls: usize| total[i] / ((steps - 1) * calls) as f64 * 1e6;
    println!(
        "{} t{threads} gap {gap_us} µs: Q+K+V {:.1} µs, O {:.1}, gate+up {:.1}, down {:.1} per \
         call; output projection {:.0} µs",
        k.isa(),
        per_call(0, LAYERS),
        per_call(1, LAYERS),
        per_call(2, LAYERS),
        per_call(3, LAYERS),
        per_call(4, 1),
    );
}
