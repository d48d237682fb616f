// SPDX-License-Identifier: GPL-2.0

//! A paging domain's page table with its context id, as the IOMMU keeps
//! the live ones (for debugfs).

use crate::{
    hw::{pgtable::PageTable, tree::Unwalked},
    mem::KernelMem,
};

/// A paging domain's table, shared by the domain and the IOMMU's list of
/// live domains (which debugfs reads under the list's lock).
///
/// # Invariants
///
/// Dropped only once the IOMMU no longer walks the table: its owners are
/// its paging domain (`crate::paging::Paging`), which takes it off the
/// list and then drops its own reference only after no device context
/// points at the table and its IOTLB entries are invalidated, and the
/// list, whose readers only borrow it under the list's lock.
pub(crate) struct DomainTable {
    pub(crate) id: u32,
    pub(crate) pt: PageTable,
}

impl Drop for DomainTable {
    fn drop(&mut self) {
        // SAFETY: the IOMMU no longer walks the table (type invariant), and
        // nothing uses it after this.
        let unwalked = unsafe { Unwalked::new() };
        self.pt.destroy(&KernelMem::new(false), unwalked);
    }
}
