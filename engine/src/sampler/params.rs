//! Sampling parameters with llama.cpp's names, defaults and meanings, and their validation.

/// Why sampling parameters or a sampling call were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    /// A parameter is out of its range; names the field, the llama.cpp flag and the rule.
    #[error("invalid sampling parameter `{field}` ({flag}) = {value}: {rule}")]
    InvalidParam {
        /// The [`SamplingParams`] field at fault.
        field: &'static str,
        /// The llama.cpp command-line flag that sets it.
        flag: &'static str,
        /// The value given, as text.
        value: String,
        /// What the value must be.
        rule: &'static str,
    },
    /// `sample` was called with no logits at all.
    #[error("cannot sample from an empty logits row")]
    EmptyLogits,
}

/// Sampling parameters as llama.cpp's `llama-cli` knows them.
///
/// [`Default`] gives llama.cpp's defaults. The sampler chain runs in llama.cpp's default order:
/// penalties → top-k → typical-p → top-p → min-p → temperature → draw. Note that, as in
/// llama.cpp, the truncation steps (top-k/typical/top-p/min-p) see the penalised logits
/// *before* temperature scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Temperature (`--temp`, default 0.8). 0 is greedy: the highest (penalised) logit, ties
    /// going to the lowest token id. Must be finite and ≥ 0.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (`--top-k`, default 40); 0 disables.
    pub top_k: u32,
    /// Nucleus sampling (`--top-p`, default 0.95): keep the most likely tokens whose
    /// probabilities add up to at least `top_p`. In (0, 1]; 1 disables.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` × the most likely one (`--min-p`, default 0.05).
    /// In [0, 1]; 0 disables.
    pub min_p: f32,
    /// Locally typical sampling (`--typical`, default 1.0). In (0, 1]; 1 disables.
    pub typical_p: f32,
    /// The truncation steps keep at least this many tokens (`--min-keep`, default 0).
    pub min_keep: usize,
    /// Repetition penalty (`--repeat-penalty`, default 1.0 = off): a token seen in the last
    /// `repeat_last_n` tokens has a positive logit divided by it, a negative one multiplied.
    /// Must be finite and > 0.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at (`--repeat-last-n`, default 64); 0 turns
    /// penalties off, -1 means every token accepted so far (llama.cpp: the context size).
    pub repeat_last_n: i32,
    /// Subtracted from a token's logit once per occurrence in the window
    /// (`--frequency-penalty`, default 0). Must be finite.
    pub frequency_penalty: f32,
    /// Subtracted from a token's logit if it occurs in the window at all
    /// (`--presence-penalty`, default 0). Must be finite.
    pub presence_penalty: f32,
    /// Seed of the random generator (`--seed`); `None` (the default) picks a random one, which
    /// [`Sampler::seed`](super::Sampler::seed) reports. The same seed, parameters and logits
    /// give the same tokens. (llama.cpp's `--seed -1`, i.e. `LLAMA_DEFAULT_SEED`, is `None`.)
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> SamplingParams {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            min_keep: 0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding: temperature 0, everything else at its default (penalties off).
    pub fn greedy() -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        }
    }

    /// Whether sampling is greedy (temperature 0): no random numbers are drawn.
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }

    /// Whether no truncation step (top-k, typical-p, top-p, min-p) is active: every token
    /// stays a candidate.
    pub fn keeps_every_token(&self) -> bool {
        self.top_k == 0 && self.typical_p >= 1.0 && self.top_p >= 1.0 && self.min_p <= 0.0
    }

    /// Whether any of the three penalties is active.
    pub fn penalties_active(&self) -> bool {
        self.repeat_last_n != 0
            && (self.repeat_penalty != 1.0
                || self.frequency_penalty != 0.0
                || self.presence_penalty != 0.0)
    }

    /// Checks every field, naming the first one out of range.
    pub fn validate(&self) -> Result<(), SamplingError> {
        let bad = |field, flag, value: String, rule| {
            Err(SamplingError::InvalidParam {
                field,
                flag,
                value,
                rule,
            })
        };
        let t = self.temperature;
        if !t.is_finite() || t < 0.0 {
            return bad(
                "temperature",
                "--temp",
                t.to_string(),
                "must be a finite number >= 0 (0 = greedy)",
            );
        }
        let p = self.top_p;
        if !(p > 0.0 && p <= 1.0) {
            return bad(
                "top_p",
                "--top-p",
                p.to_string(),
                "must be in (0, 1] (1 = off)",
            );
        }
        let p = self.min_p;
        if !(0.0..=1.0).contains(&p) {
            return bad(
                "min_p",
                "--min-p",
                p.to_string(),
                "must be in [0, 1] (0 = off)",
            );
        }
        let p = self.typical_p;
        if !(p > 0.0 && p <= 1.0) {
            return bad(
                "typical_p",
                "--typical",
                p.to_string(),
                "must be in (0, 1] (1 = off)",
            );
        }
        let r = self.repeat_penalty;
        if !r.is_finite() || r <= 0.0 {
            return bad(
                "repeat_penalty",
                "--repeat-penalty",
                r.to_string(),
                "must be a finite number > 0 (1 = off)",
            );
        }
        if self.repeat_last_n < -1 {
            return bad(
                "repeat_last_n",
                "--repeat-last-n",
                self.repeat_last_n.to_string(),
                "must be >= -1 (0 = off, -1 = whole history)",
            );
        }
        if !self.frequency_penalty.is_finite() {
            return bad(
                "frequency_penalty",
                "--frequency-penalty",
                self.frequency_penalty.to_string(),
                "must be a finite number (0 = off)",
            );
        }
        if !self.presence_penalty.is_finite() {
            return bad(
                "presence_penalty",
                "--presence-penalty",
                self.presence_penalty.to_string(),
                "must be a finite number (0 = off)",
            );
        }
        Ok(())
    }
}
