//! [`Gpu`]: one device with every kernel module loaded, device buffers, and one method per
//! kernel launch. Each method checks its buffers' sizes against the launch before it launches
//! (a short buffer is a [`CudaError::Shape`], never an out-of-bounds access).
//!
//! Nothing in this module has run on a GPU yet (see `docs/cuda.md`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, PushKernelArg, ValidAsZeroBits,
};

use crate::compile::{self, Arch};
use crate::error::{CudaError, Result};
use crate::geometry;
use crate::layout::{self, MatrixLayout};
use crate::probe;
use crate::source::MODULES;

/// Batches up to this many tokens use the mat-vec kernels (Q8_1 activations, as the CPU path);
/// larger ones the tiled f32 matmul.
pub const MATVEC_MAX_TOKENS: usize = 8;

/// A weight matrix on the device, in its GGUF block layout.
pub struct DeviceWeight {
    /// Tensor name, for errors.
    pub name: String,
    /// Type and geometry.
    pub layout: MatrixLayout,
    /// The bytes.
    pub data: CudaSlice<u8>,
}

/// RoPE parameters as the `rope` kernel takes them (`RopeParams` in `rope.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RopeParams {
    /// Heads per token row.
    pub n_heads: i32,
    /// Values per head.
    pub head_dim: i32,
    /// Rotated dims per head.
    pub n_rot: i32,
    /// 1 for NeoX pairing (i, i + n_rot/2), 0 for adjacent pairs.
    pub neox: i32,
    /// Base frequency.
    pub base: f32,
    /// 1 / linear scaling factor.
    pub freq_scale: f32,
    /// YaRN extrapolation mix (0 = off).
    pub ext_factor: f32,
    /// Magnitude factor.
    pub attn_factor: f32,
    /// YaRN correction dims.
    pub corr0: f32,
    /// See `corr0`.
    pub corr1: f32,
}
// SAFETY: #[repr(C)] plain data matching the kernel's struct field for field.
unsafe impl DeviceRepr for RopeParams {}

/// Attention parameters as `paged_attention` takes them (`AttnParams` in `attention.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AttnParams {
    /// Query heads.
    pub n_head: i32,
    /// KV heads.
    pub n_head_kv: i32,
    /// K head dimension.
    pub head_dim_k: i32,
    /// V head dimension.
    pub head_dim_v: i32,
    /// Tokens per KV block.
    pub block_size: i32,
    /// Width of each token's table row.
    pub max_blocks: i32,
    /// f16 values per K slot (n_head_kv · head_dim_k).
    pub k_row: i32,
    /// f16 values per V slot.
    pub v_row: i32,
    /// Score scale.
    pub kq_scale: f32,
    /// Soft-capping of scores (0 = none).
    pub softcap: f32,
    /// Sliding window in tokens (0 = none).
    pub window: i32,
}
// SAFETY: as for RopeParams.
unsafe impl DeviceRepr for AttnParams {}

/// One CUDA device, its stream, and every kernel loaded.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: Arch,
    functions: HashMap<&'static str, CudaFunction>,
}

fn need<T>(what: &str, buf: &CudaSlice<T>, n: usize) -> Result<()> {
    if buf.len() < n {
        return Err(CudaError::Shape(format!(
            "{what}: buffer holds {} values, the launch needs {n}",
            buf.len()
        )));
    }
    Ok(())
}

fn int(what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| CudaError::Shape(format!("{what} = {v} does not fit an i32")))
}

impl Gpu {
    /// Opens device `ordinal`: checks that the driver, the device and NVRTC are present (an
    /// error naming what is missing otherwise), creates the context, compiles (or loads from
    /// the PTX cache) every module for the device's compute capability and loads its kernels.
    pub fn new(ordinal: usize) -> Result<Gpu> {
        Gpu::with_cache(ordinal, compile::default_cache_dir())
    }

    /// As [`Gpu::new`] with an explicit PTX cache directory (`None`: no cache).
    pub fn with_cache(ordinal: usize, cache: Option<PathBuf>) -> Result<Gpu> {
        let count = probe::device_count()?;
        if ordinal >= count as usize {
            return Err(CudaError::BadOrdinal { ordinal, count });
        }
        probe::ensure_nvrtc()?;
        let ctx = CudaContext::new(ordinal)?;
        let (major, minor) = ctx.compute_capability()?;
        let arch = Arch {
            major: major as u32,
            minor: minor as u32,
        };
        let mut functions = HashMap::new();
        for m in MODULES {
            let ptx = compile::load_or_compile(m, arch, cache.as_deref())?;
            let module = ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx))?;
            for &k in m.kernels {
                functions.insert(k, module.load_function(k)?);
            }
        }
        let stream = ctx.default_stream();
        Ok(Gpu {
            ctx,
            stream,
            arch,
            functions,
        })
    }

    /// The device's name.
    pub fn name(&self) -> Result<String> {
        Ok(self.ctx.name()?)
    }

    /// The compute capability the kernels were compiled for.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The stream every launch goes to.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits for every launch so far.
    pub fn synchronize(&self) -> Result<()> {
        Ok(self.stream.synchronize()?)
    }

    /// Copies `data` to a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, data: &[T]) -> Result<CudaSlice<T>> {
        Ok(self.stream.clone_htod(data)?)
    }

    /// Copies `data` into the start of `dst`.
    pub fn upload_into<T: DeviceRepr>(&self, data: &[T], dst: &mut CudaSlice<T>) -> Result<()> {
        need("upload", dst, data.len())?;
        let mut view = dst.slice_mut(..data.len());
        Ok(self.stream.memcpy_htod(data, &mut view)?)
    }

    /// A zeroed device buffer of `n` values.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, n: usize) -> Result<CudaSlice<T>> {
        Ok(self.stream.alloc_zeros(n.max(1))?)
    }

    /// The first `n` values of `src`, copied back to the host.
    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        src: &CudaSlice<T>,
        n: usize,
    ) -> Result<Vec<T>> {
        need("download", src, n)?;
        Ok(self.stream.clone_dtoh(&src.slice(..n))?)
    }

    /// Copies rows `rows` (each `width` values) of `src` into consecutive rows of `dst`.
    pub fn copy_rows(
        &self,
        src: &CudaSlice<f32>,
        rows: &[usize],
        width: usize,
        dst: &mut CudaSlice<f32>,
    ) -> Result<()> {
        need("copy_rows", dst, rows.len() * width)?;
        for (i, &r) in rows.iter().enumerate() {
            need("copy_rows", src, (r + 1) * width)?;
            let from = src.slice(r * width..(r + 1) * width);
            let mut to = dst.slice_mut(i * width..(i + 1) * width);
            self.stream.memcpy_dtod(&from, &mut to)?;
        }
        Ok(())
    }

    /// Uploads the GGUF tensor `name` (`rows × cols` of ggml type `ty`, bytes `data`) as is.
    pub fn upload_weight(
        &self,
        name: &str,
        ty: nanorun_formats::GgmlType,
        rows: usize,
        cols: usize,
        data: &[u8],
    ) -> Result<DeviceWeight> {
        let layout = layout::matrix_layout(name, ty, rows, cols, data.len())?;
        Ok(DeviceWeight {
            name: name.to_string(),
            layout,
            data: self.upload(data)?,
        })
    }

    fn func(&self, name: &str) -> Result<&CudaFunction> {
        self.functions
            .get(name)
            .ok_or_else(|| CudaError::Shape(format!("kernel '{name}' is not loaded")))
    }

    /// `out[t][r] = W[r,:]·x[t,:]` for `n_tokens` rows of `x`. Small batches quantize `x` to
    /// Q8_1 into `q8` (at least [`layout::q8_1_bytes`] bytes) and use the warp-per-row mat-vec;
    /// larger ones the tiled f32 matmul.
    pub fn linear(
        &self,
        w: &DeviceWeight,
        x: &CudaSlice<f32>,
        n_tokens: usize,
        q8: &mut CudaSlice<u8>,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let l = &w.layout;
        need(&w.name, x, n_tokens * l.cols)?;
        need(&w.name, out, n_tokens * l.rows)?;
        let (row_bytes, rows, cols) = (
            l.row_bytes as u64,
            int("rows", l.rows)?,
            int("cols", l.cols)?,
        );
        if n_tokens > MATVEC_MAX_TOKENS {
            let f = self.func(&format!("mm_{}", l.ty.suffix()))?;
            let n_t = int("tokens", n_tokens)?;
            let cfg = geometry::matmul(l.rows, n_tokens)?.config();
            let mut b = self.stream.launch_builder(f);
            b.arg(&w.data)
                .arg(&row_bytes)
                .arg(&rows)
                .arg(&cols)
                .arg(x)
                .arg(&n_t)
                .arg(out);
            // SAFETY: argument types match `mm_*`; sizes checked above.
            unsafe { b.launch(cfg) }?;
            return Ok(());
        }
        let f = self.func(&format!("mmv_{}", l.ty.suffix()))?;
        let cfg = geometry::matvec(l.rows, n_tokens)?.config();
        if l.ty.quantized() {
            self.quantize_q8_1(x, n_tokens * l.cols, q8)?;
            let mut b = self.stream.launch_builder(f);
            b.arg(&w.data)
                .arg(&row_bytes)
                .arg(&rows)
                .arg(&cols)
                .arg(&*q8)
                .arg(out);
            // SAFETY: argument types match `mmv_*`; q8 was sized by quantize_q8_1.
            unsafe { b.launch(cfg) }?;
        } else {
            let mut b = self.stream.launch_builder(f);
            b.arg(&w.data)
                .arg(&row_bytes)
                .arg(&rows)
                .arg(&cols)
                .arg(x)
                .arg(out);
            // SAFETY: argument types match `mmv_f32` / `mmv_f16`.
            unsafe { b.launch(cfg) }?;
        }
        Ok(())
    }

    /// The first `n` values of `x` (`n % 32 == 0`) to Q8_1 blocks in `out`.
    pub fn quantize_q8_1(
        &self,
        x: &CudaSlice<f32>,
        n: usize,
        out: &mut CudaSlice<u8>,
    ) -> Result<()> {
        if !n.is_multiple_of(32) {
            return Err(CudaError::Shape(format!(
                "quantize_q8_1: {n} values is not whole blocks"
            )));
        }
        need("quantize_q8_1", x, n)?;
        need("quantize_q8_1", out, layout::q8_1_bytes(1, n))?;
        let n_blocks = int("blocks", n / 32)?;
        let cfg = geometry::quantize_q8_1(n / 32)?.config();
        let mut b = self.stream.launch_builder(self.func("quantize_q8_1")?);
        b.arg(x).arg(out).arg(&n_blocks);
        // SAFETY: argument types match; sizes checked.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }

    /// Rows `ids` of `w`, dequantized and scaled, into `out` (`ids.len() × cols`).
    pub fn get_rows(
        &self,
        w: &DeviceWeight,
        ids: &CudaSlice<u32>,
        n_ids: usize,
        scale: f32,
        out: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let l = &w.layout;
        need("get_rows", ids, n_ids)?;
        need("get_rows", out, n_ids * l.cols)?;
        let (row_bytes, cols) = (l.row_bytes as u64, int("cols", l.cols)?);
        let cfg = geometry::per_row(n_ids)?.config();
        let mut b = self
            .stream
            .launch_builder(self.func(&format!("get_rows_{}", l.ty.suffix()))?);
        b.arg(&w.data)
            .arg(&row_bytes)
            .arg(&cols)
            .arg(ids)
            .arg(&scale)
            .arg(out);
        // SAFETY: argument types match `get_rows_*`; the caller checked ids < rows.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }
}

#[path = "device_ops.rs"]
mod ops;
