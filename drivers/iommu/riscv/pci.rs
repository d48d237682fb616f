// SPDX-License-Identifier: GPL-2.0

//! PCI front end: QEMU's `riscv-iommu-pci` and the Rivos IOMMU.

use kernel::{
    device::Core,
    irq,
    pci::{
        self,
        vectors::ThreadedVector,
        IrqType,
        IrqTypes, //
    },
    prelude::*, //
};

use crate::{
    iommu::FaultIrq,
    registered::Registered,
    regs::{Regs, REGS_SIZE}, //
};

/// PCI class of an IOMMU (base system peripheral, IOMMU).
const CLASS_IOMMU: u32 = 0x080600;
/// Devices this driver takes: (vendor, device).
const IDS: [(u16, u16); 2] = [(0x1b36, 0x0014), (0x1efd, 0x0008)];

pub(crate) struct RiscvIommuPci;

/// Per-device data: the interrupt (freed first), then the registered IOMMU.
#[pin_data]
pub(crate) struct PciData<'bound> {
    irq: ThreadedVector<FaultIrq>,
    #[pin]
    registered: Registered<'bound>,
}

kernel::pci_device_table!(
    PCI_TABLE,
    <RiscvIommuPci as pci::Driver>::IdInfo,
    [(pci::DeviceId::from_class(CLASS_IOMMU, 0xffffff), ())]
);

impl pci::Driver for RiscvIommuPci {
    type IdInfo = ();
    type Data<'bound> = PciData<'bound>;
    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            let id = (pdev.vendor_id().as_raw(), pdev.device_id());
            if !IDS.contains(&id) {
                return Err(ENODEV);
            }
            pdev.enable_device_mem()?;
            // The IOMMU reads its queues and tables from memory.
            pdev.set_master();
            let bar = pdev.iomap_region_sized::<REGS_SIZE>(0, c"riscv_iommu")?;
            let (iommu, registered) =
                Registered::new(pdev.as_ref(), Regs::Pci(bar.into_devres()?))?;
            let types = IrqTypes::default().with(IrqType::MsiX).with(IrqType::Msi);
            let irq_iommu = iommu.clone();
            let irq = ThreadedVector::new(
                pdev,
                types,
                irq::Flags::ONESHOT,
                c"riscv-iommu",
                try_pin_init!(FaultIrq { iommu: irq_iommu }),
            )?;
            Ok(try_pin_init!(PciData {
                registered <- registered,
                irq,
                _: {
                    // One vector for every cause.
                    iommu.enable_fault_irq(false)?;
                },
            }))
        })
    }
}
