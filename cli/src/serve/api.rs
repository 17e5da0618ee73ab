//! OpenAI request bodies → [`nanorun::Request`], and the error body every 4xx carries.
//!
//! Fields nanorun does not know are ignored, as OpenAI-compatible servers do; fields it knows
//! are checked, and a wrong one is a 400 naming the field.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nanorun::chat::ChatMessage;
use nanorun::sampler::SamplingParams;
use nanorun::Request;
use serde_json::{json, Value};

/// An HTTP error with an OpenAI-style body.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What was wrong.
    pub message: String,
    /// OpenAI error type (`invalid_request_error`, `not_found_error`, `server_error`).
    pub kind: &'static str,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// A machine-readable code (`model_not_found`, `context_length_exceeded`, …).
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 about `param`.
    pub fn bad(param: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code: None,
        }
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>, code: Option<&'static str>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code,
        }
    }

    /// A 500 (the engine failed while running a request).
    pub fn server(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Which endpoint a body is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/v1/completions`.
    Completion,
    /// `/v1/chat/completions`.
    Chat,
}

/// A parsed request body.
#[derive(Debug)]
pub struct Parsed {
    /// The prompt (text for completions; for chat, filled in by rendering `messages`).
    pub prompt: PromptIn,
    /// Everything else the engine needs.
    pub request: Request,
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// Echo the prompt before the completion (`echo`, completions only).
    pub echo: bool,
}

/// The prompt as the client gave it.
#[derive(Debug)]
pub enum PromptIn {
    /// Text.
    Text(String),
    /// Token ids.
    Tokens(Vec<u32>),
    /// A conversation.
    Messages(Vec<ChatMessage>),
}

/// Parses a request body; `served` is the model name this server answers to.
pub fn parse(body: &[u8], kind: Kind, served: &str) -> Result<Parsed, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(None, format!("the body is not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad(None, "the body must be a JSON object"))?;
    if let Some(m) = obj.get("model") {
        let m = m
            .as_str()
            .ok_or_else(|| ApiError::bad(Some("model"), "`model` must be a string"))?;
        if m != served {
            return Err(ApiError::not_found(
                format!("the model '{m}' does not exist (this server serves '{served}')"),
                Some("model_not_found"),
            ));
        }
    }
    let prompt = match kind {
        Kind::Completion => parse_prompt(obj.get("prompt"))?,
        Kind::Chat => PromptIn::Messages(parse_messages(obj.get("messages"))?),
    };
    let num = |k: &str| -> Result<Option<f64>, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_f64()
                .map(Some)
                .ok_or_else(|| ApiError::bad(Some(k), format!("`{k}` must be a number"))),
        }
    };
    let int = |k: &str| -> Result<Option<i64>, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::bad(Some(k), format!("`{k}` must be an integer"))),
        }
    };
    let flag = |k: &str| -> Result<bool, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::bad(
                Some(k),
                format!("`{k}` must be true or false"),
            )),
        }
    };
    if let Some(n) = int("n")? {
        if n != 1 {
            return Err(ApiError::bad(Some("n"), "only n = 1 is supported"));
        }
    }
    let max_key = if obj.contains_key("max_completion_tokens") {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    let default_max = if kind == Kind::Completion { 16 } else { 512 };
    let max_tokens = match int(max_key)? {
        None => default_max,
        Some(n) if n < 0 => {
            return Err(ApiError::bad(
                Some(max_key),
                format!("`{max_key}` must be at least 0, not {n}"),
            ))
        }
        Some(n) => n as usize,
    };
    let mut sampling = SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        ..SamplingParams::default()
    };
    if let Some(t) = num("temperature")? {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::bad(
                Some("temperature"),
                format!("`temperature` must be between 0 and 2, not {t}"),
            ));
        }
        sampling.temperature = t as f32;
    }
    if let Some(p) = num("top_p")? {
        sampling.top_p = p as f32;
    }
    if let Some(p) = num("min_p")? {
        sampling.min_p = p as f32;
    }
    if let Some(k) = int("top_k")? {
        sampling.top_k = u32::try_from(k.max(0)).unwrap_or(u32::MAX);
    }
    if let Some(p) = num("presence_penalty")? {
        sampling.presence_penalty = p as f32;
    }
    if let Some(p) = num("frequency_penalty")? {
        sampling.frequency_penalty = p as f32;
    }
    if let Some(p) = num("repeat_penalty")? {
        sampling.repeat_penalty = p as f32;
    }
    if let Some(s) = int("seed")? {
        sampling.seed = Some(s as u64);
    }
    if let Err(e) = sampling.validate() {
        return Err(ApiError::bad(None, e.to_string()));
    }
    let stop = match obj.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad(Some("stop"), "`stop` must hold strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad(
                Some("stop"),
                "`stop` must be a string or an array of strings",
            ))
        }
    };
    if stop.len() > 16 || stop.iter().any(String::is_empty) {
        return Err(ApiError::bad(
            Some("stop"),
            "`stop` takes at most 16 non-empty strings",
        ));
    }
    let include_usage = obj
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut request = Request::from_tokens(Vec::new())
        .max_tokens(max_tokens)
        .sampling(sampling)
        .stop(stop);
    request.ignore_eos = flag("ignore_eos")?;
    Ok(Parsed {
        prompt,
        request,
        stream: flag("stream")?,
        include_usage,
        echo: kind == Kind::Completion && flag("echo")?,
    })
}

fn parse_prompt(v: Option<&Value>) -> Result<PromptIn, ApiError> {
    let bad = || {
        ApiError::bad(
            Some("prompt"),
            "`prompt` must be a string, an array of one string, or an array of token ids",
        )
    };
    match v {
        None => Err(ApiError::bad(Some("prompt"), "`prompt` is required")),
        Some(Value::String(s)) => Ok(PromptIn::Text(s.clone())),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => Ok(PromptIn::Text(
            a[0].as_str().unwrap_or_default().to_string(),
        )),
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_u64) => {
            Ok(PromptIn::Tokens(
                a.iter()
                    .map(|t| {
                        t.as_u64()
                            .and_then(|t| u32::try_from(t).ok())
                            .ok_or_else(bad)
                    })
                    .collect::<Result<_, _>>()?,
            ))
        }
        Some(Value::Array(a)) if a.len() > 1 && a.iter().all(Value::is_string) => {
            Err(ApiError::bad(
                Some("prompt"),
                "batched prompts are not supported: send one request per prompt",
            ))
        }
        Some(_) => Err(bad()),
    }
}

fn parse_messages(v: Option<&Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let arr = match v {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => {
            return Err(ApiError::bad(
                Some("messages"),
                "`messages` must be a non-empty array",
            ))
        }
    };
    arr.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad(
                    Some(&format!("messages[{i}].role")),
                    format!("messages[{i}] needs a string `role`"),
                )
            })?;
            let content = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(Value::Array(parts)) => {
                    let mut s = String::new();
                    for p in parts {
                        match (p.get("type").and_then(Value::as_str), p.get("text")) {
                            (Some("text"), Some(Value::String(t))) => s.push_str(t),
                            _ => {
                                return Err(ApiError::bad(
                                    Some(&format!("messages[{i}].content")),
                                    "only text content parts are supported",
                                ))
                            }
                        }
                    }
                    s
                }
                Some(_) => {
                    return Err(ApiError::bad(
                        Some(&format!("messages[{i}].content")),
                        format!("messages[{i}].content must be a string or an array of parts"),
                    ))
                }
            };
            Ok(ChatMessage::new(role, content))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_body_becomes_a_request() {
        let p = parse(
            br#"{"model":"m","prompt":"hi","max_tokens":5,"temperature":0,"stop":"\n","seed":3,"stream":true}"#,
            Kind::Completion,
            "m",
        )
        .unwrap();
        assert!(matches!(p.prompt, PromptIn::Text(ref t) if t == "hi"));
        assert_eq!(p.request.max_tokens, 5);
        assert_eq!(p.request.sampling.temperature, 0.0);
        assert_eq!(p.request.stop, vec!["\n"]);
        assert!(p.stream);
    }

    #[test]
    fn bad_bodies_name_what_is_wrong() {
        let err = |b: &str, k| parse(b.as_bytes(), k, "m").unwrap_err();
        assert_eq!(err("{", Kind::Completion).status, StatusCode::BAD_REQUEST);
        assert_eq!(
            err(r#"{"model":"x","prompt":"a"}"#, Kind::Completion).status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            err(r#"{"prompt":"a","temperature":"hot"}"#, Kind::Completion)
                .param
                .as_deref(),
            Some("temperature")
        );
        assert_eq!(
            err(r#"{"prompt":"a","max_tokens":-1}"#, Kind::Completion)
                .param
                .as_deref(),
            Some("max_tokens")
        );
        assert!(err(r#"{"prompt":"a","top_p":0}"#, Kind::Completion)
            .message
            .contains("top_p"));
        assert_eq!(
            err(r#"{"messages":[]}"#, Kind::Chat).param.as_deref(),
            Some("messages")
        );
        assert_eq!(
            err(r#"{"messages":[{"content":"x"}]}"#, Kind::Chat)
                .param
                .as_deref(),
            Some("messages[0].role")
        );
    }
}
