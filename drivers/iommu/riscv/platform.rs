// SPDX-License-Identifier: GPL-2.0

//! Platform front end: a device-tree `riscv,iommu` node (QEMU's `virt`
//! with `iommu-sys=on`).

use kernel::{
    device::Core,
    of,
    platform,
    prelude::*, //
};

use crate::{
    instance::Instance,
    iommu::Regs,
    regs::REGS_SIZE, //
};

pub(crate) struct RiscvIommuPlatform;

kernel::of_device_table!(
    OF_TABLE,
    <RiscvIommuPlatform as platform::Driver>::IdInfo,
    [(of::DeviceId::new(c"riscv,iommu"), ())]
);

impl platform::Driver for RiscvIommuPlatform {
    type IdInfo = ();
    type Data<'bound> = Instance;
    const OF_ID_TABLE: Option<of::IdTable<Self::IdInfo>> = Some(&OF_TABLE);

    fn probe<'bound>(
        pdev: &'bound platform::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            let dev = pdev.as_ref();
            let regs = pdev
                .io_request_by_index(0)
                .ok_or(ENODEV)
                .inspect_err(|_| dev_err!(dev, "no register region (reg)\n"))?
                .iomap_sized::<REGS_SIZE>()
                .inspect_err(|e| dev_err!(dev, "register region unusable: {:?}\n", e))?;
            // Wired interrupts are not used yet: the fault queue is drained
            // after every command and on debugfs reads.
            Ok(Instance::new(dev, Regs::Platform(regs.into_devres()?))?.1)
        })
    }
}
