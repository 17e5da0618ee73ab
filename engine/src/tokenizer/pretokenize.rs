//! BPE pre-tokenizers: split text into words before merges, as llama.cpp does for each
//! `tokenizer.ggml.pre`. llama.cpp runs a list of regexes, each refining the pieces the previous
//! one produced (unmatched gaps stay pieces too); the common regexes have hand-written splitters
//! there, and the others run through `std::regex` on a text where every non-ASCII code point is
//! collapsed to one byte per Unicode category. Every splitter here is written by hand against
//! those semantics, over code points, and works on spans so that passes compose.

use super::unicode::{flags, to_lower, Flags};

/// Which pre-tokenizer a BPE vocabulary uses (llama.cpp's `llama_vocab_pre_type`, the subset
/// implemented here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// No or `default` pre: punctuation runs, GPT-2, digit runs, then triples of ASCII digits.
    Default,
    /// GPT-2's regex (`gpt-2`, `olmo`, `mpt`, `phi-2`, ...).
    Gpt2,
    /// Llama 3's regex: digits in groups of up to three (`llama-bpe`, `llama3`, `dbrx`, ...).
    Llama3,
    /// Qwen2's regex: Llama 3's with single digits (`qwen2`, `deepseek-r1-qwen`, `stablelm2`, ...).
    Qwen2,
    /// Every digit alone, then GPT-2's regex (`starcoder`, `smollm`, `refact`, `command-r`, ...).
    StarCoder,
    /// Punctuation runs, GPT-2's regex, then triples of ASCII digits (`falcon`).
    Falcon,
    /// Qwen2's regex whose punctuation runs take no trailing newlines (`seed-coder`).
    SeedCoder,
    /// Qwen2's regex without the contraction alternative (`ufakzeka`).
    NoContractions,
    /// Qwen2's regex with combining marks counted as letters (`qwen35`).
    Qwen35,
    /// The o200k regex: case-aware letter runs with contractions, digits in threes
    /// (`gpt-4o`, `llama4`: Phi-4-mini, Llama 4).
    Gpt4o,
    /// Mistral's Tekken regex: case-aware letter runs, single digits (`tekken`).
    Tekken,
    /// DeepSeek Coder's five passes: newlines, letter runs, punctuation runs, CJK runs, digits
    /// (`deepseek-coder`).
    DeepSeekCoder,
    /// BLOOM's ` ?[^(\s|.,!?…。，、।۔،)]+` (`bloom`, `poro-chat`, `gpt3-finnish`).
    Bloom,
    /// BLOOM's regex, then every digit alone (`viking`).
    Viking,
    /// Runs of non-newlines and runs of newlines (`[^\n]+|[\n]+`): Gemma 4's SPM-style BPE.
    Lines,
}

/// A run of code points `[start, end)`.
type Span = (usize, usize);

/// Splits `cpts` into word spans (lengths in code points, in order, covering everything).
pub fn split(pre: PreTokenizer, cpts: &[u32]) -> Vec<Span> {
    let all = vec![(0, cpts.len())];
    match pre {
        PreTokenizer::Gpt2 => refine(cpts, &all, gpt2),
        PreTokenizer::Llama3 => refine(cpts, &all, |c, s, o| llama3(c, s, L3, o)),
        PreTokenizer::Qwen2 => refine(cpts, &all, |c, s, o| llama3(c, s, QWEN2, o)),
        PreTokenizer::SeedCoder => {
            let opts = Llama3Opts {
                punct_newlines: false,
                ..QWEN2
            };
            refine(cpts, &all, |c, s, o| llama3(c, s, opts, o))
        }
        PreTokenizer::Qwen35 => {
            let opts = Llama3Opts {
                marks: true,
                ..QWEN2
            };
            refine(cpts, &all, |c, s, o| llama3(c, s, opts, o))
        }
        PreTokenizer::NoContractions => {
            let opts = Llama3Opts {
                contractions: false,
                ..QWEN2
            };
            refine(cpts, &all, |c, s, o| llama3(c, s, opts, o))
        }
        PreTokenizer::Gpt4o => refine(cpts, &all, |c, s, o| o200k(c, s, true, 3, o)),
        PreTokenizer::Tekken => refine(cpts, &all, |c, s, o| o200k(c, s, false, 1, o)),
        PreTokenizer::DeepSeekCoder => {
            let is_nl = |cp: u32| cp == '\r' as u32 || cp == '\n' as u32;
            let cjk = |cp: u32| matches!(cp, 0x0800..=0x9FA5 | 0xAC00..=0xD7FF);
            let p = refine(cpts, &all, |c, s, o| class_pass(c, s, is_nl, false, o));
            let p = refine(cpts, &p, |c, s, o| {
                lead_run_pass(c, s, Lead::Whitespace, |cp| flags(cp).is_letter(), o)
            });
            let p = refine(cpts, &p, |c, s, o| {
                lead_run_pass(c, s, Lead::Whitespace, |cp| flags(cp).is_punctuation(), o)
            });
            let p = refine(cpts, &p, |c, s, o| class_pass(c, s, cjk, true, o));
            refine(cpts, &p, |c, s, o| {
                class_pass(c, s, |cp| flags(cp).is_number(), false, o)
            })
        }
        PreTokenizer::Bloom | PreTokenizer::Viking => {
            let word = |cp: u32| {
                !flags(cp).is_whitespace()
                    && !matches!(
                        char::from_u32(cp),
                        Some(
                            '(' | '|'
                                | '.'
                                | ','
                                | '!'
                                | '?'
                                | '…'
                                | '。'
                                | '，'
                                | '、'
                                | '।'
                                | '۔'
                                | '،'
                                | ')'
                        )
                    )
            };
            let p = refine(cpts, &all, |c, s, o| {
                lead_run_pass(c, s, Lead::Space, word, o)
            });
            if pre == PreTokenizer::Viking {
                refine(cpts, &p, |c, s, o| {
                    class_pass(c, s, |cp| flags(cp).is_number(), false, o)
                })
            } else {
                p
            }
        }
        PreTokenizer::Lines => refine(cpts, &all, |c, s, o| {
            class_pass(c, s, |cp| cp == '\n' as u32, true, o)
        }),
        PreTokenizer::Falcon => {
            let is_punct = |cp: u32| {
                flags(cp).is_punctuation()
                    || matches!(cp, 0x24 | 0x2B | 0x3C..=0x3E | 0x5E | 0x7E | 0x7C | 0x60)
            };
            let p = refine(cpts, &all, |c, s, o| class_pass(c, s, is_punct, true, o));
            let p = refine(cpts, &p, gpt2);
            refine(cpts, &p, ascii_digit_triples)
        }
        PreTokenizer::StarCoder => {
            let digits = refine(cpts, &all, |c, s, o| {
                class_pass(c, s, |cp| flags(cp).is_number(), false, o)
            });
            refine(cpts, &digits, gpt2)
        }
        PreTokenizer::Default => {
            let is_punct = |cp: u32| {
                flags(cp).is_punctuation()
                    || matches!(cp, 0x24 | 0x2B | 0x3C..=0x3E | 0x5E | 0x7E | 0x7C)
            };
            let p = refine(cpts, &all, |c, s, o| class_pass(c, s, is_punct, true, o));
            let p = refine(cpts, &p, gpt2);
            let p = refine(cpts, &p, |c, s, o| {
                class_pass(c, s, |cp| flags(cp).is_number(), true, o)
            });
            refine(cpts, &p, ascii_digit_triples)
        }
    }
}

fn refine(cpts: &[u32], spans: &[Span], f: impl Fn(&[u32], Span, &mut Vec<Span>)) -> Vec<Span> {
    let mut out = Vec::with_capacity(spans.len());
    for &s in spans {
        if s.1 > s.0 {
            f(cpts, s, &mut out);
        }
    }
    out
}

/// A view of one span with llama.cpp's out-of-range conventions.
struct View<'a> {
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

fn not_word(f: Flags) -> bool {
    !(f.is_whitespace() || f.is_letter() || f.is_number())
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn gpt2(cpts: &[u32], (ini, end): Span, out: &mut Vec<Span>) {
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
struct Llama3Opts {
    /// Digits per piece (`\p{N}{1,G}`).
    group: usize,
    /// Whether `'s 't 're 've 'm 'll 'd` (any case) are pieces of their own.
    contractions: bool,
    /// Whether a punctuation run takes the newlines after it (`[\r\n]*`).
    punct_newlines: bool,
    /// Whether combining marks count as letters (`[\p{L}\p{M}]+`, Qwen3.5).
    marks: bool,
}

const L3: Llama3Opts = Llama3Opts {
    group: 3,
    contractions: true,
    punct_newlines: true,
    marks: false,
};
const QWEN2: Llama3Opts = Llama3Opts { group: 1, ..L3 };

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,G}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// with `G = opts.group` (3 for Llama 3, 1 for Qwen2).
fn llama3(cpts: &[u32], (ini, end): Span, opts: Llama3Opts, out: &mut Vec<Span>) {
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

fn is_nl(c: u32) -> bool {
    c == '\r' as u32 || c == '\n' as u32
}

/// Length of the piece `\s*[\r\n]+|\s+(?!\S)|\s+` matches at `pos` (1 when none does).
fn whitespace_piece(v: &View<'_>, pos: usize) -> usize {
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
fn o200k(cpts: &[u32], (ini, end): Span, contractions: bool, group: usize, out: &mut Vec<Span>) {
    let v = View { cpts, ini, end };
    let letter = |p: usize| v.flags(p).is_letter();
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
        let q = pos + lead(pos) as usize;
        let mut m = 0;
        while upper(q + m) {
            m += 1;
        }
        // Alternative 1: upper* lower+ (backtracking into the upper run for a letter that is
        // also lower case); alternative 2: upper+ lower*.
        let k = if lower(q + m) {
            Some(m)
        } else {
            (0..m).rev().find(|&k| lower(q + k))
        };
        let e = if let Some(k) = k {
            let mut e = q + k;
            while lower(e) {
                e += 1;
            }
            Some(tail(e))
        } else if m > 0 {
            let mut e = q + m;
            while lower(e) {
                e += 1;
            }
            Some(tail(e))
        } else {
            None
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

/// A `std::regex` pass whose pattern is one character class, `[..]+` when `runs` or `[..]`
/// otherwise: matches become pieces, and so do the gaps between them.
fn class_pass(
    cpts: &[u32],
    (ini, end): Span,
    pred: impl Fn(u32) -> bool,
    runs: bool,
    out: &mut Vec<Span>,
) {
    let mut pos = ini;
    let mut gap = ini;
    while pos < end {
        if pred(cpts[pos]) {
            if gap < pos {
                out.push((gap, pos));
            }
            let start = pos;
            pos += 1;
            while runs && pos < end && pred(cpts[pos]) {
                pos += 1;
            }
            out.push((start, pos));
            gap = pos;
        } else {
            pos += 1;
        }
    }
    if gap < end {
        out.push((gap, end));
    }
}

/// The optional lead character of [`lead_run_pass`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lead {
    /// `\s?`
    Whitespace,
    /// ` ?`
    Space,
}

/// A `std::regex` pass `L?[..]+` (`L` a whitespace or a space): matches and gaps.
fn lead_run_pass(
    cpts: &[u32],
    (ini, end): Span,
    lead: Lead,
    pred: impl Fn(u32) -> bool,
    out: &mut Vec<Span>,
) {
    let is_lead = |cp: u32| match lead {
        Lead::Whitespace => flags(cp).is_whitespace(),
        Lead::Space => cp == ' ' as u32,
    };
    let mut pos = ini;
    let mut gap = ini;
    while pos < end {
        let matches_here =
            pred(cpts[pos]) || (is_lead(cpts[pos]) && pos + 1 < end && pred(cpts[pos + 1]));
        let start = matches_here.then_some(pos);
        match start {
            Some(start) => {
                if gap < start {
                    out.push((gap, start));
                }
                pos = if pred(cpts[pos]) { pos + 1 } else { pos + 2 };
                while pos < end && pred(cpts[pos]) {
                    pos += 1;
                }
                out.push((start, pos));
                gap = pos;
            }
            None => pos += 1,
        }
    }
    if gap < end {
        out.push((gap, end));
    }
}

/// `[0-9][0-9][0-9]`, matches and gaps.
fn ascii_digit_triples(cpts: &[u32], (ini, end): Span, out: &mut Vec<Span>) {
    let digit = |c: u32| (b'0' as u32..=b'9' as u32).contains(&c);
    let mut pos = ini;
    let mut gap = ini;
    while pos < end {
        if pos + 3 <= end && cpts[pos..pos + 3].iter().all(|&c| digit(c)) {
            if gap < pos {
                out.push((gap, pos));
            }
            out.push((pos, pos + 3));
            pos += 3;
            gap = pos;
        } else {
            pos += 1;
        }
    }
    if gap < end {
        out.push((gap, end));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: PreTokenizer, s: &str) -> Vec<String> {
        let cpts: Vec<u32> = s.chars().map(|c| c as u32).collect();
        split(pre, &cpts)
            .into_iter()
            .map(|(a, b)| {
                cpts[a..b]
                    .iter()
                    .map(|&c| char::from_u32(c).unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            words(PreTokenizer::Gpt2, "Hello world's  end!!  "),
            ["Hello", " world", "'s", " ", " end", "!!", "  "]
        );
        assert_eq!(
            words(PreTokenizer::Gpt2, "a 123\n\nb"),
            ["a", " 123", "\n", "\n", "b"]
        );
    }

    #[test]
    fn llama3_words() {
        assert_eq!(
            words(PreTokenizer::Llama3, "I'M 12345 ok?\n\n  x"),
            ["I", "'M", " ", "123", "45", " ok", "?\n\n", " ", " x"]
        );
        assert_eq!(words(PreTokenizer::Qwen2, "a12"), ["a", "1", "2"]);
        assert_eq!(words(PreTokenizer::Qwen2, "a\u{301}b"), ["a", "\u{301}b"]);
        assert_eq!(words(PreTokenizer::Qwen35, "a\u{301}b"), ["a\u{301}b"]);
        assert_eq!(words(PreTokenizer::Llama3, "  \n x"), ["  \n", " x"]);
    }

    #[test]
    fn o200k_words() {
        assert_eq!(
            words(PreTokenizer::Gpt4o, "HelloWORLD they're ÉÉA 12345 a//\n"),
            ["Hello", "WORLD", " they're", " ÉÉ", "A", " ", "123", "45", " a", "//\n"]
        );
        assert_eq!(words(PreTokenizer::Tekken, "ab12"), ["ab", "1", "2"]);
    }

    #[test]
    fn deepseek_coder_and_bloom_words() {
        assert_eq!(
            words(PreTokenizer::DeepSeekCoder, "a bc!!\n12 中文x"),
            ["a", " bc", "!!", "\n", "1", "2", " ", "中文", "x"]
        );
        assert_eq!(
            words(PreTokenizer::Bloom, "Hi there, you.  x"),
            ["Hi", " there", ",", " you", ". ", " x"]
        );
        assert_eq!(words(PreTokenizer::Viking, "a12"), ["a", "1", "2"]);
        assert_eq!(
            words(PreTokenizer::Lines, "a b\n\nc\n"),
            ["a b", "\n\n", "c", "\n"]
        );
    }

    #[test]
    fn default_and_starcoder_words() {
        assert_eq!(
            words(PreTokenizer::StarCoder, "ab 12"),
            ["ab", " ", "1", "2"]
        );
        assert_eq!(
            words(PreTokenizer::Default, "x 12345"),
            ["x", " ", "123", "45"]
        );
    }
}
