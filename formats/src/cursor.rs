//! A bounds-checked little-endian reader over a byte slice, reporting offsets in its errors.

use crate::error::{short, GgufError, Result};

/// Reads little-endian fields from a byte slice; every read is bounds-checked.
#[derive(Clone)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.pos as u64
    }

    pub(crate) fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub(crate) fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    pub(crate) fn read_bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n as u64 > self.remaining() {
            return Err(GgufError::Truncated {
                what: what.to_string(),
                offset: self.offset(),
                needed: n as u64,
                available: self.remaining(),
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn read_array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let b = self.read_bytes(N, what)?;
        Ok(b.try_into().expect("slice of N bytes"))
    }

    pub(crate) fn read_u32(&mut self, what: &str) -> Result<u32> {
        self.read_array(what).map(u32::from_le_bytes)
    }

    pub(crate) fn read_u64(&mut self, what: &str) -> Result<u64> {
        self.read_array(what).map(u64::from_le_bytes)
    }

    /// A GGUF string: u64 length (bounded by the bytes left) then the bytes.
    pub(crate) fn read_string(&mut self, what: &str) -> Result<&'a [u8]> {
        let at = self.offset();
        let len = self.read_u64(what)?;
        if len > self.remaining() {
            return Err(GgufError::Implausible {
                what: format!("string length of {what}"),
                value: len,
                offset: at,
                file_len: self.len(),
            });
        }
        self.read_bytes(len as usize, what)
    }

    /// A GGUF string that must be valid UTF-8 (keys and tensor names).
    pub(crate) fn read_utf8(&mut self, what: &str) -> Result<String> {
        let at = self.offset();
        let b = self.read_string(what)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => Err(GgufError::BadKey {
                key: short(&String::from_utf8_lossy(&b[..b.len().min(120)])),
                offset: at,
                reason: format!("{what} is not valid UTF-8 (byte {})", e.valid_up_to()),
            }),
        }
    }
}
