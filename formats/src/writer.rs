//! The GGUF writer: metadata in insertion order, tensor infos, and the data section with every
//! tensor padded to the alignment — the layout llama.cpp and gguf-py write, so that
//! read → write → read reproduces a file byte for byte.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use crate::error::{GgufError, Result};
use crate::ggml_type::GgmlType;
use crate::metadata::{MetadataArray, MetadataValue};
use crate::reader::{
    align_up, Gguf, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS, MAX_TENSOR_NAME,
};

struct PendingTensor<'a> {
    name: String,
    ty: GgmlType,
    dims: Vec<u64>,
    data: Cow<'a, [u8]>,
}

/// Builds a GGUF file: metadata pairs and tensors, written in the order they were added.
pub struct GgufWriter<'a> {
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<PendingTensor<'a>>,
}

impl Default for GgufWriter<'_> {
    fn default() -> Self {
        GgufWriter::new()
    }
}

impl<'a> GgufWriter<'a> {
    /// An empty GGUF v3 file.
    pub fn new() -> GgufWriter<'a> {
        GgufWriter {
            version: 3,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// A writer holding every metadata pair and tensor of `gguf` (tensor data borrowed).
    pub fn from_gguf(gguf: &'a Gguf) -> GgufWriter<'a> {
        let mut w = GgufWriter::new();
        w.version = gguf.version();
        w.metadata = gguf
            .metadata()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        w.tensors = gguf
            .tensors()
            .iter()
            .map(|t| PendingTensor {
                name: t.name.clone(),
                ty: t.ty,
                dims: t.dims.clone(),
                data: Cow::Borrowed(gguf.tensor_data(t)),
            })
            .collect();
        w
    }

    /// Sets the GGUF version written (2 or 3; the layouts are identical).
    pub fn set_version(&mut self, version: u32) -> Result<()> {
        if !(2..=3).contains(&version) {
            return Err(GgufError::InvalidWrite(format!(
                "version {version} (supported: 2, 3)"
            )));
        }
        self.version = version;
        Ok(())
    }

    /// Sets `key` to `value`, replacing an earlier value in place (its position is kept).
    pub fn set(&mut self, key: &str, value: MetadataValue) {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
    }

    /// Removes `key` if present.
    pub fn remove(&mut self, key: &str) {
        self.metadata.retain(|(k, _)| k != key);
    }

    /// Sets a string value.
    pub fn set_str(&mut self, key: &str, value: &str) {
        self.set(key, MetadataValue::String(value.as_bytes().to_vec()));
    }

    /// Sets a `u32` value.
    pub fn set_u32(&mut self, key: &str, value: u32) {
        self.set(key, MetadataValue::U32(value));
    }

    /// Sets an `f32` value.
    pub fn set_f32(&mut self, key: &str, value: f32) {
        self.set(key, MetadataValue::F32(value));
    }

    /// Sets an array value.
    pub fn set_array(&mut self, key: &str, value: MetadataArray) {
        self.set(key, MetadataValue::Array(value));
    }

    /// Adds a tensor. `dims` is in ggml order (`dims[0]` is the row length); `data` must hold
    /// exactly the tensor's bytes.
    pub fn add_tensor(
        &mut self,
        name: &str,
        ty: GgmlType,
        dims: &[u64],
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<()> {
        let data = data.into();
        let bad = |why: String| GgufError::InvalidWrite(format!("tensor '{name}': {why}"));
        if name.len() >= MAX_TENSOR_NAME {
            return Err(bad(format!(
                "name longer than {} bytes",
                MAX_TENSOR_NAME - 1
            )));
        }
        if dims.len() > MAX_DIMS {
            return Err(bad(format!(
                "{} dimensions (at most {MAX_DIMS})",
                dims.len()
            )));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(bad("duplicate name".into()));
        }
        let row = dims.first().copied().unwrap_or(1);
        let expected = ty
            .row_bytes(row)
            .and_then(|r| dims.iter().skip(1).try_fold(r, |a, &d| a.checked_mul(d)))
            .ok_or_else(|| bad(format!("shape {dims:?} does not fit type {ty}")))?;
        if expected != data.len() as u64 {
            return Err(bad(format!(
                "{} data bytes for shape {dims:?} of {ty}, expected {expected}",
                data.len()
            )));
        }
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            ty,
            dims: dims.to_vec(),
            data,
        });
        Ok(())
    }

    fn alignment(&self) -> Result<u64> {
        match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => Ok(GGUF_DEFAULT_ALIGNMENT),
            Some((_, MetadataValue::U32(a))) if a.is_power_of_two() => Ok(*a as u64),
            Some((_, v)) => Err(GgufError::InvalidWrite(format!(
                "general.alignment must be a power-of-two u32, not {} {v}",
                v.type_description()
            ))),
        }
    }

    /// Writes the whole file to `out`; returns the number of bytes written.
    pub fn write_to(&self, out: &mut impl Write) -> Result<u64> {
        let alignment = self.alignment()?;
        let mut w = CountingWriter {
            inner: out,
            count: 0,
        };
        w.put(&GGUF_MAGIC.to_le_bytes())?;
        w.put(&self.version.to_le_bytes())?;
        w.put(&(self.tensors.len() as u64).to_le_bytes())?;
        w.put(&(self.metadata.len() as u64).to_le_bytes())?;
        for (key, value) in &self.metadata {
            w.string(key.as_bytes())?;
            w.put(&(value.value_type() as u32).to_le_bytes())?;
            write_value(&mut w, value)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            w.string(t.name.as_bytes())?;
            w.put(&(t.dims.len() as u32).to_le_bytes())?;
            for d in &t.dims {
                w.put(&d.to_le_bytes())?;
            }
            w.put(&t.ty.id().to_le_bytes())?;
            w.put(&offset.to_le_bytes())?;
            offset += align_up(t.data.len() as u64, alignment).expect("size fits");
        }
        // Vocab-only files (no tensors) end right after the header, as llama.cpp writes them.
        if !self.tensors.is_empty() {
            w.pad(alignment)?;
        }
        for t in &self.tensors {
            w.put(&t.data)?;
            w.pad(alignment)?;
        }
        w.inner.flush()?;
        Ok(w.count)
    }

    /// Writes the file to `path` (through a temporary file renamed into place).
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<u64> {
        let path = path.as_ref();
        let tmp = path.with_extension("partial");
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let n = self.write_to(&mut out)?;
        drop(out);
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(n)
    }
}

struct CountingWriter<'w, W: Write> {
    inner: &'w mut W,
    count: u64,
}

impl<W: Write> CountingWriter<'_, W> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.inner.write_all(b)?;
        self.count += b.len() as u64;
        Ok(())
    }

    fn string(&mut self, s: &[u8]) -> Result<()> {
        self.put(&(s.len() as u64).to_le_bytes())?;
        self.put(s)
    }

    fn pad(&mut self, alignment: u64) -> Result<()> {
        const ZEROS: [u8; 64] = [0; 64];
        let mut n = align_up(self.count, alignment).expect("offset fits") - self.count;
        while n > 0 {
            let k = n.min(ZEROS.len() as u64);
            self.put(&ZEROS[..k as usize])?;
            n -= k;
        }
        Ok(())
    }
}

fn write_value<W: Write>(w: &mut CountingWriter<'_, W>, v: &MetadataValue) -> Result<()> {
    match v {
        MetadataValue::U8(x) => w.put(&[*x]),
        MetadataValue::I8(x) => w.put(&x.to_le_bytes()),
        MetadataValue::U16(x) => w.put(&x.to_le_bytes()),
        MetadataValue::I16(x) => w.put(&x.to_le_bytes()),
        MetadataValue::U32(x) => w.put(&x.to_le_bytes()),
        MetadataValue::I32(x) => w.put(&x.to_le_bytes()),
        MetadataValue::F32(x) => w.put(&x.to_le_bytes()),
        MetadataValue::Bool(x) => w.put(&[*x as u8]),
        MetadataValue::String(s) => w.string(s),
        MetadataValue::U64(x) => w.put(&x.to_le_bytes()),
        MetadataValue::I64(x) => w.put(&x.to_le_bytes()),
        MetadataValue::F64(x) => w.put(&x.to_le_bytes()),
        MetadataValue::Array(a) => write_array(w, a),
    }
}

fn write_array<W: Write>(w: &mut CountingWriter<'_, W>, a: &MetadataArray) -> Result<()> {
    w.put(&(a.element_type() as u32).to_le_bytes())?;
    w.put(&(a.len() as u64).to_le_bytes())?;
    macro_rules! each {
        ($v:expr) => {{
            for x in $v {
                w.put(&x.to_le_bytes())?;
            }
            Ok(())
        }};
    }
    match a {
        MetadataArray::U8(v) => w.put(v),
        MetadataArray::I8(v) => each!(v),
        MetadataArray::U16(v) => each!(v),
        MetadataArray::I16(v) => each!(v),
        MetadataArray::U32(v) => each!(v),
        MetadataArray::I32(v) => each!(v),
        MetadataArray::F32(v) => each!(v),
        MetadataArray::U64(v) => each!(v),
        MetadataArray::I64(v) => each!(v),
        MetadataArray::F64(v) => each!(v),
        MetadataArray::Bool(v) => {
            for &b in v {
                w.put(&[b as u8])?;
            }
            Ok(())
        }
        MetadataArray::String(s) => {
            for item in s.iter() {
                w.string(item)?;
            }
            Ok(())
        }
    }
}
