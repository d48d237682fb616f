// SPDX-License-Identifier: GPL-2.0

//! The device directory (spec 2.1): where the IOMMU finds each device's
//! context, by requester id.

use kernel::{
    device,
    io::Io,
    new_mutex,
    prelude::*,
    sync::{Mutex, MutexGuard},
};

use crate::{
    hw::{
        cmd::Command,
        ddt::{self, DdtMode, DeviceContext},
        mem::PhysMem,
    },
    iommu::wait_reg,
    mem::{errno, KernelMem},
    regs::{self, RegsIo},
};

/// The directory's tables as the IOMMU uses them.
pub(crate) struct Tables {
    /// The root directory page.
    root: u64,
    /// Its mode: `Off` until [`Directory::start`] found the largest one
    /// the IOMMU accepts.
    pub(crate) mode: DdtMode,
    /// The pages are left to the IOMMU, never freed ([`Directory::leak`]).
    leaked: bool,
}

/// The device directory.
///
/// # Invariants
///
/// `tables.root` is a page this object owns, freed when it is dropped
/// unless leaked; every valid non-leaf entry below it points to a page it
/// owns too.
#[pin_data(PinnedDrop)]
pub(crate) struct Directory {
    /// Device contexts are 64 bytes (the IOMMU has MSI page tables).
    pub(crate) extended: bool,
    /// Serialises directory updates; only in process context.
    #[pin]
    tables: Mutex<Tables>,
}

impl Directory {
    /// Allocates an empty root directory, when initialised; the IOMMU does
    /// not know it before [`Directory::start`].
    pub(crate) fn new(extended: bool) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            extended,
            // INVARIANT: a page of our own, zeroed: an empty directory.
            tables <- new_mutex!(
                Tables {
                    root: KernelMem::new(false).alloc_pages(0).map_err(errno)?,
                    mode: DdtMode::Off,
                    leaked: false,
                },
                "Directory::tables"
            ),
        })
    }

    /// Installs the directory in the largest mode the IOMMU accepts (3, 2
    /// or 1 levels, falling back on what `ddtp` reads back).
    pub(crate) fn start(&self, bar: &RegsIo<'_>, dev: &device::Device) -> Result {
        let mut t = self.tables.lock();
        let mut mode = DdtMode::Lvl3;
        loop {
            let ddtp = regs::DDTP::zeroed()
                .with_mode(mode)
                .try_with_ppn(regs::ppn(t.root))?;
            bar.try_write_reg(ddtp)?;
            wait_reg(|| bar.try_read(regs::DDTP).map(|r| !r.busy()))?;
            if bar.try_read(regs::DDTP)?.mode() == Ok(mode) {
                break;
            }
            mode = match mode.smaller() {
                Some(m) => m,
                None => {
                    dev_err!(dev, "no device-directory mode accepted\n");
                    return Err(ENODEV);
                }
            };
        }
        t.mode = mode;
        Ok(())
    }

    /// The tables, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock()
    }

    /// Whether requester id `id` has a place in the directory.
    pub(crate) fn fits(&self, t: &Tables, id: u32) -> bool {
        ddt::fits(id, t.mode, self.extended)
    }

    /// Makes the directory path to device `id`'s context, allocating the
    /// missing intermediate directories (kept until the IOMMU goes).
    pub(crate) fn prepare_context(&self, t: &Tables, id: u32) -> Result {
        let mem = KernelMem::new(false);
        // SAFETY: `root` is our live directory of `mode` (type invariant),
        // changed only under the `tables` lock the caller holds.
        unsafe { ddt::dc_address(&mem, t.root, t.mode, self.extended, id, true) }.map_err(errno)?;
        Ok(())
    }

    /// Writes device `id`'s context: first invalidating a valid one, so the
    /// IOMMU never uses a half-written context, then the new one; `sync`
    /// submits the IOMMU's invalidation of its copy and waits for it.
    pub(crate) fn set_context(
        &self,
        t: &Tables,
        id: u32,
        dc: &DeviceContext,
        sync: impl Fn(&[Command]) -> Result,
    ) -> Result {
        let mem = KernelMem::new(false);
        // Never allocates: `prepare_context` made the path when the device
        // was probed, so attaching (which the core forbids to fail the first
        // time) cannot run out of memory.
        // SAFETY: as in `prepare_context`.
        let pa = unsafe { ddt::dc_address(&mem, t.root, t.mode, self.extended, id, false) }
            .map_err(errno)?
            .ok_or(EINVAL)?;
        // SAFETY: `pa` is device `id`'s context in our directory, whose
        // pages are freed only when the directory is dropped.
        let old = unsafe { DeviceContext::read(&mem, pa, self.extended) };
        if old.tc & DeviceContext::TC_V != 0 {
            let mut off = old;
            off.tc = 0;
            // SAFETY: as for `read` above.
            unsafe { off.write(&mem, pa, self.extended) };
            sync(&[Command::iodir_inval_ddt(Some(id))])?;
        }
        // SAFETY: as for `read` above.
        unsafe { dc.write(&mem, pa, self.extended) };
        sync(&[Command::iodir_inval_ddt(Some(id))])
    }

    /// Calls `f(id, context)` for every valid device context, in id order.
    pub(crate) fn for_each_context(&self, t: &Tables, f: &mut dyn FnMut(u32, DeviceContext)) {
        // SAFETY: as in `prepare_context`.
        unsafe { ddt::for_each_context(&KernelMem::new(false), t.root, t.mode, self.extended, f) };
    }

    /// Leaves the directory to the IOMMU for good: dropping it frees
    /// nothing, for an IOMMU that could not be turned off may still read it.
    pub(crate) fn leak(&self) {
        self.tables.lock().leaked = true;
    }
}

#[pinned_drop]
impl PinnedDrop for Directory {
    /// Frees every directory page. The IOMMU's owner turned it off first
    /// (or leaked the directory): nothing reads it any more.
    fn drop(self: Pin<&mut Self>) {
        let t = self.tables.lock();
        if t.leaked {
            return;
        }
        let mem = KernelMem::new(false);
        // SAFETY: our directory (type invariant), which the IOMMU no longer
        // reads and nothing uses after this drop.
        unsafe {
            ddt::free_directories(&mem, t.root, t.mode);
            mem.free_pages(t.root, 0);
        }
    }
}
