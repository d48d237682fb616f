// SPDX-License-Identifier: GPL-2.0

//! Trees of table pages: the IO page tables and the device directory.
//!
//! Both formats link a table to a table one level down with the same kind
//! of entry (spec 2.1, and RISC-V privileged spec 10.3.1): the valid
//! bit (bit 0) set, the page number in bits 53:10 and, in page tables, none
//! of the leaf bits (R, W, X). A [`Tree`] owns its table pages, and only
//! this module writes links or follows them. The table code above writes
//! [`Leaf`]s, which never read as a link, and, in the leaf pages of a
//! directory, device contexts: level 0 holds no links. So every link a walk
//! follows is one [`Node::link`] wrote, to a page the tree allocated and
//! frees only in [`Tree::destroy`]. This is where the table code's unsafe
//! blocks live.
//!
//! `L` is the format's leaf bits: a valid entry with one of them set is a
//! leaf, whatever its level. The directory has none (`L` = 0): above the
//! leaf level, its pages hold links and empty entries only.

use core::marker::PhantomData;

use super::{
    field::{get_ppn, put_ppn, Field},
    mem::{PhysMem, Words},
    HwError,
};

/// Entries of a 4 KiB table.
pub(crate) const ENTRIES: usize = 512;

/// The valid bit of a link or a leaf.
const V: u64 = Field::bit(0).all();

/// A tree of table pages.
///
/// Every method is given the memory the tree was made from.
///
/// # Invariants
///
/// `root` is an allocation of order `order` (`ENTRIES << order` entries),
/// the table at level `top`. Every word of a table of the tree that
/// [`link_of`] reads as a link was written by [`Node::link`]: it points to
/// a page of order 0 allocated for the tree, a table one level down,
/// linked from that word alone. The root and those pages stay allocated
/// until [`Tree::destroy`].
#[derive(Debug)]
pub(crate) struct Tree<const L: u64> {
    root: u64,
    order: u32,
    top: u32,
}

/// A table of a [`Tree`] borrowed for `'t`.
///
/// # Invariants
///
/// `words` views the table at `pa`, a table of a tree borrowed for `'t`,
/// at `level`, or a run of its entries that starts at `pa`.
#[derive(Clone, Copy)]
pub(crate) struct Node<'t, W, const L: u64> {
    pa: u64,
    words: W,
    level: u32,
    _tree: PhantomData<&'t Tree<L>>,
}

/// Proof that the IOMMU no longer walks the tables it is handed with: what
/// pointed the IOMMU at them is gone and its caches are invalidated.
///
/// # Invariants
///
/// Whoever made it vouches for the tables it is given with.
pub(crate) struct Unwalked(());

impl Unwalked {
    /// The proof.
    ///
    /// # Safety
    ///
    /// The IOMMU no longer walks the tree the result is given to (a context
    /// or register pointing at it, or a cached copy of either), and nothing
    /// uses that tree afterwards.
    pub(crate) unsafe fn new() -> Self {
        // INVARIANT: the caller's guarantee.
        Self(())
    }
}

/// A word a table may hold that is no link: empty, or a valid leaf (one of
/// the leaf bits `L` set).
///
/// # Invariants
///
/// The word is 0, or has `V` and one of `L` set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Leaf<const L: u64>(u64);

/// The table `word`, an entry at `level`, links to, if it is a link.
#[inline(always)]
const fn link_of<const L: u64>(word: u64, level: u32) -> Option<u64> {
    if level > 0 && word & V != 0 && word & L == 0 {
        Some(get_ppn(word))
    } else {
        None
    }
}

impl<const L: u64> Leaf<L> {
    /// An empty entry.
    pub(crate) const NONE: Self = Self(0);

    /// `word` as a leaf; `None` unless it is valid with a leaf bit set.
    #[inline(always)]
    pub(crate) const fn new(word: u64) -> Option<Self> {
        if word & V != 0 && word & L != 0 {
            // INVARIANT: checked just above.
            Some(Self(word))
        } else {
            None
        }
    }

    /// The entry's word.
    #[inline(always)]
    pub(crate) const fn word(self) -> u64 {
        self.0
    }

    /// The same leaf for the `size` bytes after this one's: only the page
    /// number moves (`size` a multiple of 4 KiB).
    #[inline(always)]
    pub(crate) const fn next(self, size: u64) -> Self {
        // INVARIANT: `put_ppn` leaves bits 9:0, `V` and the leaf bits among
        // them, as they were (its carry, too, only moves upwards).
        Self(self.0.wrapping_add(put_ppn(size)))
    }
}

impl<const L: u64> Tree<L> {
    /// Allocates an empty tree whose root, at level `top`, is of order
    /// `order`.
    ///
    /// # Errors
    ///
    /// [`HwError::NoMemory`] when the root cannot be allocated.
    pub(crate) fn new(mem: &impl PhysMem, order: u32, top: u32) -> Result<Self, HwError> {
        // INVARIANT: zeroed memory holds no link.
        Ok(Self {
            root: mem.alloc_pages(order)?,
            order,
            top,
        })
    }

    /// Physical address of the root.
    pub(crate) fn root_pa(&self) -> u64 {
        self.root
    }

    /// Moves the root to level `top`.
    ///
    /// # Errors
    ///
    /// [`HwError::Exists`] once the root holds an entry, which the new level
    /// would read differently.
    pub(crate) fn set_top(&mut self, mem: &impl PhysMem, top: u32) -> Result<(), HwError> {
        let root = self.root(mem);
        if (0..root.len()).any(|i| root.read(i) != 0) {
            return Err(HwError::Exists);
        }
        // INVARIANT: the root holds no entry, no link at any level.
        self.top = top;
        Ok(())
    }

    /// The root table.
    #[inline(always)]
    pub(crate) fn root<'t, M: PhysMem>(&'t self, mem: &'t M) -> Node<'t, M::Words<'t>, L> {
        // INVARIANT: the root, at the top level.
        Node {
            pa: self.root,
            // SAFETY: `root` is an allocation of order `order`, that is of
            // `ENTRIES << order` words, which lives until `destroy` takes
            // `self` mutably (type invariant), so not while it is borrowed.
            words: unsafe { mem.words(self.root, ENTRIES << self.order) },
            level: self.top,
            _tree: PhantomData,
        }
    }

    /// Frees every table of the tree, the root included, once `_unwalked`
    /// shows that the IOMMU no longer walks them; nothing uses `self` after
    /// the call (the proof's invariant).
    pub(crate) fn destroy(&mut self, mem: &impl PhysMem, _unwalked: Unwalked) {
        /// Frees the tables below `node`.
        ///
        /// # Safety
        ///
        /// The IOMMU no longer walks the tables below `node`, and none of
        /// them is used again.
        unsafe fn free_below<'t, M: PhysMem, const L: u64>(
            mem: &'t M,
            node: Node<'t, M::Words<'t>, L>,
        ) {
            for i in 0..node.len() {
                if let Some(child) = node.child(mem, i) {
                    // SAFETY: the caller's guarantee covers the tables below;
                    // `child` was allocated with order 0 and is linked from
                    // this entry alone (type invariant of `Tree`), and its
                    // view is not used once it is freed.
                    unsafe {
                        free_below(mem, child);
                        mem.free_pages(child.pa, 0);
                    }
                }
            }
        }
        // SAFETY: `_unwalked` vouches that the IOMMU no longer walks the
        // tree and nothing uses it again; then the root, allocated with
        // `order` (type invariant), its view no longer used.
        unsafe {
            free_below(mem, self.root(mem));
            mem.free_pages(self.root, self.order);
        }
    }
}

impl<'t, W: Words, const L: u64> Node<'t, W, L> {
    /// Physical address of the table.
    #[inline(always)]
    pub(crate) fn pa(self) -> u64 {
        self.pa
    }

    /// The table's level (0: the leaf level).
    #[inline(always)]
    pub(crate) fn level(self) -> u32 {
        self.level
    }

    /// Entries of the table.
    #[inline(always)]
    pub(crate) fn len(self) -> usize {
        self.words.len()
    }

    /// Entries `first..first + n` of the table, as a table of their own:
    /// entry `k` of the result is entry `first + k`. Panics unless they all
    /// lie in the table. A loop over the result's entries needs no further
    /// bounds check.
    #[inline(always)]
    pub(crate) fn slice(self, first: usize, n: usize) -> Self {
        let words = self.words.sub(first, n);
        // INVARIANT: a run of this table's entries, at its level.
        Self {
            // CAST: `first` < 2048, checked by `sub`.
            pa: self.pa + 8 * first as u64,
            words,
            level: self.level,
            _tree: PhantomData,
        }
    }

    /// Entry `i`, with a single load.
    #[inline(always)]
    pub(crate) fn read(self, i: usize) -> u64 {
        self.words.read(i)
    }

    /// Writes a leaf or an empty entry into entry `i`, with a single store.
    #[inline(always)]
    pub(crate) fn write(self, i: usize, leaf: Leaf<L>) {
        // INVARIANT: a `Leaf` is no link at any level.
        self.words.write(i, leaf.word())
    }

    /// The words of a leaf-level table, whose entries are never links;
    /// panics above level 0.
    pub(crate) fn leaf_words(self) -> W {
        assert!(self.level == 0, "words of a table at level {}", self.level);
        // INVARIANT: `link_of` finds no link at level 0, whatever is written.
        self.words
    }

    /// The table entry `i` links to, one level down, if it is a link.
    #[inline(always)]
    pub(crate) fn child<M: PhysMem<Words<'t> = W>>(self, mem: &'t M, i: usize) -> Option<Self> {
        self.entry(mem, i).1
    }

    /// Entry `i`, read once, and the table it links to if it is a link.
    #[inline(always)]
    pub(crate) fn entry<M: PhysMem<Words<'t> = W>>(
        self,
        mem: &'t M,
        i: usize,
    ) -> (u64, Option<Self>) {
        let word = self.read(i);
        let Some(pa) = link_of::<L>(word, self.level) else {
            return (word, None);
        };
        // INVARIANT: the table the link points to, one level down.
        let child = Self {
            pa,
            // SAFETY: a link in a table of the tree points to a 4 KiB table
            // that the tree allocated and frees only in `destroy`, which
            // cannot run while the tree is borrowed for `'t` (type
            // invariant of `Tree`).
            words: unsafe { mem.words(pa, ENTRIES) },
            level: self.level - 1,
            _tree: PhantomData,
        };
        (word, Some(child))
    }

    /// Links a new, empty table into entry `i`, found empty, and returns
    /// what the entry links then: the new table, or the one another walk
    /// linked there first; `None` if it holds something else (a leaf).
    /// Out of line: walks rarely need it.
    ///
    /// # Errors
    ///
    /// [`HwError::NoMemory`] when no page is left, [`HwError::Invalid`] at
    /// level 0, which holds no links.
    #[inline(never)]
    pub(crate) fn link<M: PhysMem<Words<'t> = W>>(
        self,
        mem: &'t M,
        i: usize,
    ) -> Result<Option<Self>, HwError> {
        if self.level == 0 {
            return Err(HwError::Invalid);
        }
        let new = mem.alloc_pages(0)?;
        // INVARIANT: a zeroed page is an empty table, now the tree's, linked
        // from this entry alone; `put_ppn` leaves the leaf bits clear.
        if self.words.cmpxchg(i, 0, V | put_ppn(new)).is_err() {
            // Another walk wrote the entry first: take what it wrote.
            // SAFETY: `new` was allocated above with order 0, and nothing
            // links to it or views it.
            unsafe { mem.free_pages(new, 0) };
        }
        Ok(self.child(mem, i))
    }
}
