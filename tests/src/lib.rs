//! Helpers shared by nanorun's end-to-end tests: where the repository's own test data, the
//! default model and the team's `../shared/` folder are. Tests use the repository's copies first
//! and read the larger suites from `../shared/` only when it is there, saying so when skipped.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `tests/data/<rel>` inside the repository.
pub fn data_path(rel: &str) -> PathBuf {
    repo_root().join("tests").join("data").join(rel)
}

/// The team's shared folder (`../shared` next to the checkout), when present.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("NANORUN_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("..").join("shared"));
    dir.is_dir().then_some(dir)
}

/// The default model (Gemma 3 270M Q4_K_M) when it has been fetched into `models/`.
pub fn default_model() -> Option<PathBuf> {
    let p = repo_root().join("models").join("gemma-3-270m-q4_k_m.gguf");
    p.is_file().then_some(p)
}

/// Every `*.gguf` file directly inside `dir`, sorted.
pub fn gguf_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Prints a line saying a test (or part of one) was skipped and why.
pub fn skipped(what: &str, why: &str) {
    eprintln!("SKIPPED {what}: {why}");
}
