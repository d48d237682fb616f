// SPDX-License-Identifier: GPL-2.0

//! Paging domains: an IO page table of the IOMMU's paging mode, as the
//! core maps and unmaps through it (`struct iommu_domain_ops`), walked
//! under the context ids of the requesters attached to it.

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
    domain_table::{DomainTable, ATTACHED_MAX},
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
    requester::Requester,
};

/// Above this many invalidations (pages times attached ids) an unmap
/// invalidates each attached id whole rather than page by page.
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
/// `table` is on `iommu`'s list of tables until drop. The domain has no
/// context id of its own: each requester attached to it walks it under its
/// own (GSCID for a second-stage table, PSCID for a first-stage one), and
/// `table` lists them, so unmaps invalidate each (`crate::requester`).
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
        let pt = PageTable::new(&KernelMem::new(false), mode).map_err(errno)?;
        // INVARIANT: no device context points at the new table yet.
        let table = DomainTable::new(iommu.next_serial(), pt)?;
        iommu.domains.lock().push(table.clone(), GFP_KERNEL)?;
        Ok(Self {
            iommu,
            linear: pages::LinearMap::of(table.pt.root()),
            table,
        })
    }

    fn second_stage(&self) -> bool {
        self.table.pt.mode().is_second_stage()
    }

    fn inval_page(&self, id: u32, iova: u64) -> Command {
        trace::iotlb_inv(&self.iommu.dev, id, iova, PAGE_SIZE);
        if self.second_stage() {
            // CAST: GSCIDs are 16 bits; `ContextIds` hands out fewer than 65536.
            Command::iotinval_gvma(Some(id as u16), Some(iova))
        } else {
            Command::iotinval_vma(None, Some(id), Some(iova))
        }
    }

    /// Invalidates what the IOMMU caches of `pages` pages from `start`
    /// under every context id attached to the domain (all of it if
    /// `pages` is `None`), and waits: one fence, however many ids.
    fn invalidate(&self, start: u64, pages: Option<u64>) -> Result {
        let mut ids = [0u32; ATTACHED_MAX];
        let n = self.table.attached(&mut ids);
        if n == 0 {
            // No context walks the table, and none has since its id was
            // last invalidated: nothing is cached.
            return Ok(());
        }
        let second = self.second_stage();
        let mut cmds = [Command::iofence(None); INVAL_PAGES_MAX as usize];
        let cmds: &[Command] = match pages {
            _ if n > ATTACHED_MAX => {
                // Every id at once: one command.
                trace::iotlb_inv(&self.iommu.dev, 0, 0, 0);
                cmds[0] = if second {
                    Command::iotinval_gvma(None, None)
                } else {
                    Command::iotinval_vma(None, None, None)
                };
                &cmds[..1]
            }
            // CAST: `n` is at most `ATTACHED_MAX`.
            Some(p) if p * n as u64 <= INVAL_PAGES_MAX => {
                let mut k = 0;
                for &id in &ids[..n] {
                    for i in 0..p {
                        cmds[k] = self.inval_page(id, start + i * PAGE_SIZE);
                        k += 1;
                    }
                }
                &cmds[..k]
            }
            _ => {
                for (c, &id) in cmds.iter_mut().zip(&ids[..n]) {
                    trace::iotlb_inv(&self.iommu.dev, id, 0, 0);
                    *c = Requester::inval_all(second, id);
                }
                &cmds[..n]
            }
        };
        self.iommu.submit_sync(cmds)
    }

    /// The context of a requester with context id `id` attached here.
    fn context(&self, id: u32) -> DeviceContext {
        let pt = &self.table.pt;
        if pt.mode().is_second_stage() {
            // CAST: as in `inval_page`.
            DeviceContext::second_stage(pt.mode(), pt.root(), id as u16)
        } else {
            DeviceContext::first_stage(pt.mode(), pt.root(), id)
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

    fn attach(&self, _iommu: &IommuOps, dev: &Device, master: &Master) -> Result {
        let req = master.requester();
        dev_dbg!(
            dev,
            "attach paging domain {} {:?} id {} root {:#x}\n",
            self.table.serial,
            self.table.pt.mode(),
            req.id,
            self.table.pt.root()
        );
        req.set(&self.context(req.id), Some(self.table.clone()))
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
        // `invalidate` takes the whole ids above `INVAL_PAGES_MAX` commands.
        let pages = (end - start).div_ceil(PAGE_SIZE);
        if let Err(e) = self.invalidate(start, Some(pages)) {
            dev_err!(self.iommu.dev, "IOTLB invalidation failed: {:?}\n", e);
        }
    }

    fn flush_iotlb_all(&self) {
        if let Err(e) = self.invalidate(0, None) {
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
        // No device uses the domain any more, and each requester that did
        // invalidated its id when it left. Off the list, so that
        // `self.table`, dropped after this, is the last reference and frees
        // the tables.
        let serial = self.table.serial;
        self.iommu.domains.lock().retain(|t| t.serial != serial);
    }
}
