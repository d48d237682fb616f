// SPDX-License-Identifier: GPL-2.0

//! Disabling and enabling a requested interrupt from outside its
//! registration.
//!
//! A driver's debugfs files and other `'static` data cannot borrow the
//! interrupt registration they sit beside (it borrows the bound device), yet
//! may need to hold the interrupt off for a while, as `disable_irq()` and
//! `enable_irq()` do in C. A [`Line`] names a requested interrupt for as
//! long as its holder promises the request lives.
//!
//! C header: [`include/linux/interrupt.h`](srctree/include/linux/interrupt.h)

use crate::bindings;

/// A requested interrupt, by its Linux number.
///
/// # Invariants
///
/// `irq` is requested (a handler is registered on it) for as long as `self`
/// lives.
pub struct Line {
    irq: u32,
}

impl Line {
    /// Names the requested interrupt `irq`.
    ///
    /// # Safety
    ///
    /// A handler stays registered on `irq` until the result is dropped (it
    /// is dropped before the registration: a field before it, say).
    pub unsafe fn new(irq: u32) -> Self {
        // INVARIANT: The caller's promise.
        Self { irq }
    }

    /// The Linux interrupt number.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Disables the interrupt and waits for its running handlers to return
    /// (`disable_irq()`), until the guard is dropped (`enable_irq()`).
    /// Disabling nests: the interrupt is enabled when the last guard goes.
    ///
    /// The core disables lazily: the chip masks the interrupt when it
    /// arrives while disabled, and the core replays it (the chip's
    /// retrigger) on enabling. Sleeps, so it must not be called from the
    /// interrupt's own handlers, which it would wait for.
    pub fn disable(&self) -> Disabled<'_> {
        // SAFETY: `irq` is requested (type invariant); the caller may sleep.
        unsafe { bindings::disable_irq(self.irq) };
        Disabled { line: self }
    }
}

/// A disabled interrupt, enabled again on drop.
///
/// # Invariants
///
/// `line` was disabled once more by the `disable_irq()` that made `self`.
pub struct Disabled<'a> {
    line: &'a Line,
}

impl Drop for Disabled<'_> {
    fn drop(&mut self) {
        // SAFETY: `irq` is requested (`Line`'s invariant) and was disabled
        // once for `self` (type invariant).
        unsafe { bindings::enable_irq(self.line.irq) };
    }
}
