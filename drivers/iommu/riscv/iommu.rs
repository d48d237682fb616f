// SPDX-License-Identifier: GPL-2.0

//! One RISC-V IOMMU: what it implements, and the parts it is made of (its
//! registers, command queue, fault and page-request queues, device
//! directory, context ids), brought up and torn down in the order the
//! hardware needs.

use kernel::{
    device::{self, Bound},
    io::Io,
    irq::{imsic, IrqReturn, ThreadedHandler},
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc,
        Mutex, //
    },
};

use crate::{
    command_queue::CommandQueue,
    context_ids::ContextIds,
    directory::Directory,
    domain_table::DomainTable,
    fault_queue::{FaultQueue, PageRequestQueue},
    hw::{cmd::Command, ddt::DdtMode, pte::Mode},
    msi_layout::MsiLayout,
    regs::{self, Regs, RegsIo},
};

/// The fault-queue interrupt's handler.
#[pin_data]
pub(crate) struct FaultIrq {
    pub(crate) iommu: Arc<Iommu>,
}

impl ThreadedHandler for FaultIrq {
    fn handle_threaded(&self) -> IrqReturn {
        self.iommu.handle_irq()
    }
}

/// Counters for debugfs and the benchmark, besides the queues' own.
pub(crate) struct Stats {
    /// IOTLB syncs after unmaps (one per DMA unmap through the DMA API).
    pub(crate) unmap_syncs: Atomic<u64>,
    /// Interrupts taken.
    pub(crate) interrupts: Atomic<u64>,
}

/// One RISC-V IOMMU.
///
/// Made in two steps: [`Iommu::new`] allocates everything the hardware will
/// use and writes nothing; [`Iommu::start`] then programs it. Dropping it
/// turns the IOMMU off before any of its memory is freed.
#[pin_data(PinnedDrop)]
pub(crate) struct Iommu {
    pub(crate) dev: ARef<device::Device>,
    regs: Regs,
    /// `capabilities` as read at probe.
    pub(crate) caps: u64,
    /// Mode of paging domains: second stage when offered, else first.
    pub(crate) paging_mode: Mode,
    /// The geometry of MSI page tables, when the IOMMU has them and the
    /// system an IMSIC.
    pub(crate) msi: Option<MsiLayout>,
    #[pin]
    cmdq: CommandQueue,
    #[pin]
    fq: FaultQueue,
    /// The page-request queue, when the IOMMU has one (ATS).
    pq: Option<Pin<KBox<PageRequestQueue>>>,
    #[pin]
    pub(crate) ddt: Directory,
    /// The live paging domains' tables and the identity table, for
    /// debugfs, read under the lock.
    #[pin]
    pub(crate) domains: Mutex<KVec<Arc<DomainTable>>>,
    /// The last number [`Iommu::next_serial`] gave a table.
    serial: Atomic<u32>,
    #[pin]
    pub(crate) ids: ContextIds,
    pub(crate) stats: Stats,
}

impl Iommu {
    /// Reads what the IOMMU implements and allocates everything it will
    /// use; writes nothing to it. [`Iommu::start`] then turns it on.
    pub(crate) fn new<'a>(
        dev: &'a device::Device<Bound>,
        regs: Regs,
    ) -> Result<impl PinInit<Self, Error> + 'a> {
        // Probe may sleep (allocations): the registers through the bound
        // device, not through an RCU read-side section.
        let bar = regs.bound_io(dev)?;
        // Nothing is written, and nothing read 64 bits wide, before the
        // version says this is an IOMMU this driver knows.
        if let Err(version) = bar.try_read(regs::CAPABILITIES_LO)?.version() {
            dev_err!(dev, "unsupported specification version {:#x}\n", version);
            return Err(ENODEV);
        }
        let caps = bar.try_read(regs::CAPABILITIES)?;
        let paging_mode = if caps.sv48x4() {
            Mode::Sv48x4
        } else if caps.sv39x4() {
            Mode::Sv39x4
        } else if caps.sv57x4() {
            Mode::Sv57x4
        } else if caps.sv48() {
            Mode::Sv48
        } else if caps.sv39() {
            Mode::Sv39
        } else if caps.sv57() {
            Mode::Sv57
        } else {
            dev_err!(dev, "no page-table mode this driver knows\n");
            return Err(ENODEV);
        };
        let extended = caps.msi_flat();
        // MRIF mode where the table sees devices' MSIs as they write them:
        // second-stage domains (first-stage ones translate MSIs like any
        // DMA, sw_msi) and identity.
        let mrif = caps.msi_mrif()
            && paging_mode.is_second_stage()
            && !crate::module_parameters::msi_flat.value();
        // MSI page tables only beside a second stage: the spec reserves
        // `msiptp` with a `Bare` `iohgatp` (device-context configuration
        // checks). Without one, devices' MSIs are translated
        // by their first-stage domain like any DMA (sw_msi), and isolated
        // MSIs are not claimed.
        let msi = match (extended && paging_mode.is_second_stage(), imsic::layout()) {
            (true, Some(layout)) => Some(MsiLayout::new(&layout, mrif)?),
            _ => None,
        };

        // Everything the IOMMU reads or writes exists before it is told
        // where: a failure from here to the end frees it all, and the
        // IOMMU has not seen any of it.
        let cmdq = CommandQueue::new(dev)?;
        let fq = FaultQueue::new(dev)?;
        let pq = match caps.ats() {
            true => Some(KBox::pin_init(PageRequestQueue::new(dev)?, GFP_KERNEL)?),
            false => None,
        };
        let ids = ContextIds::new()?;
        // Last: nothing fails after the root directory is allocated.
        let ddt = Directory::new(extended);

        Ok(try_pin_init!(Self {
            dev: dev.into(),
            regs,
            caps: caps.into_raw(),
            paging_mode,
            msi,
            cmdq <- cmdq,
            fq <- fq,
            pq,
            ddt <- ddt,
            domains <- new_mutex!(KVec::new(), "Iommu::domains"),
            ids <- ids,
            serial: Atomic::new(0),
            stats: Stats {
                unmap_syncs: Atomic::new(0),
                interrupts: Atomic::new(0),
            },
        }))
    }

    /// Turns the IOMMU on: starts the command, fault and page-request
    /// queues and installs the empty device directory. On failure the
    /// IOMMU is off again: translating nothing, every queue disabled.
    pub(crate) fn start(&self, dev: &device::Device<Bound>) -> Result {
        let bar = self.regs.bound_io(dev)?;
        let res = self.try_start(&bar);
        if res.is_err() {
            stop(&bar);
        }
        res
    }

    fn try_start(&self, bar: &RegsIo<'_>) -> Result {
        // Start from a known state: translation off, queues off.
        stop(bar);
        // Interrupts are not used yet: MSI (not wired) signalling, all masked.
        bar.try_write_reg(regs::FCTL::zeroed())?;
        self.cmdq.start(bar, &self.dev)?;
        self.fq.start(bar, &self.dev)?;
        if let Some(pq) = &self.pq {
            pq.start(bar, &self.dev)?;
        }
        self.ddt.start(bar, &self.dev)?;
        let (extended, levels) = {
            let t = self.ddt.lock();
            (t.extended(), t.mode().levels())
        };
        dev_info!(
            self.dev,
            "RISC-V IOMMU v1.0: caps {:#x}, {}-level directory, {} contexts, paging {:?}, MSI tables: {}\n",
            self.caps,
            levels,
            if extended { "extended" } else { "base" },
            self.paging_mode,
            if self.msi.is_some() { "flat" } else { "none" }
        );
        Ok(())
    }

    /// A number for a new table, to tell tables apart in debugfs.
    pub(crate) fn next_serial(&self) -> u32 {
        self.serial.fetch_add(1, Relaxed) + 1
    }

    /// Queues `cmds` followed by an `IOFENCE.C` and waits for the fence, so
    /// every command has taken effect when this returns. Never sleeps.
    pub(crate) fn submit_sync(&self, cmds: &[Command]) -> Result {
        self.cmdq.submit_sync(&self.regs, &self.dev, cmds)
    }

    /// The command queue's counters: commands queued, fences waited for.
    pub(crate) fn command_counts(&self) -> (u64, u64) {
        (
            self.cmdq.commands.load(Relaxed),
            self.cmdq.syncs.load(Relaxed),
        )
    }

    /// Fault records read, and page requests (`None` without the queue).
    pub(crate) fn fault_counts(&self) -> (u64, Option<u64>) {
        (
            self.fq.faults.load(Relaxed),
            self.pq.as_ref().map(|q| q.requests.load(Relaxed)),
        )
    }

    /// Reports and counts every fault record and page request queued since
    /// the last call.
    pub(crate) fn drain_queues(&self) {
        self.fq.drain(&self.regs, &self.dev);
        if let Some(pq) = &self.pq {
            pq.drain(&self.regs, &self.dev);
        }
    }

    /// Enables the fault-queue interrupt (and the page-request queue's):
    /// as an MSI on vector 0 (every cause shares it), or `wired`, on the
    /// line listed second (the device-tree binding lists the lines by
    /// cause: cq, fq, pm, pq), which page requests share.
    pub(crate) fn enable_fault_irq(&self, wired: bool) -> Result {
        let guard = self.regs.access().ok_or(ENXIO)?;
        let bar = guard.io();
        if wired {
            bar.try_write_reg(regs::FCTL::zeroed().with_wsi(true))?;
            // Causes to the lines they are listed at: cq 0, fq 1, pm 2, and
            // page requests on the fault queue's.
            let icvec = regs::ICVEC::zeroed()
                .with_const_civ::<0>()
                .with_const_fiv::<1>()
                .with_const_pmiv::<2>()
                .with_const_piv::<1>();
            bar.try_write_reg(icvec)?;
        } else {
            bar.try_write_reg(regs::ICVEC::zeroed())?;
        }
        bar.try_write_reg(regs::FQCSR::zeroed().with_fqen(true).with_fie(true))?;
        if self.pq.is_some() {
            bar.try_write_reg(regs::PQCSR::zeroed().with_pqen(true).with_pie(true))?;
        }
        Ok(())
    }

    /// The features-control register as programmed.
    pub(crate) fn fctl(&self) -> Result<u32> {
        let guard = self.regs.access().ok_or(ENXIO)?;
        Ok(guard.io().try_read(regs::FCTL)?.into_raw())
    }

    /// The interrupt's thread: drains the fault queue when it signalled.
    pub(crate) fn handle_irq(&self) -> IrqReturn {
        let pending = {
            let Some(guard) = self.regs.access() else {
                return IrqReturn::None;
            };
            let bar = guard.io();
            let Ok(ipsr) = bar.try_read(regs::IPSR) else {
                return IrqReturn::None;
            };
            // Acknowledge before draining, so a fault queued meanwhile
            // raises the interrupt again.
            let _ = bar.try_write_reg(ipsr);
            ipsr
        };
        self.stats.interrupts.fetch_add(1, Relaxed);
        if pending.fip() {
            self.fq.drain(&self.regs, &self.dev);
        }
        if pending.pip() {
            if let Some(pq) = &self.pq {
                pq.drain(&self.regs, &self.dev);
            }
        }
        if pending.into_raw() == 0 {
            IrqReturn::None
        } else {
            IrqReturn::Handled
        }
    }
}

/// Turns the IOMMU off: translation off first, which blocks all DMA, then
/// every queue, so that nothing reads the directory or the queues any more.
/// Errors are ignored: there is nothing else to try.
fn stop(bar: &RegsIo<'_>) {
    let _ = bar.try_write_reg(regs::DDTP::zeroed().with_mode(DdtMode::Off));
    let _ = bar.try_write_reg(regs::CQCSR::zeroed());
    let _ = bar.try_write_reg(regs::FQCSR::zeroed());
    let _ = bar.try_write_reg(regs::PQCSR::zeroed());
}

#[pinned_drop]
impl PinnedDrop for Iommu {
    fn drop(self: Pin<&mut Self>) {
        let Some(guard) = self.regs.access() else {
            // The registers are gone: the IOMMU may still walk the directory,
            // so it is leaked rather than freed under its feet.
            dev_warn!(
                self.dev,
                "registers revoked before teardown; leaking the directory\n"
            );
            self.ddt.leak();
            return;
        };
        // The fields (the directory, the queues) are freed after this.
        stop(&guard.io());
        dev_info!(self.dev, "IOMMU off, tables freed\n");
    }
}
