//! `nanorun_embed` through the C ABI (called from Rust): the vectors of `Engine::embed` /
//! `Embedder::embed_texts` on an embedding fixture, and clear errors on a generation engine.

use std::ffi::{c_char, CStr, CString};
use std::path::Path;
use std::ptr;

use nanorun::{EmbedState, Embedder};
use nanorun_capi::*;

fn fixture(rel: &str) -> CString {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(rel);
    CString::new(p.to_str().unwrap()).unwrap()
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(nanorun_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn embed_through_the_c_abi() {
    let path = fixture("embed/bert-Q8_0.gguf");
    let params = EngineParams {
        n_threads: 1,
        ..EngineParams::default()
    };
    let engine = unsafe { nanorun_engine_load(path.as_ptr(), &params) };
    assert!(!engine.is_null(), "{}", last_error());
    let dim = unsafe { nanorun_embed_dim(engine) } as usize;
    assert_eq!(dim, 256);
    let texts = ["hello world", "the lazy dog"];
    let c: Vec<CString> = texts.iter().map(|t| CString::new(*t).unwrap()).collect();
    let ptrs: Vec<*const c_char> = c.iter().map(|s| s.as_ptr()).collect();
    let mut out = vec![0f32; 2 * dim];
    let n = unsafe { nanorun_embed(engine, ptrs.as_ptr(), 2, 1, out.as_mut_ptr()) };
    let e = Embedder::open(path.to_str().unwrap()).unwrap();
    let want = e
        .embed_texts(&texts, true, &mut EmbedState::new(1))
        .unwrap();
    let tokens: usize = texts.iter().map(|t| e.tokenize(t).len()).sum();
    assert_eq!(n as usize, tokens, "{}", last_error());
    assert_eq!(out, want.concat());
    // Errors: no text pointer, a generation request on an embedding engine.
    assert_eq!(
        unsafe { nanorun_embed(engine, ptr::null(), 1, 1, out.as_mut_ptr()) },
        -1
    );
    let hi = CString::new("hi").unwrap();
    let req = unsafe { nanorun_submit(engine, hi.as_ptr(), ptr::null()) };
    assert!(req.is_null());
    assert!(last_error().contains("cannot generate"), "{}", last_error());
    unsafe { nanorun_engine_free(engine) };

    // A generation engine refuses to embed.
    let gen =
        unsafe { nanorun_engine_load(fixture("fixtures/llama-Q4_K_M.gguf").as_ptr(), &params) };
    assert!(!gen.is_null(), "{}", last_error());
    assert_eq!(unsafe { nanorun_embed_dim(gen) }, 0);
    let n = unsafe { nanorun_embed(gen, ptrs.as_ptr(), 2, 1, out.as_mut_ptr()) };
    assert_eq!(n, -1);
    assert!(last_error().contains("cannot embed"), "{}", last_error());
    unsafe { nanorun_engine_free(gen) };
}
