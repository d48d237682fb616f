// SPDX-License-Identifier: GPL-2.0

//! Table memory for `hw`: kernel pages reached by physical address.

use kernel::{iommu::pages, prelude::*};

use crate::hw::{mem::PhysMem, HwError};

/// The kernel's pages as [`PhysMem`]; `atomic` allocations never sleep.
pub(crate) struct KernelMem {
    pub(crate) atomic: bool,
}

impl PhysMem for KernelMem {
    fn alloc_pages(&mut self, order: u32) -> Result<u64, HwError> {
        let flags = if self.atomic { GFP_ATOMIC } else { GFP_KERNEL };
        pages::alloc(order, flags).map_err(|_| HwError::NoMemory)
    }

    fn free_pages(&mut self, pa: u64, order: u32) {
        // SAFETY: `PhysMem`'s contract (hw/mem.rs): `pa` came from `alloc_pages`
        // with `order`, and the table code frees a table only once nothing
        // points to it and the IOMMU's caches of it are invalidated.
        unsafe { pages::free(pa, order) }
    }

    fn read_u64(&self, pa: u64) -> u64 {
        // SAFETY: `PhysMem`'s contract: `pa` is an aligned word of a live allocation.
        unsafe { pages::read_u64(pa) }
    }

    fn write_u64(&mut self, pa: u64, val: u64) {
        // SAFETY: `PhysMem`'s contract: `pa` is an aligned word of a live
        // allocation; table memory is never borrowed as a Rust reference.
        unsafe { pages::write_u64(pa, val) }
    }
}

/// The errno for a `hw` error.
pub(crate) fn errno(e: HwError) -> Error {
    match e {
        HwError::NoMemory => ENOMEM,
        HwError::Invalid => EINVAL,
        HwError::Range => ERANGE,
        HwError::Exists => EEXIST,
    }
}
