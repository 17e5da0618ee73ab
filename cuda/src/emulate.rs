//! A CPU emulation of the device for tests: every kernel module compiled by g++ together with
//! `kernels/emu_shim.h` (CUDA's execution model with OS threads, barriers and per-warp
//! exchange buffers) and loaded as a shared library. Launches take the same geometry and the
//! same cuLaunchKernel-style argument array as on a GPU.
//!
//! It checks the kernels' logic and the host's launches without a GPU. It says nothing about
//! NVRTC's code, the hardware or cudarc. Slow (one OS thread per CUDA thread), and it needs
//! g++ (C++20).

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use crate::device::Arg;
use crate::error::{CudaError, Result};
use crate::geometry::Launch;
use crate::source::{ModuleSource, MODULES};

const SHIM: &str = include_str!("../kernels/emu_shim.h");

type LaunchFn =
    unsafe extern "C" fn(*const c_char, *const u32, *const u32, *mut *mut c_void) -> i32;

/// Every module built for the emulation.
pub(crate) struct Emulator {
    libs: HashMap<&'static str, (libloading::Library, LaunchFn)>,
    /// One launch at a time: `__shared__` arrays are statics of their module.
    one: Mutex<()>,
}

fn fail(what: String) -> CudaError {
    CudaError::Emulation(what)
}

/// The C++ text of `m` for the emulation: the shim, the module as NVRTC sees it, and a
/// dispatcher from kernel name to `emu_launch`.
pub fn emulation_source(m: &ModuleSource) -> String {
    let mut s = format!("{SHIM}\n{}\n", m.full_source());
    s.push_str(
        "extern \"C\" int nanorun_emu_launch(const char* name, const unsigned* g, \
         const unsigned* b, void** args) {\n",
    );
    for k in m.kernels {
        s.push_str(&format!(
            "  if (strcmp(name, \"{k}\") == 0) {{ emu_launch({k}, g, b, args); return 0; }}\n"
        ));
    }
    s.push_str("  return -1;\n}\n");
    s
}

impl Emulator {
    /// Builds every module with g++ in a fresh temporary directory and loads it.
    pub(crate) fn new() -> Result<Emulator> {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir: PathBuf =
            std::env::temp_dir().join(format!("nanorun-emu-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        let mut libs = HashMap::new();
        for m in MODULES {
            let src = dir.join(format!("{}.cpp", m.name));
            let lib = dir.join(format!("{}.so", m.name));
            std::fs::write(&src, emulation_source(m))
                .map_err(|e| fail(format!("{}: {e}", src.display())))?;
            let out = Command::new("g++")
                .args(["-std=c++20", "-O1", "-shared", "-fPIC", "-pthread"])
                .arg("-Wno-unknown-pragmas")
                .arg("-o")
                .arg(&lib)
                .arg(&src)
                .output()
                .map_err(|e| fail(format!("cannot run g++: {e}")))?;
            if !out.status.success() {
                return Err(fail(format!(
                    "g++ could not build {}.cu:\n{}",
                    m.name,
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            // SAFETY: our own library, just built; its initialisers are the C++ runtime's.
            let l = unsafe { libloading::Library::new(&lib) }
                .map_err(|e| fail(format!("{}: {e}", lib.display())))?;
            // SAFETY: the dispatcher has exactly this signature (see emulation_source).
            let f = *unsafe { l.get::<LaunchFn>(b"nanorun_emu_launch\0") }
                .map_err(|e| fail(format!("{}: {e}", lib.display())))?;
            libs.insert(m.name, (l, f));
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(Emulator {
            libs,
            one: Mutex::new(()),
        })
    }

    /// Runs `kernel` with launch `l` and arguments `args` (buffers as host addresses).
    pub(crate) fn launch(&self, kernel: &str, l: &Launch, args: &[Arg]) -> Result<()> {
        let m = crate::source::module_of(kernel)
            .ok_or_else(|| fail(format!("no module defines kernel {kernel}")))?;
        let (_, f) = self
            .libs
            .get(m.name)
            .ok_or_else(|| fail(format!("module {} not built", m.name)))?;
        let mut ptrs: Vec<*mut c_void> = args.iter().map(Arg::value_ptr).collect();
        let name = CString::new(kernel).map_err(|e| fail(e.to_string()))?;
        let g = [l.grid.0, l.grid.1, l.grid.2];
        let b = [l.block.0, l.block.1, l.block.2];
        let _one = self.one.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: `args` hold values of the kernel's parameter types (held against the PTX by
        // the tests) and host addresses of buffers the launch's size checks covered.
        let rc = unsafe { f(name.as_ptr(), g.as_ptr(), b.as_ptr(), ptrs.as_mut_ptr()) };
        if rc != 0 {
            return Err(fail(format!("kernel {kernel} not found in {}.cu", m.name)));
        }
        Ok(())
    }
}
