// SPDX-License-Identifier: GPL-2.0

//! What a bound IOMMU owns, whichever bus found it.

use kernel::{
    debugfs,
    device::{self, Bound},
    iommu::driver::Registration,
    prelude::*,
    str::CString,
    sync::Arc, //
};

use crate::{
    domain::RiscvIommu,
    iommu::{Hw, Regs}, //
};

/// A bound IOMMU: its registration with the IOMMU core, and the debugfs
/// directory `riscv_iommu/<device>/`: `stats` (counters; reading it also
/// drains the fault queue into dmesg), `contexts` (every valid device
/// context) and `domains` (every paging domain and its mappings).
///
/// Dropping it unregisters first (the core releases every device behind
/// the IOMMU and frees their domains), then the last reference to [`Hw`]
/// turns the IOMMU off and frees its tables.
#[pin_data]
pub(crate) struct Instance {
    _reg: Pin<KBox<Registration<RiscvIommu>>>,
    _debugfs: Pin<KBox<debugfs::Scope<Arc<Hw>>>>,
}

impl Instance {
    /// Brings up the IOMMU whose registers are `regs` and registers it.
    pub(crate) fn new(dev: &device::Device<Bound>, regs: Regs) -> Result<(Arc<Hw>, impl PinInit<Self, Error>)> {
        let hw = Arc::pin_init(Hw::new(dev, regs)?, GFP_KERNEL)?;
        let name = CString::try_from_fmt(fmt!("{}", dev.name()))?;
        let debugfs = KBox::pin_init(
            debugfs::Dir::new(c"riscv_iommu").scope(hw.clone(), &name, |hw, dir| {
                dir.read_callback_file(c"stats", hw, &|hw: &Arc<Hw>, f| hw.show_stats(f));
                dir.read_callback_file(c"contexts", hw, &|hw: &Arc<Hw>, f| hw.show_contexts(f));
                dir.read_callback_file(c"domains", hw, &|hw: &Arc<Hw>, f| hw.show_domains(f));
            }),
            GFP_KERNEL,
        )?;
        let sysfs_name = CString::try_from_fmt(fmt!("riscv-iommu-{}", dev.name()))?;
        let iommu_hw = hw.clone();
        let reg = KBox::pin_init(
            Registration::new(dev, &sysfs_name, try_pin_init!(RiscvIommu { hw: iommu_hw })),
            GFP_KERNEL,
        )?;
        Ok((hw, try_pin_init!(Self { _reg: reg, _debugfs: debugfs })))
    }
}
