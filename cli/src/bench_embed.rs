//! `nanorun bench --embed`: sentence-embedding throughput of an encoder model. For each thread
//! count and batch size B: the sentences (built-in, or `-f FILE` one per line, cycled to a
//! multiple of B) are tokenized once, then embedded B at a time, each batch one forward pass;
//! one warm-up batch, then `-r` timed passes over all of them. Reports the median
//! sentences/s and tokens/s.

use std::time::Instant;

use nanorun::model::{EmbedState, Embedder};
use serde_json::json;

use crate::bench::BenchArgs;

/// Sentences of 8–30 words, varied in topic and length, for when no `-f` file is given.
pub const SENTENCES: [&str; 32] = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "How do I reset my password if I no longer have access to my email account?",
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
    "The meeting has been moved to Thursday afternoon because the conference room is booked.",
    "Our quarterly revenue grew by twelve percent, driven mostly by strong demand in Europe and Asia.",
    "Please remember to water the plants while I am away on vacation next week.",
    "The Treaty of Westphalia in 1648 ended the Thirty Years' War and reshaped the political map of Europe.",
    "Add two cups of flour, a pinch of salt and a teaspoon of baking powder, then mix gently.",
    "Rust guarantees memory safety without a garbage collector by checking ownership and borrowing at compile time.",
    "She finished the marathon in under four hours despite the heat.",
    "What are the side effects of taking ibuprofen together with blood pressure medication?",
    "The new library downtown offers free coding workshops for teenagers every Saturday morning.",
    "A black hole forms when a massive star collapses under its own gravity at the end of its life.",
    "Customers reported that the mobile app crashes whenever they try to upload a profile picture.",
    "The committee will review all applications and notify the successful candidates by the end of March.",
    "Bees play a crucial role in pollinating crops that feed much of the world's population.",
    "Can you recommend a quiet hotel close to the train station with free breakfast?",
    "The defendant's lawyer argued that the evidence had been obtained without a valid warrant.",
    "Interest rates are expected to stay high until inflation returns to the central bank's target.",
    "He spent the whole weekend repainting the fence and fixing the squeaky garden gate.",
    "Vector databases store embeddings so that semantically similar documents can be retrieved quickly.",
    "The museum's new exhibition explores how ancient civilizations measured time using the sun and stars.",
    "Turn left at the second traffic light and the pharmacy will be on your right.",
    "Regular exercise, enough sleep and a balanced diet reduce the risk of many chronic diseases.",
    "The software update fixes a security vulnerability that allowed attackers to bypass the login screen.",
    "Children learn languages faster when they hear them spoken at home from an early age.",
    "The orchestra performed Beethoven's Ninth Symphony to a sold-out audience last night.",
    "Our flight was delayed by three hours because of a snowstorm over the mountains.",
    "Machine translation has improved dramatically since neural networks replaced phrase-based statistical systems.",
    "The volcano erupted without warning, forcing thousands of residents to evacuate their homes overnight.",
    "Is it possible to cancel my subscription online, or do I need to call customer support?",
    "Fresh tomatoes, basil and mozzarella make a simple salad that tastes like summer.",
];

/// The sentences of `-f FILE` (non-empty lines) or the built-in ones.
fn sentences(args: &BenchArgs) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let Some(f) = &args.file else {
        return Ok(SENTENCES.iter().map(|s| s.to_string()).collect());
    };
    let lines: Vec<String> = std::fs::read_to_string(f)
        .map_err(|e| format!("{}: {e}", f.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        return Err(format!("{}: no sentences", f.display()).into());
    }
    Ok(lines)
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
    let file = args
        .model
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
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
        for s in SENTENCES {
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
