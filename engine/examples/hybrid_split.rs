//! Where a Granite-4.0-H-shaped hybrid spends its time per token: attention layers vs Mamba2
//! layers vs FFNs vs the rest (embeddings, final norm, output projection).
//!
//! Writes a random-weight `granitehybrid` GGUF (Q4_K matrices, Q6_K embedding/output, F32
//! norms and SSM vectors; weights are random rows repeated, which does not change the speed)
//! unless the file exists, then runs a prompt and token-by-token decode with profiling on.
//!
//! ```text
//! cargo run --release -p nanorun --example hybrid_split -- [--out PATH] [-t THREADS]
//!     [--prompt N] [--gen N] [--small] [--chunked]
//! ```
//!
//! The default shape follows Granite 4.0-H 1B: 40 layers of width 1536 (4 of them attention:
//! 12 query / 4 KV heads of 128, NoPE), Mamba2 with d_inner 3072 (48 heads of 64), d_state 128,
//! 1 group, d_conv 4; dense SwiGLU FFN of 4096 in every layer; vocabulary 100352.
//! `--small` makes a 4-layer toy for a quick check; `--chunked` runs the prompt with the
//! chunked scan instead of the (default) step-by-step one.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nanorun::formats::{GgmlType, GgufWriter, MetadataArray, MetadataValue, StringArray};
use nanorun::kernels::Kernels;
use nanorun::{Batch, ForwardState, KvCache, KvCacheConfig, Model};

struct Shape {
    n_layer: usize,
    n_embd: usize,
    n_ff: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    attn_layers: Vec<usize>,
    d_inner: usize,
    d_state: usize,
    n_group: usize,
    ssm_heads: usize,
    d_conv: usize,
    n_vocab: usize,
}

impl Shape {
    fn granite_4_h_1b() -> Shape {
        Shape {
            n_layer: 40,
            n_embd: 1536,
            n_ff: 4096,
            n_head: 12,
            n_head_kv: 4,
            head_dim: 128,
            attn_layers: vec![5, 15, 25, 35],
            d_inner: 3072,
            d_state: 128,
            n_group: 1,
            ssm_heads: 48,
            d_conv: 4,
            n_vocab: 100_352,
        }
    }

    fn small() -> Shape {
        Shape {
            n_layer: 4,
            n_embd: 256,
            n_ff: 512,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 64,
            attn_layers: vec![1, 3],
            d_inner: 512,
            d_state: 64,
            n_group: 1,
            ssm_heads: 8,
            d_conv: 4,
            n_vocab: 1024,
        }
    }
}

/// Deterministic pseudo-random values in [-scale, scale].
struct Rng(u64);

impl Rng {
    fn next(&mut self, scale: f32) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }
}

/// A `rows × cols` matrix of type `ty`: 64 random rows, repeated.
fn matrix(k: &Kernels, rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let row_bytes = ty.row_bytes(cols as u64).expect("row fits the type") as usize;
    let distinct = rows.min(64);
    let mut pattern = vec![0u8; distinct * row_bytes];
    let mut x = vec![0f32; cols];
    let scale = 1.0 / (cols as f32).sqrt();
    for r in 0..distinct {
        x.iter_mut().for_each(|v| *v = rng.next(scale));
        k.quantize_row(ty, &x, &mut pattern[r * row_bytes..(r + 1) * row_bytes])
            .expect("quantizable row");
    }
    let mut out = Vec::with_capacity(rows * row_bytes);
    while out.len() < rows * row_bytes {
        let n = (rows * row_bytes - out.len()).min(pattern.len());
        out.extend_from_slice(&pattern[..n]);
    }
    out
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn write_model(path: &PathBuf, s: &Shape) -> Result<(), Box<dyn std::error::Error>> {
    let k = Kernels::active()?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut w = GgufWriter::new();
    let a = "granitehybrid";
    w.set_str("general.architecture", a);
    w.set_str("general.name", "granite-4.0-h-1b-shaped-random");
    for (key, v) in [
        ("block_count", s.n_layer),
        ("context_length", 1 << 20),
        ("embedding_length", s.n_embd),
        ("feed_forward_length", s.n_ff),
        ("attention.head_count", s.n_head),
        ("attention.key_length", s.head_dim),
        ("attention.value_length", s.head_dim),
        ("ssm.conv_kernel", s.d_conv),
        ("ssm.inner_size", s.d_inner),
        ("ssm.state_size", s.d_state),
        ("ssm.group_count", s.n_group),
        ("ssm.time_step_rank", s.ssm_heads),
    ] {
        w.set_u32(&format!("{a}.{key}"), v as u32);
    }
    let kv: Vec<u32> = (0..s.n_layer)
        .map(|l| match s.attn_layers.contains(&l) {
            true => s.n_head_kv as u32,
            false => 0,
        })
        .collect();
    w.set_array(
        &format!("{a}.attention.head_count_kv"),
        MetadataArray::U32(kv),
    );
    w.set(
        &format!("{a}.rope.scaling.finetuned"),
        MetadataValue::Bool(false),
    );
    for (key, v) in [
        ("attention.layer_norm_rms_epsilon", 1e-5),
        ("embedding_scale", 12.0),
        ("residual_scale", 0.246),
        ("attention.scale", 0.0078125),
        ("logit_scale", 6.0),
    ] {
        w.set_f32(&format!("{a}.{key}"), v);
    }

    add_vocab(&mut w, s.n_vocab);

    let e = s.n_embd as u64;
    let mut add = |name: String, ty: GgmlType, dims: &[u64], data: Vec<u8>| {
        w.add_tensor(&name, ty, dims, data)
    };
    let q = GgmlType::Q4_K;
    add(
        "token_embd.weight".into(),
        GgmlType::Q6_K,
        &[e, s.n_vocab as u64],
        matrix(k, &mut rng, GgmlType::Q6_K, s.n_vocab, s.n_embd),
    )?;
    add(
        "output_norm.weight".into(),
        GgmlType::F32,
        &[e],
        f32s(&vec![1.0; s.n_embd]),
    )?;
    let ch = s.d_inner + 2 * s.n_group * s.d_state;
    for l in 0..s.n_layer {
        let n = |t: &str| format!("blk.{l}.{t}");
        let ones = |len: usize| f32s(&vec![1.0; len]);
        add(n("attn_norm.weight"), GgmlType::F32, &[e], ones(s.n_embd))?;
        add(n("ffn_norm.weight"), GgmlType::F32, &[e], ones(s.n_embd))?;
        for (t, rows, cols) in [
            ("ffn_gate.weight", s.n_ff, s.n_embd),
            ("ffn_up.weight", s.n_ff, s.n_embd),
            ("ffn_down.weight", s.n_embd, s.n_ff),
        ] {
            let m = matrix(k, &mut rng, q, rows, cols);
            add(n(t), q, &[cols as u64, rows as u64], m)?;
        }
        if s.attn_layers.contains(&l) {
            let (qd, kd) = (s.n_head * s.head_dim, s.n_head_kv * s.head_dim);
            for (t, rows, cols) in [
                ("attn_q.weight", qd, s.n_embd),
                ("attn_k.weight", kd, s.n_embd),
                ("attn_v.weight", kd, s.n_embd),
                ("attn_output.weight", s.n_embd, qd),
            ] {
                let m = matrix(k, &mut rng, q, rows, cols);
                add(n(t), q, &[cols as u64, rows as u64], m)?;
            }
            continue;
        }
        let in_rows = s.d_inner + ch + s.ssm_heads;
        let m = matrix(k, &mut rng, q, in_rows, s.n_embd);
        add(n("ssm_in.weight"), q, &[e, in_rows as u64], m)?;
        let m = matrix(k, &mut rng, q, s.n_embd, s.d_inner);
        add(n("ssm_out.weight"), q, &[s.d_inner as u64, e], m)?;
        let conv: Vec<f32> = (0..ch * s.d_conv).map(|_| rng.next(0.5)).collect();
        add(
            n("ssm_conv1d.weight"),
            GgmlType::F32,
            &[s.d_conv as u64, ch as u64],
            f32s(&conv),
        )?;
        add(n("ssm_conv1d.bias"), GgmlType::F32, &[ch as u64], ones(ch))?;
        let h = s.ssm_heads as u64;
        let heads = |rng: &mut Rng, base: f32| -> Vec<u8> {
            f32s(
                &(0..s.ssm_heads)
                    .map(|_| base + rng.next(0.5))
                    .collect::<Vec<_>>(),
            )
        };
        add(n("ssm_dt.bias"), GgmlType::F32, &[h], heads(&mut rng, -2.0))?;
        add(n("ssm_a"), GgmlType::F32, &[1, h], heads(&mut rng, -1.0))?;
        add(n("ssm_d"), GgmlType::F32, &[1, h], heads(&mut rng, 1.0))?;
        let gs = (s.d_inner / s.n_group) as u64;
        add(
            n("ssm_norm.weight"),
            GgmlType::F32,
            &[gs, s.n_group as u64],
            ones(s.d_inner),
        )?;
    }
    w.write_file(path)?;
    Ok(())
}

/// A SentencePiece-style vocabulary llama.cpp accepts (so that llama-bench can load the file
/// for a side-by-side measurement): `<unk> <s> </s>`, the 256 byte tokens, then filler pieces.
fn add_vocab(w: &mut GgufWriter<'_>, n_vocab: usize) {
    let mut tokens = StringArray::default();
    let mut types = Vec::with_capacity(n_vocab);
    for (i, t) in ["<unk>", "<s>", "</s>"].iter().enumerate() {
        tokens.push(t.as_bytes());
        types.push(if i == 0 { 2 } else { 3 });
    }
    for b in 0..256 {
        tokens.push(format!("<0x{b:02X}>").as_bytes());
        types.push(6);
    }
    for i in tokens.len()..n_vocab {
        tokens.push(format!("\u{2581}t{i}").as_bytes());
        types.push(1);
    }
    w.set_str("tokenizer.ggml.model", "llama");
    w.set_array("tokenizer.ggml.tokens", MetadataArray::String(tokens));
    w.set_array(
        "tokenizer.ggml.scores",
        MetadataArray::F32((0..n_vocab).map(|i| -(i as f32)).collect()),
    );
    w.set_array("tokenizer.ggml.token_type", MetadataArray::I32(types));
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
}

fn arg<T: std::str::FromStr>(args: &[String], flag: &str, default: T) -> T {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e3 / n.max(1) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let small = args.iter().any(|a| a == "--small");
    let shape = if small {
        Shape::small()
    } else {
        Shape::granite_4_h_1b()
    };
    let default_out = match small {
        true => "/tmp/granitehybrid-small-random-q4k.gguf",
        false => "/tmp/granitehybrid-1b-random-q4k.gguf",
    };
    let out = PathBuf::from(arg(&args, "--out", default_out.to_string()));
    let threads: usize = arg(&args, "-t", 2);
    let n_prompt: usize = arg(&args, "--prompt", 128);
    let n_gen: usize = arg(&args, "--gen", 32);
    if !out.exists() {
        let t = Instant::now();
        write_model(&out, &shape)?;
        eprintln!(
            "wrote {} in {:.1} s",
            out.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let model = Model::open(&out)?;
    let c = model.config();
    let n_attn = c
        .layers
        .iter()
        .filter(|l| l.kind == nanorun::model::config::LayerKind::Attention)
        .count();
    let n_ssm = c.n_layer() - n_attn;
    println!(
        "{}: {} layers ({n_attn} attention, {n_ssm} Mamba2), {:.0} MB of weights per token, {threads} threads, ISA {:?}",
        out.display(),
        c.n_layer(),
        model.weight_bytes_per_token() as f64 / 1e6,
        model.kernels().isa()
    );
    let mut kv = KvCache::new(c, KvCacheConfig::for_context(n_prompt + n_gen + 16))?;
    let mut st = ForwardState::new(threads);
    if args.iter().any(|a| a == "--chunked") {
        st.set_ssm_scan(nanorun::model::ssm::ScanMode::Chunked);
    }
    kv.add_sequence(0)?;
    let tokens: Vec<u32> = (0..n_prompt + n_gen)
        .map(|i| (i * 7919 % c.n_vocab) as u32)
        .collect();

    st.set_profiling(true);
    kv.grow_to(0, n_prompt)?;
    let mut batch = Batch::new();
    batch.push_sequence(&tokens[..n_prompt], 0, 0, true);
    let t = Instant::now();
    model.forward(&batch, &mut kv, &mut st)?;
    let prefill = t.elapsed();
    let p = st.profile().unwrap_or_default();
    println!(
        "prefill {n_prompt} tokens: {:.1} tok/s; per token: attention {:.3} ms, Mamba2 {:.3} ms, FFN {:.3} ms, other {:.3} ms",
        n_prompt as f64 / prefill.as_secs_f64(),
        ms(p.attention, n_prompt),
        ms(p.mamba2, n_prompt),
        ms(p.ffn, n_prompt),
        ms(p.other, n_prompt),
    );

    st.set_profiling(true);
    let t = Instant::now();
    for (pos, &tok) in tokens.iter().enumerate().skip(n_prompt) {
        kv.grow_to(0, pos + 1)?;
        batch.clear();
        batch.push(tok, pos, 0, true);
        model.forward(&batch, &mut kv, &mut st)?;
    }
    let decode = t.elapsed();
    let p = st.profile().unwrap_or_default();
    let total = p.attention + p.mamba2 + p.ffn + p.other;
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / total.as_secs_f64();
    println!(
        "decode {n_gen} tokens: {:.2} tok/s, {:.2} ms/token",
        n_gen as f64 / decode.as_secs_f64(),
        ms(decode, n_gen)
    );
    for (name, d, layers) in [
        ("attention", p.attention, n_attn),
        ("Mamba2", p.mamba2, n_ssm),
        ("FFN", p.ffn, c.n_layer()),
        ("other", p.other, 0),
    ] {
        let per_layer = match layers {
            0 => String::new(),
            n => format!(" ({:.3} ms per layer, {n} layers)", ms(d, n_gen * n)),
        };
        println!(
            "  {name:<9} {:7.3} ms/token  {:5.1} %{per_layer}",
            ms(d, n_gen),
            pct(d)
        );
    }
    Ok(())
}
