//! NVRTC compilation of the kernel modules, with an on-disk PTX cache.
//!
//! PTX is cached per module under a key that hashes the full source, the target architecture
//! and the compiler options ([`cache_key`]), so an edited kernel or another GPU never reuses a
//! stale file. The cache directory is `NANORUN_CUDA_CACHE`, else `$XDG_CACHE_HOME/nanorun/ptx`,
//! else `$HOME/.cache/nanorun/ptx`; a cache that cannot be read or written only costs a
//! recompile.

use std::path::{Path, PathBuf};

use crate::error::{CudaError, Result};
use crate::probe;
use crate::source::ModuleSource;

/// Options every module is compiled with (besides the architecture).
pub const NVRTC_OPTIONS: &[&str] = &["--std=c++17"];

/// A compute capability, the target of a compile (`compute_80` for 8.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Arch {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl Arch {
    /// Ampere datacenter (A100).
    pub const SM80: Arch = Arch { major: 8, minor: 0 };
    /// Jetson Orin.
    pub const SM87: Arch = Arch { major: 8, minor: 7 };
    /// Hopper (H100, H200).
    pub const SM90: Arch = Arch { major: 9, minor: 0 };

    /// The virtual architecture name NVRTC takes, e.g. `compute_87`.
    pub fn compute_name(self) -> String {
        format!("compute_{}{}", self.major, self.minor)
    }
}

/// FNV-1a 64 over `parts`, each followed by a 0xff separator byte (so that moving a byte from
/// one part to the next changes the hash).
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in parts {
        for &b in p.iter().chain(std::iter::once(&0xffu8)) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The cache key of `source` compiled for `arch`: a hash of the source text, the architecture
/// and [`NVRTC_OPTIONS`].
pub fn cache_key(source: &str, arch: Arch) -> u64 {
    let arch_name = arch.compute_name();
    let opts = NVRTC_OPTIONS.join(" ");
    fnv1a64(&[source.as_bytes(), arch_name.as_bytes(), opts.as_bytes()])
}

/// The cache file of module `name` with key `key` inside `dir`.
pub fn cache_file(dir: &Path, name: &str, arch: Arch, key: u64) -> PathBuf {
    dir.join(format!("{name}-{}-{key:016x}.ptx", arch.compute_name()))
}

/// The cache directory from the environment (see the module docs); `None` when no variable
/// gives one.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("NANORUN_CUDA_CACHE") {
        return Some(d);
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return Some(d.join("nanorun").join("ptx"));
    }
    var("HOME").map(|h| h.join(".cache").join("nanorun").join("ptx"))
}

/// Compiles `module` to PTX for `arch` with NVRTC (no cache). Checks first that NVRTC can be
/// loaded.
pub fn compile_ptx(module: &ModuleSource, arch: Arch) -> Result<String> {
    probe::ensure_nvrtc()?;
    let mut options: Vec<String> = NVRTC_OPTIONS.iter().map(|s| s.to_string()).collect();
    options.push(format!("--gpu-architecture={}", arch.compute_name()));
    let opts = cudarc::nvrtc::CompileOptions {
        options,
        name: Some(format!("{}.cu", module.name)),
        ..Default::default()
    };
    match cudarc::nvrtc::compile_ptx_with_opts(module.full_source(), opts) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(e) => Err(CudaError::Compile {
            module: module.name,
            arch: arch.compute_name(),
            log: match e {
                cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                    log.to_string_lossy().into_owned()
                }
                other => format!("{other:?}"),
            },
        }),
    }
}

/// PTX of `module` for `arch`: from `dir`'s cache when a file with the current key is there,
/// else compiled and (best effort) written to the cache.
pub fn load_or_compile(module: &ModuleSource, arch: Arch, dir: Option<&Path>) -> Result<String> {
    let key = cache_key(&module.full_source(), arch);
    let file = dir.map(|d| cache_file(d, module.name, arch, key));
    if let Some(f) = &file {
        if let Ok(ptx) = std::fs::read_to_string(f) {
            if ptx.contains(".entry") {
                return Ok(ptx);
            }
        }
    }
    let ptx = compile_ptx(module, arch)?;
    if let (Some(d), Some(f)) = (dir, &file) {
        // Write to a temporary name and rename, so a concurrent reader never sees half a file.
        let tmp = f.with_extension(format!("ptx.tmp{}", std::process::id()));
        let ok = std::fs::create_dir_all(d).is_ok() && std::fs::write(&tmp, &ptx).is_ok();
        if !ok || std::fs::rename(&tmp, f).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(ptx)
}

/// The names of the `.entry` functions (kernels) a PTX text defines.
pub fn ptx_entries(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix(".visible .entry ")
                .or_else(|| l.strip_prefix(".entry "))?;
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// The byte sizes of `kernel`'s parameters as the PTX declares them (`.u64` 8, `.u32` /
/// `.s32` / `.f32` 4, `.b8 name[N]` N for a struct passed by value); `None` when the PTX has no
/// such entry. Lets a test hold every launch's arguments against the compiled kernel.
pub fn ptx_param_sizes(ptx: &str, kernel: &str) -> Option<Vec<usize>> {
    let mut lines = ptx.lines().map(str::trim);
    lines.find(|l| {
        let rest = l
            .strip_prefix(".visible .entry ")
            .or_else(|| l.strip_prefix(".entry "));
        rest.is_some_and(|r| r.strip_prefix(kernel).is_some_and(|t| t.starts_with('(')))
    })?;
    let mut sizes = Vec::new();
    for l in lines {
        if l.starts_with(')') {
            return Some(sizes);
        }
        let Some(decl) = l.strip_prefix(".param ") else {
            continue;
        };
        let decl = decl.trim_end_matches(',');
        let size = if let Some(open) = decl.find('[') {
            decl[open + 1..].trim_end_matches(']').parse().ok()?
        } else {
            let ty = decl.split_whitespace().find(|w| {
                w.starts_with(".u")
                    || w.starts_with(".s")
                    || w.starts_with(".f")
                    || w.starts_with(".b")
            })?;
            ty[2..].parse::<usize>().ok()? / 8
        };
        sizes.push(size);
    }
    None
}
