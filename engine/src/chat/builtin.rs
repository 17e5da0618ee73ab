//! Built-in chat templates for models whose GGUF carries no `tokenizer.chat_template`.
//!
//! These are never applied behind the caller's back: a caller that finds no template in the
//! file picks one of these explicitly (`ChatTemplate::builtin`), and should say so to the user.

/// A chat template shipped with nanorun, for GGUF files that carry none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinTemplate {
    /// ChatML (`<|im_start|>role\ncontent<|im_end|>\n`), llama.cpp's own fallback and the
    /// format of Qwen, SmolLM and many fine-tunes. No BOS token is written.
    ChatMl,
    /// Gemma's turn format (`<start_of_turn>user\n…<end_of_turn>\n`), as Gemma 2/3 ship it:
    /// BOS first, `assistant` spelled `model`, a leading system message folded into the first
    /// user turn followed by a blank line, contents trimmed.
    Gemma,
}

impl BuiltinTemplate {
    /// Every built-in template.
    pub const ALL: [BuiltinTemplate; 2] = [BuiltinTemplate::ChatMl, BuiltinTemplate::Gemma];

    /// The short name used on the command line and in logs (`chatml`, `gemma`).
    pub fn name(self) -> &'static str {
        match self {
            BuiltinTemplate::ChatMl => "chatml",
            BuiltinTemplate::Gemma => "gemma",
        }
    }

    /// Looks a built-in template up by its [`name`](Self::name) (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<BuiltinTemplate> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The Jinja source of this template.
    pub fn source(self) -> &'static str {
        match self {
            BuiltinTemplate::ChatMl => CHATML,
            BuiltinTemplate::Gemma => GEMMA,
        }
    }
}

const CHATML: &str = "\
{%- for message in messages %}
    {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
";

const GEMMA: &str = "\
{{- bos_token }}
{%- if messages and messages[0].role == 'system' %}
    {%- set first_user_prefix = messages[0].content + '\\n\\n' %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set first_user_prefix = '' %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- for message in loop_messages %}
    {%- set role = 'model' if message.role == 'assistant' else message.role %}
    {{- '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}
    {{- message.content | trim + '<end_of_turn>\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<start_of_turn>model\\n' }}
{%- endif %}
";
