// SPDX-License-Identifier: GPL-2.0

//! edu's BAR0 registers (QEMU `hw/misc/edu.c`, `docs/specs/edu.rst`).
//!
//! The DMA registers are 64 bits wide, but a PCI BAR region allows accesses of
//! at most 4 bytes here; edu zero-extends a 4-byte write to the low half, so
//! DMA addresses are limited to 32 bits (see `dma_bits`).

use kernel::io::register;

register! {
    /// Identification: `0xRRrr00ed`, major and minor version and the 0xed magic.
    pub(crate) IDENT(u32) @ 0x00 {
        /// Major version.
        31:24 major;
        /// Minor version.
        23:16 minor;
        /// Always 0xed.
        7:0 magic;
    }

    /// Liveness check: reads return the bitwise inverse of the last write.
    pub(crate) LIVENESS(u32) @ 0x04 {
        /// Written value, read back inverted.
        31:0 value;
    }

    /// DMA source address (bus address, or edu's buffer at [`EDU_BUF`]).
    pub(crate) DMA_SRC(u32) @ 0x80 {
        /// Address.
        31:0 addr;
    }

    /// DMA destination address.
    pub(crate) DMA_DST(u32) @ 0x88 {
        /// Address.
        31:0 addr;
    }

    /// Interrupt raise: the value is ORed into the status and an interrupt
    /// (an MSI, when enabled) is sent, one per write.
    pub(crate) INTR_RAISE(u32) @ 0x60 {
        /// Status bits to set.
        31:0 value;
    }

    /// DMA transfer length in bytes.
    pub(crate) DMA_COUNT(u32) @ 0x90 {
        /// Byte count, at most [`EDU_BUF_SIZE`].
        31:0 count;
    }

    /// DMA command; `start` reads back set until the transfer completes.
    pub(crate) DMA_CMD(u32) @ 0x98 {
        /// Raise interrupt 0x100 when the transfer completes.
        2:2 irq => bool;
        /// Direction: set copies edu's buffer to RAM, clear copies RAM to edu.
        1:1 to_ram => bool;
        /// Start; cleared by the device on completion.
        0:0 start => bool;
    }
}

/// Magic byte of [`IDENT`].
pub(crate) const EDU_MAGIC: u8 = 0xed;
/// Device address of edu's internal DMA buffer.
pub(crate) const EDU_BUF: u32 = 0x40000;
/// Size of edu's internal DMA buffer.
pub(crate) const EDU_BUF_SIZE: usize = 4096;
/// Extent of the registers this driver touches.
pub(crate) const BAR0_SIZE: usize = 0x100;
