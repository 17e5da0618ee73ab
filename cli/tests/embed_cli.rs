//! `nanorun embed`, `nanorun bench --embed` and `nanorun serve` with an embedding model, end
//! to end: the reference form (`--ids … --out FILE`) reproduces llama.cpp's pooled vectors of
//! the encoder fixtures, text input with `--json --normalize`, errors; the benchmark's JSON and
//! table; `/v1/embeddings` over loopback (string, list and token inputs, base64, dimensions,
//! usage, error bodies) and, when the Python `openai` package is installed (`python3`, or the
//! interpreter in `$NANORUN_PYTHON`), the real OpenAI client.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

mod common;
use common::Server;

const SEQS: [&str; 3] = [
    "2,16,113,210,307,89,3",
    "2,77,174,271,53,150,247,29,126,223,5,3",
    "2,138,235,17,114,211,308,90,187,284,66,163,260,42,139,236,18,115,212,309,91,188,285,3",
];

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/data/embed/{name}"))
}

fn nanorun() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nanorun"))
}

fn read_f32(path: &PathBuf) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn embed_ids_out_matches_llama_cpp() {
    for model in ["bert-Q8_0", "nomic-bert-Q4_K_M"] {
        let out =
            std::env::temp_dir().join(format!("nanorun-embed-{model}-{}.f32", std::process::id()));
        let mut cmd = nanorun();
        cmd.args(["embed", "-t", "2", "-m"])
            .arg(data(&format!("{model}.gguf")));
        for s in SEQS {
            cmd.args(["--ids", s]);
        }
        let st = cmd.arg("--out").arg(&out).status().unwrap();
        assert!(st.success(), "{model}");
        let ours = read_f32(&out);
        let want = read_f32(&data(&format!("{model}.emb.f32")));
        let _ = std::fs::remove_file(&out);
        assert_eq!(ours.len(), 3 * 256, "{model}: [n_seq][n_embd_out] f32");
        for (s, (e, l)) in ours.chunks(256).zip(want.chunks(256)).enumerate() {
            let rms = (l.iter().map(|v| v * v).sum::<f32>() / 256.0).sqrt();
            let max = e
                .iter()
                .zip(l)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(max / rms < 0.2, "{model} seq {s}: rel_max {}", max / rms);
        }
    }
}

#[test]
fn embed_text_json_normalized_and_errors() {
    let out = nanorun()
        .args(["embed", "-t", "1", "--json", "--normalize", "-m"])
        .arg(data("bert-Q8_0.gguf"))
        .args(["-p", "hello world", "-p", "the lazy dog"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["n_tokens"], 4);
    let e: Vec<f64> = v["data"][1]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(e.len(), 256);
    assert!((e.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-4);

    for args in [vec!["--ids", "2,999,3"], vec!["--ids", "2,x"], vec![]] {
        let out = nanorun()
            .args(["embed", "-m"])
            .arg(data("bert-Q8_0.gguf"))
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("nanorun: error:"), "{args:?}: {err}");
    }
}

#[test]
fn bench_embed_reports_every_batch_size() {
    let dir = std::env::temp_dir().join(format!("nanorun-bench-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sentences.txt");
    std::fs::write(
        &file,
        "hello world\n\nthe lazy dog jumps\na quick brown fox\n",
    )
    .unwrap();
    let out = nanorun()
        .args([
            "bench",
            "--embed",
            "-t",
            "1",
            "-r",
            "2",
            "--batch-sizes",
            "1,2,4",
            "--json",
        ])
        .args(["-f".as_ref(), file.as_os_str(), "-m".as_ref()])
        .arg(data("bert-Q8_0.gguf"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    let batches: Vec<u64> = rows
        .iter()
        .map(|r| r["batch_size"].as_u64().unwrap())
        .collect();
    assert_eq!(batches, [1, 2, 4]);
    // Three sentences, cycled to a multiple of the batch size.
    let sentences: Vec<u64> = rows
        .iter()
        .map(|r| r["n_sentences"].as_u64().unwrap())
        .collect();
    assert_eq!(sentences, [3, 4, 4]);
    for r in rows {
        assert!(r["sentences_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["tok_per_s"].as_f64().unwrap() > r["sentences_per_s"].as_f64().unwrap());
        assert_eq!(r["samples_sentences_per_s"].as_array().unwrap().len(), 2);
    }
    // The table form, with the built-in sentences.
    let out = nanorun()
        .args(["bench", "--embed", "-r", "1", "--batch-sizes", "32", "-m"])
        .arg(data("nomic-bert-Q4_K_M.gguf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("sentences/s") && table.contains("| 1 | 32 | 32 |"),
        "{table}"
    );
    // A bad batch size is an error.
    let out = nanorun()
        .args(["bench", "--embed", "--batch-sizes", "0", "-m"])
        .arg(data("bert-Q8_0.gguf"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

fn vector(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn v1_embeddings_endpoint() {
    let srv = Server::start(&data("bert-Q8_0.gguf"), &[], Duration::from_secs(60));
    let (st, models) = srv.request_json("GET", "/v1/models", "");
    assert_eq!(st, 200);
    assert_eq!(models["data"][0]["id"], "bert-Q8_0");

    // Token ids: the normalised llama.cpp vector.
    let ids: Vec<Vec<u32>> = SEQS
        .iter()
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    let (st, v) = srv.request_json(
        "POST",
        "/v1/embeddings",
        &json!({"model": "bert-Q8_0", "input": ids}).to_string(),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["usage"]["prompt_tokens"], 7 + 12 + 24);
    let want = read_f32(&data("bert-Q8_0.emb.f32"));
    for (s, l) in want.chunks(256).enumerate() {
        let e = vector(&v["data"][s]["embedding"]);
        assert_eq!(v["data"][s]["index"], s);
        let n = l.iter().map(|x| x * x).sum::<f32>().sqrt();
        let max = e
            .iter()
            .zip(l)
            .map(|(a, b)| (a - b / n).abs())
            .fold(0.0, f32::max);
        assert!(max < 1e-3, "seq {s}: {max}");
    }

    // A string, a list of strings, base64 and dimensions.
    let (st, one) = srv.request_json("POST", "/v1/embeddings", r#"{"input": "hello world"}"#);
    assert_eq!(st, 200);
    assert_eq!(one["usage"]["total_tokens"], 4);
    let (_, two) = srv.request_json(
        "POST",
        "/v1/embeddings",
        r#"{"input": ["the lazy dog", "hello world"], "encoding_format": "base64"}"#,
    );
    assert!(two["data"][1]["embedding"].is_string());
    let (_, short) = srv.request_json(
        "POST",
        "/v1/embeddings",
        r#"{"input": "hello world", "dimensions": 64}"#,
    );
    let s = vector(&short["data"][0]["embedding"]);
    assert_eq!(s.len(), 64);
    assert!((s.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);

    // Errors.
    for (body, status, param) in [
        (r#"{"input": []}"#, 400, "input"),
        (r#"{"input": [1, "a"]}"#, 400, "input"),
        (r#"{"input": [[2, 99999, 3]]}"#, 400, "input"),
        (
            r#"{"input": "x", "encoding_format": "hex"}"#,
            400,
            "encoding_format",
        ),
        (r#"{"input": "x", "dimensions": 0}"#, 400, "dimensions"),
    ] {
        let (st, e) = srv.request_json("POST", "/v1/embeddings", body);
        assert_eq!(st, status, "{body}: {e}");
        assert_eq!(e["error"]["param"], param, "{body}");
    }
    let (st, e) = srv.request_json("POST", "/v1/embeddings", r#"{"model": "x", "input": "a"}"#);
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );
    let (st, _) = srv.request_json("POST", "/v1/chat/completions", "{}");
    assert_eq!(st, 404);
}

#[test]
fn the_python_openai_client_gets_embeddings() {
    let python = std::env::var("NANORUN_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = Command::new(&python)
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!("SKIPPED: the Python openai package is not installed ({python})");
        return;
    }
    let srv = Server::start(&data("bert-Q8_0.gguf"), &[], Duration::from_secs(60));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openai_embeddings.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(format!("http://127.0.0.1:{}/v1", srv.port))
        .arg("bert-Q8_0")
        .arg(data("bert-Q8_0.emb.f32"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("openai embeddings: all checks passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn concurrent_requests_share_batches_and_match_each_alone() {
    let srv = Server::start(&data("nomic-bert-Q8_0.gguf"), &[], Duration::from_secs(60));
    let bodies: Vec<String> = (0..8)
        .map(|i| match i {
            3 => r#"{"input": [[2, 99999, 3]]}"#.to_string(),
            _ => json!({"input": [format!("hello world {i}"), "the lazy dog"]}).to_string(),
        })
        .collect();
    let alone: Vec<(u16, Value)> = bodies
        .iter()
        .map(|b| srv.request_json("POST", "/v1/embeddings", b))
        .collect();
    let together: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|b| {
                let srv = &srv;
                s.spawn(move || srv.request_json("POST", "/v1/embeddings", b))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, ((sa, va), (st, vt))) in alone.iter().zip(&together).enumerate() {
        assert_eq!(sa, st, "request {i}");
        assert_eq!(*sa, if i == 3 { 400 } else { 200 }, "request {i}: {va}");
        assert_eq!(
            va, vt,
            "request {i}: batched with others differs from alone"
        );
    }
}
