// SPDX-License-Identifier: GPL-2.0

//! IO page tables of either stage: map, unmap, look up, tear down.
//!
//! Tables are never freed while the table lives: a table that empties stays
//! in place and later mappings reuse it (a large mapping requested where a
//! table exists is written as leaves of that table's size). This keeps every
//! unmap a pure clear of leaves, so an address-ranged IOTLB invalidation is
//! always enough, and the memory used is bounded by the address space used.

use super::{
    is_aligned,
    mem::PhysMem,
    pte::{Mode, Prot, Pte},
    HwError, PAGE_SIZE,
};

/// One IO page table.
///
/// # Invariants
///
/// `root` is an allocation of order `mode.root_order()` holding a table of
/// `mode`; every valid non-leaf entry below it points to a 4 KiB table the
/// page table owns.
#[derive(Debug)]
pub(crate) struct PageTable {
    root: u64,
    mode: Mode,
}

/// Size of a leaf at `level`.
const fn level_size(level: u32) -> u64 {
    1 << Mode::shift(level)
}

/// The level whose leaves are `pgsize` bytes.
fn level_of(pgsize: u64) -> Result<u32, HwError> {
    match pgsize {
        s if s == level_size(0) => Ok(0),
        s if s == level_size(1) => Ok(1),
        s if s == level_size(2) => Ok(2),
        _ => Err(HwError::Invalid),
    }
}

impl PageTable {
    /// Allocates an empty table of `mode`.
    ///
    /// # Errors
    ///
    /// [`HwError::NoMemory`] when the root cannot be allocated.
    pub(crate) fn new(mem: &mut impl PhysMem, mode: Mode) -> Result<Self, HwError> {
        let root = mem.alloc_pages(mode.root_order())?;
        // INVARIANT: a zeroed allocation of the root order is an empty table.
        Ok(Self { root, mode })
    }

    /// Another handle on the live table rooted at `root`, for reading (debugfs).
    /// Dropping it frees nothing; only the table's owner calls
    /// [`Self::destroy`], and the caller keeps the owner alive meanwhile.
    pub(crate) fn view(root: u64, mode: Mode) -> Self {
        Self { root, mode }
    }

    /// Physical address of the root table.
    pub(crate) fn root(&self) -> u64 {
        self.root
    }

    /// The table's translation mode.
    #[cfg_attr(not(test), expect(dead_code, reason = "the host tests check it"))]
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    fn check(&self, iova: u64, size: u64) -> Result<(), HwError> {
        let end = iova.checked_add(size).ok_or(HwError::Range)?;
        if size == 0 {
            return Err(HwError::Invalid);
        }
        if end > self.mode.aperture_end() {
            return Err(HwError::Range);
        }
        Ok(())
    }

    /// Maps `count` pages of `pgsize` bytes (4 KiB, 2 MiB or 1 GiB) from `iova`
    /// to `pa`. Returns the bytes mapped and, if it stopped early, why; what
    /// was mapped stays mapped (the IOMMU core unmaps it).
    pub(crate) fn map_pages(
        &self,
        mem: &mut impl PhysMem,
        iova: u64,
        pa: u64,
        pgsize: u64,
        count: u64,
        prot: Prot,
    ) -> (u64, Result<(), HwError>) {
        let check = || -> Result<u32, HwError> {
            let level = level_of(pgsize)?;
            if !is_aligned(iova, pgsize) || !is_aligned(pa, pgsize) || !(prot.read || prot.write) {
                return Err(HwError::Invalid);
            }
            self.check(iova, pgsize.checked_mul(count).ok_or(HwError::Range)?)?;
            Ok(level)
        };
        let level = match check() {
            Ok(level) => level,
            Err(e) => return (0, Err(e)),
        };
        let mut mapped = 0;
        for i in 0..count {
            let off = i * pgsize;
            if let Err(e) = self.map_one(
                mem,
                self.root,
                self.mode.levels() - 1,
                iova + off,
                pa + off,
                level,
                prot,
            ) {
                return (mapped, Err(e));
            }
            mapped += pgsize;
        }
        (mapped, Ok(()))
    }

    /// Maps one leaf of `target` level at `iova`, descending from `table` at
    /// `level`. Where a table already sits at the target level, the leaf is
    /// written as leaves of the next level down instead.
    #[allow(clippy::too_many_arguments)]
    fn map_one(
        &self,
        mem: &mut impl PhysMem,
        table: u64,
        level: u32,
        iova: u64,
        pa: u64,
        target: u32,
        prot: Prot,
    ) -> Result<(), HwError> {
        let slot = table + 8 * self.mode.index(iova, level) as u64;
        let pte = Pte(mem.read_u64(slot));
        if level == target {
            if !pte.is_valid() {
                mem.write_u64(slot, Pte::leaf(pa, prot).0);
                return Ok(());
            }
            if pte.is_leaf() || target == 0 {
                return Err(HwError::Exists);
            }
            // A table is in the way: fill it with leaves one level down, all
            // or nothing.
            let step = level_size(target - 1);
            for i in 0..512 {
                let off = i * step;
                if let Err(e) = self.map_one(
                    mem,
                    pte.pa(),
                    level - 1,
                    iova + off,
                    pa + off,
                    target - 1,
                    prot,
                ) {
                    self.unmap_pages(mem, iova, step, i);
                    return Err(e);
                }
            }
            return Ok(());
        }
        let next = if !pte.is_valid() {
            let new = mem.alloc_pages(0)?;
            mem.write_u64(slot, Pte::table(new).0);
            new
        } else if pte.is_leaf() {
            return Err(HwError::Exists);
        } else {
            pte.pa()
        };
        self.map_one(mem, next, level - 1, iova, pa, target, prot)
    }

    /// Unmaps `count` pages of `pgsize` bytes from `iova`. Returns the bytes
    /// unmapped: a larger leaf starting inside the range is unmapped whole and
    /// counted whole; the walk stops at the first hole or at a leaf it would
    /// have to split. The caller invalidates the IOTLB for what was unmapped.
    pub(crate) fn unmap_pages(
        &self,
        mem: &mut impl PhysMem,
        iova: u64,
        pgsize: u64,
        count: u64,
    ) -> u64 {
        let Some(size) = pgsize.checked_mul(count) else {
            return 0;
        };
        if self.check(iova, size).is_err() || !is_aligned(iova, PAGE_SIZE) {
            return 0;
        }
        let mut done = 0;
        while done < size {
            let n = self.unmap_one(mem, iova + done);
            if n == 0 {
                break;
            }
            done += n;
        }
        done
    }

    /// Clears the leaf that maps `iova` if it starts there; returns its size.
    fn unmap_one(&self, mem: &mut impl PhysMem, iova: u64) -> u64 {
        let mut table = self.root;
        for level in (0..self.mode.levels()).rev() {
            let slot = table + 8 * self.mode.index(iova, level) as u64;
            let pte = Pte(mem.read_u64(slot));
            if !pte.is_valid() {
                return 0;
            }
            if pte.is_leaf() {
                if !is_aligned(iova, level_size(level)) {
                    return 0;
                }
                mem.write_u64(slot, Pte::NONE.0);
                return level_size(level);
            }
            table = pte.pa();
        }
        0
    }

    /// Looks up `iova`: the leaf's physical address plus the offset, its
    /// size and permissions; `None` when nothing maps it.
    pub(crate) fn lookup(&self, mem: &impl PhysMem, iova: u64) -> Option<(u64, u64, Prot)> {
        if iova >= self.mode.aperture_end() {
            return None;
        }
        let mut table = self.root;
        for level in (0..self.mode.levels()).rev() {
            let pte = Pte(mem.read_u64(table + 8 * self.mode.index(iova, level) as u64));
            if !pte.is_valid() {
                return None;
            }
            if pte.is_leaf() {
                let size = level_size(level);
                return Some((pte.pa() + (iova & (size - 1)), size, pte.prot()));
            }
            table = pte.pa();
        }
        None
    }

    /// Physical address `iova` translates to, if mapped.
    pub(crate) fn iova_to_phys(&self, mem: &impl PhysMem, iova: u64) -> Option<u64> {
        self.lookup(mem, iova).map(|(pa, _, _)| pa)
    }

    /// Calls `f(iova, pa, size, prot)` for every leaf, in IOVA order.
    pub(crate) fn for_each_leaf(&self, mem: &impl PhysMem, f: &mut dyn FnMut(u64, u64, u64, Prot)) {
        let entries = if self.mode.is_second_stage() {
            2048
        } else {
            512
        };
        self.walk_leaves(mem, self.root, self.mode.levels() - 1, 0, entries, f);
    }

    fn walk_leaves(
        &self,
        mem: &impl PhysMem,
        table: u64,
        level: u32,
        base: u64,
        entries: u64,
        f: &mut dyn FnMut(u64, u64, u64, Prot),
    ) {
        for i in 0..entries {
            let pte = Pte(mem.read_u64(table + 8 * i));
            let iova = base + i * level_size(level);
            if pte.is_leaf() {
                f(iova, pte.pa(), level_size(level), pte.prot());
            } else if pte.is_valid() && level > 0 {
                self.walk_leaves(mem, pte.pa(), level - 1, iova, 512, f);
            }
        }
    }

    /// Frees every table. The IOMMU must no longer use the table: the device
    /// contexts pointing at it are gone and their caches invalidated.
    pub(crate) fn destroy(self, mem: &mut impl PhysMem) {
        let entries = if self.mode.is_second_stage() {
            2048
        } else {
            512
        };
        Self::free_tables(mem, self.root, self.mode.levels() - 1, entries);
        mem.free_pages(self.root, self.mode.root_order());
    }

    fn free_tables(mem: &mut impl PhysMem, table: u64, level: u32, entries: u64) {
        if level == 0 {
            return;
        }
        for i in 0..entries {
            let pte = Pte(mem.read_u64(table + 8 * i));
            if pte.is_valid() && !pte.is_leaf() {
                Self::free_tables(mem, pte.pa(), level - 1, 512);
                mem.free_pages(pte.pa(), 0);
            }
        }
    }
}
