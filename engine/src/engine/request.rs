//! What a caller hands the [`Engine`](super::Engine) and what comes back: [`Request`],
//! [`Event`], [`Usage`], [`Completion`].

use crate::generate::FinishReason;
use crate::sampler::SamplingParams;

/// Identifies a request for its whole life (also the KV cache's sequence id).
pub type RequestId = u32;

/// The prompt of a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompt {
    /// Text, tokenized by the engine (BOS added when the model wants one, special tokens
    /// such as `<start_of_turn>` parsed).
    Text(String),
    /// Token ids, used as they are.
    Tokens(Vec<u32>),
}

/// One generation request.
#[derive(Clone, Debug)]
pub struct Request {
    /// The prompt.
    pub prompt: Prompt,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Sampling parameters (validated on submit).
    pub sampling: SamplingParams,
    /// Stop strings: generation ends when the text contains one (it is not returned).
    pub stop: Vec<String>,
    /// Keep going past end-of-generation tokens.
    pub ignore_eos: bool,
}

impl Request {
    /// A request for `prompt` with default sampling and up to 64 tokens.
    pub fn new(prompt: impl Into<String>) -> Request {
        Request {
            prompt: Prompt::Text(prompt.into()),
            max_tokens: 64,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            ignore_eos: false,
        }
    }

    /// A request for already tokenized input.
    pub fn from_tokens(tokens: Vec<u32>) -> Request {
        Request {
            prompt: Prompt::Tokens(tokens),
            ..Request::new("")
        }
    }

    /// Sets `max_tokens`.
    pub fn max_tokens(mut self, n: usize) -> Request {
        self.max_tokens = n;
        self
    }

    /// Sets the sampling parameters.
    pub fn sampling(mut self, p: SamplingParams) -> Request {
        self.sampling = p;
        self
    }

    /// Greedy decoding (temperature 0).
    pub fn greedy(self) -> Request {
        self.sampling(SamplingParams::greedy())
    }

    /// Adds stop strings.
    pub fn stop<I, S>(mut self, stops: I) -> Request
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.stop.extend(stops.into_iter().map(Into::into));
        self
    }
}

/// Token counts of a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens (an end-of-generation token that stopped it included).
    pub completion_tokens: usize,
    /// Prompt tokens whose K/V was shared from another request instead of computed.
    pub cached_tokens: usize,
}

/// One thing that happened to a request, in order: tokens, then one `Finished` or `Error`.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A generated token and the text it completes (may be empty while a multi-byte
    /// character or a possible stop string is held back).
    Token {
        /// The token id.
        id: u32,
        /// New text.
        text: String,
    },
    /// Text released at the end without a new token (a held-back partial character or a
    /// prefix of a stop string that did not complete).
    Text(String),
    /// The request ended.
    Finished {
        /// Why.
        reason: FinishReason,
        /// Token counts.
        usage: Usage,
    },
    /// The request failed in the engine (the engine goes on serving the others).
    Error(String),
}

/// A whole generation, collected from its events.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// Generated token ids.
    pub tokens: Vec<u32>,
    /// Generated text.
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Token counts.
    pub usage: Usage,
}
