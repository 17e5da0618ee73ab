//! Allocator tests: the pools return to fully free after any mix of sequences, allocation is
//! all-or-nothing, sliding-window blocks are released as sequences grow.

use super::*;
use crate::model::config::{attention_test_config, ModelConfig};

fn config(windows: &[Option<usize>]) -> ModelConfig {
    attention_test_config(2, 1, 32, windows)
}

fn cache(n_blocks: usize, windows: &[Option<usize>]) -> KvCache {
    let cfg = KvCacheConfig {
        n_blocks,
        block_size: 4,
        type_k: CacheType::F16,
        type_v: CacheType::Q8_0,
        ..KvCacheConfig::for_context(64)
    };
    KvCache::new(&config(windows), cfg).unwrap()
}

/// xorshift for reproducible random schedules.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn pools_return_to_fully_free_after_any_mix_of_sequences() {
    let mut kv = cache(32, &[None, Some(6)]);
    let total = kv.total_blocks();
    let mut live: Vec<SeqId> = Vec::new();
    let mut s = 0x1234_5678u64;
    let mut next_id = 0;
    for _ in 0..5000 {
        match rng(&mut s) % 4 {
            0 => {
                kv.add_sequence(next_id).unwrap();
                live.push(next_id);
                next_id += 1;
            }
            1 | 2 if !live.is_empty() => {
                let seq = live[(rng(&mut s) % live.len() as u64) as usize];
                let len = kv.seq_len(seq).unwrap() + 1 + (rng(&mut s) % 9) as usize;
                match kv.grow_to(seq, len) {
                    Ok(()) => kv.release_out_of_window(seq),
                    Err(EngineError::KvExhausted { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            _ if !live.is_empty() => {
                let i = (rng(&mut s) % live.len() as u64) as usize;
                kv.remove_sequence(live.swap_remove(i));
            }
            _ => {}
        }
        let free = kv.free_blocks();
        assert!(free.iter().zip(&total).all(|(f, t)| f <= t));
    }
    for seq in live {
        kv.remove_sequence(seq);
    }
    assert_eq!(kv.free_blocks(), total);
}

#[test]
fn growth_is_all_or_nothing() {
    let mut kv = cache(3, &[None]);
    kv.add_sequence(1).unwrap();
    kv.add_sequence(2).unwrap();
    kv.grow_to(1, 8).unwrap(); // 2 blocks
    let err = kv.grow_to(2, 8).unwrap_err();
    assert!(
        matches!(err, EngineError::KvExhausted { needed: 2, free: 1 }),
        "{err}"
    );
    assert_eq!(kv.free_blocks(), vec![1]);
    assert_eq!(kv.seq_len(2), Some(0));
    assert!(kv.slot(0, 2, 0).is_err());
    kv.remove_sequence(1);
    kv.grow_to(2, 8).unwrap();
    assert!(kv.slot(0, 2, 7).is_ok());
    assert!(kv.add_sequence(2).is_err());
}

#[test]
fn sliding_window_blocks_are_released_but_global_ones_kept() {
    // Window 6 with 4-token blocks: after 20 positions the next query sees 15..=20.
    let mut kv = cache(16, &[None, Some(6)]);
    kv.add_sequence(0).unwrap();
    kv.grow_to(0, 20).unwrap();
    kv.release_out_of_window(0);
    assert_eq!(kv.free_blocks(), vec![16 - 5, 16 - 2]);
    assert!(kv.slot(1, 0, 3).is_err(), "out of the window");
    assert!(kv.slot(1, 0, 16).is_ok());
    assert!(kv.slot(0, 0, 3).is_ok(), "global layers keep everything");
    kv.remove_sequence(0);
    assert_eq!(kv.free_blocks(), vec![16, 16]);
}

#[test]
fn rows_round_trip_through_every_cache_type() {
    for ty in [CacheType::F32, CacheType::F16, CacheType::Q8_0] {
        let mut buf = KvBuf::new(ty, 4, 64);
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 30.0) / 17.0).collect();
        buf.write(2, &x);
        let mut y = vec![0.0; 64];
        buf.read(2, &mut y);
        let tol = match ty {
            CacheType::F32 => 0.0,
            CacheType::F16 => 2e-3,
            CacheType::Q8_0 => 2e-2,
        };
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= tol, "{ty:?}: {a} vs {b}");
        }
        let q: Vec<f32> = (0..32).map(|i| i as f32 / 32.0).collect();
        let want: f32 = y[32..].iter().zip(&q).map(|(a, b)| a * b).sum();
        assert!((buf.dot(2, 64, 32, &q) - want).abs() < 1e-4);
    }
}

/// F16 rows store each value as `f16::from_f32` rounds it (round to nearest even; the slice
/// conversion takes F16C where the CPU has it), subnormals, overflow and odd lengths included.
#[test]
fn f16_rows_round_as_f16_from_f32() {
    let mut state = 0x1234_5678_u64;
    for n in [1usize, 7, 8, 9, 64, 100] {
        let x: Vec<f32> = (0..n)
            .map(|i| match i % 5 {
                0 => 1e-7 * (rng(&mut state) % 1000) as f32,
                1 => 70000.0 + (rng(&mut state) % 10) as f32,
                2 => -f32::from_bits(0x3c00_1000 + (rng(&mut state) % 0x2000) as u32),
                _ => (rng(&mut state) % 20001) as f32 / 1000.0 - 10.0,
            })
            .collect();
        let mut buf = KvBuf::new(CacheType::F16, 3, n);
        buf.write(1, &x);
        let KvBuf::F16(v) = &buf else { unreachable!() };
        let want: Vec<u16> = x
            .iter()
            .map(|&a| half::f16::from_f32(a).to_bits())
            .collect();
        let got: Vec<u16> = v[n..2 * n].iter().map(|h| h.to_bits()).collect();
        assert_eq!(got, want, "n={n}");
    }
}
