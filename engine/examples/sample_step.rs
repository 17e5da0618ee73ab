//! Times the sampler on one Gemma-3-sized logits row (262 144 entries) for the sampling
//! settings a server sees most: `cargo run --release -p nanorun --example sample_step -- [REPS]`.
//!
//! Two synthetic rows: "peaked" (most logits spread around −5, a few dozen 10–20 above: the
//! shape of a real model's row, where truncation keeps few tokens) and "flat" (every logit
//! from one normal distribution: the worst case for the truncating samplers). Prints the best
//! and the median time per sample of each setting.

use std::time::Instant;

use nanorun::sampler::{Sampler, SamplingParams, Xoshiro256};

/// Entries per row (Gemma 3's vocabulary).
const VOCAB: usize = 262_144;

/// A standard normal value (Box–Muller) from the sampler's own generator.
fn normal(rng: &mut Xoshiro256) -> f32 {
    let (u, v) = (rng.next_f64().max(1e-12), rng.next_f64());
    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .map_or(200, |s| s.parse().expect("REPS: a count"));
    let mut rng = Xoshiro256::new(0x9e37_79b9_7f4a_7c15);
    let flat: Vec<f32> = (0..VOCAB).map(|_| 3.0 * normal(&mut rng)).collect();
    let mut peaked: Vec<f32> = (0..VOCAB).map(|_| 2.5 * normal(&mut rng) - 5.0).collect();
    for i in 0..48 {
        peaked[(i * 5381 + 17) % VOCAB] = 10.0 + 10.0 * rng.next_f64() as f32;
    }
    let settings = [
        ("temperature 1 (OpenAI default)", params(1.0, 0, 1.0, 0.0)),
        ("temperature 0.7, top-p 0.9", params(0.7, 0, 0.9, 0.0)),
        (
            "CLI default (top-k 40, top-p 0.95, min-p 0.05, t 0.8)",
            SamplingParams::default(),
        ),
        ("greedy", SamplingParams::greedy()),
    ];
    println!("| setting | row | best ms | median ms |");
    println!("|---|---|---:|---:|");
    for (name, p) in settings {
        for (row_name, row) in [("peaked", &peaked), ("flat", &flat)] {
            let mut s = Sampler::new(SamplingParams {
                seed: Some(7),
                ..p.clone()
            })
            .expect("valid parameters");
            let mut times: Vec<f64> = (0..reps)
                .map(|_| {
                    let t0 = Instant::now();
                    std::hint::black_box(s.sample(row));
                    t0.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            times.sort_by(f64::total_cmp);
            println!(
                "| {name} | {row_name} | {:.3} | {:.3} |",
                times[0],
                times[reps / 2]
            );
        }
    }
}

/// Sampling parameters with the given truncation and nothing else (penalties off).
fn params(temperature: f32, top_k: u32, top_p: f32, min_p: f32) -> SamplingParams {
    SamplingParams {
        temperature,
        top_k,
        top_p,
        min_p,
        ..SamplingParams::greedy()
    }
}
