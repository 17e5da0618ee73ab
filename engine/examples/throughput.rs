//! Aggregate decode throughput against concurrency: N greedy streams at once through one
//! `nanorun::Engine`, for each N given.
//!
//! ```text
//! cargo run --release -p nanorun --example throughput -- MODEL.gguf [--parallel 1,2,4,8]
//!     [-n TOKENS] [-t THREADS] [--prompt-tokens N] [--temperature T [--top-p P]] [--rounds R]
//! ```
//!
//! Streams decode greedily unless `--temperature` is given; then each samples as an
//! OpenAI-style request does (`nanorun serve`'s defaults: no top-k, no min-p; top-p 1 unless
//! `--top-p`), seeded by its index, so the sampler's share of a step shows.
//! For each concurrency N it submits N requests of `-n` tokens each (prompts of the same
//! length, all different) and reports aggregate generated tokens per second (decode phase:
//! from the moment every stream has its first token to the end), time to first token, and
//! per-request latency. Exits successfully, saying so, when the model file is absent.
//!
//! `--rounds R` runs the whole list R times, one after another, and ends with each N's
//! throughput against one stream's *of the same round*: on a machine whose speed drifts by
//! tens of percent over minutes (shared cloud cores), ratios of neighbouring runs hold far
//! better than ratios of runs minutes apart.

use std::time::{Duration, Instant};

use nanorun::sampler::SamplingParams;
use nanorun::{Engine, EngineConfig, Event, Request};

struct Args {
    model: String,
    parallel: Vec<usize>,
    n: usize,
    threads: usize,
    prompt_tokens: usize,
    temperature: Option<f32>,
    top_p: f32,
    rounds: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        model: "models/gemma-3-270m-q4_k_m.gguf".into(),
        parallel: vec![1, 2, 4, 8],
        n: 64,
        threads: 0,
        prompt_tokens: 32,
        temperature: None,
        top_p: 1.0,
        rounds: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().ok_or(format!("{x} needs a value"));
        match x.as_str() {
            "--parallel" => {
                a.parallel = val()?
                    .split(',')
                    .map(|s| s.parse().map_err(|_| format!("bad --parallel value '{s}'")))
                    .collect::<Result<_, _>>()?
            }
            "-n" => a.n = val()?.parse().map_err(|_| "bad -n")?,
            "-t" => a.threads = val()?.parse().map_err(|_| "bad -t")?,
            "--prompt-tokens" => {
                a.prompt_tokens = val()?.parse().map_err(|_| "bad --prompt-tokens")?
            }
            "--temperature" => {
                a.temperature = Some(val()?.parse().map_err(|_| "bad --temperature")?)
            }
            "--top-p" => a.top_p = val()?.parse().map_err(|_| "bad --top-p")?,
            "--rounds" => a.rounds = val()?.parse().map_err(|_| "bad --rounds")?,
            m if !m.starts_with('-') => a.model = m.to_string(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    if !std::path::Path::new(&args.model).exists() {
        println!("SKIPPED: model {} not found", args.model);
        return Ok(());
    }
    let max_n = args.parallel.iter().copied().max().unwrap_or(1);
    let engine = Engine::load(
        &args.model,
        EngineConfig {
            n_threads: args.threads,
            n_ctx: max_n * (args.prompt_tokens + args.n + 32),
            max_seqs: max_n,
            prefix_sharing: false,
            ..EngineConfig::default()
        },
    )?;
    let n_vocab = engine
        .model_config()
        .ok_or("throughput needs a generation model")?
        .n_vocab as u32;
    println!("| round | streams | aggregate decode tok/s | per-stream tok/s | TTFT mean (ms) | latency mean (s) |");
    println!("|---|---|---|---|---|---|");
    let mut by_round = Vec::new();
    for round in 1..=args.rounds.max(1) {
        let mut tps_of = Vec::new();
        for &n in &args.parallel {
            let (tps, ttft, lat) = run_level(&engine, &args, n, n_vocab)?;
            println!(
                "| {round} | {n} | {tps:.1} | {:.1} | {:.0} | {lat:.2} |",
                tps / n as f64,
                ttft * 1e3
            );
            tps_of.push((n, tps));
        }
        by_round.push(tps_of);
    }
    // Each N against one stream of the same round.
    let one = |r: &[(usize, f64)]| r.iter().find(|x| x.0 == 1).map(|x| x.1);
    for &n in args.parallel.iter().filter(|&&n| n != 1) {
        let mut ratios: Vec<f64> = by_round
            .iter()
            .filter_map(|r| Some(r.iter().find(|x| x.0 == n)?.1 / one(r)?))
            .collect();
        if ratios.is_empty() {
            continue;
        }
        ratios.sort_by(f64::total_cmp);
        let list: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "{n} streams against one, same round: median {:.2}x ({})",
            ratios[ratios.len() / 2],
            list.join(", ")
        );
    }
    Ok(())
}

/// Runs `n` streams at once; returns aggregate decode tok/s, mean time to first token (s)
/// and mean request latency (s).
fn run_level(
    engine: &Engine,
    args: &Args,
    n: usize,
    n_vocab: u32,
) -> Result<(f64, f64, f64), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let mut streams: Vec<_> = (0..n)
        .map(|i| {
            // Distinct prompts of the same length (token ids spread over the vocabulary).
            let prompt: Vec<u32> = std::iter::once(2)
                .chain(
                    (1..args.prompt_tokens as u32)
                        .map(|j| 1000 + (j * 7919 + i as u32 * 104_729) % (n_vocab - 2000)),
                )
                .collect();
            let r = Request::from_tokens(prompt).max_tokens(args.n);
            let mut r = match args.temperature {
                None => r.greedy(),
                Some(temperature) => r.sampling(SamplingParams {
                    temperature,
                    top_k: 0,
                    top_p: args.top_p,
                    min_p: 0.0,
                    seed: Some(i as u64),
                    ..SamplingParams::default()
                }),
            };
            r.ignore_eos = true;
            engine.submit(r)
        })
        .collect::<Result<_, _>>()?;
    let mut first: Vec<Option<Duration>> = vec![None; n];
    let mut done: Vec<Option<Duration>> = vec![None; n];
    let mut generated = vec![0usize; n];
    while done.iter().any(Option::is_none) {
        for (i, s) in streams.iter_mut().enumerate() {
            if done[i].is_some() {
                continue;
            }
            while let Ok(Some(e)) = s.recv_timeout(Duration::from_millis(1)) {
                match e {
                    Event::Token { .. } => {
                        generated[i] += 1;
                        first[i].get_or_insert(t0.elapsed());
                    }
                    Event::Text(_) => {}
                    Event::Finished { .. } | Event::Error(_) => {
                        done[i] = Some(t0.elapsed());
                        break;
                    }
                }
            }
        }
    }
    let all_first = first.iter().flatten().max().copied().unwrap_or_default();
    let end = done.iter().flatten().max().copied().unwrap_or_default();
    let decode_tokens: usize = generated.iter().map(|g| g.saturating_sub(1)).sum();
    let tps = decode_tokens as f64 / (end - all_first).as_secs_f64().max(1e-9);
    let mean_s = |times: &[Option<Duration>]| {
        times
            .iter()
            .flatten()
            .map(Duration::as_secs_f64)
            .sum::<f64>()
            / n as f64
    };
    Ok((tps, mean_s(&first), mean_s(&done)))
}
