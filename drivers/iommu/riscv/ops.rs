// SPDX-License-Identifier: GPL-2.0

//! The IOMMU as the core sees it (`struct iommu_ops`): the devices behind
//! it, the domains they are attached to, their reserved regions.

use kernel::{
    device::Device,
    iommu::{
        driver::{
            Capability,
            Driver,
            ProbedDevice,
            ResvRegions,
            ResvType,
            PROT_MSI, //
        },
        hw_info::HwInfo,
        trace, //
    },
    irq::{imsic, remap::RemapDomain},
    prelude::*,
    sync::Arc,
};

use crate::{
    hw::{ddt::DeviceContext, PAGE_SIZE},
    iommu::Iommu,
    msi_page_table::MsiPageTable,
    paging::Paging,
    remap::Remapper,
};

/// The IOMMU's operations, as the core calls them.
///
/// `remap` is the MSI remapping IRQ domain, created with the registration
/// when the system has an IMSIC; it outlives every device behind the IOMMU
/// (the registration releases them first).
#[pin_data]
pub(crate) struct IommuOps {
    pub(crate) iommu: Arc<Iommu>,
    pub(crate) remap: Option<RemapDomain<Remapper>>,
}

/// A device behind the IOMMU: its requester ids, and its MSI page table
/// when its MSIs are remapped.
pub(crate) struct Master {
    ids: KVec<u32>,
    msi: Option<Arc<MsiPageTable>>,
}

impl IommuOps {
    /// Points every context of `master` at `dc`, with the master's MSI page
    /// table beside whatever translates its DMA.
    pub(crate) fn set_contexts(&self, master: &Master, dc: &DeviceContext) -> Result {
        let dc = match &master.msi {
            Some(t) if dc.tc != 0 => dc.with_msi(t.pa(), t.geometry.mask(), t.geometry.pattern()),
            _ => *dc,
        };
        let ddt = &self.iommu.ddt;
        let t = ddt.lock();
        for &id in master.ids.iter() {
            ddt.set_context(&t, id, &dc, |cmds| self.iommu.submit_sync(cmds))?;
        }
        Ok(())
    }

    /// Moves `dev`'s MSIs under the remapping domain, with a table of their
    /// own where the IOMMU has MSI page tables, if they were to go to the
    /// IMSIC.
    fn remap_msis(&self, dev: &ProbedDevice<'_>) -> Result<Option<Arc<MsiPageTable>>> {
        let Some(r) = &self.remap else {
            return Ok(None);
        };
        let table = match self.iommu.msi {
            Some(_) => {
                let t = MsiPageTable::new(&self.iommu, dev)?;
                r.data().add(dev, t.clone())?;
                Some(t)
            }
            None => None,
        };
        if !r.adopt(dev) {
            r.data().remove(dev);
            return Ok(None);
        }
        match &table {
            Some(t) => dev_dbg!(dev, "MSIs remapped through table {:#x}\n", t.pa()),
            None => dev_dbg!(dev, "MSIs through the remapping domain, no table\n"),
        }
        Ok(table)
    }
}

#[vtable]
impl Driver for IommuOps {
    type Master = Master;
    type Paging = Paging;

    fn probe_device(&self, dev: &ProbedDevice<'_>, ids: &[u32]) -> Result<Master> {
        let ddt = &self.iommu.ddt;
        let mut t = ddt.lock();
        let mut v = KVec::with_capacity(ids.len(), GFP_KERNEL)?;
        for &id in ids {
            if !ddt.fits(&t, id) {
                dev_err!(
                    dev,
                    "requester id {:#x} does not fit the device directory\n",
                    id
                );
                return Err(ENODEV);
            }
            ddt.prepare_context(&mut t, id)?;
            v.push(id, GFP_KERNEL)?;
        }
        drop(t);
        let msi = self.remap_msis(dev)?;
        dev_dbg!(dev, "probed behind the IOMMU, ids {:?}\n", ids);
        Ok(Master { ids: v, msi })
    }

    fn release_device(&self, dev: &ProbedDevice<'_>, master: &Master) {
        // Back to blocked: an invalid context makes the IOMMU refuse the
        // device's DMA.
        match self.set_contexts(master, &DeviceContext::default()) {
            Ok(()) => trace::detach(dev),
            Err(e) => dev_err!(dev, "release: {:?}\n", e),
        }
        if let Some(r) = self.remap.as_ref().filter(|r| r.owns(dev)) {
            // With MSIs still allocated (a driver bound while the IOMMU
            // goes away) the device keeps the domain, and the vectors keep
            // the table alive.
            if !r.release(dev) {
                dev_warn!(dev, "MSIs still allocated through the remapping domain\n");
            }
            r.data().remove(dev);
        }
    }

    fn domain_alloc_paging(&self, _dev: &Device, _master: &Master, flags: u32) -> Result<Paging> {
        if flags != 0 {
            return Err(EOPNOTSUPP);
        }
        Paging::new(self.iommu.clone())
    }

    fn attach_identity(&self, dev: &Device, master: &Master) -> Result {
        dev_dbg!(dev, "attach identity\n");
        self.set_contexts(master, &DeviceContext::bare())
    }

    fn get_resv_regions(&self, dev: &Device, master: &Master, regions: &mut ResvRegions<'_>) {
        // Only MSIs that go to the IMSIC through the remapping domain.
        if !self.remap.as_ref().is_some_and(|r| r.owns(dev)) {
            return;
        }
        let res = match (
            &self.iommu.msi,
            &master.msi,
            self.iommu.paging_mode.is_second_stage(),
        ) {
            // The device's MSI page table handles the IMSIC's addresses in
            // second-stage domains: no IOVA there may be handed out.
            (Some(t), Some(_), true) => {
                let (_, (lo, hi)) = t.table_geometry();
                regions.add(lo, hi - lo, PROT_MSI, ResvType::Msi)
            }
            // Otherwise the domain translates MSIs like any DMA: the files
            // are mapped (sw_msi) in a window of one page per CPU file.
            _ => regions.add(SW_MSI_BASE, sw_msi_len(), PROT_MSI, ResvType::SwMsi),
        };
        if let Err(e) = res {
            dev_err!(dev, "reserved MSI region: {:?}\n", e);
        }
    }

    fn capable(&self, _master: &Master, cap: Capability) -> bool {
        // The IOMMU's own table walks and the DMA it forwards are coherent.
        cap == Capability::CacheCoherency
    }

    fn hw_info(&self, _master: &Master) -> HwInfo {
        HwInfo::RiscvIommu {
            capability: self.iommu.caps,
            // A removed IOMMU reports no features.
            fctl: self.iommu.fctl().unwrap_or(0),
        }
    }
}

/// Where domains that translate MSIs map the IMSIC's interrupt files
/// (`IOMMU_RESV_SW_MSI`): the address Arm's SMMU drivers and virtio-iommu
/// use, which VMMs already keep clear of guest memory.
pub(crate) const SW_MSI_BASE: u64 = 0x800_0000;

/// The window's length: a page for every doorbell a device's vectors may
/// target, each possible CPU's supervisor file (iommufd places them one
/// after the other, in the order vectors first need them).
pub(crate) fn sw_msi_len() -> u64 {
    // CAST: at most `nr_cpu_ids` pages.
    imsic::cpu_files().count() as u64 * PAGE_SIZE
}
