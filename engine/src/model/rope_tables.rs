//! The RoPE cos/sin of every token of a batch, once per forward pass for each distinct
//! [`Rope`] (a model's layers share one, or two for Gemma 3's local and global layers), where
//! each layer used to compute its own for every token: a `powf`, and a `cos` and `sin` per
//! rotated pair, 18 times per token for Gemma 3.

use nanorun_kernels::ThreadPool;

use super::ops::Rope;

/// The tables of one forward pass (their buffers kept between passes).
#[derive(Debug, Default)]
pub(super) struct RopeTables {
    tables: Vec<(Rope, Vec<f32>)>,
    used: usize,
}

impl RopeTables {
    /// Forgets the tables of the last pass (a new batch).
    pub(super) fn clear(&mut self) {
        self.used = 0;
    }

    /// The cos/sin pairs of `rope` for each of `positions` (`n_rot` floats per token, as
    /// [`Rope::cache`] writes them), computed on `pool` the first time this pass asks.
    pub(super) fn get(
        &mut self,
        rope: &Rope,
        positions: &[usize],
        freq_factors: Option<&[f32]>,
        pool: &ThreadPool,
    ) -> &[f32] {
        let n = rope.n_rot;
        let len = positions.len() * n;
        if let Some(i) = self.tables[..self.used].iter().position(|(r, _)| r == rope) {
            return &self.tables[i].1[..len];
        }
        if self.used == self.tables.len() {
            self.tables.push((*rope, Vec::new()));
        }
        let (r, table) = &mut self.tables[self.used];
        *r = *rope;
        if table.len() < len {
            table.resize(len, 0.0);
        }
        super::forward::rows_on_pool(pool, &mut table[..len], n, |t, row| {
            rope.cache(positions[t], freq_factors, row)
        });
        self.used += 1;
        &self.tables[self.used - 1].1[..len]
    }
}
