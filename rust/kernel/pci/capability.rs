// SPDX-License-Identifier: GPL-2.0

//! A PCI device's capabilities: where in config space each one is
//! (`pci_find_capability()`), and the layout of those drivers reach into.
//!
//! C header: [`include/uapi/linux/pci_regs.h`](srctree/include/uapi/linux/pci_regs.h)

use crate::{bindings, device, pci::Device};

/// A PCI capability id (`PCI_CAP_ID_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CapabilityId {
    /// Message Signalled Interrupts.
    Msi = bindings::PCI_CAP_ID_MSI,
    /// MSI-X.
    MsiX = bindings::PCI_CAP_ID_MSIX,
    /// PCI Express.
    Exp = bindings::PCI_CAP_ID_EXP,
}

impl<Ctx: device::DeviceContext> Device<Ctx> {
    /// The config-space offset of the device's capability `id`, `None` if
    /// it has none.
    pub fn find_capability(&self, id: CapabilityId) -> Option<usize> {
        // SAFETY: `self.as_raw()` is a valid PCI device; the call only reads
        // its config space.
        let pos = unsafe { bindings::pci_find_capability(self.as_raw(), id as i32) };
        (pos != 0).then_some(usize::from(pos))
    }
}

/// The MSI capability's registers, as offsets from the capability.
pub mod msi {
    use crate::bindings;

    /// Message control (16 bits).
    pub const FLAGS: usize = bindings::PCI_MSI_FLAGS as usize;
    /// In [`FLAGS`]: the address may be 64 bits wide.
    pub const FLAGS_64BIT: u16 = bindings::PCI_MSI_FLAGS_64BIT as u16;
    /// The message address, low 32 bits.
    pub const ADDRESS_LO: usize = bindings::PCI_MSI_ADDRESS_LO as usize;
    /// The message address, high 32 bits (64-bit capabilities).
    pub const ADDRESS_HI: usize = bindings::PCI_MSI_ADDRESS_HI as usize;
    /// The message data (16 bits) of a 32-bit capability.
    pub const DATA_32: usize = bindings::PCI_MSI_DATA_32 as usize;
    /// The message data (16 bits) of a 64-bit capability.
    pub const DATA_64: usize = bindings::PCI_MSI_DATA_64 as usize;
}
