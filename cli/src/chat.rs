//! `nanorun chat -m MODEL`: an interactive conversation on stdin/stdout, rendered with the
//! model's chat template (`tokenizer.chat_template`). A model without one needs
//! `--chat-template chatml|gemma`; for Gemma models the built-in Gemma template is used and
//! a note says so.

use std::io::{BufRead, Write};

use nanorun::chat::{BuiltinTemplate, ChatMessage, ChatTemplate};
use nanorun::model::Arch;
use nanorun::{GenerateOptions, Session};

use crate::common::{ModelArgs, SamplingArgs};

/// Options of `nanorun chat`.
#[derive(clap::Args, Debug, Clone)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// A system message.
    #[arg(long)]
    pub system: Option<String>,
    /// Use a built-in template (chatml, gemma) instead of the model's.
    #[arg(long = "chat-template")]
    pub chat_template: Option<String>,
    /// Tokens per reply at most.
    #[arg(short = 'n', long = "n-predict", default_value_t = 512)]
    pub n_predict: usize,
}

fn pick_template(
    args: &ChatArgs,
    loaded: &crate::common::Loaded,
) -> Result<ChatTemplate, Box<dyn std::error::Error>> {
    if let Some(name) = &args.chat_template {
        let which = BuiltinTemplate::from_name(name).ok_or_else(|| {
            format!("unknown built-in chat template '{name}' (expected chatml or gemma)")
        })?;
        return Ok(ChatTemplate::builtin(which));
    }
    if let Some(t) = ChatTemplate::from_gguf(&loaded.gguf, None)? {
        return Ok(t);
    }
    match loaded.model.config().arch {
        Arch::Gemma | Arch::Gemma2 | Arch::Gemma3 => {
            eprintln!("note: the model has no chat template; using the built-in Gemma template");
            Ok(ChatTemplate::builtin(BuiltinTemplate::Gemma))
        }
        _ => Err("the model has no chat template: pass --chat-template chatml|gemma".into()),
    }
}

/// Runs the chat loop until end of input or `/exit`.
pub fn run(args: &ChatArgs) -> Result<(), Box<dyn std::error::Error>> {
    args.model.path()?;
    let n_threads = args.model.n_threads()?;
    let loaded = args.model.load()?;
    let template = pick_template(args, &loaded)?;
    let kv = args.model.kv_config(&loaded.model)?;
    let mut session = Session::new(&loaded.model, &loaded.tokenizer, kv, n_threads)?;
    session.set_n_ctx(args.model.context(&loaded.model)?);
    let tok = &loaded.tokenizer;
    let text_of = |id: Option<u32>| {
        id.and_then(|i| tok.token_text(i).ok())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let (bos, eos) = (text_of(tok.bos()), text_of(tok.eos()));
    let mut messages: Vec<ChatMessage> = args
        .system
        .iter()
        .map(|s| ChatMessage::new("system", s.clone()))
        .collect();
    let opts = GenerateOptions {
        max_tokens: args.n_predict,
        sampling: args.sampling.params(),
        batch_size: args.model.batch_size,
        stop_at_eog: true,
    };
    eprintln!(
        "chat with {} — /reset clears the conversation, /exit or end of input quits",
        args.model.path()?.display()
    );
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    loop {
        write!(out, "> ")?;
        out.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                messages.retain(|m| m.role == "system");
                continue;
            }
            _ => {}
        }
        messages.push(ChatMessage::new("user", line));
        let rendered = template.render(&messages, true, &bos, &eos)?;
        // The template writes BOS itself when it wants one; do not add a second.
        let add_special = bos.is_empty() || !rendered.starts_with(&bos);
        let ids = tok.encode(&rendered, add_special, true);
        let reply = match session.generate(&ids, &opts, |piece| {
            print!("{piece}");
            std::io::stdout().flush().is_ok()
        }) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("\nerror: {e}");
                messages.pop();
                continue;
            }
        };
        println!();
        messages.push(ChatMessage::new("assistant", reply.text.trim().to_string()));
    }
    Ok(())
}
