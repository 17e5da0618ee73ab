//! The HTTP endpoints. Each generation request is submitted to the [`Engine`]; a blocking
//! bridge task forwards its events to the async side. When the client goes away the async
//! side drops its receiver, the bridge stops and drops the request's stream, and the engine
//! cancels the sequence and frees its blocks.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use nanorun::{Engine, EngineError, Event, FinishReason, Prompt, RequestStream, Usage};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::api::{self, ApiError, Kind, PromptIn};

/// What every handler shares.
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The model name clients must use.
    pub name: String,
    /// When the server started (seconds since the epoch).
    pub created: u64,
    /// Requests answered with an error status.
    pub http_errors: AtomicU64,
    /// Source of response ids.
    pub next_id: AtomicU64,
}

type Shared = State<Arc<AppState>>;

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `GET /health`: 200 while the engine serves, 503 once it has stopped.
pub async fn health(State(st): Shared) -> Response {
    if st.engine.is_running() {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "message": "the engine has stopped"})),
        )
            .into_response()
    }
}

/// `GET /v1/models`.
pub async fn models(State(st): Shared) -> Json<Value> {
    Json(json!({"object": "list", "data": [{
        "id": st.name, "object": "model", "created": st.created, "owned_by": "nanorun",
        "meta": {"n_ctx": st.engine.max_seq_len(), "arch": st.engine.arch_name()},
    }]}))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(st): Shared) -> Response {
    let m = st.engine.metrics();
    let mut out = String::new();
    let mut put = |name: &str, kind: &str, help: &str, v: u64| {
        out.push_str(&format!(
            "# HELP nanorun_{name} {help}\n# TYPE nanorun_{name} {kind}\nnanorun_{name} {v}\n"
        ));
    };
    put(
        "requests_total",
        "counter",
        "Generation requests accepted.",
        m.requests,
    );
    put(
        "requests_finished_total",
        "counter",
        "Requests that ended normally.",
        m.finished,
    );
    put(
        "requests_cancelled_total",
        "counter",
        "Requests cancelled (client gone).",
        m.cancelled,
    );
    put(
        "requests_failed_total",
        "counter",
        "Requests that failed in the engine.",
        m.failed,
    );
    put(
        "http_errors_total",
        "counter",
        "Requests answered with a 4xx or 5xx.",
        st.http_errors.load(Relaxed),
    );
    put(
        "prompt_tokens_total",
        "counter",
        "Prompt tokens of accepted requests.",
        m.prompt_tokens,
    );
    put(
        "prompt_tokens_cached_total",
        "counter",
        "Prompt tokens shared from another request instead of computed.",
        m.cached_tokens,
    );
    put(
        "generated_tokens_total",
        "counter",
        "Tokens generated.",
        m.generated_tokens,
    );
    put(
        "computed_tokens_total",
        "counter",
        "Tokens run through the model.",
        m.computed_tokens,
    );
    put(
        "preemptions_total",
        "counter",
        "Sequences preempted for lack of KV blocks.",
        m.preemptions,
    );
    put("steps_total", "counter", "Forward passes.", m.steps);
    put(
        "queue_depth",
        "gauge",
        "Requests waiting to start.",
        m.waiting,
    );
    put("requests_running", "gauge", "Requests running.", m.running);
    put(
        "prefix_cache_sequences",
        "gauge",
        "Finished requests whose K/V is kept for prefix sharing.",
        m.cached_seqs,
    );
    put(
        "kv_blocks_used",
        "gauge",
        "KV cache blocks in use.",
        m.kv_blocks_used,
    );
    put(
        "kv_blocks_free",
        "gauge",
        "KV cache blocks free.",
        m.kv_blocks_free,
    );
    put(
        "batch_tokens",
        "gauge",
        "Tokens in the last forward pass.",
        m.batch_tokens,
    );
    put(
        "batch_size",
        "gauge",
        "Sequences in the last forward pass.",
        m.batch_seqs,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// `POST /v1/completions`.
pub async fn completions(State(st): Shared, body: Bytes) -> Response {
    generate(st, body, Kind::Completion).await
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(State(st): Shared, body: Bytes) -> Response {
    generate(st, body, Kind::Chat).await
}

/// Anything else.
pub async fn not_found(State(st): Shared, uri: axum::http::Uri) -> Response {
    st.http_errors.fetch_add(1, Relaxed);
    ApiError::not_found(format!("no endpoint {}", uri.path()), None).into_response()
}

async fn generate(st: Arc<AppState>, body: Bytes, kind: Kind) -> Response {
    match try_generate(st.clone(), body, kind).await {
        Ok(r) => r,
        Err(e) => {
            st.http_errors.fetch_add(1, Relaxed);
            e.into_response()
        }
    }
}

fn engine_error(e: EngineError) -> ApiError {
    let msg = e.to_string();
    let mut err = ApiError::bad(None, msg.clone());
    if msg.contains("context holds") {
        err.code = Some("context_length_exceeded");
        err.param = Some("prompt".into());
    }
    err
}

async fn try_generate(st: Arc<AppState>, body: Bytes, kind: Kind) -> Result<Response, ApiError> {
    let parsed = api::parse(&body, kind, &st.name)?;
    let mut req = parsed.request;
    let mut echo = String::new();
    req.prompt = match parsed.prompt {
        PromptIn::Text(t) => {
            if parsed.echo {
                echo = t.clone();
            }
            Prompt::Text(t)
        }
        PromptIn::Tokens(t) => {
            if parsed.echo {
                echo = st.engine.tokenizer().decode(&t, false).unwrap_or_default();
            }
            Prompt::Tokens(t)
        }
        PromptIn::Messages(m) => Prompt::Text(st.engine.render_chat(&m).map_err(engine_error)?),
    };
    let engine = st.engine.clone();
    let stream = tokio::task::spawn_blocking(move || engine.submit(req))
        .await
        .map_err(|e| ApiError::server(format!("submit task failed: {e}")))?
        .map_err(|e| {
            if st.engine.is_running() {
                engine_error(e)
            } else {
                let mut err = ApiError::server(e.to_string());
                err.status = StatusCode::SERVICE_UNAVAILABLE;
                err
            }
        })?;
    let id = format!(
        "{}-{}",
        if kind == Kind::Chat {
            "chatcmpl"
        } else {
            "cmpl"
        },
        st.next_id.fetch_add(1, Relaxed)
    );
    let chunk = Chunker {
        id,
        kind,
        created: now(),
        model: st.name.clone(),
    };
    if parsed.stream {
        let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
        let include_usage = parsed.include_usage;
        let mut first = true;
        let echo_first = echo;
        tokio::task::spawn_blocking(move || {
            bridge(stream, tx, |ev| {
                let mut out = Vec::new();
                if first {
                    first = false;
                    if kind == Kind::Chat {
                        out.push(chunk.delta(json!({"role": "assistant", "content": ""}), None));
                    } else if !echo_first.is_empty() {
                        out.push(chunk.delta(json!(echo_first), None));
                    }
                }
                match ev {
                    Event::Token { text, .. } | Event::Text(text) => {
                        if !text.is_empty() {
                            out.push(chunk.delta(content(kind, &text), None));
                        }
                    }
                    Event::Finished { reason, usage } => {
                        let empty = if kind == Kind::Chat {
                            json!({})
                        } else {
                            json!("")
                        };
                        out.push(chunk.delta(empty, Some(reason)));
                        if include_usage {
                            let mut u = chunk.delta(json!(""), None);
                            u["choices"] = json!([]);
                            u["usage"] = usage_json(&usage);
                            out.push(u);
                        }
                        out.push(json!("[DONE]"));
                    }
                    Event::Error(e) => {
                        out.push(ApiError::server(e).body());
                        out.push(json!("[DONE]"));
                    }
                }
                out.into_iter()
                    .map(|v| {
                        let data = match v.as_str() {
                            Some("[DONE]") => "[DONE]".to_string(),
                            _ => v.to_string(),
                        };
                        Ok(SseEvent::default().data(data))
                    })
                    .collect()
            })
        });
        return Ok(Sse::new(ReceiverStream::new(rx))
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let (tx, mut rx) = mpsc::channel::<Event>(64);
    tokio::task::spawn_blocking(move || bridge(stream, tx, |e| vec![e]));
    let mut text = echo;
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Token { text: t, .. } | Event::Text(t) => text.push_str(&t),
            Event::Finished { reason, usage } => {
                let mut v = chunk.full(&text, reason);
                v["usage"] = usage_json(&usage);
                return Ok(Json(v).into_response());
            }
            Event::Error(e) => return Err(ApiError::server(e)),
        }
    }
    Err(ApiError::server(
        "the engine stopped before the request ended",
    ))
}

/// Forwards a request's events to the async side until it ends or the receiver is gone
/// (then dropping `stream` cancels the request).
fn bridge<T>(mut stream: RequestStream, tx: mpsc::Sender<T>, mut f: impl FnMut(Event) -> Vec<T>) {
    while let Some(ev) = stream.recv() {
        for item in f(ev) {
            if tx.blocking_send(item).is_err() {
                return;
            }
        }
    }
}

fn content(kind: Kind, text: &str) -> Value {
    match kind {
        Kind::Chat => json!({"content": text}),
        Kind::Completion => json!(text),
    }
}

fn finish_str(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Length | FinishReason::ContextFull => "length",
        FinishReason::Stop | FinishReason::Cancelled => "stop",
    }
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    })
}

/// Builds response bodies and stream chunks in OpenAI's shapes.
struct Chunker {
    id: String,
    kind: Kind,
    created: u64,
    model: String,
}

impl Chunker {
    /// A stream chunk: `delta` is the chat delta object or the completion text.
    fn delta(&self, delta: Value, finish: Option<FinishReason>) -> Value {
        let fr = finish.map(finish_str);
        let choice = match self.kind {
            Kind::Chat => {
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": fr})
            }
            Kind::Completion => {
                json!({"index": 0, "text": delta, "logprobs": null, "finish_reason": fr})
            }
        };
        let object = match self.kind {
            Kind::Chat => "chat.completion.chunk",
            Kind::Completion => "text_completion",
        };
        json!({"id": self.id, "object": object, "created": self.created, "model": self.model,
               "choices": [choice]})
    }

    /// A whole (non-streamed) response.
    fn full(&self, text: &str, finish: FinishReason) -> Value {
        let fr = finish_str(finish);
        let (object, choice) = match self.kind {
            Kind::Chat => (
                "chat.completion",
                json!({"index": 0, "message": {"role": "assistant", "content": text},
                       "logprobs": null, "finish_reason": fr}),
            ),
            Kind::Completion => (
                "text_completion",
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": fr}),
            ),
        };
        json!({"id": self.id, "object": object, "created": self.created, "model": self.model,
               "choices": [choice]})
    }
}

/// A 405/413-style status with the error body (used by the router's fallbacks).
pub fn status_error(status: StatusCode, message: &str) -> Response {
    let mut e = ApiError::bad(None, message);
    e.status = status;
    e.into_response()
}
