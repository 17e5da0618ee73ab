//! Options shared by the commands that run a model (`nanorun`, `chat`): the model, threads,
//! context, KV cache types and sampling, spelled as llama.cpp spells them.

use std::path::PathBuf;

use nanorun::formats::Gguf;
use nanorun::sampler::SamplingParams;
use nanorun::tokenizer::Tokenizer;
use nanorun::{CacheType, KvCacheConfig, Model};

/// Where the default model lives, relative to the working directory (the checkout).
pub const DEFAULT_MODEL: &str = "models/gemma-3-270m-q4_k_m.gguf";

/// Model and runtime options.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// The GGUF model file (default: the default model, Gemma 3 270M Q4_K_M, in
    /// `models/`, fetched with `scripts/fetch-model.sh` when missing).
    #[arg(short = 'm', long = "model")]
    pub model: Option<PathBuf>,
    /// Threads (default: all available cores).
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Context size in tokens (default 4096, at most the model's training context).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Tokens per prefill batch.
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    pub batch_size: usize,
    /// K cache type: f32, f16 or q8_0.
    #[arg(long = "cache-type-k", short = 'k', default_value = "f16", value_parser = parse_cache_type)]
    pub cache_type_k: CacheType,
    /// V cache type: f32, f16 or q8_0.
    #[arg(long = "cache-type-v", short = 'v', default_value = "f16", value_parser = parse_cache_type)]
    pub cache_type_v: CacheType,
}

fn parse_cache_type(s: &str) -> Result<CacheType, String> {
    CacheType::parse(s)
        .ok_or_else(|| format!("unknown cache type '{s}' (expected f32, f16 or q8_0)"))
}

/// Sampling options.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature (0 = greedy).
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temp: f32,
    /// Top-k (0 = off).
    #[arg(long = "top-k", default_value_t = 40)]
    pub top_k: u32,
    /// Top-p (1 = off).
    #[arg(long = "top-p", default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p (0 = off).
    #[arg(long = "min-p", default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Tokens considered by the repetition penalty (0 = off, -1 = all).
    #[arg(
        long = "repeat-last-n",
        default_value_t = 64,
        allow_negative_numbers = true
    )]
    pub repeat_last_n: i32,
    /// Random seed (default: random).
    #[arg(short = 's', long = "seed")]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The sampling parameters (validated later by the sampler).
    pub fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed: self.seed,
            ..SamplingParams::default()
        }
    }
}

/// A loaded model with its tokenizer.
pub struct Loaded {
    /// The model.
    pub model: Model,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// The opened file (metadata for chat templates).
    pub gguf: std::sync::Arc<Gguf>,
}

impl ModelArgs {
    /// The model path: `-m`, or the default model (fetched when missing and the fetch
    /// script is at hand).
    pub fn path(&self) -> Result<PathBuf, String> {
        if let Some(m) = &self.model {
            return Ok(m.clone());
        }
        let default = PathBuf::from(DEFAULT_MODEL);
        if default.is_file() {
            return Ok(default);
        }
        let script = PathBuf::from("scripts/fetch-model.sh");
        if !script.is_file() {
            return Err(format!(
                "no model given and {DEFAULT_MODEL} is absent: pass -m MODEL.gguf (or run scripts/fetch-model.sh in the nanorun checkout)"
            ));
        }
        eprintln!("no -m given: fetching the default model into {DEFAULT_MODEL}");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .status()
            .map_err(|e| format!("could not run {}: {e}", script.display()))?;
        if !status.success() || !default.is_file() {
            return Err(format!(
                "fetching the default model failed ({status}); pass -m MODEL.gguf"
            ));
        }
        Ok(default)
    }

    /// Opens the model and its tokenizer.
    pub fn load(&self) -> Result<Loaded, Box<dyn std::error::Error>> {
        let path = self.path()?;
        let model = Model::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let gguf = model.gguf().clone();
        let tokenizer =
            Tokenizer::from_gguf(&gguf).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Loaded {
            model,
            tokenizer,
            gguf,
        })
    }

    /// Threads to use.
    pub fn n_threads(&self) -> Result<usize, String> {
        match self.threads {
            Some(0) => Err("-t must be at least 1".into()),
            Some(t) if t > 1024 => Err(format!("-t {t} is more threads than makes sense")),
            Some(t) => Ok(t),
            None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
        }
    }

    /// The context length in tokens: `-c`, or 4096 capped at the model's training context.
    pub fn context(&self, model: &Model) -> Result<usize, String> {
        let train = model.config().n_ctx_train.max(1);
        match self.ctx_size {
            Some(0) => Err("-c must be at least 1".into()),
            Some(c) if c > 1 << 22 => Err(format!(
                "-c {c} is larger than nanorun supports (4M tokens)"
            )),
            Some(c) => Ok(c),
            None => Ok(4096.min(train)),
        }
    }

    /// The KV cache configuration for `model`.
    pub fn kv_config(&self, model: &Model) -> Result<KvCacheConfig, String> {
        let n_ctx = self.context(model)?;
        if self.batch_size == 0 {
            return Err("-b must be at least 1".into());
        }
        let mut cfg = KvCacheConfig::for_context(n_ctx);
        cfg.type_k = self.cache_type_k;
        cfg.type_v = self.cache_type_v;
        Ok(cfg)
    }
}
