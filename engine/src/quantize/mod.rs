//! `nanorun quantize`: a GGUF file to a quantization mix, as llama-quantize writes it (without
//! an importance matrix).
//!
//! - Tensor types follow llama.cpp's rules (`src/llama-quant.cpp`), see [`rules`].
//! - Tensors are written in llama.cpp's order (outside layers first, then by layer, by name),
//!   metadata is copied in order with `general.quantization_version` = 2 and
//!   `general.file_type` moved to the end, as `gguf_set_val_u32` does; GGUF v3, 32-byte
//!   alignment unless the input sets `general.alignment`.
//! - Values are quantized with `nanorun_kernels::quantize_matrix` (the reference quantizers,
//!   byte-identical to ggml's), so the whole file is byte-identical to llama-quantize's output
//!   for an F32 / F16 / BF16 input.

mod ftype;
pub mod rules;

use std::borrow::Cow;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use nanorun_formats::{GgmlType, Gguf, GgufError, GgufWriter, TensorInfo};
use nanorun_kernels::{quantize_matrix, Kernels, ThreadPool};

use crate::error::{EngineError, Result};

pub use ftype::FileType;
pub use rules::TensorPlan;

/// ggml's `GGML_QNT_VERSION`, written as `general.quantization_version`.
pub const QUANTIZATION_VERSION: u32 = 2;

/// What [`quantize_file`] did.
#[derive(Clone, Debug)]
pub struct QuantizeReport {
    /// The file type written.
    pub ftype: FileType,
    /// Every tensor with its input and output type, in output order.
    pub tensors: Vec<TensorPlan>,
    /// Tensors whose rows did not split into the chosen type's blocks (a fallback type used).
    pub n_fallback: usize,
    /// Tensor data bytes in the input.
    pub input_tensor_bytes: u64,
    /// Tensor data bytes in the output.
    pub output_tensor_bytes: u64,
    /// Size of the output file.
    pub output_file_bytes: u64,
}

/// The values of a tensor as f32 (F32, F16 and BF16 inputs); F32 data is borrowed when aligned.
fn to_f32<'a>(t: &TensorInfo, bytes: &'a [u8]) -> Result<Cow<'a, [f32]>> {
    let half = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
    Ok(match t.ty {
        GgmlType::F32 => match bytemuck::try_cast_slice::<u8, f32>(bytes) {
            Ok(v) if cfg!(target_endian = "little") => Cow::Borrowed(v),
            _ => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        },
        GgmlType::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_bits(half(c)).to_f32())
            .collect(),
        GgmlType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_bits(half(c)).to_f32())
            .collect(),
        ty => {
            return Err(EngineError::BadTensor {
                name: t.name.clone(),
                reason: format!("requantizing from type {ty} is not supported"),
            })
        }
    })
}

/// Quantizes one tensor to `to` with the kernels' weight quantizers.
fn convert(
    kernels: &Kernels,
    pool: &ThreadPool,
    t: &TensorInfo,
    bytes: &[u8],
    to: GgmlType,
) -> Result<Vec<u8>> {
    let x = to_f32(t, bytes)?;
    let cols = t.row_len() as usize;
    let bad = |reason: String| EngineError::BadTensor {
        name: t.name.clone(),
        reason,
    };
    let rows = t.n_rows() as usize;
    let row_bytes = to
        .row_bytes(cols as u64)
        .ok_or_else(|| bad(format!("rows of {cols} values do not fit type {to}")))?;
    let mut out = vec![0u8; rows * row_bytes as usize];
    quantize_matrix(kernels, pool, to, &x, cols, &mut out)?;
    Ok(out)
}

/// Quantizes the GGUF file `input` to `ftype` and writes `output` (through a temporary file
/// next to it, `output` with the extension `.quantizing`). Memory use is one tensor's values
/// and its quantized bytes, beyond the input's mapping. `progress(done, total)` is called with the number of tensors handled so far,
/// once before the first and after each. `n_threads` quantizes rows in parallel (at least 1).
pub fn quantize_file(
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    ftype: FileType,
    n_threads: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<QuantizeReport> {
    let gguf = Gguf::open(input.as_ref())?;
    let (plan, n_fallback) = rules::plan(&gguf, ftype)?;
    // Refuse before any work: requantizing a quantized tensor (llama-quantize's default too).
    if let Some(p) = plan.iter().find(|p| {
        p.from != p.to && !matches!(p.from, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
    }) {
        return Err(EngineError::BadTensor {
            name: p.name.clone(),
            reason: format!(
                "requantizing from type {} to {} is not supported (quantize from an F32, F16 or BF16 file)",
                p.from, p.to
            ),
        });
    }
    let kernels = Kernels::active()?;
    let pool = ThreadPool::new(n_threads.max(1));
    let output = output.as_ref();

    // Output bytes per tensor; converted tensors are first laid out as zeros (from one buffer).
    let sizes = plan
        .iter()
        .map(|p| {
            let t = &gguf.tensors()[p.index];
            p.to.row_bytes(t.row_len())
                .and_then(|r| r.checked_mul(t.n_rows()))
                .ok_or_else(|| EngineError::BadTensor {
                    name: t.name.clone(),
                    reason: format!("shape {:?} does not fit type {}", t.dims, p.to),
                })
        })
        .collect::<Result<Vec<u64>>>()?;
    let max_converted = plan
        .iter()
        .zip(&sizes)
        .filter(|(p, _)| p.from != p.to)
        .map(|(_, &n)| n as usize)
        .max()
        .unwrap_or(0);
    let zeros = vec![0u8; max_converted];

    let mut w = GgufWriter::new();
    for (key, value) in gguf.metadata() {
        if !matches!(
            key,
            "general.quantization_version"
                | "general.file_type"
                | "split.no"
                | "split.count"
                | "split.tensors.count"
        ) {
            w.set(key, value.clone());
        }
    }
    w.set_u32("general.quantization_version", QUANTIZATION_VERSION);
    w.set_u32("general.file_type", ftype.id());
    let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
    for (p, &n) in plan.iter().zip(&sizes) {
        let t = &gguf.tensors()[p.index];
        let data = gguf.tensor_data(t);
        bytes_in += data.len() as u64;
        bytes_out += n;
        let placed = if p.from == p.to {
            data
        } else {
            &zeros[..n as usize]
        };
        w.add_tensor(&t.name, p.to, &t.dims, placed)?;
    }

    // Header, copied tensors and zeros first; then each converted tensor at its offset, so
    // that memory holds one converted tensor at a time. All in a temporary file renamed into
    // place at the end (removed on error).
    let tmp = output.with_extension("quantizing");
    let total = plan.len();
    let mut fill = || -> Result<u64> {
        progress(0, total);
        let file_bytes = w.write_file(&tmp)?;
        let laid = Gguf::open(&tmp)?;
        let offsets: Vec<u64> = laid
            .tensors()
            .iter()
            .map(|t| laid.data_offset() + t.offset)
            .collect();
        drop(laid);
        let io = |source| GgufError::Io {
            path: tmp.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&tmp)
            .map_err(io)?;
        for (done, (p, &offset)) in plan.iter().zip(&offsets).enumerate() {
            if p.from != p.to {
                let t = &gguf.tensors()[p.index];
                let bytes = convert(kernels, &pool, t, gguf.tensor_data(t), p.to)?;
                file.seek(SeekFrom::Start(offset)).map_err(io)?;
                file.write_all(&bytes).map_err(io)?;
            }
            progress(done + 1, total);
        }
        drop(file);
        std::fs::rename(&tmp, output).map_err(|source| GgufError::Io {
            path: output.to_path_buf(),
            source,
        })?;
        Ok(file_bytes)
    };
    let output_file_bytes = fill().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(QuantizeReport {
        ftype,
        tensors: plan,
        n_fallback,
        input_tensor_bytes: bytes_in,
        output_tensor_bytes: bytes_out,
        output_file_bytes,
    })
}
