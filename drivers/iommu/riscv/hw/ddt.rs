// SPDX-License-Identifier: GPL-2.0

//! The device directory table and device contexts (spec 2.1, 2.2).

use core::marker::PhantomData;

pub(crate) mod update;
use update::{Step, DC_WORDS};

use super::{
    field::{put_ppn, Field},
    mem::{PhysMem, Words},
    pte::Mode,
    tree::{Node, Tree, Unwalked, ENTRIES},
    HwError, PAGE_SHIFT, PAGE_SIZE,
};

/// `ddtp.iommu_mode`.
const DDTP_MODE: Field = Field::new(3, 0);
/// The device-directory index fields of a device id, leaf level first:
/// extended contexts (64 bytes) leave 6 bits to the leaf, base ones 7.
const DDI_EXTENDED: [Field; 3] = [Field::new(5, 0), Field::new(14, 6), Field::new(23, 15)];
const DDI_BASE: [Field; 3] = [Field::new(6, 0), Field::new(15, 7), Field::new(23, 16)];
/// `fsc`, `iohgatp`, `msiptp`: the mode.
const ATP_MODE: Field = Field::new(63, 60);
/// `iohgatp`: the second-stage context id.
const IOHGATP_GSCID: Field = Field::new(59, 44);
/// `fsc`, `iohgatp`, `msiptp`: the root table's page number.
const ATP_PPN: Field = Field::new(43, 0);
/// `ta`: the first-stage context id.
const TA_PSCID: Field = Field::new(31, 12);
/// `msi_addr_mask`, `msi_addr_pattern`: page-number bits.
const MSI_ADDR: Field = Field::new(51, 0);

/// The `iommu_mode` field of `ddtp`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum DdtMode {
    /// No inbound transaction allowed.
    Off = 0,
    /// No translation, no protection.
    Bare = 1,
    /// One-level directory.
    Lvl1 = 2,
    /// Two-level directory.
    Lvl2 = 3,
    /// Three-level directory.
    Lvl3 = 4,
}

impl DdtMode {
    /// Directory levels (0 for Off and Bare).
    pub(crate) const fn levels(self) -> u32 {
        match self {
            Self::Off | Self::Bare => 0,
            Self::Lvl1 => 1,
            Self::Lvl2 => 2,
            Self::Lvl3 => 3,
        }
    }

    /// The next smaller directory mode, to fall back to when the hardware
    /// refuses this one.
    pub(crate) const fn smaller(self) -> Option<Self> {
        match self {
            Self::Lvl3 => Some(Self::Lvl2),
            Self::Lvl2 => Some(Self::Lvl1),
            _ => None,
        }
    }
}

/// `ddtp` value for `mode` with the root directory at `root` (the driver
/// writes the register through its `register!` fields).
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "the host tests and walker build ddtp words")
)]
pub(crate) const fn ddtp(mode: DdtMode, root: u64) -> u64 {
    DDTP_MODE.put(mode as u64) | put_ppn(root)
}

/// Device-directory indexes of `device_id`: `[DDI0, DDI1, DDI2]`. Extended
/// device contexts (64 bytes, when the IOMMU has MSI page tables) leave 6 bits
/// to the leaf level, base ones (32 bytes) 7.
pub(crate) const fn ddi(device_id: u32, extended: bool) -> [u64; 3] {
    let d = device_id as u64;
    let f = if extended { DDI_EXTENDED } else { DDI_BASE };
    [f[0].get(d), f[1].get(d), f[2].get(d)]
}

/// Whether `device_id` fits a directory of `mode`.
pub(crate) const fn fits(device_id: u32, mode: DdtMode, extended: bool) -> bool {
    let i = ddi(device_id, extended);
    match mode {
        DdtMode::Lvl1 => i[1] == 0 && i[2] == 0,
        DdtMode::Lvl2 => i[2] == 0,
        DdtMode::Lvl3 => device_id < 1 << 24,
        _ => false,
    }
}

/// Bytes of a device context.
const fn context_size(extended: bool) -> u64 {
    if extended {
        64
    } else {
        32
    }
}

/// A device directory: its root page and the directory pages below it, a
/// [`Tree`] whose pages above the leaf level hold nothing but links (no leaf
/// bits).
///
/// Every method is given the memory the directory was made from.
///
/// # Invariants
///
/// The tree's root is a page, at the top level of `mode` (0 for `Off` and
/// `Bare`, which have no levels).
#[derive(Debug)]
pub(crate) struct Ddt {
    tree: Tree<0>,
    mode: DdtMode,
    extended: bool,
}

/// A directory page of a [`Ddt`], at its level (0: a page of contexts).
type Dir<'d, W> = Node<'d, W, 0>;

/// Where a device's context lives in a [`Ddt`].
///
/// # Invariants
///
/// `words` views the context (8 words if `extended`, else 4) at `pa`, in a
/// leaf page of a directory borrowed for `'d`.
#[derive(Clone, Copy)]
pub(crate) struct Context<'d, W> {
    pa: u64,
    words: W,
    extended: bool,
    _ddt: PhantomData<&'d Ddt>,
}

impl Ddt {
    /// Allocates an empty directory, in mode `Off` until [`Ddt::set_mode`].
    ///
    /// # Errors
    ///
    /// [`HwError::NoMemory`] when the root cannot be allocated.
    pub(crate) fn new(mem: &impl PhysMem, extended: bool) -> Result<Self, HwError> {
        // INVARIANT: one page at level 0, `Off`'s.
        Ok(Self {
            tree: Tree::new(mem, 0, 0)?,
            mode: DdtMode::Off,
            extended,
        })
    }

    /// Physical address of the root page.
    pub(crate) fn root(&self) -> u64 {
        self.tree.root_pa()
    }

    /// The directory's mode.
    pub(crate) fn mode(&self) -> DdtMode {
        self.mode
    }

    /// Whether device contexts are in the extended (64-byte) format.
    pub(crate) fn extended(&self) -> bool {
        self.extended
    }

    /// Sets the mode (the one the IOMMU accepted).
    ///
    /// # Errors
    ///
    /// [`HwError::Exists`] once the directory holds an entry.
    pub(crate) fn set_mode(&mut self, mem: &impl PhysMem, mode: DdtMode) -> Result<(), HwError> {
        // INVARIANT: the root moves to the mode's top level.
        self.tree.set_top(mem, mode.levels().saturating_sub(1))?;
        self.mode = mode;
        Ok(())
    }

    /// Whether `device_id` has a place in the directory.
    pub(crate) fn fits(&self, device_id: u32) -> bool {
        fits(device_id, self.mode, self.extended)
    }

    /// The leaf page holding `device_id`'s context, linking the missing
    /// directory pages on the way when `link` is given the memory (with
    /// `&mut self`, so no one else walks meanwhile).
    fn leaf<'d, M: PhysMem>(
        &'d self,
        mem: &'d M,
        device_id: u32,
        link: bool,
    ) -> Result<Option<Dir<'d, M::Words<'d>>>, HwError> {
        if !self.fits(device_id) {
            return Err(HwError::Range);
        }
        let i = ddi(device_id, self.extended);
        let mut dir = self.tree.root(mem);
        while dir.level() > 0 {
            // CAST: directory indices are 9 bits.
            let slot = i[dir.level() as usize] as usize;
            dir = match dir.child(mem, slot) {
                Some(next) => next,
                // Pages above the leaf level hold links or nothing.
                None if link => dir.link(mem, slot)?.ok_or(HwError::Invalid)?,
                None => return Ok(None),
            };
        }
        Ok(Some(dir))
    }

    /// Makes the directory path to `device_id`'s context, allocating the
    /// missing directory pages.
    ///
    /// # Errors
    ///
    /// [`HwError::Range`] when `device_id` does not fit the mode,
    /// [`HwError::NoMemory`] when a page cannot be allocated.
    pub(crate) fn prepare(&mut self, mem: &impl PhysMem, device_id: u32) -> Result<(), HwError> {
        self.leaf(mem, device_id, true).map(|_| ())
    }

    /// `device_id`'s context, `None` when [`Ddt::prepare`] did not make its
    /// path yet.
    ///
    /// # Errors
    ///
    /// [`HwError::Range`] when `device_id` does not fit the mode.
    pub(crate) fn context<'d, M: PhysMem>(
        &'d self,
        mem: &'d M,
        device_id: u32,
    ) -> Result<Option<Context<'d, M::Words<'d>>>, HwError> {
        let Some(leaf) = self.leaf(mem, device_id, false)? else {
            return Ok(None);
        };
        Ok(Some(context(
            leaf,
            ddi(device_id, self.extended)[0],
            self.extended,
        )))
    }

    /// Calls `f(device_id, context)` for every valid device context, in
    /// device-id order.
    pub(crate) fn for_each_context(
        &self,
        mem: &impl PhysMem,
        f: &mut dyn FnMut(u32, DeviceContext),
    ) {
        fn walk<'d, M: PhysMem>(
            mem: &'d M,
            dir: Dir<'d, M::Words<'d>>,
            prefix: u64,
            extended: bool,
            f: &mut dyn FnMut(u32, DeviceContext),
        ) {
            if dir.level() == 0 {
                let contexts = PAGE_SIZE / context_size(extended);
                let leaf_bits = contexts.trailing_zeros();
                for i in 0..contexts {
                    let dc = context(dir, i, extended).read();
                    if dc.tc & DeviceContext::TC_V != 0 {
                        // CAST: device ids are 24 bits.
                        f((prefix << leaf_bits | i) as u32, dc);
                    }
                }
                return;
            }
            for i in 0..ENTRIES {
                if let Some(next) = dir.child(mem, i) {
                    // CAST: `i` < 512.
                    walk(mem, next, prefix << 9 | i as u64, extended, f);
                }
            }
        }
        if self.mode.levels() > 0 {
            walk(mem, self.tree.root(mem), 0, self.extended, f);
        }
    }

    /// Frees every page of the directory, the root included, once
    /// `unwalked` shows the IOMMU no longer reads it; nothing uses `self`
    /// after the call.
    pub(crate) fn free(&mut self, mem: &impl PhysMem, unwalked: Unwalked) {
        self.tree.destroy(mem, unwalked)
    }
}

/// Context `i` of the leaf page `leaf`.
fn context<W: Words>(leaf: Dir<'_, W>, i: u64, extended: bool) -> Context<'_, W> {
    let size = context_size(extended);
    // CAST: 4 or 8 words, at most 512 contexts.
    let (n, first) = ((size / 8) as usize, (size / 8 * i) as usize);
    // INVARIANT: a context of a leaf page of the directory (the view
    // checks it lies inside the page; `leaf_words` that it is a leaf page).
    Context {
        pa: leaf.pa() + size * i,
        words: leaf.leaf_words().sub(first, n),
        extended,
        _ddt: PhantomData,
    }
}

impl<W: Words> Context<'_, W> {
    /// Physical address of the context.
    #[cfg_attr(not(test), expect(dead_code, reason = "the host tests check it"))]
    pub(crate) fn pa(&self) -> u64 {
        self.pa
    }

    /// Reads the context.
    pub(crate) fn read(&self) -> DeviceContext {
        let w = |i: usize| self.words.read(i);
        let mut dc = DeviceContext {
            tc: w(0),
            iohgatp: w(1),
            ta: w(2),
            fsc: w(3),
            ..DeviceContext::default()
        };
        if self.extended {
            dc.msiptp = w(4);
            dc.msi_addr_mask = w(5);
            dc.msi_addr_pattern = w(6);
        }
        dc
    }

    /// Writes `dc`, `tc` last, so the IOMMU never sees a valid context with
    /// stale fields, if the context was invalid. The driver changes
    /// contexts in the steps of a [`update::Plan`] ([`Context::write_step`]).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the host tests write contexts whole")
    )]
    pub(crate) fn write(&self, dc: &DeviceContext) {
        let words = [
            dc.iohgatp,
            dc.ta,
            dc.fsc,
            dc.msiptp,
            dc.msi_addr_mask,
            dc.msi_addr_pattern,
            0,
        ];
        let n = if self.extended { 7 } else { 3 };
        for (i, w) in words.iter().take(n).enumerate() {
            self.words.write(i + 1, *w);
        }
        self.words.write(0, dc.tc);
    }

    /// Writes the doublewords `step` writes (see [`Plan`]); the caller
    /// then invalidates the IOMMU's copy (`IODIR.INVAL_DDT`) and waits
    /// before the next step.
    pub(crate) fn write_step(&self, step: &Step) {
        let n = if self.extended { DC_WORDS } else { 4 };
        for (i, w) in step.words.iter().take(n).enumerate() {
            if step.writes & (1 << i) != 0 {
                self.words.write(i, *w);
            }
        }
    }
}

/// A device context, extended format (the base format is its first half).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct DeviceContext {
    /// Translation control.
    pub(crate) tc: u64,
    /// Second-stage page table (`MODE`, `GSCID`, `PPN`).
    pub(crate) iohgatp: u64,
    /// Translation attributes (`PSCID`).
    pub(crate) ta: u64,
    /// First-stage page table (`iosatp`) or process directory.
    pub(crate) fsc: u64,
    /// MSI page table pointer.
    pub(crate) msiptp: u64,
    /// MSI address mask (page-number bits).
    pub(crate) msi_addr_mask: u64,
    /// MSI address pattern (page-number bits).
    pub(crate) msi_addr_pattern: u64,
}

impl DeviceContext {
    /// `tc.V`: the context is valid.
    pub(crate) const TC_V: u64 = Field::bit(0).all();
    /// `msiptp.MODE` Flat.
    pub(crate) const MSIPTP_FLAT: u64 = ATP_MODE.put(1);

    /// A valid context with no translation at either stage.
    pub(crate) const fn bare() -> Self {
        Self {
            tc: Self::TC_V,
            iohgatp: 0,
            ta: 0,
            fsc: 0,
            msiptp: 0,
            msi_addr_mask: 0,
            msi_addr_pattern: 0,
        }
    }

    /// A valid context translating with a first-stage table at `root`.
    pub(crate) const fn first_stage(mode: Mode, root: u64, pscid: u32) -> Self {
        let mut dc = Self::bare_with_pscid(pscid);
        dc.fsc = ATP_MODE.put(mode.encoding()) | ATP_PPN.put(root >> PAGE_SHIFT);
        dc
    }

    /// A valid context with no translation at either stage, with `pscid`
    /// in `ta` (unused while `fsc` is Bare), so that a change to or from a
    /// first-stage table under that PSCID rewrites `fsc` alone.
    pub(crate) const fn bare_with_pscid(pscid: u32) -> Self {
        let mut dc = Self::bare();
        dc.ta = TA_PSCID.put(pscid as u64);
        dc
    }

    /// A valid context translating with a second-stage table at `root`.
    pub(crate) const fn second_stage(mode: Mode, root: u64, gscid: u16) -> Self {
        let mut dc = Self::bare();
        dc.iohgatp = iohgatp(mode, root, gscid);
        dc
    }

    /// Adds a flat MSI page table at `table` for addresses matching
    /// `pattern` under `mask` (both page numbers).
    pub(crate) const fn with_msi(mut self, table: u64, mask: u64, pattern: u64) -> Self {
        self.msiptp = Self::MSIPTP_FLAT | ATP_PPN.put(table >> PAGE_SHIFT);
        self.msi_addr_mask = MSI_ADDR.put(mask);
        self.msi_addr_pattern = MSI_ADDR.put(pattern);
        self
    }
}

/// `iohgatp` for a second-stage table of `mode` at `root`.
pub(crate) const fn iohgatp(mode: Mode, root: u64, gscid: u16) -> u64 {
    ATP_MODE.put(mode.encoding())
        | IOHGATP_GSCID.put(gscid as u64)
        | ATP_PPN.put(root >> PAGE_SHIFT)
}
