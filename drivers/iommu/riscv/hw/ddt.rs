// SPDX-License-Identifier: GPL-2.0

//! The device directory table and device contexts (spec 2.1, 2.2).

use super::{
    field::{get_ppn, put_ppn, Field},
    mem::{PhysMem, Words},
    pte::Mode,
    HwError, PAGE_SHIFT,
};

/// `ddtp.iommu_mode`.
const DDTP_MODE: Field = Field::new(3, 0);
/// A non-leaf directory entry's valid bit.
const DDTE_V: u64 = Field::bit(0).all();
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

/// Finds the device context of `device_id` in the directory at `root`,
/// allocating missing intermediate directories when `alloc` is set. Returns
/// its physical address, or `None` when it is absent and `alloc` is clear.
///
/// # Errors
///
/// [`HwError::Range`] when `device_id` does not fit `mode`,
/// [`HwError::NoMemory`] when a directory cannot be allocated.
///
/// # Safety
///
/// `root` is a live directory of `mode` allocated from `mem` (a page; every
/// valid non-leaf entry below it points to a page allocated from `mem`), and
/// nothing frees it or changes it concurrently.
pub(crate) unsafe fn dc_address(
    mem: &impl PhysMem,
    root: u64,
    mode: DdtMode,
    extended: bool,
    device_id: u32,
    alloc: bool,
) -> Result<Option<u64>, HwError> {
    if !fits(device_id, mode, extended) {
        return Err(HwError::Range);
    }
    let i = ddi(device_id, extended);
    let mut table = root;
    for level in (1..mode.levels()).rev() {
        // SAFETY: `table` is a page of the directory (the root, or linked
        // from it), by the safety requirements; `i` indexes its 512 entries.
        let words = unsafe { mem.words(table, 512) };
        // CAST: directory indices are 9 bits.
        let slot = i[level as usize] as usize;
        let e = words.read(slot);
        table = if e & DDTE_V != 0 {
            get_ppn(e)
        } else if alloc {
            let new = mem.alloc_pages(0)?;
            words.write(slot, DDTE_V | put_ppn(new));
            new
        } else {
            return Ok(None);
        };
    }
    let size = if extended { 64 } else { 32 };
    Ok(Some(table + size * i[0]))
}

/// Calls `f(device_id, context)` for every valid device context in the
/// directory at `root`, in device-id order.
///
/// # Safety
///
/// As for [`dc_address`], except that concurrent additions of contexts and
/// directories are allowed.
pub(crate) unsafe fn for_each_context(
    mem: &impl PhysMem,
    root: u64,
    mode: DdtMode,
    extended: bool,
    f: &mut dyn FnMut(u32, DeviceContext),
) {
    /// # Safety
    ///
    /// `table` is a directory of the directory at `level`, as above.
    unsafe fn walk(
        mem: &impl PhysMem,
        table: u64,
        level: u32,
        prefix: u64,
        extended: bool,
        f: &mut dyn FnMut(u32, DeviceContext),
    ) {
        let (leaf_bits, size) = if extended { (6, 64) } else { (7, 32) };
        if level == 0 {
            for i in 0..(1u64 << leaf_bits) {
                // SAFETY: a context of a leaf directory (the caller's guarantee).
                let dc = unsafe { DeviceContext::read(mem, table + size * i, extended) };
                if dc.tc & DeviceContext::TC_V != 0 {
                    // CAST: device ids are 24 bits.
                    f((prefix << leaf_bits | i) as u32, dc);
                }
            }
            return;
        }
        // SAFETY: a non-leaf directory page (the caller's guarantee).
        let words = unsafe { mem.words(table, 512) };
        for i in 0..512 {
            let e = words.read(i);
            if e & DDTE_V != 0 {
                // CAST: `i` < 512.
                let prefix = prefix << 9 | i as u64;
                // SAFETY: a valid entry links a directory page one level down.
                unsafe { walk(mem, get_ppn(e), level - 1, prefix, extended, f) };
            }
        }
    }
    if mode.levels() > 0 {
        // SAFETY: the root, by the safety requirements.
        unsafe { walk(mem, root, mode.levels() - 1, 0, extended, f) };
    }
}

/// Frees the intermediate directories below `root` (not `root` itself).
///
/// # Safety
///
/// As for [`dc_address`]; moreover the IOMMU no longer reads the directory
/// and nothing uses the pages below `root` afterwards.
pub(crate) unsafe fn free_directories(mem: &impl PhysMem, root: u64, mode: DdtMode) {
    /// # Safety
    ///
    /// `table` is a directory page at `level`, as above.
    unsafe fn free(mem: &impl PhysMem, table: u64, level: u32) {
        if level == 0 {
            return;
        }
        // SAFETY: a non-leaf directory page (the caller's guarantee).
        let words = unsafe { mem.words(table, 512) };
        for i in 0..512 {
            let e = words.read(i);
            if e & DDTE_V != 0 {
                let next = get_ppn(e);
                // SAFETY: a valid entry links a directory page one level down;
                // it was allocated with order 0, and only this entry links
                // it, so nothing uses it once freed.
                unsafe {
                    free(mem, next, level - 1);
                    mem.free_pages(next, 0);
                }
            }
        }
    }
    if mode.levels() > 0 {
        // SAFETY: the root, by the safety requirements.
        unsafe { free(mem, root, mode.levels() - 1) };
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
        let mut dc = Self::bare();
        dc.fsc = ATP_MODE.put(mode.encoding()) | ATP_PPN.put(root >> PAGE_SHIFT);
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

    /// Reads the context at `pa`.
    ///
    /// # Safety
    ///
    /// `pa` is the address of a device context (64 bytes if `extended`, else
    /// 32) in a directory page allocated from `mem` that is not freed
    /// meanwhile.
    pub(crate) unsafe fn read(mem: &impl PhysMem, pa: u64, extended: bool) -> Self {
        // SAFETY: by the safety requirements.
        let words = unsafe { mem.words(pa, if extended { 8 } else { 4 }) };
        let w = |i: usize| words.read(i);
        let mut dc = Self {
            tc: w(0),
            iohgatp: w(1),
            ta: w(2),
            fsc: w(3),
            ..Self::default()
        };
        if extended {
            dc.msiptp = w(4);
            dc.msi_addr_mask = w(5);
            dc.msi_addr_pattern = w(6);
        }
        dc
    }

    /// Writes the context at `pa`, `tc` last, so the IOMMU never sees a valid
    /// context with stale fields. The caller then invalidates the IOMMU's
    /// copy (`IODIR.INVAL_DDT`).
    ///
    /// # Safety
    ///
    /// As for [`DeviceContext::read`].
    pub(crate) unsafe fn write(&self, mem: &impl PhysMem, pa: u64, extended: bool) {
        // SAFETY: by the safety requirements.
        let dc = unsafe { mem.words(pa, if extended { 8 } else { 4 }) };
        let words = [
            self.iohgatp,
            self.ta,
            self.fsc,
            self.msiptp,
            self.msi_addr_mask,
            self.msi_addr_pattern,
            0,
        ];
        let n = if extended { 7 } else { 3 };
        for (i, w) in words.iter().take(n).enumerate() {
            dc.write(i + 1, *w);
        }
        dc.write(0, self.tc);
    }
}

/// `iohgatp` for a second-stage table of `mode` at `root`.
pub(crate) const fn iohgatp(mode: Mode, root: u64, gscid: u16) -> u64 {
    ATP_MODE.put(mode.encoding())
        | IOHGATP_GSCID.put(gscid as u64)
        | ATP_PPN.put(root >> PAGE_SHIFT)
}
