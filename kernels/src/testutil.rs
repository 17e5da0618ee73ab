//! Test helpers: a small deterministic PRNG and random quantized rows.

use nanorun_formats::GgmlType;

use crate::traits::type_traits;

/// SplitMix64: tiny, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Bytes with 8-byte alignment (enough for every block type).
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    pub fn zeroed(len: usize) -> Aligned {
        Aligned {
            words: vec![0; len.div_ceil(8)],
            len,
        }
    }
    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
}

/// Values with a few scales per row so blocks differ in magnitude, plus occasional outliers.
pub fn random_values(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut scale = 1.0;
    (0..n)
        .map(|i| {
            if i % 64 == 0 {
                scale = 0.01 + 2.0 * rng.uniform();
            }
            let v = rng.normal() * scale;
            if rng.below(97) == 0 {
                v * 6.0
            } else {
                v
            }
        })
        .collect()
}

/// `rows × cols` values of `ty`, made by the reference quantizer from random values.
pub fn random_weights(rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize) -> Aligned {
    let t = type_traits(ty).unwrap();
    let row = t.row_bytes(cols).unwrap();
    let mut out = Aligned::zeroed(rows * row);
    for r in 0..rows {
        let x = random_values(rng, cols);
        t.quantize_row(&x, &mut out.bytes_mut()[r * row..(r + 1) * row])
            .unwrap();
    }
    out
}

/// Eight rows of random blocks interleaved with `interleave`, after checking that `row_of`
/// gives each row back byte for byte (as bytes: a random f16 scale may be a NaN). Returns the
/// rows and their interleaved block, for a test's own spot checks of the layout.
pub fn interleave_round_trip<B: bytemuck::Pod, X>(
    seed: u64,
    interleave: fn([&B; crate::quant::INTERLEAVED_ROWS]) -> X,
    row_of: fn(&X, usize) -> B,
) -> (Vec<B>, X) {
    let rows: Vec<B> = random_blocks(&mut Rng::new(seed), crate::quant::INTERLEAVED_ROWS);
    let x = interleave(std::array::from_fn(|r| &rows[r]));
    for (r, row) in rows.iter().enumerate() {
        assert_eq!(
            bytemuck::bytes_of(&row_of(&x, r)),
            bytemuck::bytes_of(row),
            "row {r}"
        );
    }
    (rows, x)
}

/// `n` blocks of random bytes (any bit pattern: for layout tests, not arithmetic).
pub fn random_blocks<B: bytemuck::Pod>(rng: &mut Rng, n: usize) -> Vec<B> {
    (0..n)
        .map(|_| {
            let mut b = B::zeroed();
            for byte in bytemuck::bytes_of_mut(&mut b) {
                *byte = rng.next_u64() as u8;
            }
            b
        })
        .collect()
}
