//! `nanorun -m MODEL -p PROMPT`: stream a completion to stdout (or print one JSON result).

use std::io::Write;
use std::path::PathBuf;

use nanorun::{Device, GenerateOptions, Session};
use serde_json::json;

use crate::common::{ModelArgs, SamplingArgs};

/// Options of the default command.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// The prompt.
    #[arg(short = 'p', long = "prompt")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(short = 'f', long = "file", conflicts_with = "prompt")]
    pub file: Option<PathBuf>,
    /// Tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    pub n_predict: usize,
    /// Keep generating past end-of-generation tokens.
    #[arg(long = "ignore-eos")]
    pub ignore_eos: bool,
    /// Print one JSON object (prompt ids, generated ids, text, timings) instead of streaming.
    #[arg(long)]
    pub json: bool,
    /// Where the forward pass runs: cpu, cuda (device 0) or cuda:N. CUDA needs a build with
    /// `--features cuda`, an NVIDIA driver and NVRTC (see docs/cuda.md).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: Device,
}

/// `--device`: cpu, cuda or cuda:N.
pub fn parse_device(s: &str) -> Result<Device, String> {
    s.parse()
}

/// Runs the default command.
pub fn run(args: &RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    let prompt = match (&args.prompt, &args.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?
        }
        (None, None) => return Err("no prompt given: pass -p TEXT or -f FILE".into()),
    };
    // A device that cannot be used fails before the model loads.
    if let Device::Cuda(n) = args.device {
        nanorun::backend::check_cuda(n).map_err(|e| format!("--device cuda: {e}"))?;
    }
    args.model.path()?;
    let n_threads = args.model.n_threads()?;
    let loaded = args.model.load()?;
    let kv = args.model.kv_config(&loaded.model)?;
    let mut session = Session::new(&loaded.model, &loaded.tokenizer, kv, n_threads)?;
    if args.device != Device::Cpu {
        let backend = nanorun::backend::open(&loaded.model, args.device, n_threads)
            .map_err(|e| format!("--device cuda: {e}"))?;
        session.set_backend(backend);
    }
    session.set_n_ctx(args.model.context(&loaded.model)?);
    let prompt_ids = session.tokenize(&prompt);
    let opts = GenerateOptions {
        max_tokens: args.n_predict,
        sampling: args.sampling.params(),
        batch_size: args.model.batch_size,
        stop_at_eog: !args.ignore_eos,
    };
    let stdout = std::io::stdout();
    let result = if args.json {
        session.generate(&prompt_ids, &opts, |_| true)?
    } else {
        let mut out = stdout.lock();
        session.generate(&prompt_ids, &opts, |piece| {
            // A closed pipe (e.g. `| head`) stops generation instead of panicking.
            out.write_all(piece.as_bytes())
                .and_then(|_| out.flush())
                .is_ok()
        })?
    };
    if args.json {
        let v = json!({
            "prompt": prompt,
            "prompt_ids": result.prompt_ids,
            "generated_ids": result.generated_ids,
            "text": result.text,
            "finish_reason": result.finish.as_str(),
            "timings": {
                "prompt_n": result.prompt_ids.len(),
                "prompt_ms": result.prefill_time.as_secs_f64() * 1e3,
                "prompt_per_second": result.prefill_tps(),
                "predicted_n": result.generated_ids.len(),
                "predicted_ms": result.decode_time.as_secs_f64() * 1e3,
                "predicted_per_second": result.decode_tps(),
            },
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!();
        eprintln!(
            "\nprompt: {} tokens, {:.1} tok/s | generation: {} tokens, {:.1} tok/s | {} | {} threads, {} kernels, {} backend",
            result.prompt_ids.len(),
            result.prefill_tps(),
            result.generated_ids.len(),
            result.decode_tps(),
            result.finish.as_str(),
            n_threads,
            loaded.model.kernels().isa().name(),
            session.backend_name(),
        );
    }
    Ok(())
}
