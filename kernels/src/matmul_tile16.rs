//! The large-batch path of row-major matrices whose type has a [`Tile16Path`] (x86 Q6_K):
//! each tile of sixteen rows is unpacked once into this thread's buffer, then every four tokens
//! of the batch run over it.

use std::cell::RefCell;

use super::interleaved::put_tokens;
use crate::traits::Tile16Path;

/// Rows per tile.
pub(super) const TILE16_ROWS: usize = 16;

/// 64 bytes, 64-byte aligned: the unit of the tile buffer, so that the kernels' aligned loads
/// hold.
#[repr(C, align(64))]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Line([u8; 64]);

thread_local! {
    /// The current tile of sixteen rows, unpacked.
    static TILE: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Rows `r0..r0 + 16` (`rows`: their bytes, one row after another, `nb` blocks each) times
/// tokens `0..` eight at a time through `path`, then four; returns the first token not done (fewer than
/// four are left, for the row kernels).
pub(super) fn tile16_tokens<'a>(
    path: &Tile16Path,
    (r0, rows): (usize, &[u8]),
    nb: usize,
    (act, n_tokens): (&impl Fn(usize) -> &'a [u8], usize),
    put_run: &impl Fn(usize, usize, &[f32]),
) -> usize {
    TILE.with_borrow_mut(|tile| {
        let bytes = nb * path.block_bytes;
        let lines = bytes.div_ceil(64);
        if tile.len() < lines {
            tile.resize(lines, Line([0; 64]));
        }
        let tile = &mut bytemuck::cast_slice_mut::<Line, u8>(tile)[..bytes];
        (path.unpack)(rows, nb, tile);
        let tile: &[u8] = tile;
        let put = |t: usize, v: &[[f32; TILE16_ROWS]]| put_tokens(put_run, t, r0, v);
        let mut t = 0;
        while t + 8 <= n_tokens {
            put(t, &(path.x8)(tile, std::array::from_fn(|k| act(t + k))));
            t += 8;
        }
        if t + 4 <= n_tokens {
            put(t, &(path.x4)(tile, std::array::from_fn(|k| act(t + k))));
            t += 4;
        }
        t
    })
}
