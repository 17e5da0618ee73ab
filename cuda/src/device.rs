//! [`Gpu`]: one device with every kernel module loaded, device buffers ([`DevBuf`]), and one
//! method per kernel launch. Each method checks its buffers' sizes against the launch before
//! it launches (a short buffer is a [`CudaError::Shape`], never an out-of-bounds access).
//!
//! A `Gpu` is a CUDA device ([`Gpu::new`]) or the CPU emulation of one ([`Gpu::emulated`],
//! for tests: the same kernel sources, launches and arguments, run by g++-built code). The
//! CUDA path has not run on a GPU yet (see `docs/cuda.md`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr,
    PushKernelArg, ValidAsZeroBits,
};

use crate::compile::{self, Arch};
use crate::emulate::Emulator;
use crate::error::{CudaError, Result};
use crate::geometry::{self, Launch};
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
    pub data: DevBuf<u8>,
}

/// A buffer of `T` on the device (or in host memory under the emulation).
pub struct DevBuf<T: DeviceRepr> {
    inner: BufInner<T>,
}

enum BufInner<T: DeviceRepr> {
    Cuda(CudaSlice<T>),
    Host(Vec<T>),
}

impl<T: DeviceRepr> DevBuf<T> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match &self.inner {
            BufInner::Cuda(s) => s.len(),
            BufInner::Host(v) => v.len(),
        }
    }

    /// Whether the buffer holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One kernel argument by value: a buffer's device address, a scalar or a parameter struct.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg {
    /// A device (or, emulated, host) address.
    Ptr(u64),
    /// An unsigned 64-bit scalar.
    U64(u64),
    /// A 32-bit integer.
    I32(i32),
    /// A 32-bit float.
    F32(f32),
    /// `RopeParams` by value.
    Rope(RopeParams),
    /// `AttnParams` by value.
    Attn(AttnParams),
}

impl Arg {
    /// A pointer to the value, as cuLaunchKernel's `kernelParams` holds it.
    pub(crate) fn value_ptr(&self) -> *mut std::ffi::c_void {
        let p: *const std::ffi::c_void = match self {
            Arg::Ptr(v) | Arg::U64(v) => (v as *const u64).cast(),
            Arg::I32(v) => (v as *const i32).cast(),
            Arg::F32(v) => (v as *const f32).cast(),
            Arg::Rope(v) => (v as *const RopeParams).cast(),
            Arg::Attn(v) => (v as *const AttnParams).cast(),
        };
        p.cast_mut()
    }
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

/// One CUDA device (its stream and every kernel loaded), or the CPU emulation of one.
pub struct Gpu {
    exec: Exec,
    arch: Arch,
}

enum Exec {
    Cuda {
        ctx: Arc<CudaContext>,
        stream: Arc<CudaStream>,
        functions: HashMap<&'static str, CudaFunction>,
    },
    Emulated(Emulator),
}

/// A buffer of the other kind (a CUDA buffer handed to the emulation or the reverse).
fn foreign() -> CudaError {
    CudaError::Shape("a buffer from another device".into())
}

fn need<T: DeviceRepr>(what: &str, buf: &DevBuf<T>, n: usize) -> Result<()> {
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
            exec: Exec::Cuda {
                ctx,
                stream,
                functions,
            },
            arch,
        })
    }

    /// The CPU emulation of a device, for tests (see the `emulate` module): every module is
    /// built with g++ (C++20) and launches run on OS threads. Needs no GPU, driver or NVRTC.
    pub fn emulated() -> Result<Gpu> {
        Ok(Gpu {
            exec: Exec::Emulated(Emulator::new()?),
            arch: Arch::SM80,
        })
    }

    /// Whether this is the CPU emulation.
    pub fn is_emulated(&self) -> bool {
        matches!(self.exec, Exec::Emulated(_))
    }

    /// The device's name.
    pub fn name(&self) -> Result<String> {
        match &self.exec {
            Exec::Cuda { ctx, .. } => Ok(ctx.name()?),
            Exec::Emulated(_) => Ok("CPU emulation".into()),
        }
    }

    /// The compute capability the kernels were compiled for.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Waits for every launch so far.
    pub fn synchronize(&self) -> Result<()> {
        match &self.exec {
            Exec::Cuda { stream, .. } => Ok(stream.synchronize()?),
            Exec::Emulated(_) => Ok(()),
        }
    }

    /// Copies `data` to a new device buffer.
    pub fn upload<T: DeviceRepr + Clone>(&self, data: &[T]) -> Result<DevBuf<T>> {
        let inner = match &self.exec {
            Exec::Cuda { stream, .. } => BufInner::Cuda(stream.clone_htod(data)?),
            Exec::Emulated(_) => BufInner::Host(data.to_vec()),
        };
        Ok(DevBuf { inner })
    }

    /// Copies `data` into the start of `dst`.
    pub fn upload_into<T: DeviceRepr + Clone>(
        &self,
        data: &[T],
        dst: &mut DevBuf<T>,
    ) -> Result<()> {
        need("upload", dst, data.len())?;
        match (&self.exec, &mut dst.inner) {
            (Exec::Cuda { stream, .. }, BufInner::Cuda(s)) => {
                let mut view = s.slice_mut(..data.len());
                Ok(stream.memcpy_htod(data, &mut view)?)
            }
            (Exec::Emulated(_), BufInner::Host(v)) => {
                v[..data.len()].clone_from_slice(data);
                Ok(())
            }
            _ => Err(foreign()),
        }
    }

    /// A zeroed device buffer of `n` values (at least one).
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits + Default + Clone>(
        &self,
        n: usize,
    ) -> Result<DevBuf<T>> {
        let inner = match &self.exec {
            Exec::Cuda { stream, .. } => BufInner::Cuda(stream.alloc_zeros(n.max(1))?),
            Exec::Emulated(_) => BufInner::Host(vec![T::default(); n.max(1)]),
        };
        Ok(DevBuf { inner })
    }

    /// The first `n` values of `src`, copied back to the host.
    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        src: &DevBuf<T>,
        n: usize,
    ) -> Result<Vec<T>> {
        need("download", src, n)?;
        match (&self.exec, &src.inner) {
            (Exec::Cuda { stream, .. }, BufInner::Cuda(s)) => Ok(stream.clone_dtoh(&s.slice(..n))?),
            (Exec::Emulated(_), BufInner::Host(v)) => Ok(v[..n].to_vec()),
            _ => Err(foreign()),
        }
    }

    /// Copies rows `rows` (each `width` values) of `src` into consecutive rows of `dst`.
    pub fn copy_rows(
        &self,
        src: &DevBuf<f32>,
        rows: &[usize],
        width: usize,
        dst: &mut DevBuf<f32>,
    ) -> Result<()> {
        need("copy_rows", dst, rows.len() * width)?;
        for &r in rows {
            need("copy_rows", src, (r + 1) * width)?;
        }
        match (&self.exec, &src.inner, &mut dst.inner) {
            (Exec::Cuda { stream, .. }, BufInner::Cuda(s), BufInner::Cuda(d)) => {
                for (i, &r) in rows.iter().enumerate() {
                    let from = s.slice(r * width..(r + 1) * width);
                    let mut to = d.slice_mut(i * width..(i + 1) * width);
                    stream.memcpy_dtod(&from, &mut to)?;
                }
                Ok(())
            }
            (Exec::Emulated(_), BufInner::Host(s), BufInner::Host(d)) => {
                for (i, &r) in rows.iter().enumerate() {
                    d[i * width..(i + 1) * width].copy_from_slice(&s[r * width..(r + 1) * width]);
                }
                Ok(())
            }
            _ => Err(foreign()),
        }
    }

    /// The device address of `b` as a kernel argument. Every launch goes to one stream, in
    /// order, so cudarc's per-buffer event tracking is not needed (its guard is dropped).
    pub(crate) fn ptr<T: DeviceRepr>(&self, b: &DevBuf<T>) -> Result<Arg> {
        match (&self.exec, &b.inner) {
            (Exec::Cuda { stream, .. }, BufInner::Cuda(s)) => Ok(Arg::Ptr(s.device_ptr(stream).0)),
            (Exec::Emulated(_), BufInner::Host(v)) => Ok(Arg::Ptr(v.as_ptr() as u64)),
            _ => Err(foreign()),
        }
    }

    /// As [`Gpu::ptr`] for a buffer the kernel writes.
    pub(crate) fn ptr_mut<T: DeviceRepr>(&self, b: &mut DevBuf<T>) -> Result<Arg> {
        match (&self.exec, &mut b.inner) {
            (Exec::Cuda { stream, .. }, BufInner::Cuda(s)) => {
                Ok(Arg::Ptr(s.device_ptr_mut(stream).0))
            }
            (Exec::Emulated(_), BufInner::Host(v)) => Ok(Arg::Ptr(v.as_mut_ptr() as u64)),
            _ => Err(foreign()),
        }
    }

    /// Launches `kernel` with `l` and `args` (in the kernel's parameter order; each caller
    /// checked the buffers' sizes against the launch).
    pub(crate) fn launch(&self, kernel: &str, l: Launch, args: &[Arg]) -> Result<()> {
        match &self.exec {
            Exec::Cuda {
                stream, functions, ..
            } => {
                let f = functions
                    .get(kernel)
                    .ok_or_else(|| CudaError::Shape(format!("kernel '{kernel}' is not loaded")))?;
                let mut b = stream.launch_builder(f);
                for a in args {
                    match a {
                        Arg::Ptr(v) | Arg::U64(v) => b.arg(v),
                        Arg::I32(v) => b.arg(v),
                        Arg::F32(v) => b.arg(v),
                        Arg::Rope(v) => b.arg(v),
                        Arg::Attn(v) => b.arg(v),
                    };
                }
                // SAFETY: the arguments match the kernel's parameters (held against the PTX
                // by the tests) and the buffers hold what the launch reads and writes.
                unsafe { b.launch(l.config()) }?;
                Ok(())
            }
            Exec::Emulated(e) => e.launch(kernel, &l, args),
        }
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

    /// `out[t][r] = W[r,:]·x[t,:]` for `n_tokens` rows of `x`. Small batches quantize `x` to
    /// Q8_1 into `q8` (at least [`layout::q8_1_bytes`] bytes) and use the warp-per-row mat-vec;
    /// larger ones the tiled f32 matmul.
    pub fn linear(
        &self,
        w: &DeviceWeight,
        x: &DevBuf<f32>,
        n_tokens: usize,
        q8: &mut DevBuf<u8>,
        out: &mut DevBuf<f32>,
    ) -> Result<()> {
        let l = &w.layout;
        need(&w.name, x, n_tokens * l.cols)?;
        need(&w.name, out, n_tokens * l.rows)?;
        let head = [
            self.ptr(&w.data)?,
            Arg::U64(l.row_bytes as u64),
            Arg::I32(int("rows", l.rows)?),
            Arg::I32(int("cols", l.cols)?),
        ];
        if n_tokens > MATVEC_MAX_TOKENS {
            let launch = geometry::matmul(l.rows, n_tokens)?;
            let tail = [
                self.ptr(x)?,
                Arg::I32(int("tokens", n_tokens)?),
                self.ptr_mut(out)?,
            ];
            return self.launch(
                &format!("mm_{}", l.ty.suffix()),
                launch,
                &[&head[..], &tail].concat(),
            );
        }
        let launch = geometry::matvec(l.rows, n_tokens)?;
        let act = if l.ty.quantized() {
            self.quantize_q8_1(x, n_tokens * l.cols, q8)?;
            self.ptr(q8)?
        } else {
            self.ptr(x)?
        };
        let tail = [act, self.ptr_mut(out)?];
        self.launch(
            &format!("mmv_{}", l.ty.suffix()),
            launch,
            &[&head[..], &tail].concat(),
        )
    }

    /// The first `n` values of `x` (`n % 32 == 0`) to Q8_1 blocks in `out`.
    pub fn quantize_q8_1(&self, x: &DevBuf<f32>, n: usize, out: &mut DevBuf<u8>) -> Result<()> {
        if !n.is_multiple_of(32) {
            return Err(CudaError::Shape(format!(
                "quantize_q8_1: {n} values is not whole blocks"
            )));
        }
        need("quantize_q8_1", x, n)?;
        need("quantize_q8_1", out, layout::q8_1_bytes(1, n))?;
        let args = [
            self.ptr(x)?,
            self.ptr_mut(out)?,
            Arg::I32(int("blocks", n / 32)?),
        ];
        self.launch("quantize_q8_1", geometry::quantize_q8_1(n / 32)?, &args)
    }

    /// Rows `ids` of `w` (each below `w`'s row count: the caller checks), dequantized and
    /// multiplied by `scale`, into `out` (`n_ids × cols`).
    pub fn get_rows(
        &self,
        w: &DeviceWeight,
        ids: &DevBuf<u32>,
        n_ids: usize,
        scale: f32,
        out: &mut DevBuf<f32>,
    ) -> Result<()> {
        let l = &w.layout;
        need("get_rows", ids, n_ids)?;
        need("get_rows", out, n_ids * l.cols)?;
        let args = [
            self.ptr(&w.data)?,
            Arg::U64(l.row_bytes as u64),
            Arg::I32(int("cols", l.cols)?),
            self.ptr(ids)?,
            Arg::F32(scale),
            self.ptr_mut(out)?,
        ];
        self.launch(
            &format!("get_rows_{}", l.ty.suffix()),
            geometry::per_row(n_ids)?,
            &args,
        )
    }
}

#[path = "device_ops.rs"]
mod ops;
