//! Chat templates from the GGUF (`tokenizer.chat_template`), rendered with minijinja.
//!
//! Templates are written for Python's Jinja2 as Hugging Face `transformers` sets it up
//! (`apply_chat_template`), and this module reproduces that environment so that a rendering is
//! byte-identical to what `transformers` produces:
//!
//! - `trim_blocks` and `lstrip_blocks` on, a single trailing newline of the template removed;
//! - `{% break %}` / `{% continue %}` (Jinja's `loopcontrols` extension);
//! - Python string, dict and list methods (`.strip()`, `.split()`, `.startswith()`, `.items()`,
//!   …) through `minijinja-contrib`'s `pycompat`;
//! - `raise_exception(message)`, which aborts rendering with [`ChatError::Raised`] carrying the
//!   template's message;
//! - `strftime_now(format)`, today's date (UTC; see [`Clock`]);
//! - `tojson` as `transformers` defines it (`json.dumps` with `ensure_ascii=False`, optional
//!   `indent`, `separators`, `sort_keys`), not minijinja's HTML-safe one.
//!
//! The context holds `messages` (a list of `{role, content}` maps), `add_generation_prompt`,
//! `bos_token` and `eos_token`, plus any extra variables the caller passes (`enable_thinking`,
//! `tools`, `date_string`, …). Rendering is bounded (minijinja "fuel"), so a hostile template
//! in a GGUF cannot spin forever.
//!
//! A GGUF without a template gets no silent default: the caller picks a [`BuiltinTemplate`]
//! explicitly.
//!
//! ```
//! use nanorun::chat::{ChatMessage, ChatTemplate};
//! let t = ChatTemplate::new("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}")
//!     .unwrap();
//! let out = t.render(&[ChatMessage::user("hi")], false, "<s>", "</s>").unwrap();
//! assert_eq!(out, "[user] hi\n");
//! ```

mod builtin;
mod json;
mod strftime;

pub use builtin::BuiltinTemplate;
/// A value for an extra template variable (see [`ChatTemplate::render_with_vars`]): build one
/// with `TemplateValue::from(true)`, `from("text")`, `from(vec![...])` or
/// `TemplateValue::from_pairs([("key", value)])` for a map.
pub use minijinja::Value as TemplateValue;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error, ErrorKind, Value};
use nanorun_formats::Gguf;

/// The GGUF metadata key of the default chat template.
pub const GGUF_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// Name under which the template is stored in its environment (shows up in error locations).
const TEMPLATE_NAME: &str = "chat_template";

/// Instructions one rendering may execute before it is stopped. A long conversation through a
/// large template uses well under a million.
const FUEL: u64 = 50_000_000;

/// The deepest a template may nest calls, includes and blocks.
const RECURSION_LIMIT: usize = 200;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, … as the template expects them.
    pub role: String,
    /// The text of the message.
    pub content: String,
}

impl ChatMessage {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> ChatMessage {
        ChatMessage::new("assistant", content)
    }
}

/// Why a chat template could not be compiled or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The template source is not valid Jinja (`tokenizer.chat_template` is malformed).
    #[error("chat template (tokenizer.chat_template) is invalid: {0}")]
    Syntax(String),
    /// The template itself refused the conversation through `raise_exception(message)`,
    /// e.g. "System role not supported".
    #[error("chat template rejected the conversation: {message}")]
    Raised {
        /// The message the template passed to `raise_exception`.
        message: String,
    },
    /// The GGUF's template key holds something other than a UTF-8 string.
    #[error("GGUF metadata `{key}` is not a usable chat template: {reason}")]
    Metadata {
        /// The metadata key (`tokenizer.chat_template` or a named variant).
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// Rendering failed for another reason (an undefined attribute, a type error, the
    /// execution budget ran out, …); the text says what and where.
    #[error("chat template failed to render: {0}")]
    Render(String),
}

/// What `strftime_now(format)` returns inside a template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Clock {
    /// The current date and time in UTC, formatted with the template's format string.
    /// (`transformers` uses local time; an engine serving many users has no single local zone.)
    #[default]
    SystemUtc,
    /// A Unix timestamp (seconds, UTC), formatted with the template's format string.
    Fixed(i64),
    /// This exact text whatever the format asks for: reproducible renderings, as the reference
    /// renderings in the test data were made ("26 Jul 2024").
    Text(String),
}

/// The error `raise_exception` produces, kept as the source of minijinja's error so that
/// [`ChatError::Raised`] can be told apart from other failures.
#[derive(Debug)]
struct TemplateException(String);

impl std::fmt::Display for TemplateException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateException {}

/// A compiled chat template, ready to render conversations. Cheap to share across threads.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    clock: Clock,
}

impl ChatTemplate {
    /// Compiles a template (the `tokenizer.chat_template` string of a GGUF).
    pub fn new(source: &str) -> Result<ChatTemplate, ChatError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|e| ChatError::Syntax(describe(&e)))?;
        env.set_syntax(syntax);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(RECURSION_LIMIT);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", json::tojson_filter);
        env.add_function("raise_exception", raise_exception);
        let mut template = ChatTemplate {
            env,
            source: source.to_string(),
            clock: Clock::default(),
        };
        template.install_clock();
        template
            .env
            .add_template_owned(TEMPLATE_NAME, rewrite_generation_tags(source))
            .map_err(|e| ChatError::Syntax(describe(&e)))?;
        Ok(template)
    }

    /// The template a GGUF file carries: `tokenizer.chat_template`, or with `name` the named
    /// variant `tokenizer.chat_template.<name>` (e.g. `tool_use`). `Ok(None)` when the file
    /// has none, so that the caller decides, and says, what to use instead.
    pub fn from_gguf(gguf: &Gguf, name: Option<&str>) -> Result<Option<ChatTemplate>, ChatError> {
        let key = match name {
            Some(name) => format!("{GGUF_TEMPLATE_KEY}.{name}"),
            None => GGUF_TEMPLATE_KEY.to_string(),
        };
        match gguf.get_opt_str(&key) {
            Ok(Some(source)) => ChatTemplate::new(source).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(ChatError::Metadata {
                key,
                reason: e.to_string(),
            }),
        }
    }

    /// One of nanorun's built-in templates, for a GGUF that carries none.
    pub fn builtin(which: BuiltinTemplate) -> ChatTemplate {
        // The built-in sources are tested to compile; failing here is a bug in this crate.
        ChatTemplate::new(which.source()).expect("built-in chat template compiles")
    }

    /// Sets what `strftime_now` returns (the system clock in UTC by default).
    pub fn with_clock(mut self, clock: Clock) -> ChatTemplate {
        self.clock = clock;
        self.install_clock();
        self
    }

    /// The Jinja source this template was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders a conversation. `add_generation_prompt` appends the opening of an assistant
    /// turn; `bos_token` / `eos_token` are the texts of the model's BOS and EOS tokens (many
    /// templates write them literally).
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String, ChatError> {
        self.render_with_vars(messages, add_generation_prompt, bos_token, eos_token, &[])
    }

    /// Like [`render`](Self::render), with extra template variables, as `transformers` passes
    /// keyword arguments of `apply_chat_template` through (`enable_thinking`, `tools`,
    /// `documents`, `date_string`, …). An extra variable named like a standard one replaces it:
    /// passing `messages` renders a conversation richer than [`ChatMessage`] allows (tool calls,
    /// `reasoning_content`, content parts), built with [`TemplateValue::from_pairs`] or, from
    /// JSON, [`TemplateValue::from_serialize`].
    pub fn render_with_vars(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
        vars: &[(&str, TemplateValue)],
    ) -> Result<String, ChatError> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from_pairs([
                    ("role", Value::from(m.role.as_str())),
                    ("content", Value::from(m.content.as_str())),
                ])
            })
            .collect();
        let mut ctx: Vec<(&str, Value)> = vec![
            ("messages", Value::from(messages)),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
            ("bos_token", Value::from(bos_token)),
            ("eos_token", Value::from(eos_token)),
        ];
        for (name, value) in vars {
            match ctx.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = value.clone(),
                None => ctx.push((name, value.clone())),
            }
        }
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| ChatError::Render(describe(&e)))?;
        template
            .render(Value::from_pairs(ctx))
            .map_err(|e| match raised_message(&e) {
                Some(message) => ChatError::Raised { message },
                None => ChatError::Render(describe(&e)),
            })
    }

    fn install_clock(&mut self) {
        let clock = self.clock.clone();
        self.env
            .add_function("strftime_now", move |format: String| -> String {
                match &clock {
                    Clock::SystemUtc => strftime::DateTime::now_utc().format(&format),
                    Clock::Fixed(secs) => strftime::DateTime::from_unix(*secs).format(&format),
                    Clock::Text(text) => text.clone(),
                }
            });
    }
}

/// `transformers` knows a `{% generation %}…{% endgeneration %}` block (it marks the assistant's
/// tokens for training masks and renders its body unchanged). minijinja does not, so the tags
/// become `{% if true %}` / `{% endif %}`, whitespace-control marks kept.
fn rewrite_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start + 2..];
        let (mark, after_mark) = match tag.as_bytes().first() {
            Some(b'-') | Some(b'+') => (&tag[..1], &tag[1..]),
            _ => ("", tag),
        };
        let body = after_mark.trim_start();
        let keyword = ["endgeneration", "generation"]
            .into_iter()
            .find(|k| body.starts_with(k));
        let rewritten = keyword.and_then(|k| {
            let tail = body[k.len()..].trim_start();
            let (end_mark, tail) = match tail.as_bytes().first() {
                Some(b'-') | Some(b'+') => (&tail[..1], &tail[1..]),
                _ => ("", tail),
            };
            let tail = tail.strip_prefix("%}")?;
            let stmt = if k == "generation" {
                "if true"
            } else {
                "endif"
            };
            Some((format!("{{%{mark} {stmt} {end_mark}%}}"), tail))
        });
        match rewritten {
            Some((tag, tail)) => {
                out.push_str(&tag);
                rest = tail;
            }
            None => {
                out.push_str("{%");
                rest = tag;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `raise_exception(message)`: always fails, carrying the message.
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message.clone())
        .with_source(TemplateException(message)))
}

/// The message of a `raise_exception` call somewhere in the error's chain, if any.
fn raised_message(err: &Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<TemplateException>() {
            return Some(t.0.clone());
        }
        cur = e.source();
    }
    None
}

/// A one-line description of a minijinja error with its location, and its causes.
fn describe(err: &Error) -> String {
    let mut text = err.to_string();
    let mut cur = std::error::Error::source(err);
    while let Some(e) = cur {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cur = e.source();
    }
    text
}

#[cfg(test)]
mod tests;
