// SPDX-License-Identifier: GPL-2.0

//! MSI messages and descriptors: what a device writes to raise an interrupt,
//! and the MSI core's record of an interrupt being allocated, through which
//! the doorbells it may target are made reachable behind an IOMMU.
//!
//! C header: [`include/linux/msi.h`](srctree/include/linux/msi.h)

use crate::{bindings, prelude::*};
use core::{marker::PhantomData, ptr::NonNull};

/// An MSI message: the doorbell address a device writes and the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMsg {
    /// The doorbell address.
    pub address: u64,
    /// The data written.
    pub data: u32,
}

impl MsiMsg {
    /// The message `m` holds.
    pub(crate) fn from_raw(m: &bindings::msi_msg) -> Self {
        // SAFETY: The unions' fields are plain integers.
        let (lo, hi, data) = unsafe {
            (
                m.__bindgen_anon_1.address_lo,
                m.__bindgen_anon_2.address_hi,
                m.__bindgen_anon_3.data,
            )
        };
        Self {
            address: u64::from(hi) << 32 | u64::from(lo),
            data,
        }
    }

    /// The message as `struct msi_msg` holds it.
    pub(crate) fn to_raw(self) -> bindings::msi_msg {
        let mut m = bindings::msi_msg::default();
        // CAST: the address is split into its two 32-bit halves.
        m.__bindgen_anon_1.address_lo = self.address as u32;
        m.__bindgen_anon_2.address_hi = (self.address >> 32) as u32;
        m.__bindgen_anon_3.data = self.data;
        m
    }
}

/// The MSI descriptor of an interrupt being allocated, valid for the
/// allocation (an MSI remapping domain hands it to its driver).
///
/// Through it the domain maps the doorbells the interrupt may target into
/// the IOMMU domain its device is attached to, with the IOMMU core's
/// `sw_msi` machinery (`iommu_dma_prepare_msi()`): dma-iommu for DMA API
/// domains, iommufd for domains user space owns.
///
/// # Invariants
///
/// `ptr` is the descriptor of an MSI allocation in progress, valid and not
/// used by anything else for `'a`.
pub struct MsiDesc<'a> {
    ptr: NonNull<bindings::msi_desc>,
    _p: PhantomData<&'a mut bindings::msi_desc>,
}

impl MsiDesc<'_> {
    /// The descriptor `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is the descriptor of an MSI allocation in progress, valid and
    /// not used by anything else for the life of the result.
    pub(crate) unsafe fn from_raw(ptr: NonNull<bindings::msi_desc>) -> Self {
        // INVARIANT: The caller's promise.
        Self {
            ptr,
            _p: PhantomData,
        }
    }

    /// Maps the doorbell page holding `pa` into the IOMMU domain of the
    /// interrupt's device, if that domain translates MSIs, and returns the
    /// address the device must write instead of `pa`. `None` when MSIs
    /// pass untranslated: identity domains, and domains of IOMMUs that
    /// handle MSIs themselves (no `IOMMU_RESV_SW_MSI` window for iommufd;
    /// hardware MSI regions for dma-iommu, which then returns `pa` as is).
    ///
    /// The mapping lives as long as the IOMMU domain (dma-iommu) or the
    /// iommufd context (iommufd, which also installs it in every domain the
    /// device is attached to later). Sleeps: call it at allocation only.
    pub fn map_doorbell(&mut self, pa: u64) -> Result<Option<u64>> {
        prepare_msi(self.ptr, pa)
    }
}

/// `iommu_dma_prepare_msi()` for one doorbell of `desc`; out of line, so
/// that modules reach the IOMMU core through the `kernel` crate.
#[inline(never)]
fn prepare_msi(desc: NonNull<bindings::msi_desc>, pa: u64) -> Result<Option<u64>> {
    #[cfg(CONFIG_IRQ_MSI_IOMMU)]
    {
        let d = desc.as_ptr();
        // SAFETY: `desc` is the descriptor of an allocation in progress
        // (type invariant of `MsiDesc`); its IOVA fields are ours to reset
        // and are set by the call for this doorbell only.
        let shift = unsafe {
            (*d).set_iommu_msi_iova(0);
            (*d).set_iommu_msi_shift(0);
            crate::error::to_result(bindings::iommu_dma_prepare_msi(d, pa))?;
            (*d).iommu_msi_shift()
        };
        if shift == 0 {
            return Ok(None);
        }
        // SAFETY: As above.
        let iova = unsafe { (*d).iommu_msi_iova() } << shift;
        Ok(Some(iova | (pa & ((1u64 << shift) - 1))))
    }
    #[cfg(not(CONFIG_IRQ_MSI_IOMMU))]
    {
        let _ = (desc, pa);
        Ok(None)
    }
}
