// SPDX-License-Identifier: GPL-2.0

//! Physical memory as the table code sees it.

use super::HwError;

/// Memory the IOMMU reads its tables from.
///
/// The driver implements it over pages it allocates (and keeps coherent with
/// the IOMMU); the host tests implement it over buffers of atomic words.
/// Table walks run concurrently without a lock (`Sync`): every access to a
/// table word is a single load, a single store or a compare-and-exchange.
///
/// Table code holds physical addresses (the hardware's links between tables)
/// and turns them into [`Words`] views only through the unsafe
/// [`PhysMem::words`], whose caller vouches that the address names memory
/// the table owns: [`super::tree::Tree`] for the page tables and the
/// directory.
pub(crate) trait PhysMem: Sync {
    /// A view of words of an allocation.
    type Words<'a>: Words
    where
        Self: 'a;

    /// Allocates `1 << order` zeroed pages, naturally aligned, and returns
    /// their physical address.
    ///
    /// # Errors
    ///
    /// [`HwError::NoMemory`] when no memory is left.
    fn alloc_pages(&self, order: u32) -> Result<u64, HwError>;

    /// Frees pages returned by [`PhysMem::alloc_pages`].
    ///
    /// # Safety
    ///
    /// `pa` was returned by [`PhysMem::alloc_pages`] with `order` and is not
    /// freed yet; nothing (no view, no table entry the IOMMU may still walk)
    /// uses it any more.
    unsafe fn free_pages(&self, pa: u64, order: u32);

    /// The `len` words from `pa`.
    ///
    /// # Safety
    ///
    /// `pa` is 8-byte aligned and `[pa, pa + 8 * len)` lies inside an
    /// allocation of [`PhysMem::alloc_pages`] that is not freed while the
    /// view is in use.
    unsafe fn words(&self, pa: u64, len: usize) -> Self::Words<'_>;
}

/// Consecutive 64-bit words of table memory.
///
/// Indices are checked against [`Words::len`]: a wrong index panics, it
/// never reaches memory the view does not cover.
pub(crate) trait Words: Copy {
    /// The number of words.
    fn len(self) -> usize;

    /// The `len` words from word `first` of this view; panics unless they
    /// all lie in it.
    fn sub(self, first: usize, len: usize) -> Self;

    /// Reads word `i` with a single load.
    fn read(self, i: usize) -> u64;

    /// Writes word `i` with a single store, so the IOMMU sees the old or the
    /// new value, never a mix.
    fn write(self, i: usize, val: u64);

    /// Replaces word `i` by `new` if it holds `old`, with release ordering
    /// (what was stored before, such as a new table's zeroes, is visible to
    /// whoever reads `new`). Returns the word's value when it did not hold
    /// `old`.
    fn cmpxchg(self, i: usize, old: u64, new: u64) -> Result<(), u64>;
}
