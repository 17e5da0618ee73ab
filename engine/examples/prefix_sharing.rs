//! Prefill saved by prefix sharing: N requests with one long shared prefix (a system prompt)
//! and short distinct tails, served with sharing on and off.
//!
//! ```text
//! cargo run --release -p nanorun --example prefix_sharing -- [MODEL.gguf] [-t THREADS]
//! ```
//!
//! Reports tokens run through the model, prompt tokens taken from the cache, wall time and
//! mean time to first token for each setting. Exits successfully, saying so, when the model
//! file is absent.

use std::time::Instant;

use nanorun::{Engine, EngineConfig, Event, Request};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut model = "models/gemma-3-270m-q4_k_m.gguf".to_string();
    let mut threads = 0;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-t" => threads = it.next().and_then(|t| t.parse().ok()).ok_or("bad -t")?,
            m => model = m.to_string(),
        }
    }
    if !std::path::Path::new(&model).exists() {
        println!("SKIPPED: model {model} not found");
        return Ok(());
    }
    let (n_req, prefix, tail, gen) = (8usize, 384usize, 16usize, 8usize);
    println!(
        "{n_req} requests: {prefix}-token shared prefix + {tail} distinct tokens, {gen} generated"
    );
    println!("| sharing | tokens computed | prompt tokens cached | wall (s) | TTFT mean (ms) |");
    println!("|---|---|---|---|---|");
    for sharing in [false, true] {
        let engine = Engine::load(
            &model,
            EngineConfig {
                n_threads: threads,
                n_ctx: n_req * (prefix + tail + gen + 16),
                max_seqs: n_req,
                prefix_sharing: sharing,
                ..EngineConfig::default()
            },
        )?;
        let shared: Vec<u32> = std::iter::once(2)
            .chain((1..prefix as u32).map(|j| 1000 + j * 31 % 50_000))
            .collect();
        let t0 = Instant::now();
        let streams: Vec<_> = (0..n_req)
            .map(|i| {
                let mut p = shared.clone();
                p.extend((0..tail as u32).map(|j| 60_000 + i as u32 * 100 + j));
                let mut r = Request::from_tokens(p).max_tokens(gen).greedy();
                r.ignore_eos = true;
                engine.submit(r)
            })
            .collect::<Result<_, _>>()?;
        let mut ttft = 0.0;
        for s in streams {
            let mut first = None;
            for e in s.iter() {
                if let Event::Token { .. } = e {
                    first.get_or_insert(t0.elapsed().as_secs_f64());
                }
            }
            ttft += first.unwrap_or_default();
        }
        let wall = t0.elapsed().as_secs_f64();
        let m = engine.metrics();
        println!(
            "| {} | {} | {} | {wall:.2} | {:.0} |",
            if sharing { "on" } else { "off" },
            m.computed_tokens,
            m.cached_tokens,
            ttft / n_req as f64 * 1e3
        );
    }
    Ok(())
}
