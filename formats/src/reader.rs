//! The GGUF reader: mmap, validation, typed metadata, zero-copy tensor views.
//!
//! Validation follows llama.cpp's `gguf_init_from_file_impl` and model loader: magic, version,
//! counts and lengths bounded by the bytes left before anything is allocated, no duplicate keys
//! or tensor names, `general.alignment` a power-of-two `u32`, at most 4 dimensions, row lengths
//! a multiple of the block size, tensor offsets equal to the running sum of padded sizes, and
//! every tensor's bytes inside the file.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use crate::cursor::Cursor;
use crate::error::{short, GgufError, Result};
use crate::ggml_type::GgmlType;
use crate::metadata::{MetadataArray, MetadataValue, StringArray, ValueType};

/// `GGUF` as a little-endian u32.
pub const GGUF_MAGIC: u32 = 0x4655_4747;
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const GGUF_DEFAULT_ALIGNMENT: u64 = 32;
/// llama.cpp's `GGML_MAX_NAME`: a tensor name must be shorter than this.
pub const MAX_TENSOR_NAME: usize = 64;
/// llama.cpp's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;

/// One tensor-info record.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Element type.
    pub ty: GgmlType,
    /// Shape in ggml order: `dims[0]` is the contiguous row length.
    pub dims: Vec<u64>,
    /// Offset of the tensor's bytes relative to the start of the data section.
    pub offset: u64,
    /// Bytes of tensor data (unpadded).
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Row length (`dims[0]`, 1 for a zero-dimensional tensor).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows: the product of every dimension after the first.
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }
}

enum Storage {
    /// The file's map, and the file for positioned reads ([`Gguf::read_at`]).
    Mapped(memmap2::Mmap, File),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m, _) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// An opened, validated GGUF file.
pub struct Gguf {
    storage: Storage,
    meta: Parsed,
}

impl std::fmt::Debug for Gguf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("version", &self.meta.version)
            .field("n_kv", &self.meta.metadata.len())
            .field("n_tensors", &self.meta.tensors.len())
            .field("file_len", &self.file_len())
            .finish()
    }
}

impl Gguf {
    /// Maps and validates the file at `path`. Tensor data stay on disk until touched.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; like every mmap-based loader we rely on the file not
        // being truncated while it is open.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Gguf::from_storage(Storage::Mapped(map, file))
    }

    /// Validates an in-memory GGUF image.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Gguf> {
        Gguf::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(storage: Storage) -> Result<Gguf> {
        let meta = parse(storage.bytes())?;
        Ok(Gguf { storage, meta })
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.meta.version
    }

    /// The alignment of the data section and of every tensor.
    pub fn alignment(&self) -> u64 {
        self.meta.alignment
    }

    /// Absolute file offset of the data section.
    pub fn data_offset(&self) -> u64 {
        self.meta.data_offset
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.storage.bytes().len() as u64
    }

    /// The whole file image.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// Tells the OS that this process no longer needs the pages of `len` bytes at `offset`
    /// (after copying them elsewhere): they leave its resident memory and are read back from
    /// the file if touched again. A hint: does nothing for an in-memory image, for a range
    /// outside the file, or where the OS refuses.
    pub fn release(&self, offset: usize, len: usize) {
        let Storage::Mapped(map, _) = &self.storage else {
            return;
        };
        // Whole pages inside the range only (its first and last pages may hold other tensors),
        // counted in 64 KiB, a multiple of every page size in use (4, 16, 64 KiB).
        let page = 64 * 1024;
        let start = offset.next_multiple_of(page);
        let end = offset.saturating_add(len).min(map.len()) / page * page;
        if start >= end {
            return;
        }
        // SAFETY: the map is a read-only file mapping, so dropping pages loses nothing: the
        // contents seen through existing slices stay the same (reread from the file).
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
        };
    }

    /// Copies the `out.len()` bytes at `offset` into `out` by a positioned read of the file,
    /// without mapping them into this process (from the image itself when it is in memory, or
    /// if the read fails). For scattered small reads of data whose pages were released
    /// ([`Gguf::release`]), such as token embedding rows: reading those through the map brings
    /// back a 64 KiB window around each touched page (the kernel's fault-around), which kept
    /// ~45 MiB of embedding pages resident after a 512-token prompt.
    ///
    /// # Panics
    /// If the range is not inside the file (as slicing [`Gguf::bytes`] would).
    pub fn read_at(&self, offset: usize, out: &mut [u8]) {
        let bytes = self.bytes();
        let end = offset
            .checked_add(out.len())
            .filter(|&end| end <= bytes.len())
            .expect("read_at: range inside the file");
        #[cfg(unix)]
        if let Storage::Mapped(_, file) = &self.storage {
            use std::os::unix::fs::FileExt;
            if file.read_exact_at(out, offset as u64).is_ok() {
                return;
            }
        }
        out.copy_from_slice(&bytes[offset..end]);
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> impl ExactSizeIterator<Item = (&str, &MetadataValue)> + '_ {
        self.meta.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.meta
            .key_index
            .get(key)
            .map(|&i| &self.meta.metadata[i].1)
    }

    /// The value of `key`, or an error naming the key.
    pub fn require(&self, key: &str) -> Result<&MetadataValue> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_string(),
        })
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// Tensor-info records in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.meta.tensors
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.meta
            .tensor_index
            .get(name)
            .map(|&i| &self.meta.tensors[i])
    }

    /// The bytes of a tensor (a zero-copy view into the map). `info` must come from this file.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.meta.data_offset + info.offset) as usize;
        &self.storage.bytes()[start..start + info.n_bytes as usize]
    }
}

/// Typed accessors. Integer getters accept any stored integer type whose value fits.
impl Gguf {
    fn wrong_type(key: &str, expected: &str, found: &MetadataValue) -> GgufError {
        GgufError::WrongType {
            key: key.to_string(),
            expected: expected.to_string(),
            found: found.type_description(),
        }
    }

    fn integer<T: TryFrom<i128>>(&self, key: &str, expected: &str) -> Result<Option<T>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_integer()
            .and_then(|i| T::try_from(i).ok())
            .map(Some)
            .ok_or_else(|| Gguf::wrong_type(key, expected, v))
    }

    /// `key` as `u32`; absent → `Ok(None)`.
    pub fn get_opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.integer(key, "u32")
    }
    /// `key` as `i32`; absent → `Ok(None)`.
    pub fn get_opt_i32(&self, key: &str) -> Result<Option<i32>> {
        self.integer(key, "i32")
    }
    /// `key` as `u64`; absent → `Ok(None)`.
    pub fn get_opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.integer(key, "u64")
    }

    /// `key` as `f32` (an `f64` value is narrowed); absent → `Ok(None)`.
    pub fn get_opt_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::F32(v)) => Ok(Some(*v)),
            Some(MetadataValue::F64(v)) => Ok(Some(*v as f32)),
            Some(v) => Err(Gguf::wrong_type(key, "f32", v)),
        }
    }

    /// `key` as `bool`; absent → `Ok(None)`.
    pub fn get_opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::Bool(v)) => Ok(Some(*v)),
            Some(v) => Err(Gguf::wrong_type(key, "bool", v)),
        }
    }

    /// `key` as a UTF-8 string; absent → `Ok(None)`.
    pub fn get_opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(MetadataValue::String(s)) => {
                std::str::from_utf8(s)
                    .map(Some)
                    .map_err(|e| GgufError::WrongType {
                        key: key.to_string(),
                        expected: "UTF-8 string".into(),
                        found: format!("string with invalid UTF-8 at byte {}", e.valid_up_to()),
                    })
            }
            Some(v) => Err(Gguf::wrong_type(key, "string", v)),
        }
    }

    fn required<T>(&self, key: &str, v: Result<Option<T>>) -> Result<T> {
        v?.ok_or_else(|| GgufError::MissingKey {
            key: key.to_string(),
        })
    }

    /// `key` as `u32`.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.required(key, self.get_opt_u32(key))
    }
    /// `key` as `i32`.
    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.required(key, self.get_opt_i32(key))
    }
    /// `key` as `u64`.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.required(key, self.get_opt_u64(key))
    }
    /// `key` as `f32`.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.required(key, self.get_opt_f32(key))
    }
    /// `key` as `bool`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.required(key, self.get_opt_bool(key))
    }
    /// `key` as a UTF-8 string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.required(key, self.get_opt_str(key))
    }

    /// `key` as an array of any element type.
    pub fn get_array(&self, key: &str) -> Result<&MetadataArray> {
        match self.require(key)? {
            MetadataValue::Array(a) => Ok(a),
            v => Err(Gguf::wrong_type(key, "array", v)),
        }
    }

    fn typed_array<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        pick: impl FnOnce(&'a MetadataArray) -> Option<T>,
    ) -> Result<T> {
        let v = self.require(key)?;
        match v {
            MetadataValue::Array(a) => pick(a),
            _ => None,
        }
        .ok_or_else(|| Gguf::wrong_type(key, expected, v))
    }

    /// `key` as an array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<&StringArray> {
        self.typed_array(key, "array of string", |a| match a {
            MetadataArray::String(s) => Some(s),
            _ => None,
        })
    }
    /// `key` as an array of `f32`.
    pub fn get_f32_array(&self, key: &str) -> Result<&[f32]> {
        self.typed_array(key, "array of f32", |a| match a {
            MetadataArray::F32(s) => Some(s.as_slice()),
            _ => None,
        })
    }
    /// `key` as an array of `i32`.
    pub fn get_i32_array(&self, key: &str) -> Result<&[i32]> {
        self.typed_array(key, "array of i32", |a| match a {
            MetadataArray::I32(s) => Some(s.as_slice()),
            _ => None,
        })
    }
    /// `key` as an array of `u32`.
    pub fn get_u32_array(&self, key: &str) -> Result<&[u32]> {
        self.typed_array(key, "array of u32", |a| match a {
            MetadataArray::U32(s) => Some(s.as_slice()),
            _ => None,
        })
    }
}

/// Everything parsed from the header: metadata, tensor table and layout.
struct Parsed {
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, MetadataValue)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

/// Smallest possible metadata pair: empty key (8) + type (4) + one-byte value.
const MIN_KV_BYTES: u64 = 13;
/// Smallest possible tensor info: empty name (8) + n_dims (4) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 24;

fn parse(bytes: &[u8]) -> Result<Parsed> {
    let mut c = Cursor::new(bytes);
    let magic = c.read_array::<4>("magic")?;
    if u32::from_le_bytes(magic) != GGUF_MAGIC {
        return Err(GgufError::BadMagic { found: magic });
    }
    let version = c.read_u32("version")?;
    let hint = match version {
        2 | 3 => "",
        1 => " (GGUFv1 is no longer supported; convert the file again)",
        v if v & 0xFFFF == 0 => " (a big-endian file? only little-endian GGUF is supported)",
        _ => " (supported: 2 and 3)",
    };
    if !hint.is_empty() {
        return Err(GgufError::BadVersion { version, hint });
    }
    let counts_at = c.offset();
    let n_tensors = c.read_u64("tensor count")?;
    let n_kv = c.read_u64("metadata count")?;
    let need =
        (n_tensors as u128) * MIN_TENSOR_INFO_BYTES as u128 + (n_kv as u128) * MIN_KV_BYTES as u128;
    if need > c.remaining() as u128 {
        let (what, value) =
            if n_tensors as u128 * MIN_TENSOR_INFO_BYTES as u128 > c.remaining() as u128 {
                ("tensor count", n_tensors)
            } else {
                ("metadata count", n_kv)
            };
        return Err(GgufError::Implausible {
            what: what.into(),
            value,
            offset: counts_at,
            file_len: bytes.len() as u64,
        });
    }

    // Reserve no more than the file could back, whatever the header claims.
    let kv_cap = bounded_capacity::<(String, MetadataValue)>(n_kv, bytes.len());
    let mut metadata = Vec::with_capacity(kv_cap);
    let mut key_index = HashMap::with_capacity(kv_cap);
    for _ in 0..n_kv {
        let at = c.offset();
        let key = c.read_utf8("metadata key")?;
        let shown = short(&key);
        if key_index.contains_key(&key) {
            return Err(GgufError::DuplicateKey {
                key: shown,
                offset: at,
            });
        }
        let type_at = c.offset();
        let type_id = c.read_u32("metadata value type")?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::BadValueType {
            key: shown.clone(),
            type_id,
            offset: type_at,
        })?;
        let value = read_value(&mut c, ty, &shown)?;
        key_index.insert(key.clone(), metadata.len());
        metadata.push((key, value));
    }

    let alignment = match key_index.get("general.alignment").map(|&i| &metadata[i].1) {
        None => GGUF_DEFAULT_ALIGNMENT,
        Some(MetadataValue::U32(a)) if a.is_power_of_two() => *a as u64,
        Some(v) => {
            return Err(GgufError::BadKey {
                key: "general.alignment".into(),
                offset: 0,
                reason: format!(
                    "must be a power-of-two u32, found {} {v}",
                    v.type_description()
                ),
            })
        }
    };

    let tensor_cap = bounded_capacity::<(TensorInfo, u64)>(n_tensors, bytes.len());
    let mut tensors = Vec::with_capacity(tensor_cap);
    let mut tensor_index = HashMap::with_capacity(tensor_cap);
    for _ in 0..n_tensors {
        let info = read_tensor_info(&mut c)?;
        if tensor_index.contains_key(&info.0.name) {
            return Err(bad_tensor(&info.0.name, info.1, "duplicate tensor name"));
        }
        tensor_index.insert(info.0.name.clone(), tensors.len());
        tensors.push(info);
    }

    let file_len = bytes.len() as u64;
    let data_offset = align_up(c.offset(), alignment).ok_or_else(|| GgufError::Implausible {
        what: "data section offset".into(),
        value: c.offset(),
        offset: c.offset(),
        file_len,
    })?;
    let mut expected_offset = 0u64;
    for (info, at) in &tensors {
        if info.offset != expected_offset {
            return Err(bad_tensor(
                &info.name,
                *at,
                format!(
                    "data offset {} is not the running sum of padded tensor sizes ({expected_offset})",
                    info.offset
                ),
            ));
        }
        let end = data_offset
            .checked_add(info.offset)
            .and_then(|s| s.checked_add(info.n_bytes));
        match end {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(bad_tensor(
                    &info.name,
                    *at,
                    format!(
                        "data [{} + {}, {} bytes] lies outside the file ({file_len} bytes)",
                        data_offset, info.offset, info.n_bytes
                    ),
                ))
            }
        }
        expected_offset = align_up(info.n_bytes, alignment)
            .and_then(|padded| expected_offset.checked_add(padded))
            .ok_or_else(|| bad_tensor(&info.name, *at, "tensor sizes overflow"))?;
    }

    Ok(Parsed {
        version,
        alignment,
        data_offset,
        metadata,
        key_index,
        tensors: tensors.into_iter().map(|(t, _)| t).collect(),
        tensor_index,
    })
}

/// How many `T`s to reserve for `n` claimed items so that the reservation stays well below
/// `file_len` bytes; the collection still grows past it for items actually parsed.
fn bounded_capacity<T>(n: u64, file_len: usize) -> usize {
    let budget = file_len / 4 / std::mem::size_of::<T>().max(1);
    (n as usize).min(budget)
}

fn bad_tensor(name: &str, offset: u64, reason: impl Into<String>) -> GgufError {
    GgufError::BadTensor {
        tensor: short(name),
        offset,
        reason: reason.into(),
    }
}

/// Rounds `x` up to a multiple of the power of two `align`; `None` on overflow.
pub(crate) fn align_up(x: u64, align: u64) -> Option<u64> {
    x.checked_add(align - 1).map(|v| v & !(align - 1))
}

fn read_tensor_info(c: &mut Cursor<'_>) -> Result<(TensorInfo, u64)> {
    let at = c.offset();
    let name = c.read_utf8("tensor name")?;
    if name.len() >= MAX_TENSOR_NAME {
        return Err(bad_tensor(
            &name,
            at,
            format!(
                "name is {} bytes; the limit is {}",
                name.len(),
                MAX_TENSOR_NAME - 1
            ),
        ));
    }
    let n_dims = c.read_u32("tensor n_dims")? as usize;
    if n_dims > MAX_DIMS {
        return Err(bad_tensor(
            &name,
            at,
            format!("{n_dims} dimensions; at most {MAX_DIMS} allowed"),
        ));
    }
    let mut dims = Vec::with_capacity(n_dims);
    for _ in 0..n_dims {
        let ne = c.read_u64("tensor dimension")?;
        if ne > i64::MAX as u64 {
            return Err(bad_tensor(
                &name,
                at,
                format!("dimension {ne} is negative as int64"),
            ));
        }
        dims.push(ne);
    }
    let type_id = c.read_u32("tensor type")?;
    let ty = GgmlType::from_id(type_id)
        .ok_or_else(|| bad_tensor(&name, at, format!("unknown ggml type id {type_id}")))?;
    let offset = c.read_u64("tensor data offset")?;

    let n_elements = dims.iter().try_fold(1u64, |acc, &d| {
        acc.checked_mul(d).filter(|&n| n <= i64::MAX as u64)
    });
    if n_elements.is_none() {
        return Err(bad_tensor(
            &name,
            at,
            format!("element count of shape {dims:?} overflows"),
        ));
    }
    let row_len = dims.first().copied().unwrap_or(1);
    let row_bytes = ty.row_bytes(row_len).ok_or_else(|| {
        bad_tensor(
            &name,
            at,
            format!(
                "row length {row_len} is not a multiple of {ty}'s block size {}",
                ty.block_size()
            ),
        )
    })?;
    let n_bytes = dims
        .iter()
        .skip(1)
        .try_fold(row_bytes, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad_tensor(&name, at, format!("byte size of shape {dims:?} overflows")))?;
    Ok((
        TensorInfo {
            name,
            ty,
            dims,
            offset,
            n_bytes,
        },
        at,
    ))
}

fn read_value(c: &mut Cursor<'_>, ty: ValueType, key: &str) -> Result<MetadataValue> {
    let what = || format!("value of '{key}'");
    Ok(match ty {
        ValueType::U8 => MetadataValue::U8(c.read_array::<1>(&what())?[0]),
        ValueType::I8 => MetadataValue::I8(c.read_array::<1>(&what())?[0] as i8),
        ValueType::U16 => MetadataValue::U16(u16::from_le_bytes(c.read_array(&what())?)),
        ValueType::I16 => MetadataValue::I16(i16::from_le_bytes(c.read_array(&what())?)),
        ValueType::U32 => MetadataValue::U32(c.read_u32(&what())?),
        ValueType::I32 => MetadataValue::I32(i32::from_le_bytes(c.read_array(&what())?)),
        ValueType::F32 => MetadataValue::F32(f32::from_le_bytes(c.read_array(&what())?)),
        ValueType::Bool => MetadataValue::Bool(read_bool(c, key)?),
        ValueType::String => MetadataValue::String(c.read_string(&what())?.to_vec()),
        ValueType::U64 => MetadataValue::U64(c.read_u64(&what())?),
        ValueType::I64 => MetadataValue::I64(i64::from_le_bytes(c.read_array(&what())?)),
        ValueType::F64 => MetadataValue::F64(f64::from_le_bytes(c.read_array(&what())?)),
        ValueType::Array => MetadataValue::Array(read_array(c, key)?),
    })
}

fn read_bool(c: &mut Cursor<'_>, key: &str) -> Result<bool> {
    let at = c.offset();
    match c.read_array::<1>(&format!("value of '{key}'"))?[0] {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(GgufError::BadKey {
            key: key.to_string(),
            offset: at,
            reason: format!("bool byte is {b}, not 0 or 1"),
        }),
    }
}

fn read_array(c: &mut Cursor<'_>, key: &str) -> Result<MetadataArray> {
    let at = c.offset();
    let type_id = c.read_u32("array element type")?;
    let elem = ValueType::from_id(type_id).ok_or_else(|| GgufError::BadValueType {
        key: key.to_string(),
        type_id,
        offset: at,
    })?;
    if elem == ValueType::Array {
        return Err(GgufError::BadKey {
            key: key.to_string(),
            offset: at,
            reason: "nested arrays are not supported".into(),
        });
    }
    let count_at = c.offset();
    let count = c.read_u64("array length")?;
    if (count as u128) * elem.min_size() as u128 > c.remaining() as u128 {
        return Err(GgufError::Implausible {
            what: format!("length of array '{key}'"),
            value: count,
            offset: count_at,
            file_len: c.len(),
        });
    }
    let n = count as usize;
    let what = format!("elements of array '{key}'");
    macro_rules! fixed {
        ($variant:ident, $t:ty) => {{
            const W: usize = std::mem::size_of::<$t>();
            let raw = c.read_bytes(n * W, &what)?;
            MetadataArray::$variant(
                raw.chunks_exact(W)
                    .map(|b| <$t>::from_le_bytes(b.try_into().expect("chunk of W bytes")))
                    .collect(),
            )
        }};
    }
    Ok(match elem {
        ValueType::U8 => MetadataArray::U8(c.read_bytes(n, &what)?.to_vec()),
        ValueType::I8 => fixed!(I8, i8),
        ValueType::U16 => fixed!(U16, u16),
        ValueType::I16 => fixed!(I16, i16),
        ValueType::U32 => fixed!(U32, u32),
        ValueType::I32 => fixed!(I32, i32),
        ValueType::F32 => fixed!(F32, f32),
        ValueType::U64 => fixed!(U64, u64),
        ValueType::I64 => fixed!(I64, i64),
        ValueType::F64 => fixed!(F64, f64),
        ValueType::Bool => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_bool(c, key)?);
            }
            MetadataArray::Bool(v)
        }
        ValueType::String => {
            // Two passes: measure, then copy into one buffer.
            let start = c.clone();
            let mut total = 0usize;
            for _ in 0..n {
                total += c.read_string(&what)?.len();
            }
            *c = start;
            let mut s = StringArray::with_capacity(n, total);
            for _ in 0..n {
                s.push(c.read_string(&what)?);
            }
            MetadataArray::String(s)
        }
        ValueType::Array => unreachable!("rejected above"),
    })
}
