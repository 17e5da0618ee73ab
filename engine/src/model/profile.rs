//! Optional per-part timing of the forward pass (off by default; one clock read per block
//! part when on), to see where a step's time goes: attention layers, Mamba2 layers, FFNs,
//! and the rest (embedding lookup, final norm and output projection); and the time in each
//! kind of weight matrix's matmuls (two clock reads per matmul when on).

use std::time::{Duration, Instant};

use nanorun_kernels::MatmulScratch;

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
    /// Time in the matmuls of each kind of weight matrix, in the order first met.
    pub matmuls: Vec<MatmulTime>,
}

impl LayerTimes {
    /// The whole time of the forward calls.
    pub fn total(&self) -> Duration {
        self.attention + self.mamba2 + self.ffn + self.other
    }

    /// Adds `other`'s times and counts to these (matmul kinds matched by name, new ones
    /// appended).
    pub fn add(&mut self, other: &LayerTimes) {
        self.attention += other.attention;
        self.mamba2 += other.mamba2;
        self.ffn += other.ffn;
        self.other += other.other;
        self.forwards += other.forwards;
        self.tokens += other.tokens;
        for m in &other.matmuls {
            match self.matmuls.iter_mut().find(|s| s.name == m.name) {
                Some(s) => {
                    s.calls += m.calls;
                    s.time += m.time;
                    s.weight_bytes += m.weight_bytes;
                }
                None => self.matmuls.push(m.clone()),
            }
        }
    }
}

/// The matmuls of one kind of weight matrix, summed over layers and calls: `name` is the
/// tensor name without its block number (`attn_output`, `output`), or the names of matrices
/// that run as one op joined by `+` (`attn_q+attn_k+attn_v`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatmulTime {
    /// The kind of matrix.
    pub name: String,
    /// Matmul calls (one per layer per forward call).
    pub calls: usize,
    /// Time in them.
    pub time: Duration,
    /// Weight bytes they read (each matrix once per call).
    pub weight_bytes: usize,
}

/// A forward state's matmul scratch, with the time per kind of matrix while profiling.
#[derive(Debug, Default)]
pub(crate) struct Matmuls {
    /// The kernels' reusable buffers.
    pub(crate) scratch: MatmulScratch,
    /// Per-kind times (`None` when not profiling).
    pub(crate) times: Option<Vec<MatmulTime>>,
}

impl Matmuls {
    /// A clock reading to time a matmul with, when profiling.
    pub(crate) fn start(&self) -> Option<Instant> {
        self.times.as_ref().map(|_| Instant::now())
    }

    /// Adds a matmul begun at `start` over the matrices `names` (tensor names) of `bytes`.
    pub(crate) fn record<'a>(
        &mut self,
        start: Option<Instant>,
        names: impl Iterator<Item = &'a str> + Clone,
        bytes: usize,
    ) {
        let (Some(times), Some(start)) = (self.times.as_mut(), start) else {
            return;
        };
        let time = start.elapsed();
        let kinds = names.map(kind);
        let entry = match times
            .iter()
            .position(|m| m.name.split('+').eq(kinds.clone()))
        {
            Some(i) => &mut times[i],
            None => {
                times.push(MatmulTime {
                    name: kinds.collect::<Vec<_>>().join("+"),
                    ..MatmulTime::default()
                });
                times.last_mut().expect("just pushed")
            }
        };
        entry.calls += 1;
        entry.time += time;
        entry.weight_bytes += bytes;
    }
}

/// A tensor name without its block prefix and `.weight` suffix (`blk.3.attn_q.weight` →
/// `attn_q`).
fn kind(name: &str) -> &str {
    let name = name.strip_suffix(".weight").unwrap_or(name);
    match name.strip_prefix("blk.") {
        Some(rest) => rest.split_once('.').map_or(rest, |(_, k)| k),
        None => name,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmuls_are_summed_per_kind_of_matrix() {
        let mut m = Matmuls {
            times: Some(Vec::new()),
            ..Matmuls::default()
        };
        for l in 0..3 {
            let (q, k) = (
                format!("blk.{l}.attn_q.weight"),
                format!("blk.{l}.attn_k.weight"),
            );
            m.record(m.start(), [q.as_str(), k.as_str()].into_iter(), 10);
            m.record(
                m.start(),
                [format!("blk.{l}.ffn_down.weight").as_str()].into_iter(),
                4,
            );
        }
        m.record(m.start(), ["output.weight"].into_iter(), 100);
        let t = m.times.unwrap();
        let got: Vec<_> = t
            .iter()
            .map(|m| (m.name.as_str(), m.calls, m.weight_bytes))
            .collect();
        assert_eq!(
            got,
            [
                ("attn_q+attn_k", 3, 30),
                ("ffn_down", 3, 12),
                ("output", 1, 100)
            ]
        );
        let mut off = Matmuls::default();
        off.record(off.start(), ["output.weight"].into_iter(), 1);
        assert!(off.times.is_none());
    }
}
