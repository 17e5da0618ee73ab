//! The `nanorun` binary end to end: `inspect` on the default model (text and JSON), and bad
//! input giving one clear line on stderr and a non-zero exit.

use std::path::PathBuf;
use std::process::Command;

fn nanorun() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nanorun"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn inspect_lists_the_default_model_and_its_json_is_valid() {
    let model = repo().join("models/gemma-3-270m-q4_k_m.gguf");
    if !model.is_file() {
        eprintln!(
            "SKIPPED inspect of the default model: {} absent",
            model.display()
        );
        return;
    }
    let out = nanorun().arg("inspect").arg(&model).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("architecture:  gemma3") && text.contains("blocks:        18"),
        "{text}"
    );
    assert!(text.contains("tensors:       236") && text.contains("[262144 × string]"));

    let out = nanorun()
        .args(["inspect", "--json"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["block_count"], 18);
    assert_eq!(v["tensor_count"], 236);
    assert_eq!(v["metadata"]["tokenizer.ggml.tokens"]["length"], 262144);
    let by_type = &v["totals_by_type"];
    for (ty, n) in [
        ("F32", 109),
        ("Q5_0", 81),
        ("Q4_K", 27),
        ("Q8_0", 10),
        ("Q6_K", 9),
    ] {
        assert_eq!(by_type[ty]["tensors"], n, "{ty}");
    }
}

#[test]
fn bad_input_is_one_line_on_stderr_and_a_failing_exit() {
    let dir = std::env::temp_dir().join(format!("nanorun-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_gguf = dir.join("not.gguf");
    std::fs::write(&not_gguf, b"this is not a gguf file at all").unwrap();
    let truncated = dir.join("truncated.gguf");
    let fixture = std::fs::read(repo().join("tests/data/fixtures/llama-Q4_K_M.gguf")).unwrap();
    std::fs::write(&truncated, &fixture[..fixture.len() / 2]).unwrap();
    let fixture_path = repo().join("tests/data/fixtures/llama-Q4_K_M.gguf");
    let run_with = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "-m".to_string(),
            fixture_path.display().to_string(),
            "-p".into(),
            "hi".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["inspect".into(), not_gguf.display().to_string()],
            "bad magic",
        ),
        (
            vec!["inspect".into(), truncated.display().to_string()],
            "outside the file",
        ),
        (
            vec![
                "inspect".into(),
                dir.join("missing.gguf").display().to_string(),
            ],
            "missing.gguf",
        ),
        (
            vec![
                "-m".into(),
                truncated.display().to_string(),
                "-p".into(),
                "hi".into(),
            ],
            "outside the file",
        ),
        (run_with(&["-c", "1"]), "context"),
        (run_with(&["--top-p", "7"]), "top_p"),
        (
            ["bench", "--embed", "--profile", "-m"]
                .map(String::from)
                .into_iter()
                .chain([fixture_path.display().to_string()])
                .collect(),
            "--profile: generation benchmarks only",
        ),
    ];
    for (args, needle) in cases {
        let out = nanorun().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(needle),
            "{args:?}: stderr {err:?} lacks {needle:?}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: not one line: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `nanorun bench --bandwidth --json` on the default model: a read-bandwidth record, then the
/// decode test with its weight GB/s as a fraction of that bandwidth.
#[test]
fn bench_with_bandwidth_reports_decode_as_a_fraction_of_the_read_bandwidth() {
    let model = repo().join("models/gemma-3-270m-q4_k_m.gguf");
    if !model.is_file() {
        eprintln!("SKIPPED bench --bandwidth: {} absent", model.display());
        return;
    }
    let out = nanorun()
        .args([
            "bench",
            "-p",
            "0",
            "-n",
            "4",
            "-t",
            "1",
            "-r",
            "1",
            "--json",
            "--bandwidth",
        ])
        .arg("-m")
        .arg(&model)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["test"], "read_bandwidth");
    let read = rows[0]["read_gb_per_s"].as_f64().unwrap();
    assert!(read > 0.0, "{v}");
    assert_eq!(rows[1]["test"], "tg4");
    let (gbs, fraction) = (
        rows[1]["weight_gb_per_s"].as_f64().unwrap(),
        rows[1]["bandwidth_fraction"].as_f64().unwrap(),
    );
    assert!((fraction - gbs / read).abs() < 1e-9, "{v}");
}

/// `nanorun bench --profile` on the default model: the decode step's matmuls per kind of
/// matrix (a layer's Q, K and V as one op), adding up with the rest to the step; as a table,
/// and in the JSON results.
#[test]
fn bench_with_profile_shows_where_a_decode_step_goes() {
    let model = repo().join("models/gemma-3-270m-q4_k_m.gguf");
    if !model.is_file() {
        eprintln!("SKIPPED bench --profile: {} absent", model.display());
        return;
    }
    let args = [
        "bench",
        "-p",
        "0",
        "-n",
        "3",
        "-t",
        "2",
        "-r",
        "1",
        "--profile",
    ];
    let out = nanorun().args(args).arg("-m").arg(&model).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("-t 2 tg3: "), "{stdout}");
    assert!(stdout.contains("over 3 steps"), "{stdout}");
    for op in [
        "| attn_q+attn_k+attn_v | 18 |",
        "| ffn_gate+ffn_up | 18 |",
        "| token_embd | 1 |",
    ] {
        assert!(stdout.contains(op), "{op} missing:\n{stdout}");
    }
    let out = nanorun()
        .args(args)
        .arg("--json")
        .arg("-m")
        .arg(&model)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let p = &v[0]["profile"];
    assert_eq!(p["steps"], 3, "{v}");
    let ops = p["matmuls"].as_array().unwrap();
    let in_matmuls: f64 = ops.iter().map(|o| o["ms_per_step"].as_f64().unwrap()).sum();
    let step = p["ms_per_step"].as_f64().unwrap();
    assert!(in_matmuls > 0.0 && in_matmuls <= step, "{v}");
    let down = ops
        .iter()
        .find(|o| o["op"] == "ffn_down")
        .expect("ffn_down");
    assert_eq!(down["calls_per_step"], 18.0, "{v}");
}

/// `nanorun bench -d`: the test runs after a prompt has filled the cache to the depth, named
/// as llama-bench names it; the filling is neither timed nor profiled (three steps profiled
/// for three generated tokens, two repetitions). A depth past the model's context is an error.
#[test]
fn bench_at_a_depth_times_and_profiles_only_the_test() {
    let model = repo().join("models/gemma-3-270m-q4_k_m.gguf");
    if !model.is_file() {
        eprintln!("SKIPPED bench -d: {} absent", model.display());
        return;
    }
    let out = nanorun()
        .args(["bench", "-p", "0", "-n", "3", "-d", "0,600", "-t", "1"])
        .args(["-r", "2", "--profile", "--json", "-m"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    for (row, (name, depth)) in rows.iter().zip([("tg3", 0), ("tg3 @ d600", 600)]) {
        assert_eq!(row["test"], name, "{v}");
        assert_eq!(row["n_depth"], depth, "{v}");
        assert_eq!(row["profile"]["steps"], 6, "{v}");
        assert!(row["tok_per_s_mean"].as_f64().unwrap() > 0.0, "{v}");
    }
    // A depth past the model's context: an error naming it, before any cache is allocated.
    for depth in ["10000000", "18446744073709551615"] {
        let out = nanorun()
            .args(["bench", "-p", "0", "-n", "3", "-d", depth, "-m"])
            .arg(&model)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("the model's is 32768"), "{stderr}");
    }
}
