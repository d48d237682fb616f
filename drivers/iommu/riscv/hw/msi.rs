// SPDX-License-Identifier: GPL-2.0

//! MSI page tables (spec 2.3.3, 9.5): which guest-physical addresses are
//! MSI doorbells, and where each one really goes: to an interrupt file
//! (flat mode) or into a memory-resident interrupt file with a notice MSI
//! (MRIF mode, [`super::mrif`]).

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
/// `M` = 1: MRIF mode, the write sets a pending bit in an MRIF.
const MSI_PTE_M_MRIF: u64 = 1;
/// Custom use (must be 0 for the IOMMU to use the entry as specified).
const MSI_PTE_C: Field = Field::bit(63);
/// MRIF mode, first word: the MRIF's address, bits 55:9.
const MSI_PTE_MRIF_ADDR: Field = Field::new(53, 7);
/// MRIF mode, second word: the notice's identity, bits 9:0 ...
const MSI_PTE_NID: Field = Field::new(9, 0);
/// ... and bit 10.
const MSI_PTE_NID_MSB: Field = Field::bit(60);

/// An MRIF-mode MSI PTE: writes set pending bits in the MRIF at `mrif`
/// (512-byte aligned), and a pending bit that is enabled makes the IOMMU
/// write identity `nid` (11 bits) to the interrupt file at `notice`.
pub(crate) const fn mrif_pte(mrif: u64, notice: u64, nid: u32) -> [u64; 2] {
    let nid = nid as u64;
    [
        MSI_PTE_V.all() | MSI_PTE_M.put(MSI_PTE_M_MRIF) | MSI_PTE_MRIF_ADDR.put(mrif >> 9),
        put_ppn(notice) | MSI_PTE_NID.put(nid) | MSI_PTE_NID_MSB.put(nid >> 10),
    ]
}

/// The MRIF, notice file and notice identity of an MRIF-mode MSI PTE,
/// `None` if it is invalid or not in MRIF mode.
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "decodes entries for the host tests")
)]
pub(crate) const fn mrif_target(pte: [u64; 2]) -> Option<(u64, u64, u32)> {
    if !MSI_PTE_V.is_set(pte[0])
        || MSI_PTE_M.get(pte[0]) != MSI_PTE_M_MRIF
        || MSI_PTE_C.is_set(pte[0])
    {
        return None;
    }
    let nid = MSI_PTE_NID.get(pte[1]) | MSI_PTE_NID_MSB.get(pte[1]) << 10;
    // CAST: 11 bits.
    Some((
        MSI_PTE_MRIF_ADDR.get(pte[0]) << 9,
        get_ppn(pte[1]),
        nid as u32,
    ))
}

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

    /// A window of `1 << bits` doorbell pages at `base`, which must be
    /// aligned to the window's size: the message addresses of MRIF mode,
    /// where entries are not interrupt files but whatever the driver
    /// chooses.
    ///
    /// # Errors
    ///
    /// [`HwError::Invalid`] for an unaligned base, [`HwError::Range`] for
    /// more than 2^12 entries.
    pub(crate) const fn window(base: u64, bits: u32) -> Result<Self, HwError> {
        if bits > MAX_FILES_LOG2 {
            return Err(HwError::Range);
        }
        let mask = (1 << bits) - 1;
        if (base >> PAGE_SHIFT) & mask != 0 || base & ((1 << PAGE_SHIFT) - 1) != 0 {
            return Err(HwError::Invalid);
        }
        // INVARIANT: aligned, so the pattern has the mask's bits cleared.
        Ok(Self {
            mask,
            pattern: base >> PAGE_SHIFT,
        })
    }

    /// The lowest doorbell address and the end of the highest.
    pub(crate) const fn span(&self) -> (u64, u64) {
        let lo = self.pattern << PAGE_SHIFT;
        (lo, ((self.pattern | self.mask) + 1) << PAGE_SHIFT)
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
