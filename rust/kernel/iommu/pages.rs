// SPDX-License-Identifier: GPL-2.0

//! Pages for IOMMU tables, addressed by physical address.
//!
//! IOMMU tables (page tables, device directories, MSI page tables) are read
//! by the IOMMU at physical addresses, and table code written against the
//! hardware's formats naturally works in physical addresses too. This module
//! allocates such pages and reads and writes their words.
//!
//! C header: [`include/linux/gfp.h`](srctree/include/linux/gfp.h)

use crate::{alloc::Flags, bindings, error::code::ENOMEM, error::Result};

/// Allocates `1 << order` zeroed, naturally aligned pages for a table and
/// returns their physical address.
///
/// # Errors
///
/// `ENOMEM` when the pages cannot be allocated.
pub fn alloc(order: u32, flags: Flags) -> Result<u64> {
    // SAFETY: `__get_free_pages` may be called with any flags and order.
    let virt = unsafe { bindings::__get_free_pages(flags.as_raw() | bindings::__GFP_ZERO, order) };
    if virt == 0 {
        return Err(ENOMEM);
    }
    // SAFETY: `virt` is a direct-mapped kernel address just allocated.
    Ok(unsafe { bindings::virt_to_phys(virt as *mut core::ffi::c_void) })
}

/// Frees pages returned by [`alloc`].
///
/// # Safety
///
/// `pa` was returned by [`alloc`] with the same `order`, is not freed yet,
/// and nothing (neither the CPU nor the IOMMU) uses it any more.
pub unsafe fn free(pa: u64, order: u32) {
    // SAFETY: by the safety requirements `pa` is the physical address of a
    // live allocation of `order` made by `__get_free_pages`.
    unsafe { bindings::free_pages(bindings::phys_to_virt(pa) as usize, order) };
}

/// Reads the 64-bit word at `pa`.
///
/// # Safety
///
/// `pa` is 8-byte aligned and inside a live allocation made by [`alloc`].
pub unsafe fn read_u64(pa: u64) -> u64 {
    // SAFETY: by the safety requirements the word is mapped, aligned and
    // ours; a volatile read is a single load the compiler cannot tear.
    unsafe { core::ptr::read_volatile(bindings::phys_to_virt(pa).cast::<u64>()) }
}

/// Writes the 64-bit word at `pa` with a single store, so the IOMMU sees the
/// old or the new value, never a mix.
///
/// # Safety
///
/// `pa` is 8-byte aligned and inside a live allocation made by [`alloc`],
/// and no Rust reference to that memory exists.
pub unsafe fn write_u64(pa: u64, val: u64) {
    // SAFETY: by the safety requirements the word is mapped, aligned and
    // ours, with no reference to it.
    unsafe { core::ptr::write_volatile(bindings::phys_to_virt(pa).cast::<u64>(), val) };
}
