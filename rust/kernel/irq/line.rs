// SPDX-License-Identifier: GPL-2.0

//! Disabling and enabling a requested interrupt from outside its
//! registration.
//!
//! A driver's debugfs files and other `'static` data cannot borrow the
//! interrupt registration they sit beside (it borrows the bound device), yet
//! may need to hold the interrupt off for a while, as `disable_irq()` and
//! `enable_irq()` do in C. A [`Line`] names a requested interrupt until its
//! owner, the registration's [`LineOwner`], frees the request; from then on
//! its calls fail with `ENODEV`.
//!
//! C header: [`include/linux/interrupt.h`](srctree/include/linux/interrupt.h)

use crate::{
    bindings, new_mutex,
    prelude::*,
    sync::{Arc, Mutex, MutexGuard},
};

/// A requested interrupt, by its Linux number, while it is requested.
#[derive(Clone)]
pub struct Line {
    irq: u32,
    /// `true` while a handler is registered on `irq` (invariant of
    /// [`LineOwner`]).
    requested: Arc<Mutex<bool>>,
}

/// The side of a [`Line`] that the interrupt's registration holds: dropped
/// before the request is freed, it ends every [`Line`] of it.
///
/// # Invariants
///
/// A handler is registered on `line.irq` until `self` is dropped, and
/// `line.requested` holds `true` until then.
pub struct LineOwner {
    line: Line,
}

impl LineOwner {
    /// The owner of the requested interrupt `irq`.
    ///
    /// # Safety
    ///
    /// A handler stays registered on `irq` until the result is dropped (it
    /// is dropped before the registration: a field before it, say).
    pub unsafe fn new(irq: u32) -> Result<Self> {
        let requested = Arc::pin_init(new_mutex!(true, "Line::requested"), GFP_KERNEL)?;
        // INVARIANT: The caller's promise; `requested` holds `true`.
        Ok(Self {
            line: Line { irq, requested },
        })
    }

    /// A [`Line`] naming the interrupt.
    pub fn line(&self) -> Line {
        self.line.clone()
    }
}

impl Drop for LineOwner {
    fn drop(&mut self) {
        // Waits for every `Disabled` guard (they hold the lock); no line
        // reaches the interrupt after this.
        *self.line.requested.lock() = false;
    }
}

impl Line {
    /// The Linux interrupt number (which names nothing of ours once the
    /// request is freed).
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Runs `f` with the interrupt's number while it stays requested;
    /// `ENODEV` once it is freed. `f` may sleep.
    pub fn with_irq<R>(&self, f: impl FnOnce(u32) -> Result<R>) -> Result<R> {
        let requested = self.requested.lock();
        if !*requested {
            return Err(ENODEV);
        }
        f(self.irq)
    }

    /// Disables the interrupt and waits for its running handlers to return
    /// (`disable_irq()`), until the guard is dropped (`enable_irq()`);
    /// `ENODEV` once the request is freed. One guard at a time: another
    /// call waits until the guard is dropped (a second call from its
    /// holder would never return). The request is not freed while a guard
    /// lives.
    ///
    /// The core disables lazily: the chip masks the interrupt when it
    /// arrives while disabled, and the core replays it (the chip's
    /// retrigger) on enabling. Sleeps, so it must not be called from the
    /// interrupt's own handlers, which it would wait for.
    pub fn disable(&self) -> Result<Disabled<'_>> {
        let requested = self.requested.lock();
        if !*requested {
            return Err(ENODEV);
        }
        // SAFETY: `irq` is requested while `requested` holds `true` under
        // the lock (invariant of `LineOwner`); the caller may sleep.
        unsafe { bindings::disable_irq(self.irq) };
        // INVARIANT: Disabled once more, just above.
        Ok(Disabled {
            _requested: requested,
            irq: self.irq,
        })
    }
}

/// A disabled interrupt, enabled again on drop.
///
/// # Invariants
///
/// `irq` was disabled once more by the `disable_irq()` that made `self`,
/// and stays requested while `_requested`, the lock, is held.
pub struct Disabled<'a> {
    _requested: MutexGuard<'a, bool>,
    irq: u32,
}

impl Drop for Disabled<'_> {
    fn drop(&mut self) {
        // SAFETY: `irq` is requested and was disabled once for `self` (type
        // invariant).
        unsafe { bindings::enable_irq(self.irq) };
    }
}
