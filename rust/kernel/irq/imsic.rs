// SPDX-License-Identifier: GPL-2.0

//! The RISC-V IMSIC as IOMMUs that remap MSIs see it: the address layout of
//! its interrupt files, each CPU's files, and its MSI parent domain.
//!
//! C header: [`include/linux/irqchip/riscv-imsic.h`](srctree/include/linux/irqchip/riscv-imsic.h)

use super::remap::IrqDomainRef;
use crate::{bindings, cpu::CpuId};

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

/// The IMSIC's configuration, `None` when there is no IMSIC driver.
fn global() -> Option<&'static bindings::imsic_global_config> {
    #[cfg(CONFIG_RISCV_IMSIC)]
    {
        // SAFETY: The function has no preconditions; it returns NULL or the
        // IMSIC driver's configuration, set up once at boot and never freed.
        let cfg = unsafe { bindings::imsic_get_global_config() };
        // SAFETY: Non-NULL, so valid for the life of the kernel (see above).
        (!cfg.is_null()).then(|| unsafe { &*cfg })
    }
    #[cfg(not(CONFIG_RISCV_IMSIC))]
    None
}

/// The address of the supervisor interrupt file of `cpu`'s hart.
pub fn cpu_file(cpu: CpuId) -> Option<u64> {
    #[cfg(CONFIG_RISCV_IMSIC)]
    {
        let g = global()?;
        // SAFETY: `g` is the IMSIC's configuration, whose per-CPU data
        // exists for every possible CPU.
        Some(unsafe { bindings::imsic_local_msi_pa(g, cpu.as_u32()) })
    }
    #[cfg(not(CONFIG_RISCV_IMSIC))]
    {
        let _ = cpu;
        None
    }
}

/// Every possible CPU and the address of its supervisor interrupt file:
/// the doorbells the kernel's own interrupts may be steered to.
pub fn cpu_files() -> impl Iterator<Item = (CpuId, u64)> {
    (0..crate::cpu::nr_cpu_ids())
        .filter_map(CpuId::from_u32)
        .filter_map(|c| cpu_file(c).map(|f| (c, f)))
}

/// The address of guest interrupt file `guest` (1-based) of `cpu`'s hart,
/// `None` if the hart has no such file.
pub fn guest_file(cpu: CpuId, guest: u32) -> Option<u64> {
    #[cfg(CONFIG_RISCV_IMSIC)]
    {
        let g = global()?;
        // SAFETY: As in `cpu_file`.
        let files = unsafe { bindings::imsic_local_nr_guest_files(g, cpu.as_u32()) };
        if guest == 0 || guest > files {
            return None;
        }
        Some(cpu_file(cpu)? + (u64::from(guest) << 12))
    }
    #[cfg(not(CONFIG_RISCV_IMSIC))]
    {
        let _ = (cpu, guest);
        None
    }
}

/// The IMSIC's MSI parent domain (the one PCI devices' MSIs go to), found
/// from the device tree; `None` when there is no IMSIC.
pub fn msi_parent() -> Option<IrqDomainRef> {
    let mut np: *mut bindings::device_node = core::ptr::null_mut();
    loop {
        // SAFETY: `np` is NULL or a node from the previous call, whose
        // reference the function drops.
        np = unsafe {
            bindings::of_find_compatible_node(np, core::ptr::null(), c"riscv,imsics".as_ptr())
        };
        if np.is_null() {
            return None;
        }
        // SAFETY: All-zero is a valid `irq_fwspec`.
        let mut spec: bindings::irq_fwspec = unsafe { core::mem::zeroed() };
        // SAFETY: `np` is a valid node we hold a reference to.
        spec.fwnode = unsafe { core::ptr::addr_of_mut!((*np).fwnode) };
        // SAFETY: `spec` is valid; the lookup takes no reference.
        let d = unsafe {
            bindings::irq_find_matching_fwspec(
                &mut spec,
                bindings::irq_domain_bus_token_DOMAIN_BUS_NEXUS,
            )
        };
        if !d.is_null() {
            // SAFETY: Drops the reference the search took.
            unsafe { bindings::of_node_put(np) };
            // SAFETY: The IMSIC's domains are never removed.
            return unsafe { IrqDomainRef::from_raw(d) };
        }
    }
}

/// The IMSIC layout, `None` when there is no IMSIC driver.
pub fn layout() -> Option<Layout> {
    let cfg = global()?;
    Some(Layout {
        base: cfg.base_addr,
        guest_index_bits: cfg.guest_index_bits,
        hart_index_bits: cfg.hart_index_bits,
        group_index_bits: cfg.group_index_bits,
        group_index_shift: cfg.group_index_shift,
    })
}

impl Layout {
    /// Calls `f` with the address of every hart's supervisor interrupt file
    /// the layout can express (guest index 0), group by group.
    pub fn for_each_supervisor_file(&self, f: &mut dyn FnMut(u64)) {
        let base = self.base & !((1u64 << (self.guest_index_bits + self.hart_index_bits + 12)) - 1);
        for group in 0..(1u64 << self.group_index_bits) {
            for hart in 0..(1u64 << self.hart_index_bits) {
                let group_bits = if self.group_index_bits > 0 {
                    group << self.group_index_shift
                } else {
                    0
                };
                f(base | group_bits | (hart << self.guest_index_bits) << 12);
            }
        }
    }

    /// Calls `f` with the address of every interrupt file the layout can
    /// express: each hart's supervisor file and its guest files.
    pub fn for_each_file(&self, f: &mut dyn FnMut(u64)) {
        self.for_each_supervisor_file(&mut |s| {
            for guest in 0..(1u64 << self.guest_index_bits) {
                f(s | guest << 12);
            }
        });
    }
}
