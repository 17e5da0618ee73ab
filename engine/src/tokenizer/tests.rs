//! End-to-end checks of [`Tokenizer`] on small hand-made vocabularies.

use std::borrow::Cow;

use super::*;

fn spm_spec<'a>(tokens: &'a [&'a str], scores: &'a [f32], types: &'a [i32]) -> TokenizerSpec<'a> {
    TokenizerSpec {
        model: "llama",
        tokens: tokens.iter().map(|t| t.as_bytes()).collect(),
        scores: Cow::Borrowed(scores),
        token_types: Cow::Borrowed(types),
        ..TokenizerSpec::default()
    }
}

const SPM_TOKENS: &[&str] = &[
    "<unk>", "<s>", "</s>", "<0x0A>", "<0xC3>", "<0xA9>", "▁", "▁a", "b", "▁ab", "<t>",
];
const SPM_SCORES: &[f32] = &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -1.5, 0.0];
const SPM_TYPES: &[i32] = &[2, 3, 3, 6, 6, 6, 1, 1, 1, 1, 3];

#[test]
fn spm_encode_with_prefix_bos_and_byte_fallback() {
    let t = Tokenizer::from_spec(&spm_spec(SPM_TOKENS, SPM_SCORES, SPM_TYPES)).unwrap();
    assert_eq!(t.kind(), TokenizerKind::Spm);
    assert_eq!((t.bos(), t.eos(), t.unk()), (Some(1), Some(2), Some(0)));
    assert_eq!(t.encode("ab", true, false), vec![1, 9]);
    assert_eq!(t.encode("a\né", false, false), vec![7, 3, 4, 5]);
    // Specials are parsed only on request; after one, a prefix space is added again.
    assert_eq!(t.encode("<t>ab", false, true), vec![10, 9]);
    assert!(t.is_eog(2));
    assert!(!t.is_eog(9));
}

#[test]
fn spm_decode_round_trip() {
    let t = Tokenizer::from_spec(&spm_spec(SPM_TOKENS, SPM_SCORES, SPM_TYPES)).unwrap();
    let ids = t.encode("ab\né", true, false);
    assert_eq!(t.decode(&ids[1..], false).unwrap(), "ab\né");
    // As llama.cpp: the prefix space is stripped from the first token only, here the BOS.
    assert_eq!(t.decode(&ids, false).unwrap(), " ab\né");
    assert_eq!(t.decode(&[1, 9], true).unwrap(), "<s> ab");
    assert_eq!(t.token_to_piece(4, false).unwrap(), &[0xC3]);
    assert!(matches!(
        t.decode(&[99], false),
        Err(TokenizerError::TokenOutOfRange { id: 99, .. })
    ));
}

#[test]
fn bad_metadata_is_an_error() {
    let mut spec = spm_spec(SPM_TOKENS, SPM_SCORES, SPM_TYPES);
    spec.model = "t5x";
    assert!(matches!(
        Tokenizer::from_spec(&spec),
        Err(TokenizerError::UnsupportedModel(_))
    ));
    spec.model = "gpt2";
    spec.pre = Some("no-such-pre");
    assert!(matches!(
        Tokenizer::from_spec(&spec),
        Err(TokenizerError::UnsupportedPre(_))
    ));
    spec.pre = Some("gpt-2");
    assert!(matches!(
        Tokenizer::from_spec(&spec),
        Err(TokenizerError::MissingKey {
            key: "tokenizer.ggml.merges"
        })
    ));
    let dup = ["a", "a"];
    assert!(matches!(
        Tokenizer::from_spec(&spm_spec(&dup, &[], &[])),
        Err(TokenizerError::DuplicateToken {
            first: 0,
            second: 1,
            ..
        })
    ));
}

#[test]
fn eog_tokens_found_by_text() {
    let toks = ["<unk>", "<s>", "</s>", "<end_of_turn>", "x"];
    let t = Tokenizer::from_spec(&spm_spec(&toks, &[], &[2, 3, 3, 1, 1])).unwrap();
    assert_eq!(t.eot(), Some(3));
    assert!(t.is_eog(3) && t.is_eog(2));
    assert!(t.is_control(3));
    assert_eq!(t.eog_ids(), &[2, 3]);
}

#[test]
fn gemma4_style_bpe() {
    let mut tokens: Vec<String> = [
        "<pad>", "<eos>", "<bos>", "▁", "a", "b", "ab", "▁ab", "\n", "\n\n",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let first_byte = tokens.len() as u32;
    tokens.extend((0..256).map(|b| format!("<0x{b:02X}>")));
    let mut types = vec![3, 3, 3, 1, 1, 1, 1, 1, 1, 1];
    types.extend(std::iter::repeat_n(6, 256));
    let merges: Vec<&[u8]> = vec![b"a b", "▁ ab".as_bytes()];
    let spec = TokenizerSpec {
        model: "gemma4",
        tokens: tokens.iter().map(|t| t.as_bytes()).collect(),
        token_types: Cow::Owned(types),
        merges,
        bos: Some(2),
        eos: Some(1),
        ..TokenizerSpec::default()
    };
    let t = Tokenizer::from_spec(&spec).unwrap();
    assert!(t.add_bos(), "llama.cpp forces a BOS for Gemma 4");
    // Spaces become ▁, no byte alphabet, newline runs that are tokens stay whole, unknown
    // bytes fall back to <0xXX>.
    let ids = t.encode("ab ab\n\né", true, false);
    let e = "é".as_bytes();
    assert_eq!(
        ids,
        vec![
            2,
            6,
            7,
            9,
            first_byte + e[0] as u32,
            first_byte + e[1] as u32
        ]
    );
    assert_eq!(t.decode(&ids[1..], false).unwrap(), "ab ab\n\né");
}
