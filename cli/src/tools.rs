//! Reference tools: `nanorun tokenize` (ids of a text, as llama-tokenize prints them; works on
//! vocab-only GGUF files) and `nanorun logits` (raw logits of given token ids, every position
//! in one batch, written as little-endian f32 rows).

use std::io::Write;
use std::path::PathBuf;

use nanorun::formats::Gguf;
use nanorun::tokenizer::Tokenizer;
use nanorun::{Batch, CacheType, ForwardState, KvCache};
use serde_json::json;

use crate::common::ModelArgs;

/// Options of `nanorun tokenize`.
#[derive(clap::Args, Debug)]
pub struct TokenizeArgs {
    /// The GGUF file (a vocab-only file is enough).
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// The text.
    #[arg(short = 'p', long = "prompt")]
    prompt: Option<String>,
    /// Read the text from a file, byte for byte.
    #[arg(short = 'f', long = "file", conflicts_with = "prompt")]
    file: Option<PathBuf>,
    /// Do not add BOS (and EOS) even when the model's metadata asks for them.
    #[arg(long = "no-bos")]
    no_bos: bool,
    /// Treat special-token text literally.
    #[arg(long = "no-parse-special")]
    no_parse_special: bool,
    /// Print only the ids, as a list.
    #[arg(long)]
    ids: bool,
    /// Print one JSON object with ids and pieces.
    #[arg(long)]
    json: bool,
}

/// Runs `tokenize`.
pub fn tokenize(args: &TokenizeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let text: Vec<u8> = match (&args.prompt, &args.file) {
        (Some(p), _) => p.as_bytes().to_vec(),
        (None, Some(f)) => std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?,
        (None, None) => return Err("no text given: pass -p TEXT or -f FILE".into()),
    };
    let gguf = Gguf::open(&args.model)?;
    let tok = Tokenizer::from_gguf(&gguf).map_err(|e| format!("{}: {e}", args.model.display()))?;
    let ids = tok.encode_bytes(&text, !args.no_bos, !args.no_parse_special);
    let out = std::io::stdout();
    let mut out = out.lock();
    if args.json {
        let pieces: Vec<String> = ids
            .iter()
            .map(|&id| {
                String::from_utf8_lossy(tok.token_to_piece(id, true).unwrap_or_default())
                    .into_owned()
            })
            .collect();
        writeln!(out, "{}", json!({ "ids": ids, "pieces": pieces }))?;
    } else if args.ids {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(out, "[{}]", list.join(", "))?;
    } else {
        for &id in &ids {
            let piece = String::from_utf8_lossy(tok.token_to_piece(id, true)?).into_owned();
            writeln!(out, "{id:6} -> '{piece}'")?;
        }
    }
    Ok(())
}

/// Options of `nanorun logits`.
#[derive(clap::Args, Debug)]
pub struct LogitsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Token ids, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    ids: Vec<u32>,
    /// Output file: little-endian f32, one row of n_vocab per position.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `logits`. The K/V cache is F32 unless `--cache-type-k/v` were given explicitly (the
/// reference fixtures were made that way).
pub fn logits(
    args: &LogitsArgs,
    explicit_k: bool,
    explicit_v: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let n_threads = args.model.n_threads()?;
    let loaded = args.model.load()?;
    let model = &loaded.model;
    let mut cfg = args.model.kv_config(model)?;
    cfg.n_blocks = cfg.n_blocks.max(args.ids.len().div_ceil(cfg.block_size));
    if !explicit_k {
        cfg.type_k = CacheType::F32;
    }
    if !explicit_v {
        cfg.type_v = CacheType::F32;
    }
    let mut kv = KvCache::new(model.config(), cfg)?;
    kv.add_sequence(0)?;
    kv.grow_to(0, args.ids.len())?;
    let mut batch = Batch::new();
    for (i, &t) in args.ids.iter().enumerate() {
        batch.push(t, i, 0, true);
    }
    let mut st = ForwardState::new(n_threads);
    let rows = model.forward(&batch, &mut kv, &mut st)?;
    let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&args.out, bytes).map_err(|e| format!("{}: {e}", args.out.display()))?;
    eprintln!(
        "wrote {} rows of {} logits to {}",
        args.ids.len(),
        model.config().n_vocab,
        args.out.display()
    );
    Ok(())
}
