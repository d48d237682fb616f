// SPDX-License-Identifier: GPL-2.0

//! A translating table (a paging domain's, or the IOMMU's identity map)
//! with the context ids of the requesters attached to it: the ids an
//! unmap must invalidate. The IOMMU keeps the live ones listed (debugfs).

use kernel::{
    new_raw_spinlock_irq,
    prelude::*,
    sync::{lock::raw_spinlock::RawSpinLockIrq, Arc}, //
};

use crate::{
    hw::{pgtable::PageTable, tree::Unwalked},
    mem::KernelMem,
};

/// A page table, shared by its domain, the requesters attached to it and
/// the IOMMU's list of live tables (which debugfs reads under the list's
/// lock).
///
/// # Invariants
///
/// Dropped only once the IOMMU no longer walks the table: its owners are
/// its paging domain (`crate::paging::Paging`) or the IOMMU's identity
/// map (`crate::ops::IommuOps`), which take it off the list and drop their
/// own reference only after no device context points at the table; the
/// requesters attached to it (`crate::requester::Requester`), each of
/// which drops its reference only after its contexts point elsewhere and
/// its context id is invalidated; and the list, whose readers only borrow
/// it under the list's lock.
///
/// `attached` holds the context id of every requester whose contexts
/// point at the table, from before the first context points at it until
/// the id is invalidated after the last one no longer does.
pub(crate) struct DomainTable {
    /// A number for debugfs, not a hardware id: context ids belong to
    /// requesters (`crate::requester`).
    pub(crate) serial: u32,
    pub(crate) pt: PageTable,
    /// Read by every unmap's IOTLB sync, in any context (drivers unmap
    /// from hard interrupt handlers); changed at attach and detach.
    attached: Pin<KBox<RawSpinLockIrq<KVec<u32>>>>,
}

/// Above this many attached ids, an unmap invalidates every context id
/// (one command) rather than each.
pub(crate) const ATTACHED_MAX: usize = 32;

impl DomainTable {
    /// A table with room for one attached id, so that the first attach (a
    /// default domain's, which the core does not expect to fail) never
    /// allocates.
    pub(crate) fn new(serial: u32, pt: PageTable) -> Result<Arc<Self>> {
        let ids = KVec::with_capacity(1, GFP_KERNEL)?;
        let attached = KBox::pin_init(
            new_raw_spinlock_irq!(ids, "DomainTable::attached"),
            GFP_KERNEL,
        )?;
        Ok(Arc::new(
            Self {
                serial,
                pt,
                attached,
            },
            GFP_KERNEL,
        )?)
    }

    /// Adds `id` to the attached ids (before a context with `id` points at
    /// the table). Allocates only when the list is full.
    pub(crate) fn attach(&self, id: u32) -> Result {
        loop {
            let cap = {
                let mut ids = self.attached.lock();
                if ids.push_within_capacity(id).is_ok() {
                    return Ok(());
                }
                ids.capacity()
            };
            // The list is full: a larger one, filled and swapped under the
            // lock if no one grew it meanwhile; the old one freed outside.
            let mut bigger = KVec::with_capacity(2 * cap, GFP_KERNEL)?;
            let _old = {
                let mut ids = self.attached.lock();
                if ids.capacity() != cap {
                    continue;
                }
                // Never allocates: `bigger` has room for twice `ids`.
                bigger.extend_from_slice(&ids, GFP_ATOMIC)?;
                core::mem::replace(&mut *ids, bigger)
            };
        }
    }

    /// Removes one `id` from the attached ids (once no context with `id`
    /// points at the table and `id` is invalidated).
    pub(crate) fn detach(&self, id: u32) {
        let mut ids = self.attached.lock();
        if let Some(i) = ids.iter().position(|&x| x == id) {
            let _ = ids.remove(i);
        }
    }

    /// Copies the attached ids into `out`; returns how many there are,
    /// which may exceed `out`'s length (only that many are copied).
    pub(crate) fn attached(&self, out: &mut [u32; ATTACHED_MAX]) -> usize {
        let ids = self.attached.lock();
        for (o, &i) in out.iter_mut().zip(ids.iter()) {
            *o = i;
        }
        ids.len()
    }
}

impl Drop for DomainTable {
    fn drop(&mut self) {
        // SAFETY: the IOMMU no longer walks the table (type invariant), and
        // nothing uses it after this.
        let unwalked = unsafe { Unwalked::new() };
        self.pt.destroy(&KernelMem::new(false), unwalked);
    }
}
