//! Hand-written equivalents of the word-splitting regexes (GPT-2, Llama 3 and its variants,
//! o200k), over code points, with the semantics llama.cpp gives them (its own splitters, or
//! `std::regex` on its category-collapsed text).

use super::Span;
use crate::tokenizer::unicode::{flags, to_lower, Flags};

/// A view of one span with llama.cpp's out-of-range conventions.
pub(super) struct View<'a> {
    cpts: &'a [u32],
    ini: usize,
    end: usize,
}

const OUT_OF_RANGE: u32 = u32::MAX;

impl View<'_> {
    fn cpt(&self, pos: usize) -> u32 {
        if self.ini <= pos && pos < self.end {
            self.cpts[pos]
        } else {
            OUT_OF_RANGE
        }
    }
    fn flags(&self, pos: usize) -> Flags {
        if self.ini <= pos && pos < self.end {
            flags(self.cpts[pos])
        } else {
            Flags::default()
        }
    }
    /// Length of a contraction (`'s 't 'm 'd 're 've 'll`) starting at `pos`, or 0.
    fn contraction(&self, pos: usize, lower: bool) -> usize {
        if self.cpt(pos) != '\'' as u32 || pos + 1 >= self.end {
            return 0;
        }
        let norm = |c: u32| {
            if lower && c != OUT_OF_RANGE {
                to_lower(c)
            } else {
                c
            }
        };
        let is = |c: u32, ch: char| c == ch as u32;
        let n1 = norm(self.cpt(pos + 1));
        if is(n1, 's') || is(n1, 't') || is(n1, 'm') || is(n1, 'd') {
            return 2;
        }
        if pos + 2 < self.end {
            let n2 = norm(self.cpt(pos + 2));
            if (is(n1, 'r') && is(n2, 'e'))
                || (is(n1, 'v') && is(n2, 'e'))
                || (is(n1, 'l') && is(n2, 'l'))
            {
                return 3;
            }
        }
        0
    }
    /// Number of whitespace code points from `pos`.
    fn whitespace_run(&self, pos: usize) -> usize {
        let mut n = 0;
        while self.flags(pos + n).is_whitespace() {
            n += 1;
        }
        n
    }
}

pub(super) fn not_word(f: Flags) -> bool {
    !(f.is_whitespace() || f.is_letter() || f.is_number())
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
pub(super) fn gpt2(cpts: &[u32], (ini, end): Span, out: &mut Vec<Span>) {
    let v = View { cpts, ini, end };
    let mut pos = ini;
    while pos < end {
        let start = pos;
        let cpt = v.cpt(pos);
        let c = v.contraction(pos, false);
        if c > 0 {
            pos += c;
        } else {
            let space = cpt == ' ' as u32;
            let f2 = if space {
                v.flags(pos + 1)
            } else {
                v.flags(pos)
            };
            if f2.is_letter() || f2.is_number() || (not_word(f2) && f2.any()) {
                pos += space as usize;
                let same = |f: Flags| {
                    if f2.is_letter() {
                        f.is_letter()
                    } else if f2.is_number() {
                        f.is_number()
                    } else {
                        not_word(f) && f.any()
                    }
                };
                while same(v.flags(pos)) {
                    pos += 1;
                }
            } else {
                let n = v.whitespace_run(pos);
                if n > 1 && v.cpt(pos + n) != OUT_OF_RANGE {
                    pos += n - 1;
                } else if n > 0 {
                    pos += n;
                } else {
                    pos += 1;
                }
            }
        }
        out.push((start, pos));
    }
}

/// Variations of Llama 3's regex.
#[derive(Clone, Copy)]
pub(super) struct Llama3Opts {
    /// Digits per piece (`\p{N}{1,G}`).
    pub(super) group: usize,
    /// Whether `'s 't 're 've 'm 'll 'd` (any case) are pieces of their own.
    pub(super) contractions: bool,
    /// Whether a punctuation run takes the newlines after it (`[\r\n]*`).
    pub(super) punct_newlines: bool,
    /// Whether combining marks count as letters (`[\p{L}\p{M}]+`, Qwen3.5).
    pub(super) marks: bool,
}

pub(super) const L3: Llama3Opts = Llama3Opts {
    group: 3,
    contractions: true,
    punct_newlines: true,
    marks: false,
};
pub(super) const QWEN2: Llama3Opts = Llama3Opts { group: 1, ..L3 };

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,G}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// with `G = opts.group` (3 for Llama 3, 1 for Qwen2).
pub(super) fn llama3(cpts: &[u32], (ini, end): Span, opts: Llama3Opts, out: &mut Vec<Span>) {
    let group = opts.group;
    let v = View { cpts, ini, end };
    let mut pos = ini;
    while pos < end {
        let cpt = v.cpt(pos);
        let f = v.flags(pos);
        let c = if opts.contractions {
            v.contraction(pos, true)
        } else {
            0
        };
        if c > 0 {
            out.push((pos, pos + c));
            pos += c;
            continue;
        }
        let letter = |f: Flags| f.is_letter() || (opts.marks && f.is_accent_mark());
        let other = |f: Flags| not_word(f) && !(opts.marks && f.is_accent_mark());
        if !(is_nl(cpt) || f.is_number()) && (letter(f) || letter(v.flags(pos + 1))) {
            let start = pos;
            pos += 1;
            while letter(v.flags(pos)) {
                pos += 1;
            }
            out.push((start, pos));
            continue;
        }
        if f.is_number() {
            let mut run_start = pos;
            while v.flags(pos).is_number() {
                pos += 1;
                if pos - run_start >= group {
                    out.push((run_start, pos));
                    run_start = pos;
                }
            }
            if pos > run_start {
                out.push((run_start, pos));
            }
            continue;
        }
        let space = cpt == ' ' as u32;
        let f2 = if space { v.flags(pos + 1) } else { f };
        if other(f2) && f.any() {
            let start = pos;
            pos += space as usize;
            let mut g = f2;
            while other(g) && g.any() {
                pos += 1;
                g = v.flags(pos);
            }
            while opts.punct_newlines && is_nl(v.cpt(pos)) {
                pos += 1;
            }
            out.push((start, pos));
            continue;
        }
        let start = pos;
        pos += whitespace_piece(&v, pos);
        out.push((start, pos));
    }
}

pub(super) fn is_nl(c: u32) -> bool {
    c == '\r' as u32 || c == '\n' as u32
}

/// Length of the piece `\s*[\r\n]+|\s+(?!\S)|\s+` matches at `pos` (1 when none does).
pub(super) fn whitespace_piece(v: &View<'_>, pos: usize) -> usize {
    let n = v.whitespace_run(pos);
    if let Some(k) = (0..n).rev().find(|&k| is_nl(v.cpt(pos + k))) {
        k + 1
    } else if n > 1 && v.cpt(pos + n) != OUT_OF_RANGE {
        n - 1
    } else {
        n.max(1)
    }
}

/// The o200k family (`contractions`: GPT-4o; without, and `group` 1: Tekken), as `std::regex`
/// runs it on llama.cpp's collapsed text, where every non-ASCII letter counts as both upper and
/// lower case:
/// `[^\r\n\p{L}\p{N}]?[\p{L}&&[^a-z]]*[\p{L}&&[^A-Z]]+C?|[^\r\n\p{L}\p{N}]?[\p{L}&&[^a-z]]+[\p{L}&&[^A-Z]]*C?|\p{N}{1,G}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
pub(super) fn o200k(
    cpts: &[u32],
    span: Span,
    contractions: bool,
    group: usize,
    out: &mut Vec<Span>,
) {
    o200k_with(cpts, span, contractions, group, false, out)
}

/// [`o200k`], with combining marks counted as (caseless) letters when `marks`
/// (`granite-embed-multi-97m`: `(?=[\p{L}\p{M}])` in the lookaheads).
pub(super) fn o200k_with(
    cpts: &[u32],
    (ini, end): Span,
    contractions: bool,
    group: usize,
    marks: bool,
    out: &mut Vec<Span>,
) {
    let v = View { cpts, ini, end };
    let letter = |p: usize| v.flags(p).is_letter() || (marks && v.flags(p).is_accent_mark());
    let upper = |p: usize| letter(p) && !(b'a' as u32..=b'z' as u32).contains(&v.cpt(p));
    let lower = |p: usize| letter(p) && !(b'A' as u32..=b'Z' as u32).contains(&v.cpt(p));
    let lead = |p: usize| {
        let f = v.flags(p);
        f.any() && !is_nl(v.cpt(p)) && !f.is_letter() && !f.is_number()
    };
    let other = |p: usize| not_word(v.flags(p)) && v.flags(p).any();
    let tail = |e: usize| {
        if contractions {
            e + v.contraction(e, true)
        } else {
            e
        }
    };
    let mut pos = ini;
    while pos < end {
        // Alternative 1: upper* lower+ (backtracking into the upper run for a letter that is
        // also lower case); alternative 2: upper+ lower*. Each tries with the optional lead
        // character first, then without it (which matters when the lead is itself a letter:
        // a combining mark counted as one).
        let upper_run = |q: usize| {
            let mut m = 0;
            while upper(q + m) {
                m += 1;
            }
            m
        };
        let lower_end = |mut e: usize| {
            while lower(e) {
                e += 1;
            }
            tail(e)
        };
        let alt1 = |q: usize| {
            let m = upper_run(q);
            let k = if lower(q + m) {
                Some(m)
            } else {
                (0..m).rev().find(|&k| lower(q + k))
            };
            k.map(|k| lower_end(q + k))
        };
        let alt2 = |q: usize| {
            let m = upper_run(q);
            (m > 0).then(|| lower_end(q + m))
        };
        let e = if lead(pos) {
            alt1(pos + 1)
                .or_else(|| alt1(pos))
                .or_else(|| alt2(pos + 1))
                .or_else(|| alt2(pos))
        } else {
            alt1(pos).or_else(|| alt2(pos))
        };
        let e = e.unwrap_or_else(|| {
            if v.flags(pos).is_number() {
                let mut e = pos;
                while e - pos < group && v.flags(e).is_number() {
                    e += 1;
                }
                return e;
            }
            let q = pos + (v.cpt(pos) == ' ' as u32) as usize;
            if other(q) {
                let mut e = q;
                while other(e) {
                    e += 1;
                }
                while is_nl(v.cpt(e)) || v.cpt(e) == '/' as u32 {
                    e += 1;
                }
                return e;
            }
            pos + whitespace_piece(&v, pos)
        });
        out.push((pos, e));
        pos = e;
    }
}

/// DeepSeek V3's word regex (also Hunyuan dense, JoyAI, HY v4), as `std::regex` runs it on
/// the collapsed text; unmatched stretches (numbers, already split off) stay pieces:
/// `[!-/:-@\[-`{-~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
pub(super) fn deepseek3(cpts: &[u32], (ini, end): Span, out: &mut Vec<Span>) {
    let v = View { cpts, ini, end };
    let ascii_punct = |c: u32| matches!(c, 0x21..=0x2F | 0x3A..=0x40 | 0x5B..=0x60 | 0x7B..=0x7E);
    let ascii_alpha = |c: u32| (0x41..=0x5A).contains(&c) || (0x61..=0x7A).contains(&c);
    let lm = |p: usize| v.flags(p).is_letter() || v.flags(p).is_accent_mark();
    let ps = |p: usize| v.flags(p).is_punctuation() || v.flags(p).is_symbol();
    let lead = |p: usize| {
        let f = v.flags(p);
        f.any() && !is_nl(v.cpt(p)) && !f.is_letter() && !f.is_punctuation() && !f.is_symbol()
    };
    let run = |mut e: usize, pred: &dyn Fn(usize) -> bool| {
        while pred(e) {
            e += 1;
        }
        e
    };
    let mut pos = ini;
    let mut gap = ini;
    while pos < end {
        let q = pos + (v.cpt(pos) == ' ' as u32) as usize;
        let m = if ascii_punct(v.cpt(pos)) && ascii_alpha(v.cpt(pos + 1)) {
            Some(run(pos + 1, &|p| ascii_alpha(v.cpt(p))))
        } else if lead(pos) && lm(pos + 1) {
            Some(run(pos + 1, &lm))
        } else if lm(pos) {
            Some(run(pos, &lm))
        } else if ps(q) {
            Some(run(run(q, &ps), &|p| is_nl(v.cpt(p))))
        } else if v.flags(pos).is_whitespace() {
            Some(pos + whitespace_piece(&v, pos))
        } else {
            None
        };
        match m {
            Some(e) => {
                if gap < pos {
                    out.push((gap, pos));
                }
                out.push((pos, e));
                pos = e;
                gap = e;
            }
            None => pos += 1,
        }
    }
    if gap < end {
        out.push((gap, end));
    }
}

/// Tiny Aya's word regex as `std::regex` runs it on the collapsed text, where `\p{Lu}` and
/// `\p{Ll}` both become "any letter":
/// `[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+C?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// (`C` the contractions; Youtu's is the same with single digits).
pub(super) fn tiny_aya(cpts: &[u32], (ini, end): Span, group: usize, out: &mut Vec<Span>) {
    let v = View { cpts, ini, end };
    let lm = |p: usize| v.flags(p).is_letter() || v.flags(p).is_accent_mark();
    let lead = |p: usize| {
        let f = v.flags(p);
        f.any() && !is_nl(v.cpt(p)) && !f.is_letter() && !f.is_number()
    };
    let other = |p: usize| not_word(v.flags(p)) && v.flags(p).any();
    let mut pos = ini;
    while pos < end {
        let mut e;
        if (lead(pos) && lm(pos + 1)) || lm(pos) {
            e = pos + 1;
            while lm(e) {
                e += 1;
            }
            e += v.contraction(e, true);
        } else if v.flags(pos).is_number() {
            e = pos;
            while e - pos < group && v.flags(e).is_number() {
                e += 1;
            }
        } else {
            let q = pos + (v.cpt(pos) == ' ' as u32) as usize;
            if other(q) {
                e = q;
                while other(e) {
                    e += 1;
                }
                while is_nl(v.cpt(e)) || v.cpt(e) == '/' as u32 {
                    e += 1;
                }
            } else {
                e = pos + whitespace_piece(&v, pos);
            }
        }
        out.push((pos, e));
        pos = e;
    }
}
