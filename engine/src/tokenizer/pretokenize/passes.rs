//! Single-pattern regex passes (`[..]+`, `\\s?[..]+`, `[0-9]{3}`, ...): matches become pieces and
//! so do the gaps between them, as in llama.cpp's `unicode_regex_split`.

use super::Span;
use crate::tokenizer::unicode::flags;

/// A `std::regex` pass whose pattern is one character class, `[..]+` when `runs` or `[..]`
/// otherwise: matches become pieces, and so do the gaps between them.
pub(super) fn class_pass(
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
pub(super) enum Lead {
    /// `\s?`
    Whitespace,
    /// ` ?`
    Space,
}

/// A `std::regex` pass `L?[..]+` (`L` a whitespace or a space): matches and gaps.
pub(super) fn lead_run_pass(
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
pub(super) fn ascii_digit_triples(cpts: &[u32], (ini, end): Span, out: &mut Vec<Span>) {
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

/// `\p{N}{1,3}`: runs of up to three numbers, and the gaps.
pub(super) fn number_groups(cpts: &[u32], (ini, end): Span, out: &mut Vec<Span>) {
    let mut pos = ini;
    let mut gap = ini;
    while pos < end {
        if flags(cpts[pos]).is_number() {
            if gap < pos {
                out.push((gap, pos));
            }
            let start = pos;
            while pos < end && pos - start < 3 && flags(cpts[pos]).is_number() {
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

/// Tiny Aya's `\d{1,3}(?=(?:\d{3})*\b)`, which llama.cpp runs with its AFMoE digit splitter:
/// every run of numbers (`\p{N}`) is cut into groups of three counted from the right, and the
/// stretch before a run is glued to the run's first group (later passes split them again).
pub(super) fn digits_from_right(cpts: &[u32], (ini, end): Span, out: &mut Vec<Span>) {
    let mut prev = ini;
    let mut pos = ini;
    while pos < end {
        if !flags(cpts[pos]).is_number() {
            pos += 1;
            continue;
        }
        let start = pos;
        while pos < end && flags(cpts[pos]).is_number() {
            pos += 1;
        }
        let mut cut = start + (pos - start) % 3;
        if cut == start {
            cut += 3;
        }
        while cut <= pos {
            out.push((prev, cut));
            prev = cut;
            cut += 3;
        }
    }
    if prev < end {
        out.push((prev, end));
    }
}

/// Youtu's first pass, `[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+`, as a
/// `std::wregex` (non-ASCII whitespace arrives as \v, outside every class): runs of one
/// class, and the gaps.
pub(super) fn youtu_scripts(cpts: &[u32], (ini, end): Span, out: &mut Vec<Span>) {
    let class = |cp: u32| -> u8 {
        match cp {
            0xAC00..=0xD7A3 | 0x3131..=0x318E => 1,
            0xFF01
            | 0x2026
            | 0x201C
            | 0x201D
            | 0x2018
            | 0x2019
            | 0x2014
            | 0xFF1A
            | 0xFF1B
            | 0xFF0C
            | 0x3001..=0x303F
            | 0xFE30..=0xFE4F => 2,
            0x3105..=0x312F => 3,
            0x4E00..=0x9FA5 | 0x3040..=0x309F | 0x30A0..=0x30FF => 4,
            _ => 0,
        }
    };
    let class = |cp: u32| {
        if flags(cp).is_whitespace() {
            0
        } else {
            class(cp)
        }
    };
    let mut pos = ini;
    let mut gap = ini;
    while pos < end {
        let c = class(cpts[pos]);
        if c == 0 {
            pos += 1;
            continue;
        }
        if gap < pos {
            out.push((gap, pos));
        }
        let start = pos;
        while pos < end && class(cpts[pos]) == c {
            pos += 1;
        }
        out.push((start, pos));
        gap = pos;
    }
    if gap < end {
        out.push((gap, end));
    }
}
