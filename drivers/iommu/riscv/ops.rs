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
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
};

use crate::{
    hw::{ddt::DeviceContext, PAGE_SIZE},
    identity::Identity,
    iommu::Iommu,
    msi_page_table::MsiPageTable,
    paging::Paging,
    remap::Remapper,
    requester::Requester,
};

/// The IOMMU's operations, as the core calls them.
///
/// `remap` is the MSI remapping IRQ domain, created with the registration
/// when the system has an IMSIC; it outlives every device behind the IOMMU
/// (the registration releases them first), and never changes with the
/// domains devices are attached to.
#[pin_data]
pub(crate) struct IommuOps {
    pub(crate) iommu: Arc<Iommu>,
    pub(crate) remap: Option<RemapDomain<Remapper>>,
    /// The identity second stage, where the IOMMU has a second stage.
    identity: Option<Identity>,
    /// Every requester behind the IOMMU: changed at device probe and
    /// release, which look for the requester a new device's ids belong to.
    #[pin]
    requesters: Mutex<KVec<Arc<Requester>>>,
}

/// A device behind the IOMMU: its requester ids, and the requester (the
/// set of ids with one context id and one MSI table) they belong to.
pub(crate) struct Master {
    ids: KVec<u32>,
    requester: Arc<Requester>,
}

impl Master {
    /// The requester the device's ids belong to.
    pub(crate) fn requester(&self) -> &Requester {
        &self.requester
    }
}

impl IommuOps {
    /// The operations of `iommu`, with its MSI remapping domain if any.
    pub(crate) fn new(
        iommu: Arc<Iommu>,
        remap: Option<RemapDomain<Remapper>>,
    ) -> Result<impl PinInit<Self, Error>> {
        let mode = iommu.paging_mode;
        let identity = match mode.is_second_stage() {
            true => Some(Identity::new(&iommu, mode)?),
            false => None,
        };
        Ok(try_pin_init!(Self {
            iommu,
            remap,
            identity,
            requesters <- new_mutex!(KVec::new(), "IommuOps::requesters"),
        }))
    }

    /// Moves `dev`'s MSIs under the remapping domain, through `table`
    /// (its requester's, where the IOMMU has MSI page tables), if they were
    /// to go to the IMSIC. Returns whether they were moved.
    fn remap_msis(
        &self,
        dev: &ProbedDevice<'_>,
        table: Option<&Arc<MsiPageTable>>,
    ) -> Result<bool> {
        let Some(r) = &self.remap else {
            return Ok(false);
        };
        if let Some(t) = table {
            r.data().add(dev, t.clone())?;
        }
        if !r.adopt(dev) {
            r.data().remove(dev);
            return Ok(false);
        }
        match table {
            Some(t) => dev_dbg!(dev, "MSIs remapped through table {:#x}\n", t.pa()),
            None => dev_dbg!(dev, "MSIs through the remapping domain, no table\n"),
        }
        Ok(true)
    }

    /// The requester `dev`, with requester ids `ids`, belongs to: the one
    /// that has any of them (a bridge alias several devices share), else a
    /// new one, with an MSI table of its own where the IOMMU has them.
    fn requester_of(&self, dev: &ProbedDevice<'_>, ids: &[u32]) -> Result<Arc<Requester>> {
        let mut reqs = self.requesters.lock();
        if let Some(req) = reqs.iter().find(|r| r.shares(ids)).cloned() {
            req.join(ids)?;
            return match self.remap_msis(dev, req.msi.as_ref()) {
                Ok(adopted) => {
                    if !adopted && req.msi.is_some() {
                        dev_warn!(dev, "shares an MSI table but its MSIs are not remapped\n");
                    }
                    Ok(req)
                }
                Err(e) => {
                    // Others have the requester: it never empties here.
                    let _ = req.leave(ids);
                    Err(e)
                }
            };
        }
        let table = match (&self.remap, &self.iommu.msi) {
            (Some(_), Some(_)) => Some(MsiPageTable::new(&self.iommu, dev)?),
            _ => None,
        };
        let adopted = self.remap_msis(dev, table.as_ref())?;
        let req = Requester::new(&self.iommu, table.filter(|_| adopted))
            .and_then(|req| {
                req.join(ids)?;
                reqs.push(req.clone(), GFP_KERNEL)?;
                Ok(req)
            })
            .inspect_err(|_| {
                if let Some(r) = self.remap.as_ref().filter(|_| adopted) {
                    r.release(dev);
                    r.data().remove(dev);
                }
            })?;
        Ok(req)
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
        let requester = self.requester_of(dev, ids)?;
        dev_dbg!(
            dev,
            "probed behind the IOMMU, ids {:?}, context id {}\n",
            ids,
            requester.id
        );
        Ok(Master { ids: v, requester })
    }

    fn release_device(&self, dev: &ProbedDevice<'_>, master: &Master) {
        // Back to blocked: the device's ids no other device has become
        // invalid, and the IOMMU refuses their DMA.
        let req = &master.requester;
        let empty = match req.leave(&master.ids) {
            Ok(empty) => {
                trace::detach(dev);
                empty
            }
            Err(e) => {
                dev_err!(dev, "release: {:?}\n", e);
                true
            }
        };
        if empty {
            self.requesters
                .lock()
                .retain(|r| !core::ptr::eq::<Requester>(&**r, &**req));
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
        let req = &master.requester;
        match &self.identity {
            // The identity second stage, under the requester's GSCID, with
            // its MSI table.
            Some(idm) => {
                dev_dbg!(dev, "attach identity, second stage, GSCID {}\n", req.id);
                req.set(&idm.context(req.id), Some(idm.table.clone()))
            }
            // No second stage: nothing translates, and no MSI table; `ta`
            // keeps the requester's PSCID.
            None => {
                dev_dbg!(dev, "attach identity, bare\n");
                req.set(&DeviceContext::bare_with_pscid(req.id), None)
            }
        }
    }

    fn get_resv_regions(&self, dev: &Device, master: &Master, regions: &mut ResvRegions<'_>) {
        // Only MSIs that go to the IMSIC through the remapping domain.
        if !self.remap.as_ref().is_some_and(|r| r.owns(dev)) {
            return;
        }
        let res = match (&self.iommu.msi, &master.requester.msi) {
            // The device's MSI page table handles the IMSIC's addresses
            // (tables exist only beside a second stage): no IOVA there may
            // be handed out.
            (Some(t), Some(_)) => {
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
