//! Unit tests of the sampler chain.

use super::*;

fn params(f: impl FnOnce(&mut SamplingParams)) -> SamplingParams {
    let mut p = SamplingParams {
        seed: Some(1234),
        ..SamplingParams::default()
    };
    f(&mut p);
    p
}

/// Plain temperature-1 sampling over the whole distribution.
fn plain(seed: u64) -> SamplingParams {
    params(|p| {
        p.seed = Some(seed);
        p.temperature = 1.0;
        p.top_k = 0;
        p.top_p = 1.0;
        p.min_p = 0.0;
    })
}

/// Logits whose softmax is exactly `probs`.
fn logits_of(probs: &[f32]) -> Vec<f32> {
    probs.iter().map(|p| p.ln()).collect()
}

fn frequencies(s: &mut Sampler, logits: &[f32], n: usize) -> Vec<f64> {
    let mut counts = vec![0usize; logits.len()];
    for _ in 0..n {
        counts[s.sample(logits) as usize] += 1;
    }
    counts.iter().map(|&c| c as f64 / n as f64).collect()
}

/// A reproducible pseudo-random logits row.
fn random_logits(seed: u64, n: usize) -> Vec<f32> {
    let mut r = Xoshiro256::new(seed);
    (0..n)
        .map(|_| (r.next_f64() * 20.0 - 10.0) as f32)
        .collect()
}

#[test]
fn defaults_are_llama_cpp_defaults() {
    let p = SamplingParams::default();
    assert_eq!(
        (p.temperature, p.top_k, p.top_p, p.min_p, p.typical_p),
        (0.8, 40, 0.95, 0.05, 1.0)
    );
    assert_eq!((p.repeat_penalty, p.repeat_last_n), (1.0, 64));
    assert_eq!((p.frequency_penalty, p.presence_penalty), (0.0, 0.0));
    assert_eq!((p.min_keep, p.seed), (0, None));
    assert!(p.validate().is_ok());
    assert!(!p.penalties_active());
}

#[test]
fn greedy_picks_argmax_and_lowest_id_on_ties() {
    let mut s = Sampler::new(SamplingParams::greedy()).unwrap();
    assert_eq!(s.sample(&[0.1, 2.0, -3.0, 1.9]), 1);
    assert_eq!(s.sample(&[1.0, 5.0, 5.0, 5.0]), 1);
    assert_eq!(s.sample(&[f32::NAN, -1.0, f32::NAN]), 1);
    assert_eq!(s.sample(&[f32::NAN, f32::NAN]), 0);
    assert_eq!(s.sample(&[f32::NEG_INFINITY, f32::INFINITY]), 1);
    assert_eq!(s.try_sample(&[]), Err(SamplingError::EmptyLogits));
}

/// The vectorized penalty-free argmax against the plain loop, on vocabularies with and without
/// a partial last chunk, ties, NaNs and infinities.
#[test]
fn fast_argmax_matches_the_greedy_loop() {
    let reference = |logits: &[f32]| {
        let mut best = 0usize;
        let mut best_logit = f32::NEG_INFINITY;
        for (i, &l) in logits.iter().enumerate() {
            let l = if l.is_nan() { f32::NEG_INFINITY } else { l };
            if l > best_logit {
                best = i;
                best_logit = l;
            }
        }
        best as u32
    };
    let mut rng = rng::Xoshiro256::new(5);
    for len in [1, 15, 16, 17, 31, 32, 33, 100, 4099] {
        for case in 0..40 {
            let logits: Vec<f32> = (0..len)
                .map(|_| match rng.next_u64() % 16 {
                    0 if case % 3 == 0 => f32::NAN,
                    1 if case % 5 == 0 => f32::NEG_INFINITY,
                    2 if case % 7 == 0 => f32::INFINITY,
                    // Few distinct values, so that the maximum is often tied.
                    _ => (rng.next_u64() % 9) as f32 - 4.0,
                })
                .collect();
            let want = reference(&logits);
            assert_eq!(argmax(&logits), want, "len {len} case {case}");
            assert_eq!(
                argmax::argmax_portable(&logits),
                want,
                "len {len} case {case}"
            );
        }
        for same in [f32::NAN, f32::NEG_INFINITY, 1.5] {
            let logits = vec![same; len];
            assert_eq!(argmax(&logits), 0);
            assert_eq!(argmax::argmax_portable(&logits), 0);
        }
    }
}

#[test]
fn top_k_one_equals_greedy() {
    let mut greedy = Sampler::new(SamplingParams::greedy()).unwrap();
    for seed in 0..50 {
        let logits = random_logits(seed, 1000);
        let mut s = Sampler::new(params(|p| {
            p.seed = Some(seed);
            p.top_k = 1;
            p.temperature = 1.5;
        }))
        .unwrap();
        assert_eq!(s.sample(&logits), greedy.sample(&logits), "seed {seed}");
    }
}

#[test]
fn same_seed_same_tokens() {
    let logits = random_logits(99, 500);
    let run = |seed| {
        let mut s = Sampler::new(params(|p| {
            p.seed = Some(seed);
            p.temperature = 2.0;
            p.top_k = 0;
            p.top_p = 1.0;
            p.min_p = 0.0;
            p.repeat_penalty = 1.1;
        }))
        .unwrap();
        (0..200)
            .map(|_| {
                let t = s.sample(&logits);
                s.accept(t);
                t
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
    // reset() restarts the same stream.
    let mut s = Sampler::new(plain(3)).unwrap();
    let a: Vec<u32> = (0..20).map(|_| s.sample(&logits)).collect();
    s.reset();
    let b: Vec<u32> = (0..20).map(|_| s.sample(&logits)).collect();
    assert_eq!(a, b);
    assert_eq!(s.seed(), 3);
}

#[test]
fn random_seed_is_reported() {
    let a = Sampler::new(SamplingParams::default()).unwrap();
    let b = Sampler::new(SamplingParams::default()).unwrap();
    assert_ne!(a.seed(), b.seed());
}

#[test]
fn frequencies_follow_softmax() {
    let probs = [0.5, 0.25, 0.15, 0.1];
    let mut s = Sampler::new(plain(42)).unwrap();
    let f = frequencies(&mut s, &logits_of(&probs), 100_000);
    for (got, want) in f.iter().zip(probs) {
        // The standard error is at most 0.0016; a fixed seed makes this exact anyway.
        assert!((got - want as f64).abs() < 0.01, "{f:?}");
    }
}

#[test]
fn temperature_sharpens_and_flattens() {
    let probs = [0.6, 0.4];
    let logits = logits_of(&probs);
    // At temperature T the odds become (0.6/0.4)^(1/T).
    for (t, odds) in [(0.5f32, 2.25f64), (2.0, 1.5f64.sqrt())] {
        let mut s = Sampler::new(params(|p| {
            p.temperature = t;
            p.top_k = 0;
            p.top_p = 1.0;
            p.min_p = 0.0;
        }))
        .unwrap();
        let f = frequencies(&mut s, &logits, 100_000);
        let want = odds / (1.0 + odds);
        assert!((f[0] - want).abs() < 0.01, "T={t}: {f:?} vs {want}");
    }
}

#[test]
fn top_k_top_p_min_p_truncate() {
    let probs = [0.5, 0.3, 0.15, 0.05];
    let logits = logits_of(&probs);
    let only = |f: &[f64], kept: &[usize]| {
        for (i, &x) in f.iter().enumerate() {
            assert_eq!(x > 0.0, kept.contains(&i), "{f:?} should keep {kept:?}");
        }
    };
    // top-k 2 keeps the two best, renormalised 5:3.
    let mut s = Sampler::new(params(|p| {
        p.temperature = 1.0;
        p.top_k = 2;
        p.top_p = 1.0;
        p.min_p = 0.0;
    }))
    .unwrap();
    let f = frequencies(&mut s, &logits, 50_000);
    only(&f, &[0, 1]);
    assert!((f[0] - 0.625).abs() < 0.01, "{f:?}");
    // top-p 0.7: 0.5 < 0.7 <= 0.8, so tokens 0 and 1.
    let mut s = Sampler::new(params(|p| {
        p.temperature = 1.0;
        p.top_k = 0;
        p.top_p = 0.7;
        p.min_p = 0.0;
    }))
    .unwrap();
    only(&frequencies(&mut s, &logits, 20_000), &[0, 1]);
    // top-p 0.8 keeps exactly tokens 0 and 1 too (cumulative >= p), 0.81 adds token 2.
    let mut s = Sampler::new(params(|p| {
        p.temperature = 1.0;
        p.top_k = 0;
        p.top_p = 0.81;
        p.min_p = 0.0;
    }))
    .unwrap();
    only(&frequencies(&mut s, &logits, 20_000), &[0, 1, 2]);
    // min-p 0.2: threshold 0.1, so 0.05 goes.
    let mut s = Sampler::new(params(|p| {
        p.temperature = 1.0;
        p.top_k = 0;
        p.top_p = 1.0;
        p.min_p = 0.2;
    }))
    .unwrap();
    only(&frequencies(&mut s, &logits, 20_000), &[0, 1, 2]);
    // min-p keeps at least min_keep.
    let mut s = Sampler::new(params(|p| {
        p.temperature = 1.0;
        p.top_k = 0;
        p.top_p = 1.0;
        p.min_p = 0.9;
        p.min_keep = 2;
    }))
    .unwrap();
    only(&frequencies(&mut s, &logits, 20_000), &[0, 1]);
}

#[test]
fn truncation_sees_logits_before_temperature() {
    // llama.cpp order: min-p runs before temperature, so a huge temperature cannot bring
    // back a token that min-p removed.
    let logits = logits_of(&[0.7, 0.28, 0.02]);
    let mut s = Sampler::new(params(|p| {
        p.temperature = 100.0;
        p.top_k = 0;
        p.top_p = 1.0;
        p.min_p = 0.05;
    }))
    .unwrap();
    let f = frequencies(&mut s, &logits, 20_000);
    assert_eq!(f[2], 0.0, "{f:?}");
    assert!((f[0] - 0.5).abs() < 0.02, "{f:?}");
}

#[test]
fn typical_keeps_the_typical_set() {
    // One dominant token and a flat tail: the entropy is low, so the dominant token is the
    // most "typical" and the rest is cut once mass exceeds typical_p.
    let mut probs = vec![0.9f32];
    probs.extend(std::iter::repeat_n(0.1 / 50.0, 50));
    let logits = logits_of(&probs);
    let mut s = Sampler::new(params(|p| {
        p.temperature = 1.0;
        p.top_k = 0;
        p.top_p = 1.0;
        p.min_p = 0.0;
        p.typical_p = 0.5;
    }))
    .unwrap();
    let f = frequencies(&mut s, &logits, 5_000);
    assert_eq!(f[0], 1.0, "{f:?}");
    // typical_p = 1 is off.
    let mut s = Sampler::new(plain(9)).unwrap();
    let f = frequencies(&mut s, &logits, 20_000);
    assert!(f[0] < 0.95, "{f:?}");
}

#[test]
fn penalties_as_llama_cpp_applies_them() {
    let mut s = Sampler::new(params(|p| {
        p.repeat_penalty = 2.0;
        p.frequency_penalty = 0.5;
        p.presence_penalty = 0.25;
    }))
    .unwrap();
    s.sample(&[0.0; 4]); // warm-up sizes the counters
    for t in [0, 1, 1] {
        s.accept(t);
    }
    let l = |s: &Sampler, id: usize, logit: f32| s.penalised(id, logit, true);
    // Token 0 seen once: 4 / 2 - 0.5 - 0.25.
    assert_eq!(l(&s, 0, 4.0), 1.25);
    // Token 1 seen twice, negative logit: -1 * 2 - 2 * 0.5 - 0.25.
    assert_eq!(l(&s, 1, -1.0), -3.25);
    // Unseen tokens are untouched.
    assert_eq!(l(&s, 2, 4.0), 4.0);
}

#[test]
fn repeat_penalty_changes_greedy_choice_within_window() {
    let mut s = Sampler::new(params(|p| {
        p.temperature = 0.0;
        p.repeat_penalty = 1.5;
        p.repeat_last_n = 2;
    }))
    .unwrap();
    let logits = [3.0, 2.5, 0.0];
    assert_eq!(s.sample(&logits), 0);
    s.accept(0); // 3.0 / 1.5 = 2.0 < 2.5
    assert_eq!(s.sample(&logits), 1);
    s.accept(2);
    s.accept(2); // token 0 has left the two-token window
    assert_eq!(s.sample(&logits), 0);
    // repeat_last_n = 0 turns penalties off.
    let mut s = Sampler::new(params(|p| {
        p.temperature = 0.0;
        p.repeat_penalty = 1.5;
        p.repeat_last_n = 0;
    }))
    .unwrap();
    s.accept(0);
    assert_eq!(s.sample(&logits), 0);
    // -1: the whole history.
    let mut s = Sampler::new(params(|p| {
        p.temperature = 0.0;
        p.repeat_penalty = 1.5;
        p.repeat_last_n = -1;
    }))
    .unwrap();
    s.accept(0);
    for _ in 0..1000 {
        s.accept(2);
    }
    assert_eq!(s.sample(&logits), 1);
    // Tokens beyond the logits row are accepted without harm.
    s.accept(1_000_000);
    s.accept(u32::MAX);
    assert_eq!(s.sample(&logits), 1);
}

#[test]
fn invalid_parameters_name_the_field() {
    let cases: Vec<(SamplingParams, &str)> = vec![
        (params(|p| p.temperature = -0.1), "temperature"),
        (params(|p| p.temperature = f32::NAN), "temperature"),
        (params(|p| p.top_p = 0.0), "top_p"),
        (params(|p| p.top_p = 1.5), "top_p"),
        (params(|p| p.min_p = -0.5), "min_p"),
        (params(|p| p.min_p = 2.0), "min_p"),
        (params(|p| p.typical_p = 0.0), "typical_p"),
        (params(|p| p.repeat_penalty = 0.0), "repeat_penalty"),
        (
            params(|p| p.repeat_penalty = f32::INFINITY),
            "repeat_penalty",
        ),
        (params(|p| p.repeat_last_n = -2), "repeat_last_n"),
        (
            params(|p| p.frequency_penalty = f32::NAN),
            "frequency_penalty",
        ),
        (
            params(|p| p.presence_penalty = f32::NEG_INFINITY),
            "presence_penalty",
        ),
    ];
    for (p, field) in cases {
        let err = Sampler::new(p).unwrap_err();
        match &err {
            SamplingError::InvalidParam { field: f, .. } => assert_eq!(*f, field),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains(field), "{err}");
    }
    let msg = Sampler::new(params(|p| p.top_p = 1.5))
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "invalid sampling parameter `top_p` (--top-p) = 1.5: must be in (0, 1] (1 = off)"
    );
}

#[test]
fn no_allocation_after_warm_up() {
    let logits = random_logits(1, 4096);
    let mut s = Sampler::new(params(|p| {
        p.top_k = 0;
        p.typical_p = 0.9;
        p.repeat_penalty = 1.1;
    }))
    .unwrap();
    let t = s.sample(&logits);
    s.accept(t);
    let ptrs = |s: &Sampler| {
        (
            s.cands.as_ptr() as usize ^ s.reordered.as_ptr() as usize,
            s.probs.as_ptr(),
            s.counts.as_ptr(),
            s.cands.capacity() + s.reordered.capacity(),
            s.probs.capacity(),
            s.history.capacity(),
        )
    };
    let before = ptrs(&s);
    for _ in 0..100 {
        let t = s.sample(&logits);
        s.accept(t);
    }
    assert_eq!(ptrs(&s), before);
}

#[test]
fn all_masked_logits_do_not_panic() {
    let mut s = Sampler::new(plain(1)).unwrap();
    assert_eq!(s.sample(&[f32::NEG_INFINITY; 3]), 0);
    assert_eq!(s.sample(&[f32::NAN, f32::NEG_INFINITY, f32::NAN]), 0);
    assert_eq!(s.sample(&[f32::NEG_INFINITY, f32::INFINITY, 0.0]), 1);
    let mut s = Sampler::new(SamplingParams {
        seed: Some(1),
        ..SamplingParams::default()
    })
    .unwrap();
    assert_eq!(s.sample(&[f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY]), 1);
}

/// The chain written the plain way, as llama.cpp's samplers do it: every step sorts and
/// normalises the full candidate list. Returns the surviving (id, logit) pairs sorted by id.
fn reference_chain(p: &SamplingParams, logits: &[f32]) -> Vec<(u32, f32)> {
    let mut c: Vec<Candidate> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| Candidate {
            id: i as u32,
            logit: l,
        })
        .collect();
    let probs = |c: &[Candidate]| {
        let max = c.iter().map(|c| c.logit).fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f64> = c.iter().map(|c| ((c.logit - max) as f64).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.into_iter().map(|x| x / sum).collect::<Vec<f64>>()
    };
    c.sort_by(by_logit_desc);
    if p.top_k > 0 {
        c.truncate((p.top_k as usize).max(p.min_keep).min(c.len()));
    }
    if p.typical_p < 1.0 {
        let q = probs(&c);
        let h: f64 = q.iter().filter(|&&x| x > 0.0).map(|&x| -x * x.ln()).sum();
        let mut idx: Vec<usize> = (0..c.len()).collect();
        idx.sort_by(|&a, &b| {
            let sa = (-q[a].ln() - h).abs();
            let sb = (-q[b].ln() - h).abs();
            sa.total_cmp(&sb).then(a.cmp(&b))
        });
        let mut cum = 0.0;
        let mut keep = idx.len();
        for (i, &j) in idx.iter().enumerate() {
            cum += q[j];
            if cum > p.typical_p as f64 && (p.min_keep == 0 || i + 1 >= p.min_keep) {
                keep = i + 1;
                break;
            }
        }
        c = idx[..keep].iter().map(|&j| c[j]).collect();
        c.sort_by(by_logit_desc);
    }
    if p.top_p < 1.0 {
        let q = probs(&c);
        let mut cum = 0.0;
        let mut keep = c.len();
        for (i, x) in q.iter().enumerate() {
            cum += x;
            if cum >= p.top_p as f64 && i + 1 >= p.min_keep {
                keep = i + 1;
                break;
            }
        }
        c.truncate(keep);
    }
    if p.min_p > 0.0 {
        let q = probs(&c);
        let keep = q
            .iter()
            .enumerate()
            .position(|(i, &x)| i > 0 && x < p.min_p as f64 * q[0] && i >= p.min_keep)
            .unwrap_or(c.len());
        c.truncate(keep);
    }
    let mut out: Vec<(u32, f32)> = c.iter().map(|c| (c.id, c.logit / p.temperature)).collect();
    out.sort_by_key(|x| x.0);
    out
}

#[test]
fn chain_matches_the_plain_reference() {
    let mut r = Xoshiro256::new(77);
    let mut checked = 0;
    for case in 0..300u64 {
        let n = [5, 50, 3000, 40_000][case as usize % 4];
        // Peaked and flat rows alike.
        let spread = 1.0 + r.next_f64() * 30.0;
        let logits: Vec<f32> = (0..n)
            .map(|_| ((r.next_f64() - 0.5) * spread) as f32)
            .collect();
        let pick = |r: &mut Xoshiro256, options: &[f32]| {
            options[(r.next_u64() % options.len() as u64) as usize]
        };
        let p = SamplingParams {
            temperature: pick(&mut r, &[0.3, 0.8, 1.0, 1.7]),
            top_k: [0, 1, 7, 40, 1000][(r.next_u64() % 5) as usize],
            top_p: pick(&mut r, &[0.3, 0.9, 0.95, 1.0]),
            min_p: pick(&mut r, &[0.0, 0.01, 0.05, 0.3]),
            typical_p: pick(&mut r, &[0.5, 0.9, 1.0, 1.0]),
            min_keep: [0, 0, 1, 3][(r.next_u64() % 4) as usize],
            seed: Some(case),
            ..SamplingParams::default()
        };
        let mut s = Sampler::new(p.clone()).unwrap();
        s.truncate(&logits);
        let mut got: Vec<(u32, f32)> = s.cands.iter().map(|c| (c.id, c.logit)).collect();
        got.sort_by_key(|x| x.0);
        let want = reference_chain(&p, &logits);
        // Float rounding may move a token sitting exactly on a cumulative threshold; allow
        // a one-token difference in size, and demand the rest be identical.
        let ids = |v: &[(u32, f32)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
        if ids(&got) != ids(&want) {
            assert!(
                got.len().abs_diff(want.len()) <= 1,
                "case {case} {p:?}: kept {} vs reference {}",
                got.len(),
                want.len()
            );
            continue;
        }
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.1, w.1, "case {case}");
        }
        checked += 1;
    }
    assert!(checked >= 295, "only {checked} cases identical");
}

#[test]
fn top_p_prefilter_keeps_the_nucleus() {
    for (seed, spread) in [(1u64, 4.0f64), (2, 12.0), (3, 30.0)] {
        let mut r = Xoshiro256::new(seed);
        let logits: Vec<f32> = (0..100_000)
            .map(|_| ((r.next_f64() - 0.5) * spread) as f32)
            .collect();
        for top_p in [0.5f32, 0.9, 0.99] {
            let p = params(|p| {
                p.top_k = 0;
                p.min_p = 0.0;
                p.top_p = top_p;
                p.temperature = 1.0;
            });
            let mut s = Sampler::new(p.clone()).unwrap();
            s.truncate(&logits);
            let want = reference_chain(&p, &logits);
            assert!(
                s.cands.len().abs_diff(want.len()) <= 1,
                "spread {spread} top_p {top_p}: {} vs {}",
                s.cands.len(),
                want.len()
            );
        }
    }
}

/// A row shaped like a model's: four tokens carry the distribution, the other 100 000 lie
/// 40–75 below (together about 1e-12 of the mass, so they move no frequency measurably).
fn peaked_row() -> (Vec<f32>, [usize; 4], [f32; 4]) {
    let mut r = Xoshiro256::new(5);
    let mut logits: Vec<f32> = (0..100_000)
        .map(|_| (-40.0 - 35.0 * r.next_f64()) as f32)
        .collect();
    let ids = [7, 50_001, 99_998, 99_999];
    let probs = [0.5f32, 0.25, 0.15, 0.1];
    for (&i, p) in ids.iter().zip(probs) {
        logits[i] = p.ln();
    }
    (logits, ids, probs)
}

/// The draw over a whole vocabulary (which leaves out negligible weights) follows the softmax
/// at every temperature, and a tail token is never drawn at these odds.
#[test]
fn whole_vocabulary_draw_follows_softmax() {
    let (logits, ids, probs) = peaked_row();
    for t in [0.7f32, 1.0, 1.5] {
        let p = SamplingParams {
            temperature: t,
            ..plain(1234)
        };
        let mut s = Sampler::new(p).unwrap();
        let f = frequencies(&mut s, &logits, 10_000);
        let weights: Vec<f64> = probs
            .iter()
            .map(|&p| (p as f64).powf(1.0 / t as f64))
            .collect();
        let total: f64 = weights.iter().sum();
        for (&i, w) in ids.iter().zip(&weights) {
            // The standard error is at most 0.005.
            let want = w / total;
            assert!((f[i] - want).abs() < 0.02, "T={t}: {} vs {want}", f[i]);
        }
        let in_ids: f64 = ids.iter().map(|&i| f[i]).sum();
        assert!((in_ids - 1.0).abs() < 1e-9, "T={t}: a tail token was drawn");
    }
}

/// Top-k and top-p first list only the tokens near the top of such a row, and keep exactly
/// what the plain chain keeps; where fewer than k lie near the top, top-k lists the whole row.
#[test]
fn first_truncation_lists_few_and_keeps_the_same() {
    let (logits, _, _) = peaked_row();
    for (top_k, top_p) in [(40u32, 1.0f32), (3, 0.95), (0, 0.9), (0, 0.99)] {
        let p = params(|p| {
            p.top_k = top_k;
            p.top_p = top_p;
            p.min_p = 0.0;
            p.temperature = 1.0;
        });
        let mut s = Sampler::new(p.clone()).unwrap();
        s.load_candidates(&logits);
        let listed = s.cands.len();
        s.truncate(&logits);
        let mut got: Vec<(u32, f32)> = s.cands.iter().map(|c| (c.id, c.logit)).collect();
        got.sort_by_key(|x| x.0);
        assert_eq!(
            got,
            reference_chain(&p, &logits),
            "top_k {top_k} top_p {top_p}"
        );
        if top_k == 40 {
            // Only four lie within the margin: the whole row is listed, as before.
            assert_eq!(listed, logits.len());
        } else {
            assert_eq!(listed, 4, "top_k {top_k} top_p {top_p}");
        }
    }
}
