//! Compiles `examples/generate.c` with the system C compiler against the static library and
//! runs it on a fixture model: the C ABI works end to end. Skips (saying so) when no `cc`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn find_static_lib() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    [deps, deps.parent()?]
        .iter()
        .map(|d| d.join("libnanorun_capi.a"))
        .find(|p| p.exists())
}

#[test]
fn the_c_example_compiles_links_and_generates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if Command::new("cc").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no C compiler (cc)");
        return;
    }
    let lib = find_static_lib().expect("libnanorun_capi.a built next to the test");
    let out = std::env::temp_dir().join(format!("nanorun_c_example_{}", std::process::id()));
    let status = Command::new("cc")
        .arg(root.join("examples/generate.c"))
        .arg("-I")
        .arg(root.join("include"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&out)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed");
    let model = root.join("../tests/data/fixtures/llama-Q4_K_M.gguf");
    let run = Command::new(&out)
        .arg(&model)
        .arg("Hello")
        .arg("8")
        .output()
        .expect("run the C example");
    let _ = std::fs::remove_file(&out);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("finish=length"), "{stdout}");
    assert!(stdout.contains("completion_tokens=8"), "{stdout}");
    assert!(
        stderr.contains("refused as expected: invalid sampling parameter `top_p`"),
        "{stderr}"
    );
}
