//! The element-wise, normalisation, RoPE, attention and sampling launches of [`Gpu`].

use super::{int, need, Arg, AttnParams, DevBuf, Gpu, RopeParams};
use crate::error::{CudaError, Result};
use crate::geometry;

/// A null device pointer, for the kernels' optional arguments.
const NULL: Arg = Arg::Ptr(0);

impl Gpu {
    fn opt(&self, b: Option<&DevBuf<f32>>) -> Result<Arg> {
        b.map_or(Ok(NULL), |b| self.ptr(b))
    }

    /// `y[r] = rms_norm(x[r]) · w` for `n_rows` rows of `width` (`w = None`: no weight).
    pub fn rms_norm(
        &self,
        x: &DevBuf<f32>,
        w: Option<&DevBuf<f32>>,
        y: &mut DevBuf<f32>,
        n_rows: usize,
        width: usize,
        eps: f32,
    ) -> Result<()> {
        need("rms_norm", x, n_rows * width)?;
        need("rms_norm", y, n_rows * width)?;
        if let Some(w) = w {
            need("rms_norm weight", w, width)?;
        }
        let args = [
            self.ptr(x)?,
            self.opt(w)?,
            self.ptr_mut(y)?,
            Arg::I32(int("width", width)?),
            Arg::F32(eps),
        ];
        self.launch("rms_norm", geometry::per_row(n_rows)?, &args)
    }

    /// [`Gpu::rms_norm`] with `x` normalised in place (per-head Q/K norms, post-norms): the
    /// kernel reads each value before the same thread writes it.
    pub fn rms_norm_in_place(
        &self,
        x: &mut DevBuf<f32>,
        w: Option<&DevBuf<f32>>,
        n_rows: usize,
        width: usize,
        eps: f32,
    ) -> Result<()> {
        need("rms_norm", x, n_rows * width)?;
        if let Some(w) = w {
            need("rms_norm weight", w, width)?;
        }
        let xp = self.ptr_mut(x)?;
        let args = [
            xp,
            self.opt(w)?,
            xp,
            Arg::I32(int("width", width)?),
            Arg::F32(eps),
        ];
        self.launch("rms_norm", geometry::per_row(n_rows)?, &args)
    }

    /// `y[i] += s · x[i]` for the first `n` values.
    pub fn add_scaled(&self, y: &mut DevBuf<f32>, x: &DevBuf<f32>, s: f32, n: usize) -> Result<()> {
        need("add_scaled", y, n)?;
        need("add_scaled", x, n)?;
        let args = [
            self.ptr_mut(y)?,
            self.ptr(x)?,
            Arg::F32(s),
            Arg::I32(int("n", n)?),
        ];
        self.launch("add_scaled", geometry::elementwise(n)?, &args)
    }

    /// `x[i] *= s` for the first `n` values.
    pub fn scale(&self, x: &mut DevBuf<f32>, s: f32, n: usize) -> Result<()> {
        need("scale", x, n)?;
        let args = [self.ptr_mut(x)?, Arg::F32(s), Arg::I32(int("n", n)?)];
        self.launch("scale", geometry::elementwise(n)?, &args)
    }

    /// Adds the `width`-wide bias to each of the first `n / width` rows of `x`.
    pub fn add_bias(
        &self,
        x: &mut DevBuf<f32>,
        bias: &DevBuf<f32>,
        width: usize,
        n: usize,
    ) -> Result<()> {
        need("add_bias", x, n)?;
        need("add_bias", bias, width)?;
        let args = [
            self.ptr_mut(x)?,
            self.ptr(bias)?,
            Arg::I32(int("width", width)?),
            Arg::I32(int("n", n)?),
        ];
        self.launch("add_bias", geometry::elementwise(n)?, &args)
    }

    /// `x = cap · tanh(x / cap)` for the first `n` values.
    pub fn softcap(&self, x: &mut DevBuf<f32>, cap: f32, n: usize) -> Result<()> {
        need("softcap", x, n)?;
        let args = [self.ptr_mut(x)?, Arg::F32(cap), Arg::I32(int("n", n)?)];
        self.launch("softcap", geometry::elementwise(n)?, &args)
    }

    /// Columns `off..off + width` of the `n_rows` rows of `src` (rows `src_width` wide) into
    /// `dst` (rows `width` wide).
    pub fn copy_cols(
        &self,
        src: &DevBuf<f32>,
        src_width: usize,
        off: usize,
        dst: &mut DevBuf<f32>,
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
        let args = [
            self.ptr(src)?,
            Arg::I32(int("width", src_width)?),
            Arg::I32(int("off", off)?),
            self.ptr_mut(dst)?,
            Arg::I32(int("width", width)?),
            Arg::I32(int("n", n)?),
        ];
        self.launch("copy_cols", geometry::elementwise(n)?, &args)
    }

    /// `gate = silu(gate) · up` (`gelu = false`) or `gelu_tanh(gate) · up` for `n` values.
    pub fn glu(
        &self,
        gate: &mut DevBuf<f32>,
        up: &DevBuf<f32>,
        n: usize,
        gelu: bool,
    ) -> Result<()> {
        need("glu", gate, n)?;
        need("glu", up, n)?;
        let args = [self.ptr_mut(gate)?, self.ptr(up)?, Arg::I32(int("n", n)?)];
        self.launch(
            if gelu { "geglu" } else { "swiglu" },
            geometry::elementwise(n)?,
            &args,
        )
    }

    /// Rotates the heads of `n_tokens` rows of `x` (`p.n_heads × p.head_dim` each) in place by
    /// each token's position; `ff` are optional per-pair frequency factors.
    pub fn rope(
        &self,
        x: &mut DevBuf<f32>,
        pos: &DevBuf<i32>,
        ff: Option<&DevBuf<f32>>,
        p: &RopeParams,
        n_tokens: usize,
    ) -> Result<()> {
        if p.n_rot > p.head_dim || p.n_heads <= 0 {
            return Err(CudaError::Shape(format!(
                "rope: n_rot {} with head dim {} and {} heads",
                p.n_rot, p.head_dim, p.n_heads
            )));
        }
        need("rope", x, n_tokens * (p.n_heads * p.head_dim) as usize)?;
        need("rope positions", pos, n_tokens)?;
        if let Some(ff) = ff {
            need("rope frequency factors", ff, p.n_rot.max(0) as usize / 2)?;
        }
        let launch = geometry::rope(p.n_heads as usize, n_tokens, p.n_rot.max(0) as usize)?;
        let args = [
            self.ptr_mut(x)?,
            self.ptr(pos)?,
            self.opt(ff)?,
            Arg::Rope(*p),
        ];
        self.launch("rope", launch, &args)
    }

    /// Stores `n_tokens` K and V rows (`k_row`, `v_row` wide) as f16 in pool slots `slots`.
    #[allow(clippy::too_many_arguments)]
    pub fn kv_store(
        &self,
        k: &DevBuf<f32>,
        v: &DevBuf<f32>,
        slots: &DevBuf<i32>,
        k_pool: &mut DevBuf<u16>,
        v_pool: &mut DevBuf<u16>,
        k_row: usize,
        v_row: usize,
        n_tokens: usize,
    ) -> Result<()> {
        need("kv_store", k, n_tokens * k_row)?;
        need("kv_store", v, n_tokens * v_row)?;
        need("kv_store slots", slots, n_tokens)?;
        let args = [
            self.ptr(k)?,
            self.ptr(v)?,
            self.ptr(slots)?,
            self.ptr_mut(k_pool)?,
            self.ptr_mut(v_pool)?,
            Arg::I32(int("k_row", k_row)?),
            Arg::I32(int("v_row", v_row)?),
        ];
        // The caller's slots come from the KV cache, whose slot count sized the pools.
        self.launch("kv_store", geometry::per_row(n_tokens)?, &args)
    }

    /// Paged attention for `n_tokens` queries (see `attention.cu`): `tables` is
    /// `n_tokens × p.max_blocks` (see [`crate::paged::flatten_tables`]).
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        q: &DevBuf<f32>,
        k_pool: &DevBuf<u16>,
        v_pool: &DevBuf<u16>,
        tables: &DevBuf<i32>,
        pos: &DevBuf<i32>,
        out: &mut DevBuf<f32>,
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
        let args = [
            self.ptr(q)?,
            self.ptr(k_pool)?,
            self.ptr(v_pool)?,
            self.ptr(tables)?,
            self.ptr(pos)?,
            self.ptr_mut(out)?,
            Arg::Attn(*p),
        ];
        // Table entries are blocks of the pools (the KV cache's).
        self.launch("paged_attention", launch, &args)
    }

    /// In-place softmax of `n_rows` rows of `width`.
    pub fn softmax(&self, x: &mut DevBuf<f32>, n_rows: usize, width: usize) -> Result<()> {
        need("softmax", x, n_rows * width)?;
        let args = [self.ptr_mut(x)?, Arg::I32(int("width", width)?)];
        self.launch("softmax", geometry::per_row(n_rows)?, &args)
    }

    /// Greedy argmax of `n_rows` rows of `width` into `out` (lowest index on ties).
    pub fn argmax(
        &self,
        x: &DevBuf<f32>,
        n_rows: usize,
        width: usize,
        out: &mut DevBuf<u32>,
    ) -> Result<()> {
        need("argmax", x, n_rows * width)?;
        need("argmax", out, n_rows)?;
        let args = [
            self.ptr(x)?,
            Arg::I32(int("width", width)?),
            self.ptr_mut(out)?,
        ];
        // The kernel needs exactly geometry::THREADS threads, which per_row gives.
        self.launch("argmax", geometry::per_row(n_rows)?, &args)
    }
}
