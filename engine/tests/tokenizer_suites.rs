//! llama.cpp's tokenizer suites (`ggml-vocab-*.gguf` with `.inp` / `.out`: inputs separated by
//! `\n__ggml_vocab_test__\n`, one line of expected ids per input; tokenized with BOS off and
//! special parsing off), and the prompt ids of the Gemma 3 270M golden runs (BOS on, specials
//! parsed).
//!
//! The small suites live in `tests/data/vocab` (in the repo); the big ones (llama-bpe, qwen2)
//! are read from `../shared/vocab` when it exists and skipped with a message otherwise. The
//! golden test needs the real model in `models/` and skips without it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use nanorun::formats::Gguf;
use nanorun::tokenizer::{StreamDecoder, Tokenizer};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read_suite(gguf: &Path) -> (Vec<Vec<u8>>, Vec<Vec<u32>>) {
    let inp = std::fs::read(format!("{}.inp", gguf.display())).expect("read .inp");
    let out = std::fs::read_to_string(format!("{}.out", gguf.display())).expect("read .out");
    let sep = b"\n__ggml_vocab_test__\n";
    let mut inputs = Vec::new();
    let mut rest: &[u8] = &inp;
    while let Some(p) = rest.windows(sep.len()).position(|w| w == sep) {
        inputs.push(rest[..p].to_vec());
        rest = &rest[p + sep.len()..];
    }
    if !rest.is_empty() {
        inputs.push(rest.to_vec()); // a last case without the closing separator
    }
    let expected: Vec<Vec<u32>> = out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|x| x.parse().expect("id"))
                .collect()
        })
        .collect();
    assert_eq!(
        inputs.len(),
        expected.len(),
        "{}: .inp and .out disagree on the number of cases",
        gguf.display()
    );
    (inputs, expected)
}

/// Runs one suite; returns (passed, total) and prints every failure.
fn run_suite(gguf: &Path) -> (usize, usize) {
    let g = Gguf::open(gguf).unwrap_or_else(|e| panic!("{}: {e}", gguf.display()));
    let t0 = Instant::now();
    let tok = Tokenizer::from_gguf(&g).unwrap_or_else(|e| panic!("{}: {e}", gguf.display()));
    let built = t0.elapsed();
    let (inputs, expected) = read_suite(gguf);
    let mut passed = 0;
    for (text, want) in inputs.iter().zip(&expected) {
        let got = tok.encode_bytes(text, false, false);
        if &got == want {
            passed += 1;
        } else {
            eprintln!(
                "{}: MISMATCH for {:?}\n  expected {:?}\n  got      {:?}",
                gguf.file_name().unwrap().to_string_lossy(),
                String::from_utf8_lossy(text),
                want,
                got
            );
        }
        // Decoding must never fail on ids the encoder produced, and streaming must agree.
        let bytes = tok.decode_bytes(&got, true).expect("decode");
        let mut stream = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &got {
            streamed.push_str(&stream.push(tok.token_to_piece(id, true).unwrap()));
        }
        streamed.push_str(&stream.finish());
        if !tok.add_space_prefix()
            && !matches!(
                tok.kind(),
                nanorun::tokenizer::TokenizerKind::Bpe | nanorun::tokenizer::TokenizerKind::Wpm
            )
        {
            assert_eq!(streamed, String::from_utf8_lossy(&bytes));
        }
    }
    eprintln!(
        "{}: {passed}/{} cases identical to llama.cpp (tokenizer built in {built:?})",
        gguf.file_name().unwrap().to_string_lossy(),
        inputs.len()
    );
    (passed, inputs.len())
}

fn check_in_repo(name: &str) {
    let file = if name.starts_with("synthetic-") {
        format!("{name}.gguf")
    } else {
        format!("ggml-vocab-{name}.gguf")
    };
    let path = repo_root().join("tests/data/vocab").join(file);
    let (passed, total) = run_suite(&path);
    assert_eq!(passed, total, "{name}: {passed}/{total} passed");
}

fn check_shared(name: &str) {
    let dir = repo_root().join("../shared/vocab");
    if !dir.is_dir() {
        eprintln!("skipped {name}: ../shared/vocab not found");
        return;
    }
    let (passed, total) = run_suite(&dir.join(format!("ggml-vocab-{name}.gguf")));
    assert_eq!(passed, total, "{name}: {passed}/{total} passed");
}

#[test]
fn suite_llama_spm() {
    check_in_repo("llama-spm");
}

#[test]
fn suite_phi_3() {
    check_in_repo("phi-3");
}

#[test]
fn suite_gpt_2() {
    check_in_repo("gpt-2");
}

#[test]
fn suite_bert_bge() {
    check_in_repo("bert-bge");
}

/// A unigram (`t5`, XLM-RoBERTa) vocabulary with its precompiled charsmap; ids by llama.cpp.
#[test]
fn suite_ugm_xlmr() {
    check_in_repo("synthetic-ugm-xlmr");
}

/// A Gemma 4 (SPM-style BPE) vocabulary; ids by llama.cpp.
#[test]
fn suite_gemma4() {
    check_in_repo("synthetic-gemma4");
}

#[test]
fn suite_llama_bpe() {
    check_shared("llama-bpe");
}

#[test]
fn suite_qwen2() {
    check_shared("qwen2");
}

/// The numbers of the array under `key` in a golden JSON file.
fn id_array(json: &str, key: &str) -> Vec<u32> {
    let start = json.find(&format!("\"{key}\"")).expect("key");
    let open = start + json[start..].find('[').expect("[");
    let close = open + json[open..].find(']').expect("]");
    json[open + 1..close]
        .split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| x.trim().parse().expect("id"))
        .collect()
}

/// The string value under `key` (a small JSON string parser: escapes and \\u with surrogates).
fn json_string(json: &str, key: &str) -> String {
    let start = json.find(&format!("\"{key}\":")).expect("key") + key.len() + 3;
    let rest = json[start..]
        .trim_start()
        .strip_prefix('"')
        .expect("string value");
    let mut out = String::new();
    let mut chars = rest.chars();
    let mut pending_high: Option<u32> = None;
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next().expect("escape") {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let u = u32::from_str_radix(&hex, 16).expect("hex");
                    if (0xD800..0xDC00).contains(&u) {
                        pending_high = Some(u);
                    } else if let Some(h) = pending_high.take() {
                        out.push(
                            char::from_u32(0x10000 + ((h - 0xD800) << 10) + (u - 0xDC00)).unwrap(),
                        );
                    } else {
                        out.push(char::from_u32(u).unwrap_or('\u{fffd}'));
                    }
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    out
}

#[test]
fn gemma3_golden_prompt_ids() {
    let model = repo_root().join("models/gemma-3-270m-q4_k_m.gguf");
    if !model.is_file() {
        eprintln!(
            "skipped: {} not found (fetch the model to run this test)",
            model.display()
        );
        return;
    }
    let g = Gguf::open(&model).expect("open model");
    let t0 = Instant::now();
    let tok = Tokenizer::from_gguf(&g).expect("tokenizer");
    eprintln!(
        "gemma3 tokenizer ({} tokens) built in {:?}",
        tok.n_vocab(),
        t0.elapsed()
    );
    assert!(!tok.add_space_prefix());
    let dir = repo_root().join("tests/data/golden");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).expect("golden dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let json = std::fs::read_to_string(&path).expect("json");
        let prompt = std::fs::read(path.with_extension("txt")).expect("txt");
        let want = id_array(&json, "prompt_ids");
        let t1 = Instant::now();
        let got = tok.encode_bytes(&prompt, true, true);
        eprintln!(
            "{}: {} bytes -> {} ids in {:?}",
            path.display(),
            prompt.len(),
            got.len(),
            t1.elapsed()
        );
        assert_eq!(got, want, "{}: prompt ids differ", path.display());
        // Decoding the prompt (specials rendered) gives the text back after the BOS.
        let text = tok.decode_bytes(&got[1..], true).expect("decode");
        assert_eq!(
            text,
            prompt,
            "{}: decode(encode(prompt)) differs",
            path.display()
        );
        // llama.cpp's detokenized continuation.
        let generated = id_array(&json, "generated_ids");
        let text = tok.decode(&generated, false).expect("decode");
        assert_eq!(
            text,
            json_string(&json, "text"),
            "{}: generated text differs",
            path.display()
        );
        cases += 1;
    }
    assert!(cases >= 6, "expected the six golden prompts, found {cases}");
    assert!(tok.is_eog(tok.eos().expect("eos")));
    let eot = tok.token_id("<end_of_turn>").expect("<end_of_turn>");
    assert!(tok.is_eog(eot));
}

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random text mixing the things tokenizers trip on: space runs, newlines, digits,
/// contractions, punctuation, accents, combining marks, CJK, emoji, odd whitespace.
fn random_text(rng: &mut Rng, len: usize) -> String {
    #[rustfmt::skip]
    const PIECES: &[&str] = &[
        " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", "'s", "'LL", "'re", "0", "7", "123", "4567",
        ".", ",", "!", "?", "...", "(", ")", "\"", "<", ">", "/", "$", "_", "-", "é", "Ä", "ß", "ñ",
        "Ω", "λ", "ж", "Привет", "中", "文字", "한국어", "日本", "ا", "ह", "\u{301}", "\u{200d}", "\u{a0}",
        "\u{3000}", "\u{85}", "😀", "🦙", "👍🏽", "\u{fffd}", "a", "the", "The", "HELLO", "World", "x",
        "Zz", "ĠĊ",
    ];
    let mut s = String::new();
    for _ in 0..len {
        if rng.below(4) == 0 {
            s.push(char::from(b'a' + rng.below(26) as u8));
        } else {
            s.push_str(PIECES[rng.below(PIECES.len())]);
        }
    }
    s
}

/// The repo's vocabularies, `../shared/vocab`'s and Gemma 3's when present.
fn core_vocab_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = ["llama-spm", "phi-3", "gpt-2", "bert-bge"]
        .iter()
        .map(|n| repo_root().join(format!("tests/data/vocab/ggml-vocab-{n}.gguf")))
        .collect();
    // (Not the synthetic Gemma 4 subset: tokens it lacks fall back to bytes of ▁, which do not
    // decode back to spaces, so the reassembly properties do not hold there.)
    v.push(repo_root().join("tests/data/vocab/synthetic-ugm-xlmr.gguf"));
    let shared = repo_root().join("../shared/vocab");
    for n in ["llama-bpe", "qwen2"] {
        let p = shared.join(format!("ggml-vocab-{n}.gguf"));
        if p.is_file() {
            v.push(p);
        }
    }
    let gemma = repo_root().join("models/gemma-3-270m-q4_k_m.gguf");
    if gemma.is_file() {
        v.push(gemma);
    }
    v
}

/// [`core_vocab_files`] and the extra vocabularies of a llama.cpp source checkout.
fn all_vocab_files() -> Vec<PathBuf> {
    let mut v = core_vocab_files();
    // Vocabularies of the reference build's llama.cpp source that this crate implements and the
    // ones above do not cover (Gemma 4, Qwen3.5, XLM-R unigram, ...).
    if let Some(dir) = llama_cpp_models_dir() {
        for n in EXTRA_SOURCE_VOCABS {
            let p = dir.join(format!("ggml-vocab-{n}.gguf"));
            if p.is_file() {
                v.push(p);
            }
        }
    }
    v
}

/// Vocabularies of llama.cpp's `models/` used beyond the suites (when the source is present).
#[rustfmt::skip]
const EXTRA_SOURCE_VOCABS: &[&str] = &[
    "gemma-4", "qwen35", "nomic-bert-moe", "command-r", "falcon", "mpt", "starcoder", "refact",
    "deepseek-coder", "gpt-neox", "baichuan", "aquila",
];

/// `models/` of the llama.cpp source the reference build was made from, if present
/// (`$NANORUN_REF` or `~/.cache/nanorun-ref`, `src/*/vendor/llama.cpp/models`).
fn llama_cpp_models_dir() -> Option<PathBuf> {
    let root = std::env::var_os("NANORUN_REF")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/nanorun-ref"))
        })?;
    std::fs::read_dir(root.join("src"))
        .ok()?
        .flatten()
        .map(|e| e.path().join("vendor/llama.cpp/models"))
        .find(|p| p.is_dir())
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for path in all_vocab_files() {
        let g = Gguf::open(&path).expect("open");
        let tok = Tokenizer::from_gguf(&g).expect("tokenizer");
        for round in 0..300 {
            let len = rng.below(64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let ids = tok.encode_bytes(&bytes, round % 2 == 0, round % 3 == 0);
            assert!(ids.iter().all(|&id| (id as usize) < tok.n_vocab()));
            tok.decode_bytes(&ids, round % 2 == 1).expect("decode");
        }
        let n = tok.n_vocab() as u32;
        assert!(tok.decode(&[n], false).is_err());
        assert!(tok.token_to_piece(u32::MAX, true).is_err());
    }
}

#[test]
fn pieces_reassemble_the_text() {
    let mut rng = Rng(42);
    for path in all_vocab_files() {
        let g = Gguf::open(&path).expect("open");
        let tok = Tokenizer::from_gguf(&g).expect("tokenizer");
        if matches!(
            tok.kind(),
            nanorun::tokenizer::TokenizerKind::Wpm | nanorun::tokenizer::TokenizerKind::Ugm
        ) {
            continue; // WordPiece normalises (lowercase, accents, spaces): not reversible
        }
        for _ in 0..300 {
            let len = rng.below(40);
            let text = random_text(&mut rng, len);
            let ids = tok.encode(&text, false, false);
            let mut joined = Vec::new();
            for &id in &ids {
                joined.extend_from_slice(tok.token_to_piece(id, true).unwrap());
            }
            let want = if tok.add_space_prefix() && !text.is_empty() {
                format!(" {text}")
            } else {
                text.clone()
            };
            assert_eq!(
                String::from_utf8_lossy(&joined),
                want,
                "{}: pieces of {text:?} ({ids:?}) do not reassemble it",
                path.display()
            );
        }
    }
}

#[test]
fn every_token_piece_reassembles() {
    for path in core_vocab_files() {
        let g = Gguf::open(&path).expect("open");
        let tok = Tokenizer::from_gguf(&g).expect("tokenizer");
        if matches!(
            tok.kind(),
            nanorun::tokenizer::TokenizerKind::Wpm | nanorun::tokenizer::TokenizerKind::Ugm
        ) {
            continue;
        }
        let mut checked = 0;
        for id in 0..tok.n_vocab() as u32 {
            let piece = tok.token_to_piece(id, true).unwrap().to_vec();
            let Ok(text) = String::from_utf8(piece) else {
                continue; // a byte token or a partial character
            };
            if tok.is_control(id) || text.is_empty() || text.contains('\u{2581}') {
                continue;
            }
            let ids = tok.encode(&text, false, false);
            let mut joined = Vec::new();
            for &i in &ids {
                joined.extend_from_slice(tok.token_to_piece(i, true).unwrap());
            }
            let want = if tok.add_space_prefix() {
                format!(" {text}")
            } else {
                text.clone()
            };
            assert_eq!(
                String::from_utf8_lossy(&joined),
                want,
                "{}: token {id}",
                path.display()
            );
            checked += 1;
        }
        eprintln!("{}: {checked} token pieces re-encoded", path.display());
    }
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tokenizer>();
}

/// llama.cpp's `llama-tokenize`, when a reference build exists: `$NANORUN_REF/build/bin` or
/// `~/.cache/nanorun-ref/build/bin` (as `../shared/scripts/build-llama-cpp.sh` makes it).
fn llama_tokenize_bin() -> Option<PathBuf> {
    let dir = std::env::var_os("NANORUN_REF")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/nanorun-ref"))
        })?;
    let bin = dir.join("build/bin/llama-tokenize");
    bin.is_file().then_some(bin)
}

/// Ids llama.cpp gives for `text`, or `None` when the reference fails on it.
fn reference_ids(
    bin: &Path,
    model: &Path,
    text: &[u8],
    add_special: bool,
    parse_special: bool,
) -> Option<Vec<u32>> {
    let file = std::env::temp_dir().join(format!("nanorun-tok-{}.txt", std::process::id()));
    std::fs::write(&file, text).ok()?;
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("-m")
        .arg(model)
        .arg("-f")
        .arg(&file)
        .args(["--ids", "--no-escape", "--log-disable"]);
    if !add_special {
        cmd.arg("--no-bos");
    }
    if !parse_special {
        cmd.arg("--no-parse-special");
    }
    let out = cmd.env("CUDA_VISIBLE_DEVICES", "").output().ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('['))?;
    let inner = line.trim().trim_start_matches('[').trim_end_matches(']');
    if inner.trim().is_empty() {
        return Some(Vec::new());
    }
    inner.split(',').map(|x| x.trim().parse().ok()).collect()
}

/// Random texts (with special tokens spliced in) tokenized by us and by llama.cpp's
/// `llama-tokenize`; skipped when no reference build exists. `NANORUN_DIFF_CASES` sets the
/// number of texts per vocabulary (default 4: the reference runs once per text, ~30 ms each).
#[test]
fn differential_against_llama_cpp() {
    let Some(bin) = llama_tokenize_bin() else {
        eprintln!("skipped: no llama.cpp reference build (../shared/scripts/build-llama-cpp.sh makes one)");
        return;
    };
    let cases: usize = std::env::var("NANORUN_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut rng = Rng(7);
    let mut failures = Vec::new();
    for path in core_vocab_files() {
        let g = Gguf::open(&path).expect("open");
        let tok = Tokenizer::from_gguf(&g).expect("tokenizer");
        let controls: Vec<u32> = (0..tok.n_vocab() as u32)
            .filter(|&id| tok.is_control(id))
            .collect();
        let (mut same, mut total) = (0, 0);
        for i in 0..cases {
            let len = rng.below(48);
            let mut text = random_text(&mut rng, len).into_bytes();
            if !controls.is_empty() && i % 2 == 1 {
                let id = controls[rng.below(controls.len())];
                let bounds: Vec<usize> = (0..=text.len())
                    .filter(|&k| k == text.len() || (text[k] & 0xC0) != 0x80)
                    .collect();
                let at = bounds[rng.below(bounds.len())];
                let special = tok.token_text(id).unwrap().to_vec();
                text.splice(at..at, special);
            }
            if i % 7 == 6 {
                text.push(0xFF); // invalid UTF-8
            }
            for (add, parse) in [(false, false), (true, true)] {
                let Some(want) = reference_ids(&bin, &path, &text, add, parse) else {
                    continue;
                };
                total += 1;
                // llama-tokenize adds specials only when the model wants a BOS.
                let got = tok.encode_bytes(&text, add && tok.add_bos(), parse);
                if got == want {
                    same += 1;
                } else {
                    failures.push(format!(
                        "{} add={add} parse={parse} {:?}\n  llama.cpp {want:?}\n  nanorun   {got:?}",
                        path.file_name().unwrap().to_string_lossy(),
                        String::from_utf8_lossy(&text)
                    ));
                }
            }
        }
        eprintln!(
            "{}: {same}/{total} identical to llama-tokenize",
            path.file_name().unwrap().to_string_lossy()
        );
    }
    // Every implemented BPE pre-tokenizer, on GPT-2's vocabulary with `tokenizer.ggml.pre`
    // rewritten (a pre-tokenizer the reference does not know makes it fail: skipped).
    for (pre, path) in pre_variants() {
        let variant = Gguf::open(&path).expect("open variant");
        let tok = Tokenizer::from_gguf(&variant).expect("tokenizer");
        let (mut same, mut total) = (0, 0);
        for _ in 0..cases.div_ceil(2) {
            let len = rng.below(48);
            let text = random_text(&mut rng, len).into_bytes();
            let Some(want) = reference_ids(&bin, &path, &text, false, false) else {
                continue;
            };
            total += 1;
            let got = tok.encode_bytes(&text, false, false);
            if got == want {
                same += 1;
            } else {
                failures.push(format!(
                    "gpt-2 vocab with pre {pre} {:?}\n  llama.cpp {want:?}\n  nanorun   {got:?}",
                    String::from_utf8_lossy(&text)
                ));
            }
        }
        eprintln!("gpt-2 vocab, pre {pre}: {same}/{total} identical to llama-tokenize");
        drop(variant);
        let _ = std::fs::remove_file(&path);
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every implemented BPE pre-tokenizer name.
#[rustfmt::skip]
const PRE_NAMES: &[&str] = &[
    "default", "llama-bpe", "dbrx", "qwen2", "starcoder", "smollm", "falcon", "seed-coder",
    "ufakzeka", "gpt-4o", "tekken", "deepseek-coder", "bloom", "viking", "bailingmoe",
    "chatglm-bpe", "gpt-2", "olmo", "refact", "deepseek-r1-qwen", "poro-chat", "llama4", "qwen35",
    "glm4", "deepseek-v3", "hunyuan-dense", "minicpm5", "tiny_aya", "youtu",
    "granite-embed-multi-97m",
];

/// GPT-2's vocabulary written to temporary GGUF files, one per pre-tokenizer name.
fn pre_variants() -> Vec<(&'static str, PathBuf)> {
    let base = repo_root().join("tests/data/vocab/ggml-vocab-gpt-2.gguf");
    let g = Gguf::open(&base).expect("open");
    PRE_NAMES
        .iter()
        .map(|&pre| {
            let mut w = nanorun::formats::GgufWriter::from_gguf(&g);
            w.set_str("tokenizer.ggml.pre", pre);
            let name = format!(
                "nanorun-vocab-{pre}-{}-{:?}.gguf",
                std::process::id(),
                std::thread::current().id()
            );
            let path = std::env::temp_dir().join(name.replace(['(', ')'], ""));
            w.write_file(&path).expect("write variant");
            (pre, path)
        })
        .collect()
}

#[test]
fn every_pre_tokenizer_reassembles_the_text() {
    let mut rng = Rng(99);
    for (pre, path) in pre_variants() {
        let g = Gguf::open(&path).expect("open variant");
        let tok = Tokenizer::from_gguf(&g).unwrap_or_else(|e| panic!("pre {pre}: {e}"));
        for _ in 0..100 {
            let len = rng.below(40);
            let text = random_text(&mut rng, len);
            let ids = tok.encode(&text, false, false);
            let mut joined = Vec::new();
            for &id in &ids {
                joined.extend_from_slice(tok.token_to_piece(id, true).unwrap());
            }
            assert_eq!(String::from_utf8_lossy(&joined), text, "pre {pre}: {ids:?}");
        }
        drop(g);
        let _ = std::fs::remove_file(&path);
    }
}

/// The embedding fixtures' tokenizations (`../shared/fixtures/embed/<arch>.tokenize.json`, made
/// by llama.cpp with add_special on and parse_special off), on vocabulary-only copies of those
/// models' GGUF files.
#[test]
fn embedding_fixture_tokenizations() {
    for arch in ["bert", "gemma-embedding"] {
        let dir = repo_root().join("tests/data/vocab");
        let g = Gguf::open(dir.join(format!("embed-{arch}.gguf"))).expect("open");
        let tok = Tokenizer::from_gguf(&g).expect("tokenizer");
        let json =
            std::fs::read_to_string(dir.join(format!("embed-{arch}.tokenize.json"))).expect("json");
        let mut n = 0;
        for line in json.lines().filter(|l| l.starts_with('{')) {
            let text = json_string(line, "text");
            let want = id_array(line, "ids");
            assert_eq!(tok.encode(&text, true, false), want, "{arch}: {text:?}");
            n += 1;
        }
        assert!(n >= 6, "{arch}: only {n} cases");
        eprintln!("embed-{arch}: {n}/{n} tokenizations identical to llama.cpp");
    }
}

/// nanorun's side of the differential runs in `engine/src/tokenizer/tools/README.md`: does
/// nothing unless `NANORUN_TOK_DUMP=MODEL,RECORDS,ADD,PARSE,MODE,OUT` is set (MODE: `ids`,
/// `detok` or `pieces`), and then writes the same lines as `llama_tokbatch`.
#[test]
fn dump_for_differential_runs() {
    use std::io::Write;
    let Ok(spec) = std::env::var("NANORUN_TOK_DUMP") else {
        return;
    };
    let f: Vec<&str> = spec.split(',').collect();
    assert_eq!(
        f.len(),
        6,
        "NANORUN_TOK_DUMP=MODEL,RECORDS,ADD,PARSE,MODE,OUT"
    );
    let g = Gguf::open(f[0]).expect("model");
    let tok = Tokenizer::from_gguf(&g).expect("tokenizer");
    let mut out = std::io::BufWriter::new(std::fs::File::create(f[5]).expect("output"));
    let hex = |out: &mut dyn Write, b: &[u8]| {
        for x in b {
            write!(out, "{x:02x}").unwrap();
        }
    };
    if f[4] == "pieces" {
        for id in 0..tok.n_vocab() as u32 {
            hex(&mut out, tok.token_to_piece(id, false).unwrap());
            write!(out, " ").unwrap();
            hex(&mut out, tok.token_to_piece(id, true).unwrap());
            writeln!(out).unwrap();
        }
        write!(out, "EOG").unwrap();
        for &id in tok.eog_ids() {
            write!(out, " {id}").unwrap();
        }
        let n = |x: Option<u32>| x.map_or(-1, i64::from);
        writeln!(
            out,
            "\nBOS {} EOS {} EOT {}",
            n(tok.bos()),
            n(tok.eos()),
            n(tok.eot())
        )
        .unwrap();
        return;
    }
    let (add, parse) = (f[2] == "1", f[3] == "1");
    let recs = std::fs::read(f[1]).expect("records");
    let mut off = 0;
    while off + 4 <= recs.len() {
        let n = u32::from_le_bytes(recs[off..off + 4].try_into().unwrap()) as usize;
        let text = &recs[off + 4..off + 4 + n];
        off += 4 + n;
        let ids = tok.encode_bytes(text, add, parse);
        let s: Vec<String> = ids.iter().map(u32::to_string).collect();
        write!(out, "{}", s.join(" ")).unwrap();
        if f[4] == "detok" {
            for special in [false, true] {
                write!(out, " |").unwrap();
                hex(&mut out, &tok.decode_bytes(&ids, special).unwrap());
            }
            write!(out, " |").unwrap();
            for &id in &ids {
                hex(&mut out, tok.token_to_piece(id, false).unwrap());
                write!(out, ".").unwrap();
            }
        }
        writeln!(out).unwrap();
    }
}

/// The `models/ggml-vocab-*.gguf` suites of the llama.cpp source the reference build was made
/// from (`$NANORUN_REF` or `~/.cache/nanorun-ref`, `src/*/vendor/llama.cpp/models`): more
/// vocabularies than `../shared/vocab` (Gemma 4, Qwen3.5, Falcon, MPT, StarCoder, ...).
/// Skipped when that source is absent; vocabularies this crate does not implement are listed.
#[test]
fn llama_cpp_source_suites() {
    let Some(models) = llama_cpp_models_dir() else {
        eprintln!("skipped: no llama.cpp source next to a reference build");
        return;
    };
    let dir = &models;
    let mut suites: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("models dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .filter(|p| Path::new(&format!("{}.inp", p.display())).is_file())
        .collect();
    suites.sort();
    let mut failed = Vec::new();
    for path in suites {
        let g = Gguf::open(&path).expect("open");
        if let Err(e) = Tokenizer::from_gguf(&g) {
            eprintln!("{}: not implemented here ({e})", path.display());
            continue;
        }
        let (passed, total) = run_suite(&path);
        if passed != total {
            failed.push(format!("{}: {passed}/{total}", path.display()));
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
}
