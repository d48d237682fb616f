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
//! memory. The tables are a [`Tree`], which alone links and follows links.
//!
//! Walks visit each table once per call: `map_pages` and `unmap_pages`
//! fill or clear consecutive entries of a leaf table in one visit and walk
//! down again only where the range crosses into the next table.

use super::{
    is_aligned,
    mem::PhysMem,
    pte::{Mode, Prot, Pte},
    tree::{Leaf, Node, Tree, Unwalked, ENTRIES},
    HwError, PAGE_SIZE,
};

/// The leaf bits of a page-table entry: a valid entry with none of them
/// links a table one level down.
const LEAF_BITS: u64 = Pte::R | Pte::W | Pte::X;

/// A table of a [`PageTable`].
type Table<'t, W> = Node<'t, W, LEAF_BITS>;

/// One IO page table.
///
/// # Invariants
///
/// `tree`'s root is of order `mode.root_order()`, at level
/// `mode.levels() - 1`.
#[derive(Debug)]
pub(crate) struct PageTable {
    tree: Tree<LEAF_BITS>,
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

/// An entry of a [`Table`], by kind.
enum Entry<'t, W> {
    /// Not valid.
    Empty,
    /// A leaf.
    Leaf(Pte),
    /// A link to a table one level down.
    Table(Table<'t, W>),
    /// A valid non-leaf entry at level 0 (reserved).
    Reserved,
}

/// Entry `i` of `table`, by kind.
#[inline(always)]
fn entry<'t, M: PhysMem>(
    mem: &'t M,
    table: Table<'t, M::Words<'t>>,
    i: usize,
) -> Entry<'t, M::Words<'t>> {
    let (word, next) = table.entry(mem, i);
    let pte = Pte(word);
    if pte.is_leaf() {
        Entry::Leaf(pte)
    } else if let Some(next) = next {
        Entry::Table(next)
    } else if !pte.is_valid() {
        Entry::Empty
    } else {
        Entry::Reserved
    }
}

/// The leaf mapping `pa` with `prot`; `None` unless `prot` allows an access.
#[inline(always)]
fn leaf(pa: u64, prot: Prot) -> Option<Leaf<LEAF_BITS>> {
    Leaf::new(Pte::leaf(pa, prot).0)
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

/// The level whose leaves are `pgsize` bytes: any level up to the root,
/// whose leaves (512 GiB in Sv48x4, 256 TiB in Sv57x4) map the identity
/// second stage in one table (`crate::identity`).
fn level_of(pgsize: u64, top: u32) -> Result<u32, HwError> {
    (0..=top)
        .find(|&l| level_size(l) == pgsize)
        .ok_or(HwError::Invalid)
}

impl PageTable {
    /// Allocates an empty table of `mode`.
    ///
    /// # Errors
    ///
    /// [`HwError::NoMemory`] when the root cannot be allocated.
    pub(crate) fn new(mem: &impl PhysMem, mode: Mode) -> Result<Self, HwError> {
        // INVARIANT: the root order and top level of `mode`.
        Ok(Self {
            tree: Tree::new(mem, mode.root_order(), mode.levels() - 1)?,
            mode,
            geometry: Geometry::of(mode),
        })
    }

    /// Physical address of the root table.
    pub(crate) fn root(&self) -> u64 {
        self.tree.root_pa()
    }

    /// The table's translation mode.
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    #[inline(always)]
    fn root_table<'t, M: PhysMem>(&'t self, mem: &'t M) -> Table<'t, M::Words<'t>> {
        self.tree.root(mem)
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
    #[inline(always)]
    fn table_for<'t, M: PhysMem>(
        &'t self,
        mem: &'t M,
        iova: u64,
        level: u32,
    ) -> Result<Table<'t, M::Words<'t>>, HwError> {
        let mut table = self.root_table(mem);
        while table.level() > level {
            let i = self.geometry.index(iova, table.level());
            table = match entry(mem, table, i) {
                Entry::Table(next) => next,
                // Neighbours only ever link tables here, so a leaf (or, after
                // a lost race, anything but a table) overlaps the range.
                Entry::Empty => table.link(mem, i)?.ok_or(HwError::Exists)?,
                Entry::Leaf(_) | Entry::Reserved => return Err(HwError::Exists),
            };
        }
        Ok(table)
    }

    /// Maps `count` pages of `pgsize` bytes (4 KiB, 2 MiB, 1 GiB, or a leaf
    /// of a higher level up to the root's) from `iova`
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
        let check = || -> Result<(u32, Leaf<LEAF_BITS>), HwError> {
            let level = level_of(pgsize, self.geometry.top)?;
            if !is_aligned(iova, pgsize) || !is_aligned(pa, pgsize) {
                return Err(HwError::Invalid);
            }
            self.check(iova, pgsize.checked_mul(count).ok_or(HwError::Range)?)?;
            Ok((level, leaf(pa, prot).ok_or(HwError::Invalid)?))
        };
        let (level, first_leaf) = match check() {
            Ok(checked) => checked,
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
            // CAST: as above.
            let run = table.slice(first, n as usize);
            let mut leaf = first_leaf.next(done * pgsize);
            for k in 0..run.len() {
                if Pte(run.read(k)).is_valid() {
                    // Taken, or a table in the way.
                    // CAST: `k` < 2048, as above.
                    let off = (done + k as u64) * pgsize;
                    if let Err(e) = self.map_leaf(mem, run, k, iova + off, pa + off, prot) {
                        return (off, Err(e));
                    }
                } else {
                    run.write(k, leaf);
                }
                leaf = leaf.next(pgsize);
            }
            done += n;
        }
        (count * pgsize, Ok(()))
    }

    /// Maps one leaf in entry `i` of `table`. Where a table sits in that
    /// entry, it is filled with leaves one level down instead, all or
    /// nothing.
    #[inline(never)]
    fn map_leaf<'t, M: PhysMem>(
        &'t self,
        mem: &'t M,
        table: Table<'t, M::Words<'t>>,
        i: usize,
        iova: u64,
        pa: u64,
        prot: Prot,
    ) -> Result<(), HwError> {
        let sub = match entry(mem, table, i) {
            Entry::Empty => {
                table.write(i, leaf(pa, prot).ok_or(HwError::Invalid)?);
                return Ok(());
            }
            Entry::Table(sub) => sub,
            Entry::Leaf(_) | Entry::Reserved => return Err(HwError::Exists),
        };
        let step = level_size(sub.level());
        for j in 0..ENTRIES {
            // CAST: `j` < 512.
            let off = j as u64 * step;
            if let Err(e) = self.map_leaf(mem, sub, j, iova + off, pa + off, prot) {
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
            loop {
                match entry(mem, table, self.geometry.index(va, table.level())) {
                    Entry::Leaf(_) => break,
                    Entry::Table(next) => table = next,
                    Entry::Empty | Entry::Reserved => break 'walk,
                }
            }
            let leaf = level_size(table.level());
            if !is_aligned(va, leaf) {
                break;
            }
            // Clear it and the leaves after it in this table, in one visit.
            for i in self.geometry.index(va, table.level())..table.len() {
                if done >= size {
                    break 'walk;
                }
                if !Pte(table.read(i)).is_leaf() {
                    // A hole or a table: walk down again.
                    continue 'walk;
                }
                table.write(i, Leaf::NONE);
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
        loop {
            match entry(mem, table, self.geometry.index(iova, table.level())) {
                Entry::Leaf(pte) => {
                    let size = level_size(table.level());
                    return Some((pte.pa() + (iova & (size - 1)), size, pte.prot()));
                }
                Entry::Table(next) => table = next,
                Entry::Empty | Entry::Reserved => return None,
            }
        }
    }

    /// Physical address `iova` translates to, if mapped.
    pub(crate) fn iova_to_phys(&self, mem: &impl PhysMem, iova: u64) -> Option<u64> {
        self.lookup(mem, iova).map(|(pa, _, _)| pa)
    }

    /// Calls `f(iova, pa, size, prot)` for every leaf, in IOVA order.
    pub(crate) fn for_each_leaf(&self, mem: &impl PhysMem, f: &mut dyn FnMut(u64, u64, u64, Prot)) {
        fn walk<'t, M: PhysMem>(
            mem: &'t M,
            table: Table<'t, M::Words<'t>>,
            base: u64,
            f: &mut dyn FnMut(u64, u64, u64, Prot),
        ) {
            let size = level_size(table.level());
            for i in 0..table.len() {
                // CAST: `i` < 2048.
                let iova = base + i as u64 * size;
                match entry(mem, table, i) {
                    Entry::Leaf(pte) => f(iova, pte.pa(), size, pte.prot()),
                    Entry::Table(sub) => walk(mem, sub, iova, f),
                    Entry::Empty | Entry::Reserved => {}
                }
            }
        }
        walk(mem, self.root_table(mem), 0, f);
    }

    /// Frees every table, once `unwalked` shows the IOMMU no longer walks
    /// them; nothing uses `self` after the call.
    pub(crate) fn destroy(&mut self, mem: &impl PhysMem, unwalked: Unwalked) {
        self.tree.destroy(mem, unwalked)
    }
}
