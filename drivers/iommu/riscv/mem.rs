// SPDX-License-Identifier: GPL-2.0

//! Table memory for `hw`: kernel pages reached by physical address.

use kernel::{iommu::pages, prelude::*};

use crate::hw::{mem, HwError};

/// The kernel's pages as [`mem::PhysMem`]; `atomic` allocations never sleep.
pub(crate) struct KernelMem {
    atomic: bool,
    /// Views without a helper call (hot paths know the linear map).
    linear: Option<pages::LinearMap>,
}

impl KernelMem {
    /// Table memory whose views cost a `phys_to_virt()` call each.
    pub(crate) fn new(atomic: bool) -> Self {
        Self {
            atomic,
            linear: None,
        }
    }

    /// Table memory whose views are computed inline with `linear`.
    pub(crate) fn with_linear(atomic: bool, linear: pages::LinearMap) -> Self {
        Self {
            atomic,
            linear: Some(linear),
        }
    }
}

impl mem::PhysMem for KernelMem {
    type Words<'a> = pages::Words<'a>;

    fn alloc_pages(&self, order: u32) -> Result<u64, HwError> {
        let flags = if self.atomic { GFP_ATOMIC } else { GFP_KERNEL };
        pages::alloc(order, flags).map_err(|_| HwError::NoMemory)
    }

    unsafe fn free_pages(&self, pa: u64, order: u32) {
        // SAFETY: the caller's guarantee (`PhysMem::free_pages`): `pa` came
        // from `alloc_pages`, that is from `pages::alloc`, with `order`, and
        // nothing uses it any more.
        unsafe { pages::free(pa, order) }
    }

    unsafe fn words(&self, pa: u64, len: usize) -> pages::Words<'_> {
        // SAFETY: the caller's guarantee (`PhysMem::words`): the words lie in
        // an allocation of `pages::alloc` that outlives the view; table
        // memory is never borrowed as a Rust reference.
        unsafe {
            match self.linear {
                Some(linear) => linear.words(pa, len),
                None => pages::Words::new(pa, len),
            }
        }
    }
}

impl mem::Words for pages::Words<'_> {
    #[inline]
    fn len(self) -> usize {
        pages::Words::len(self)
    }

    #[inline]
    fn sub(self, first: usize, len: usize) -> Self {
        pages::Words::sub(self, first, len)
    }

    #[inline]
    fn read(self, i: usize) -> u64 {
        pages::Words::read(self, i)
    }

    #[inline]
    fn write(self, i: usize, val: u64) {
        pages::Words::write(self, i, val)
    }

    #[inline]
    fn cmpxchg(self, i: usize, old: u64, new: u64) -> Result<(), u64> {
        pages::Words::cmpxchg(self, i, old, new)
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
