// SPDX-License-Identifier: GPL-2.0

//! Page-table entries and translation modes (Sv39/48/57 and Sv39x4/48x4/57x4).

use super::{
    field::{get_ppn, put_ppn, Field},
    PAGE_SHIFT,
};

/// A page-table entry of either stage (RISC-V privileged spec, 10.3.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Pte(pub(crate) u64);

impl Pte {
    /// Valid.
    pub(crate) const V: u64 = Field::bit(0).all();
    /// Readable.
    pub(crate) const R: u64 = Field::bit(1).all();
    /// Writable.
    pub(crate) const W: u64 = Field::bit(2).all();
    /// Executable.
    pub(crate) const X: u64 = Field::bit(3).all();
    /// User: device requests without a privileged PASID are user accesses,
    /// and second-stage entries must always have it.
    pub(crate) const U: u64 = Field::bit(4).all();
    /// Accessed.
    pub(crate) const A: u64 = Field::bit(6).all();
    /// Dirty.
    pub(crate) const D: u64 = Field::bit(7).all();

    /// A leaf mapping `pa` with `prot`. A and D are set up front, so the
    /// IOMMU never needs to update them. RISC-V has no write-only pages
    /// (W without R is a reserved encoding), so write implies read: the DMA
    /// API maps `DMA_FROM_DEVICE` buffers write-only.
    pub(crate) const fn leaf(pa: u64, prot: Prot) -> Self {
        let mut bits = Self::V | Self::U | Self::A;
        if prot.read || prot.write {
            bits |= Self::R;
        }
        if prot.write {
            bits |= Self::W | Self::D;
        }
        Self(bits | put_ppn(pa))
    }

    /// Whether the entry is valid.
    pub(crate) const fn is_valid(self) -> bool {
        self.0 & Self::V != 0
    }

    /// Whether the entry is a valid leaf (any of R, W, X set).
    pub(crate) const fn is_leaf(self) -> bool {
        self.is_valid() && self.0 & (Self::R | Self::W | Self::X) != 0
    }

    /// The physical address the entry points at.
    pub(crate) const fn pa(self) -> u64 {
        get_ppn(self.0)
    }

    /// The entry's permissions.
    pub(crate) const fn prot(self) -> Prot {
        Prot {
            read: self.0 & Self::R != 0,
            write: self.0 & Self::W != 0,
        }
    }
}

/// Access permissions of a mapping.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Prot {
    /// Device reads allowed.
    pub(crate) read: bool,
    /// Device writes allowed.
    pub(crate) write: bool,
}

#[cfg_attr(
    not(test),
    expect(dead_code, reason = "permissions the host tests map with")
)]
impl Prot {
    /// Read and write.
    pub(crate) const RW: Self = Self {
        read: true,
        write: true,
    };
    /// Read only.
    pub(crate) const RO: Self = Self {
        read: true,
        write: false,
    };
}

/// A translation mode: first stage (`iosatp`) or second stage (`iohgatp`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// First stage, 3 levels, 39-bit IOVAs.
    Sv39,
    /// First stage, 4 levels, 48-bit IOVAs.
    Sv48,
    /// First stage, 5 levels, 57-bit IOVAs.
    Sv57,
    /// Second stage, 3 levels, 41-bit guest physical addresses.
    Sv39x4,
    /// Second stage, 4 levels, 50-bit guest physical addresses.
    Sv48x4,
    /// Second stage, 5 levels, 59-bit guest physical addresses.
    Sv57x4,
}

impl Mode {
    /// All modes, first stage then second.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the host tests and walker iterate over them")
    )]
    pub(crate) const ALL: [Self; 6] = [
        Self::Sv39,
        Self::Sv48,
        Self::Sv57,
        Self::Sv39x4,
        Self::Sv48x4,
        Self::Sv57x4,
    ];

    /// Number of levels of the table.
    pub(crate) const fn levels(self) -> u32 {
        match self {
            Self::Sv39 | Self::Sv39x4 => 3,
            Self::Sv48 | Self::Sv48x4 => 4,
            Self::Sv57 | Self::Sv57x4 => 5,
        }
    }

    /// Whether this is a second-stage (G-stage) mode.
    pub(crate) const fn is_second_stage(self) -> bool {
        matches!(self, Self::Sv39x4 | Self::Sv48x4 | Self::Sv57x4)
    }

    /// Width of the input address: second-stage roots are 4 times larger,
    /// so they translate 2 more bits.
    pub(crate) const fn input_bits(self) -> u32 {
        12 + 9 * self.levels() + if self.is_second_stage() { 2 } else { 0 }
    }

    /// The highest IOVA the driver hands out plus one. First-stage addresses
    /// must be sign-extended, so only the lower half is used.
    pub(crate) const fn aperture_end(self) -> u64 {
        if self.is_second_stage() {
            1 << self.input_bits()
        } else {
            1 << (self.input_bits() - 1)
        }
    }

    /// Page order of the root table: 16 KiB for second stage, else 4 KiB.
    pub(crate) const fn root_order(self) -> u32 {
        if self.is_second_stage() {
            2
        } else {
            0
        }
    }

    /// The `MODE` encoding in `iosatp` / `iohgatp` (8, 9, 10).
    pub(crate) const fn encoding(self) -> u64 {
        match self {
            Self::Sv39 | Self::Sv39x4 => 8,
            Self::Sv48 | Self::Sv48x4 => 9,
            Self::Sv57 | Self::Sv57x4 => 10,
        }
    }

    /// Bit position of the address bits indexing `level` (0 is the leaf level).
    pub(crate) const fn shift(level: u32) -> u32 {
        PAGE_SHIFT + 9 * level
    }

    /// Index into the table at `level` for `iova`.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "walks index with their geometry; the host tests check both"
        )
    )]
    pub(crate) const fn index(self, iova: u64, level: u32) -> usize {
        let bits = if level == self.levels() - 1 && self.is_second_stage() {
            11
        } else {
            9
        };
        ((iova >> Self::shift(level)) & ((1 << bits) - 1)) as usize
    }

    /// Leaf sizes this driver maps: 4 KiB, 2 MiB and 1 GiB.
    pub(crate) const PGSIZE_BITMAP: u64 = (1 << 12) | (1 << 21) | (1 << 30);
}
