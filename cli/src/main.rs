//! `nanorun`: the command line of the nanorun inference engine.
//!
//! `nanorun -m MODEL -p PROMPT` streams a completion; sub-commands: `chat` (interactive, with
//! the model's chat template), `inspect` (metadata and tensor table of a GGUF file), `tokenize`
//! and `logits` (reference tools). Every
//! error prints one line on stderr and exits non-zero.

mod bandwidth;
mod bench;
mod bench_embed;
mod bench_profile;
mod chat;
mod common;
mod embed;
mod inspect;
mod quantize;
mod run;
mod serve;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// nanorun: quantized inference for small language models.
#[derive(Parser, Debug)]
#[command(
    name = "nanorun",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: run::RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Chat interactively with the model's chat template.
    Chat(chat::ChatArgs),
    /// Print a GGUF file's metadata and tensor table.
    Inspect(inspect::InspectArgs),
    /// Print the token ids of a text (like llama-tokenize).
    Tokenize(tools::TokenizeArgs),
    /// Write the raw logits of given token ids (every position, one batch) to a file.
    Logits(tools::LogitsArgs),
    /// Prompt-processing and generation speed (like llama-bench); embedding throughput with
    /// `--embed`.
    Bench(bench::BenchArgs),
    /// Sentence embeddings with an encoder model (bert, nomic-bert, gemma-embedding).
    Embed(embed::EmbedArgs),
    /// Serve the model over OpenAI-compatible HTTP (completions, chat, SSE streaming).
    Serve(serve::ServeArgs),
    /// Quantize a GGUF file to a type or mix, as llama-quantize does (Q8_0, Q4_K_M, …).
    Quantize(quantize::QuantizeArgs),
}

fn main() -> ExitCode {
    // llama.cpp spells the parallel-slots flag `-np`.
    let argv = std::env::args_os().map(|a| if a == "-np" { "--parallel".into() } else { a });
    let matches = <Cli as clap::CommandFactory>::command().get_matches_from(argv);
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // `logits` keeps an F32 cache unless the cache types were given explicitly.
    let explicit = |name: &str| {
        matches
            .subcommand_matches("logits")
            .is_some_and(|m| m.value_source(name) == Some(clap::parser::ValueSource::CommandLine))
    };
    let result = match &cli.command {
        None => run::run(&cli.run),
        Some(Command::Chat(args)) => chat::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Inspect(args)) => inspect::run(args),
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Embed(args)) => embed::run(args),
        Some(Command::Quantize(args)) => quantize::run(args),
        Some(Command::Tokenize(args)) => tools::tokenize(args),
        Some(Command::Logits(args)) => {
            tools::logits(args, explicit("cache_type_k"), explicit("cache_type_v"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nanorun: error: {e}");
            ExitCode::FAILURE
        }
    }
}
