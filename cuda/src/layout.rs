//! Weight types the CUDA kernels read, their block geometry, and the upload layout of a GGUF
//! tensor (weights go to the device byte for byte, in ggml's block layout).
//!
//! [`dequant_element`] is the Rust mirror of the kernels' per-element index math (`elem` of
//! each type in `kernels/quants.cuh`): the same byte offsets and shifts, tested against the CPU
//! dequantizers of `nanorun-kernels`, so an indexing slip is caught without a GPU.

use half::f16;
use nanorun_formats::GgmlType;

use crate::error::{CudaError, Result};

/// Bytes of one Q8_1 activation block (`BlockQ8_1` in `common.cuh`): d, s (f16), 32 quants.
pub const Q8_1_BLOCK_BYTES: usize = 36;

/// A weight element type with CUDA kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// ggml Q4_0.
    Q4_0,
    /// ggml Q5_0.
    Q5_0,
    /// ggml Q8_0.
    Q8_0,
    /// ggml Q4_K.
    Q4K,
    /// ggml Q5_K.
    Q5K,
    /// ggml Q6_K.
    Q6K,
}

impl WeightType {
    /// Every supported type.
    pub const ALL: [WeightType; 8] = [
        WeightType::F32,
        WeightType::F16,
        WeightType::Q4_0,
        WeightType::Q5_0,
        WeightType::Q8_0,
        WeightType::Q4K,
        WeightType::Q5K,
        WeightType::Q6K,
    ];

    /// The CUDA type for a ggml type, `None` when there is no kernel for it.
    pub fn from_ggml(ty: GgmlType) -> Option<WeightType> {
        Some(match ty {
            GgmlType::F32 => WeightType::F32,
            GgmlType::F16 => WeightType::F16,
            GgmlType::Q4_0 => WeightType::Q4_0,
            GgmlType::Q5_0 => WeightType::Q5_0,
            GgmlType::Q8_0 => WeightType::Q8_0,
            GgmlType::Q4_K => WeightType::Q4K,
            GgmlType::Q5_K => WeightType::Q5K,
            GgmlType::Q6_K => WeightType::Q6K,
            _ => return None,
        })
    }

    /// The ggml type.
    pub fn ggml(self) -> GgmlType {
        match self {
            WeightType::F32 => GgmlType::F32,
            WeightType::F16 => GgmlType::F16,
            WeightType::Q4_0 => GgmlType::Q4_0,
            WeightType::Q5_0 => GgmlType::Q5_0,
            WeightType::Q8_0 => GgmlType::Q8_0,
            WeightType::Q4K => GgmlType::Q4_K,
            WeightType::Q5K => GgmlType::Q5_K,
            WeightType::Q6K => GgmlType::Q6_K,
        }
    }

    /// Values per block (`QK` in `quants.cuh`).
    pub fn block_values(self) -> usize {
        match self {
            WeightType::F32 | WeightType::F16 => 1,
            WeightType::Q4_0 | WeightType::Q5_0 | WeightType::Q8_0 => 32,
            WeightType::Q4K | WeightType::Q5K | WeightType::Q6K => 256,
        }
    }

    /// Bytes per block (`BYTES` in `quants.cuh`).
    pub fn block_bytes(self) -> usize {
        match self {
            WeightType::F32 => 4,
            WeightType::F16 => 2,
            WeightType::Q4_0 => 18,
            WeightType::Q5_0 => 22,
            WeightType::Q8_0 => 34,
            WeightType::Q4K => 144,
            WeightType::Q5K => 176,
            WeightType::Q6K => 210,
        }
    }

    /// Whether the mat-vec kernel takes Q8_1 activations (the quantized types) rather than f32.
    pub fn quantized(self) -> bool {
        !matches!(self, WeightType::F32 | WeightType::F16)
    }

    /// The kernel-name suffix (`mmv_<suffix>`, `mm_<suffix>`, `get_rows_<suffix>`).
    pub fn suffix(self) -> &'static str {
        match self {
            WeightType::F32 => "f32",
            WeightType::F16 => "f16",
            WeightType::Q4_0 => "q4_0",
            WeightType::Q5_0 => "q5_0",
            WeightType::Q8_0 => "q8_0",
            WeightType::Q4K => "q4_k",
            WeightType::Q5K => "q5_k",
            WeightType::Q6K => "q6_k",
        }
    }

    /// The supported types by name, for errors.
    pub fn supported_list() -> String {
        WeightType::ALL
            .iter()
            .map(|t| t.ggml().name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where a `rows × cols` weight matrix lives on the device: rows `row_bytes` apart, `bytes` in
/// all (the GGUF tensor copied as is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixLayout {
    /// Element type.
    pub ty: WeightType,
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// Bytes of one row.
    pub row_bytes: usize,
    /// Bytes of the whole matrix.
    pub bytes: usize,
}

/// The device layout of tensor `name` of ggml type `ty`, `rows × cols`, whose data in the file
/// is `len` bytes. Checks that the type has kernels, that rows are whole blocks (and whole runs
/// of 32 for the quantized types, which the mat-vec kernels walk), and that `len` matches.
pub fn matrix_layout(
    name: &str,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    len: usize,
) -> Result<MatrixLayout> {
    let wt = WeightType::from_ggml(ty).ok_or_else(|| CudaError::UnsupportedType {
        tensor: name.to_string(),
        ty: ty.name().to_string(),
        supported: WeightType::supported_list(),
    })?;
    let qk = wt.block_values();
    if cols == 0
        || rows == 0
        || !cols.is_multiple_of(qk)
        || (wt.quantized() && !cols.is_multiple_of(32))
    {
        return Err(CudaError::Shape(format!(
            "tensor '{name}': {rows} x {cols} is not a whole number of {qk}-value blocks per row"
        )));
    }
    let row_bytes = cols / qk * wt.block_bytes();
    let bytes = rows
        .checked_mul(row_bytes)
        .ok_or_else(|| CudaError::Shape(format!("tensor '{name}': size overflows")))?;
    if bytes != len {
        return Err(CudaError::Shape(format!(
            "tensor '{name}': {rows} x {cols} {} needs {bytes} bytes, the file has {len}",
            ty.name()
        )));
    }
    Ok(MatrixLayout {
        ty: wt,
        rows,
        cols,
        row_bytes,
        bytes,
    })
}

/// Bytes of the Q8_1 activations of `n_tokens` rows of `cols` values (`cols % 32 == 0`).
pub fn q8_1_bytes(n_tokens: usize, cols: usize) -> usize {
    n_tokens * (cols / 32) * Q8_1_BLOCK_BYTES
}

fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

/// ggml's `get_scale_min_k4` as `scale_min_k4` in `quants.cuh`.
fn scale_min_k4(j: usize, q: &[u8]) -> (i32, i32) {
    if j < 4 {
        ((q[j] & 63) as i32, (q[j + 4] & 63) as i32)
    } else {
        (
            ((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4)) as i32,
            ((q[j + 4] >> 4) | ((q[j] >> 6) << 4)) as i32,
        )
    }
}

/// Value `i` of one block `b` of type `ty`, with exactly the byte offsets and shifts of the
/// kernels' `T::elem` (same operations, same order). `b` holds at least one block.
pub fn dequant_element(ty: WeightType, b: &[u8], i: usize) -> f32 {
    match ty {
        WeightType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        WeightType::F16 => f16_at(b, 0),
        WeightType::Q4_0 => {
            let q = b[2 + (i & 15)];
            let n = if i < 16 { q & 0xf } else { q >> 4 } as i32;
            f16_at(b, 0) * (n - 8) as f32
        }
        WeightType::Q5_0 => {
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            let q = b[6 + (i & 15)];
            let lo = if i < 16 { q & 0xf } else { q >> 4 } as i32;
            let n = lo | ((((qh >> i) & 1) << 4) as i32);
            f16_at(b, 0) * (n - 16) as f32
        }
        WeightType::Q8_0 => f16_at(b, 0) * (b[2 + i] as i8) as f32,
        WeightType::Q4K | WeightType::Q5K => {
            let (g, sub, l) = (i / 64, i / 32, i % 32);
            let qs = if ty == WeightType::Q4K { 16 } else { 48 };
            let q = b[qs + 32 * g + l];
            let mut n = if sub & 1 == 1 { q >> 4 } else { q & 0xf } as i32;
            if ty == WeightType::Q5K {
                n |= (((b[16 + l] >> sub) & 1) as i32) << 4;
            }
            let (sc, m) = scale_min_k4(sub, &b[4..16]);
            f16_at(b, 0) * sc as f32 * n as f32 - f16_at(b, 2) * m as f32
        }
        WeightType::Q6K => {
            let (h, c, l) = (i / 128, (i % 128) / 32, i % 32);
            let ql = b[64 * h + l + 32 * (c & 1)];
            let lo = if c >= 2 { ql >> 4 } else { ql & 0xf } as i32;
            let hi = ((b[128 + 32 * h + l] >> (2 * c)) & 3) as i32;
            let sc = b[192 + 8 * h + 2 * c + l / 16] as i8 as i32;
            f16_at(b, 208) * sc as f32 * ((lo | (hi << 4)) - 32) as f32
        }
    }
}

/// Value `col` of a row of type `ty` (`dq_elem` in `quants.cuh`).
pub fn dequant_row_element(ty: WeightType, row: &[u8], col: usize) -> f32 {
    let (qk, bb) = (ty.block_values(), ty.block_bytes());
    dequant_element(ty, &row[col / qk * bb..], col % qk)
}

/// A Q8_1 activation block as the kernels read it: `d` and `s = d·Σq` (f16 bits), 32 quants.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Q8_1Block {
    /// Scale (f16 bits).
    pub d: u16,
    /// Scale times the sum of the quants (f16 bits).
    pub s: u16,
    /// Quants.
    pub qs: [i8; 32],
}

impl Q8_1Block {
    /// 32 values quantized as the `quantize_q8_1` kernel does (and the CPU path's
    /// `q8_1::quantize_row_act`): d = amax/127, q = round-half-even(x·127/amax), s = d·Σq.
    pub fn quantize(x: &[f32; 32]) -> Q8_1Block {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut qs = [0i8; 32];
        let mut sum = 0i32;
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = (v * id).round_ties_even() as i8;
            sum += *q as i32;
        }
        Q8_1Block {
            d: f16::from_f32(d).to_bits(),
            s: f16::from_f32(sum as f32 * d).to_bits(),
            qs,
        }
    }
}

/// The dot of run `j` (values `32j..32j+32`) of block `b` of quantized type `ty` with one Q8_1
/// block: the kernels' `T::dot32`, same integer sums and the same f32 expression. `None` for
/// the float types (their mat-vec reads f32 activations).
pub fn dot_run32(ty: WeightType, b: &[u8], j: usize, a: &Q8_1Block) -> Option<f32> {
    let h = |bits: u16| f16::from_bits(bits).to_f32();
    let (da, sa) = (h(a.d), h(a.s));
    let aq = |l: usize| a.qs[l] as i32;
    Some(match ty {
        WeightType::F32 | WeightType::F16 => return None,
        WeightType::Q4_0 => {
            let sumi: i32 = (0..16)
                .map(|l| (b[2 + l] & 0xf) as i32 * aq(l) + (b[2 + l] >> 4) as i32 * aq(l + 16))
                .sum();
            f16_at(b, 0) * (da * sumi as f32 - 8.0 * sa)
        }
        WeightType::Q5_0 => {
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            let sumi: i32 = (0..16)
                .map(|l| {
                    let q = b[6 + l];
                    let n0 = (q & 0xf) as i32 | ((((qh >> l) & 1) << 4) as i32);
                    let n1 = (q >> 4) as i32 | ((((qh >> (l + 16)) & 1) << 4) as i32);
                    n0 * aq(l) + n1 * aq(l + 16)
                })
                .sum();
            f16_at(b, 0) * (da * sumi as f32 - 16.0 * sa)
        }
        WeightType::Q8_0 => {
            let sumi: i32 = (0..32).map(|l| (b[2 + l] as i8) as i32 * aq(l)).sum();
            f16_at(b, 0) * da * sumi as f32
        }
        WeightType::Q4K | WeightType::Q5K => {
            let sub = j;
            let qs = if ty == WeightType::Q4K { 16 } else { 48 } + 32 * (sub / 2);
            let shift = (sub & 1) * 4;
            let sumi: i32 = (0..32)
                .map(|l| {
                    let mut n = ((b[qs + l] >> shift) & 0xf) as i32;
                    if ty == WeightType::Q5K {
                        n |= (((b[16 + l] >> sub) & 1) as i32) << 4;
                    }
                    n * aq(l)
                })
                .sum();
            let (sc, m) = scale_min_k4(sub, &b[4..16]);
            f16_at(b, 0) * sc as f32 * da * sumi as f32 - f16_at(b, 2) * m as f32 * sa
        }
        WeightType::Q6K => {
            let (hh, c) = (j / 4, j % 4);
            let q6 = |l: usize| {
                let ql = b[64 * hh + l + 32 * (c & 1)];
                let lo = if c >= 2 { ql >> 4 } else { ql & 0xf } as i32;
                let hi = ((b[128 + 32 * hh + l] >> (2 * c)) & 3) as i32;
                (lo | (hi << 4)) - 32
            };
            let s0: i32 = (0..16).map(|l| q6(l) * aq(l)).sum();
            let s1: i32 = (16..32).map(|l| q6(l) * aq(l)).sum();
            let sc0 = b[192 + 8 * hh + 2 * c] as i8 as i32;
            let sc1 = b[192 + 8 * hh + 2 * c + 1] as i8 as i32;
            f16_at(b, 208) * da * (sc0 * s0 + sc1 * s1) as f32
        }
    })
}
