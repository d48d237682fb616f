// SPDX-License-Identifier: GPL-2.0

//! The IOMMU as the core sees it: devices behind it and their domains.

use kernel::{
    device::Device,
    iommu::{
        driver::{
            Capability,
            Driver,
            HwInfo,
            IotlbGather,
            PagingDomain,
            Prot,
            ResvRegions,
            ResvType,
            PROT_MSI, //
        },
        trace, //
    },
    irq::{imsic, remap::RemapDomain},
    new_spinlock_irq,
    prelude::*,
    sync::{
        atomic::Relaxed,
        Arc,
        SpinLockIrq, //
    },
};

use crate::{
    hw::{
        cmd::Command,
        ddt::{self, DeviceContext},
        pgtable::PageTable,
        pte::{self, Mode},
        PAGE_SIZE,
    },
    iommu::{DomainInfo, Hw},
    mem::{errno, KernelMem},
    remap::{DeviceMsi, Remapper},
};

/// Above this many pages an unmap invalidates the whole context rather
/// than page by page.
const INVAL_PAGES_MAX: u64 = 32;

/// The driver's IOMMU instance.
///
/// `remap` is the MSI remapping IRQ domain, created with the instance when
/// the IOMMU has MSI page tables and the system an IMSIC; it outlives every
/// device behind the IOMMU (the registration releases them first).
#[pin_data]
pub(crate) struct RiscvIommu {
    pub(crate) hw: Arc<Hw>,
    pub(crate) remap: Option<RemapDomain<Remapper>>,
}

/// A device behind the IOMMU: its requester ids, and its MSI page table
/// when its MSIs are remapped.
pub(crate) struct Master {
    ids: KVec<u32>,
    msi: Option<Arc<DeviceMsi>>,
}

impl RiscvIommu {
    /// Points every context of `master` at `dc`, with the master's MSI page
    /// table beside whatever translates its DMA.
    fn set_contexts(&self, master: &Master, dc: &DeviceContext) -> Result {
        let dc = match &master.msi {
            Some(t) if dc.tc != 0 => dc.with_msi(t.pa, t.geometry.mask(), t.geometry.pattern()),
            _ => *dc,
        };
        let dir = self.hw.ddt.lock();
        for &id in master.ids.iter() {
            self.hw.set_context(&dir, id, &dc)?;
        }
        Ok(())
    }

    /// Moves `dev`'s MSIs under the remapping domain, with a table of their
    /// own where the IOMMU has MSI page tables, if they were to go to the
    /// IMSIC.
    fn remap_msis(&self, dev: &Device) -> Result<Option<Arc<DeviceMsi>>> {
        let Some(r) = &self.remap else { return Ok(None) };
        let table = match self.hw.msi {
            Some(_) => {
                let t = DeviceMsi::new(&self.hw, dev)?;
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
            Some(t) => dev_dbg!(dev, "MSIs remapped through table {:#x}\n", t.pa),
            None => dev_dbg!(dev, "MSIs through the remapping domain, no table\n"),
        }
        Ok(table)
    }
}

#[vtable]
impl Driver for RiscvIommu {
    type Master = Master;
    type Paging = Paging;

    fn probe_device(&self, dev: &Device, ids: &[u32]) -> Result<Master> {
        let dir = self.hw.ddt.lock();
        let mut v = KVec::with_capacity(ids.len(), GFP_KERNEL)?;
        for &id in ids {
            if !ddt::fits(id, dir.mode, self.hw.extended) {
                dev_err!(dev, "requester id {:#x} does not fit the device directory\n", id);
                return Err(ENODEV);
            }
            self.hw.prepare_context(&dir, id)?;
            v.push(id, GFP_KERNEL)?;
        }
        drop(dir);
        let msi = self.remap_msis(dev)?;
        dev_dbg!(dev, "probed behind the IOMMU, ids {:?}\n", ids);
        Ok(Master { ids: v, msi })
    }

    fn release_device(&self, dev: &Device, master: &Master) {
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
        Paging::new(self.hw.clone())
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
        let res = match (&self.hw.msi, &master.msi, self.hw.paging_mode.is_second_stage()) {
            // The device's MSI page table handles the IMSIC's addresses in
            // second-stage domains: no IOVA there may be handed out.
            (Some(t), Some(_), true) => regions.add(t.span.0, t.span.1 - t.span.0, PROT_MSI, ResvType::Msi),
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
            capability: self.hw.caps,
            // A removed IOMMU reports no features.
            fctl: self.hw.fctl().unwrap_or(0),
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

/// A translating domain.
///
/// # Invariants
///
/// `id` is a context id allocated from `hw` for this domain alone (GSCID for a
/// second-stage table, PSCID for a first-stage one); `pt` is `Some` until drop.
pub(crate) struct Paging {
    hw: Arc<Hw>,
    id: u32,
    /// Map and unmap may run concurrently, in atomic context and in hard
    /// interrupts (drivers unmap DMA from their handlers): interrupts off.
    pt: Pin<KBox<SpinLockIrq<Option<PageTable>>>>,
    mode: Mode,
    root: u64,
}

impl Paging {
    fn new(hw: Arc<Hw>) -> Result<Self> {
        let mode = hw.paging_mode;
        let pt = KBox::pin_init(new_spinlock_irq!(None, "Paging::pt"), GFP_KERNEL)?;
        let id = hw.alloc_id()?;
        let table = match PageTable::new(&mut KernelMem { atomic: false }, mode) {
            Ok(table) => table,
            Err(e) => {
                hw.free_id(id);
                return Err(errno(e));
            }
        };
        let root = table.root();
        *pt.lock() = Some(table);
        // INVARIANT: `id` was just allocated, `pt` holds the table. From here
        // on, dropping `this` undoes everything.
        let this = Self { hw, id, pt, mode, root };
        // The id may have served a freed domain: drop what the IOTLB holds.
        this.hw.submit_sync(&[Self::inval_all(mode, id)])?;
        this.hw.domains.lock().push(DomainInfo { id, mode, root }, GFP_KERNEL)?;
        Ok(this)
    }

    fn inval_all(mode: Mode, id: u32) -> Command {
        if mode.is_second_stage() {
            // CAST: GSCIDs are 16 bits; `alloc_id` hands out fewer than 65536.
            Command::iotinval_gvma(Some(id as u16), None)
        } else {
            Command::iotinval_vma(None, Some(id), None)
        }
    }

    fn inval_page(&self, iova: u64) -> Command {
        trace::iotlb_inv(&self.hw.dev, self.id, iova, PAGE_SIZE);
        if self.mode.is_second_stage() {
            // CAST: as in `inval_all`.
            Command::iotinval_gvma(Some(self.id as u16), Some(iova))
        } else {
            Command::iotinval_vma(None, Some(self.id), Some(iova))
        }
    }

    /// Invalidates every cached translation of the domain and waits.
    fn flush_all(&self) -> Result {
        trace::iotlb_inv(&self.hw.dev, self.id, 0, 0);
        self.hw.submit_sync(&[Self::inval_all(self.mode, self.id)])
    }

    fn context(&self) -> DeviceContext {
        if self.mode.is_second_stage() {
            // CAST: as in `inval_all`.
            DeviceContext::second_stage(self.mode, self.root, self.id as u16)
        } else {
            DeviceContext::first_stage(self.mode, self.root, self.id)
        }
    }
}

impl PagingDomain for Paging {
    type Driver = RiscvIommu;

    fn pgsize_bitmap(&self) -> u64 {
        Mode::PGSIZE_BITMAP
    }

    fn aperture_end(&self) -> u64 {
        self.mode.aperture_end() - 1
    }

    fn attach(&self, iommu: &RiscvIommu, dev: &Device, master: &Master) -> Result {
        dev_dbg!(dev, "attach paging domain {:?} id {} root {:#x}\n", self.mode, self.id, self.root);
        iommu.set_contexts(master, &self.context())
    }

    fn map_pages(&self, iova: u64, pa: u64, pgsize: u64, count: u64, prot: Prot, _atomic: bool) -> (u64, Result) {
        let guard = self.pt.lock();
        let Some(pt) = guard.as_ref() else { return (0, Err(ENODEV)) };
        let prot = pte::Prot { read: prot.read(), write: prot.write() };
        // Under the spinlock allocations never sleep.
        let (n, res) = pt.map_pages(&mut KernelMem { atomic: true }, iova, pa, pgsize, count, prot);
        (n, res.map_err(errno))
    }

    fn unmap_pages(&self, iova: u64, pgsize: u64, count: u64, gather: &mut IotlbGather<'_>) -> u64 {
        let guard = self.pt.lock();
        let Some(pt) = guard.as_ref() else { return 0 };
        let n = pt.unmap_pages(&mut KernelMem { atomic: true }, iova, pgsize, count);
        if n > 0 {
            gather.add_range(iova, n);
        }
        n
    }

    fn iotlb_sync(&self, gather: &IotlbGather<'_>) {
        let Some((start, end)) = gather.range() else { return };
        self.hw.stats.unmap_syncs.fetch_add(1, Relaxed);
        let pages = (end - start).div_ceil(PAGE_SIZE);
        let res = if pages <= INVAL_PAGES_MAX {
            let mut cmds = [Command::iofence(None); INVAL_PAGES_MAX as usize];
            for (i, cmd) in cmds.iter_mut().take(pages as usize).enumerate() {
                *cmd = self.inval_page(start + i as u64 * PAGE_SIZE);
            }
            self.hw.submit_sync(&cmds[..pages as usize])
        } else {
            self.flush_all()
        };
        if let Err(e) = res {
            dev_err!(self.hw.dev, "IOTLB invalidation failed: {:?}\n", e);
        }
    }

    fn flush_iotlb_all(&self) {
        if let Err(e) = self.flush_all() {
            dev_err!(self.hw.dev, "IOTLB flush failed: {:?}\n", e);
        }
    }

    fn iova_to_phys(&self, iova: u64) -> u64 {
        let guard = self.pt.lock();
        guard
            .as_ref()
            .and_then(|pt| pt.iova_to_phys(&KernelMem { atomic: true }, iova))
            .unwrap_or(0)
    }
}

impl Drop for Paging {
    fn drop(&mut self) {
        // No device uses the domain any more; drop its cached translations
        // before its id or its tables are reused.
        let _ = self.flush_all();
        // Off the debugfs list before the tables go.
        let mut domains = self.hw.domains.lock();
        domains.retain(|d| d.id != self.id);
        drop(domains);
        if let Some(pt) = self.pt.lock().take() {
            pt.destroy(&mut KernelMem { atomic: false });
        }
        self.hw.free_id(self.id);
    }
}
