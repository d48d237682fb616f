// SPDX-License-Identifier: GPL-2.0

//! What a bound IOMMU owns, whichever bus found it.

use kernel::{
    debugfs,
    device::{self, Bound},
    iommu::driver::Registration,
    irq::{imsic, remap::RemapDomain},
    prelude::*,
    str::CString,
    sync::Arc, //
};

use crate::{
    domain::RiscvIommu,
    iommu::{Hw, Regs},
    remap::Remapper, //
};

/// What the debugfs files read.
struct DebugData {
    hw: Arc<Hw>,
    remap: Option<Arc<Remapper>>,
}

/// A bound IOMMU: its registration with the IOMMU core, and the debugfs
/// directory `riscv_iommu/<device>/`: `stats` (counters; reading it also
/// drains the fault queue into dmesg), `contexts` (every valid device
/// context), `domains` (every paging domain and its mappings) and `msi`
/// (each remapped device's valid MSI page-table entries).
///
/// Dropping it unregisters first (the core releases every device behind
/// the IOMMU and frees their domains), then the last reference to [`Hw`]
/// turns the IOMMU off and frees its tables.
#[pin_data]
pub(crate) struct Instance {
    _reg: Pin<KBox<Registration<RiscvIommu>>>,
    _debugfs: Pin<KBox<debugfs::Scope<DebugData>>>,
}

impl Instance {
    /// Brings up the IOMMU whose registers are `regs` and registers it.
    pub(crate) fn new(dev: &device::Device<Bound>, regs: Regs) -> Result<(Arc<Hw>, impl PinInit<Self, Error>)> {
        let hw = Arc::pin_init(Hw::new(dev, regs)?, GFP_KERNEL)?;
        // From here on, dropping `hw` (on any failure below) turns the
        // IOMMU off before its memory is freed.
        hw.start(dev)?;
        let name = CString::try_from_fmt(fmt!("{}", dev.name()))?;
        // The MSI remapping domain exists from probe on, before any device
        // behind the IOMMU is probed, and never changes; without MSI page
        // tables it leaves messages as the IMSIC composes them, or maps
        // their doorbells into translating domains (sw_msi).
        let remap = match imsic::msi_parent() {
            Some(parent) => {
                let ir_name = CString::try_from_fmt(fmt!("riscv-iommu-ir-{}", dev.name()))?;
                let d = RemapDomain::new(&ir_name, parent, Remapper::new()?)?;
                dev_info!(dev, "MSI remapping domain {} on {}\n", d.domain().name(), parent.name());
                Some(d)
            }
            None => None,
        };
        let data = DebugData { hw: hw.clone(), remap: remap.as_ref().map(|r| r.data().clone()) };
        let debugfs = KBox::pin_init(
            debugfs::Dir::new(c"riscv_iommu").scope(data, &name, |d, dir| {
                dir.read_callback_file(c"stats", d, &|d: &DebugData, f| d.hw.show_stats(f));
                dir.read_callback_file(c"contexts", d, &|d: &DebugData, f| d.hw.show_contexts(f));
                dir.read_callback_file(c"domains", d, &|d: &DebugData, f| d.hw.show_domains(f));
                dir.read_callback_file(c"msi", d, &|d: &DebugData, f| match &d.remap {
                    Some(r) => r.show(f),
                    None => writeln!(f, "no remapping"),
                });
            }),
            GFP_KERNEL,
        )?;
        let sysfs_name = CString::try_from_fmt(fmt!("riscv-iommu-{}", dev.name()))?;
        let iommu_hw = hw.clone();
        let reg = KBox::pin_init(
            Registration::new(dev, &sysfs_name, try_pin_init!(RiscvIommu { hw: iommu_hw, remap })),
            GFP_KERNEL,
        )?;
        Ok((hw, try_pin_init!(Self { _reg: reg, _debugfs: debugfs })))
    }
}
