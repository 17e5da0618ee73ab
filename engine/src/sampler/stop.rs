//! Stop strings (`--reverse-prompt` / OpenAI `stop`): ends generation when the decoded text
//! contains one of them, without ever streaming a piece of the stop string itself.
//!
//! Text is fed in as it is decoded. Whatever could still be the start of a stop string is held
//! back until the next piece shows whether it is; everything else is released at once.
//!
//! ```
//! use nanorun::sampler::StopStrings;
//! let mut stop = StopStrings::new(["\nUser:"]).unwrap();
//! let mut out = String::new();
//! assert_eq!(stop.push("Hello!\nUs", &mut out), None);
//! assert_eq!(out, "Hello!"); // "\nUs" is held back
//! assert_eq!(stop.push("er: hi", &mut out), Some(0));
//! assert_eq!(out, "Hello!"); // the stop string and what follows are dropped
//! ```

use super::SamplingError;

/// Incremental matcher for a set of stop strings.
#[derive(Debug, Clone, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    /// Decoded text not yet released: a suffix that may begin a stop string.
    pending: String,
    /// Set once a stop string has matched; later input is ignored.
    stopped: Option<usize>,
}

impl StopStrings {
    /// A matcher for these stop strings; an empty stop string is an error (it would match
    /// before the first token). No stop strings at all is allowed and never stops.
    pub fn new<I, S>(stops: I) -> Result<StopStrings, SamplingError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let stops: Vec<String> = stops.into_iter().map(Into::into).collect();
        if stops.iter().any(String::is_empty) {
            return Err(SamplingError::InvalidParam {
                field: "stop",
                flag: "--reverse-prompt",
                value: "\"\"".to_string(),
                rule: "stop strings must not be empty",
            });
        }
        Ok(StopStrings {
            stops,
            pending: String::new(),
            stopped: None,
        })
    }

    /// The stop strings, in the order given.
    pub fn stops(&self) -> &[String] {
        &self.stops
    }

    /// Which stop string matched, once one has.
    pub fn stopped(&self) -> Option<usize> {
        self.stopped
    }

    /// Feeds newly decoded text. Appends to `out` the text that can be shown now, and returns
    /// the index of the stop string once one matches (the text before it is released, the
    /// stop string and anything after it are dropped).
    pub fn push(&mut self, text: &str, out: &mut String) -> Option<usize> {
        if self.stopped.is_some() {
            return self.stopped;
        }
        self.pending.push_str(text);
        // The earliest complete match, the first listed stop string winning a tie.
        let hit = self
            .stops
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.pending.find(s.as_str()).map(|pos| (pos, i)))
            .min();
        if let Some((pos, i)) = hit {
            out.push_str(&self.pending[..pos]);
            self.pending.clear();
            self.stopped = Some(i);
            return self.stopped;
        }
        let hold = self.held_suffix_len();
        let release = self.pending.len() - hold;
        out.push_str(&self.pending[..release]);
        self.pending.drain(..release);
        None
    }

    /// Generation ended without a stop string: releases the text held back.
    pub fn finish(&mut self, out: &mut String) {
        if self.stopped.is_none() {
            out.push_str(&self.pending);
        }
        self.pending.clear();
    }

    /// Forgets all state (for reuse on a new generation).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.stopped = None;
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of a stop string.
    fn held_suffix_len(&self) -> usize {
        let p = self.pending.as_str();
        let mut best = 0;
        for s in &self.stops {
            let max = (s.len() - 1).min(p.len());
            for len in (best + 1..=max).rev() {
                let start = p.len() - len;
                if p.is_char_boundary(start) && s.as_bytes().starts_with(&p.as_bytes()[start..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, Option<usize>) {
        let mut m = StopStrings::new(stops.iter().copied()).unwrap();
        let mut out = String::new();
        for p in pieces {
            if m.push(p, &mut out).is_some() {
                break;
            }
        }
        m.finish(&mut out);
        (out, m.stopped())
    }

    #[test]
    fn stops_across_pieces() {
        assert_eq!(
            run(&["</s>"], &["ab<", "/", "s>cd"]),
            ("ab".into(), Some(0))
        );
        assert_eq!(run(&["</s>"], &["ab<", "x"]), ("ab<x".into(), None));
        assert_eq!(run(&["</s>"], &["ab<"]), ("ab<".into(), None));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), None));
    }

    #[test]
    fn earliest_match_wins() {
        assert_eq!(run(&["cd", "bc"], &["abcd"]), ("a".into(), Some(1)));
        assert_eq!(run(&["ab", "a"], &["xab"]), ("x".into(), Some(0)));
    }

    #[test]
    fn holds_only_what_could_match() {
        let mut m = StopStrings::new(["éé!"]).unwrap();
        let mut out = String::new();
        assert_eq!(m.push("aé", &mut out), None);
        assert_eq!(out, "a");
        assert_eq!(m.push("x", &mut out), None);
        assert_eq!(out, "aéx");
        assert_eq!(m.push("ééé", &mut out), None);
        assert_eq!(out, "aéxé");
        assert_eq!(m.push("!", &mut out), Some(0));
        assert_eq!(out, "aéxé");
        // After a stop everything is ignored.
        assert_eq!(m.push("more", &mut out), Some(0));
        assert_eq!(out, "aéxé");
    }

    #[test]
    fn empty_stop_string_is_refused() {
        let err = StopStrings::new(["a", ""]).unwrap_err();
        assert!(err.to_string().contains("stop"), "{err}");
    }
}
