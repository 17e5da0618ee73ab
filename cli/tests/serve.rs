//! `nanorun serve` end to end over loopback: a server on an ephemeral port with a
//! random-weight fixture model, plain HTTP/1.1 from std sockets. Completions and chat,
//! streamed and not; error bodies; concurrent greedy requests equal to each alone; a client
//! that disconnects mid-stream frees its blocks; and (when the Python `openai` package is
//! installed) the real OpenAI client against the server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::Server;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/data/fixtures/{name}.gguf"))
}

/// A copy of a fixture whose training context is raised to 1M tokens, so that a request can
/// keep generating for as long as a test needs (the fixtures' own context is 128 tokens, which
/// a fast CPU generates before a hang-up is noticed).
fn long_context_fixture(name: &str) -> PathBuf {
    use nanorun::formats::{Gguf, GgufWriter, MetadataValue};
    let src = Gguf::open(fixture(name)).unwrap();
    let arch = src.architecture().unwrap().to_string();
    let mut w = GgufWriter::from_gguf(&src);
    w.set(
        &format!("{arch}.context_length"),
        MetadataValue::U32(1 << 20),
    );
    let out = std::env::temp_dir().join(format!(
        "nanorun-serve-test-{}-{name}.gguf",
        std::process::id()
    ));
    w.write_file(&out).unwrap();
    out
}

/// The `data:` payloads of an SSE body.
fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn completions_chat_models_health_and_metrics() {
    let srv = Server::start(
        &fixture("gemma3-Q4_K_M"),
        &["-np", "2", "--prefix-cache", "0"],
        Duration::from_secs(120),
    );
    let (st, body) = srv.request("GET", "/health", "");
    assert_eq!((st, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (st, models) = srv.request("GET", "/v1/models", "");
    assert_eq!(st, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["id"], "gemma3-Q4_K_M");

    let (st, v) = srv.json(
        "/v1/completions",
        json!({"model": "gemma3-Q4_K_M", "prompt": [5, 6, 7, 8], "max_tokens": 6,
               "temperature": 0, "ignore_eos": true}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens"], 6);
    assert_eq!(v["usage"]["total_tokens"], 10);
    let text = v["choices"][0]["text"].as_str().unwrap().to_string();

    // The same request streamed gives the same text, in chunks, ending with [DONE].
    let body = json!({"prompt": [5, 6, 7, 8], "max_tokens": 6, "temperature": 0,
                      "ignore_eos": true, "stream": true,
                      "stream_options": {"include_usage": true}});
    let (st, sse) = srv.request("POST", "/v1/completions", &body.to_string());
    assert_eq!(st, 200);
    let data = sse_data(&sse);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{sse}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(streamed, text);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 6);
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "length"
    );

    // Chat (built-in Gemma template), streamed and not.
    let msgs = json!([{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Hello"}]);
    let (st, v) = srv.json(
        "/v1/chat/completions",
        json!({"messages": msgs, "max_tokens": 4, "temperature": 0}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let chat_text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"messages": msgs, "max_tokens": 4, "temperature": 0, "stream": true});
    let (_, sse) = srv.request("POST", "/v1/chat/completions", &body.to_string());
    let data = sse_data(&sse);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(streamed, chat_text);

    assert_eq!(srv.metric("requests_total"), 4);
    assert_eq!(srv.metric("generated_tokens_total"), 20);
    assert_eq!(srv.metric("kv_blocks_used"), 0);
    assert!(srv.metric("kv_blocks_free") > 0);
}

#[test]
fn bad_requests_get_openai_error_bodies_and_the_server_keeps_serving() {
    let srv = Server::start(&fixture("llama-Q4_K_M"), &[], Duration::from_secs(120));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("/v1/completions", "{not json".into(), 400, "JSON"),
        (
            "/v1/completions",
            json!({"model": "gpt-4", "prompt": "a"}).to_string(),
            404,
            "gpt-4",
        ),
        (
            "/v1/completions",
            json!({"prompt": vec![3; 500]}).to_string(),
            400,
            "context",
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "temperature": 7}).to_string(),
            400,
            "temperature",
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "top_p": 0}).to_string(),
            400,
            "top_p",
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "max_tokens": "many"}).to_string(),
            400,
            "max_tokens",
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "stop": [""]}).to_string(),
            400,
            "stop",
        ),
        (
            "/v1/completions",
            json!({"max_tokens": 3}).to_string(),
            400,
            "prompt",
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "n": 3}).to_string(),
            400,
            "n = 1",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": "hi"}).to_string(),
            400,
            "messages",
        ),
        // The llama fixture has no chat template.
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "x"}]}).to_string(),
            400,
            "chat template",
        ),
        ("/v1/nothing", "{}".into(), 404, "/v1/nothing"),
    ];
    for (path, body, status, needle) in &cases {
        let (st, text) = srv.request("POST", path, body);
        assert_eq!(st, *status, "{path} {body}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{body}: {msg}");
        assert!(v["error"]["type"].is_string());
    }
    let (st, _) = srv.request("GET", "/v1/completions", "");
    assert_eq!(st, 405);
    // The server still serves, and counted the errors.
    let (st, v) = srv.json(
        "/v1/completions",
        json!({"prompt": [1, 2], "max_tokens": 2}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(srv.metric("http_errors_total"), cases.len() as u64);
    drop(srv);
    // With a built-in template the same model chats.
    let srv = Server::start(
        &fixture("llama-Q4_K_M"),
        &["--chat-template", "chatml"],
        Duration::from_secs(120),
    );
    let (st, v) = srv.json(
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
}

#[test]
fn concurrent_requests_match_each_alone() {
    let srv = Server::start(
        &fixture("llama-Q4_K_M"),
        &["-np", "4", "--prefix-cache", "0"],
        Duration::from_secs(120),
    );
    let body = |i: u32| {
        json!({"prompt": (0..5 + 3 * i).map(|t| 3 + (t * 7 + i) % 300).collect::<Vec<_>>(),
               "max_tokens": 10, "temperature": 0, "ignore_eos": true})
    };
    let alone: Vec<Value> = (0..6)
        .map(|i| srv.json("/v1/completions", body(i)).1["choices"][0]["text"].clone())
        .collect();
    let port = srv.port;
    let together: Vec<Value> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let srv = &srv;
                s.spawn(move || {
                    assert_eq!(srv.port, port);
                    srv.json("/v1/completions", body(i)).1["choices"][0]["text"].clone()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(together, alone);
    assert_eq!(srv.metric("kv_blocks_used"), 0);
}

#[test]
fn a_client_that_disconnects_mid_stream_frees_its_sequence() {
    let model = long_context_fixture("llama-Q4_K_M");
    let srv = Server::start(
        &model,
        &["--prefix-cache", "0", "-c", "65536"],
        Duration::from_secs(120),
    );
    let body = json!({"prompt": [1, 2, 3], "max_tokens": 100000, "ignore_eos": true,
                      "stream": true})
    .to_string();
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 2048];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200"));
    let _ = s.read(&mut buf).unwrap();
    drop(s);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if srv.metric("requests_cancelled_total") == 1 && srv.metric("kv_blocks_used") == 0 {
            assert_eq!(srv.metric("requests_running"), 0);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        srv.metric("requests_cancelled_total"),
        1,
        "streamed request not cancelled"
    );
    // The same for a request that is not streamed: hang up while it generates.
    let body = json!({"prompt": [1, 2, 3], "max_tokens": 100000, "ignore_eos": true}).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    while srv.metric("requests_running") == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if srv.metric("requests_cancelled_total") == 2 && srv.metric("kv_blocks_used") == 0 {
            std::fs::remove_file(&model).ok();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the disconnected non-streamed request was not cancelled");
}

#[test]
fn the_python_openai_client_works_against_the_server() {
    let probe = Command::new("python3")
        .args(["-c", "import openai"])
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: the Python openai package is not installed");
        return;
    }
    let srv = Server::start(&fixture("gemma3-Q4_K_M"), &[], Duration::from_secs(120));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(srv.url())
        .arg("gemma3-Q4_K_M")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("openai client: all checks passed"),
        "{stdout}"
    );
}

/// 16 HTTP clients send random completions (streamed or not, shared or distinct prompts) and
/// some hang up mid-stream, into a cache small enough to force preemption. 2 s by default;
/// `NANORUN_SOAK_SECS=300` for the few-minute soak. No 5xx, no failed request, no block left
/// in use at the end.
#[test]
fn soak_many_clients_with_random_disconnects() {
    let secs: u64 = std::env::var("NANORUN_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let srv = Server::start(
        &fixture("llama-Q4_K_M"),
        &["-np", "6", "-c", "256", "-b", "48", "--prefix-cache", "0"],
        Duration::from_secs(120),
    );
    let deadline = Instant::now() + Duration::from_secs(secs);
    let total: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..16u64)
            .map(|c| {
                let srv = &srv;
                s.spawn(move || {
                    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ (c + 1).wrapping_mul(0x9E37_79B9);
                    let mut next = move |n: u64| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng % n
                    };
                    let mut n = 0;
                    while Instant::now() < deadline {
                        let len = 1 + next(50);
                        let seed = if next(2) == 0 { 0 } else { 1 + next(1000) };
                        let prompt: Vec<u64> =
                            (0..len).map(|i| 3 + (seed * 13 + i * 7) % 300).collect();
                        let stream = next(2) == 0;
                        let body = json!({"prompt": prompt, "max_tokens": 1 + next(40),
                                          "temperature": next(2), "stream": stream,
                                          "ignore_eos": next(2) == 0})
                        .to_string();
                        if stream && next(3) == 0 {
                            // Hang up after the first bytes.
                            let mut sock = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
                            write!(
                                sock,
                                "POST /v1/completions HTTP/1.1\r\nHost: x\r\n\
                                 Content-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                            .unwrap();
                            let mut buf = [0u8; 256];
                            let _ = sock.read(&mut buf);
                        } else {
                            let (st, text) = srv.request("POST", "/v1/completions", &body);
                            assert_eq!(st, 200, "{body}: {text}");
                            if stream {
                                assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
                            }
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        if srv.metric("requests_running") == 0
            && srv.metric("queue_depth") == 0
            && srv.metric("kv_blocks_used") == 0
        {
            assert_eq!(srv.metric("requests_failed_total"), 0);
            assert_eq!(srv.metric("requests_total"), total as u64);
            eprintln!(
                "soak: {total} requests in {secs} s, {} preemptions, {} cancelled",
                srv.metric("preemptions_total"),
                srv.metric("requests_cancelled_total")
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("requests stuck or blocks leaked after the soak");
}
