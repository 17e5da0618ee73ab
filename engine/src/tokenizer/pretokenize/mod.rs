//! BPE pre-tokenizers: split text into words before merges, as llama.cpp does for each
//! `tokenizer.ggml.pre`. llama.cpp runs a list of regexes, each refining the pieces the previous
//! one produced (unmatched gaps stay pieces too); the common regexes have hand-written splitters
//! there, and the others run through `std::regex` on a text where every non-ASCII code point is
//! collapsed to one byte per Unicode category. Every splitter here is written by hand against
//! those semantics, over code points, and works on spans so that passes compose.

mod passes;
mod words;

use super::unicode::flags;
use passes::{
    ascii_digit_triples, class_pass, digits_from_right, lead_run_pass, number_groups,
    youtu_scripts, Lead,
};
use words::{deepseek3, gpt2, llama3, o200k, o200k_with, tiny_aya, Llama3Opts, L3, QWEN2};

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
    /// Numbers in threes, CJK / kana runs, then DeepSeek V3's word regex (`deepseek-v3`,
    /// `hunyuan-dense`, `joyai-llm`, `hy_v4`).
    DeepSeek3,
    /// Numbers in threes, then Llama 3's regex with whole number runs (`minicpm5`).
    MiniCpm5,
    /// ASCII digits grouped by three from the right, then an o200k-like regex (`tiny_aya`,
    /// `cohere2moe`).
    TinyAya,
    /// Hangul, CJK punctuation, Bopomofo and CJK / kana runs, then Tiny Aya's word regex
    /// with single digits (`youtu`).
    Youtu,
    /// The o200k regex with combining marks counted as letters (`granite-embed-multi-97m`).
    GraniteEmbedMulti,
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
            // A `std::wregex` pass: llama.cpp hands it non-ASCII whitespace as \v, outside the ranges.
            let cjk = |cp: u32| {
                matches!(cp, 0x0800..=0x9FA5 | 0xAC00..=0xD7FF) && !flags(cp).is_whitespace()
            };
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
        PreTokenizer::DeepSeek3 => {
            let cjk = |cp: u32| matches!(cp, 0x4E00..=0x9FA5 | 0x3040..=0x30FF);
            let p = refine(cpts, &all, number_groups);
            let p = refine(cpts, &p, |c, s, o| class_pass(c, s, cjk, true, o));
            refine(cpts, &p, deepseek3)
        }
        PreTokenizer::MiniCpm5 => {
            let p = refine(cpts, &all, number_groups);
            let opts = Llama3Opts {
                group: usize::MAX,
                ..L3
            };
            refine(cpts, &p, |c, s, o| llama3(c, s, opts, o))
        }
        PreTokenizer::TinyAya => {
            let p = refine(cpts, &all, digits_from_right);
            refine(cpts, &p, |c, s, o| tiny_aya(c, s, 3, o))
        }
        PreTokenizer::Youtu => {
            let p = refine(cpts, &all, youtu_scripts);
            refine(cpts, &p, |c, s, o| tiny_aya(c, s, 1, o))
        }
        PreTokenizer::GraniteEmbedMulti => {
            refine(cpts, &all, |c, s, o| o200k_with(c, s, true, 3, true, o))
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
    fn deepseek3_minicpm5_tiny_aya_words() {
        assert_eq!(
            words(PreTokenizer::DeepSeek3, "12345 .Net 中文x!!\n"),
            ["123", "45", " .", "Net", " ", "中文", "x", "!!\n"]
        );
        assert_eq!(words(PreTokenizer::MiniCpm5, "a12345"), ["a", "123", "45"]);
        assert_eq!(
            words(PreTokenizer::TinyAya, "1234567 12ab I'M"),
            ["1", "234", "567", " ", "12", "ab", " I'M"]
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
