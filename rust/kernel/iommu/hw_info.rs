// SPDX-License-Identifier: GPL-2.0

//! What an IOMMU reports to user space about itself (`IOMMU_GET_HW_INFO`).
//!
//! The formats are the uapi's, `enum iommu_hw_info_type` and the structure
//! each type names in `include/uapi/linux/iommufd.h`: shared by every
//! driver of that hardware and by the VMMs that read them. [`HwInfo`] has
//! one variant per type a Rust driver reports, holding that structure's
//! fields; the abstraction ([`super::driver`]) hands it to the core.
//!
//! C header: [`include/uapi/linux/iommufd.h`](srctree/include/uapi/linux/iommufd.h)

use crate::{bindings, prelude::*};

/// What an IOMMU tells user space about itself (`IOMMU_GET_HW_INFO`): one
/// variant per `enum iommu_hw_info_type`, holding that type's fields.
///
/// # Examples
///
/// ```
/// use kernel::iommu::hw_info::HwInfo;
///
/// // A RISC-V IOMMU v1.0 with MSI page tables (flat and MRIF), wired
/// // interrupts off.
/// let info = HwInfo::RiscvIommu { capability: 0xc0_0010, fctl: 0 };
/// assert_ne!(info, HwInfo::RiscvIommu { capability: 0xc0_0010, fctl: 2 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwInfo {
    /// `IOMMU_HW_INFO_TYPE_RISCV_IOMMU`: the raw `capabilities` and `fctl`
    /// registers.
    RiscvIommu {
        /// The capabilities register.
        capability: u64,
        /// The features-control register.
        fctl: u32,
    },
}

impl HwInfo {
    /// The uapi type this information is reported as.
    pub(crate) fn kind(&self) -> bindings::iommu_hw_info_type {
        match self {
            Self::RiscvIommu { .. } => bindings::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_RISCV_IOMMU,
        }
    }

    /// The uapi structure, in a `kmalloc` buffer the caller frees with
    /// `kfree`; returns the buffer and its length.
    pub(crate) fn into_raw(self) -> Result<(*mut core::ffi::c_void, u32)> {
        match self {
            Self::RiscvIommu { capability, fctl } => {
                let data = bindings::iommu_hw_info_riscv_iommu {
                    capability,
                    fctl,
                    __reserved: 0,
                };
                let b = KBox::new(data, GFP_KERNEL)?;
                // CAST: the structure is 16 bytes.
                let len = core::mem::size_of_val(&*b) as u32;
                Ok((KBox::into_raw(b).cast(), len))
            }
        }
    }
}

#[kunit_tests(rust_kernel_iommu_hw_info)]
mod tests {
    use super::*;

    /// The uapi structure carries the fields, in the kernel buffer the
    /// core copies to user space.
    #[test]
    fn riscv_iommu_uapi() -> Result {
        let info = HwInfo::RiscvIommu {
            capability: 0x1234_5678_9abc_def0,
            fctl: 3,
        };
        assert_eq!(
            info.kind(),
            bindings::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_RISCV_IOMMU
        );
        let (buf, len) = info.into_raw()?;
        assert_eq!(len, 16);
        // SAFETY: `into_raw` returned a `KBox` of the structure, leaked.
        let raw = unsafe { KBox::from_raw(buf.cast::<bindings::iommu_hw_info_riscv_iommu>()) };
        assert_eq!(raw.capability, 0x1234_5678_9abc_def0);
        assert_eq!(raw.fctl, 3);
        assert_eq!(raw.__reserved, 0);
        Ok(())
    }
}
