//! The bytes of one layer's K or V cache: `n_slots` rows of `row_len` values in F32, F16 or
//! Q8_0 (`--cache-type-k/v`, spelled as llama.cpp spells them).

use half::f16;
use nanorun_kernels::quant::q8_0::BlockQ8_0;

/// Element type of the K or V cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheType {
    /// 32-bit floats.
    F32,
    /// 16-bit floats (the default, as in llama.cpp).
    F16,
    /// 8-bit blocks of 32 with an f16 scale.
    Q8_0,
}

impl CacheType {
    /// Parses `f32`, `f16` or `q8_0`.
    pub fn parse(s: &str) -> Option<CacheType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Some(CacheType::F32),
            "f16" => Some(CacheType::F16),
            "q8_0" => Some(CacheType::Q8_0),
            _ => None,
        }
    }

    /// Bytes one row of `n` values takes.
    pub fn row_bytes(self, n: usize) -> usize {
        match self {
            CacheType::F32 => 4 * n,
            CacheType::F16 => 2 * n,
            CacheType::Q8_0 => n / 32 * std::mem::size_of::<BlockQ8_0>(),
        }
    }
}

/// One layer's K or V rows.
#[derive(Debug)]
pub enum KvBuf {
    /// F32 rows.
    F32(Vec<f32>),
    /// F16 rows.
    F16(Vec<f16>),
    /// Q8_0 rows (`row_len / 32` blocks each).
    Q8_0(Vec<BlockQ8_0>),
}

impl KvBuf {
    /// Zeroed storage for `n_slots` rows of `row_len` values.
    pub fn new(ty: CacheType, n_slots: usize, row_len: usize) -> KvBuf {
        let n = n_slots * row_len;
        match ty {
            CacheType::F32 => KvBuf::F32(vec![0.0; n]),
            CacheType::F16 => KvBuf::F16(vec![f16::ZERO; n]),
            CacheType::Q8_0 => KvBuf::Q8_0(vec![bytemuck::Zeroable::zeroed(); n / 32]),
        }
    }

    /// Stores `x` as row `slot`.
    pub fn write(&mut self, slot: usize, x: &[f32]) {
        let n = x.len();
        match self {
            KvBuf::F32(v) => v[slot * n..(slot + 1) * n].copy_from_slice(x),
            KvBuf::F16(v) => {
                // (F16C's conversion where the CPU has it: round to nearest even, as
                // `f16::from_f32`.)
                use half::slice::HalfFloatSliceExt;
                v[slot * n..(slot + 1) * n].convert_from_f32_slice(x);
            }
            KvBuf::Q8_0(v) => {
                let blocks = &mut v[slot * n / 32..(slot + 1) * n / 32];
                nanorun_kernels::quant::q8_0::quantize_row_ref(x, blocks);
            }
        }
    }

    /// Loads row `slot` (of `out.len()` values) as f32.
    pub fn read(&self, slot: usize, out: &mut [f32]) {
        self.read_head(slot, out.len(), 0, out);
    }
}

impl KvBuf {
    /// Widens `row[slot][off..off + out.len()]` (rows `row_len` wide) to f32 into `out`; for
    /// Q8_0, `off` and `out.len()` must be multiples of 32.
    pub fn read_head(&self, slot: usize, row_len: usize, off: usize, out: &mut [f32]) {
        let (start, n) = (slot * row_len + off, out.len());
        match self {
            KvBuf::F32(v) => out.copy_from_slice(&v[start..start + n]),
            KvBuf::F16(v) => {
                use half::slice::HalfFloatSliceExt;
                v[start..start + n].convert_to_f32_slice(out);
            }
            KvBuf::Q8_0(v) => {
                nanorun_kernels::quant::q8_0::dequantize_row(&v[start / 32..(start + n) / 32], out)
            }
        }
    }

    /// `q · row[slot][off..off + q.len()]` where rows are `row_len` wide.
    #[inline]
    pub fn dot(&self, slot: usize, row_len: usize, off: usize, q: &[f32]) -> f32 {
        let start = slot * row_len + off;
        match self {
            KvBuf::F32(v) => v[start..start + q.len()]
                .iter()
                .zip(q)
                .map(|(a, b)| a * b)
                .sum(),
            KvBuf::F16(v) => crate::model::f16ops::dot(&v[start..start + q.len()], q),
            KvBuf::Q8_0(v) => {
                let mut sum = 0.0;
                for (bi, blk) in v[start / 32..(start + q.len()) / 32].iter().enumerate() {
                    let d = blk.d.to_f32();
                    let s: f32 = blk
                        .qs
                        .iter()
                        .zip(&q[bi * 32..])
                        .map(|(&x, &y)| x as f32 * y)
                        .sum();
                    sum += d * s;
                }
                sum
            }
        }
    }

    /// `acc += w · row[slot][off..off + acc.len()]` where rows are `row_len` wide.
    #[inline]
    pub fn axpy(&self, slot: usize, row_len: usize, off: usize, w: f32, acc: &mut [f32]) {
        let start = slot * row_len + off;
        let n = acc.len();
        match self {
            KvBuf::F32(v) => {
                for (a, &x) in acc.iter_mut().zip(&v[start..start + n]) {
                    *a += w * x;
                }
            }
            KvBuf::F16(v) => {
                for (a, x) in acc.iter_mut().zip(&v[start..start + n]) {
                    *a += w * x.to_f32();
                }
            }
            KvBuf::Q8_0(v) => {
                for (bi, blk) in v[start / 32..(start + n) / 32].iter().enumerate() {
                    let wd = w * blk.d.to_f32();
                    for (a, &x) in acc[bi * 32..bi * 32 + 32].iter_mut().zip(&blk.qs) {
                        *a += wd * x as f32;
                    }
                }
            }
        }
    }

    /// Asks for row `slot`'s `len` values from `off` (rows `row_len` long) to be brought into
    /// the cache ahead of their use (a hint: attention's reads of K and V rows are scattered
    /// over blocks and short, where the hardware prefetchers start too late; for F16 rows).
    #[inline]
    pub fn prefetch(&self, slot: usize, row_len: usize, off: usize, len: usize) {
        #[cfg(target_arch = "x86_64")]
        if let KvBuf::F16(v) = self {
            let Some(row) = v.get(slot * row_len + off..slot * row_len + off + len) else {
                return;
            };
            let p = row.as_ptr().cast::<i8>();
            for b in (0..std::mem::size_of_val(row)).step_by(64) {
                // SAFETY: a prefetch hint of an address inside `row`; it reads nothing.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.add(b))
                };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (slot, row_len, off, len);
    }

    /// Row `slot`'s `len` values from `off` (rows `row_len` long), where the rows are f16.
    pub fn f16_head(&self, slot: usize, row_len: usize, off: usize, len: usize) -> Option<&[f16]> {
        match self {
            KvBuf::F16(v) => Some(&v[slot * row_len + off..][..len]),
            _ => None,
        }
    }
}
