//! `nanorun serve` with an embedding model (`bert`, `nomic-bert`, `gemma-embedding`):
//! `POST /v1/embeddings` in OpenAI's format, plus `GET /v1/models` and `GET /health`.
//!
//! `input` is a string, a list of strings, a list of token ids or a list of such lists; all
//! inputs of a request run in as few forward passes as the batch size allows. Vectors are
//! L2-normalised (as OpenAI's and llama-server's are); `dimensions` truncates them first
//! (Matryoshka models such as EmbeddingGemma); `encoding_format` is `float` or `base64`
//! (little-endian f32, what the `openai` Python client asks for by default); `usage` counts the
//! input tokens. Requests go to [`Engine::embed`] (on tokio's blocking pool): the engine's
//! thread embeds every request waiting (up to the batch size in tokens) together, so
//! concurrent clients share forward passes; if such a batch fails, each request is retried
//! alone and gets its own error.

use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use nanorun::model::encoder::l2_normalize;
use nanorun::{EmbedInputs, Engine, EngineConfig};
use serde_json::{json, Value};

use super::api::ApiError;
use super::ServeArgs;

/// What the embedding endpoints share.
struct EmbedServer {
    /// The embedding engine.
    engine: Arc<Engine>,
    /// The model name clients must use.
    name: String,
    /// Vector width.
    n_embd: usize,
    /// Longest input in tokens.
    n_ctx: usize,
    /// Architecture name.
    arch: &'static str,
}

type Shared = State<Arc<EmbedServer>>;

/// Whether the GGUF file at `path` holds an encoder (embedding) model.
pub fn is_embedding_model(path: &Path) -> bool {
    nanorun::formats::Gguf::open(path).is_ok_and(|g| {
        g.architecture()
            .is_ok_and(nanorun::model::encoder_config::EncoderArch::is_encoder)
    })
}

/// Loads the embedding model at `path` and serves it until interrupted.
pub fn run(args: &ServeArgs, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = EngineConfig {
        n_threads: args.model.n_threads()?,
        max_batch_tokens: args.model.batch_size.max(1),
        ..EngineConfig::default()
    };
    let engine = Engine::load(path, cfg).map_err(|e| format!("{}: {e}", path.display()))?;
    let embedder = engine
        .embedder()
        .ok_or_else(|| format!("{}: not an embedding model", path.display()))?;
    let name = args.alias.clone().unwrap_or_else(|| {
        path.file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned())
    });
    let state = Arc::new(EmbedServer {
        name,
        n_embd: embedder.n_embd_out(),
        n_ctx: embedder.config().n_ctx_train,
        arch: embedder.config().arch.name(),
        engine: Arc::new(engine),
    });
    let addr = super::resolve_addr(&args.host, args.port)?;
    let rt = super::runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr()?;
        eprintln!(
            "nanorun: serving embedding model {} ({}, {} dims) on http://{local}",
            state.name, state.arch, state.n_embd
        );
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

fn router(state: Arc<EmbedServer>) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/v1/models", get(models))
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(
                format!(
                    "no endpoint {} (this server runs an embedding model: POST /v1/embeddings)",
                    uri.path()
                ),
                None,
            )
        })
        .with_state(state)
}

async fn models(State(st): Shared) -> Json<Value> {
    Json(json!({"object": "list", "data": [{
        "id": st.name, "object": "model", "created": super::handlers::now(),
        "owned_by": "nanorun",
        "meta": {"n_ctx": st.n_ctx, "n_embd": st.n_embd, "arch": st.arch},
    }]}))
}

fn token_list(v: &[Value]) -> Option<Vec<u32>> {
    v.iter()
        .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect()
}

fn parse_input(v: Option<&Value>) -> Result<EmbedInputs, ApiError> {
    let bad = |m: &str| ApiError::bad(Some("input"), m);
    match v {
        None => Err(bad("`input` is required")),
        Some(Value::String(s)) => Ok(EmbedInputs::Texts(vec![s.clone()])),
        Some(Value::Array(a)) if a.is_empty() => Err(bad("`input` must not be empty")),
        Some(Value::Array(a)) => {
            if a.iter().all(Value::is_string) {
                return Ok(EmbedInputs::Texts(
                    a.iter()
                        .map(|s| s.as_str().unwrap_or_default().to_string())
                        .collect(),
                ));
            }
            if let Some(ids) = token_list(a) {
                return Ok(EmbedInputs::Tokens(vec![ids]));
            }
            a.iter()
                .map(|x| match x.as_array() {
                    Some(l) if !l.is_empty() => token_list(l),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(EmbedInputs::Tokens)
                .ok_or_else(|| {
                    bad("`input` must be a string, a list of strings, a list of token ids or a list of non-empty lists of token ids")
                })
        }
        Some(_) => Err(bad("`input` must be a string or a list")),
    }
}

/// Standard base64 (with padding) of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= c.len() {
                A[(n >> shift) as usize & 63] as char
            } else {
                '='
            });
        }
    }
    out
}

async fn embeddings(State(st): Shared, body: Bytes) -> Response {
    match try_embeddings(st, body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn try_embeddings(st: Arc<EmbedServer>, body: Bytes) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(None, format!("the body is not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad(None, "the body must be a JSON object"))?;
    if let Some(m) = obj.get("model") {
        let m = m
            .as_str()
            .ok_or_else(|| ApiError::bad(Some("model"), "`model` must be a string"))?;
        if m != st.name {
            return Err(ApiError::not_found(
                format!(
                    "the model '{m}' does not exist (this server serves '{}')",
                    st.name
                ),
                Some("model_not_found"),
            ));
        }
    }
    let inputs = parse_input(obj.get("input"))?;
    let base64_out = match obj.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "float" => false,
        Some(Value::String(s)) if s == "base64" => true,
        Some(_) => {
            return Err(ApiError::bad(
                Some("encoding_format"),
                "`encoding_format` must be \"float\" or \"base64\"",
            ))
        }
    };
    let dims = match obj.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(d) => match d.as_u64() {
            Some(n) if n >= 1 && n as usize <= st.n_embd => Some(n as usize),
            _ => {
                return Err(ApiError::bad(
                    Some("dimensions"),
                    format!("`dimensions` must be an integer from 1 to {}", st.n_embd),
                ))
            }
        },
    };
    let engine = st.engine.clone();
    let stopped = || ApiError::server("the embedding engine has stopped");
    let out = tokio::task::spawn_blocking(move || engine.embed(inputs, false))
        .await
        .map_err(|_| stopped())?
        .map_err(|e| match st.engine.is_running() {
            true => ApiError::bad(Some("input"), e.to_string()),
            false => stopped(),
        })?;
    let n_tokens = out.prompt_tokens;
    let data: Vec<Value> = out
        .vectors
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            if let Some(d) = dims {
                v.truncate(d);
            }
            l2_normalize(&mut v);
            let embedding = match base64_out {
                true => {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64(&bytes))
                }
                false => json!(v),
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": st.name,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn inputs_of_every_shape() {
        assert!(
            matches!(parse_input(Some(&json!("a"))), Ok(EmbedInputs::Texts(t)) if t.len() == 1)
        );
        assert!(
            matches!(parse_input(Some(&json!(["a", "b"]))), Ok(EmbedInputs::Texts(t)) if t.len() == 2)
        );
        assert!(
            matches!(parse_input(Some(&json!([1, 2]))), Ok(EmbedInputs::Tokens(t)) if t.len() == 1)
        );
        assert!(
            matches!(parse_input(Some(&json!([[1], [2, 3]]))), Ok(EmbedInputs::Tokens(t)) if t.len() == 2)
        );
        assert!(parse_input(Some(&json!([]))).is_err());
        assert!(parse_input(Some(&json!([[]]))).is_err());
        assert!(parse_input(Some(&json!([1, "a"]))).is_err());
        assert!(parse_input(Some(&json!(3))).is_err());
        assert!(parse_input(None).is_err());
    }
}
