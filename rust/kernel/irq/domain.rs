// SPDX-License-Identifier: GPL-2.0

//! IRQ domains: the interrupt numbers of an interrupt controller (or of a
//! level stacked on one) mapped to Linux interrupts.
//!
//! C header: [`include/linux/irqdomain.h`](srctree/include/linux/irqdomain.h)

use crate::{bindings, prelude::*};
use core::ptr::NonNull;

/// A reference to an IRQ domain that lives as long as the kernel (an
/// interrupt controller's, such as the IMSIC's).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IrqDomainRef(pub(crate) NonNull<bindings::irq_domain>);

// SAFETY: Interrupt-controller domains are never freed and the kernel
// serialises changes to them.
unsafe impl Send for IrqDomainRef {}
// SAFETY: As above.
unsafe impl Sync for IrqDomainRef {}

impl IrqDomainRef {
    /// # Safety
    ///
    /// `d` points to an IRQ domain that is never removed.
    pub unsafe fn from_raw(d: *mut bindings::irq_domain) -> Option<Self> {
        NonNull::new(d).map(Self)
    }

    /// The raw pointer.
    pub fn as_ptr(&self) -> *mut bindings::irq_domain {
        self.0.as_ptr()
    }

    /// The domain's name.
    pub fn name(&self) -> &CStr {
        // SAFETY: A live domain has a NUL-terminated name that lives as long.
        unsafe { CStr::from_char_ptr((*self.as_ptr()).name) }
    }
}
