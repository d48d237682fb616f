// SPDX-License-Identifier: GPL-2.0

//! The identity domain on an IOMMU with a second stage: an identity-mapped
//! second-stage table, one per IOMMU, shared by every device attached to
//! identity, each under its own GSCID.
//!
//! A `Bare` second stage would translate nothing, but the spec reserves an
//! MSI page table beside it ("When `DC.iohgatp.MODE` is `Bare`,
//! `DC.msiptp.MODE` must be set to `Off` by software. All other settings
//! are reserved", the spec's device-context configuration checks; cause 259,
//! "DDT entry misconfigured"). With an identity second stage the device
//! keeps its MSI table: its MSIs stay remapped and isolated in identity
//! domains too (`iommu.passthrough=1`), as Jason Gunthorpe's review of
//! "iommu/riscv: Add irqbypass support" v2 (September 2025) asks: with a
//! second stage, use it for everything.
//!
//! What is mapped: the whole input range of the second-stage mode, up to
//! the 2^56 bytes a PTE's PPN can name, in root-level leaves (2048 of
//! 1 GiB in Sv39x4, 2048 of 512 GiB in Sv48x4, 256 of 256 TiB in Sv57x4),
//! read-write. Whatever the system's size that is the 16 KiB root and no
//! table below it, so mapping less would save nothing; and identity means
//! a device reaches every physical address the bus decodes, as `Bare`
//! did: addresses with nothing behind them get the bus's answer, not the
//! IOMMU's. Sv48x4 (preferred when offered) reaches 1 PiB and Sv57x4 the
//! 56-bit physical address space RISC-V defines; an IOMMU with only Sv39x4
//! reaches the first 2 TiB, and DMA above would fault (no QEMU machine or
//! known system has RAM there). For addresses that match the MSI pattern
//! the IOMMU uses the MSI page table instead of the second stage (spec
//! 2.3.3), so the interrupt files are reached only through it.

use kernel::{prelude::*, sync::Arc};

use crate::{
    domain_table::DomainTable,
    hw::{
        ddt::DeviceContext,
        pgtable::PageTable,
        pte::{self, Mode},
    },
    iommu::Iommu,
    mem::{errno, KernelMem},
};

/// The end of the physical addresses a leaf PTE can name: 44 PPN bits.
const PA_END: u64 = 1 << 56;

/// The identity second stage of an IOMMU.
///
/// # Invariants
///
/// `table` is on `iommu`'s list of tables until drop, and maps its whole
/// input range to the same addresses, read-write, never changing.
pub(crate) struct Identity {
    iommu: Arc<Iommu>,
    pub(crate) table: Arc<DomainTable>,
}

impl Identity {
    /// The identity table of `iommu`, which translates on the second
    /// stage in `mode`.
    pub(crate) fn new(iommu: &Arc<Iommu>, mode: Mode) -> Result<Self> {
        let mem = KernelMem::new(false);
        let pt = PageTable::new(&mem, mode).map_err(errno)?;
        // INVARIANT: no context points at the table yet; on failure it is
        // freed as `DomainTable` drops it.
        let table = DomainTable::new(iommu.next_serial(), pt)?;
        // Root-level leaves (a second-stage root has 2048 entries), as
        // many as a PTE's 44-bit PPN can name.
        let leaf = mode.aperture_end() / 2048;
        let entries = mode.aperture_end().min(PA_END) / leaf;
        let rw = pte::Prot {
            read: true,
            write: true,
        };
        table
            .pt
            .map_pages(&mem, 0, 0, leaf, entries, rw)
            .1
            .map_err(errno)?;
        iommu.domains.lock().push(table.clone(), GFP_KERNEL)?;
        Ok(Self {
            iommu: iommu.clone(),
            table,
        })
    }

    /// The context of a requester with GSCID `gscid` in the identity
    /// domain.
    pub(crate) fn context(&self, gscid: u32) -> DeviceContext {
        let pt = &self.table.pt;
        // CAST: GSCIDs are 16 bits; `ContextIds` hands out fewer than 65536.
        DeviceContext::second_stage(pt.mode(), pt.root(), gscid as u16)
    }
}

impl Drop for Identity {
    fn drop(&mut self) {
        // Off the list; requesters still attached (none, once every device
        // is released) hold the table until they leave.
        let serial = self.table.serial;
        self.iommu.domains.lock().retain(|t| t.serial != serial);
    }
}
