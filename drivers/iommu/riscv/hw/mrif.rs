// SPDX-License-Identifier: GPL-2.0

//! Memory-resident interrupt files (MRIFs; RISC-V AIA specification, and
//! RISC-V IOMMU specification 2.3.3, MRIF mode): 512 bytes of memory that
//! stand for an interrupt file of 2047 identities. For each group of 64
//! identities, a pending doubleword and then an enable doubleword. An
//! IOMMU in MRIF mode sets identity `i`'s pending bit when the device
//! writes `i`, and then sends the entry's notice MSI, whether or not that
//! identity is enabled (AIA specification, the IOMMU chapter: "an IOMMU is
//! required always to send a notice MSI after storing an MSI to an MRIF,
//! even when the corresponding enable bit is zero"); an identity above
//! 2047 is discarded.
//!
//! QEMU 10.0.2 deviates (the strict emulator in `patches/qemu/` does not):
//! it places group `g`'s pending doubleword at `8·g` instead of `16·g`,
//! its enable doubleword right after, so the layouts agree for group 0
//! only; it sends the notice only when the identity is enabled; it faults
//! identities above 2047 (cause 263). The driver therefore uses
//! identities 1 to 63 ([`USABLE`]), where both layouts are right, never
//! enables any other, and scans on every notice rather than trusting one
//! to mean an enabled identity is pending; a write of a higher identity
//! still lands inside the device's own MRIF under either layout
//! ([`qemu_pending_offset`], host tests).

/// Bytes of an MRIF, which is aligned to its size.
pub(crate) const MRIF_SIZE: u64 = 512;
/// Identities an MRIF stands for: 0 to 2047, 0 meaning none.
pub(crate) const IDENTITIES: u32 = 2048;
/// The highest identity the driver uses: 1 to 63, one doubleword pair.
pub(crate) const USABLE: u32 = 63;

// A pending and an enable bit for each identity.
const _: () = assert!(MRIF_SIZE * 8 == 2 * IDENTITIES as u64);

/// Offset in the MRIF of the pending doubleword holding identity `i`.
pub(crate) const fn pending_offset(i: u32) -> u64 {
    16 * (i as u64 / 64)
}

/// Offset in the MRIF of the enable doubleword holding identity `i`.
pub(crate) const fn enable_offset(i: u32) -> u64 {
    pending_offset(i) + 8
}

/// Identity `i`'s bit in its doublewords.
pub(crate) const fn bit(i: u32) -> u64 {
    1 << (i % 64)
}

/// Where QEMU 10.0 (`riscv_iommu_msi_write()`) puts identity `i`'s pending
/// doubleword; its enable doubleword follows.
#[cfg(test)]
pub(crate) const fn qemu_pending_offset(i: u32) -> u64 {
    8 * (i as u64 / 64)
}
