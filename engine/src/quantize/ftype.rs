//! The file types (`general.file_type`, llama.cpp's `llama_ftype`) that `nanorun quantize` can
//! write, their names as llama-quantize spells them and their default tensor type.

use std::fmt;

use nanorun_formats::GgmlType;

use crate::error::{EngineError, Result};

/// A whole-file quantization mix, numbered as llama.cpp's `llama_ftype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Every tensor F32 (`LLAMA_FTYPE_ALL_F32` = 0).
    F32,
    /// F16 weights, 1-D tensors F32 (1).
    F16,
    /// Q4_0 weights (2).
    Q4_0,
    /// Q4_1 weights (3).
    Q4_1,
    /// Q8_0 weights (7).
    Q8_0,
    /// Q5_0 weights (8).
    Q5_0,
    /// Q5_1 weights (9).
    Q5_1,
    /// Q2_K mix (10).
    Q2K,
    /// Q3_K small mix (11).
    Q3KS,
    /// Q3_K medium mix (12).
    Q3KM,
    /// Q3_K large mix (13).
    Q3KL,
    /// Q4_K small mix (14).
    Q4KS,
    /// Q4_K medium mix (15).
    Q4KM,
    /// Q5_K small mix (16).
    Q5KS,
    /// Q5_K medium mix (17).
    Q5KM,
    /// Q6_K weights (18).
    Q6K,
    /// BF16 weights, 1-D tensors F32 (32).
    BF16,
}

/// (name, file type), as llama-quantize's `QUANT_OPTIONS` (aliases included).
const NAMES: &[(&str, FileType)] = &[
    ("Q4_0", FileType::Q4_0),
    ("Q4_1", FileType::Q4_1),
    ("Q5_0", FileType::Q5_0),
    ("Q5_1", FileType::Q5_1),
    ("Q2_K", FileType::Q2K),
    ("Q3_K", FileType::Q3KM),
    ("Q3_K_S", FileType::Q3KS),
    ("Q3_K_M", FileType::Q3KM),
    ("Q3_K_L", FileType::Q3KL),
    ("Q4_K", FileType::Q4KM),
    ("Q4_K_S", FileType::Q4KS),
    ("Q4_K_M", FileType::Q4KM),
    ("Q5_K", FileType::Q5KM),
    ("Q5_K_S", FileType::Q5KS),
    ("Q5_K_M", FileType::Q5KM),
    ("Q6_K", FileType::Q6K),
    ("Q8_0", FileType::Q8_0),
    ("F16", FileType::F16),
    ("BF16", FileType::BF16),
    ("F32", FileType::F32),
];

impl FileType {
    /// Every file type, in llama.cpp's numbering order.
    pub const ALL: [FileType; 17] = [
        FileType::F32,
        FileType::F16,
        FileType::Q4_0,
        FileType::Q4_1,
        FileType::Q8_0,
        FileType::Q5_0,
        FileType::Q5_1,
        FileType::Q2K,
        FileType::Q3KS,
        FileType::Q3KM,
        FileType::Q3KL,
        FileType::Q4KS,
        FileType::Q4KM,
        FileType::Q5KS,
        FileType::Q5KM,
        FileType::Q6K,
        FileType::BF16,
    ];

    /// Parses a type name as llama-quantize does (case-insensitive, `Q4_K` = `Q4_K_M`, …).
    pub fn from_name(name: &str) -> Result<FileType> {
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, t)| t)
            .ok_or_else(|| {
                let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
                EngineError::InvalidRequest(format!(
                    "unknown quantization type '{name}' (supported: {})",
                    names.join(", ")
                ))
            })
    }

    /// The canonical name (`Q4_K_M`, `Q8_0`, …).
    pub fn name(self) -> &'static str {
        match self {
            FileType::F32 => "F32",
            FileType::F16 => "F16",
            FileType::Q4_0 => "Q4_0",
            FileType::Q4_1 => "Q4_1",
            FileType::Q8_0 => "Q8_0",
            FileType::Q5_0 => "Q5_0",
            FileType::Q5_1 => "Q5_1",
            FileType::Q2K => "Q2_K",
            FileType::Q3KS => "Q3_K_S",
            FileType::Q3KM => "Q3_K_M",
            FileType::Q3KL => "Q3_K_L",
            FileType::Q4KS => "Q4_K_S",
            FileType::Q4KM => "Q4_K_M",
            FileType::Q5KS => "Q5_K_S",
            FileType::Q5KM => "Q5_K_M",
            FileType::Q6K => "Q6_K",
            FileType::BF16 => "BF16",
        }
    }

    /// llama.cpp's `llama_ftype` number, written as `general.file_type`.
    pub fn id(self) -> u32 {
        match self {
            FileType::F32 => 0,
            FileType::F16 => 1,
            FileType::Q4_0 => 2,
            FileType::Q4_1 => 3,
            FileType::Q8_0 => 7,
            FileType::Q5_0 => 8,
            FileType::Q5_1 => 9,
            FileType::Q2K => 10,
            FileType::Q3KS => 11,
            FileType::Q3KM => 12,
            FileType::Q3KL => 13,
            FileType::Q4KS => 14,
            FileType::Q4KM => 15,
            FileType::Q5KS => 16,
            FileType::Q5KM => 17,
            FileType::Q6K => 18,
            FileType::BF16 => 32,
        }
    }

    /// The tensor type most weights get (llama.cpp's `llama_ftype_get_default_type`).
    pub fn default_type(self) -> GgmlType {
        match self {
            FileType::F32 => GgmlType::F32,
            FileType::F16 => GgmlType::F16,
            FileType::BF16 => GgmlType::BF16,
            FileType::Q4_0 => GgmlType::Q4_0,
            FileType::Q4_1 => GgmlType::Q4_1,
            FileType::Q5_0 => GgmlType::Q5_0,
            FileType::Q5_1 => GgmlType::Q5_1,
            FileType::Q8_0 => GgmlType::Q8_0,
            FileType::Q2K => GgmlType::Q2_K,
            FileType::Q3KS | FileType::Q3KM | FileType::Q3KL => GgmlType::Q3_K,
            FileType::Q4KS | FileType::Q4KM => GgmlType::Q4_K,
            FileType::Q5KS | FileType::Q5KM => GgmlType::Q5_K,
            FileType::Q6K => GgmlType::Q6_K,
        }
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FileType {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<FileType> {
        FileType::from_name(s)
    }
}
