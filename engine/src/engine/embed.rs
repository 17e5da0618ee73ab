//! Embeddings through [`Engine`](super::Engine): the inputs and result of
//! [`Engine::embed`](super::Engine::embed), and the engine thread of an embedding model.
//!
//! An engine loaded from an encoder GGUF (`bert`, `nomic-bert`, `gemma-embedding`) runs an
//! [`EmbedWorker`] instead of the generation worker. It owns the [`EmbedState`] (thread pool
//! and matmul scratch); the [`Embedder`] itself is shared read-only with the callers, who
//! tokenize on their own threads. The worker takes every embedding request waiting (whole
//! requests, up to `max_batch_tokens` tokens unless one alone is larger) and embeds them
//! together with [`Embedder::embed_chunked`], so concurrent callers share forward passes. The
//! matmuls are batch-invariant, so a vector does not depend on what it was batched with; when a
//! shared batch fails because of one request's input, each request is rerun alone and only the
//! bad one gets the error.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use super::worker::Command;
use crate::error::Result;
use crate::model::{EmbedState, Embedder};

/// What to embed: texts (tokenized by the model, special tokens added) or token-id sequences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmbedInputs {
    /// Texts, one vector each.
    Texts(Vec<String>),
    /// Token-id sequences (used as given: no special tokens added), one vector each.
    Tokens(Vec<Vec<u32>>),
}

impl EmbedInputs {
    /// How many vectors the inputs ask for.
    pub fn len(&self) -> usize {
        match self {
            EmbedInputs::Texts(t) => t.len(),
            EmbedInputs::Tokens(t) => t.len(),
        }
    }

    /// Whether there is no input at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&str> for EmbedInputs {
    fn from(text: &str) -> Self {
        EmbedInputs::Texts(vec![text.to_string()])
    }
}

impl From<String> for EmbedInputs {
    fn from(text: String) -> Self {
        EmbedInputs::Texts(vec![text])
    }
}

impl From<Vec<String>> for EmbedInputs {
    fn from(texts: Vec<String>) -> Self {
        EmbedInputs::Texts(texts)
    }
}

impl<S: AsRef<str>> From<&[S]> for EmbedInputs {
    fn from(texts: &[S]) -> Self {
        EmbedInputs::Texts(texts.iter().map(|s| s.as_ref().to_string()).collect())
    }
}

impl<S: AsRef<str>, const N: usize> From<&[S; N]> for EmbedInputs {
    fn from(texts: &[S; N]) -> Self {
        EmbedInputs::from(&texts[..])
    }
}

impl From<Vec<Vec<u32>>> for EmbedInputs {
    fn from(seqs: Vec<Vec<u32>>) -> Self {
        EmbedInputs::Tokens(seqs)
    }
}

/// The result of [`Engine::embed`](super::Engine::embed): one vector per input, in order,
/// and the token counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    /// One vector per input (`n_embd_out` wide), L2-normalised when asked.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens of each input (special tokens included).
    pub n_tokens: Vec<usize>,
    /// Tokens of all inputs together (what OpenAI's `usage.prompt_tokens` reports).
    pub prompt_tokens: usize,
}

/// The worker's answer to one request: its vectors, or why its input was refused.
pub(crate) type Answer = Result<Vec<Vec<f32>>>;

/// One embedding request for the worker: token sequences and where the answer goes.
pub(crate) struct EmbedJob {
    pub seqs: Vec<Vec<u32>>,
    pub reply: Sender<Answer>,
}

/// The engine thread of an embedding model.
pub(crate) struct EmbedWorker {
    pub embedder: Arc<Embedder>,
    pub state: EmbedState,
    /// Most tokens per forward pass (a longer single input still runs alone).
    pub max_batch_tokens: usize,
}

fn count(seqs: &[Vec<u32>]) -> usize {
    seqs.iter().map(Vec::len).sum()
}

impl EmbedWorker {
    /// Runs until `Shutdown` or until every sender is gone; cancel and cache commands mean
    /// nothing here and are ignored.
    pub fn run(mut self, commands: Receiver<Command>) {
        let mut pending: Option<EmbedJob> = None;
        let mut shutdown = false;
        while !shutdown {
            let first = match pending.take() {
                Some(p) => p,
                None => match commands.recv() {
                    Ok(Command::Embed(job)) => job,
                    Ok(Command::Shutdown) | Err(_) => return,
                    Ok(_) => continue,
                },
            };
            let mut tokens = count(&first.seqs);
            let mut group = vec![first];
            while let Ok(cmd) = commands.try_recv() {
                match cmd {
                    Command::Embed(job) if tokens + count(&job.seqs) > self.max_batch_tokens => {
                        pending = Some(job);
                        break;
                    }
                    Command::Embed(job) => {
                        tokens += count(&job.seqs);
                        group.push(job);
                    }
                    Command::Shutdown => {
                        shutdown = true;
                        break;
                    }
                    _ => {}
                }
            }
            self.run_group(group);
        }
    }

    /// Embeds the requests of `group` together and answers each.
    fn run_group(&mut self, group: Vec<EmbedJob>) {
        let all: Vec<Vec<u32>> = group.iter().flat_map(|j| j.seqs.iter().cloned()).collect();
        let (model, st, budget) = (&self.embedder, &mut self.state, self.max_batch_tokens);
        match model.embed_chunked(&all, budget, st) {
            Ok(vectors) => {
                let mut it = vectors.into_iter();
                for job in group {
                    let mine: Vec<Vec<f32>> = it.by_ref().take(job.seqs.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            // Someone's input is bad: answer each request on its own.
            Err(_) if group.len() > 1 => {
                for job in group {
                    let _ = job.reply.send(model.embed_chunked(&job.seqs, budget, st));
                }
            }
            Err(e) => {
                if let Some(job) = group.into_iter().next() {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
    }
}
