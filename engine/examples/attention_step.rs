//! Times the attention of one decode step (every attention layer, one token per sequence)
//! over an f16 paged KV cache shaped by a model's GGUF, without the matmuls: the part of a
//! serving step that grows with the streams and their contexts.
//!
//! `cargo run --release -p nanorun --example attention_step -- MODEL.gguf
//!     [-t THREADS] [-s STREAMS] [-c CONTEXT] [-r REPS] [-e EVICT_MIB]`
//!
//! The cache holds random K/V rows for `STREAMS` sequences of `CONTEXT` positions; each step
//! attends their next tokens at every layer. Between steps `EVICT_MIB` (64) MiB are read, as the weights of
//! a real step would evict the cache. Prints µs per step (median and best over the steps).

use std::time::Instant;

use nanorun::batch::Batch;
use nanorun::kernels::ThreadPool;
use nanorun::kv::{CacheType, KvCache, KvCacheConfig};
use nanorun::model::attention::{attend, AttnParams, AttnScratch};
use nanorun::model::Model;
use nanorun::sampler::Xoshiro256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: attention_step MODEL.gguf [-t N] [-s N] [-c N] [-r N]")?;
    let flag = |name: &str, default: usize| -> Result<usize, String> {
        match args.iter().position(|a| a == name) {
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} takes a number")),
            None => Ok(default),
        }
    };
    let (threads, streams, ctx, reps) = (
        flag("-t", 2)?,
        flag("-s", 8)?,
        flag("-c", 64)?,
        flag("-r", 50)?,
    );
    let evict_mib = flag("-e", 64)?;
    let model = Model::open(path)?;
    let c = model.config();
    let cfg = KvCacheConfig {
        type_k: CacheType::F16,
        type_v: CacheType::F16,
        ..KvCacheConfig::for_context(streams * (ctx + 16))
    };
    let mut kv = KvCache::new(c, cfg)?;
    let mut rng = Xoshiro256::new(0x2545_f491);
    let mut rand = move || (2.0 * rng.next_f64() - 1.0) as f32;
    let attn_layers: Vec<usize> = (0..c.n_layer())
        .filter(|&l| kv.layer(l).is_some())
        .collect();
    for seq in 0..streams as u32 {
        kv.add_sequence(seq)?;
        kv.grow_to(seq, ctx + 1)?;
    }
    // Positions interleaved across the sequences, as a served batch fills them.
    for pos in 0..=ctx {
        for seq in 0..streams as u32 {
            for &l in &attn_layers {
                let spec = &c.layers[l].attention;
                let (k_len, v_len) = (spec.n_head_kv * c.head_dim_k, spec.n_head_kv * c.head_dim_v);
                let k: Vec<f32> = (0..k_len).map(|_| rand()).collect();
                let v: Vec<f32> = (0..v_len).map(|_| rand()).collect();
                let slot = kv.slot(l, seq, pos)?;
                kv.write(l, slot, &k, &v);
            }
        }
    }
    let mut batch = Batch::new();
    for seq in 0..streams as u32 {
        batch.push(1, ctx, seq, true);
    }
    let max_q = attn_layers
        .iter()
        .map(|&l| c.layers[l].attention.n_head * c.head_dim_k.max(c.head_dim_v))
        .max()
        .unwrap_or(0);
    let q: Vec<f32> = (0..streams * max_q).map(|_| rand()).collect();
    let mut out = vec![0f32; streams * max_q];
    let pool = ThreadPool::new(threads);
    let mut scratch = AttnScratch::default();
    let evict: Vec<u64> = (0..(evict_mib << 17) as u64).collect();
    let mut times = Vec::with_capacity(reps);
    let mut sink = 0u64;
    for _ in 0..reps {
        sink = sink.wrapping_add(evict.iter().sum::<u64>());
        let start = Instant::now();
        for &l in &attn_layers {
            let spec = &c.layers[l].attention;
            let p = AttnParams {
                n_head: spec.n_head,
                n_head_kv: spec.n_head_kv,
                head_dim_k: c.head_dim_k,
                head_dim_v: c.head_dim_v,
                kq_scale: 0.0625,
                softcap: c.attn_softcap,
                window: spec.sliding_window,
                tiled: false,
            };
            let width = spec.n_head * c.head_dim_k;
            attend(
                &pool,
                &kv,
                l,
                &batch,
                &p,
                &q[..streams * width],
                &mut out[..streams * spec.n_head * c.head_dim_v],
                &mut scratch,
            )?;
        }
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{streams} streams, context {ctx}, {threads} threads, {} layers: median {:.0} µs, best {:.0} µs per step (sink {})",
        attn_layers.len(),
        times[times.len() / 2],
        times[0],
        sink % 10
    );
    Ok(())
}
