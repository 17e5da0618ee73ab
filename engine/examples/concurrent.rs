//! Several requests served at once by one `nanorun::Engine`, from several threads.
//!
//! ```text
//! cargo run --release -p nanorun --example concurrent -- [MODEL.gguf]
//! ```
//!
//! Without an argument it uses `models/gemma-3-270m-q4_k_m.gguf` and, when that file is
//! absent, says so and exits successfully (so CI can build and run it anywhere).

use std::sync::Arc;

use nanorun::{Engine, EngineConfig, Event, Request};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "models/gemma-3-270m-q4_k_m.gguf".into());
    if !std::path::Path::new(&path).exists() {
        println!("SKIPPED: model {path} not found");
        return Ok(());
    }
    let engine = Arc::new(Engine::load(
        &path,
        EngineConfig {
            max_seqs: 4,
            ..EngineConfig::default()
        },
    )?);
    let prompts = [
        "The capital of France is",
        "Once upon a time",
        "The three primary colours are",
        "def fibonacci(n):",
    ];
    let threads: Vec<_> = prompts
        .iter()
        .map(|p| {
            let (engine, p) = (engine.clone(), p.to_string());
            std::thread::spawn(move || -> Result<String, nanorun::EngineError> {
                // Stream the events of one request; dropping `stream` early would cancel it.
                let stream = engine.submit(Request::new(p.clone()).max_tokens(24).greedy())?;
                let mut text = p;
                for event in stream.iter() {
                    match event {
                        Event::Token { text: t, .. } | Event::Text(t) => text.push_str(&t),
                        Event::Finished { reason, usage } => text.push_str(&format!(
                            "  [{}; {} prompt + {} generated tokens]",
                            reason.as_str(),
                            usage.prompt_tokens,
                            usage.completion_tokens
                        )),
                        Event::Error(e) => return Err(nanorun::EngineError::InvalidRequest(e)),
                    }
                }
                Ok(text)
            })
        })
        .collect();
    for t in threads {
        println!("{}\n", t.join().expect("request thread")?);
    }
    let m = engine.metrics();
    println!(
        "{} requests, {} tokens generated in {} forward passes",
        m.requests, m.generated_tokens, m.steps
    );
    Ok(())
}
