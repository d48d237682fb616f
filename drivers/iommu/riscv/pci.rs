// SPDX-License-Identifier: GPL-2.0

//! PCI front end: QEMU's `riscv-iommu-pci` and the Rivos IOMMU.

use kernel::{
    debugfs,
    device::Core,
    iommu::driver::Registration,
    pci,
    prelude::*,
    str::CString,
    sync::Arc, //
};

use crate::{domain::RiscvIommu, iommu::Hw, regs::REGS_SIZE};

/// PCI class of an IOMMU (base system peripheral, IOMMU).
const CLASS_IOMMU: u32 = 0x080600;
/// Devices this driver takes: (vendor, device).
const IDS: [(u16, u16); 2] = [(0x1b36, 0x0014), (0x1efd, 0x0008)];

pub(crate) struct RiscvIommuPci;

/// Per-device data: the registration with the IOMMU core, and the debugfs
/// directory `riscv_iommu/<BDF>/` (`stats`: counters; reading it also drains
/// the fault queue into dmesg).
#[pin_data]
pub(crate) struct PciData {
    reg: Pin<KBox<Registration<RiscvIommu>>>,
    _debugfs: Pin<KBox<debugfs::Scope<Arc<Hw>>>>,
}

kernel::pci_device_table!(
    PCI_TABLE,
    <RiscvIommuPci as pci::Driver>::IdInfo,
    [(pci::DeviceId::from_class(CLASS_IOMMU, 0xffffff), ())]
);

impl pci::Driver for RiscvIommuPci {
    type IdInfo = ();
    type Data<'bound> = PciData;
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
            let hw = Arc::pin_init(Hw::new(pdev, bar)?, GFP_KERNEL)?;
            let bdf = CString::try_from_fmt(fmt!("{}", pdev.as_ref().name()))?;
            let debugfs = KBox::pin_init(
                debugfs::Dir::new(c"riscv_iommu").scope(hw.clone(), &bdf, |hw, dir| {
                    dir.read_callback_file(c"stats", hw, &|hw: &Arc<Hw>, f| hw.show_stats(f));
                }),
                GFP_KERNEL,
            )?;
            let name = CString::try_from_fmt(fmt!("riscv-iommu-{}", pdev.as_ref().name()))?;
            let reg = KBox::pin_init(Registration::new(pdev.as_ref(), &name, try_pin_init!(RiscvIommu { hw })), GFP_KERNEL)?;
            Ok(try_pin_init!(PciData { reg, _debugfs: debugfs }))
        })
    }
}
