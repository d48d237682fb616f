// SPDX-License-Identifier: GPL-2.0

//! The RISC-V IMSIC as IOMMUs that remap MSIs see it: the address layout of
//! its interrupt files, each CPU's files, and its MSI parent domain.
//!
//! C header: [`include/linux/irqchip/riscv-imsic.h`](srctree/include/linux/irqchip/riscv-imsic.h)

use super::{domain::IrqDomainRef, hardirq::HardIrq, msi::MsiMsg};
use crate::{
    bindings,
    cpu::CpuId,
    error::{Error, Result},
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        barrier::{smp_mb, Full},
        Arc,
    },
};
use core::ptr;

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

/// Test knob of debug kernels (`CONFIG_FAULT_INJECTION_DEBUG_FS`):
/// microseconds every notice's handler waits between reading its handler
/// data and counting itself running, the window [`Notice`]'s drop must
/// cover (see there). Set by drivers' debugfs files for tests.
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
pub static NOTICE_ENTRY_DELAY_US: Atomic<u32> = Atomic::new(0);

/// The Linux interrupt of a notice a test watches, 0 for none ...
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
pub static NOTICE_WATCHED: Atomic<u32> = Atomic::new(0);

/// ... and the times its handler entered the wait of
/// [`NOTICE_ENTRY_DELAY_US`] (every notice waits, other devices' too: a
/// test sees when its own is held).
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
pub static NOTICE_HELD: Atomic<u32> = Atomic::new(0);

/// What runs when a [`Notice`] arrives.
pub trait NoticeHandler: Send + Sync + 'static {
    /// The notice arrived, on its CPU.
    fn notice(&self, ctx: &HardIrq);
}

/// An interrupt of the IMSIC's own domain, fixed to one CPU, that a device
/// sends outside Linux's MSI hierarchy: an IOMMU's notice that interrupts
/// are pending in memory-resident interrupt files (RISC-V IOMMU
/// specification, 2.3.3), each notice standing for many interrupts.
///
/// A notice demultiplexes: its handler runs the flow handlers of the
/// interrupts it finds pending, as a cascaded interrupt controller's
/// does. So it is a chained handler (`irq_set_chained_handler_and_data()`),
/// run straight from the IMSIC's, without a flow handler and an action of
/// its own (no descriptor lock, no spurious-interrupt accounting, no
/// entropy sampling per notice: the interrupts it runs have them). It
/// does not show in /proc/interrupts; its users count notices themselves.
/// The IMSIC has claimed the identity before the handler runs, so a notice
/// that arrives meanwhile runs the handler again afterwards.
///
/// Its message, [`Notice::msg`], never changes: the notice belongs to its
/// CPU. It is a per-CPU interrupt to the IRQ core (`IRQ_PER_CPU`,
/// `IRQ_NO_BALANCING`), which therefore never moves it, neither when its
/// CPU goes offline (`irq_migrate_all_off_this_cpu()` skips it) nor at
/// startup to the default affinity (`irqaffinity=`), and user space cannot
/// ask it to. Nothing above it in the IMSIC's domain could move it anyway:
/// the IMSIC's affinity setter rewrites the message through the chip above,
/// and there is none. While its CPU is offline the IMSIC keeps its identity
/// on that CPU, and re-enables it when the CPU comes back online.
///
/// # Invariants
///
/// `irq` was allocated in the IMSIC's domain, on one CPU, and is per CPU;
/// its flow handler is [`notice_flow::<T>`] with the address of `*state`
/// as its data, until drop undoes both.
pub struct Notice<T: NoticeHandler> {
    irq: u32,
    msg: MsiMsg,
    state: KBox<NoticeState<T>>,
}

/// What a [`Notice`]'s chained handler reaches.
struct NoticeState<T: NoticeHandler> {
    handler: Arc<T>,
    /// Handlers running, for [`Notice::synchronize`] (chained handlers are
    /// not tracked by `synchronize_irq()`).
    running: Atomic<u32>,
}

impl<T: NoticeHandler> Notice<T> {
    /// Allocates a notice on `cpu` that runs `handler`.
    pub fn new(cpu: CpuId, handler: Arc<T>) -> Result<Self> {
        let state = KBox::new(
            NoticeState {
                handler,
                running: Atomic::new(0),
            },
            GFP_KERNEL,
        )?;
        let (irq, msg) = notice_alloc(cpu)?;
        // SAFETY: `irq` is ours, allocated on `cpu`; from now on the core
        // leaves it there (no affinity change, no migration at CPU
        // offline), before anything could start it.
        unsafe {
            bindings::irq_modify_status(
                irq,
                0,
                // CAST: flags of the low 16 bits.
                (bindings::IRQ_PER_CPU | bindings::IRQ_NO_BALANCING) as crate::ffi::c_ulong,
            )
        };
        let data: *const NoticeState<T> = &*state;
        // SAFETY: `irq` is ours; `data` stays valid until drop has removed
        // the handler and waited for every handler that may have read it to
        // return (an RCU grace period, see `Drop`).
        unsafe {
            bindings::irq_set_chained_handler_and_data(
                irq,
                Some(notice_flow::<T>),
                data.cast_mut().cast(),
            )
        };
        // INVARIANT: allocated and given its handler as described.
        Ok(Self { irq, msg, state })
    }

    /// The message that raises the notice: the CPU's supervisor interrupt
    /// file and the notice's identity there.
    pub fn msg(&self) -> MsiMsg {
        self.msg
    }

    /// The Linux interrupt number.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Waits for the notice's handlers running on any CPU to return, as
    /// `synchronize_hardirq()` does for requested interrupts: a handler that
    /// starts afterwards sees what was stored before the call.
    pub fn synchronize(&self) {
        // Pairs with the handler's fence: either it sees our stores, or we
        // see it running.
        smp_mb(Full);
        while self.state.running.load(Acquire) != 0 {
            core::hint::spin_loop();
        }
    }

    /// Makes the notice arrive (the IMSIC's retrigger: a write of its
    /// identity to its file), as if the device had sent it.
    pub fn raise(&self) {
        // SAFETY: `irq` is ours and allocated (type invariant): its data is
        // the IMSIC's level, the only one (`irq_chip_retrigger_hierarchy()`
        // would look at the levels below it, and there are none), whose
        // chip is the IMSIC's.
        unsafe {
            let d = bindings::irq_get_irq_data(self.irq);
            if let Some(retrigger) = (*(*d).chip).irq_retrigger {
                retrigger(d);
            }
        }
    }
}

impl<T: NoticeHandler> Drop for Notice<T> {
    fn drop(&mut self) {
        // SAFETY: `irq` is ours (type invariant); without a handler it is
        // shut down, and no new handler starts.
        unsafe { bindings::irq_set_chained_handler_and_data(self.irq, None, ptr::null_mut()) };
        // A handler that started before may have read the handler data and
        // not yet counted itself in `running`, so `synchronize()` would not
        // wait for it. Chained handlers run with interrupts disabled, which
        // is an RCU read-side critical section: after a grace period every
        // one that started before the removal has returned.
        crate::sync::rcu::synchronize_rcu();
        // SAFETY: Allocated by `notice_alloc`, no handler left.
        unsafe { bindings::irq_domain_free_irqs(self.irq, 1) };
    }
}

/// Allocates an interrupt in the IMSIC's domain, on `cpu`, and returns it
/// with its message; out of line, so that modules reach the IRQ core
/// through the `kernel` crate.
///
/// The IMSIC's domain cannot move an interrupt that has no MSI domain above
/// it (`imsic_irq_set_affinity()` rewrites the message through the chip
/// above), and places new ones on the least loaded CPU: interrupts are
/// allocated, and the others kept aside, until one lands on `cpu`.
#[inline(never)]
fn notice_alloc(cpu: CpuId) -> Result<(u32, MsiMsg)> {
    let parent = msi_parent().ok_or(ENODEV)?;
    let want = cpu_file(cpu).ok_or(ENODEV)?;
    let mut aside = KVec::new();
    let mut found = Err(ENOSPC);
    for _ in 0..4 * crate::cpu::nr_cpu_ids() {
        // SAFETY: The IMSIC's domain allocates without arguments; one
        // interrupt, on any node.
        let irq = unsafe {
            bindings::__irq_domain_alloc_irqs(
                parent.as_ptr(),
                -1,
                1,
                bindings::NUMA_NO_NODE,
                core::ptr::null_mut(),
                false,
                core::ptr::null(),
            )
        };
        let Ok(irq) = u32::try_from(irq) else {
            found = Err(Error::from_errno(irq));
            break;
        };
        let mut m = bindings::msi_msg::default();
        // SAFETY: `irq` is allocated; `m` is valid for writes.
        let ret =
            unsafe { bindings::irq_chip_compose_msi_msg(bindings::irq_get_irq_data(irq), &mut m) };
        let msg = MsiMsg::from_raw(&m);
        if ret == 0 && msg.address == want {
            found = Ok((irq, msg));
            break;
        }
        if aside.push(irq, GFP_KERNEL).is_err() {
            // SAFETY: Allocated above, not requested.
            unsafe { bindings::irq_domain_free_irqs(irq, 1) };
            found = Err(ENOMEM);
            break;
        }
    }
    for irq in aside {
        // SAFETY: Allocated above, not requested.
        unsafe { bindings::irq_domain_free_irqs(irq, 1) };
    }
    found
}

/// The chained handler of a [`Notice`].
///
/// # Safety
///
/// `desc` is the descriptor of a notice's interrupt, whose handler data is
/// the notice's state (`Notice::new`).
unsafe extern "C" fn notice_flow<T: NoticeHandler>(desc: *mut bindings::irq_desc) {
    // SAFETY: By the safety requirements; the state lives until drop has
    // removed this handler and an RCU grace period has passed, and this
    // handler runs with interrupts disabled (an RCU read-side critical
    // section) until it returns.
    let state = unsafe {
        &*(*desc)
            .irq_common_data
            .handler_data
            .cast::<NoticeState<T>>()
    };
    #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
    {
        let us = NOTICE_ENTRY_DELAY_US.load(Relaxed);
        // SAFETY: `desc` is valid (the safety requirements).
        if us != 0 && unsafe { (*desc).irq_data.irq } == NOTICE_WATCHED.load(Relaxed) {
            NOTICE_HELD.fetch_add(1, Relaxed);
        }
        // `udelay()` is for short waits: a millisecond at a time.
        for _ in 0..us / 1000 {
            crate::time::delay::udelay(crate::time::Delta::from_micros(1000));
        }
        crate::time::delay::udelay(crate::time::Delta::from_micros((us % 1000).into()));
    }
    state.running.fetch_add(1, Relaxed);
    // Pairs with `Notice::synchronize`.
    smp_mb(Full);
    // SAFETY: A chained handler runs in hard interrupt context, interrupts
    // disabled.
    state.handler.notice(&unsafe { HardIrq::new() });
    state.running.fetch_sub(1, Release);
}
