//! Finding the CUDA libraries before cudarc touches them. cudarc's dynamic loading panics when
//! a library is absent, so every entry point checks here first and turns absence into a
//! [`CudaError`] that names the library and how to get it.
//!
//! NVRTC is looked up by its soname (`libnvrtc.so.12`, through the loader's search path) or,
//! when `NANORUN_NVRTC_LIB` is set, loaded from that file (or from that directory's
//! `libnvrtc.so.12`) first, together with the `libnvrtc-builtins` beside it. A library already
//! loaded by path satisfies the later load by soname, so cudarc then finds it. This is how the
//! tests use the NVRTC that `pip install nvidia-cuda-nvrtc-cu12` puts in site-packages.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{CudaError, Result};

/// Environment variable naming the NVRTC library file (or its directory) to load.
pub const NVRTC_ENV: &str = "NANORUN_NVRTC_LIB";

/// The NVRTC file name looked for in a directory.
pub const NVRTC_SONAME: &str = "libnvrtc.so.12";

const NVRTC_HINT: &str = "install the CUDA toolkit, or `pip install nvidia-cuda-nvrtc-cu12` and \
                          set NANORUN_NVRTC_LIB to its nvidia/cuda_nvrtc/lib directory";
const DRIVER_HINT: &str = "install the NVIDIA driver; a machine without an NVIDIA GPU has none";

/// The file names cudarc tries for library `name`, without repeats.
fn candidates(name: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    for c in cudarc::get_lib_name_candidates(name) {
        if !seen.contains(&c) {
            seen.push(c);
        }
    }
    seen.join(", ")
}

/// The path `NANORUN_NVRTC_LIB` points at, resolved to a file: the value itself when it is a
/// file, `<dir>/libnvrtc.so.12` when it is a directory. `None` when the variable is unset or
/// empty.
pub fn nvrtc_env_path() -> Option<PathBuf> {
    let v = std::env::var_os(NVRTC_ENV)?;
    if v.is_empty() {
        return None;
    }
    let p = PathBuf::from(v);
    Some(if p.is_dir() { p.join(NVRTC_SONAME) } else { p })
}

/// The `libnvrtc-builtins.so.*` files beside `nvrtc` (not the `.alt` variants), sorted.
pub fn builtins_beside(nvrtc: &Path) -> Vec<PathBuf> {
    let Some(dir) = nvrtc.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libnvrtc-builtins.so") && !n.contains(".alt."))
        })
        .collect();
    out.sort();
    out
}

/// Loads the NVRTC library file `path` (and the `libnvrtc-builtins` beside it) into the
/// process for good, so that cudarc's later load by soname finds it.
pub fn preload_nvrtc(path: &Path) -> Result<()> {
    // Builtins first: NVRTC loads them by soname when it compiles.
    for b in builtins_beside(path) {
        // SAFETY: loading NVIDIA's library runs only its initialisers.
        if let Ok(lib) = unsafe { libloading::Library::new(&b) } {
            std::mem::forget(lib);
        }
    }
    // SAFETY: as above.
    match unsafe { libloading::Library::new(path) } {
        Ok(lib) => {
            std::mem::forget(lib);
            Ok(())
        }
        Err(e) => Err(CudaError::NvrtcPath {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Loads NVRTC from `NANORUN_NVRTC_LIB` when set (once per process), then checks that cudarc
/// can load NVRTC: an error naming the library and how to get it when it cannot.
pub fn ensure_nvrtc() -> Result<()> {
    static PRELOADED: OnceLock<Option<String>> = OnceLock::new();
    if let Some(path) = nvrtc_env_path() {
        let failed = PRELOADED.get_or_init(|| preload_nvrtc(&path).err().map(|e| e.to_string()));
        if failed.is_some() {
            // Report the same error again (the library state did not change).
            preload_nvrtc(&path)?;
        }
    }
    // SAFETY: only tries to dlopen the candidate names.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(CudaError::LibraryMissing {
            what: "NVRTC (the CUDA runtime compiler)",
            names: candidates("nvrtc"),
            hint: NVRTC_HINT,
        })
    }
}

/// Checks that cudarc can load the CUDA driver library (`libcuda.so.1`).
pub fn ensure_driver() -> Result<()> {
    // SAFETY: only tries to dlopen the candidate names.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(CudaError::LibraryMissing {
            what: "the CUDA driver library (libcuda.so.1)",
            names: candidates("cuda"),
            hint: DRIVER_HINT,
        })
    }
}

/// Number of CUDA devices, after checking that the driver is present: an error naming what is
/// missing when there is no driver or no device.
pub fn device_count() -> Result<i32> {
    ensure_driver()?;
    cudarc::driver::result::init()?;
    let n = cudarc::driver::result::device::get_count()?;
    if n <= 0 {
        return Err(CudaError::NoDevice(n));
    }
    Ok(n)
}

/// Whether this process could run the CUDA backend: the driver, a device and NVRTC are all
/// present. The error says which is missing.
pub fn available() -> Result<()> {
    device_count()?;
    ensure_nvrtc()
}
