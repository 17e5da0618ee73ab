//! `nanorun bench --embed`: sentence-embedding throughput of an encoder model. For each thread
//! count and batch size B: the sentences (built-in, or `-f FILE` one per line, cycled to a
//! multiple of B) are tokenized once, then embedded B at a time, each batch one forward pass;
//! one warm-up batch, then `-r` timed passes over all of them. Reports the median
//! sentences/s and tokens/s.

use std::time::Instant;

use nanorun::model::{EmbedState, Embedder};
use serde_json::json;

use crate::bench::BenchArgs;

/// 32 English sentences of 8–30 words, varied in topic and length, one a line, for when no
/// `-f` file is given (`scripts/compare-embed-llama-cpp.sh` feeds the same file to llama.cpp).
pub const SENTENCES: &str = include_str!("../data/embed-sentences.txt");

/// The sentences of `-f FILE` (non-empty lines) or the built-in ones.
fn sentences(args: &BenchArgs) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let Some(f) = &args.file else {
        return Ok(lines(SENTENCES));
    };
    let lines = lines(&std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?);
    if lines.is_empty() {
        return Err(format!("{}: no sentences", f.display()).into());
    }
    Ok(lines)
}

/// The non-empty lines of `text`.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Embeds `work` `batch` sequences per forward pass; returns seconds.
fn pass(
    e: &Embedder,
    st: &mut EmbedState,
    work: &[Vec<u32>],
    batch: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    for group in work.chunks(batch) {
        std::hint::black_box(e.embed(group, st)?);
    }
    Ok(t0.elapsed().as_secs_f64())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n % 2 {
        1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs `bench --embed`.
pub fn run(args: &BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.batch_sizes.is_empty() || args.batch_sizes.contains(&0) {
        return Err("--batch-sizes must be at least 1".into());
    }
    let e = Embedder::open(&args.model).map_err(|e| format!("{}: {e}", args.model.display()))?;
    let isa = nanorun::kernels::Kernels::active()?.isa().name();
    let texts = sentences(args)?;
    let seqs: Vec<Vec<u32>> = texts.iter().map(|t| e.tokenize(t)).collect();
    let file = args.model_file();
    let mut results = Vec::new();
    if !args.json {
        println!("| model | isa | threads | batch | sentences | tokens | sentences/s | tok/s |");
        println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    }
    for &t in &args.threads {
        let mut st = EmbedState::new(t);
        for &b in &args.batch_sizes {
            let n = seqs.len().div_ceil(b) * b;
            let work: Vec<Vec<u32>> = seqs.iter().cycle().take(n).cloned().collect();
            let n_tokens: usize = work.iter().map(Vec::len).sum();
            pass(&e, &mut st, &work[..b], b)?; // warm-up
            let mut secs = (0..args.repetitions)
                .map(|_| pass(&e, &mut st, &work, b))
                .collect::<Result<Vec<f64>, _>>()?;
            let samples: Vec<f64> = secs.iter().map(|s| n as f64 / s).collect();
            let s = median(&mut secs);
            let (sps, tps) = (n as f64 / s, n_tokens as f64 / s);
            if !args.json {
                println!("| {file} | {isa} | {t} | {b} | {n} | {n_tokens} | {sps:.1} | {tps:.0} |");
            }
            results.push(json!({
                "model": file, "isa": isa, "threads": t, "batch_size": b, "n_sentences": n,
                "n_tokens": n_tokens, "sentences_per_s": sps, "tok_per_s": tps,
                "samples_sentences_per_s": samples, "repetitions": args.repetitions,
            }));
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_realistic() {
        let all = lines(SENTENCES);
        assert_eq!(all.len(), 32);
        for s in all {
            let words = s.split_whitespace().count();
            assert!((8..=30).contains(&words), "{words} words: {s}");
        }
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
