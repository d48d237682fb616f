// SPDX-License-Identifier: GPL-2.0

//! A raw spinlock taken with interrupts saved and disabled
//! (`raw_spin_lock_irqsave`).
//!
//! What code run by the IRQ core under an interrupt descriptor's lock needs
//! (irq_chip callbacks such as `irq_set_affinity`, which may run in hard
//! interrupt context): a `spinlock_t` there is an invalid wait context
//! (it sleeps on PREEMPT_RT, and lockdep says so everywhere).
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h)

use super::{Backend, Lock};
use crate::{bindings, ffi::c_ulong};

/// Creates a [`RawSpinLockIrq`] initialiser with the given name and a new
/// lock class.
#[macro_export]
macro_rules! new_raw_spinlock_irq {
    ($inner:expr $(, $name:literal)? $(,)?) => {
        $crate::sync::lock::raw_spinlock::RawSpinLockIrq::new(
            $inner, $crate::optional_name!($($name)?), $crate::static_lock_class!())
    };
}
pub use new_raw_spinlock_irq;

/// A `raw_spinlock_t` held with local interrupts disabled, their previous
/// state restored on unlock. Keep what it protects short: it is never
/// preempted, even on PREEMPT_RT.
pub type RawSpinLockIrq<T> = Lock<T, RawSpinLockIrqBackend>;

/// The kernel `raw_spinlock_t` backend of [`RawSpinLockIrq`].
pub struct RawSpinLockIrqBackend;

// SAFETY: The underlying `raw_spinlock_t` ensures mutual exclusion; the
// guard state carries the interrupt flags `unlock` restores. `relock` uses
// the default implementation, which locks the same way.
unsafe impl Backend for RawSpinLockIrqBackend {
    type State = bindings::raw_spinlock_t;
    type GuardState = c_ulong;

    #[inline]
    unsafe fn init(
        ptr: *mut Self::State,
        name: *const crate::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: The safety requirements ensure that `ptr` is valid for
        // writes, and `name` and `key` valid for reads indefinitely.
        unsafe { bindings::__raw_spin_lock_init_irqsave(ptr, name, key) }
    }

    #[inline]
    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: `ptr` points to an initialised lock (safety requirements).
        unsafe { bindings::raw_spin_lock_irqsave(ptr) }
    }

    #[inline]
    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        let mut flags: c_ulong = 0;
        // SAFETY: `ptr` points to an initialised lock; `flags` is writable.
        (unsafe { bindings::raw_spin_trylock_irqsave(ptr, &mut flags) } != 0).then_some(flags)
    }

    #[inline]
    unsafe fn unlock(ptr: *mut Self::State, flags: &Self::GuardState) {
        // SAFETY: The caller owns the lock, taken by `lock` or `try_lock`,
        // which returned `flags`.
        unsafe { bindings::raw_spin_unlock_irqrestore(ptr, *flags) }
    }

    #[inline]
    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: `ptr` points to an initialised lock.
        unsafe { bindings::raw_spin_assert_is_held(ptr) }
    }
}
