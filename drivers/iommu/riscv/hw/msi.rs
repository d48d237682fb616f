// SPDX-License-Identifier: GPL-2.0

//! MSI page tables, flat mode (spec 2.3.3, 9.5): which guest-physical
//! addresses are MSI doorbells, and where each one really goes.

use super::{
    field::{get_ppn, put_ppn, Field},
    HwError, PAGE_SHIFT,
};

/// Size of an MSI page-table entry.
pub(crate) const MSI_PTE_SIZE: u64 = 16;
/// Largest table this driver builds: 4096 interrupt files (64 KiB).
pub(crate) const MAX_FILES_LOG2: u32 = 12;

/// Valid.
const MSI_PTE_V: Field = Field::bit(0);
/// The entry's mode.
const MSI_PTE_M: Field = Field::new(2, 1);
/// `M` = 3: basic (flat) translation, the write goes to `PPN`.
const MSI_PTE_M_FLAT: u64 = 3;
/// Custom use (must be 0 for the IOMMU to use the entry as specified).
const MSI_PTE_C: Field = Field::bit(63);

/// A flat MSI PTE redirecting writes to the interrupt file at `pa`.
pub(crate) const fn flat_pte(pa: u64) -> [u64; 2] {
    [
        MSI_PTE_V.all() | MSI_PTE_M.put(MSI_PTE_M_FLAT) | put_ppn(pa),
        0,
    ]
}

/// The interrupt file a flat MSI PTE redirects to, `None` if it is invalid
/// or not flat.
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "decodes entries for the host tests")
)]
pub(crate) const fn flat_target(pte: [u64; 2]) -> Option<u64> {
    if !MSI_PTE_V.is_set(pte[0])
        || MSI_PTE_M.get(pte[0]) != MSI_PTE_M_FLAT
        || MSI_PTE_C.is_set(pte[0])
    {
        return None;
    }
    Some(get_ppn(pte[0]))
}

/// Gathers the bits of `x` selected by `mask` into the low bits of the
/// result, in order (RISC-V `bext` over a mask, spec 2.3.3 step 5).
pub(crate) const fn extract(x: u64, mask: u64) -> u64 {
    let mut out = 0;
    let mut j = 0;
    let mut i = 0;
    while i < 64 {
        if mask & (1 << i) != 0 {
            out |= ((x >> i) & 1) << j;
            j += 1;
        }
        i += 1;
    }
    out
}

/// Scatters the low bits of `x` to the positions of `mask`'s bits, in
/// order (the inverse of [`extract`]).
pub(crate) const fn deposit(x: u64, mask: u64) -> u64 {
    let mut out = 0;
    let mut j = 0;
    let mut i = 0;
    while i < 64 {
        if mask & (1 << i) != 0 {
            out |= ((x >> j) & 1) << i;
            j += 1;
        }
        i += 1;
    }
    out
}

/// Which page numbers are MSI doorbells and how they index the table:
/// `msi_addr_mask` and `msi_addr_pattern` of a device context.
///
/// # Invariants
///
/// `pattern & mask == 0` and `mask` has at most [`MAX_FILES_LOG2`] bits set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct MsiGeometry {
    mask: u64,
    pattern: u64,
}

impl MsiGeometry {
    /// The smallest geometry covering the interrupt files at `files`
    /// (physical page addresses): the mask is every page-number bit that
    /// varies among them, the pattern what they share.
    ///
    /// # Errors
    ///
    /// [`HwError::Invalid`] for no files or an unaligned one,
    /// [`HwError::Range`] when they span more than 2^12 table entries.
    pub(crate) fn from_files(files: &[u64]) -> Result<Self, HwError> {
        let first = *files.first().ok_or(HwError::Invalid)?;
        let mut mask = 0;
        for &f in files {
            if f & ((1 << PAGE_SHIFT) - 1) != 0 {
                return Err(HwError::Invalid);
            }
            mask |= (f ^ first) >> PAGE_SHIFT;
        }
        if mask.count_ones() > MAX_FILES_LOG2 {
            return Err(HwError::Range);
        }
        // INVARIANT: the pattern has the mask's bits cleared; popcount checked.
        Ok(Self {
            mask,
            pattern: (first >> PAGE_SHIFT) & !mask,
        })
    }

    /// `msi_addr_mask`.
    pub(crate) const fn mask(&self) -> u64 {
        self.mask
    }

    /// `msi_addr_pattern`.
    pub(crate) const fn pattern(&self) -> u64 {
        self.pattern
    }

    /// Entries of the MSI page table.
    pub(crate) const fn entries(&self) -> u64 {
        1 << self.mask.count_ones()
    }

    /// Page order of the MSI page table.
    pub(crate) const fn table_order(&self) -> u32 {
        let bytes_log2 = self.mask.count_ones() + 4;
        bytes_log2.saturating_sub(PAGE_SHIFT)
    }

    /// The doorbell page of table entry `index`.
    pub(crate) const fn address(&self, index: u64) -> u64 {
        (self.pattern | deposit(index, self.mask)) << PAGE_SHIFT
    }

    /// The table index of the doorbell page at `addr`, `None` when `addr`
    /// is not an MSI address of this geometry.
    pub(crate) const fn index(&self, addr: u64) -> Option<u64> {
        let page = addr >> PAGE_SHIFT;
        if page & !self.mask != self.pattern {
            return None;
        }
        Some(extract(page, self.mask))
    }
}
