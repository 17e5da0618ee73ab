//! `nanorun`: the command line of the nanorun inference engine.
//!
//! `nanorun -m MODEL -p PROMPT` streams a completion; sub-commands: `chat` (interactive, with
//! the model's chat template) and `inspect` (metadata and tensor table of a GGUF file). Every
//! error prints one line on stderr and exits non-zero.

mod chat;
mod common;
mod inspect;
mod run;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        None => run::run(&cli.run),
        Some(Command::Chat(args)) => chat::run(args),
        Some(Command::Inspect(args)) => inspect::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nanorun: error: {e}");
            ExitCode::FAILURE
        }
    }
}
