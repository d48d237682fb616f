// SPDX-License-Identifier: GPL-2.0

//! CPU hotplug states: code that runs for an object as each CPU comes
//! online or goes offline.
//!
//! A [`Registration`] sets up a dynamic multi-instance state and adds its
//! data as the state's one instance; dropping it removes both. Dynamic
//! states are few (`CPUHP_AP_ONLINE_DYN` and `CPUHP_BP_PREPARE_DYN` have 40
//! and 20), so a registration suits an object a system has a handful of,
//! such as an IOMMU.
//!
//! C header: [`include/linux/cpuhotplug.h`](srctree/include/linux/cpuhotplug.h)

use crate::{
    bindings,
    cpu::CpuId,
    error::{to_result, Error, Result},
    prelude::*,
    str::CStr,
    types::Opaque,
};
use core::{marker::PhantomPinned, ptr::addr_of_mut};

/// Where in a CPU's bring-up and tear-down a state's callbacks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// `CPUHP_BP_PREPARE_DYN`: on a control CPU, `startup` before the CPU
    /// starts, `teardown` after it is dead (its interrupts were moved off
    /// and it runs nothing any more).
    Prepare,
    /// `CPUHP_AP_ONLINE_DYN`: on the CPU itself, in its hotplug thread,
    /// `startup` once it is online and `teardown` before it goes away
    /// (before the IRQ core moves its interrupts).
    Online,
}

impl Section {
    fn state(self) -> bindings::cpuhp_state {
        match self {
            Section::Prepare => bindings::cpuhp_state_CPUHP_BP_PREPARE_DYN,
            Section::Online => bindings::cpuhp_state_CPUHP_AP_ONLINE_DYN,
        }
    }
}

/// What runs for an instance. Both run in process context, under the CPU
/// hotplug lock (so they must not wait for another CPU hotplug operation),
/// and may sleep.
pub trait Callbacks: Send + Sync + 'static {
    /// `cpu` is coming online, or was online when the registration was
    /// made. An error keeps `cpu` offline (at registration: fails it).
    fn startup(&self, cpu: CpuId) -> Result {
        let _ = cpu;
        Ok(())
    }

    /// `cpu` is going offline. Errors are not expected here: the CPU goes
    /// anyway.
    fn teardown(&self, cpu: CpuId) {
        let _ = cpu;
    }
}

/// A dynamic CPU hotplug state whose only instance is `data`.
///
/// # Invariants
///
/// `state` is a dynamic multi-instance state set up with
/// [`startup_callback::<T>`] and [`teardown_callback::<T>`], and `node` is
/// its instance, until drop removes both.
#[pin_data(PinnedDrop)]
pub struct Registration<T: Callbacks> {
    data: T,
    state: bindings::cpuhp_state,
    #[pin]
    node: Opaque<bindings::hlist_node>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The node is only touched by the CPU hotplug core, under its
// own locks; what the registration gives others is `&T`, and `T: Send`.
unsafe impl<T: Callbacks> Send for Registration<T> {}

// SAFETY: A shared registration only gives `&T` (`T: Sync`), to its callbacks
// too, which run on any CPU.
unsafe impl<T: Callbacks> Sync for Registration<T> {}

impl<T: Callbacks> Registration<T> {
    /// Sets up a state named `name` in `section` with `data` as its
    /// instance; `startup` runs for every CPU online now, before this
    /// returns.
    pub fn new(section: Section, name: &'static CStr, data: T) -> impl PinInit<Self, Error> {
        // SAFETY: On `Ok` every field is initialised and the instance added
        // (the invariants hold); on `Err` nothing is left registered and
        // `data` was dropped.
        unsafe {
            pin_init::pin_init_from_closure(move |slot: *mut Self| {
                // SAFETY: `name` is static; the callbacks are ours, for
                // instances that are the `node` of a `Registration<T>`.
                let state = bindings::cpuhp_setup_state_multi(
                    section.state(),
                    name.as_char_ptr(),
                    Some(startup_callback::<T>),
                    Some(teardown_callback::<T>),
                );
                if state < 0 {
                    return Err(Error::from_errno(state));
                }
                // CAST: a dynamic state's number, positive.
                let state = state as bindings::cpuhp_state;
                // `data` first: the instance's startup reads it.
                addr_of_mut!((*slot).data).write(data);
                addr_of_mut!((*slot).state).write(state);
                let node = Opaque::cast_into(addr_of_mut!((*slot).node));
                // SAFETY: `node` is pinned in `slot`, which holds the data
                // the callbacks reach through it; removed before drop.
                let ret = bindings::__cpuhp_state_add_instance(state, node, true);
                if let Err(e) = to_result(ret) {
                    // SAFETY: Set up above, without instances.
                    bindings::__cpuhp_remove_state(state, false);
                    core::ptr::drop_in_place(addr_of_mut!((*slot).data));
                    return Err(e);
                }
                Ok(())
            })
        }
    }
}

#[pinned_drop]
impl<T: Callbacks> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `node` is the state's instance (type invariant); no
        // callback runs for it once this returns (the removal takes the
        // hotplug lock, which callbacks run under). The teardown is not
        // run: the CPUs stay online.
        unsafe {
            bindings::__cpuhp_state_remove_instance(self.state, self.node.get(), false);
            bindings::__cpuhp_remove_state(self.state, false);
        }
    }
}

/// The registration whose instance is `node`.
///
/// # Safety
///
/// `node` is the `node` of a live `Registration<T>`.
unsafe fn registration<'a, T: Callbacks>(node: *mut bindings::hlist_node) -> &'a Registration<T> {
    let node = Opaque::cast_from(node).cast_mut();
    // SAFETY: By the safety requirements, `node` is a field of a
    // `Registration<T>`, alive while its state calls back.
    unsafe { &*crate::container_of!(node, Registration<T>, node) }
}

unsafe extern "C" fn startup_callback<T: Callbacks>(
    cpu: crate::ffi::c_uint,
    node: *mut bindings::hlist_node,
) -> crate::ffi::c_int {
    let Some(cpu) = CpuId::from_u32(cpu) else {
        return EINVAL.to_errno();
    };
    // SAFETY: The state's instances are `Registration<T>`s (type invariant
    // of `Registration`).
    let reg = unsafe { registration::<T>(node) };
    match reg.data.startup(cpu) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn teardown_callback<T: Callbacks>(
    cpu: crate::ffi::c_uint,
    node: *mut bindings::hlist_node,
) -> crate::ffi::c_int {
    if let Some(cpu) = CpuId::from_u32(cpu) {
        // SAFETY: As in `startup_callback`.
        unsafe { registration::<T>(node) }.data.teardown(cpu);
    }
    0
}

/// The CPUs online now: a snapshot that CPU hotplug may change at once
/// unless the caller holds the CPU hotplug lock (as [`Callbacks`] do).
pub fn online_mask() -> &'static crate::cpumask::Cpumask {
    // SAFETY: `__cpu_online_mask` is a static mask that lives as long as
    // the kernel; it is only ever read through a shared reference here.
    unsafe { crate::cpumask::Cpumask::from_raw(&raw const bindings::__cpu_online_mask) }
}
