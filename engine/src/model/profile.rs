//! Optional per-part timing of the forward pass (off by default; one clock read per block
//! part when on), to see where a step's time goes: attention layers, Mamba2 layers, FFNs,
//! and the rest (embedding lookup, final norm and output projection).

use std::time::{Duration, Instant};

/// Time spent in each part of the forward pass, summed over the calls since profiling was
/// switched on ([`ForwardState::set_profiling`](super::ForwardState::set_profiling)).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerTimes {
    /// Attention blocks (norm, projections, attention, output projection).
    pub attention: Duration,
    /// Mamba2 blocks (norm, in projection, conv, scan, gate/norm, out projection).
    pub mamba2: Duration,
    /// FFN blocks.
    pub ffn: Duration,
    /// Everything else: embeddings, batch checks, final norm, output projection.
    pub other: Duration,
    /// Forward calls.
    pub forwards: usize,
    /// Tokens in those calls.
    pub tokens: usize,
}

/// Which part a lap belongs to.
#[derive(Clone, Copy, Debug)]
pub(super) enum Part {
    Attention,
    Mamba2,
    Ffn,
    Other,
}

/// A running lap timer over an optional profile (does nothing when profiling is off).
pub(super) struct Laps {
    last: Option<Instant>,
}

impl Laps {
    /// Starts timing when `profile` is on.
    pub(super) fn start(profile: &Option<LayerTimes>) -> Laps {
        Laps {
            last: profile.as_ref().map(|_| Instant::now()),
        }
    }

    /// Adds the time since the previous lap to `part`.
    pub(super) fn lap(&mut self, profile: &mut Option<LayerTimes>, part: Part) {
        let (Some(p), Some(last)) = (profile.as_mut(), self.last) else {
            return;
        };
        let now = Instant::now();
        let d = now - last;
        match part {
            Part::Attention => p.attention += d,
            Part::Mamba2 => p.mamba2 += d,
            Part::Ffn => p.ffn += d,
            Part::Other => p.other += d,
        }
        self.last = Some(now);
    }
}
