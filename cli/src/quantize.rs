//! `nanorun quantize IN.gguf OUT.gguf --type Q4_K_M`: a GGUF file to a quantization mix, as
//! llama-quantize writes it; progress on stderr.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use nanorun::quantize::{quantize_file, FileType};

/// Arguments of `nanorun quantize`.
#[derive(clap::Args, Debug)]
pub struct QuantizeArgs {
    /// The input GGUF file (F32, F16 or BF16 weights).
    input: PathBuf,
    /// The output GGUF file.
    output: PathBuf,
    /// The type, as llama-quantize names it (also accepted as `--type`): Q4_0, Q4_1, Q5_0,
    /// Q5_1, Q8_0, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, F16,
    /// BF16, F32.
    #[arg(value_name = "TYPE")]
    type_pos: Option<String>,
    /// The type (see TYPE).
    #[arg(long = "type", value_name = "TYPE", conflicts_with = "type_pos")]
    type_flag: Option<String>,
    /// Threads (default: every core).
    #[arg(short = 't', long)]
    threads: Option<usize>,
}

/// Runs `quantize`.
pub fn run(args: &QuantizeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let name = args
        .type_flag
        .as_deref()
        .or(args.type_pos.as_deref())
        .ok_or("no quantization type given (--type Q4_K_M, Q8_0, …)")?;
    let ftype = FileType::from_name(name)?;
    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(format!(
                "{}: the output folder {} does not exist",
                args.output.display(),
                dir.display()
            )
            .into());
        }
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut last_tenth = 0;
    let progress = |done: usize, total: usize| {
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\rquantizing to {ftype}: {done}/{total} tensors");
            if done == total {
                let _ = writeln!(err);
            }
        } else {
            let tenth = (done * 10).checked_div(total).unwrap_or(10);
            if done == 0 || tenth > last_tenth {
                last_tenth = tenth;
                let _ = writeln!(err, "quantizing to {ftype}: {done}/{total} tensors");
            }
        }
    };
    let report = quantize_file(&args.input, &args.output, ftype, threads, progress)
        .map_err(|e| format!("{} -> {}: {e}", args.input.display(), args.output.display()))?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "wrote {} ({}, general.file_type {}): tensors {:.2} MiB -> {:.2} MiB, file {:.2} MiB, {:.1} s{}",
        args.output.display(),
        ftype,
        ftype.id(),
        mib(report.input_tensor_bytes),
        mib(report.output_tensor_bytes),
        mib(report.output_file_bytes),
        start.elapsed().as_secs_f64(),
        if report.n_fallback > 0 {
            format!(", {} tensor(s) used a fallback type", report.n_fallback)
        } else {
            String::new()
        }
    );
    Ok(())
}
