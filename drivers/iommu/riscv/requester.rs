// SPDX-License-Identifier: GPL-2.0

//! Requesters: the requester ids that must share one device context (a
//! device's own ids, and the bridge alias several conventional PCI devices
//! share), with the context id and the MSI page table they share.
//!
//! The IOATC tags cached MSI PTEs by GSCID and guest address (the spec's
//! table of identifiers that tag IOATC entries), and device contexts
//! "programmed with the same GSCID must also be programmed with identical
//! second-stage page tables"; MSI tables belong to requester ids, never to
//! IOMMU domains (Jason Gunthorpe's review of "iommu/riscv: Add irqbypass
//! support" v2, September 2025). So the GSCID belongs to the requester,
//! like its MSI table: one GSCID never covers two MSI tables, and a domain
//! attached to several requesters is walked under each of their GSCIDs
//! ([`DomainTable`] lists them for invalidation). On an IOMMU without a
//! second stage the id is the requester's PSCID, for the
//! same reason: a domain change then rewrites only `fsc`.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
};

use crate::{
    domain_table::DomainTable,
    hw::{cmd::Command, ddt::DeviceContext},
    iommu::Iommu,
    msi_page_table::MsiPageTable,
};

/// `iohgatp.MODE` (bits 63:60): 0, `Bare`, when there is no second stage.
const IOHGATP_MODE_SHIFT: u32 = 60;

/// What the requester's contexts point at.
struct State {
    /// The requester ids, each with the number of devices that have it.
    rids: KVec<(u32, u32)>,
    /// The table the contexts translate with (`None`: bare or invalid).
    table: Option<Arc<DomainTable>>,
}

/// A set of requester ids with one context id and one MSI page table.
///
/// # Invariants
///
/// `id` was allocated from `iommu.ids` for this requester alone and is
/// freed when it is dropped. Every valid context of `state.rids` carries
/// `id` (as GSCID in second-stage contexts, PSCID in first-stage ones) and
/// `msi` exactly when its `iohgatp` has a second stage; while
/// `state.table` is set, `id` is among its attached ids.
#[pin_data(PinnedDrop)]
pub(crate) struct Requester {
    pub(crate) id: u32,
    /// The MSI page table, when the device's MSIs are remapped by one.
    pub(crate) msi: Option<Arc<MsiPageTable>>,
    iommu: Arc<Iommu>,
    /// Taken by attach, probe and release (process context), around the
    /// directory's lock.
    #[pin]
    state: Mutex<State>,
}

impl Requester {
    /// A requester with no requester ids yet and a fresh context id.
    pub(crate) fn new(iommu: &Arc<Iommu>, msi: Option<Arc<MsiPageTable>>) -> Result<Arc<Self>> {
        let id = iommu.ids.alloc()?;
        let init = try_pin_init!(Self {
            id,
            msi,
            iommu: iommu.clone(),
            state <- new_mutex!(
                State {
                    rids: KVec::new(),
                    table: None
                },
                "Requester::state"
            ),
        });
        // INVARIANT: `id` is this requester's, freed on drop (and here if
        // the allocation fails).
        let this = Arc::pin_init(init, GFP_KERNEL).inspect_err(|_| iommu.ids.free(id))?;
        // The id may have served a requester since released: drop what the
        // IOMMU's caches hold under it.
        this.flush()?;
        Ok(this)
    }

    /// `IOTINVAL` of everything cached under the context id.
    pub(crate) fn inval_all(second_stage: bool, id: u32) -> Command {
        if second_stage {
            // CAST: GSCIDs are 16 bits; `ContextIds` hands out fewer than 65536.
            Command::iotinval_gvma(Some(id as u16), None)
        } else {
            Command::iotinval_vma(None, Some(id), None)
        }
    }

    /// Invalidates everything cached under the context id, and waits.
    fn flush(&self) -> Result {
        let second = self.iommu.paging_mode.is_second_stage();
        self.iommu.submit_sync(&[Self::inval_all(second, self.id)])
    }

    /// Whether the requester has any of `rids`.
    pub(crate) fn shares(&self, rids: &[u32]) -> bool {
        let st = self.state.lock();
        st.rids.iter().any(|(r, _)| rids.contains(r))
    }

    /// A device with requester ids `rids` joins the requester. Its ids not
    /// yet in the set stay invalid until the device is attached.
    pub(crate) fn join(&self, rids: &[u32]) -> Result {
        let mut st = self.state.lock();
        st.rids.reserve(rids.len(), GFP_KERNEL)?;
        for &r in rids {
            match st.rids.iter_mut().find(|(x, _)| *x == r) {
                Some((_, users)) => *users += 1,
                None => st.rids.push((r, 1), GFP_KERNEL)?,
            }
        }
        Ok(())
    }

    /// `dc` with the requester's MSI page table, where the spec allows one:
    /// only beside a second stage ("When `DC.iohgatp.MODE` is `Bare`,
    /// `DC.msiptp.MODE` must be set to `Off` by software", the spec's
    /// device-context configuration checks).
    fn with_msi(&self, dc: &DeviceContext) -> DeviceContext {
        match &self.msi {
            Some(t) if dc.iohgatp >> IOHGATP_MODE_SHIFT != 0 => {
                dc.with_msi(t.pa(), t.geometry.mask(), t.geometry.pattern())
            }
            _ => *dc,
        }
    }

    /// Points every context of the requester at `dc` (built with the
    /// requester's id), translating with `table`: `table` lists the id
    /// first, the contexts change, the id is invalidated (the previous
    /// table's translations were cached under it; `Directory::set_context`
    /// does it after each context's last step), and only then does the
    /// previous table stop listing it, so an unmap of either table in
    /// between invalidates the id too.
    pub(crate) fn set(&self, dc: &DeviceContext, table: Option<Arc<DomainTable>>) -> Result {
        let mut st = self.state.lock();
        let same = match (&st.table, &table) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            if let Some(t) = &table {
                t.attach(self.id)?;
            }
        }
        let dc = self.with_msi(dc);
        // Each context change ends with the invalidations the previous
        // context needs (`Directory::set_context`: everything cached under
        // its id, which is this requester's), so nothing of the previous
        // table stays cached under the id.
        let res = self.write(&st, &dc);
        if same {
            return res;
        }
        if let Err(e) = res {
            // Some contexts may point at either table: the id stays listed
            // by both, so unmaps of either invalidate it.
            if let Some(t) = table {
                st.table = Some(t);
            }
            return Err(e);
        }
        if let Some(old) = st.table.take() {
            old.detach(self.id);
        }
        st.table = table;
        Ok(())
    }

    fn write(&self, st: &State, dc: &DeviceContext) -> Result {
        let ddt = &self.iommu.ddt;
        let t = ddt.lock();
        for &(rid, _) in st.rids.iter() {
            ddt.set_context(&t, rid, dc, |cmds| self.iommu.submit_sync(cmds))?;
        }
        Ok(())
    }

    /// A device with requester ids `rids` leaves: the ids no other device
    /// has become invalid (the IOMMU refuses their DMA). Returns whether
    /// the requester has no ids left; its contexts then point nowhere and
    /// nothing is cached under its id.
    pub(crate) fn leave(&self, rids: &[u32]) -> Result<bool> {
        let mut st = self.state.lock();
        let mut res = Ok(());
        {
            let ddt = &self.iommu.ddt;
            let t = ddt.lock();
            for &r in rids {
                let Some(i) = st.rids.iter().position(|(x, _)| *x == r) else {
                    continue;
                };
                st.rids[i].1 -= 1;
                if st.rids[i].1 == 0 {
                    let _ = st.rids.remove(i);
                    let r = ddt.set_context(&t, r, &DeviceContext::default(), |cmds| {
                        self.iommu.submit_sync(cmds)
                    });
                    res = res.and(r);
                }
            }
        }
        if !st.rids.is_empty() {
            return res.map(|()| false);
        }
        // Each context made invalid ended with the invalidation of the
        // id (`Directory::set_context`), and `Requester::new` flushes the
        // id again before it serves anyone.
        res?;
        if let Some(old) = st.table.take() {
            old.detach(self.id);
        }
        Ok(true)
    }
}

#[pinned_drop]
impl PinnedDrop for Requester {
    fn drop(self: Pin<&mut Self>) {
        // No context carries the id any more (the last device left and
        // flushed it), or none ever did.
        self.iommu.ids.free(self.id);
    }
}
