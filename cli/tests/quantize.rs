//! `nanorun quantize` end to end: progress and a summary on stderr, and bad input (unknown
//! type, a non-GGUF input, an output in a missing folder, a quantized input) giving a clear
//! line on stderr and a non-zero exit.

use std::path::PathBuf;
use std::process::{Command, Output};

fn nanorun(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nanorun"))
        .arg("quantize")
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn shared_f32() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/llama-F32.gguf");
    p.is_file().then_some(p)
}

#[test]
fn quantize_shows_progress_and_rejects_bad_input() {
    let dir = std::env::temp_dir().join(format!("nanorun-cli-quantize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.gguf");

    let text = dir.join("not.gguf");
    std::fs::write(&text, b"plain text, not a model").unwrap();
    let o = nanorun(&[text.as_os_str(), out.as_os_str(), "Q8_0".as_ref()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a GGUF file"), "{}", stderr(&o));

    let o = nanorun(&[
        text.as_os_str(),
        out.as_os_str(),
        "--type".as_ref(),
        "Q9_9".as_ref(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown quantization type 'Q9_9'"),
        "{}",
        stderr(&o)
    );

    let quantized =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures/llama-Q4_K_M.gguf");
    let o = nanorun(&[quantized.as_os_str(), out.as_os_str(), "Q8_0".as_ref()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("requantizing"), "{}", stderr(&o));

    let missing = dir.join("missing").join("out.gguf");
    let o = nanorun(&[quantized.as_os_str(), missing.as_os_str(), "Q8_0".as_ref()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("does not exist") && stderr(&o).lines().count() == 1,
        "{}",
        stderr(&o)
    );

    match shared_f32() {
        Some(src) => {
            let o = nanorun(&[
                src.as_os_str(),
                out.as_os_str(),
                "--type".as_ref(),
                "q4_k_m".as_ref(),
            ]);
            let e = stderr(&o);
            assert!(o.status.success(), "{e}");
            assert!(
                e.contains("21/21 tensors") && e.contains("general.file_type 15"),
                "{e}"
            );
            assert!(out.is_file());
        }
        None => eprintln!("SKIPPED quantize run: ../shared/fixtures/llama-F32.gguf absent"),
    }
    std::fs::remove_dir_all(&dir).ok();
}
