// SPDX-License-Identifier: GPL-2.0

//! What binding the driver to an IOMMU sets up, whichever bus found it.

use kernel::{
    device::{self, Bound},
    iommu::driver::Registration,
    irq::{imsic, remap::RemapDomain},
    prelude::*,
    str::CString,
    sync::Arc, //
};

use crate::{
    debugfs::{self, DebugDir},
    iommu::Iommu,
    ops::IommuOps,
    regs::Regs,
    remap::Remapper, //
};

/// A bound IOMMU, registered: with the IOMMU core (through [`IommuOps`]),
/// and in debugfs (`crate::debugfs`).
///
/// Dropping it unregisters first (the core releases every device behind
/// the IOMMU and frees their domains), then the last reference to the
/// [`Iommu`] turns it off and frees its tables.
#[pin_data]
pub(crate) struct Registered<'bound> {
    _reg: Pin<KBox<Registration<'bound, IommuOps>>>,
    _debugfs: DebugDir,
}

impl<'bound> Registered<'bound> {
    /// Brings up the IOMMU whose registers are `regs` and registers it.
    pub(crate) fn new(
        dev: &'bound device::Device<Bound>,
        regs: Regs,
    ) -> Result<(Arc<Iommu>, impl PinInit<Self, Error> + 'bound)> {
        let iommu = Arc::pin_init(Iommu::new(dev, regs)?, GFP_KERNEL)?;
        // From here on, dropping `iommu` (on any failure below) turns the
        // IOMMU off before its memory is freed.
        iommu.start(dev)?;
        let name = CString::try_from_fmt(fmt!("{}", dev.name()))?;
        // The MSI remapping domain exists from probe on, before any device
        // behind the IOMMU is probed, and never changes; without MSI page
        // tables it leaves messages as the IMSIC composes them, or maps
        // their doorbells into translating domains (sw_msi).
        let remap = match imsic::msi_parent() {
            Some(parent) => {
                let ir_name = CString::try_from_fmt(fmt!("riscv-iommu-ir-{}", dev.name()))?;
                // Isolated exactly when every device's vectors go to MRIFs
                // of its own.
                let mrif = iommu.msi.as_ref().is_some_and(|m| m.mrif.is_some());
                let d = RemapDomain::new(&ir_name, parent, Remapper::new(mrif)?, mrif)?;
                dev_info!(
                    dev,
                    "MSI remapping domain {} on {}{}\n",
                    d.domain().name(),
                    parent.name(),
                    if mrif { ", MRIF mode, isolated" } else { "" }
                );
                Some(d)
            }
            None => None,
        };
        let debugfs = debugfs::create(
            &name,
            iommu.clone(),
            remap.as_ref().map(|r| r.data().clone()),
        )?;
        let sysfs_name = CString::try_from_fmt(fmt!("riscv-iommu-{}", dev.name()))?;
        let ops_iommu = iommu.clone();
        let ops = IommuOps::new(ops_iommu, remap)?;
        let reg = KBox::pin_init(Registration::new(dev, &sysfs_name, ops), GFP_KERNEL)?;
        Ok((
            iommu,
            try_pin_init!(Self {
                _reg: reg,
                _debugfs: debugfs
            }),
        ))
    }
}
