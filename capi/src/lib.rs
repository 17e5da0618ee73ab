//! nanorun's C ABI: load a model once ([`nanorun_engine_load`]), submit requests
//! ([`nanorun_submit`]), pull their tokens and text ([`nanorun_next`]), free everything.
//! The header is `include/nanorun.h`; `examples/generate.c` shows the whole cycle. An engine
//! loaded from an embedding model embeds texts instead ([`nanorun_embed`]).
//!
//! This crate only adapts [`nanorun::Engine`] to C: no logic of its own. Nothing may unwind
//! into C: every entry point catches panics and reports them as errors.

#![allow(clippy::missing_safety_doc)] // the safety contract is the C header's

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use nanorun::sampler::SamplingParams;
use nanorun::{Engine, EngineConfig, Event, Request, RequestStream};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(msg: impl Into<String>) {
    let msg = msg.into().replace('\0', " ");
    LAST_ERROR.with(|e| *e.borrow_mut() = CString::new(msg).unwrap_or_default());
}

/// Runs `f`, turning a panic into an error and `fallback`.
fn guard<T>(fallback: T, f: impl FnOnce() -> Result<T, String>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_error(e);
            fallback
        }
        Err(_) => {
            set_error("internal error (panic) in nanorun");
            fallback
        }
    }
}

/// Engine settings (`nanorun_engine_params`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineParams {
    /// Forward-pass threads (0: all cores).
    pub n_threads: i32,
    /// KV cache tokens (0: default).
    pub n_ctx: i32,
    /// Requests decoded at once (0: default).
    pub max_seqs: i32,
}

/// Request settings (`nanorun_request_params`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RequestParams {
    /// Tokens to generate at most.
    pub max_tokens: i32,
    /// Temperature (0: greedy).
    pub temperature: f32,
    /// Top-k (0: off).
    pub top_k: i32,
    /// Top-p (1: off).
    pub top_p: f32,
    /// Min-p (0: off).
    pub min_p: f32,
    /// Repetition penalty (1: off).
    pub repeat_penalty: f32,
    /// Non-zero: `seed` is used.
    pub has_seed: i32,
    /// Random seed.
    pub seed: u64,
    /// Non-zero: keep going past end-of-generation tokens.
    pub ignore_eos: i32,
}

/// A loaded engine (`nanorun_engine`).
pub struct CEngine(Engine);

/// A request in flight (`nanorun_request`).
pub struct CRequest {
    stream: RequestStream,
    text: CString,
    finish: CString,
    prompt_tokens: i32,
    completion_tokens: i32,
}

/// The message of the last failed call on this thread.
#[no_mangle]
pub extern "C" fn nanorun_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Loads a model; null on error.
#[no_mangle]
pub unsafe extern "C" fn nanorun_engine_load(
    path: *const c_char,
    params: *const EngineParams,
) -> *mut CEngine {
    guard(ptr::null_mut(), || {
        if path.is_null() {
            return Err("nanorun_engine_load: path is NULL".into());
        }
        let path = CStr::from_ptr(path)
            .to_str()
            .map_err(|_| "nanorun_engine_load: path is not UTF-8".to_string())?;
        let p = if params.is_null() {
            EngineParams::default()
        } else {
            *params
        };
        let mut cfg = EngineConfig::default();
        let pos = |v: i32, what: &str| {
            usize::try_from(v).map_err(|_| format!("nanorun_engine_load: {what} is negative"))
        };
        cfg.n_threads = pos(p.n_threads, "n_threads")?;
        if p.n_ctx != 0 {
            cfg.n_ctx = pos(p.n_ctx, "n_ctx")?;
        }
        if p.max_seqs != 0 {
            cfg.max_seqs = pos(p.max_seqs, "max_seqs")?;
        }
        let engine = Engine::load(path, cfg).map_err(|e| format!("{path}: {e}"))?;
        Ok(Box::into_raw(Box::new(CEngine(engine))))
    })
}

/// Stops and frees an engine.
#[no_mangle]
pub unsafe extern "C" fn nanorun_engine_free(engine: *mut CEngine) {
    if !engine.is_null() {
        guard((), || {
            drop(Box::from_raw(engine));
            Ok(())
        })
    }
}

/// Fills `params` with the defaults.
#[no_mangle]
pub unsafe extern "C" fn nanorun_request_params_default(params: *mut RequestParams) {
    if params.is_null() {
        return;
    }
    let d = SamplingParams::default();
    *params = RequestParams {
        max_tokens: 64,
        temperature: d.temperature,
        top_k: d.top_k as i32,
        top_p: d.top_p,
        min_p: d.min_p,
        repeat_penalty: d.repeat_penalty,
        has_seed: 0,
        seed: 0,
        ignore_eos: 0,
    };
}

fn request_from(mut req: Request, p: Option<RequestParams>) -> Result<Request, String> {
    let Some(p) = p else { return Ok(req) };
    req.max_tokens = usize::try_from(p.max_tokens)
        .map_err(|_| format!("max_tokens must be at least 0, not {}", p.max_tokens))?;
    req.sampling = SamplingParams {
        temperature: p.temperature,
        top_k: u32::try_from(p.top_k).map_err(|_| format!("top_k {} is negative", p.top_k))?,
        top_p: p.top_p,
        min_p: p.min_p,
        repeat_penalty: p.repeat_penalty,
        seed: (p.has_seed != 0).then_some(p.seed),
        ..SamplingParams::default()
    };
    req.ignore_eos = p.ignore_eos != 0;
    Ok(req)
}

unsafe fn submit(
    engine: *mut CEngine,
    req: Request,
    params: *const RequestParams,
) -> *mut CRequest {
    guard(ptr::null_mut(), || {
        let engine = engine
            .as_ref()
            .ok_or_else(|| "nanorun_submit: engine is NULL".to_string())?;
        let p = (!params.is_null()).then(|| *params);
        let req = request_from(req, p)?;
        let stream = engine.0.submit(req).map_err(|e| e.to_string())?;
        Ok(Box::into_raw(Box::new(CRequest {
            stream,
            text: CString::default(),
            finish: CString::default(),
            prompt_tokens: 0,
            completion_tokens: 0,
        })))
    })
}

/// Width of the vectors [`nanorun_embed`] writes; 0 for a generation engine or NULL.
#[no_mangle]
pub unsafe extern "C" fn nanorun_embed_dim(engine: *const CEngine) -> i32 {
    guard(0, || {
        let dim = engine.as_ref().and_then(|e| e.0.embedder());
        Ok(dim.map_or(0, |m| m.n_embd_out() as i32))
    })
}

/// Embeds `n_texts` texts with an embedding engine into `out` (`n_texts` rows of
/// [`nanorun_embed_dim`] floats), L2-normalised when `normalize` is non-zero; returns the
/// input tokens, -1 on error.
#[no_mangle]
pub unsafe extern "C" fn nanorun_embed(
    engine: *mut CEngine,
    texts: *const *const c_char,
    n_texts: usize,
    normalize: i32,
    out: *mut f32,
) -> i32 {
    guard(-1, || {
        let engine = engine.as_ref().ok_or("nanorun_embed: engine is NULL")?;
        if texts.is_null() || out.is_null() {
            return Err("nanorun_embed: texts or out is NULL".into());
        }
        let texts = std::slice::from_raw_parts(texts, n_texts)
            .iter()
            .map(|&t| match t.is_null() {
                true => Err("nanorun_embed: a text is NULL".to_string()),
                false => Ok(CStr::from_ptr(t).to_string_lossy().into_owned()),
            })
            .collect::<Result<Vec<String>, _>>()?;
        let r = engine
            .0
            .embed(texts, normalize != 0)
            .map_err(|e| format!("nanorun_embed: {e}"))?;
        let dim = r.vectors.first().map_or(0, Vec::len);
        let rows = std::slice::from_raw_parts_mut(out, n_texts * dim);
        for (row, v) in rows.chunks_exact_mut(dim.max(1)).zip(&r.vectors) {
            row.copy_from_slice(v);
        }
        i32::try_from(r.prompt_tokens).map_err(|_| "nanorun_embed: too many tokens".into())
    })
}

/// Submits a text prompt; null on a bad request.
#[no_mangle]
pub unsafe extern "C" fn nanorun_submit(
    engine: *mut CEngine,
    prompt: *const c_char,
    params: *const RequestParams,
) -> *mut CRequest {
    if prompt.is_null() {
        set_error("nanorun_submit: prompt is NULL");
        return ptr::null_mut();
    }
    let text = CStr::from_ptr(prompt).to_string_lossy().into_owned();
    submit(engine, Request::new(text), params)
}

/// Submits token ids; null on a bad request.
#[no_mangle]
pub unsafe extern "C" fn nanorun_submit_tokens(
    engine: *mut CEngine,
    tokens: *const i32,
    n_tokens: usize,
    params: *const RequestParams,
) -> *mut CRequest {
    if tokens.is_null() && n_tokens > 0 {
        set_error("nanorun_submit_tokens: tokens is NULL");
        return ptr::null_mut();
    }
    let ids = if n_tokens == 0 {
        &[][..]
    } else {
        std::slice::from_raw_parts(tokens, n_tokens)
    };
    let Ok(ids) = ids
        .iter()
        .map(|&t| u32::try_from(t))
        .collect::<Result<Vec<_>, _>>()
    else {
        set_error("nanorun_submit_tokens: negative token id");
        return ptr::null_mut();
    };
    submit(engine, Request::from_tokens(ids), params)
}

/// Waits for the next token: 1 (token), 0 (done), -1 (error).
#[no_mangle]
pub unsafe extern "C" fn nanorun_next(
    request: *mut CRequest,
    token: *mut i32,
    text: *mut *const c_char,
) -> i32 {
    guard(-1, || {
        let r = request
            .as_mut()
            .ok_or_else(|| "nanorun_next: request is NULL".to_string())?;
        let (id, piece) = match r.stream.recv() {
            Some(Event::Token { id, text }) => (id as i32, text),
            Some(Event::Text(text)) => (-1, text),
            Some(Event::Finished { reason, usage }) => {
                r.finish = CString::new(reason.as_str()).unwrap_or_default();
                r.prompt_tokens = usage.prompt_tokens as i32;
                r.completion_tokens = usage.completion_tokens as i32;
                return Ok(0);
            }
            Some(Event::Error(e)) => return Err(e),
            None => return Ok(0),
        };
        r.text = CString::new(piece.replace('\0', "")).unwrap_or_default();
        if !token.is_null() {
            *token = id;
        }
        if !text.is_null() {
            *text = r.text.as_ptr();
        }
        Ok(1)
    })
}

/// Why the request ended ("" before it did).
#[no_mangle]
pub unsafe extern "C" fn nanorun_finish_reason(request: *const CRequest) -> *const c_char {
    match request.as_ref() {
        Some(r) => r.finish.as_ptr(),
        None => c"".as_ptr(),
    }
}

/// Token counts of an ended request.
#[no_mangle]
pub unsafe extern "C" fn nanorun_usage(
    request: *const CRequest,
    prompt_tokens: *mut i32,
    completion_tokens: *mut i32,
) {
    if let Some(r) = request.as_ref() {
        if !prompt_tokens.is_null() {
            *prompt_tokens = r.prompt_tokens;
        }
        if !completion_tokens.is_null() {
            *completion_tokens = r.completion_tokens;
        }
    }
}

/// Cancels a request.
#[no_mangle]
pub unsafe extern "C" fn nanorun_cancel(request: *mut CRequest) {
    if let Some(r) = request.as_ref() {
        r.stream.cancel();
    }
}

/// Frees a request (cancelling it if it still runs).
#[no_mangle]
pub unsafe extern "C" fn nanorun_request_free(request: *mut CRequest) {
    if !request.is_null() {
        guard((), || {
            drop(Box::from_raw(request));
            Ok(())
        })
    }
}
