//! Issue 7's memory target on the default model: peak resident memory stays within the model
//! file + the KV cache + 64 MiB, with the matrices repacked at load (their mapped pages are
//! released as each is copied), through a 448-token prompt batch and decode steps. Its own
//! test binary, so that the peak is this test's alone.

use nanorun::{Batch, ForwardState, KvCache, KvCacheConfig, Model};

/// This process's peak resident set (`VmHWM`), in bytes.
#[cfg(target_os = "linux")]
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[cfg(target_os = "linux")]
#[test]
fn peak_memory_is_within_the_file_plus_the_kv_cache_plus_64_mib() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/gemma-3-270m-q4_k_m.gguf");
    if !path.is_file() {
        eprintln!("SKIPPED peak memory: {} absent", path.display());
        return;
    }
    let file = std::fs::metadata(&path).unwrap().len();
    let model = Model::open(&path).unwrap();
    let c = model.config().clone();
    let n_ctx = 512;
    let mut kv = KvCache::new(&c, KvCacheConfig::for_context(n_ctx)).unwrap();
    // An upper bound of the cache: every layer's K and V for the whole context in f32 (it is
    // f16 by default).
    let kv_bytes: usize = c
        .layers
        .iter()
        .map(|l| 2 * n_ctx * l.attention.n_head_kv * c.head_dim_k.max(c.head_dim_v) * 4)
        .sum();
    let mut st = ForwardState::new(2);
    kv.add_sequence(0).unwrap();
    // A long prompt in one batch: its activation rows are the largest buffers of a pass, and
    // its embedding lookups touch scattered rows of the (released) token embedding.
    let prompt: Vec<u32> = (0..448).map(|i| 100 + 577 * i).collect();
    kv.grow_to(0, prompt.len()).unwrap();
    let mut batch = Batch::new();
    batch.push_sequence(&prompt, 0, 0, true);
    model.forward(&batch, &mut kv, &mut st).unwrap();
    for i in 0..16 {
        let pos = prompt.len() + i;
        kv.grow_to(0, pos + 1).unwrap();
        batch.clear();
        batch.push(200 + i as u32, pos, 0, true);
        model.forward(&batch, &mut kv, &mut st).unwrap();
    }
    let peak = peak_rss();
    let limit = file + kv_bytes as u64 + (64 << 20);
    eprintln!(
        "peak RSS {:.1} MiB; file {:.1} MiB + KV ≤ {:.1} MiB + 64 MiB = {:.1} MiB",
        peak as f64 / 1048576.0,
        file as f64 / 1048576.0,
        kv_bytes as f64 / 1048576.0,
        limit as f64 / 1048576.0
    );
    assert!(peak <= limit, "peak RSS {peak} > {limit}");
}
