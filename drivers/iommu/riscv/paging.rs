// SPDX-License-Identifier: GPL-2.0

//! Paging domains: an IO page table of the IOMMU's paging mode, with its
//! context id, as the core maps and unmaps through it
//! (`struct iommu_domain_ops`).

use kernel::{
    device::Device,
    iommu::{
        driver::{IotlbGather, PagingDomain, Prot},
        pages,
        trace, //
    },
    prelude::*,
    sync::{atomic::Relaxed, Arc},
};

use crate::{
    domain_table::DomainTable,
    hw::{
        cmd::Command,
        ddt::DeviceContext,
        pgtable::PageTable,
        pte::{self, Mode},
        PAGE_SIZE,
    },
    iommu::Iommu,
    mem::{errno, KernelMem},
    ops::{IommuOps, Master},
};

/// Above this many pages an unmap invalidates the whole context rather
/// than page by page.
const INVAL_PAGES_MAX: u64 = 32;

/// `make bench`'s floor: a build with `--cfg bench_floor` (never loaded
/// outside the benchmark) maps and unmaps without touching the page table,
/// so the benchmark can tell the page table's share of a map from the rest
/// of the path (IOVA allocation, the core, the callbacks).
const BENCH_FLOOR: bool = cfg!(bench_floor);

/// A translating domain.
///
/// # Invariants
///
/// `table.id` is a context id allocated from `iommu` for this domain alone
/// (GSCID for a second-stage table, PSCID for a first-stage one); `table` is
/// on `iommu`'s list of domains until drop.
pub(crate) struct Paging {
    iommu: Arc<Iommu>,
    /// Map, unmap and lookups run concurrently, in any context (drivers
    /// unmap DMA from hard interrupt handlers), without a lock: the core
    /// never lets two of them work on overlapping ranges, and the table is
    /// built for that (hw/pgtable.rs).
    table: Arc<DomainTable>,
    /// Where the table's pages are in the linear map: walks call no helper.
    linear: pages::LinearMap,
}

impl Paging {
    pub(crate) fn new(iommu: Arc<Iommu>) -> Result<Self> {
        let mode = iommu.paging_mode;
        let id = iommu.ids.alloc()?;
        let listed = || -> Result<Arc<DomainTable>> {
            let pt = PageTable::new(&KernelMem::new(false), mode).map_err(errno)?;
            // INVARIANT: no device context points at the new table yet.
            let table = Arc::new(DomainTable { id, pt }, GFP_KERNEL)?;
            iommu.domains.lock().push(table.clone(), GFP_KERNEL)?;
            Ok(table)
        };
        let table = listed().inspect_err(|_| iommu.ids.free(id))?;
        // INVARIANT: `id` was just allocated, `table` is listed. From here on,
        // dropping `this` undoes everything.
        let this = Self {
            iommu,
            linear: pages::LinearMap::of(table.pt.root()),
            table,
        };
        // The id may have served a freed domain: drop what the IOTLB holds.
        this.iommu.submit_sync(&[Self::inval_all(mode, id)])?;
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
        let id = self.table.id;
        trace::iotlb_inv(&self.iommu.dev, id, iova, PAGE_SIZE);
        if self.table.pt.mode().is_second_stage() {
            // CAST: as in `inval_all`.
            Command::iotinval_gvma(Some(id as u16), Some(iova))
        } else {
            Command::iotinval_vma(None, Some(id), Some(iova))
        }
    }

    /// Invalidates every cached translation of the domain and waits.
    fn flush_all(&self) -> Result {
        trace::iotlb_inv(&self.iommu.dev, self.table.id, 0, 0);
        self.iommu
            .submit_sync(&[Self::inval_all(self.table.pt.mode(), self.table.id)])
    }

    fn context(&self) -> DeviceContext {
        let DomainTable { id, pt } = &*self.table;
        if pt.mode().is_second_stage() {
            // CAST: as in `inval_all`.
            DeviceContext::second_stage(pt.mode(), pt.root(), *id as u16)
        } else {
            DeviceContext::first_stage(pt.mode(), pt.root(), *id)
        }
    }
}

impl PagingDomain for Paging {
    type Driver = IommuOps;

    fn pgsize_bitmap(&self) -> u64 {
        Mode::PGSIZE_BITMAP
    }

    fn aperture_end(&self) -> u64 {
        self.table.pt.mode().aperture_end() - 1
    }

    fn attach(&self, iommu: &IommuOps, dev: &Device, master: &Master) -> Result {
        dev_dbg!(
            dev,
            "attach paging domain {:?} id {} root {:#x}\n",
            self.table.pt.mode(),
            self.table.id,
            self.table.pt.root()
        );
        iommu.set_contexts(master, &self.context())
    }

    fn map_pages(
        &self,
        iova: u64,
        pa: u64,
        pgsize: u64,
        count: u64,
        prot: Prot,
        atomic: bool,
    ) -> (u64, Result) {
        let pt = &self.table.pt;
        if BENCH_FLOOR {
            return (pgsize * count, Ok(()));
        }
        let prot = pte::Prot {
            read: prot.read(),
            write: prot.write(),
        };
        // Tables are allocated as the caller's context allows.
        let mem = KernelMem::with_linear(atomic, self.linear);
        let (n, res) = pt.map_pages(&mem, iova, pa, pgsize, count, prot);
        (n, res.map_err(errno))
    }

    fn unmap_pages(&self, iova: u64, pgsize: u64, count: u64, gather: &mut IotlbGather<'_>) -> u64 {
        let pt = &self.table.pt;
        if BENCH_FLOOR {
            gather.add_range(iova, pgsize * count);
            return pgsize * count;
        }
        // Unmapping allocates nothing.
        let mem = KernelMem::with_linear(true, self.linear);
        let n = pt.unmap_pages(&mem, iova, pgsize, count);
        if n > 0 {
            gather.add_range(iova, n);
        }
        n
    }

    fn iotlb_sync(&self, gather: &IotlbGather<'_>) {
        let Some((start, end)) = gather.range() else {
            return;
        };
        self.iommu.stats.unmap_syncs.fetch_add(1, Relaxed);
        let pages = (end - start).div_ceil(PAGE_SIZE);
        let res = if pages <= INVAL_PAGES_MAX {
            let mut cmds = [Command::iofence(None); INVAL_PAGES_MAX as usize];
            for (i, cmd) in cmds.iter_mut().take(pages as usize).enumerate() {
                *cmd = self.inval_page(start + i as u64 * PAGE_SIZE);
            }
            self.iommu.submit_sync(&cmds[..pages as usize])
        } else {
            self.flush_all()
        };
        if let Err(e) = res {
            dev_err!(self.iommu.dev, "IOTLB invalidation failed: {:?}\n", e);
        }
    }

    fn flush_iotlb_all(&self) {
        if let Err(e) = self.flush_all() {
            dev_err!(self.iommu.dev, "IOTLB flush failed: {:?}\n", e);
        }
    }

    fn iova_to_phys(&self, iova: u64) -> u64 {
        if BENCH_FLOOR {
            // dma-iommu looks up every address it unmaps and warns on 0.
            return 0x8000_0000 | (iova & (PAGE_SIZE - 1));
        }
        self.table
            .pt
            .iova_to_phys(&KernelMem::with_linear(true, self.linear), iova)
            .unwrap_or(0)
    }
}

impl Drop for Paging {
    fn drop(&mut self) {
        // No device uses the domain any more; drop its cached translations
        // before its id or its tables are reused.
        let _ = self.flush_all();
        // Off the list, so that `self.table`, dropped after this, is the
        // last reference and frees the tables: no device context points at
        // them any more (the domain is unused) and the IOTLB holds none of
        // them (flushed above).
        self.iommu.domains.lock().retain(|t| t.id != self.table.id);
        self.iommu.ids.free(self.table.id);
    }
}
