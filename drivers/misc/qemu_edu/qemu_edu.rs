// SPDX-License-Identifier: GPL-2.0

//! Driver for QEMU's `edu` educational PCI device (1234:11e8).
//!
//! The rig's DMA probe: it drives edu's DMA engine through the DMA API, so a
//! round trip through the device checks that the IOMMU domain in front of it
//! translates. Each device gets a debugfs directory `qemu_edu/<BDF>/` whose
//! `dma` file runs a verified round trip and whose `stats` file reports them.
//!
//! It also makes edu a DSA-like IMS device (`ims`, `Documentation/ims.md`):
//! an interrupt message store of `ims_slots` slots, with a PASID per device,
//! whose device side the driver models.

mod driver;
mod edu;
mod ims;
mod regs;
mod slots;

kernel::module_pci_driver! {
    type: driver::EduDriver,
    name: "qemu_edu",
    authors: ["msiremap developers"],
    description: "QEMU edu device: DMA through the DMA API, MSI, and IMS",
    license: "GPL v2",
    params: {
        dma_bits: u32 {
            default: 28,
            description: "DMA address bits of the device (QEMU property dma_mask; 28 to 32)",
        },
        ims_slots: u32 {
            default: 4096,
            description: "Slots of the device's interrupt message store (1 to 8192)",
        },
        ims_dma: bool {
            default: false,
            description: "IMS messages written by edu's DMA engine rather than its MSI (lands only where the IOMMU translates MSIs like DMA)",
        },
        ims_queue: bool {
            default: false,
            description: "IMS slots in a DMA-coherent queue in system memory rather than an array in device memory",
        },
    },
}
