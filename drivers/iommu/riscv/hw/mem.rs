// SPDX-License-Identifier: GPL-2.0

//! Physical memory as the table code sees it.

use super::HwError;

/// Memory the IOMMU reads its tables from.
///
/// The driver implements it over pages it allocates (and keeps coherent with
/// the IOMMU); the host tests implement it over a map of words.
pub(crate) trait PhysMem {
    /// Allocates `1 << order` zeroed pages, naturally aligned, and returns
    /// their physical address.
    ///
    /// # Errors
    ///
    /// [`HwError::NoMemory`] when no memory is left.
    fn alloc_pages(&mut self, order: u32) -> Result<u64, HwError>;

    /// Frees pages returned by [`PhysMem::alloc_pages`] with the same order.
    fn free_pages(&mut self, pa: u64, order: u32);

    /// Reads the 64-bit word at `pa` (8-byte aligned, inside an allocation).
    fn read_u64(&self, pa: u64) -> u64;

    /// Writes the 64-bit word at `pa` (8-byte aligned, inside an allocation)
    /// as one single-copy-atomic store, so the IOMMU never sees half of it.
    fn write_u64(&mut self, pa: u64, val: u64);
}
