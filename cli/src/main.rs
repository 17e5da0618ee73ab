//! `nanorun`: the command line of the nanorun inference engine.
//!
//! Sub-commands: `inspect` (metadata and tensor table of a GGUF file). Every error prints one
//! line on stderr and exits non-zero.

mod inspect;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// nanorun: quantized inference for small language models.
#[derive(Parser, Debug)]
#[command(name = "nanorun", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a GGUF file's metadata and tensor table.
    Inspect(inspect::InspectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nanorun: error: {e}");
            ExitCode::FAILURE
        }
    }
}
