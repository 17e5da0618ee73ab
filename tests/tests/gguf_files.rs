//! Real GGUF files through the reader and writer: the fixtures (tensor names, shapes and types
//! as llama.cpp's `quant_types.tsv` lists them), the vocab files, and the default model; and
//! read → write → read byte-identical round trips for each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nanorun_formats::{GgmlType, Gguf, GgufWriter};
use nanorun_tests::{data_path, default_model, gguf_files, shared_dir, skipped};

/// `file → [(tensor, dims, type)]` from a `quant_types.tsv`.
fn quant_types(tsv: &Path) -> HashMap<String, Vec<(String, Vec<u64>, String)>> {
    let text = std::fs::read_to_string(tsv).expect("read quant_types.tsv");
    let mut m: HashMap<String, Vec<_>> = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4, "bad line {line:?}");
        let dims = f[2].split('x').map(|d| d.parse().expect("dim")).collect();
        m.entry(f[0].to_string())
            .or_default()
            .push((f[1].to_string(), dims, f[3].to_string()));
    }
    m
}

fn round_trip(path: &Path) {
    let g = Gguf::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::with_capacity(g.file_len() as usize);
    let n = GgufWriter::from_gguf(&g).write_to(&mut out).expect("write");
    assert_eq!(n, out.len() as u64);
    assert!(out == g.bytes(), "{}: round trip differs", path.display());
    let again = Gguf::from_bytes(out).expect("reread");
    assert_eq!(again.tensors(), g.tensors());
    assert!(again.metadata().eq(g.metadata()));
}

fn check_against_tsv(path: &Path, expected: &[(String, Vec<u64>, String)]) {
    let g = Gguf::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        g.tensors().len(),
        expected.len(),
        "{}: tensor count",
        path.display()
    );
    for (name, dims, ty) in expected {
        let t = g
            .tensor(name)
            .unwrap_or_else(|| panic!("{}: no tensor {name}", path.display()));
        assert_eq!(&t.dims, dims, "{name} shape");
        assert_eq!(
            t.ty,
            GgmlType::from_name(ty).expect("known type"),
            "{name} type"
        );
        let data = g.tensor_data(t);
        assert_eq!(data.len() as u64, t.n_bytes);
    }
}

fn fixture_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![data_path("fixtures")];
    match shared_dir() {
        Some(s) => dirs.extend([
            s.join("fixtures"),
            s.join("fixtures/embed"),
            s.join("vocab"),
        ]),
        None => skipped(
            "../shared fixtures and vocab files",
            "../shared not found; using the repo's copies only",
        ),
    }
    dirs
}

#[test]
fn every_fixture_matches_llama_cpp_tensor_table_and_round_trips() {
    let mut checked = 0;
    for dir in fixture_dirs() {
        let tsv = dir.join("quant_types.tsv");
        let table = tsv.is_file().then(|| quant_types(&tsv));
        for path in gguf_files(&dir) {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            if let Some(expected) = table.as_ref().and_then(|t| t.get(&stem)) {
                check_against_tsv(&path, expected);
            }
            round_trip(&path);
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} files checked");
    eprintln!("{checked} GGUF files read, checked and round-tripped");
}

#[test]
fn default_model_has_the_expected_layout_and_round_trips() {
    let Some(path) = default_model() else {
        skipped(
            "default model checks",
            "models/gemma-3-270m-q4_k_m.gguf absent (run scripts/fetch-model.sh)",
        );
        return;
    };
    let g = Gguf::open(&path).expect("open");
    assert_eq!(g.architecture().unwrap(), "gemma3");
    assert_eq!(g.get_u32("gemma3.block_count").unwrap(), 18);
    assert_eq!(g.tensors().len(), 236);
    let mut by_type: HashMap<GgmlType, usize> = HashMap::new();
    for t in g.tensors() {
        *by_type.entry(t.ty).or_default() += 1;
    }
    let want = [
        (GgmlType::F32, 109),
        (GgmlType::Q5_0, 81),
        (GgmlType::Q4_K, 27),
        (GgmlType::Q8_0, 10),
        (GgmlType::Q6_K, 9),
    ];
    assert_eq!(by_type, want.into_iter().collect());
    let vocab = g.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(vocab.len(), 262_144);
    assert_eq!(vocab.get_str(2), Some("<bos>"));
    assert_eq!(
        g.get_f32_array("tokenizer.ggml.scores").unwrap().len(),
        262_144
    );
    round_trip(&path);
}

#[test]
fn typed_accessors_name_key_and_types() {
    let g = Gguf::open(data_path("fixtures/llama-Q4_K_M.gguf")).unwrap();
    assert_eq!(g.get_u32("llama.block_count").unwrap(), 2);
    let e = g.get_str("llama.block_count").unwrap_err().to_string();
    assert!(
        e.contains("llama.block_count") && e.contains("expected string") && e.contains("u32"),
        "{e}"
    );
    let e = g.get_u32("llama.no_such_key").unwrap_err().to_string();
    assert!(
        e.contains("llama.no_such_key") && e.contains("not found"),
        "{e}"
    );
    let e = g
        .get_f32_array("tokenizer.ggml.tokens")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("array of f32") && e.contains("array of string"),
        "{e}"
    );
    assert_eq!(g.get_opt_u32("llama.no_such_key").unwrap(), None);
}

#[test]
fn positioned_reads_give_the_bytes_of_the_map() {
    // A mapped file (the positioned read) and the same image in memory (a copy), over
    // released pages too, against the map's bytes.
    let path = data_path("fixtures").join("llama-Q4_K_M.gguf");
    let mapped = Gguf::open(&path).unwrap();
    let owned = Gguf::from_bytes(std::fs::read(&path).unwrap()).unwrap();
    let len = mapped.bytes().len();
    let whole = mapped.bytes().to_vec();
    mapped.release(0, len);
    for (offset, n) in [(0, 1), (7, 300), (len / 2, 4096), (len - 33, 33), (len, 0)] {
        for g in [&mapped, &owned] {
            let mut out = vec![0u8; n];
            g.read_at(offset, &mut out);
            assert_eq!(out, whole[offset..offset + n], "{offset}+{n}");
        }
    }
    let past_end = std::panic::catch_unwind(|| mapped.read_at(len - 1, &mut [0u8; 2]));
    assert!(past_end.is_err(), "a range past the end panics");
}
