//! `nanorun bench`: prompt-processing and generation speed, llama-bench style. For each thread
//! count and depth D (`-d`, 0 by default): `ppN` runs an N-token prompt as one batch; `tgN`
//! generates N tokens one at a time; both after an untimed D-token prompt has filled the cache
//! (named `ppN @ dD`, `tgN @ dD` where D > 0). Repeated `-r` times; mean ± std of tok/s, plus the weight
//! bytes each decode step reads and the bandwidth that implies (with `--bandwidth`, also as a
//! fraction of the read bandwidth measured on as many threads in the same run). `--profile`
//! adds where each test's step time goes (see `bench_profile`). `--embed`
//! benchmarks an embedding model instead (sentences/s per batch size, see `bench_embed`).

use std::time::Instant;

use nanorun::model::profile::LayerTimes;
use nanorun::{Backend, Batch, Device, ForwardState, KvCache, KvCacheConfig, Model};
use serde_json::json;

/// Options of `nanorun bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The GGUF model file.
    #[arg(short = 'm', long = "model")]
    pub model: std::path::PathBuf,
    /// Prompt lengths (comma-separated; 0 = none).
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "128"
    )]
    n_prompt: Vec<usize>,
    /// Generation lengths (comma-separated; 0 = none).
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "64"
    )]
    n_gen: Vec<usize>,
    /// Context depths (comma-separated): each test runs after a prompt of this many tokens
    /// has filled the KV cache (untimed), as llama-bench's `-d`.
    #[arg(
        short = 'd',
        long = "n-depth",
        value_delimiter = ',',
        default_value = "0"
    )]
    n_depth: Vec<usize>,
    /// Thread counts (comma-separated).
    #[arg(
        short = 't',
        long = "threads",
        value_delimiter = ',',
        default_value = "1"
    )]
    pub threads: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
    pub repetitions: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also measure the read bandwidth (summing a 512 MiB buffer, best of 3) on each thread
    /// count before its tests, and give decode's GB/s as a fraction of it.
    #[arg(long)]
    pub bandwidth: bool,
    /// Also time each kind of weight matrix's matmuls and the rest of the forward pass during
    /// the measured repetitions (CPU only), and print where a step's time goes.
    #[arg(long)]
    pub profile: bool,
    /// Where the forward pass runs: cpu, cuda (device 0) or cuda:N (`-t` is then ignored).
    #[arg(long, default_value = "cpu", value_parser = crate::run::parse_device)]
    pub device: Device,
    /// Benchmark an embedding model: sentences/s and tokens/s per batch size.
    #[arg(long)]
    pub embed: bool,
    /// Sentences per forward pass with `--embed` (comma-separated).
    #[arg(
        long = "batch-sizes",
        value_delimiter = ',',
        default_value = "1,8,32",
        requires = "embed"
    )]
    pub batch_sizes: Vec<usize>,
    /// Sentences for `--embed`, one per line (default: 32 built-in English sentences).
    #[arg(short = 'f', long = "file", requires = "embed")]
    pub file: Option<std::path::PathBuf>,
}

impl BenchArgs {
    /// The model's file name, for the results.
    pub fn model_file(&self) -> String {
        self.model
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Token ids for a test: deterministic, spread over the vocabulary, never special ids 0..3.
fn test_tokens(n: usize, n_vocab: usize) -> Vec<u32> {
    (0..n)
        .map(|i| (4 + (i * 7919 + 13) % (n_vocab.saturating_sub(4)).max(1)) as u32)
        .collect()
}

/// Tokens per forward pass of the untimed prompt that fills the cache to a test's depth.
const DEPTH_CHUNK: usize = 512;

/// One run of a test after `depth` tokens have filled the cache; returns the test's seconds.
/// With `profile`, the test's part (not the filling) is timed per part and added to it.
fn run_once(
    model: &Model,
    state: &mut State,
    (depth, pp, tg): (usize, usize, usize),
    profile: Option<&mut LayerTimes>,
) -> Result<f64, Box<dyn std::error::Error>> {
    let n_vocab = model.config().n_vocab;
    let mut kv = KvCache::new(
        model.config(),
        KvCacheConfig::for_context((depth + pp + tg).max(1) + 16),
    )?;
    kv.add_sequence(0)?;
    let mut batch = Batch::new();
    state.set_profiling(false);
    let st = state.backend();
    let filler = test_tokens(depth, n_vocab);
    for (c, chunk) in filler.chunks(DEPTH_CHUNK).enumerate() {
        let start = c * DEPTH_CHUNK;
        kv.grow_to(0, start + chunk.len())?;
        batch.clear();
        batch.push_sequence(chunk, start, 0, true);
        st.forward(model, &batch, &mut kv)?;
        kv.release_out_of_window(0);
    }
    state.set_profiling(profile.is_some());
    let st = state.backend();
    let t0 = Instant::now();
    if pp > 0 {
        kv.grow_to(0, depth + pp)?;
        batch.clear();
        batch.push_sequence(&test_tokens(pp, n_vocab), depth, 0, true);
        st.forward(model, &batch, &mut kv)?;
    }
    let toks = test_tokens(tg, n_vocab);
    for (i, &t) in toks.iter().enumerate() {
        let pos = depth + pp + i;
        kv.grow_to(0, pos + 1)?;
        batch.clear();
        batch.push(t, pos, 0, true);
        st.forward(model, &batch, &mut kv)?;
        kv.release_out_of_window(0);
    }
    let secs = t0.elapsed().as_secs_f64();
    if let (Some(acc), Some(p)) = (profile, state.profile()) {
        acc.add(&p);
    }
    Ok(secs)
}

/// Every test's depth + prompt + generated tokens within the model's context length (the
/// KV cache is sized by them).
fn check_lengths(args: &BenchArgs, n_ctx_train: usize) -> Result<(), String> {
    let longest = |v: &[usize]| v.iter().copied().max().unwrap_or(0);
    let (d, p, n) = (
        longest(&args.n_depth),
        longest(&args.n_prompt),
        longest(&args.n_gen),
    );
    match d.checked_add(p.max(n)) {
        Some(total) if total <= n_ctx_train => Ok(()),
        _ => Err(format!(
            "-d {d} with -p {p} / -n {n} needs a context of {} tokens; the model's is \
             {n_ctx_train}",
            d.saturating_add(p.max(n))
        )),
    }
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len().max(2) - 1) as f64;
    (m, var.sqrt())
}

/// Runs `bench`.
pub fn run(args: &BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.repetitions == 0 || args.threads.contains(&0) {
        return Err("-r and -t must be at least 1".into());
    }
    if args.embed {
        if args.profile {
            return Err("--profile: generation benchmarks only, not --embed".into());
        }
        if args.device != Device::Cpu {
            return Err("--device cuda: embedding benchmarks run on the CPU only".into());
        }
        return crate::bench_embed::run(args);
    }
    if let Device::Cuda(n) = args.device {
        if args.profile {
            return Err("--profile: the CPU forward pass only".into());
        }
        nanorun::backend::check_cuda(n).map_err(|e| format!("--device cuda: {e}"))?;
    }
    let model = Model::open(&args.model).map_err(|e| format!("{}: {e}", args.model.display()))?;
    check_lengths(args, model.config().n_ctx_train)?;
    let bytes = model.weight_bytes_per_token();
    let mut results = Vec::new();
    let mut profiles = Vec::new();
    let probe = (args.bandwidth && args.device == Device::Cpu)
        .then(crate::bandwidth::Probe::new)
        .transpose()?;
    if !args.json {
        let (name, rule) = match probe {
            Some(_) => (" of read bandwidth |", " ---: |"),
            None => ("", ""),
        };
        println!("| model | isa | threads | test | tok/s | GB/s (weights) |{name}");
        println!("| --- | --- | ---: | --- | ---: | ---: |{rule}");
    }
    // The CPU runs once per thread count; a GPU once.
    let threads: Vec<usize> = match args.device {
        Device::Cpu => args.threads.clone(),
        Device::Cuda(_) => vec![0],
    };
    for &t in &threads {
        let mut st = match args.device {
            Device::Cpu => State::Cpu(Box::new(ForwardState::new(t))),
            d => State::Other(
                nanorun::backend::open(&model, d, t).map_err(|e| format!("--device cuda: {e}"))?,
            ),
        };
        let isa = match args.device {
            Device::Cpu => model.kernels().isa().name(),
            Device::Cuda(_) => "cuda",
        };
        let file = args.model_file();
        let read_gbs = probe.as_ref().map(|p| {
            let pool = nanorun::kernels::ThreadPool::new(t);
            p.read_gb_per_s(&pool, 3)
        });
        if let Some(r) = read_gbs {
            if !args.json {
                println!("| {file} | - | {t} | read 512 MiB | - | {r:.2} | - |");
            }
            results.push(json!({
                "model": file, "threads": t, "test": "read_bandwidth", "read_gb_per_s": r,
            }));
        }
        let tests: Vec<(String, usize, usize, usize)> = args
            .n_depth
            .iter()
            .flat_map(|&d| {
                let at = if d > 0 {
                    format!(" @ d{d}")
                } else {
                    String::new()
                };
                let pps = args.n_prompt.iter().filter(|&&p| p > 0);
                let tgs = args.n_gen.iter().filter(|&&n| n > 0);
                pps.map(move |&p| (p, 0))
                    .chain(tgs.map(|&n| (0, n)))
                    .map(move |(p, n)| {
                        let name = if p > 0 {
                            format!("pp{p}")
                        } else {
                            format!("tg{n}")
                        };
                        (format!("{name}{at}"), d, p, n)
                    })
            })
            .collect();
        for (name, depth, pp, tg) in tests {
            run_once(&model, &mut st, (0, pp.min(16), tg.min(2)), None)?; // warm-up
            let mut times = LayerTimes::default();
            let mut tps = Vec::new();
            for _ in 0..args.repetitions {
                let profile = args.profile.then_some(&mut times);
                let secs = run_once(&model, &mut st, (depth, pp, tg), profile)?;
                tps.push((pp + tg) as f64 / secs);
            }
            let profile = (args.profile && args.device == Device::Cpu).then_some(times);
            if let Some(p) = &profile {
                profiles.push(crate::bench_profile::table(
                    &format!("{file} -t {t} {name}"),
                    p,
                ));
            }
            let (m, s) = mean_std(&tps);
            let gbs = if tg > 0 {
                Some(bytes as f64 * m / 1e9)
            } else {
                None
            };
            let fraction = gbs.zip(read_gbs).map(|(g, r)| g / r);
            if !args.json {
                let gbs = gbs.map_or("-".into(), |g| format!("{g:.2}"));
                let of_read = match (read_gbs, fraction) {
                    (None, _) => String::new(),
                    (Some(_), None) => " - |".into(),
                    (Some(_), Some(f)) => format!(" {:.0} % |", f * 100.0),
                };
                println!("| {file} | {isa} | {t} | {name} | {m:.2} ± {s:.2} | {gbs} |{of_read}");
            }
            results.push(json!({
                "model": file, "isa": isa, "threads": t, "test": name,
                "n_prompt": pp, "n_gen": tg, "n_depth": depth, "tok_per_s_mean": m, "tok_per_s_std": s,
                "samples_tok_per_s": tps, "weight_bytes_per_token": bytes, "weight_gb_per_s": gbs,
                "read_gb_per_s": read_gbs, "bandwidth_fraction": fraction,
                "profile": profile.as_ref().map(crate::bench_profile::json),
            }));
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        profiles.iter().for_each(|p| print!("{p}"));
    }
    Ok(())
}

/// The forward pass under test: the CPU's (which can profile) or another backend.
enum State {
    Cpu(Box<ForwardState>),
    Other(Box<dyn Backend>),
}

impl State {
    fn backend(&mut self) -> &mut dyn Backend {
        match self {
            State::Cpu(st) => st.as_mut(),
            State::Other(b) => b.as_mut(),
        }
    }

    /// Starts profiling from zero, or stops it.
    fn set_profiling(&mut self, on: bool) {
        if let State::Cpu(st) = self {
            st.set_profiling(on);
        }
    }

    fn profile(&self) -> Option<LayerTimes> {
        match self {
            State::Cpu(st) => st.profile(),
            State::Other(_) => None,
        }
    }
}
