// SPDX-License-Identifier: GPL-2.0

//! IO page tables of either stage: map, unmap, look up, tear down.
//!
//! Tables are never freed while the table lives: a table that empties stays
//! in place and later mappings reuse it (a large mapping requested where a
//! table exists is written as leaves of that table's size). This keeps every
//! unmap a pure clear of leaves, so an address-ranged IOTLB invalidation is
//! always enough, and the memory used is bounded by the address space used.
//!
//! It also lets walks run without a lock, as the kernel's generic page table
//! code does (drivers/iommu/generic_pt): the IOMMU core never lets two
//! callers map or unmap overlapping ranges at once, so concurrent callers
//! only meet where neighbouring ranges share a table. They then write
//! different words of it, or both find the same missing table: each
//! allocates one and installs it with a compare-and-exchange, and the loser
//! frees its page and follows the winner's. A table, once linked, stays
//! until [`PageTable::destroy`], so a walker never follows a link to freed
//! memory.
//!
//! Walks visit each table once per call: `map_pages` and `unmap_pages`
//! fill or clear consecutive entries of a leaf table in one visit and walk
//! down again only where the range crosses into the next table.

use super::{
    is_aligned,
    mem::{PhysMem, Words},
    pte::{Mode, Prot, Pte},
    HwError, PAGE_SIZE,
};

/// Entries of every table but a second-stage root.
const ENTRIES: usize = 512;

/// One IO page table.
///
/// # Invariants
///
/// `root` is an allocation of order `mode.root_order()` holding a table of
/// `mode`; every valid non-leaf entry below it points to a 4 KiB table the
/// page table owns, which stays allocated until [`PageTable::destroy`].
#[derive(Debug)]
pub(crate) struct PageTable {
    root: u64,
    mode: Mode,
    /// `mode`'s geometry, looked up once: walks index with shifts and masks
    /// of these instead of matching the mode at every level.
    geometry: Geometry,
}

/// What a walk needs of a mode.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    /// The root's level (levels - 1).
    top: u32,
    /// Index mask of the root (2047 for second-stage roots, else 511).
    top_mask: u64,
    /// The end of the input addresses.
    aperture_end: u64,
}

impl Geometry {
    const fn of(mode: Mode) -> Self {
        let top = mode.levels() - 1;
        Self {
            top,
            top_mask: (ENTRIES << mode.root_order()) as u64 - 1,
            aperture_end: mode.aperture_end(),
        }
    }

    /// Index into the table at `level` for `iova` (as [`Mode::index`]).
    #[inline(always)]
    fn index(self, iova: u64, level: u32) -> usize {
        let mask = if level == self.top {
            self.top_mask
        } else {
            511
        };
        // CAST: at most 2047.
        ((iova >> Mode::shift(level)) & mask) as usize
    }
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
    pub(crate) fn new(mem: &impl PhysMem, mode: Mode) -> Result<Self, HwError> {
        let root = mem.alloc_pages(mode.root_order())?;
        // INVARIANT: a zeroed allocation of the root order is an empty table.
        Ok(Self {
            root,
            mode,
            geometry: Geometry::of(mode),
        })
    }

    /// Another handle on the live table rooted at `root`, for reading (debugfs).
    ///
    /// # Safety
    ///
    /// `root` is the root of a live table of `mode` made by [`Self::new`],
    /// whose owner outlives the handle and does not destroy the table
    /// meanwhile; the handle is only read through ([`Self::lookup`],
    /// [`Self::for_each_leaf`]), never mapped through or destroyed.
    pub(crate) unsafe fn view(root: u64, mode: Mode) -> Self {
        // INVARIANT: by the safety requirements.
        Self {
            root,
            mode,
            geometry: Geometry::of(mode),
        }
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

    fn root_table<'m, M: PhysMem>(&self, mem: &'m M) -> M::Words<'m> {
        // SAFETY: `root` is an allocation of order `mode.root_order()`, that
        // is of `ENTRIES << root_order` words, which lives until `destroy`
        // takes `self` (type invariant), so not while `self` is borrowed.
        // CAST: `top_mask + 1` is the root's entry count, at most 2048.
        unsafe { mem.words(self.root, self.geometry.top_mask as usize + 1) }
    }

    /// The table that `pte`, a valid non-leaf entry, points to.
    ///
    /// # Safety
    ///
    /// `pte` was read from a table of this page table (above level 0), and
    /// the view is used only while `self` is borrowed.
    unsafe fn next<'m, M: PhysMem>(mem: &'m M, pte: Pte) -> M::Words<'m> {
        // SAFETY: such an entry points to a 4 KiB table the page table owns
        // until `destroy` (type invariant), which the caller does not reach
        // while it uses the view.
        unsafe { mem.words(pte.pa(), ENTRIES) }
    }

    fn check(&self, iova: u64, size: u64) -> Result<(), HwError> {
        let end = iova.checked_add(size).ok_or(HwError::Range)?;
        if size == 0 {
            return Err(HwError::Invalid);
        }
        if end > self.geometry.aperture_end {
            return Err(HwError::Range);
        }
        Ok(())
    }

    /// Walks down to the table at `level` holding the entry for `iova`,
    /// linking the tables missing on the way.
    fn table_for<'m, M: PhysMem>(
        &self,
        mem: &'m M,
        iova: u64,
        level: u32,
    ) -> Result<M::Words<'m>, HwError> {
        let mut table = self.root_table(mem);
        for l in (level + 1..=self.geometry.top).rev() {
            let i = self.geometry.index(iova, l);
            let mut pte = Pte(table.read(i));
            if !pte.is_valid() {
                pte = Self::link_table(mem, table, i)?;
            }
            // Neighbours only ever link tables here, so a leaf (or, after a
            // lost race, anything but a table) overlaps the range.
            if !pte.is_valid() || pte.is_leaf() {
                return Err(HwError::Exists);
            }
            // SAFETY: a valid non-leaf entry read from this page table, at
            // level `l` > 0; the view lives for this borrow of `self`.
            table = unsafe { Self::next(mem, pte) };
        }
        Ok(table)
    }

    /// Links a new, empty table into entry `i` of `table`, found invalid,
    /// and returns the entry: the new table's, or what another walk linked
    /// there first. Out of line: walks rarely need it.
    #[inline(never)]
    fn link_table<'m, M: PhysMem>(
        mem: &'m M,
        table: M::Words<'m>,
        i: usize,
    ) -> Result<Pte, HwError> {
        let new = mem.alloc_pages(0)?;
        Ok(match table.cmpxchg(i, Pte::NONE.0, Pte::table(new).0) {
            Ok(()) => Pte::table(new),
            Err(current) => {
                // Another walk linked a table first: follow it.
                // SAFETY: `new` was allocated above with order 0, and
                // nothing links to it or views it.
                unsafe { mem.free_pages(new, 0) };
                Pte(current)
            }
        })
    }

    /// Maps `count` pages of `pgsize` bytes (4 KiB, 2 MiB or 1 GiB) from `iova`
    /// to `pa`. Returns the bytes mapped and, if it stopped early, why; what
    /// was mapped stays mapped (the IOMMU core unmaps it).
    ///
    /// Concurrent calls on ranges that do not overlap are allowed.
    pub(crate) fn map_pages(
        &self,
        mem: &impl PhysMem,
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
        let mut done = 0;
        while done < count {
            let va = iova + done * pgsize;
            let table = match self.table_for(mem, va, level) {
                Ok(table) => table,
                Err(e) => return (done * pgsize, Err(e)),
            };
            // The entries of this table the range covers, in one visit.
            let first = self.geometry.index(va, level);
            // CAST: a table has at most 2048 entries.
            let n = (count - done).min((table.len() - first) as u64);
            let mut leaf = Pte::leaf(pa + done * pgsize, prot);
            for k in 0..n {
                // CAST: `k` < 2048, as above.
                let i = first + k as usize;
                if Pte(table.read(i)).is_valid() {
                    // Taken, or a table in the way.
                    let off = (done + k) * pgsize;
                    if let Err(e) = self.map_leaf(mem, table, i, level, iova + off, leaf.pa(), prot)
                    {
                        return (off, Err(e));
                    }
                } else {
                    table.write(i, leaf.0);
                }
                leaf = leaf.next_leaf(pgsize);
            }
            done += n;
        }
        (count * pgsize, Ok(()))
    }

    /// Maps one leaf of `level` in entry `i` of `table`. Where a table sits
    /// in that entry, it is filled with leaves one level down instead, all
    /// or nothing.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn map_leaf<'m, M: PhysMem>(
        &self,
        mem: &'m M,
        table: M::Words<'m>,
        i: usize,
        level: u32,
        iova: u64,
        pa: u64,
        prot: Prot,
    ) -> Result<(), HwError> {
        let pte = Pte(table.read(i));
        if !pte.is_valid() {
            table.write(i, Pte::leaf(pa, prot).0);
            return Ok(());
        }
        if pte.is_leaf() || level == 0 {
            return Err(HwError::Exists);
        }
        // SAFETY: a valid non-leaf entry of this page table above level 0.
        let sub = unsafe { Self::next(mem, pte) };
        let step = level_size(level - 1);
        for j in 0..ENTRIES {
            // CAST: `j` < 512.
            let off = j as u64 * step;
            if let Err(e) = self.map_leaf(mem, sub, j, level - 1, iova + off, pa + off, prot) {
                // CAST: as above.
                self.unmap_pages(mem, iova, step, j as u64);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Unmaps `count` pages of `pgsize` bytes from `iova`. Returns the bytes
    /// unmapped: a larger leaf starting inside the range is unmapped whole and
    /// counted whole; the walk stops at the first hole or at a leaf it would
    /// have to split. The caller invalidates the IOTLB for what was unmapped.
    ///
    /// Concurrent calls on ranges that do not overlap are allowed.
    pub(crate) fn unmap_pages(
        &self,
        mem: &impl PhysMem,
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
        'walk: while done < size {
            // Down to the leaf that maps the next address.
            let va = iova + done;
            let mut table = self.root_table(mem);
            let mut level = self.geometry.top;
            loop {
                let pte = Pte(table.read(self.geometry.index(va, level)));
                if !pte.is_valid() || (!pte.is_leaf() && level == 0) {
                    break 'walk;
                }
                if pte.is_leaf() {
                    break;
                }
                // SAFETY: a valid non-leaf entry of this page table above
                // level 0.
                table = unsafe { Self::next(mem, pte) };
                level -= 1;
            }
            let leaf = level_size(level);
            if !is_aligned(va, leaf) {
                break;
            }
            // Clear it and the leaves after it in this table, in one visit.
            for i in self.geometry.index(va, level)..table.len() {
                if done >= size {
                    break 'walk;
                }
                if !Pte(table.read(i)).is_leaf() {
                    // A hole or a table: walk down again.
                    continue 'walk;
                }
                table.write(i, Pte::NONE.0);
                done += leaf;
            }
        }
        done
    }

    /// Looks up `iova`: the leaf's physical address plus the offset, its
    /// size and permissions; `None` when nothing maps it.
    pub(crate) fn lookup(&self, mem: &impl PhysMem, iova: u64) -> Option<(u64, u64, Prot)> {
        if iova >= self.geometry.aperture_end {
            return None;
        }
        let mut table = self.root_table(mem);
        for level in (0..=self.geometry.top).rev() {
            let pte = Pte(table.read(self.geometry.index(iova, level)));
            if pte.is_leaf() {
                let size = level_size(level);
                return Some((pte.pa() + (iova & (size - 1)), size, pte.prot()));
            }
            if !pte.is_valid() || level == 0 {
                return None;
            }
            // SAFETY: a valid non-leaf entry of this page table above level 0.
            table = unsafe { Self::next(mem, pte) };
        }
        None
    }

    /// Physical address `iova` translates to, if mapped.
    pub(crate) fn iova_to_phys(&self, mem: &impl PhysMem, iova: u64) -> Option<u64> {
        self.lookup(mem, iova).map(|(pa, _, _)| pa)
    }

    /// Calls `f(iova, pa, size, prot)` for every leaf, in IOVA order.
    pub(crate) fn for_each_leaf(&self, mem: &impl PhysMem, f: &mut dyn FnMut(u64, u64, u64, Prot)) {
        Self::walk_leaves(mem, self.root_table(mem), self.geometry.top, 0, f);
    }

    fn walk_leaves<'m, M: PhysMem>(
        mem: &'m M,
        table: M::Words<'m>,
        level: u32,
        base: u64,
        f: &mut dyn FnMut(u64, u64, u64, Prot),
    ) {
        for i in 0..table.len() {
            let pte = Pte(table.read(i));
            // CAST: `i` < 2048.
            let iova = base + i as u64 * level_size(level);
            if pte.is_leaf() {
                f(iova, pte.pa(), level_size(level), pte.prot());
            } else if pte.is_valid() && level > 0 {
                // SAFETY: a valid non-leaf entry of this page table above
                // level 0, viewed during the caller's borrow of the table.
                let sub = unsafe { Self::next(mem, pte) };
                Self::walk_leaves(mem, sub, level - 1, iova, f);
            }
        }
    }

    /// Frees every table.
    ///
    /// # Safety
    ///
    /// The IOMMU no longer walks the table: the device contexts pointing at
    /// it are gone and their caches invalidated.
    pub(crate) unsafe fn destroy(self, mem: &impl PhysMem) {
        // SAFETY: the caller's guarantee, passed on.
        unsafe { Self::free_tables(mem, self.root_table(mem), self.geometry.top) };
        // SAFETY: the root was allocated with `root_order` (type invariant);
        // its view above is no longer used, and the IOMMU no longer walks it
        // (the caller's guarantee).
        unsafe { mem.free_pages(self.root, self.mode.root_order()) };
    }

    /// Frees the tables below `table`, a table of this page table at `level`.
    ///
    /// # Safety
    ///
    /// As for [`Self::destroy`]; the tables below `table` are not used again.
    unsafe fn free_tables<'m, M: PhysMem>(mem: &'m M, table: M::Words<'m>, level: u32) {
        if level == 0 {
            return;
        }
        for i in 0..table.len() {
            let pte = Pte(table.read(i));
            if pte.is_valid() && !pte.is_leaf() {
                // SAFETY: a valid non-leaf entry of this page table above level 0.
                let sub = unsafe { Self::next(mem, pte) };
                // SAFETY: the caller's guarantee covers the tables below.
                unsafe { Self::free_tables(mem, sub, level - 1) };
                // SAFETY: the table was allocated with order 0 and linked
                // only from this entry; its view is no longer used, and the
                // IOMMU no longer walks it (`destroy`'s caller guarantees it).
                unsafe { mem.free_pages(pte.pa(), 0) };
            }
        }
    }
}
