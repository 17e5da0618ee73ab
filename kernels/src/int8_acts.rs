//! Int8 activation buffers of the matmul's [`Int8Path`]: rows unpacked to signed bytes and
//! f32 scales (activations, or a thread's tile of weight rows), the form the plan's kernels
//! take them in, and the same activations grouped by token ([`TokenBlocks`]) for the
//! interleaved kernels that read every token's block from one pointer. Also how a batch is cut
//! into groups of eight, four and two tokens.

use crate::traits::{Int8Path, Int8Row, Int8RowMut, TokenBlocks};

/// Unpacked rows for [`Int8Path`]: activations (in `MatmulScratch`) or a thread's tile of
/// weight rows (`matmul::WEIGHT_TILE`). Grows to the largest op seen, then never allocates again.
#[derive(Debug, Default)]
pub(crate) struct Int8Buf {
    pub(crate) qs: Vec<[i8; 32]>,
    pub(crate) d: Vec<f32>,
    /// Activations for a path that takes them grouped by token: the [`TokenBlocks`] of each
    /// group [`token_groups`] makes, one group after another (`TOKEN_BLOCK_WORDS` per token
    /// and block).
    grouped: Vec<u32>,
}

impl Int8Buf {
    /// Room for `rows` rows of `nb` blocks.
    pub(crate) fn reserve(&mut self, rows: usize, nb: usize) {
        let n = rows * nb;
        if self.qs.len() < n {
            self.qs.resize(n, [0; 32]);
            self.d.resize(n, 0.0);
        }
    }

    /// Row `i` of `nb` blocks.
    pub(crate) fn row(&self, i: usize, nb: usize) -> Int8Row<'_> {
        Int8Row {
            qs: &self.qs[i * nb..(i + 1) * nb],
            d: &self.d[i * nb..(i + 1) * nb],
        }
    }

    /// Groups the first `n_tokens` rows of `nb` blocks into `grouped`, as [`token_groups`]
    /// cuts them.
    pub(crate) fn group_tokens(&mut self, n_tokens: usize, nb: usize) {
        let mut grouped = std::mem::take(&mut self.grouped);
        grouped.resize(n_tokens * nb * TOKEN_BLOCK_WORDS, 0);
        for (t0, n) in token_groups(n_tokens) {
            let words =
                &mut grouped[t0 * nb * TOKEN_BLOCK_WORDS..(t0 + n) * nb * TOKEN_BLOCK_WORDS];
            match n {
                8 => self.fill_group::<8>(t0, nb, bytemuck::cast_slice_mut(words)),
                4 => self.fill_group::<4>(t0, nb, bytemuck::cast_slice_mut(words)),
                _ => self.fill_group::<2>(t0, nb, bytemuck::cast_slice_mut(words)),
            }
        }
        self.grouped = grouped;
    }

    /// Rows `t0..t0 + N` of `nb` blocks into `out`, block by block.
    fn fill_group<const N: usize>(&self, t0: usize, nb: usize, out: &mut [TokenBlocks<N>]) {
        for k in 0..N {
            let row = self.row(t0 + k, nb);
            for ((b, qs), d) in out.iter_mut().zip(row.qs).zip(row.d) {
                b.qs[k] = *qs;
                b.d[k] = *d;
                b.bias[k] = -128 * qs.iter().map(|&q| i32::from(q)).sum::<i32>();
            }
        }
    }

    /// The [`TokenBlocks`] of the group from token `t0` (made by `group_tokens`).
    pub(crate) fn group<const N: usize>(&self, t0: usize, nb: usize) -> &[TokenBlocks<N>] {
        bytemuck::cast_slice(
            &self.grouped[t0 * nb * TOKEN_BLOCK_WORDS..(t0 + N) * nb * TOKEN_BLOCK_WORDS],
        )
    }

    /// Row `i` of `nb` blocks, to write.
    pub(crate) fn row_mut(&mut self, i: usize, nb: usize) -> Int8RowMut<'_> {
        Int8RowMut {
            qs: &mut self.qs[i * nb..(i + 1) * nb],
            d: &mut self.d[i * nb..(i + 1) * nb],
        }
    }
}

/// The form of a plan's int8 activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActsForm {
    /// Signed, as the activation type's unpacker writes them.
    Signed,
    /// Offset by 128, as unsigned bytes (`Int8Path::offset_acts`).
    Offset,
    /// Signed, then grouped by token (`Interleaved8Batch::Int8Tokens`).
    Grouped,
}

impl ActsForm {
    /// The form the row-major kernels of `path` take.
    pub(crate) fn of(path: &Int8Path) -> ActsForm {
        if path.offset_acts {
            ActsForm::Offset
        } else {
            ActsForm::Signed
        }
    }
}

/// Calls `eight(t)` for every whole group of eight tokens from 0, then `four(t)` and `two(t)`
/// once each as far as the `n_tokens` reach; returns the first token not done (at most one is
/// left): how the int8 kernels split a batch.
pub(crate) fn in_groups_of_8_4_2(
    n_tokens: usize,
    mut eight: impl FnMut(usize),
    four: impl FnOnce(usize),
    two: impl FnOnce(usize),
) -> usize {
    let (mut four, mut two) = (Some(four), Some(two));
    let mut end = 0;
    for (t, n) in token_groups(n_tokens) {
        match n {
            8 => eight(t),
            4 => four.take().expect("one group of four")(t),
            _ => two.take().expect("one group of two")(t),
        }
        end = t + n;
    }
    end
}

/// How the int8 kernels cut a batch of `n_tokens`: the first token and size of each group,
/// every whole eight from 0, then one four and one two as far as the tokens reach (at most one
/// token is left).
pub(crate) fn token_groups(n_tokens: usize) -> impl Iterator<Item = (usize, usize)> {
    let eights = n_tokens / 8 * 8;
    let four = n_tokens - eights >= 4;
    let after_four = eights + if four { 4 } else { 0 };
    let two = n_tokens - after_four >= 2;
    (0..eights)
        .step_by(8)
        .map(|t| (t, 8))
        .chain(four.then_some((eights, 4)))
        .chain(two.then_some((after_four, 2)))
}

/// 32-bit words of one token's block in [`TokenBlocks`]: 32 quants, a scale and a bias.
const TOKEN_BLOCK_WORDS: usize = 10;
const _: () = assert!(std::mem::size_of::<TokenBlocks<8>>() == 8 * TOKEN_BLOCK_WORDS * 4);

#[cfg(test)]
mod tests {
    use super::*;

    /// The groups run one after another from token 0, eights first, then at most one four and
    /// one two, leaving at most one token; `in_groups_of_8_4_2` visits the same ones.
    #[test]
    fn token_groups_cover_the_batch_but_one_at_most() {
        for n in 0..40 {
            let groups: Vec<_> = token_groups(n).collect();
            let mut next = 0;
            for &(t, size) in &groups {
                assert_eq!(t, next, "n={n}");
                next += size;
            }
            assert!(n - next <= 1, "n={n}");
            let sizes: Vec<_> = groups.iter().map(|g| g.1).collect();
            assert!(sizes
                .windows(2)
                .all(|w| w[0] >= w[1] && (w[0] == 8 || w[0] > w[1])));
            let visited = std::cell::RefCell::new(Vec::new());
            let end = in_groups_of_8_4_2(
                n,
                |t| visited.borrow_mut().push((t, 8)),
                |t| visited.borrow_mut().push((t, 4)),
                |t| visited.borrow_mut().push((t, 2)),
            );
            assert_eq!((visited.into_inner(), end), (groups, next));
        }
    }
}
