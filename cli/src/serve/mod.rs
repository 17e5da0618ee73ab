//! `nanorun serve`: an OpenAI-compatible HTTP server over [`nanorun::Engine`] (axum on
//! tokio). `POST /v1/completions`, `POST /v1/chat/completions` (`stream: true` as server-sent
//! events ending with `data: [DONE]`), `GET /v1/models`, `GET /health`, `GET /metrics`
//! (Prometheus text). Errors are 4xx/5xx with OpenAI's `{"error": {...}}` body; a client that
//! disconnects mid-stream cancels its request.

mod api;
mod embeddings;
mod handlers;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use nanorun::chat::{BuiltinTemplate, ChatTemplate};
use nanorun::{Engine, EngineConfig};

use crate::common::ModelArgs;
use handlers::AppState;

/// Options of `nanorun serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests decoded at once (parallel slots).
    #[arg(
        long = "parallel",
        short = 'n',
        visible_alias = "np",
        default_value_t = 4
    )]
    pub parallel: usize,
    /// The model name clients use (default: the file name without `.gguf`).
    #[arg(long)]
    pub alias: Option<String>,
    /// Use a built-in chat template (chatml, gemma) instead of the model's.
    #[arg(long = "chat-template")]
    pub chat_template: Option<String>,
    /// Finished requests whose K/V is kept for later requests with the same prefix (0: none).
    #[arg(long = "prefix-cache", default_value_t = 16)]
    pub prefix_cache: usize,
    /// Do not share identical prompt prefixes between requests.
    #[arg(long = "no-prefix-sharing")]
    pub no_prefix_sharing: bool,
    /// Let large prefill batches round as llama.cpp's do instead of batch-invariantly: a
    /// request's tokens may then depend on what it was batched with.
    #[arg(long)]
    pub llama_cpp_rounding: bool,
    /// Where the forward passes run: cpu, cuda (device 0) or cuda:N (see docs/cuda.md).
    #[arg(long, default_value = "cpu", value_parser = crate::run::parse_device)]
    pub device: nanorun::Device,
}

/// Loads the model and serves until interrupted.
pub fn run(args: &ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    if let nanorun::Device::Cuda(n) = args.device {
        nanorun::backend::check_cuda(n).map_err(|e| format!("--device cuda: {e}"))?;
    }
    let path = args.model.path()?.clone();
    if embeddings::is_embedding_model(&path) {
        if args.device != nanorun::Device::Cpu {
            return Err("--device cuda: embedding models run on the CPU only".into());
        }
        return embeddings::run(args, &path);
    }
    if args.parallel == 0 || args.parallel > 256 {
        return Err(format!("--parallel {} must be between 1 and 256", args.parallel).into());
    }
    let n_threads = args.model.n_threads()?;
    let loaded = args.model.load()?;
    let kv = args.model.kv_config(&loaded.model)?;
    let cfg = EngineConfig {
        n_threads,
        n_ctx: args.model.ctx_size.unwrap_or(4096 * args.parallel.min(4)),
        max_seqs: args.parallel,
        max_batch_tokens: args.model.batch_size.max(args.parallel),
        type_k: kv.type_k,
        type_v: kv.type_v,
        prefix_sharing: !args.no_prefix_sharing,
        prefix_cache: args.prefix_cache,
        batch_invariant: !args.llama_cpp_rounding,
    };
    let mut engine = Engine::new_on(loaded.model, loaded.tokenizer, cfg, args.device)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(name) = &args.chat_template {
        let which = BuiltinTemplate::from_name(name).ok_or_else(|| {
            format!("unknown built-in chat template '{name}' (expected chatml or gemma)")
        })?;
        engine = engine.with_chat_template(ChatTemplate::builtin(which));
    } else if engine.chat_template().is_none() {
        eprintln!(
            "nanorun: note: the model has no chat template; /v1/chat/completions will refuse \
             requests (pass --chat-template chatml|gemma)"
        );
    }
    let name = args.alias.clone().unwrap_or_else(|| {
        path.file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned())
    });
    let state = Arc::new(AppState {
        engine: Arc::new(engine),
        name,
        created: handlers::now(),
        http_errors: AtomicU64::new(0),
        next_id: AtomicU64::new(1),
    });
    let addr = resolve_addr(&args.host, args.port)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr()?;
        eprintln!(
            "nanorun: serving {} on http://{local} (parallel {}, context {})",
            state.name,
            args.parallel,
            state.engine.max_seq_len()
        );
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

/// The routes.
fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(handlers::health))
        .route("/v1/models", get(handlers::models))
        .route("/metrics", get(handlers::metrics))
        .route("/v1/completions", post(handlers::completions))
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(|| async {
            handlers::status_error(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            )
        })
        .with_state(state)
}

/// `host:port` as a socket address, resolving a host name when it is not an IP literal.
fn resolve_addr(host: &str, port: u16) -> Result<SocketAddr, String> {
    format!("{host}:{port}")
        .parse()
        .or_else(|_| {
            std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
                .ok()
                .and_then(|mut a| a.next())
                .ok_or(())
        })
        .map_err(|_| format!("cannot resolve --host {host}"))
}

/// The server's tokio runtime (two workers: the engine thread does the heavy work).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
