// SPDX-License-Identifier: GPL-2.0

//! The device directory (spec 2.1): where the IOMMU finds each device's
//! context, by requester id.

use kernel::{
    device,
    io::Io,
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Mutex, MutexGuard,
    },
};

use crate::{
    hw::{
        cmd::Command,
        ddt::{update::Plan, Ddt, DdtMode, DeviceContext},
        tree::Unwalked,
    },
    mem::{errno, KernelMem},
    regs::{self, wait_reg, RegsIo},
};

/// The directory's tables as the IOMMU uses them.
pub(crate) struct Tables {
    /// The pages; mode `Off` until [`Directory::start`] found the largest
    /// one the IOMMU accepts.
    ddt: Ddt,
    /// The pages are left to the IOMMU, never freed ([`Directory::leak`]).
    leaked: bool,
}

impl Tables {
    /// The directory's mode.
    pub(crate) fn mode(&self) -> DdtMode {
        self.ddt.mode()
    }

    /// Device contexts are 64 bytes (the IOMMU has MSI page tables).
    pub(crate) fn extended(&self) -> bool {
        self.ddt.extended()
    }
}

/// The device directory.
///
/// Its pages are kernel pages ([`KernelMem`]), freed when it is dropped
/// unless leaked.
#[pin_data(PinnedDrop)]
pub(crate) struct Directory {
    /// Serialises directory updates; only in process context.
    #[pin]
    tables: Mutex<Tables>,
    /// Context changes made by [`Directory::set_context`].
    updates: Atomic<u64>,
    /// Those of them that made the context invalid on the way.
    breaking: Atomic<u64>,
}

impl Directory {
    /// Allocates an empty root directory, when initialised; the IOMMU does
    /// not know it before [`Directory::start`].
    pub(crate) fn new(extended: bool) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            tables <- new_mutex!(
                Tables {
                    ddt: Ddt::new(&KernelMem::new(false), extended).map_err(errno)?,
                    leaked: false,
                },
                "Directory::tables"
            ),
            updates: Atomic::new(0),
            breaking: Atomic::new(0),
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
                .try_with_ppn(regs::ppn(t.ddt.root()))?;
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
        t.ddt.set_mode(&KernelMem::new(false), mode).map_err(errno)
    }

    /// The tables, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock()
    }

    /// Whether requester id `id` has a place in the directory.
    pub(crate) fn fits(&self, t: &Tables, id: u32) -> bool {
        t.ddt.fits(id)
    }

    /// Makes the directory path to device `id`'s context, allocating the
    /// missing intermediate directories (kept until the IOMMU goes).
    pub(crate) fn prepare_context(&self, t: &mut Tables, id: u32) -> Result {
        t.ddt.prepare(&KernelMem::new(false), id).map_err(errno)
    }

    /// Changes device `id`'s context to `dc` while the device may be
    /// working: in the steps [`Plan`] orders, each followed by
    /// `IODIR.INVAL_DDT` for the device (`sync` submits commands and waits
    /// for them), so that every context the IOMMU can read meanwhile
    /// translates as the old one or as the new one; then the IOTLB
    /// invalidations the change requires. Only when no such order exists
    /// (two doublewords' used bits change together) is the context made
    /// invalid on the way, counted in [`Directory::update_counts`].
    /// Allocates nothing.
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
        let ctx = t.ddt.context(&mem, id).map_err(errno)?.ok_or(EINVAL)?;
        let plan = Plan::new(&ctx.read(), dc, t.extended());
        if plan.steps().is_empty() {
            return Ok(());
        }
        self.updates.fetch_add(1, Relaxed);
        if plan.breaking() {
            self.breaking.fetch_add(1, Relaxed);
        }
        for step in plan.steps() {
            ctx.write_step(step);
            sync(&[Command::iodir_inval_ddt(Some(id))])?;
        }
        // After the last step's INVAL_DDT completed: from now on the IOMMU
        // only fills its IOTLB through the new context.
        let mut cmds = [Command::iofence(None); 2];
        let mut n = 0;
        for c in plan.invalidations() {
            cmds[n] = c;
            n += 1;
        }
        if n > 0 {
            sync(&cmds[..n])?;
        }
        Ok(())
    }

    /// Context changes made, and how many of them made the context invalid
    /// on the way (debugfs `stats`).
    pub(crate) fn update_counts(&self) -> (u64, u64) {
        (self.updates.load(Relaxed), self.breaking.load(Relaxed))
    }

    /// Calls `f(id, context)` for every valid device context, in id order.
    pub(crate) fn for_each_context(&self, t: &Tables, f: &mut dyn FnMut(u32, DeviceContext)) {
        t.ddt.for_each_context(&KernelMem::new(false), f);
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
        let mut t = self.tables.lock();
        if t.leaked {
            return;
        }
        // SAFETY: the IOMMU no longer reads the directory, and it is
        // dropped now: nothing uses it again.
        let unwalked = unsafe { Unwalked::new() };
        t.ddt.free(&KernelMem::new(false), unwalked);
    }
}
