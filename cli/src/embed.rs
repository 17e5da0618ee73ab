//! `nanorun embed`: sentence embeddings with an encoder model (`bert`, `nomic-bert`,
//! `gemma-embedding`).
//!
//! `nanorun embed -m MODEL (-p TEXT | -f FILE) [--json] [--normalize]` prints one vector per
//! text (one text per line of FILE); the reference form `nanorun embed -m MODEL --ids 2,16,113
//! --ids 2,77,174 --out FILE` embeds the given token-id sequences together in one batch and
//! writes the raw pooled vectors (not normalised, as llama.cpp returns them) as little-endian
//! f32 `[n_seq][n_embd_out]`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use nanorun::model::encoder::l2_normalize;
use nanorun::model::encoder_config::Pooling;
use nanorun::model::{EmbedState, Embedder};
use serde_json::json;

/// Options of `nanorun embed`.
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// The GGUF embedding model.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// A text to embed (repeat for several).
    #[arg(short = 'p', long = "prompt")]
    prompt: Vec<String>,
    /// Read the texts from a file, one per line (empty lines are skipped).
    #[arg(short = 'f', long = "file", conflicts_with = "prompt")]
    file: Option<PathBuf>,
    /// A token-id sequence, comma-separated (repeat for several; all run in one batch).
    #[arg(long = "ids", conflicts_with_all = ["prompt", "file"])]
    ids: Vec<String>,
    /// Write the raw vectors of `--ids` to this file (little-endian f32, one row per sequence).
    #[arg(long = "out", requires = "ids")]
    out: Option<PathBuf>,
    /// Print one JSON object (vectors, token counts).
    #[arg(long)]
    json: bool,
    /// L2-normalise each vector (texts only; `--ids` output stays raw).
    #[arg(long)]
    normalize: bool,
    /// Threads (default: all available cores).
    #[arg(short = 't', long = "threads")]
    threads: Option<usize>,
    /// Pool with `mean`, `cls` or `last` instead of the model's `<arch>.pooling_type`.
    #[arg(long, value_parser = parse_pooling)]
    pooling: Option<Pooling>,
    /// Most tokens per forward pass (whole texts are batched up to this).
    #[arg(short = 'b', long = "batch-size", default_value_t = 2048)]
    batch_size: usize,
}

fn parse_pooling(s: &str) -> Result<Pooling, String> {
    Pooling::from_name(s)
        .ok_or_else(|| format!("unknown pooling '{s}' (expected mean, cls or last)"))
}

fn parse_ids(list: &str) -> Result<Vec<u32>, String> {
    list.split(',')
        .map(|s| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("--ids {list}: '{s}' is not a token id"))
        })
        .collect()
}

/// Runs `embed`.
pub fn run(args: &EmbedArgs) -> Result<(), Box<dyn std::error::Error>> {
    let threads = match args.threads {
        Some(0) => return Err("-t must be at least 1".into()),
        Some(t) => t.min(1024),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if args.batch_size == 0 {
        return Err("-b must be at least 1".into());
    }
    let path = &args.model;
    let kernels = nanorun::kernels::Kernels::active()?;
    let embedder = nanorun::formats::Gguf::open(path)
        .map_err(nanorun::EngineError::from)
        .and_then(|g| Embedder::from_gguf_with_pooling(Arc::new(g), kernels, args.pooling))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut st = EmbedState::new(threads);

    if !args.ids.is_empty() {
        let seqs = args
            .ids
            .iter()
            .map(|l| parse_ids(l))
            .collect::<Result<Vec<_>, _>>()?;
        let vectors = embedder.embed(&seqs, &mut st)?;
        return match &args.out {
            Some(out) => {
                let mut bytes = Vec::with_capacity(vectors.len() * embedder.n_embd_out() * 4);
                for v in vectors.iter().flatten() {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
                std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))?;
                Ok(())
            }
            None => print(args, &seqs, &vectors),
        };
    }

    let texts: Vec<String> = match (&args.prompt, &args.file) {
        (p, None) if !p.is_empty() => p.clone(),
        (_, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| format!("{}: {e}", f.display()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        _ => return Err("nothing to embed: pass -p TEXT, -f FILE or --ids".into()),
    };
    let seqs: Vec<Vec<u32>> = texts.iter().map(|t| embedder.tokenize(t)).collect();
    let mut vectors = embedder.embed_chunked(&seqs, args.batch_size, &mut st)?;
    if args.normalize {
        vectors.iter_mut().for_each(|v| l2_normalize(v));
    }
    print(args, &seqs, &vectors)
}

fn print(
    args: &EmbedArgs,
    seqs: &[Vec<u32>],
    vectors: &[Vec<f32>],
) -> Result<(), Box<dyn std::error::Error>> {
    let out = std::io::stdout();
    let mut out = out.lock();
    if args.json {
        let data: Vec<_> = vectors
            .iter()
            .zip(seqs)
            .enumerate()
            .map(|(i, (v, s))| json!({ "index": i, "n_tokens": s.len(), "embedding": v }))
            .collect();
        let n_tokens: usize = seqs.iter().map(Vec::len).sum();
        writeln!(
            out,
            "{}",
            json!({
                "model": args.model.display().to_string(),
                "n_embd": vectors.first().map_or(0, Vec::len),
                "normalized": args.normalize && args.ids.is_empty(),
                "n_tokens": n_tokens,
                "data": data,
            })
        )?;
    } else {
        for (i, v) in vectors.iter().enumerate() {
            let vals: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
            writeln!(out, "embedding {i}: {}", vals.join(" "))?;
        }
    }
    Ok(())
}
