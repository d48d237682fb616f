// SPDX-License-Identifier: GPL-2.0

//! The RISC-V IOMMU's in-memory formats and the logic over them.
//!
//! Page-table entries, page tables, the device directory and device contexts,
//! commands, queue arithmetic, fault records, MSI page tables and MRIFs, as the RISC-V
//! IOMMU specification v1.0 defines them. Nothing here touches the kernel: memory
//! is reached through [`mem::PhysMem`], so the same source compiles in the
//! driver and on the host, where `cargo test` (drivers/iommu/riscv/host)
//! checks it against a model and against [`walk`], an independent
//! implementation of the specification's translation process.
//!
//! In-memory words are plain `u64` newtypes with named constants rather than
//! the kernel's `bitfield!`, which the host build cannot use; MMIO registers,
//! which only the driver touches, use `register!`.

pub(crate) mod cmd;
pub(crate) mod ddt;
pub(crate) mod fault;
pub(crate) mod field;
pub(crate) mod mem;
pub(crate) mod mrif;
pub(crate) mod msi;
pub(crate) mod pgtable;
pub(crate) mod pte;
pub(crate) mod queue;
pub(crate) mod ratelimit;
pub(crate) mod tree;
// The test oracle: host tests only, never in the module.
#[cfg(test)]
pub(crate) mod walk;

/// Base page size.
pub(crate) const PAGE_SHIFT: u32 = 12;
/// Base page size in bytes.
pub(crate) const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// Why an operation on the formats failed; the driver maps these to errnos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HwError {
    /// A table could not be allocated (`ENOMEM`).
    NoMemory,
    /// An argument is malformed: unaligned, zero-sized, unknown mode (`EINVAL`).
    Invalid,
    /// An address lies outside what the table or mode can reach (`ERANGE`).
    Range,
    /// Something is mapped there already (`EEXIST`).
    Exists,
}

/// Whether `x` is a multiple of the power of two `align`.
pub(crate) const fn is_aligned(x: u64, align: u64) -> bool {
    x & (align - 1) == 0
}
