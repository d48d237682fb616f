// SPDX-License-Identifier: GPL-2.0

//! The `iommu` trace events an IOMMU driver emits itself: detaching a
//! device, IOTLB invalidations and MSI remapping entries. The core emits
//! the others (attach, map, unmap, faults).
//!
//! Enable them under `/sys/kernel/tracing/events/iommu/`.
//!
//! C header: [`include/trace/events/iommu.h`](srctree/include/trace/events/iommu.h)

use crate::device::Device;

mod raw {
    use crate::bindings;

    crate::declare_trace! {
        /// # Safety
        ///
        /// `dev` points to a valid device.
        pub(super) unsafe fn detach_device_from_domain(dev: *mut bindings::device);
        /// # Safety
        ///
        /// `iommu` points to a valid device.
        pub(super) unsafe fn iotlb_inv(iommu: *mut bindings::device, tag: u32, iova: u64, size: u64);
        /// # Safety
        ///
        /// `dev` points to a valid device.
        pub(super) unsafe fn msi_remap(dev: *mut bindings::device, addr: u64, target: u64, refs: u32);
    }
}

/// `iommu:detach_device_from_domain`: `dev` no longer translates through
/// the domain it was attached to.
#[inline]
pub fn detach(dev: &Device) {
    // SAFETY: `dev` is a valid device for the duration of the call.
    unsafe { raw::detach_device_from_domain(dev.as_raw()) }
}

/// `iommu:iotlb_inv`: `iommu` was told to invalidate `size` bytes at
/// `iova` in address space `tag` (`size` 0: the whole address space).
#[inline]
pub fn iotlb_inv(iommu: &Device, tag: u32, iova: u64, size: u64) {
    // SAFETY: `iommu` is a valid device for the duration of the call.
    unsafe { raw::iotlb_inv(iommu.as_raw(), tag, iova, size) }
}

/// `iommu:msi_remap`: MSIs of `dev` written to `addr` now go to `target`
/// (0: they fault), and `refs` of the device's vectors use the entry.
#[inline]
pub fn msi_remap(dev: &Device, addr: u64, target: u64, refs: u32) {
    // SAFETY: `dev` is a valid device for the duration of the call.
    unsafe { raw::msi_remap(dev.as_raw(), addr, target, refs) }
}
