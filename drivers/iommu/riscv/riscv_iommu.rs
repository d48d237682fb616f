// SPDX-License-Identifier: GPL-2.0

//! RISC-V IOMMU driver (RISC-V IOMMU specification v1.0).
//!
//! Replaces the in-tree C driver: device directory, command and fault
//! queues, first- and second-stage page tables, and domains for the DMA API
//! and iommufd. Paging domains use the second stage where the IOMMU has one,
//! so that MSI page tables (which the IOMMU consults only for guest-physical
//! addresses) can sit beside them.

mod command_queue;
mod context_ids;
mod debugfs;
mod directory;
mod domain_table;
mod fault_queue;
mod hw;
mod identity;
mod iommu;
mod mem;
mod mrif;
mod msi_layout;
mod msi_page_table;
mod ops;
mod paging;
mod pci;
mod platform;
mod registered;
mod regs;
mod remap;
mod requester;

use kernel::{
    driver,
    prelude::*, //
};

/// The module: one driver per bus an IOMMU can sit on.
#[pin_data]
struct RiscvIommuModule {
    #[pin]
    _pci: driver::Registration<kernel::pci::Adapter<pci::RiscvIommuPci>>,
    #[pin]
    _platform: driver::Registration<kernel::platform::Adapter<platform::RiscvIommuPlatform>>,
}

impl kernel::InPlaceModule for RiscvIommuModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _pci <- driver::Registration::new(c"riscv_iommu", module),
            _platform <- driver::Registration::new(c"riscv_iommu_platform", module),
        })
    }
}

module! {
    type: RiscvIommuModule,
    name: "riscv_iommu",
    authors: ["msiremap developers"],
    description: "RISC-V IOMMU driver",
    license: "GPL v2",
    params: {
        msi_flat: bool {
            default: false,
            description: "Remap MSIs with flat MSI page-table entries even where the IOMMU has MRIF mode (no isolated MSIs)",
        },
    },
}
