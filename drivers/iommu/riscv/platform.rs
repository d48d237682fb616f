// SPDX-License-Identifier: GPL-2.0

//! Platform front end: a device-tree `riscv,iommu` node (QEMU's `virt`
//! with `iommu-sys=on`).

use kernel::{
    device::Core,
    irq::{self, managed::ThreadedIrq},
    of,
    platform,
    prelude::*, //
};

use crate::{
    iommu::FaultIrq,
    registered::Registered,
    regs::{Regs, REGS_SIZE}, //
};

pub(crate) struct RiscvIommuPlatform;

/// The fault queue's line among the node's `interrupts` (cq, fq, pm, pq).
const FQ_IRQ_INDEX: u32 = 1;

/// Per-device data: the interrupt (freed first), then the registered IOMMU.
#[pin_data]
pub(crate) struct PlatformData<'bound> {
    irq: ThreadedIrq<FaultIrq>,
    #[pin]
    registered: Registered<'bound>,
}

kernel::of_device_table!(
    OF_TABLE,
    <RiscvIommuPlatform as platform::Driver>::IdInfo,
    [(of::DeviceId::new(c"riscv,iommu"), ())]
);

impl platform::Driver for RiscvIommuPlatform {
    type IdInfo = ();
    type Data<'bound> = PlatformData<'bound>;
    const OF_ID_TABLE: Option<of::IdTable<Self::IdInfo>> = Some(&OF_TABLE);

    fn probe<'bound>(
        pdev: &'bound platform::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            let dev = pdev.as_ref();
            let Some(res) = pdev.resource_by_index(0) else {
                dev_err!(dev, "no register region (reg)\n");
                return Err(ENODEV);
            };
            let (start, size) = (res.start(), res.size());
            if size < REGS_SIZE as u64 {
                dev_err!(dev, "register region {start:#x}+{size:#x} is smaller than the {REGS_SIZE:#x}-byte register file\n");
                return Err(EINVAL);
            }
            // Exclusive: the registers are ours alone, and a region another
            // driver holds (a `reg` naming someone else's registers) is
            // refused before anything is read from it.
            let regs = pdev
                .io_request_by_index(0)
                .ok_or(ENODEV)?
                .iomap_exclusive_sized::<REGS_SIZE>()
                .inspect_err(|&e| {
                    if e == EBUSY {
                        dev_err!(
                            dev,
                            "register region {start:#x}+{size:#x} is held by another driver\n"
                        );
                    } else {
                        dev_err!(
                            dev,
                            "register region {start:#x}+{size:#x} cannot be mapped: error {}\n",
                            e.to_errno()
                        );
                    }
                })?;
            let (iommu, registered) = Registered::new(dev, Regs::Platform(regs.into_devres()?))?;
            let irq_iommu = iommu.clone();
            let irq = pdev.threaded_irq_by_index(
                irq::Flags::ONESHOT,
                FQ_IRQ_INDEX,
                c"riscv-iommu",
                try_pin_init!(FaultIrq { iommu: irq_iommu }),
            )?;
            Ok(try_pin_init!(PlatformData {
                registered <- registered,
                irq,
                _: {
                    iommu.enable_fault_irq(true)?;
                },
            }))
        })
    }
}
