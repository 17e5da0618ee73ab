//! The paged KV cache as the attention kernel reads it. The engine keeps, per sequence and
//! layer group, a block table: entry `i` is the block that holds positions
//! `i·block_size .. (i+1)·block_size`, or `None` once a sliding window released it. The kernel
//! takes one table row per query token, `max_blocks` wide, with −1 for a missing block;
//! [`slot`] and [`visible`] are the exact arithmetic `paged_attention` uses.

/// Block tables of a batch flattened for the kernel: `n_tokens × max_blocks` entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlatTables {
    /// Row width (the longest table in the batch, at least 1).
    pub max_blocks: usize,
    /// Row `t` is token `t`'s table, padded with −1.
    pub entries: Vec<i32>,
}

/// Flattens one table per query token (tokens of one sequence share the same table) into a
/// dense matrix, −1 for released blocks and padding. `None` when a block id does not fit an
/// `i32`.
pub fn flatten_tables(tables: &[&[Option<u32>]]) -> Option<FlatTables> {
    let max_blocks = tables.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
    let mut entries = vec![-1i32; tables.len() * max_blocks];
    for (row, table) in entries.chunks_exact_mut(max_blocks).zip(tables) {
        for (e, b) in row.iter_mut().zip(table.iter()) {
            if let Some(b) = b {
                *e = i32::try_from(*b).ok()?;
            }
        }
    }
    Some(FlatTables {
        max_blocks,
        entries,
    })
}

/// The pool slot of position `pos` through a flattened table row (the kernel's
/// `blk * block_size + j % block_size`); `None` for a released or absent block.
pub fn slot(row: &[i32], block_size: usize, pos: usize) -> Option<usize> {
    let b = *row.get(pos / block_size)?;
    (b >= 0).then(|| b as usize * block_size + pos % block_size)
}

/// The positions a query at `pos` attends to: `lo..=pos`, `lo = pos + 1 − window` (clamped at
/// 0) with a window, else 0. `window == 0` means none, as in the kernel.
pub fn visible(pos: usize, window: usize) -> std::ops::RangeInclusive<usize> {
    let lo = if window > 0 {
        (pos + 1).saturating_sub(window)
    } else {
        0
    };
    lo..=pos
}
