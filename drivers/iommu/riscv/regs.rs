// SPDX-License-Identifier: GPL-2.0

//! The IOMMU's memory-mapped registers (spec chapter 6), and the register
//! block behind whichever bus found the IOMMU.
//!
//! 64-bit registers are accessed with the runtime-checked `try_*` accessors:
//! a PCI BAR region only allows 4-byte accesses through the compile-time path.

use kernel::{
    device::{self, Bound},
    devres::DevresGuard,
    io::{
        mem::{DevresExclusiveIoMem, ExclusiveIoMem},
        poll::read_poll_timeout_atomic,
        register,
        IoBase,
        Mmio,
        Region, //
    },
    num::Bounded,
    pci,
    prelude::*,
    time::Delta, //
};

use crate::hw::{ddt::DdtMode, PAGE_SHIFT};

register! {
    /// What the IOMMU implements.
    pub(crate) CAPABILITIES(u64) @ 0x00 {
        /// Process ids of 20 bits.
        40:40 pd20 => bool;
        /// Process ids of 17 bits.
        39:39 pd17 => bool;
        /// Process ids of 8 bits.
        38:38 pd8 => bool;
        /// Physical address size.
        37:32 pas;
        /// Interrupt generation: 0 MSI, 1 wired, 2 both.
        29:28 igs;
        /// Address translation services (PCIe ATS).
        25:25 ats => bool;
        /// MSI page tables in MRIF mode.
        23:23 msi_mrif => bool;
        /// MSI page tables in flat mode (and extended device contexts).
        22:22 msi_flat => bool;
        /// Second stage Sv57x4.
        19:19 sv57x4 => bool;
        /// Second stage Sv48x4.
        18:18 sv48x4 => bool;
        /// Second stage Sv39x4.
        17:17 sv39x4 => bool;
        /// First stage Sv57.
        11:11 sv57 => bool;
        /// First stage Sv48.
        10:10 sv48 => bool;
        /// First stage Sv39.
        9:9 sv39 => bool;
        /// Specification version, 0x10 for 1.0.
        7:0 version;
    }

    /// The low half of `CAPABILITIES`, read before anything else: 32-bit
    /// accesses to 64-bit registers are always allowed, and a device that
    /// is not an IOMMU at all (a bad device-tree `reg`) may refuse 64-bit
    /// ones with a bus error.
    pub(crate) CAPABILITIES_LO(u32) @ 0x00 {
        /// Specification version: one this driver knows, or the raw value.
        7:0 version ?=> SpecVersion;
    }

    /// Feature control.
    pub(crate) FCTL(u32) @ 0x08 {
        /// Wired (not MSI) interrupts.
        1:1 wsi => bool;
        /// Big-endian memory accesses.
        0:0 be => bool;
    }

    /// Device-directory table pointer.
    pub(crate) DDTP(u64) @ 0x10 {
        /// Root directory page number.
        53:10 ppn;
        /// A mode change is in progress.
        4:4 busy => bool;
        /// `iommu_mode`: Off, Bare, 1-3 levels (or the raw value of a
        /// reserved one).
        3:0 mode ?=> DdtMode;
    }

    /// Command-queue base.
    pub(crate) CQB(u64) @ 0x18 {
        /// Page number of the queue.
        53:10 ppn;
        /// log2(entries) - 1.
        4:0 log2sz_1;
    }

    /// Command-queue head (the IOMMU's).
    pub(crate) CQH(u32) @ 0x20 {
        /// Next command the IOMMU reads.
        31:0 index;
    }

    /// Command-queue tail (the driver's).
    pub(crate) CQT(u32) @ 0x24 {
        /// Next slot the driver writes.
        31:0 index;
    }

    /// Fault-queue base.
    pub(crate) FQB(u64) @ 0x28 {
        /// Page number of the queue.
        53:10 ppn;
        /// log2(entries) - 1.
        4:0 log2sz_1;
    }

    /// Fault-queue head (the driver's).
    pub(crate) FQH(u32) @ 0x30 {
        /// Next record the driver reads.
        31:0 index;
    }

    /// Fault-queue tail (the IOMMU's).
    pub(crate) FQT(u32) @ 0x34 {
        /// Next slot the IOMMU writes.
        31:0 index;
    }

    /// Page-request queue base.
    pub(crate) PQB(u64) @ 0x38 {
        /// Page number of the queue.
        53:10 ppn;
        /// log2(entries) - 1.
        4:0 log2sz_1;
    }

    /// Page-request queue head (the driver's).
    pub(crate) PQH(u32) @ 0x40 {
        /// Next record the driver reads.
        31:0 index;
    }

    /// Page-request queue tail (the IOMMU's).
    pub(crate) PQT(u32) @ 0x44 {
        /// Next slot the IOMMU writes.
        31:0 index;
    }

    /// Command-queue control and status.
    pub(crate) CQCSR(u32) @ 0x48 {
        /// Busy changing state.
        17:17 busy => bool;
        /// The queue is on.
        16:16 cqon => bool;
        /// An illegal command was fetched.
        10:10 cmd_ill => bool;
        /// A command timed out.
        9:9 cmd_to => bool;
        /// Memory fault reading the queue.
        8:8 cqmf => bool;
        /// Interrupt enable.
        1:1 cie => bool;
        /// Enable.
        0:0 cqen => bool;
    }

    /// Fault-queue control and status.
    pub(crate) FQCSR(u32) @ 0x4c {
        /// Busy changing state.
        17:17 busy => bool;
        /// The queue is on.
        16:16 fqon => bool;
        /// The queue overflowed: records were lost.
        9:9 fqof => bool;
        /// Memory fault writing the queue.
        8:8 fqmf => bool;
        /// Interrupt enable.
        1:1 fie => bool;
        /// Enable.
        0:0 fqen => bool;
    }
}

register! {
    /// Page-request-queue control and status.
    pub(crate) PQCSR(u32) @ 0x50 {
        /// The queue is being turned on or off.
        17:17 busy => bool;
        /// The queue is active.
        16:16 pqon => bool;
        /// The queue overflowed (write 1 to clear).
        9:9 pqof => bool;
        /// A memory fault on the queue (write 1 to clear).
        8:8 pqmf => bool;
        /// Interrupt enable.
        1:1 pie => bool;
        /// Queue enable.
        0:0 pqen => bool;
    }

    /// Interrupt pending status (write 1 to clear).
    pub(crate) IPSR(u32) @ 0x54 {
        /// Page-request queue.
        3:3 pip => bool;
        /// Performance monitoring.
        2:2 pmip => bool;
        /// Fault queue.
        1:1 fip => bool;
        /// Command queue.
        0:0 cip => bool;
    }

    /// Interrupt cause to vector.
    pub(crate) ICVEC(u64) @ 0x2f8 {
        /// Vector of the page-request queue.
        15:12 piv;
        /// Vector of performance monitoring.
        11:8 pmiv;
        /// Vector of the fault queue.
        7:4 fiv;
        /// Vector of the command queue.
        3:0 civ;
    }
}

/// Specification versions this driver knows (`capabilities.version`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SpecVersion {
    /// Version 1.0.
    V1_0,
}

impl TryFrom<Bounded<u32, 8>> for SpecVersion {
    /// A version this driver does not know.
    type Error = u32;

    fn try_from(v: Bounded<u32, 8>) -> Result<Self, u32> {
        match v.get() {
            0x10 => Ok(Self::V1_0),
            other => Err(other),
        }
    }
}

impl From<SpecVersion> for Bounded<u32, 8> {
    fn from(v: SpecVersion) -> Self {
        match v {
            SpecVersion::V1_0 => Bounded::<u32, 8>::new::<0x10>(),
        }
    }
}

impl TryFrom<Bounded<u64, 4>> for DdtMode {
    /// A reserved mode.
    type Error = u64;

    fn try_from(v: Bounded<u64, 4>) -> Result<Self, u64> {
        match v.get() {
            0 => Ok(Self::Off),
            1 => Ok(Self::Bare),
            2 => Ok(Self::Lvl1),
            3 => Ok(Self::Lvl2),
            4 => Ok(Self::Lvl3),
            other => Err(other),
        }
    }
}

impl From<DdtMode> for Bounded<u64, 4> {
    fn from(m: DdtMode) -> Self {
        match m {
            DdtMode::Off => Bounded::<u64, 4>::new::<0>(),
            DdtMode::Bare => Bounded::<u64, 4>::new::<1>(),
            DdtMode::Lvl1 => Bounded::<u64, 4>::new::<2>(),
            DdtMode::Lvl2 => Bounded::<u64, 4>::new::<3>(),
            DdtMode::Lvl3 => Bounded::<u64, 4>::new::<4>(),
        }
    }
}

/// The page number a register's `ppn` field holds for the page at `pa`.
pub(crate) const fn ppn(pa: u64) -> u64 {
    pa >> PAGE_SHIFT
}

/// Size of the register file.
pub(crate) const REGS_SIZE: usize = 0x1000;

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

/// The register block as one MMIO view, whatever the bus.
pub(crate) type RegsIo<'a> = Mmio<'a, Region<REGS_SIZE>>;

impl Regs {
    /// The registers, `None` once the device is unbound.
    pub(crate) fn access(&self) -> Option<RegsGuard<'_>> {
        match self {
            Self::Pci(bar) => bar.try_access().map(RegsGuard::Pci),
            Self::Platform(mem) => mem.try_access().map(RegsGuard::Platform),
        }
    }

    /// The register block while `dev`, the IOMMU's device, is bound (it
    /// cannot be revoked meanwhile): no RCU read-side section, so code
    /// around it may sleep.
    pub(crate) fn bound_io<'a>(&'a self, dev: &'a device::Device<Bound>) -> Result<RegsIo<'a>> {
        match self {
            Self::Pci(bar) => Ok(bar.access(dev)?.as_view()),
            Self::Platform(mem) => Ok(mem.access(dev)?.as_view()),
        }
    }
}

impl RegsGuard<'_> {
    /// The register block as one MMIO view, whatever the bus.
    pub(crate) fn io(&self) -> RegsIo<'_> {
        match self {
            Self::Pci(bar) => (&**bar).as_view(),
            Self::Platform(mem) => (&**mem).as_view(),
        }
    }
}

/// Polling step while waiting for the IOMMU (never sleeps).
pub(crate) const POLL_STEP: Delta = Delta::from_micros(1);
/// Polls before a command (or a register change) is declared stuck: a second.
pub(crate) const POLL_TRIES: usize = 1_000_000;

/// Polls a register condition for up to a second without sleeping.
pub(crate) fn wait_reg(cond: impl Fn() -> Result<bool>) -> Result {
    read_poll_timeout_atomic(cond, |ok: &bool| *ok, POLL_STEP, POLL_TRIES).map(|_| ())
}
