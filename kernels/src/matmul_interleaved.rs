//! One tile of a matrix repacked with eight rows interleaved (`Layout::Interleaved8`) times
//! every token of a batch: four tokens at a time on each group (or two groups), or eight, four
//! or two at a time on the int8 activations, then the tokens left one by one.

use crate::int8_acts::{in_groups_of_8_4_2, Int8Buf};
use crate::repack::INTERLEAVED_ROWS;
use crate::traits::{
    Int8Path, Int8Row, Interleaved16TokensFn, Interleaved8Batch, Interleaved8Path,
    Interleaved8TokensFn, TokenBlocks,
};

/// One tile of an interleaved matrix, whole groups `rows` (their bytes `groups`), times every
/// token: batches four tokens at a time on each group, or (types with an int8 path) eight,
/// four or two at a time on the int8 activations; then the tokens left one by one.
pub(super) fn interleaved_tile<'a>(
    path: &Interleaved8Path,
    wide: bool,
    int8: Option<Int8Path>,
    (rows, groups): (std::ops::Range<usize>, &[u8]),
    (acts, nb): (&Int8Buf, usize),
    (act, n_tokens): (&impl Fn(usize) -> &'a [u8], usize),
    put_run: &impl Fn(usize, usize, &[f32]),
) {
    let group_bytes = groups.len() / (rows.len() / INTERLEAVED_ROWS);
    let each_group = || {
        groups
            .chunks_exact(group_bytes)
            .zip(rows.clone().step_by(INTERLEAVED_ROWS))
    };
    // The whole groups, two at a time where the path has kernels for pairs (`two`), else
    // (and an odd group at the end) one at a time (`one`), with each one's first row.
    let by_pairs = |two: &mut dyn FnMut(&[u8], usize), one: &mut dyn FnMut(&[u8], usize)| {
        let step = if path.batch.in_pairs() { 2 } else { 1 };
        for (bytes, r) in groups
            .chunks(step * group_bytes)
            .zip(rows.clone().step_by(step * INTERLEAVED_ROWS))
        {
            if bytes.len() == 2 * group_bytes {
                two(bytes, r);
            } else {
                for (group, r) in bytes
                    .chunks_exact(group_bytes)
                    .zip((r..).step_by(INTERLEAVED_ROWS))
                {
                    one(group, r);
                }
            }
        }
    };
    let t = match (path.batch, int8) {
        (Interleaved8Batch::X4 { x4, wide_x4, pairs }, _) => {
            let x4 = if wide { wide_x4 } else { x4 };
            let pair_x4 = pairs.map(|(x4, wide_x4)| if wide { wide_x4 } else { x4 });
            let mut t = 0;
            while t + 4 <= n_tokens {
                let a = [act(t), act(t + 1), act(t + 2), act(t + 3)];
                by_pairs(
                    &mut |two, r| put_tokens(put_run, t, r, &pair_x4.expect("paired")(two, a)),
                    &mut |group, r| put_tokens(put_run, t, r, &x4(group, a)),
                );
                t += 4;
            }
            t
        }
        (Interleaved8Batch::Int8 { x8, x4, x2 }, Some(_)) => in_groups_of_8_4_2(
            n_tokens,
            |t| int8_groups(each_group(), (acts, nb), t, x8, put_run),
            |t| int8_groups(each_group(), (acts, nb), t, x4, put_run),
            |t| int8_groups(each_group(), (acts, nb), t, x2, put_run),
        ),
        (Interleaved8Batch::Int8Tokens { x8, x4, x2, pairs }, Some(_)) => in_groups_of_8_4_2(
            n_tokens,
            |t| {
                tokens_groups(
                    &by_pairs,
                    acts.group::<8>(t, nb),
                    t,
                    (x8, pairs.map(|p| p.x8)),
                    put_run,
                )
            },
            |t| {
                tokens_groups(
                    &by_pairs,
                    acts.group::<4>(t, nb),
                    t,
                    (x4, pairs.map(|p| p.x4)),
                    put_run,
                )
            },
            |t| {
                tokens_groups(
                    &by_pairs,
                    acts.group::<2>(t, nb),
                    t,
                    (x2, pairs.map(|p| p.x2)),
                    put_run,
                )
            },
        ),
        (Interleaved8Batch::Int8 { .. } | Interleaved8Batch::Int8Tokens { .. }, None) => 0,
    };
    for t in t..n_tokens {
        for (group, r) in each_group() {
            put_run(t, r, &(path.x1)(group, act(t)));
        }
    }
}

/// Tokens `t..t + N` times each of `groups` (interleaved bytes, first row) through `dot`.
fn int8_groups<'g, const N: usize>(
    groups: impl Iterator<Item = (&'g [u8], usize)>,
    (acts, nb): (&Int8Buf, usize),
    t: usize,
    dot: impl Fn(&[u8], &[Int8Row<'_>; N]) -> [[f32; 8]; N],
    put_run: &impl Fn(usize, usize, &[f32]),
) {
    let a = std::array::from_fn(|k| acts.row(t + k, nb));
    for (group, r) in groups {
        put_tokens(put_run, t, r, &dot(group, &a));
    }
}

/// Tokens `t..t + N`, grouped in `a`, times each whole group of the tile through `dot`, or
/// two groups at once through `pair` (`by_pairs` hands out the groups, see
/// `interleaved_tile`).
fn tokens_groups<const N: usize>(
    by_pairs: &impl Fn(&mut dyn FnMut(&[u8], usize), &mut dyn FnMut(&[u8], usize)),
    a: &[TokenBlocks<N>],
    t: usize,
    (dot, pair): (Interleaved8TokensFn<N>, Option<Interleaved16TokensFn<N>>),
    put_run: &impl Fn(usize, usize, &[f32]),
) {
    by_pairs(
        &mut |two, r| put_tokens(put_run, t, r, &pair.expect("paired")(two, a)),
        &mut |group, r| put_tokens(put_run, t, r, &dot(group, a)),
    );
}

/// Token `t + k`'s results `v[k]` for the rows from `r`.
pub(super) fn put_tokens<const R: usize>(
    put_run: &impl Fn(usize, usize, &[f32]),
    t: usize,
    r: usize,
    v: &[[f32; R]],
) {
    for (k, vk) in v.iter().enumerate() {
        put_run(t + k, r, vk);
    }
}
