//! `--device cuda` where CUDA cannot run (a build without the `cuda` feature, or no driver,
//! device or NVRTC): one error line on stderr naming the reason, and a failing exit — checked
//! before any model is read.

use std::process::Command;

fn nanorun() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nanorun"))
}

/// The reason this machine cannot run CUDA, `None` when it can (the test then skips).
fn why_no_cuda() -> Option<String> {
    nanorun::backend::check_cuda(0).err().map(|e| e.to_string())
}

fn assert_refused(args: &[&str]) {
    let Some(why) = why_no_cuda() else {
        println!("SKIPPED: this machine can run CUDA, so --device cuda is not refused");
        return;
    };
    let out = nanorun().args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("nanorun: error: --device cuda: "), "{err}");
    assert!(err.contains(&why), "{err} does not say {why}");
    if cfg!(feature = "cuda") {
        assert!(
            ["driver", "device", "NVRTC"]
                .iter()
                .any(|w| err.contains(w)),
            "{err}"
        );
    } else {
        assert!(
            err.contains("built without CUDA support") && err.contains("--features cuda"),
            "{err}"
        );
    }
}

#[test]
fn run_with_device_cuda_fails_with_the_reason() {
    assert_refused(&["--device", "cuda", "-m", "no-such-model.gguf", "-p", "hi"]);
}

#[test]
fn bench_with_device_cuda_fails_with_the_reason() {
    assert_refused(&["bench", "--device", "cuda:0", "-m", "no-such-model.gguf"]);
}

#[test]
fn serve_with_device_cuda_fails_with_the_reason() {
    assert_refused(&["serve", "--device", "cuda", "-m", "no-such-model.gguf"]);
}

#[test]
fn an_unknown_device_is_a_usage_error() {
    let out = nanorun()
        .args(["--device", "tpu", "-p", "hi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown device 'tpu'"), "{err}");
}

#[test]
fn device_cpu_is_the_default_and_accepted() {
    // Fails on the missing model, not on the device.
    let out = nanorun()
        .args(["--device", "cpu", "-m", "no-such-model.gguf", "-p", "hi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("--device") && err.contains("no-such-model.gguf"),
        "{err}"
    );
}
