//! Kernel microbenchmarks, reporting weight bytes per second: vec_dot of one 8192-value row and
//! matmul per type × ISA × threads on 2048 × 2048 and 8192 × 2048 matrices, a batch of 8
//! tokens for the hot types (four-token kernels), the activation quantizers, and a
//! read-bandwidth probe to hold the numbers against.
//!
//! `cargo bench -p nanorun-benches -- --quick [filter]`; `NANORUN_ISA=avx2` limits the ISAs.
//! This machine's L3 is large (hundreds of MiB), so these matrices are cache-resident: compare
//! with the probe, which reads 1 GiB.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nanorun_benches::{isas, matrix, values};
use nanorun_kernels::{matmul, GgmlType, MatmulScratch, QMatrix, ThreadPool};

const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::Q4_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::Q8_0,
    GgmlType::Q5_0,
    GgmlType::Q4_1,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q5_K,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];

fn bench_matmul(c: &mut Criterion) {
    let pools = [ThreadPool::new(1), ThreadPool::new(2)];
    for (rows, cols) in [(2048usize, 2048usize), (8192, 2048)] {
        let mut g = c.benchmark_group(format!("matmul_{rows}x{cols}"));
        let x = values(99, cols);
        for ty in WEIGHT_TYPES {
            let (words, len) = matrix(ty, rows, cols);
            let data = &bytemuck::cast_slice::<u64, u8>(&words)[..len];
            let w = QMatrix::new(data, ty, rows, cols).expect("matrix");
            g.throughput(Throughput::Bytes(len as u64));
            for k in isas() {
                for pool in &pools {
                    let mut scratch = MatmulScratch::new();
                    let mut out = vec![0.0f32; rows];
                    let id = BenchmarkId::new(
                        format!("{ty}/{}", k.isa()),
                        format!("t{}", pool.n_threads()),
                    );
                    g.bench_function(id, |b| {
                        b.iter(|| {
                            matmul(k, pool, &w, black_box(&x), 1, &mut out, &mut scratch)
                                .expect("matmul");
                            black_box(&out);
                        })
                    });
                }
            }
        }
        g.finish();
    }
}

fn bench_vec_dot(c: &mut Criterion) {
    let n = 8192;
    let mut g = c.benchmark_group("vec_dot_8192");
    for ty in WEIGHT_TYPES {
        let (words, len) = matrix(ty, 1, n);
        let w = &bytemuck::cast_slice::<u64, u8>(&words)[..len];
        g.throughput(Throughput::Bytes(len as u64));
        for k in isas() {
            let wt = k.traits(ty).expect("type");
            let at = k.traits(wt.vec_dot_type).expect("activation type");
            let a_len = at.row_bytes(n).expect("len");
            let mut a_words = vec![0u64; a_len.div_ceil(8)];
            let a = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut a_words)[..a_len];
            at.quantize_row(&values(5, n), a).expect("quantize");
            let a: &[u8] = a;
            g.bench_function(format!("{ty}/{}", k.isa()), |b| {
                b.iter(|| {
                    wt.vec_dot(at, n, black_box(w), black_box(a))
                        .expect("vec_dot")
                })
            });
        }
    }
    g.finish();
}

fn bench_matmul_batch(c: &mut Criterion) {
    let (rows, cols, n_tokens) = (2048usize, 2048usize, 8usize);
    let pool = ThreadPool::new(1);
    let mut g = c.benchmark_group(format!("matmul_{rows}x{cols}_batch{n_tokens}"));
    let x = values(98, cols * n_tokens);
    for ty in [
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
    ] {
        let (words, len) = matrix(ty, rows, cols);
        let data = &bytemuck::cast_slice::<u64, u8>(&words)[..len];
        let w = QMatrix::new(data, ty, rows, cols).expect("matrix");
        // Weight bytes processed: every token passes over the whole matrix.
        g.throughput(Throughput::Bytes((len * n_tokens) as u64));
        for k in isas() {
            let mut scratch = MatmulScratch::new();
            let mut out = vec![0.0f32; rows * n_tokens];
            g.bench_function(format!("{ty}/{}/t1", k.isa()), |b| {
                b.iter(|| {
                    matmul(
                        k,
                        &pool,
                        &w,
                        black_box(&x),
                        n_tokens,
                        &mut out,
                        &mut scratch,
                    )
                    .expect("matmul");
                    black_box(&out);
                })
            });
        }
    }
    g.finish();
}

fn bench_quantize_weights(c: &mut Criterion) {
    let n = 4096;
    let x = values(8, n);
    let mut g = c.benchmark_group("quantize_weights_4096");
    g.throughput(Throughput::Bytes((n * 4) as u64));
    for ty in WEIGHT_TYPES.into_iter().filter(|t| t.is_quantized()) {
        for k in isas() {
            let t = k.traits(ty).expect("type");
            let len = t.row_bytes(n).expect("len");
            let mut out = vec![0u64; len.div_ceil(8)];
            let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut out)[..len];
            g.bench_function(format!("{ty}/{}", k.isa()), |b| {
                b.iter(|| {
                    t.quantize_weights_row(black_box(&x), bytes)
                        .expect("quantize")
                })
            });
        }
    }
    g.finish();
}

fn bench_quantize(c: &mut Criterion) {
    let n = 4096;
    let x = values(7, n);
    let mut g = c.benchmark_group("quantize_activations_4096");
    g.throughput(Throughput::Bytes((n * 4) as u64));
    for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
        for k in isas() {
            let t = k.traits(ty).expect("type");
            let mut out = vec![0u64; t.row_bytes(n).expect("len").div_ceil(8)];
            let bytes =
                &mut bytemuck::cast_slice_mut::<u64, u8>(&mut out)[..t.row_bytes(n).expect("len")];
            g.bench_function(format!("{ty}/{}", k.isa()), |b| {
                b.iter(|| t.quantize_row(black_box(&x), bytes).expect("quantize"))
            });
        }
    }
    g.finish();
}

fn bench_pool(c: &mut Criterion) {
    let mut g = c.benchmark_group("thread_pool");
    for threads in [1, 2] {
        let pool = ThreadPool::new(threads);
        g.bench_function(format!("run_16_empty_chunks/t{threads}"), |b| {
            b.iter(|| {
                pool.run(16, |i| {
                    black_box(i);
                })
            })
        });
    }
    g.finish();
}

fn bench_bandwidth(c: &mut Criterion) {
    let buf = nanorun_kernels::bandwidth::ReadBuffer::new(1 << 30).expect("1 GiB to read");
    let words = buf.words();
    let mut g = c.benchmark_group("read_bandwidth");
    g.throughput(Throughput::Bytes((words.len() * 8) as u64));
    g.sample_size(10);
    for threads in [1, 2] {
        let pool = ThreadPool::new(threads);
        g.bench_function(format!("sum_1GiB/t{threads}"), |b| {
            b.iter(|| nanorun_kernels::bandwidth::sum_words(&pool, black_box(words)))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_pool,
    bench_bandwidth,
    bench_quantize,
    bench_quantize_weights,
    bench_vec_dot,
    bench_matmul,
    bench_matmul_batch
);
criterion_main!(benches);
