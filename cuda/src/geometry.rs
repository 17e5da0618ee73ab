//! Launch geometry of every kernel, as pure functions of the problem size, so that it is
//! tested without a device. Each kernel's comment in `kernels/*.cu` names the function here
//! that sizes it; the constants must match the kernels' `#define`s.

use crate::error::{CudaError, Result};

/// Rows (warps) per block of the mat-vec kernels (`blockDim.y` of `mmv_*`).
pub const MMV_ROWS: u32 = 4;
/// Tile edge of the prefill matmul (`MM_TILE` in `matmul.cu`).
pub const MM_TILE: u32 = 32;
/// `blockDim.y` of the prefill matmul: each thread computes `MM_TILE / MM_THREADS_Y` outputs.
pub const MM_THREADS_Y: u32 = 8;
/// Warps per block of the attention kernel (`ATT_WARPS`).
pub const ATT_WARPS: u32 = 4;
/// Largest head dimension the attention kernel takes (`ATT_MAX_DIM`).
pub const ATT_MAX_DIM: usize = 256;
/// Threads per block of the element-wise and per-row kernels (argmax needs exactly this).
pub const THREADS: u32 = 256;
/// Largest `gridDim.y` / `gridDim.z` CUDA allows.
pub const MAX_GRID_YZ: usize = 65_535;
/// Largest `gridDim.x` CUDA allows.
pub const MAX_GRID_X: usize = (1 << 31) - 1;

/// Grid, block and dynamic shared memory of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Blocks in x, y, z.
    pub grid: (u32, u32, u32),
    /// Threads per block in x, y, z.
    pub block: (u32, u32, u32),
    /// Dynamic shared memory in bytes.
    pub shared: u32,
}

impl Launch {
    fn new(what: &str, grid: (usize, usize, usize), block: (u32, u32, u32)) -> Result<Launch> {
        let (x, y, z) = grid;
        if x == 0 || y == 0 || z == 0 {
            return Err(CudaError::Shape(format!("{what}: empty launch {grid:?}")));
        }
        if x > MAX_GRID_X || y > MAX_GRID_YZ || z > MAX_GRID_YZ {
            return Err(CudaError::Shape(format!(
                "{what}: grid {grid:?} exceeds CUDA's limits"
            )));
        }
        Ok(Launch {
            grid: (x as u32, y as u32, z as u32),
            block,
            shared: 0,
        })
    }

    /// Threads per block.
    pub fn threads_per_block(&self) -> u32 {
        self.block.0 * self.block.1 * self.block.2
    }

    /// The cudarc launch configuration.
    pub fn config(&self) -> cudarc::driver::LaunchConfig {
        cudarc::driver::LaunchConfig {
            grid_dim: self.grid,
            block_dim: self.block,
            shared_mem_bytes: self.shared,
        }
    }
}

/// `quantize_q8_1` over `n_blocks` blocks of 32: a warp per block, 4 per thread block.
pub fn quantize_q8_1(n_blocks: usize) -> Result<Launch> {
    Launch::new("quantize_q8_1", (n_blocks.div_ceil(4), 1, 1), (32, 4, 1))
}

/// `mmv_*`: a warp per output row, [`MMV_ROWS`] rows per block, one grid row per token.
pub fn matvec(rows: usize, n_tokens: usize) -> Result<Launch> {
    Launch::new(
        "matvec",
        (rows.div_ceil(MMV_ROWS as usize), n_tokens, 1),
        (32, MMV_ROWS, 1),
    )
}

/// `mm_*`: one block per 32 rows × 32 tokens tile.
pub fn matmul(rows: usize, n_tokens: usize) -> Result<Launch> {
    let t = MM_TILE as usize;
    Launch::new(
        "matmul",
        (rows.div_ceil(t), n_tokens.div_ceil(t), 1),
        (MM_TILE, MM_THREADS_Y, 1),
    )
}

/// Element-wise kernels over `n` values: [`THREADS`] per block.
pub fn elementwise(n: usize) -> Result<Launch> {
    Launch::new(
        "elementwise",
        (n.div_ceil(THREADS as usize), 1, 1),
        (THREADS, 1, 1),
    )
}

/// Per-row kernels (`rms_norm`, `softmax`, `argmax`, `get_rows_*`, `kv_store`): one block of
/// [`THREADS`] per row.
pub fn per_row(n_rows: usize) -> Result<Launch> {
    Launch::new("per-row", (n_rows, 1, 1), (THREADS, 1, 1))
}

/// `rope`: a block per (head, token), a thread per rotated pair (at most 128).
pub fn rope(n_heads: usize, n_tokens: usize, n_rot: usize) -> Result<Launch> {
    if n_rot == 0 || !n_rot.is_multiple_of(2) {
        return Err(CudaError::Shape(format!(
            "rope: n_rot {n_rot} is not a positive even number"
        )));
    }
    let threads = (n_rot / 2).min(128) as u32;
    Launch::new("rope", (n_heads, n_tokens, 1), (threads, 1, 1))
}

/// `paged_attention`: a block of [`ATT_WARPS`] warps per (head, token). Checks the head
/// dimensions against [`ATT_MAX_DIM`] and that the query heads are a multiple of the KV heads.
pub fn attention(
    n_head: usize,
    n_head_kv: usize,
    head_dim_k: usize,
    head_dim_v: usize,
    n_tokens: usize,
) -> Result<Launch> {
    if head_dim_k > ATT_MAX_DIM || head_dim_v > ATT_MAX_DIM || head_dim_k == 0 {
        return Err(CudaError::Shape(format!(
            "attention: head dims {head_dim_k}/{head_dim_v} (the kernel takes 1..={ATT_MAX_DIM})"
        )));
    }
    if n_head_kv == 0 || !n_head.is_multiple_of(n_head_kv) {
        return Err(CudaError::Shape(format!(
            "attention: {n_head} query heads are not a multiple of {n_head_kv} KV heads"
        )));
    }
    Launch::new("attention", (n_head, n_tokens, 1), (32, ATT_WARPS, 1))
}
