//! Helpers shared by the CUDA crate's integration tests (each test binary uses some of them).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The NVRTC library to test with: `NANORUN_NVRTC_LIB` (a file or its directory), else the
/// one `pip install nvidia-cuda-nvrtc-cu12` put in python3's site-packages, else `None`.
pub fn nvrtc_library() -> Option<PathBuf> {
    if let Some(p) = nanorun_cuda::probe::nvrtc_env_path() {
        return p.is_file().then_some(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import nvidia.cuda_nvrtc as m, os; print(os.path.join(list(m.__path__)[0], 'lib'))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    let lib = dir.join(nanorun_cuda::probe::NVRTC_SONAME);
    lib.is_file().then_some(lib)
}

/// Loads NVRTC for the test, or prints why the test skips and returns `false`.
pub fn nvrtc_or_skip(test: &str) -> bool {
    match nvrtc_library() {
        Some(lib) => {
            if let Err(e) = nanorun_cuda::probe::preload_nvrtc(&lib) {
                panic!("{test}: {e}");
            }
            true
        }
        None => {
            // Without NANORUN_NVRTC_LIB or the wheel, a system NVRTC may still be there.
            if nanorun_cuda::probe::ensure_nvrtc().is_ok() {
                return true;
            }
            eprintln!("SKIPPED: NVRTC not found (pip install nvidia-cuda-nvrtc-cu12): {test}");
            false
        }
    }
}
