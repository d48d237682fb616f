// SPDX-License-Identifier: GPL-2.0

//! IOMMU domains as seen from a device.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use crate::{
    bindings,
    device::{
        Bound,
        Device, //
    },
    fmt,
};

/// The type of an IOMMU domain (`IOMMU_DOMAIN_*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DomainType {
    /// All DMA is blocked.
    Blocked,
    /// DMA addresses are system physical addresses.
    Identity,
    /// Paging domain owned by a user of the IOMMU API (VFIO, iommufd, ...).
    Unmanaged,
    /// Paging domain of the DMA API.
    Dma,
    /// Paging domain of the DMA API with a flush queue.
    DmaFq,
    /// Shares a process address space.
    Sva,
    /// Legacy platform-specific domain.
    Platform,
    /// Nested on a parent paging domain, user-managed.
    Nested,
    /// A type this abstraction does not know.
    Other(u32),
}

impl DomainType {
    /// Decodes a `struct iommu_domain::type` value.
    pub fn from_raw(raw: u32) -> Self {
        const PAGING: u32 = bindings::__IOMMU_DOMAIN_PAGING;
        const DMA_API: u32 = bindings::__IOMMU_DOMAIN_DMA_API;
        const DMA_FQ: u32 = bindings::__IOMMU_DOMAIN_DMA_FQ;
        match raw {
            0 => Self::Blocked,
            bindings::__IOMMU_DOMAIN_PT => Self::Identity,
            PAGING => Self::Unmanaged,
            r if r == PAGING | DMA_API => Self::Dma,
            r if r == PAGING | DMA_API | DMA_FQ => Self::DmaFq,
            bindings::__IOMMU_DOMAIN_SVA => Self::Sva,
            bindings::__IOMMU_DOMAIN_PLATFORM => Self::Platform,
            bindings::__IOMMU_DOMAIN_NESTED => Self::Nested,
            other => Self::Other(other),
        }
    }

    /// Whether DMA addresses are translated by page tables.
    pub fn is_paging(self) -> bool {
        matches!(
            self,
            Self::Unmanaged | Self::Dma | Self::DmaFq | Self::Nested
        )
    }
}

impl fmt::Display for DomainType {
    /// The names sysfs uses for default domains (`iommu_group/type`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blocked => f.write_str("blocked"),
            Self::Identity => f.write_str("identity"),
            Self::Unmanaged => f.write_str("unmanaged"),
            Self::Dma => f.write_str("DMA"),
            Self::DmaFq => f.write_str("DMA-FQ"),
            Self::Sva => f.write_str("SVA"),
            Self::Platform => f.write_str("platform"),
            Self::Nested => f.write_str("nested"),
            Self::Other(raw) => write!(f, "unknown({raw:#x})"),
        }
    }
}

impl Device<Bound> {
    /// Returns the type of the IOMMU domain this device is attached to, or
    /// `None` when no IOMMU translates for it.
    ///
    /// Only meaningful while the caller's driver is bound to the device, which
    /// `Device<Bound>` guarantees; the domain may change right after (VFIO or
    /// iommufd attaching), so the result is a snapshot.
    pub fn iommu_domain_type(&self) -> Option<DomainType> {
        // SAFETY: `self.as_raw()` is a valid `struct device` with a driver bound, which is
        // what `iommu_get_domain_for_dev()` requires; it takes no lock we might hold.
        let domain = unsafe { bindings::iommu_get_domain_for_dev(self.as_raw()) };
        if domain.is_null() {
            return None;
        }
        // SAFETY: A non-NULL result points to the group's current domain, which lives at
        // least as long as the device stays attached to it; `type_` is read once.
        let raw = unsafe { (*domain).type_ };
        Some(DomainType::from_raw(raw))
    }
}
