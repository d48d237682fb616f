// SPDX-License-Identifier: GPL-2.0

//! Queue arithmetic shared by the command, fault and page-request queues
//! (spec 6.9 - 6.14): a ring of `1 << log2` entries indexed by head and tail.

use super::{
    field::{put_ppn, Field},
    PAGE_SHIFT,
};

/// A queue-base register's `LOG2SZ-1` field.
const LOG2SZ_1: Field = Field::new(4, 0);

/// A ring's geometry.
///
/// # Invariants
///
/// `1 <= log2 <= 31`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Ring {
    log2: u32,
}

impl Ring {
    /// A ring of `1 << log2` entries, `None` outside 1..=31.
    pub(crate) const fn new(log2: u32) -> Option<Self> {
        if log2 >= 1 && log2 <= 31 {
            // INVARIANT: checked just above.
            Some(Self { log2 })
        } else {
            None
        }
    }

    /// Number of entries.
    pub(crate) const fn entries(self) -> u32 {
        1 << self.log2
    }

    /// `log2` of the number of entries.
    pub(crate) const fn log2(self) -> u32 {
        self.log2
    }

    /// The index after `i`.
    pub(crate) const fn next(self, i: u32) -> u32 {
        (i + 1) & (self.entries() - 1)
    }

    /// Entries written by the producer and not yet consumed.
    pub(crate) const fn used(self, head: u32, tail: u32) -> u32 {
        tail.wrapping_sub(head) & (self.entries() - 1)
    }

    /// Entries the producer may still write: one slot stays empty so that a
    /// full ring is told apart from an empty one.
    pub(crate) const fn free(self, head: u32, tail: u32) -> u32 {
        self.entries() - 1 - self.used(head, tail)
    }

    /// The queue-base register value (`cqb`, `fqb`, `pqb`) for a ring at `pa`.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "the host tests check the layout the driver writes through `register!`"
        )
    )]
    pub(crate) const fn base_reg(self, pa: u64) -> u64 {
        LOG2SZ_1.put((self.log2 - 1) as u64) | put_ppn(pa)
    }

    /// Page order of a ring of entries of `entry_size` bytes (at least a page).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the host tests size rings with it")
    )]
    pub(crate) const fn order(self, entry_size: u32) -> u32 {
        let bytes_log2 = self.log2 + entry_size.trailing_zeros();
        bytes_log2.saturating_sub(PAGE_SHIFT)
    }
}
