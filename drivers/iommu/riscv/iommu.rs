// SPDX-License-Identifier: GPL-2.0

//! One IOMMU: its registers, command and fault queues, device directory and
//! context-id allocator, shared by the driver and its domains.

use kernel::{
    devres::DevresGuard,
    device::{self, Bound},
    dma::{Coherent, DmaAddress},
    irq::{imsic, IrqReturn, ThreadedHandler},
    io::{
        io_read,
        io_write,
        mem::{DevresExclusiveIoMem, ExclusiveIoMem},
        poll::read_poll_timeout_atomic,
        Io,
        IoBase,
        Mmio,
        Region, //
    },
    new_mutex,
    new_spinlock,
    new_raw_spinlock_irq,
    pci,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        lock::raw_spinlock::RawSpinLockIrq,
        Arc,
        Mutex,
        SpinLock, //
    },
    time::{Delta, Instant, Monotonic},
};

use crate::{
    hw::{
        cmd::Command,
        ddt::{self, DdtMode, DeviceContext},
        fault::FaultRecord,
        mem::PhysMem,
        msi::MsiGeometry,
        pgtable::PageTable,
        pte::Mode,
        queue::Ring,
        ratelimit::RateLimit,
    },
    mem::{errno, KernelMem, OwnedPages},
    regs::{self, REGS_SIZE},
};

/// Fault lines logged every `FAULT_LOG_INTERVAL_MS`, the kernel's default
/// rate limit (`DEFAULT_RATELIMIT_BURST` in `DEFAULT_RATELIMIT_INTERVAL`);
/// the rest are counted, and the count logged when the next interval opens.
const FAULT_LOG_BURST: u32 = 10;
const FAULT_LOG_INTERVAL_MS: u64 = 5000;
/// Page requests logged (none is expected: no context enables PRI).
const PAGE_REQUESTS_LOGGED: u64 = 8;
/// Command-queue entries (4096 commands, 64 KiB).
const CQ_LOG2: u32 = 12;
/// Fault-queue entries (1024 records, 32 KiB).
const FQ_LOG2: u32 = 10;
/// Page-request queue: 256 records of 16 bytes.
const PQ_LOG2: u32 = 8;
/// Polling step while waiting for the IOMMU (never sleeps).
const POLL_STEP: Delta = Delta::from_micros(1);
/// Polls before a command (or a register change) is declared stuck: a second.
const POLL_TRIES: usize = 1_000_000;

/// The fault-queue interrupt's handler.
#[pin_data]
pub(crate) struct FaultIrq {
    pub(crate) hw: Arc<Hw>,
}

impl ThreadedHandler for FaultIrq {
    fn handle_threaded(&self) -> IrqReturn {
        self.hw.handle_irq()
    }
}

/// The IOMMU's register block, behind whichever bus found it.
pub(crate) enum Regs {
    /// BAR 0 of a PCI IOMMU.
    Pci(pci::DevresBar<REGS_SIZE>),
    /// The `reg` region of a platform (device-tree) IOMMU.
    Platform(DevresExclusiveIoMem<REGS_SIZE>),
}

/// Access to the registers while the device is bound: an RCU read-side
/// section, so it is held only around register accesses, never across sleeps.
pub(crate) enum RegsGuard<'a> {
    Pci(DevresGuard<'a, pci::Bar<'static, REGS_SIZE>>),
    Platform(DevresGuard<'a, ExclusiveIoMem<'static, REGS_SIZE>>),
}

impl Regs {
    /// The registers, `None` once the device is unbound.
    pub(crate) fn access(&self) -> Option<RegsGuard<'_>> {
        match self {
            Self::Pci(bar) => bar.try_access().map(RegsGuard::Pci),
            Self::Platform(mem) => mem.try_access().map(RegsGuard::Platform),
        }
    }
}

impl Regs {
    /// The register block while `dev`, the IOMMU's device, is bound (it
    /// cannot be revoked meanwhile): no RCU read-side section, so code
    /// around it may sleep.
    pub(crate) fn bound_io<'a>(&'a self, dev: &'a device::Device<Bound>) -> Result<Mmio<'a, Region<REGS_SIZE>>> {
        match self {
            Self::Pci(bar) => Ok(bar.access(dev)?.as_view()),
            Self::Platform(mem) => Ok(mem.access(dev)?.as_view()),
        }
    }
}

impl RegsGuard<'_> {
    /// The register block as one MMIO view, whatever the bus.
    pub(crate) fn io(&self) -> Mmio<'_, Region<REGS_SIZE>> {
        match self {
            Self::Pci(bar) => (&**bar).as_view(),
            Self::Platform(mem) => (&**mem).as_view(),
        }
    }
}

/// The command queue.
///
/// # Invariants
///
/// `buf` holds two words per entry of `ring`.
struct CmdQueue {
    ring: Ring,
    buf: Coherent<[u64]>,
    /// Where `IOFENCE.C` writes its sequence number on completion.
    fence: Coherent<[u32]>,
}

/// Producer state of the command queue.
struct CmdState {
    tail: u32,
    /// The IOMMU's head as last known: every fence that completed consumed
    /// all commands before it, so `CQH` is read only when the ring looks full.
    head: u32,
    seq: u32,
}

/// The fault queue, or the page-request queue.
struct FaultQueue {
    ring: Ring,
    buf: Coherent<[u64]>,
}

/// The device directory.
pub(crate) struct Directory {
    pub(crate) root: u64,
    pub(crate) mode: DdtMode,
}

/// Where the IMSIC's interrupt files are, as MSI page tables see them: the
/// geometry (address mask and pattern) covering every hart's supervisor and
/// guest files. Each device behind the IOMMU gets its own table of this
/// geometry (`crate::remap`).
pub(crate) struct MsiLayout {
    pub(crate) geometry: MsiGeometry,
    /// The lowest and the end of the highest interrupt file.
    pub(crate) span: (u64, u64),
}

impl MsiLayout {
    fn new(layout: &imsic::Layout) -> Result<Self> {
        let mut files = KVec::new();
        let mut res = Ok(());
        layout.for_each_file(&mut |f| {
            if res.is_ok() {
                res = files.push(f, GFP_KERNEL);
            }
        });
        res?;
        let geometry = MsiGeometry::from_files(&files).map_err(errno)?;
        let lo = files.iter().copied().min().unwrap_or(0);
        let hi = files.iter().copied().max().unwrap_or(0) + crate::hw::PAGE_SIZE;
        Ok(Self { geometry, span: (lo, hi) })
    }
}

/// A live paging domain as debugfs lists it.
#[derive(Clone, Copy)]
pub(crate) struct DomainInfo {
    pub(crate) id: u32,
    pub(crate) mode: Mode,
    pub(crate) root: u64,
}

/// Counters for debugfs and the benchmark.
pub(crate) struct Stats {
    pub(crate) commands: Atomic<u64>,
    pub(crate) syncs: Atomic<u64>,
    pub(crate) faults: Atomic<u64>,
    /// IOTLB syncs after unmaps (one per DMA unmap through the DMA API).
    pub(crate) unmap_syncs: Atomic<u64>,
    /// Interrupts taken.
    pub(crate) interrupts: Atomic<u64>,
    /// Page requests received.
    pub(crate) page_requests: Atomic<u64>,
}

/// The fault-queue consumer: its head, and the rate limits of its log.
struct FaultLog {
    head: u32,
    /// Origin of the rate limits' clock.
    epoch: Instant<Monotonic>,
    /// One line per fault record, rate-limited.
    records: RateLimit,
    /// Queue overflows and memory faults: one line an interval.
    errors: RateLimit,
}

impl FaultLog {
    fn new() -> Self {
        Self {
            head: 0,
            epoch: Instant::now(),
            records: RateLimit::new(FAULT_LOG_INTERVAL_MS, FAULT_LOG_BURST),
            errors: RateLimit::new(FAULT_LOG_INTERVAL_MS, 1),
        }
    }

    /// Milliseconds since `epoch`.
    fn now_ms(&self) -> u64 {
        // CAST: the monotonic clock does not go back: never negative.
        self.epoch.elapsed().as_millis() as u64
    }
}

/// One RISC-V IOMMU.
#[pin_data(PinnedDrop)]
pub(crate) struct Hw {
    pub(crate) dev: ARef<device::Device>,
    regs: Regs,
    /// `capabilities` as read at probe.
    pub(crate) caps: u64,
    /// Device contexts are 64 bytes (the IOMMU has MSI page tables).
    pub(crate) extended: bool,
    /// Mode of paging domains: second stage when offered, else first.
    pub(crate) paging_mode: Mode,
    /// The geometry of MSI page tables, when the IOMMU has them and the
    /// system an IMSIC.
    pub(crate) msi: Option<MsiLayout>,
    cmdq: CmdQueue,
    /// Serialises producers of the command queue; taken in atomic context
    /// (DMA unmaps) and in hard interrupts (MSI moves), so with interrupts
    /// off.
    #[pin]
    cmd_state: RawSpinLockIrq<CmdState>,
    fq: FaultQueue,
    /// The fault-queue consumer's state; serialises it.
    #[pin]
    fq_state: SpinLock<FaultLog>,
    /// The page-request queue, when the IOMMU has one.
    pq: Option<FaultQueue>,
    /// Serialises the page-request-queue consumer.
    #[pin]
    pq_head: SpinLock<u32>,
    /// Serialises device-directory updates; only in process context.
    #[pin]
    pub(crate) ddt: Mutex<Directory>,
    /// The live paging domains, for debugfs; a domain leaves the list
    /// before its tables are freed, and the list lock is held while they
    /// are read.
    #[pin]
    pub(crate) domains: Mutex<KVec<DomainInfo>>,
    /// Allocated context ids (GSCID or PSCID), one bit each.
    #[pin]
    ids: SpinLock<KVec<u64>>,
    pub(crate) stats: Stats,
}

impl Hw {
    /// Reads what the IOMMU implements and allocates everything it will
    /// use; writes nothing to it. [`Hw::start`] then turns it on.
    pub(crate) fn new<'a>(dev: &'a device::Device<Bound>, regs: Regs) -> Result<impl PinInit<Self, Error> + 'a> {
        // Probe may sleep (allocations): the registers through the bound
        // device, not through an RCU read-side section.
        let bar = regs.bound_io(dev)?;
        // Nothing is written, and nothing read 64 bits wide, before the
        // version says this is an IOMMU this driver knows.
        let version = bar.try_read(regs::CAPABILITIES_LO)?.version().get();
        if version != 0x10 {
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
        let msi = match (extended, imsic::layout()) {
            (true, Some(layout)) => Some(MsiLayout::new(&layout)?),
            _ => None,
        };

        // Everything the IOMMU reads or writes exists before it is told
        // where: a failure from here to the end frees it all, and the
        // IOMMU has not seen any of it.
        // PANIC: the ring sizes are constants within 1..=31.
        let cq_ring = Ring::new(CQ_LOG2).expect("CQ_LOG2 is valid");
        let cq_buf: Coherent<[u64]> = Coherent::zeroed_slice(dev, 2 * cq_ring.entries() as usize, GFP_KERNEL)?;
        let fence: Coherent<[u32]> = Coherent::zeroed_slice(dev, 1, GFP_KERNEL)?;
        // PANIC: as above.
        let fq_ring = Ring::new(FQ_LOG2).expect("FQ_LOG2 is valid");
        let fq_buf: Coherent<[u64]> = Coherent::zeroed_slice(dev, 4 * fq_ring.entries() as usize, GFP_KERNEL)?;
        // A page-request queue where the IOMMU has one (ATS): no device
        // context enables PRI, so a record there means a device asked for
        // a page anyway; it is reported and counted.
        let pq = if caps.ats() {
            // PANIC: as above.
            let pq_ring = Ring::new(PQ_LOG2).expect("PQ_LOG2 is valid");
            let pq_buf: Coherent<[u64]> = Coherent::zeroed_slice(dev, 2 * pq_ring.entries() as usize, GFP_KERNEL)?;
            Some(FaultQueue { ring: pq_ring, buf: pq_buf })
        } else {
            None
        };
        let mut ids = KVec::new();
        // 65536 context ids; id 0 stays reserved for contexts without one.
        ids.extend_from_slice(&[0u64; 1024], GFP_KERNEL)?;
        ids[0] = 1;
        // The root directory, handed to `ddt` (which `drop` frees) by the
        // initialiser, after which nothing can fail.
        let root = OwnedPages::alloc(0)?;

        Ok(try_pin_init!(Self {
            dev: dev.into(),
            regs,
            caps: caps.into_raw(),
            extended,
            paging_mode,
            msi,
            // INVARIANT: `cq_buf` has two words per entry.
            cmdq: CmdQueue { ring: cq_ring, buf: cq_buf, fence },
            cmd_state <- new_raw_spinlock_irq!(CmdState { tail: 0, head: 0, seq: 0 }, "Hw::cmd_state"),
            fq: FaultQueue { ring: fq_ring, buf: fq_buf },
            fq_state <- new_spinlock!(FaultLog::new(), "Hw::fq_state"),
            pq,
            pq_head <- new_spinlock!(0, "Hw::pq_head"),
            // The mode is the largest the IOMMU accepts, found by `start`.
            ddt <- new_mutex!(Directory { root: root.into_raw(), mode: DdtMode::Off }, "Hw::ddt"),
            domains <- new_mutex!(KVec::new(), "Hw::domains"),
            ids <- new_spinlock!(ids, "Hw::ids"),
            stats: Stats {
                commands: Atomic::new(0),
                syncs: Atomic::new(0),
                faults: Atomic::new(0),
                unmap_syncs: Atomic::new(0),
                interrupts: Atomic::new(0),
                page_requests: Atomic::new(0),
            },
        }))
    }

    /// Turns the IOMMU on: starts the command, fault and page-request
    /// queues and installs the empty device directory, in the largest mode
    /// the IOMMU accepts. On failure the IOMMU is off again: translating
    /// nothing, every queue disabled.
    pub(crate) fn start(&self, dev: &device::Device<Bound>) -> Result {
        let bar = self.regs.bound_io(dev)?;
        let res = self.try_start(&bar);
        if res.is_err() {
            stop(&bar);
        }
        res
    }

    fn try_start(&self, bar: &Mmio<'_, Region<REGS_SIZE>>) -> Result {
        // Start from a known state: translation off, queues off.
        stop(bar);
        // Interrupts are not used yet: MSI (not wired) signalling, all masked.
        bar.try_write_reg(regs::FCTL::zeroed())?;

        let q = &self.cmdq;
        bar.try_write_reg(regs::CQB::from_raw(q.ring.base_reg(q.buf.dma_address())))?;
        bar.try_write_reg(regs::CQT::zeroed())?;
        bar.try_write_reg(regs::CQCSR::zeroed().with_cqen(true))?;
        wait_reg(|| bar.try_read(regs::CQCSR).map(|r| r.cqon() && !r.busy()))
            .inspect_err(|_| dev_err!(self.dev, "command queue does not start\n"))?;

        let q = &self.fq;
        bar.try_write_reg(regs::FQB::from_raw(q.ring.base_reg(q.buf.dma_address())))?;
        bar.try_write_reg(regs::FQH::zeroed())?;
        bar.try_write_reg(regs::FQCSR::zeroed().with_fqen(true))?;
        wait_reg(|| bar.try_read(regs::FQCSR).map(|r| r.fqon() && !r.busy()))
            .inspect_err(|_| dev_err!(self.dev, "fault queue does not start\n"))?;

        if let Some(q) = &self.pq {
            bar.try_write_reg(regs::PQB::from_raw(q.ring.base_reg(q.buf.dma_address())))?;
            bar.try_write_reg(regs::PQH::zeroed())?;
            bar.try_write_reg(regs::PQCSR::zeroed().with_pqen(true))?;
            wait_reg(|| bar.try_read(regs::PQCSR).map(|r| r.pqon() && !r.busy()))
                .inspect_err(|_| dev_err!(self.dev, "page-request queue does not start\n"))?;
        }

        // The largest directory the IOMMU accepts.
        let mut dir = self.ddt.lock();
        let mut mode = DdtMode::Lvl3;
        loop {
            bar.try_write_reg(regs::DDTP::from_raw(ddt::ddtp(mode, dir.root)))?;
            wait_reg(|| bar.try_read(regs::DDTP).map(|r| !r.busy()))?;
            let got = bar.try_read(regs::DDTP)?.mode().get();
            if got == mode as u64 {
                break;
            }
            mode = match mode.smaller() {
                Some(m) => m,
                None => {
                    dev_err!(self.dev, "no device-directory mode accepted\n");
                    return Err(ENODEV);
                }
            };
        }
        dir.mode = mode;
        dev_info!(
            self.dev,
            "RISC-V IOMMU v1.0: caps {:#x}, {}-level directory, {} contexts, paging {:?}, MSI tables: {}\n",
            self.caps,
            mode.levels(),
            if self.extended { "extended" } else { "base" },
            self.paging_mode,
            if self.extended { "flat" } else { "none" }
        );
        Ok(())
    }

    /// Queues `cmds` followed by an `IOFENCE.C` and waits for the fence, so
    /// every command has taken effect when this returns. Never sleeps.
    pub(crate) fn submit_sync(&self, cmds: &[Command]) -> Result {
        let q = &self.cmdq;
        let mut st = self.cmd_state.lock();
        st.seq = st.seq.wrapping_add(1);
        let seq = st.seq;
        let fence_addr: DmaAddress = q.fence.dma_address();
        let fence = Command::iofence(Some((fence_addr, seq)));
        let guard = self.regs.access().ok_or(ENXIO)?;
        let bar = guard.io();
        for cmd in Iterator::chain(cmds.iter().copied(), [fence]) {
            if q.ring.free(st.head, st.tail) == 0 {
                bar.try_write_reg(regs::CQT::from_raw(st.tail))?;
                let tail = st.tail;
                st.head = read_poll_timeout_atomic(
                    || bar.try_read(regs::CQH).map(|h| h.index().get()),
                    |h| q.ring.free(*h, tail) > 0,
                    POLL_STEP,
                    POLL_TRIES,
                )?;
            }
            // CAST: `tail` is below the ring size, which fits in `usize`.
            let slot = 2 * st.tail as usize;
            io_write!(&q.buf, [try: slot], cmd.0[0]);
            io_write!(&q.buf, [try: slot + 1], cmd.0[1]);
            st.tail = q.ring.next(st.tail);
        }
        // `writel` orders the command stores before the doorbell.
        bar.try_write_reg(regs::CQT::from_raw(st.tail))?;
        self.stats.commands.fetch_add(cmds.len() as u64, Relaxed);
        self.stats.syncs.fetch_add(1, Relaxed);
        let done = read_poll_timeout_atomic(
            || Ok(io_read!(&q.fence, [try: 0])),
            |v: &u32| *v == seq,
            POLL_STEP,
            POLL_TRIES,
        );
        if let Err(e) = done {
            let csr = bar.try_read(regs::CQCSR)?;
            dev_err!(
                self.dev,
                "command queue stuck (cqcsr {:#x}: ill {} timeout {} memfault {})\n",
                csr.into_raw(),
                csr.cmd_ill(),
                csr.cmd_to(),
                csr.cqmf()
            );
            return Err(e);
        }
        // The fence completed: the IOMMU consumed everything queued.
        st.head = st.tail;
        Ok(())
    }

    /// Reports every fault the IOMMU queued since the last call, one
    /// rate-limited line each, and counts them.
    pub(crate) fn drain_faults(&self) {
        let mut st = self.fq_state.lock();
        let Some(guard) = self.regs.access() else { return };
        let bar = guard.io();
        let Ok(tail) = bar.try_read(regs::FQT).map(|t| t.index().get()) else { return };
        let now = st.now_ms();
        while st.head != tail {
            // CAST: `head` is below the ring size.
            let slot = 4 * st.head as usize;
            let read = || -> Result<[u64; 4]> {
                let mut w = [0u64; 4];
                for (i, word) in w.iter_mut().enumerate() {
                    *word = io_read!(&self.fq.buf, [try: slot + i]);
                }
                Ok(w)
            };
            let Ok(w) = read() else { return };
            let f = FaultRecord::decode(w);
            self.stats.faults.fetch_add(1, Relaxed);
            let (log, missed) = st.records.allow(now);
            if missed > 0 {
                dev_warn!(self.dev, "{} fault records not logged (rate limit)\n", missed);
            }
            if log {
                log_fault(&self.dev, &f);
            }
            st.head = self.fq.ring.next(st.head);
        }
        let _ = bar.try_write_reg(regs::FQH::from_raw(st.head));
        if let Ok(csr) = bar.try_read(regs::FQCSR) {
            if csr.fqof() || csr.fqmf() {
                if st.errors.allow(now).0 {
                    let what = if csr.fqof() { "overflowed" } else { "memory fault" };
                    dev_warn!(self.dev, "fault queue {} (fqcsr {:#x})\n", what, csr.into_raw());
                }
                // The status bits are write-1-to-clear.
                let _ = bar.try_write_reg(csr);
            }
        }
    }

    /// Reports and counts page requests (none is expected: no context
    /// enables PRI), and makes room for more.
    pub(crate) fn drain_page_requests(&self) {
        let Some(pq) = &self.pq else { return };
        let mut head = self.pq_head.lock();
        let Some(guard) = self.regs.access() else { return };
        let bar = guard.io();
        let Ok(tail) = bar.try_read(regs::PQT).map(|t| t.index().get()) else { return };
        while *head != tail {
            // CAST: `head` is below the ring size.
            let slot = 2 * *head as usize;
            let read = || -> Result<[u64; 2]> { Ok([io_read!(&pq.buf, [try: slot]), io_read!(&pq.buf, [try: slot + 1])]) };
            let Ok(w) = read() else { return };
            if self.stats.page_requests.fetch_add(1, Relaxed) < PAGE_REQUESTS_LOGGED {
                // Spec 4.3: device id in bits 63:40, PASID in 31:12 of word 0;
                // the page address in 63:12 of word 1.
                dev_err!(
                    self.dev,
                    "page request: device {:#06x} pasid {} address {:#x} (PRI is not enabled)\n",
                    w[0] >> 40,
                    (w[0] >> 12) & 0xf_ffff,
                    w[1] & !0xfff
                );
            }
            *head = pq.ring.next(*head);
        }
        let _ = bar.try_write_reg(regs::PQH::from_raw(*head));
        if let Ok(csr) = bar.try_read(regs::PQCSR) {
            if csr.pqof() || csr.pqmf() {
                dev_warn!(self.dev, "page-request queue error (pqcsr {:#x})\n", csr.into_raw());
                // The status bits are write-1-to-clear.
                let _ = bar.try_write_reg(csr);
            }
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
            bar.try_write_reg(regs::ICVEC::from_raw(0x1210))?;
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
            let Some(guard) = self.regs.access() else { return IrqReturn::None };
            let bar = guard.io();
            let Ok(ipsr) = bar.try_read(regs::IPSR) else { return IrqReturn::None };
            // Acknowledge before draining, so a fault queued meanwhile
            // raises the interrupt again.
            let _ = bar.try_write_reg(ipsr);
            ipsr
        };
        self.stats.interrupts.fetch_add(1, Relaxed);
        if pending.fip() {
            self.drain_faults();
        }
        if pending.pip() {
            self.drain_page_requests();
        }
        if pending.into_raw() == 0 {
            IrqReturn::None
        } else {
            IrqReturn::Handled
        }
    }

    /// Drains the fault queue, then writes the counters, one `key value` a
    /// line (debugfs `stats`).
    pub(crate) fn show_stats(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        self.drain_faults();
        self.drain_page_requests();
        let dir = self.ddt.lock();
        writeln!(f, "caps {:#x}", self.caps)?;
        writeln!(f, "directory_levels {}", dir.mode.levels())?;
        writeln!(f, "contexts {}", if self.extended { "extended" } else { "base" })?;
        f.write_fmt(fmt!("paging_mode {:?}\n", self.paging_mode))?;
        match &self.msi {
            Some(t) => writeln!(
                f,
                "msi_tables per-device entries {} mask {:#x} pattern {:#x}",
                t.geometry.entries(),
                t.geometry.mask(),
                t.geometry.pattern()
            )?,
            None => writeln!(f, "msi_tables none")?,
        }
        writeln!(f, "commands {}", self.stats.commands.load(Relaxed))?;
        writeln!(f, "syncs {}", self.stats.syncs.load(Relaxed))?;
        writeln!(f, "unmap_syncs {}", self.stats.unmap_syncs.load(Relaxed))?;
        writeln!(f, "interrupts {}", self.stats.interrupts.load(Relaxed))?;
        writeln!(f, "page_request_queue {}", if self.pq.is_some() { "on" } else { "none" })?;
        writeln!(f, "page_requests {}", self.stats.page_requests.load(Relaxed))?;
        writeln!(f, "faults {}", self.stats.faults.load(Relaxed))
    }

    /// Writes every valid device context, one line each (debugfs
    /// `contexts`).
    pub(crate) fn show_contexts(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        let dir = self.ddt.lock();
        let mem = KernelMem { atomic: false };
        let mut res = Ok(());
        ddt::for_each_context(&mem, dir.root, dir.mode, self.extended, &mut |id, dc| {
            if res.is_ok() {
                res = writeln!(
                    f,
                    "device {:#06x} tc {:#x} iohgatp {:#x} ta {:#x} fsc {:#x} msiptp {:#x} msi_mask {:#x} msi_pattern {:#x}",
                    id, dc.tc, dc.iohgatp, dc.ta, dc.fsc, dc.msiptp, dc.msi_addr_mask, dc.msi_addr_pattern
                );
            }
        });
        res
    }

    /// Writes every paging domain and its mappings (debugfs `domains`).
    pub(crate) fn show_domains(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        let domains = self.domains.lock();
        let mem = KernelMem { atomic: false };
        for d in domains.iter() {
            f.write_fmt(fmt!("domain {} {:?} root {:#x}\n", d.id, d.mode, d.root))?;
            // The tables stay allocated while the domain is listed; map and
            // unmap may change words under us, each read is atomic.
            let pt = PageTable::view(d.root, d.mode);
            let mut res = Ok(());
            pt.for_each_leaf(&mem, &mut |iova, pa, size, prot| {
                if res.is_ok() {
                    res = writeln!(
                        f,
                        "  iova {:#x} pa {:#x} size {:#x} {}{}",
                        iova,
                        pa,
                        size,
                        if prot.read { "r" } else { "-" },
                        if prot.write { "w" } else { "-" }
                    );
                }
            });
            res?;
        }
        Ok(())
    }

    /// Allocates a context id (GSCID or PSCID).
    pub(crate) fn alloc_id(&self) -> Result<u32> {
        let mut ids = self.ids.lock();
        for (i, word) in ids.iter_mut().enumerate() {
            if *word != u64::MAX {
                let bit = word.trailing_ones();
                *word |= 1 << bit;
                // CAST: at most 1024 * 64 ids.
                return Ok(i as u32 * 64 + bit);
            }
        }
        Err(ENOSPC)
    }

    /// Frees a context id.
    pub(crate) fn free_id(&self, id: u32) {
        let mut ids = self.ids.lock();
        if let Some(word) = ids.get_mut((id / 64) as usize) {
            *word &= !(1 << (id % 64));
        }
    }

    /// Makes the directory path to device `id`'s context, allocating the
    /// missing intermediate directories (kept until the IOMMU goes).
    pub(crate) fn prepare_context(&self, dir: &Directory, id: u32) -> Result {
        let mut mem = KernelMem { atomic: false };
        ddt::dc_address(&mut mem, dir.root, dir.mode, self.extended, id, true).map_err(errno)?;
        Ok(())
    }

    /// Writes device `id`'s context: first invalidating a valid one, so the
    /// IOMMU never uses a half-written context, then the new one.
    pub(crate) fn set_context(&self, dir: &Directory, id: u32, dc: &DeviceContext) -> Result {
        let mut mem = KernelMem { atomic: false };
        // Never allocates: `prepare_context` made the path when the device
        // was probed, so attaching (which the core forbids to fail the first
        // time) cannot run out of memory.
        let pa = ddt::dc_address(&mut mem, dir.root, dir.mode, self.extended, id, false)
            .map_err(errno)?
            .ok_or(EINVAL)?;
        let old = DeviceContext::read(&mem, pa, self.extended);
        if old.tc & DeviceContext::TC_V != 0 {
            let mut off = old;
            off.tc = 0;
            off.write(&mut mem, pa, self.extended);
            self.submit_sync(&[Command::iodir_inval_ddt(Some(id))])?;
        }
        dc.write(&mut mem, pa, self.extended);
        self.submit_sync(&[Command::iodir_inval_ddt(Some(id))])
    }
}

/// Logs one fault record in one line.
fn log_fault(dev: &device::Device, f: &FaultRecord) {
    dev_err!(
        dev,
        "fault: device {:#06x} cause {} ({}) {} iova {:#x} gpa {:#x} pasid {}\n",
        f.did,
        f.cause,
        f.cause_name(),
        f.ttyp_name(),
        f.iotval,
        f.iotval2,
        if f.pv { f.pid as i64 } else { -1 }
    );
}

/// Turns the IOMMU off: translation off first, which blocks all DMA, then
/// every queue, so that nothing reads the directory or the queues any more.
/// Errors are ignored: there is nothing else to try.
fn stop(bar: &Mmio<'_, Region<REGS_SIZE>>) {
    let _ = bar.try_write_reg(regs::DDTP::from_raw(ddt::ddtp(DdtMode::Off, 0)));
    let _ = bar.try_write_reg(regs::CQCSR::zeroed());
    let _ = bar.try_write_reg(regs::FQCSR::zeroed());
    let _ = bar.try_write_reg(regs::PQCSR::zeroed());
}

/// Polls a register condition for up to a second without sleeping.
fn wait_reg(cond: impl Fn() -> Result<bool>) -> Result {
    read_poll_timeout_atomic(cond, |ok: &bool| *ok, POLL_STEP, POLL_TRIES).map(|_| ())
}

#[pinned_drop]
impl PinnedDrop for Hw {
    fn drop(self: Pin<&mut Self>) {
        let dir = self.ddt.lock();
        let Some(guard) = self.regs.access() else {
            // The registers are gone: the IOMMU may still walk the directory,
            // so it is leaked rather than freed under its feet.
            dev_warn!(self.dev, "registers revoked before teardown; leaking the directory\n");
            return;
        };
        stop(&guard.io());
        let mut mem = KernelMem { atomic: false };
        ddt::free_directories(&mut mem, dir.root, dir.mode);
        PhysMem::free_pages(&mut mem, dir.root, 0);
        dev_info!(self.dev, "IOMMU off, tables freed\n");
    }
}
