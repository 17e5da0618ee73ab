//! Token sampling: greedy, temperature, top-k, typical-p, top-p, min-p, repetition /
//! frequency / presence penalties, seeded RNG — llama.cpp's `llama-cli` samplers, in its
//! default order — and stop strings ([`StopStrings`]).
//!
//! ```
//! use nanorun::sampler::{Sampler, SamplingParams};
//! let mut s = Sampler::new(SamplingParams { seed: Some(42), ..Default::default() }).unwrap();
//! let logits = [0.1, 3.0, 2.5, -1.0];
//! let token = s.sample(&logits);
//! s.accept(token); // feeds the repetition penalties
//! assert!(token == 1 || token == 2);
//! ```
//!
//! Tokens that should count for the penalties but were not sampled (the prompt, as llama.cpp
//! does it) are passed to [`Sampler::accept`] too. After the first call a sampler allocates
//! nothing more (its scratch buffers are kept), except when a window of `repeat_last_n = -1`
//! grows.

mod argmax;
mod fast_exp;
mod params;
mod rng;
mod stop;

pub use params::{SamplingError, SamplingParams};
pub use rng::Xoshiro256;
pub use stop::StopStrings;

use std::cmp::Ordering;

use argmax::argmax;
use std::collections::VecDeque;

/// One candidate token during sampling.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    id: u32,
    logit: f32,
}

/// Token ids at or above this are ignored by [`Sampler::accept`] (GGUF vocabularies are far
/// smaller; this only bounds the counter table).
const MAX_VOCAB: usize = 1 << 24;

/// Above this many candidates, top-p drops hopeless tokens before sorting.
const TOP_P_PREFILTER_MIN: usize = 1024;

/// How far below the largest logit top-k first looks for its `k` tokens: where at least `k`
/// lie within this margin, they include the top `k`, and the rest of the vocabulary is never
/// listed (a real model's row has a few thousand of its 262 144 logits within 30 of the top).
const TOP_K_MARGIN: f32 = 30.0;

/// How far below the largest (scaled) logit a weight is too small to matter: tokens under
/// `max − negligible(n)` weigh less than 2⁻³⁰/n of the top token each, so all of them together
/// carry under 2⁻³⁰ of the mass, far below what rounding the f32 sums moves. The draw and
/// top-p's sums skip their `exp`, which over a whole vocabulary was most of a sampling step.
fn negligible(n: usize) -> f32 {
    (n.max(1) as f32).ln() + 30.0 * std::f32::consts::LN_2
}

/// The largest logit (−∞ for none).
fn max_logit(cands: &[Candidate]) -> f32 {
    cands
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max)
}

/// The largest of `x` (−∞ for none; NaN ignored), sixteen lanes at a time so that the
/// compiler vectorises it.
fn max_of(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = if v > *m { v } else { *m };
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// Appends to `out` the tokens of `logits` at or above `floor`, as candidates.
/// Most of a real row lies below the floor, so sixteen values are compared at once (a vector
/// compare) and only a run with one at or above it is walked.
fn extend_above(out: &mut Vec<Candidate>, logits: &[f32], floor: f32) {
    for (c, run) in logits.chunks(16).enumerate() {
        if run.iter().fold(false, |any, &l| any | (l >= floor)) {
            out.extend(
                run.iter()
                    .enumerate()
                    .filter(|&(_, &l)| l >= floor)
                    .map(|(i, &l)| Candidate {
                        id: (16 * c + i) as u32,
                        logit: l,
                    }),
            );
        }
    }
}

/// The sum of `mass` over `c`, in four chains (a single chain of f64 additions waits on
/// each one).
fn mass_of<T>(c: &[T], mass: impl Fn(&T) -> f64) -> f64 {
    let mut lanes = [0f64; 4];
    let mut chunks = c.chunks_exact(4);
    for q in &mut chunks {
        for (s, x) in lanes.iter_mut().zip(q) {
            *s += mass(x);
        }
    }
    let rest: f64 = chunks.remainder().iter().map(&mass).sum();
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + rest
}

/// Below this many candidates, [`nucleus`] sorts them instead of splitting further.
const NUCLEUS_SORT: usize = 64;

/// Moves to the front of `c` the shortest run of its best elements (in `order`) whose `mass`
/// reaches `target`, and returns its length (`c.len()` when all of them fall short). The plain
/// way sorts every candidate and sums in that order; here the run's boundary is searched by
/// halving: split at the median, keep the half the boundary lies in, and sort only the last
/// few. On a flat row, where the nucleus is most of the vocabulary, that is linear where the
/// sort was not.
fn nucleus<T>(
    c: &mut [T],
    order: impl Fn(&T, &T) -> Ordering,
    mass: impl Fn(&T) -> f64,
    target: f64,
) -> usize {
    // The boundary lies in lo..hi, and `acc` is the mass of c[..lo].
    let (mut lo, mut hi, mut acc) = (0, c.len(), 0.0f64);
    while hi - lo > NUCLEUS_SORT {
        let mid = lo + (hi - lo) / 2;
        c[lo..hi].select_nth_unstable_by(mid - lo, &order);
        let upper = mass_of(&c[lo..=mid], &mass);
        if acc + upper >= target {
            hi = mid + 1;
        } else {
            acc += upper;
            lo = mid + 1;
        }
    }
    c[lo..hi].sort_unstable_by(&order);
    for (i, x) in c[lo..hi].iter().enumerate() {
        acc += mass(x);
        if acc >= target {
            return lo + i + 1;
        }
    }
    hi
}

/// `exp(logit - max)`, with infinite logits sharing all the mass between them.
#[inline]
fn weight(logit: f32, max: f32) -> f32 {
    if max == f32::INFINITY {
        if logit == f32::INFINITY {
            1.0
        } else {
            0.0
        }
    } else {
        (logit - max).exp()
    }
}

/// Highest logit first, then lowest id: a total order, so unstable sorts are deterministic.
fn by_logit_desc(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// A stateful sampler: parameters, the random generator and the penalty window.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    seed: u64,
    rng: Xoshiro256,
    /// Tokens in the penalty window, oldest first.
    history: VecDeque<u32>,
    /// Occurrences of each token id in `history`.
    counts: Vec<u32>,
    /// Candidates of the current call (scratch).
    cands: Vec<Candidate>,
    /// Probabilities or scores parallel to `cands` (scratch).
    probs: Vec<f32>,
    /// Candidates reordered by the typical-p step (scratch).
    reordered: Vec<Candidate>,
    /// Candidates with their weights, for top-p (scratch).
    weighted: Vec<Weighted>,
    /// Sums of the draw's runs of weights (scratch).
    run_sums: Vec<f32>,
}

/// A candidate and its weight (its probability times the softmax's sum).
#[derive(Debug, Clone, Copy)]
struct Weighted {
    cand: Candidate,
    w: f32,
}

impl Sampler {
    /// A sampler for these parameters, after checking them.
    pub fn new(params: SamplingParams) -> Result<Sampler, SamplingError> {
        params.validate()?;
        let seed = params.seed.unwrap_or_else(rng::random_seed);
        let window = usize::try_from(params.repeat_last_n).unwrap_or(0);
        Ok(Sampler {
            seed,
            rng: Xoshiro256::new(seed),
            history: VecDeque::with_capacity(window.min(1 << 16) + 1),
            counts: Vec::new(),
            cands: Vec::new(),
            probs: Vec::new(),
            reordered: Vec::new(),
            weighted: Vec::new(),
            run_sums: Vec::new(),
            params,
        })
    }

    /// The parameters in use.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The seed in use (the one drawn at random when none was given).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Forgets the penalty window and restarts the random stream from the seed.
    pub fn reset(&mut self) {
        self.history.clear();
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.rng = Xoshiro256::new(self.seed);
    }

    /// Records a token (sampled, or from the prompt) for the penalties. Ids of 2²⁴ and above
    /// are ignored.
    pub fn accept(&mut self, token: u32) {
        let limit = match self.params.repeat_last_n {
            0 => return,
            -1 => usize::MAX,
            n => n as usize,
        };
        let idx = token as usize;
        if idx >= self.counts.len() {
            if idx >= MAX_VOCAB {
                // No vocabulary is this large: such an id can never be sampled, so there is
                // nothing to penalise (and no reason to allocate a counter table for it).
                return;
            }
            self.counts.resize(idx + 1, 0);
        }
        self.counts[idx] += 1;
        self.history.push_back(token);
        while self.history.len() > limit {
            if let Some(old) = self.history.pop_front() {
                self.counts[old as usize] -= 1;
            }
        }
    }

    /// Picks the next token from one row of logits (one per vocabulary entry).
    ///
    /// NaN logits count as −∞ (never picked unless every logit is unusable, in which case the
    /// lowest id is returned).
    ///
    /// # Panics
    /// If `logits` is empty: a model always yields a full row. Use
    /// [`try_sample`](Self::try_sample) where the row comes from elsewhere.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        match self.try_sample(logits) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`sample`](Self::sample), with an error instead of a panic for an empty row.
    pub fn try_sample(&mut self, logits: &[f32]) -> Result<u32, SamplingError> {
        if logits.is_empty() {
            return Err(SamplingError::EmptyLogits);
        }
        if self.counts.len() < logits.len() {
            // Warm-up: size the per-token counters once for the whole vocabulary.
            self.counts.resize(logits.len(), 0);
        }
        if self.params.is_greedy() {
            return Ok(self.greedy(logits));
        }
        if self.params.keeps_every_token() && !self.params.penalties_active() {
            // Nothing to truncate: the row is weighed in place, a run at a time, and tokens
            // under the negligible bound (see `negligible`; scaled by the temperature) weigh
            // nothing.
            let max = max_of(logits);
            if max == f32::NEG_INFINITY {
                // No finite logit anywhere: the lowest id.
                return Ok(0);
            }
            if max < f32::INFINITY {
                let t = self.params.temperature;
                let floor = max - negligible(logits.len()) * t;
                fast_exp::run_sums(logits, max, t, floor, &mut self.run_sums);
                let u = self.rng.next_f64() as f32;
                let pick = fast_exp::pick_by_runs(&self.run_sums, u, |r, buf| {
                    let run = &logits[r * fast_exp::RUN..]
                        [..fast_exp::RUN.min(logits.len() - r * fast_exp::RUN)];
                    fast_exp::weights(run, max, t, floor, &mut buf[..run.len()]);
                    run.len()
                });
                return Ok(pick.unwrap_or(0) as u32);
            }
        }
        self.truncate(logits);
        Ok(self.draw())
    }

    /// Every step of the chain before the draw, leaving the survivors in `cands`.
    fn truncate(&mut self, logits: &[f32]) {
        self.load_candidates(logits);
        self.top_k();
        self.typical();
        self.top_p();
        self.min_p();
        self.temperature();
    }

    /// Logit of token `id` after the penalties, with NaN mapped to −∞.
    #[inline]
    fn penalised(&self, id: usize, logit: f32, penalties: bool) -> f32 {
        let mut l = if logit.is_nan() {
            f32::NEG_INFINITY
        } else {
            logit
        };
        if penalties {
            let count = self.counts[id];
            if count > 0 {
                let p = &self.params;
                // llama.cpp: divide positive logits, multiply the others.
                if l <= 0.0 {
                    l *= p.repeat_penalty;
                } else {
                    l /= p.repeat_penalty;
                }
                l -= count as f32 * p.frequency_penalty + p.presence_penalty;
            }
        }
        l
    }

    /// Temperature 0: the highest penalised logit, ties to the lowest id.
    fn greedy(&self, logits: &[f32]) -> u32 {
        let penalties = self.params.penalties_active();
        if !penalties {
            return argmax(logits);
        }
        let mut best = 0usize;
        let mut best_logit = f32::NEG_INFINITY;
        for (i, &l) in logits.iter().enumerate() {
            let l = self.penalised(i, l, penalties);
            if l > best_logit {
                best = i;
                best_logit = l;
            }
        }
        best as u32
    }

    fn load_candidates(&mut self, logits: &[f32]) {
        let penalties = self.params.penalties_active();
        let mut cands = std::mem::take(&mut self.cands);
        cands.clear();
        let p = &self.params;
        let k = (p.top_k as usize).max(p.min_keep);
        // The first truncation step may rule out most of the vocabulary before it is listed:
        // top-k keeps the k highest, so where k or more lie within a margin of the largest,
        // those are the only ones it can keep; top-p (first) never keeps a token of negligible
        // weight (see `top_p`). Either way at least `need` must be listed.
        let margin_need = if penalties {
            None
        } else if p.top_k > 0 && k < logits.len() {
            Some((TOP_K_MARGIN, k))
        } else if p.top_k == 0 && p.typical_p >= 1.0 && p.top_p < 1.0 {
            Some((negligible(logits.len()), p.min_keep.max(1)))
        } else {
            None
        };
        if let Some((margin, need)) = margin_need {
            let max = max_of(logits);
            if max > f32::NEG_INFINITY && max < f32::INFINITY {
                extend_above(&mut cands, logits, max - margin);
                if cands.len() >= need {
                    self.cands = cands;
                    return;
                }
                cands.clear();
            }
        }
        cands.extend(logits.iter().enumerate().map(|(i, &l)| Candidate {
            id: i as u32,
            logit: self.penalised(i, l, penalties),
        }));
        self.cands = cands;
    }

    fn top_k(&mut self) {
        let k = self.params.top_k as usize;
        if k == 0 || k >= self.cands.len() {
            return;
        }
        // Keep at least `min_keep`, as llama.cpp does.
        let k = k.max(self.params.min_keep).min(self.cands.len());
        if k < self.cands.len() {
            self.cands.select_nth_unstable_by(k - 1, by_logit_desc);
            self.cands.truncate(k);
        }
    }

    /// Softmax of the candidates' logits into `probs` (same order). Returns false when no
    /// candidate has a finite logit.
    fn softmax(&mut self) -> bool {
        let max = max_logit(&self.cands);
        self.probs.clear();
        if max == f32::NEG_INFINITY {
            self.probs.resize(self.cands.len(), 0.0);
            return false;
        }
        let mut sum = 0.0f32;
        for c in &self.cands {
            let w = weight(c.logit, max);
            sum += w;
            self.probs.push(w);
        }
        self.probs.iter_mut().for_each(|p| *p /= sum);
        true
    }

    fn typical(&mut self) {
        let p = self.params.typical_p;
        if p >= 1.0 || self.cands.len() <= 1 || !self.softmax() {
            return;
        }
        let entropy: f32 = self
            .probs
            .iter()
            .filter(|&&q| q > 0.0)
            .map(|&q| -q * q.ln())
            .sum();
        // Rank by |−log p − H| (closest to the expected surprise first). The scratch entries
        // hold (index into `cands`, score) until they are replaced by the candidates kept.
        self.reordered.clear();
        for (i, &q) in self.probs.iter().enumerate() {
            self.reordered.push(Candidate {
                id: i as u32,
                logit: (-q.ln() - entropy).abs(),
            });
        }
        self.reordered
            .sort_unstable_by(|a, b| a.logit.total_cmp(&b.logit).then(a.id.cmp(&b.id)));
        let min_keep = self.params.min_keep;
        let mut cum = 0.0f64;
        let mut keep = self.reordered.len();
        for (i, r) in self.reordered.iter().enumerate() {
            cum += self.probs[r.id as usize] as f64;
            if cum > p as f64 && (min_keep == 0 || i + 1 >= min_keep) {
                keep = i + 1;
                break;
            }
        }
        self.reordered.truncate(keep);
        for r in self.reordered.iter_mut() {
            *r = self.cands[r.id as usize];
        }
        std::mem::swap(&mut self.cands, &mut self.reordered);
    }

    fn top_p(&mut self) {
        let p = self.params.top_p;
        let n = self.cands.len();
        if p >= 1.0 || n <= 1 {
            return;
        }
        let max = max_logit(&self.cands);
        if max == f32::NEG_INFINITY {
            return;
        }
        // Each candidate's weight, once. Tokens under `cut` weigh too little to count (see
        // `negligible`); the prefilter's floor below lies above all of them, so they are
        // dropped there too.
        let cut = max - negligible(n);
        let mut wc = std::mem::take(&mut self.weighted);
        wc.clear();
        wc.extend(self.cands.iter().map(|&cand| Weighted {
            cand,
            w: if max == f32::INFINITY {
                weight(cand.logit, max)
            } else if cand.logit >= cut {
                fast_exp::exp_nonpositive(cand.logit - max)
            } else {
                0.0
            },
        }));
        // Sums in f64: over a whole vocabulary f32 drifts by more than a token's mass.
        let sum = mass_of(&wc, |x| x.w as f64);
        if n > TOP_P_PREFILTER_MIN {
            // A token with probability q is inside the nucleus only if the mass ranked above
            // it is < p; everything below it weighs at most n·q, and all sums to 1, so
            // q > (1 - p) / n. Dropping tokens under half that bound first (they would sort
            // last anyway) spares sorting the whole vocabulary, without changing the result.
            let floor = ((1.0 - p as f64) / (n as f64 + 1.0) * 0.5 * sum) as f32;
            let kept = wc.iter().filter(|x| x.w >= floor).count();
            if kept >= self.params.min_keep.max(1) {
                // Without a branch per token: on a flat row the test is a coin toss.
                let mut len = 0;
                for i in 0..wc.len() {
                    let x = wc[i];
                    wc[len] = x;
                    len += usize::from(x.w >= floor);
                }
                wc.truncate(len);
            }
        }
        let inv = 1.0 / sum;
        let by_logit = |a: &Weighted, b: &Weighted| by_logit_desc(&a.cand, &b.cand);
        let nucleus = nucleus(&mut wc, by_logit, |x| x.w as f64 * inv, p as f64);
        let keep = nucleus.max(self.params.min_keep.min(wc.len()));
        if keep > nucleus {
            // `min_keep` asks for more: the best of the rest follow the nucleus.
            wc[nucleus..].select_nth_unstable_by(keep - nucleus - 1, by_logit);
        }
        self.cands.clear();
        self.cands.extend(wc[..keep].iter().map(|x| x.cand));
        self.weighted = wc;
    }

    fn min_p(&mut self) {
        let p = self.params.min_p;
        if p <= 0.0 || self.cands.len() <= 1 {
            return;
        }
        self.cands.sort_unstable_by(by_logit_desc);
        // p_i >= p * p_max  <=>  logit_i >= logit_max + ln p.
        let threshold = self.cands[0].logit + p.ln();
        let keep = self.cands[1..]
            .iter()
            .position(|c| c.logit < threshold)
            .map_or(self.cands.len(), |i| i + 1)
            .max(self.params.min_keep.min(self.cands.len()));
        self.cands.truncate(keep);
    }

    fn temperature(&mut self) {
        let t = self.params.temperature;
        if t != 1.0 {
            self.cands.iter_mut().for_each(|c| c.logit /= t);
        }
    }

    /// Draws one of the candidates (their logits scaled by the temperature) in proportion to
    /// its softmax probability. Only the tokens whose weight is not negligible (see
    /// [`negligible`]) are weighed and listed.
    fn draw(&mut self) -> u32 {
        let max = max_logit(&self.cands);
        if max == f32::NEG_INFINITY {
            // No finite logit anywhere: the lowest id.
            return self.cands.iter().map(|c| c.id).min().unwrap_or(0);
        }
        let cut = if max == f32::INFINITY {
            f32::INFINITY
        } else {
            max - negligible(self.cands.len())
        };
        // The survivors (in candidate order), and their weights.
        self.reordered.clear();
        self.reordered
            .extend(self.cands.iter().filter(|c| c.logit >= cut));
        self.probs.clear();
        self.probs.extend(self.reordered.iter().map(|c| {
            if max == f32::INFINITY {
                // Infinite logits share all the mass between them.
                weight(c.logit, max)
            } else {
                fast_exp::exp_nonpositive(c.logit - max)
            }
        }));
        let u = self.rng.next_f64() as f32;
        let i = fast_exp::pick(&self.probs, u, &mut self.run_sums).unwrap_or(0);
        self.reordered[i].id
    }
}

#[cfg(test)]
mod tests;
