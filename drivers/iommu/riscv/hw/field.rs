// SPDX-License-Identifier: GPL-2.0

//! Fields of the IOMMU's in-memory words, declared as the specification
//! draws them (`hi:lo`), for the formats the host build shares with the
//! driver (the kernel's `bitfield!` needs the kernel crate; MMIO registers
//! use `register!`).

use super::PAGE_SHIFT;

/// Bits `hi..=lo` of a 64-bit word.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Field {
    lo: u32,
    mask: u64,
}

impl Field {
    /// Bits `hi` down to `lo`, `63 >= hi >= lo` (a constant's declaration
    /// fails to build otherwise).
    pub(crate) const fn new(hi: u32, lo: u32) -> Self {
        assert!(hi < 64 && hi >= lo);
        let width = hi - lo + 1;
        let mask = if width == 64 {
            u64::MAX
        } else {
            (1 << width) - 1
        };
        Self { lo, mask }
    }

    /// The one-bit field `n`.
    pub(crate) const fn bit(n: u32) -> Self {
        Self::new(n, n)
    }

    /// The field's value in `word`.
    pub(crate) const fn get(self, word: u64) -> u64 {
        (word >> self.lo) & self.mask
    }

    /// Whether the field is non-zero in `word` (a flag is set).
    pub(crate) const fn is_set(self, word: u64) -> bool {
        self.get(word) != 0
    }

    /// `value` in the field's place, its bits beyond the field's width
    /// dropped.
    pub(crate) const fn put(self, value: u64) -> u64 {
        (value & self.mask) << self.lo
    }

    /// The field with every bit set (a flag, as a word).
    pub(crate) const fn all(self) -> u64 {
        self.mask << self.lo
    }
}

/// The page-number field of table pointers and PTEs: `PPN` in bits 53:10,
/// the page of a 56-bit physical address.
pub(crate) const PPN: Field = Field::new(53, 10);

/// `pa`'s page number in a [`PPN`] field.
pub(crate) const fn put_ppn(pa: u64) -> u64 {
    PPN.put(pa >> PAGE_SHIFT)
}

/// The physical address of the page a [`PPN`] field in `word` names.
pub(crate) const fn get_ppn(word: u64) -> u64 {
    PPN.get(word) << PAGE_SHIFT
}
