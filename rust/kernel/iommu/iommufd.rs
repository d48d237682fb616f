// SPDX-License-Identifier: GPL-2.0

//! A driver handing its device to an iommufd context that user space opened,
//! as VFIO does: the device's DMA (and its MSI doorbells, through iommufd's
//! `sw_msi`) then go through the IOAS user space manages.
//!
//! C header: [`include/linux/iommufd.h`](srctree/include/linux/iommufd.h)

use crate::{
    bindings,
    device::{Bound, Device},
    devres::Devres,
    error::{from_err_ptr, to_result},
    prelude::*,
};
use core::ptr::NonNull;

/// A device bound to an iommufd context and attached to one of its page
/// tables (an IOAS, or a HW page table).
///
/// # Invariants
///
/// `idev` is a binding of a device to `ictx` made by `iommufd_device_bind`
/// and attached with `IOMMU_NO_PASID`; `ictx` is a context reference we
/// hold. The device stays bound to its driver while this lives: a
/// `Binding` only exists inside the [`Devres`] [`Binding::new`] returns,
/// which drops it at the latest when the device is unbound.
pub struct Binding {
    ictx: NonNull<bindings::iommufd_ctx>,
    idev: NonNull<bindings::iommufd_device>,
    pt_id: u32,
}

// SAFETY: iommufd serialises its objects internally; the handles may be
// used and dropped from any thread.
unsafe impl Send for Binding {}
// SAFETY: `&Binding` only reads `pt_id`.
unsafe impl Sync for Binding {}

impl Binding {
    /// Binds `dev` to the iommufd context of the calling process's file
    /// descriptor `fd` and attaches it to page table `pt_id`. The driver's
    /// own DMA API use stops working meanwhile: iommufd takes the device's
    /// DMA ownership (the driver must manage it, `driver_managed_dma`).
    ///
    /// The binding is device-managed: dropping the result undoes it, and so
    /// does unbinding `dev`, whichever comes first (then
    /// [`Devres::try_access`] finds nothing).
    pub fn new(dev: &Device<Bound>, fd: i32, pt_id: u32) -> Result<Devres<Self>> {
        Devres::new(dev, Self::bind(dev, fd, pt_id)?)
    }

    fn bind(dev: &Device<Bound>, fd: i32, pt_id: u32) -> Result<Self> {
        // SAFETY: Looks `fd` up in the calling process; takes a reference.
        let ictx = from_err_ptr(unsafe { bindings::iommufd_ctx_from_fd(fd) })?;
        let ictx = NonNull::new(ictx).ok_or(EINVAL)?;
        let mut id = 0u32;
        // SAFETY: `dev` is a bound device; `ictx` is a live context.
        let idev = from_err_ptr(unsafe {
            bindings::iommufd_device_bind(ictx.as_ptr(), dev.as_raw(), &mut id)
        })
        .and_then(|p| NonNull::new(p).ok_or(EINVAL));
        let idev = match idev {
            Ok(i) => i,
            Err(e) => {
                // SAFETY: The reference taken above.
                unsafe { bindings::iommufd_ctx_put(ictx.as_ptr()) };
                return Err(e);
            }
        };
        let mut pt = pt_id;
        // SAFETY: `idev` was just bound.
        if let Err(e) = to_result(unsafe {
            bindings::iommufd_device_attach(idev.as_ptr(), bindings::IOMMU_NO_PASID, &mut pt)
        }) {
            // SAFETY: Undoes the bind and the reference above.
            unsafe {
                bindings::iommufd_device_unbind(idev.as_ptr());
                bindings::iommufd_ctx_put(ictx.as_ptr());
            }
            return Err(e);
        }
        // INVARIANT: bound and attached above; `new` hands it to `Devres`.
        Ok(Self {
            ictx,
            idev,
            pt_id: pt,
        })
    }

    /// The page table the device is attached to (a HW page table iommufd
    /// allocated when an IOAS was given).
    pub fn pt_id(&self) -> u32 {
        self.pt_id
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the device is bound and attached,
        // and we hold the context reference.
        unsafe {
            bindings::iommufd_device_detach(self.idev.as_ptr(), bindings::IOMMU_NO_PASID);
            bindings::iommufd_device_unbind(self.idev.as_ptr());
            bindings::iommufd_ctx_put(self.ictx.as_ptr());
        }
    }
}
