//! The element-wise, normalisation, RoPE, attention and sampling launches of [`Gpu`].

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::{int, need, AttnParams, Gpu, RopeParams};
use crate::error::{CudaError, Result};
use crate::geometry;

/// A null device pointer, for the kernels' optional arguments.
const NULL: u64 = 0;

/// Launches kernel `name` with `cfg` and the arguments in order. Callers check every buffer's
/// size first and push exactly the kernel's parameter types.
macro_rules! launch {
    ($gpu:expr, $name:expr, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        let cfg = $cfg;
        let mut b = $gpu.stream.launch_builder($gpu.func($name)?);
        $( b.arg($arg); )+
        // SAFETY: the arguments match the kernel's parameters (see the caller) and the
        // buffers hold what the launch reads and writes.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }};
}

impl Gpu {
    /// `y[r] = rms_norm(x[r]) · w` for `n_rows` rows of `width` (`w = None`: no weight).
    /// `y` may be the same buffer as `x` only through [`Gpu::rms_norm_in_place`].
    pub fn rms_norm(
        &self,
        x: &CudaSlice<f32>,
        w: Option<&CudaSlice<f32>>,
        y: &mut CudaSlice<f32>,
        n_rows: usize,
        width: usize,
        eps: f32,
    ) -> Result<()> {
        need("rms_norm", x, n_rows * width)?;
        need("rms_norm", y, n_rows * width)?;
        if let Some(w) = w {
            need("rms_norm weight", w, width)?;
        }
        let width_i = int("width", width)?;
        let cfg = geometry::per_row(n_rows)?.config();
        let mut b = self.stream.launch_builder(self.func("rms_norm")?);
        b.arg(x);
        match w {
            Some(w) => b.arg(w),
            None => b.arg(&NULL),
        };
        b.arg(y).arg(&width_i).arg(&eps);
        // SAFETY: argument types match `rms_norm`; sizes checked.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }

    /// [`Gpu::rms_norm`] with `x` normalised in place (per-head Q/K norms, post-norms).
    pub fn rms_norm_in_place(
        &self,
        x: &mut CudaSlice<f32>,
        w: Option<&CudaSlice<f32>>,
        n_rows: usize,
        width: usize,
        eps: f32,
    ) -> Result<()> {
        need("rms_norm", x, n_rows * width)?;
        if let Some(w) = w {
            need("rms_norm weight", w, width)?;
        }
        let width_i = int("width", width)?;
        let cfg = geometry::per_row(n_rows)?.config();
        let mut b = self.stream.launch_builder(self.func("rms_norm")?);
        // The kernel reads x[i] before writing y[i] at the same index (same thread).
        let (xp, _guard) = cudarc::driver::DevicePtrMut::device_ptr_mut(x, &self.stream);
        b.arg(&xp);
        match w {
            Some(w) => b.arg(w),
            None => b.arg(&NULL),
        };
        b.arg(&xp).arg(&width_i).arg(&eps);
        // SAFETY: argument types match `rms_norm`; x aliases y element for element.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }

    /// `y[i] += s · x[i]` for the first `n` values.
    pub fn add_scaled(
        &self,
        y: &mut CudaSlice<f32>,
        x: &CudaSlice<f32>,
        s: f32,
        n: usize,
    ) -> Result<()> {
        need("add_scaled", y, n)?;
        need("add_scaled", x, n)?;
        let n_i = int("n", n)?;
        launch!(
            self,
            "add_scaled",
            geometry::elementwise(n)?.config(),
            y,
            x,
            &s,
            &n_i
        )
    }

    /// `x[i] *= s` for the first `n` values.
    pub fn scale(&self, x: &mut CudaSlice<f32>, s: f32, n: usize) -> Result<()> {
        need("scale", x, n)?;
        let n_i = int("n", n)?;
        launch!(
            self,
            "scale",
            geometry::elementwise(n)?.config(),
            x,
            &s,
            &n_i
        )
    }

    /// Adds the `width`-wide bias `b` to each of the first `n / width` rows of `x`.
    pub fn add_bias(
        &self,
        x: &mut CudaSlice<f32>,
        bias: &CudaSlice<f32>,
        width: usize,
        n: usize,
    ) -> Result<()> {
        need("add_bias", x, n)?;
        need("add_bias", bias, width)?;
        let (w_i, n_i) = (int("width", width)?, int("n", n)?);
        launch!(
            self,
            "add_bias",
            geometry::elementwise(n)?.config(),
            x,
            bias,
            &w_i,
            &n_i
        )
    }

    /// `x = cap · tanh(x / cap)` for the first `n` values.
    pub fn softcap(&self, x: &mut CudaSlice<f32>, cap: f32, n: usize) -> Result<()> {
        need("softcap", x, n)?;
        let n_i = int("n", n)?;
        launch!(
            self,
            "softcap",
            geometry::elementwise(n)?.config(),
            x,
            &cap,
            &n_i
        )
    }

    /// Columns `off..off + width` of the `n_rows` rows of `src` (rows `src_width` wide) into
    /// `dst` (rows `width` wide).
    pub fn copy_cols(
        &self,
        src: &CudaSlice<f32>,
        src_width: usize,
        off: usize,
        dst: &mut CudaSlice<f32>,
        width: usize,
        n_rows: usize,
    ) -> Result<()> {
        if off + width > src_width {
            return Err(CudaError::Shape(format!(
                "copy_cols: columns {off}..{} of rows {src_width} wide",
                off + width
            )));
        }
        need("copy_cols", src, n_rows * src_width)?;
        need("copy_cols", dst, n_rows * width)?;
        let n = n_rows * width;
        let (sw, o, w, n_i) = (
            int("width", src_width)?,
            int("off", off)?,
            int("width", width)?,
            int("n", n)?,
        );
        launch!(
            self,
            "copy_cols",
            geometry::elementwise(n)?.config(),
            src,
            &sw,
            &o,
            dst,
            &w,
            &n_i
        )
    }

    /// `gate = silu(gate) · up` (`gelu = false`) or `gelu_tanh(gate) · up` for `n` values.
    pub fn glu(
        &self,
        gate: &mut CudaSlice<f32>,
        up: &CudaSlice<f32>,
        n: usize,
        gelu: bool,
    ) -> Result<()> {
        need("glu", gate, n)?;
        need("glu", up, n)?;
        let n_i = int("n", n)?;
        launch!(
            self,
            if gelu { "geglu" } else { "swiglu" },
            geometry::elementwise(n)?.config(),
            gate,
            up,
            &n_i
        )
    }

    /// Rotates the heads of `n_tokens` rows of `x` (`p.n_heads × p.head_dim` each) in place by
    /// each token's position; `ff` are optional per-pair frequency factors.
    pub fn rope(
        &self,
        x: &mut CudaSlice<f32>,
        pos: &CudaSlice<i32>,
        ff: Option<&CudaSlice<f32>>,
        p: &RopeParams,
        n_tokens: usize,
    ) -> Result<()> {
        if p.n_rot > p.head_dim {
            return Err(CudaError::Shape(format!(
                "rope: n_rot {} > head dim {}",
                p.n_rot, p.head_dim
            )));
        }
        need(
            "rope",
            x,
            n_tokens * (p.n_heads * p.head_dim).max(0) as usize,
        )?;
        need("rope positions", pos, n_tokens)?;
        if let Some(ff) = ff {
            need("rope frequency factors", ff, p.n_rot as usize / 2)?;
        }
        let cfg =
            geometry::rope(p.n_heads.max(0) as usize, n_tokens, p.n_rot.max(0) as usize)?.config();
        let mut b = self.stream.launch_builder(self.func("rope")?);
        b.arg(x).arg(pos);
        match ff {
            Some(ff) => b.arg(ff),
            None => b.arg(&NULL),
        };
        b.arg(p);
        // SAFETY: argument types match `rope`; sizes checked.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }

    /// Stores `n_tokens` K and V rows (`k_row`, `v_row` wide) as f16 in pool slots `slots`.
    #[allow(clippy::too_many_arguments)]
    pub fn kv_store(
        &self,
        k: &CudaSlice<f32>,
        v: &CudaSlice<f32>,
        slots: &CudaSlice<i32>,
        k_pool: &mut CudaSlice<u16>,
        v_pool: &mut CudaSlice<u16>,
        k_row: usize,
        v_row: usize,
        n_tokens: usize,
    ) -> Result<()> {
        need("kv_store", k, n_tokens * k_row)?;
        need("kv_store", v, n_tokens * v_row)?;
        need("kv_store slots", slots, n_tokens)?;
        let (kr, vr) = (int("k_row", k_row)?, int("v_row", v_row)?);
        let cfg = geometry::per_row(n_tokens)?.config();
        let mut b = self.stream.launch_builder(self.func("kv_store")?);
        b.arg(k)
            .arg(v)
            .arg(slots)
            .arg(k_pool)
            .arg(v_pool)
            .arg(&kr)
            .arg(&vr);
        // SAFETY: argument types match; the caller's slots come from the KV cache, whose
        // slot count sized the pools.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }

    /// Paged attention for `n_tokens` queries (see `attention.cu`): `tables` is
    /// `n_tokens × p.max_blocks` (see [`crate::paged::flatten_tables`]).
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        q: &CudaSlice<f32>,
        k_pool: &CudaSlice<u16>,
        v_pool: &CudaSlice<u16>,
        tables: &CudaSlice<i32>,
        pos: &CudaSlice<i32>,
        out: &mut CudaSlice<f32>,
        p: &AttnParams,
        n_tokens: usize,
    ) -> Result<()> {
        let u = |v: i32| v.max(0) as usize;
        let launch = geometry::attention(
            u(p.n_head),
            u(p.n_head_kv),
            u(p.head_dim_k),
            u(p.head_dim_v),
            n_tokens,
        )?;
        need("attention q", q, n_tokens * u(p.n_head) * u(p.head_dim_k))?;
        need(
            "attention out",
            out,
            n_tokens * u(p.n_head) * u(p.head_dim_v),
        )?;
        need("attention tables", tables, n_tokens * u(p.max_blocks))?;
        need("attention positions", pos, n_tokens)?;
        let mut b = self.stream.launch_builder(self.func("paged_attention")?);
        b.arg(q)
            .arg(k_pool)
            .arg(v_pool)
            .arg(tables)
            .arg(pos)
            .arg(out)
            .arg(p);
        // SAFETY: argument types match; table entries are blocks of the pools.
        unsafe { b.launch(launch.config()) }?;
        Ok(())
    }

    /// In-place softmax of `n_rows` rows of `width`.
    pub fn softmax(&self, x: &mut CudaSlice<f32>, n_rows: usize, width: usize) -> Result<()> {
        need("softmax", x, n_rows * width)?;
        let w = int("width", width)?;
        let cfg = geometry::per_row(n_rows)?.config();
        let mut b = self.stream.launch_builder(self.func("softmax")?);
        b.arg(x).arg(&w);
        // SAFETY: argument types match; sizes checked.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }

    /// Greedy argmax of `n_rows` rows of `width` into `out` (lowest index on ties).
    pub fn argmax(
        &self,
        x: &CudaSlice<f32>,
        n_rows: usize,
        width: usize,
        out: &mut CudaSlice<u32>,
    ) -> Result<()> {
        need("argmax", x, n_rows * width)?;
        need("argmax", out, n_rows)?;
        let w = int("width", width)?;
        let cfg = geometry::per_row(n_rows)?.config();
        let mut b = self.stream.launch_builder(self.func("argmax")?);
        b.arg(x).arg(&w).arg(out);
        // SAFETY: argument types match; the kernel needs exactly THREADS threads, which
        // per_row gives.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }
}
