//! A pool of fixed-size KV blocks: a free list and reference counts. It knows nothing of
//! sequences or requests; the cache manager above it does.

/// Index of a block in the pool.
pub type BlockId = u32;

/// Free list plus reference counts over `n_blocks` blocks.
#[derive(Debug, Clone)]
pub struct BlockPool {
    ref_counts: Vec<u32>,
    free: Vec<BlockId>,
}

impl BlockPool {
    /// A pool of `n_blocks` free blocks.
    pub fn new(n_blocks: usize) -> BlockPool {
        BlockPool {
            ref_counts: vec![0; n_blocks],
            // Pop from the end: hand out low ids first.
            free: (0..n_blocks as BlockId).rev().collect(),
        }
    }

    /// Total blocks.
    pub fn capacity(&self) -> usize {
        self.ref_counts.len()
    }

    /// Blocks not referenced by anyone.
    pub fn n_free(&self) -> usize {
        self.free.len()
    }

    /// Takes a free block (reference count 1), or `None` when the pool is exhausted.
    pub fn allocate(&mut self) -> Option<BlockId> {
        let id = self.free.pop()?;
        debug_assert_eq!(self.ref_counts[id as usize], 0);
        self.ref_counts[id as usize] = 1;
        Some(id)
    }

    /// Adds a reference to an allocated block (prefix sharing).
    pub fn retain(&mut self, id: BlockId) {
        let rc = &mut self.ref_counts[id as usize];
        assert!(*rc > 0, "retain of free block {id}");
        *rc += 1;
    }

    /// Drops a reference; the block returns to the free list when none is left.
    pub fn release(&mut self, id: BlockId) {
        let rc = &mut self.ref_counts[id as usize];
        assert!(*rc > 0, "release of free block {id}");
        *rc -= 1;
        if *rc == 0 {
            self.free.push(id);
        }
    }

    /// References held on a block.
    pub fn ref_count(&self, id: BlockId) -> u32 {
        self.ref_counts[id as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_until_exhausted_and_frees_back() {
        let mut p = BlockPool::new(3);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        let c = p.allocate().unwrap();
        assert_eq!((a, b, c), (0, 1, 2));
        assert!(p.allocate().is_none());
        p.retain(b);
        p.release(b);
        assert_eq!(p.n_free(), 0);
        p.release(b);
        p.release(a);
        p.release(c);
        assert_eq!(p.n_free(), 3);
    }
}
