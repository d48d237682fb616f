// SPDX-License-Identifier: GPL-2.0

//! The RISC-V IMSIC's MSI address layout, for IOMMUs that remap MSIs.
//!
//! C header: [`include/linux/irqchip/riscv-imsic.h`](srctree/include/linux/irqchip/riscv-imsic.h)

/// Where the IMSIC interrupt files are: `base | group << group_index_shift |
/// (hart << guest_index_bits | guest) << 12`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Address all interrupt-file addresses share.
    pub base: u64,
    /// Bits of the guest-file index.
    pub guest_index_bits: u32,
    /// Bits of the hart index.
    pub hart_index_bits: u32,
    /// Bits of the group index.
    pub group_index_bits: u32,
    /// Position of the group index.
    pub group_index_shift: u32,
}

/// The IMSIC layout, `None` when there is no IMSIC driver.
pub fn layout() -> Option<Layout> {
    #[cfg(CONFIG_RISCV_IMSIC)]
    {
        // SAFETY: The function has no preconditions; it returns NULL or the
        // IMSIC driver's configuration, set up once at boot and never freed.
        let cfg = unsafe { crate::bindings::imsic_get_global_config() };
        if cfg.is_null() {
            return None;
        }
        // SAFETY: Non-NULL, so valid for the life of the kernel (see above).
        let cfg = unsafe { &*cfg };
        Some(Layout {
            base: cfg.base_addr,
            guest_index_bits: cfg.guest_index_bits,
            hart_index_bits: cfg.hart_index_bits,
            group_index_bits: cfg.group_index_bits,
            group_index_shift: cfg.group_index_shift,
        })
    }
    #[cfg(not(CONFIG_RISCV_IMSIC))]
    None
}

impl Layout {
    /// Calls `f` with the address of every hart's supervisor interrupt file
    /// the layout can express (guest index 0), group by group.
    pub fn for_each_supervisor_file(&self, f: &mut dyn FnMut(u64)) {
        let base = self.base & !((1u64 << (self.guest_index_bits + self.hart_index_bits + 12)) - 1);
        for group in 0..(1u64 << self.group_index_bits) {
            for hart in 0..(1u64 << self.hart_index_bits) {
                let group_bits = if self.group_index_bits > 0 { group << self.group_index_shift } else { 0 };
                f(base | group_bits | (hart << self.guest_index_bits) << 12);
            }
        }
    }
}
