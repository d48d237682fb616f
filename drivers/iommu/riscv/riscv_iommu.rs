// SPDX-License-Identifier: GPL-2.0

//! RISC-V IOMMU driver (RISC-V IOMMU specification v1.0).
//!
//! Replaces the in-tree C driver: device directory, command and fault
//! queues, first- and second-stage page tables, and domains for the DMA API
//! and iommufd. Paging domains use the second stage where the IOMMU has one,
//! so that MSI page tables (which the IOMMU consults only for guest-physical
//! addresses) can sit beside them.

mod domain;
// Shared with the host tests; MSI tables and the walker serve the MSI
// remapping domain and debugfs, which come next.
#[allow(dead_code)]
mod hw;
mod iommu;
mod mem;
mod pci;
mod regs;

kernel::module_pci_driver! {
    type: pci::RiscvIommuPci,
    name: "riscv_iommu",
    authors: ["msiremap developers"],
    description: "RISC-V IOMMU driver",
    license: "GPL v2",
}
