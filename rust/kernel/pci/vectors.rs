// SPDX-License-Identifier: GPL-2.0

//! A PCI interrupt vector allocated together with its threaded handler.
//!
//! [`IrqVectorRegistration`] owns a device's vectors, and an
//! [`irq::ThreadedRegistration`] borrows the vector it is requested on, so a
//! driver cannot keep both in its device data (the second would borrow the
//! first). [`ThreadedVector`] owns both, in the order teardown needs: the
//! handler is freed before the vector.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use crate::{
    bindings,
    device::Bound,
    irq::{
        self,
        line::{Line, LineOwner},
        IrqRequest, ThreadedHandler, ThreadedRegistration,
    },
    pci::{Device, IrqTypes, IrqVectorRegistration},
    prelude::*,
};

/// One interrupt vector of a PCI device (MSI-X or MSI, per `types`) with a
/// threaded handler on it.
///
/// # Invariants
///
/// `_vectors` holds the device's vector allocation; `registration` is the
/// handler on its first vector and is dropped before `_vectors`, and `line`
/// before `registration` (field order).
#[pin_data]
pub struct ThreadedVector<'a, T: ThreadedHandler + 'a> {
    line: LineOwner,
    #[pin]
    registration: ThreadedRegistration<'a, T>,
    _vectors: IrqVectorRegistration<'a>,
    irq: u32,
}

impl<'a, T: ThreadedHandler + 'a> ThreadedVector<'a, T> {
    /// Allocates one vector of `dev` and requests `handler` on it.
    ///
    /// # Safety
    ///
    /// Callers must not `mem::forget()` the result or otherwise prevent its
    /// [`Drop`] implementation from running (as for [`ThreadedRegistration`]).
    pub unsafe fn new(
        dev: &'a Device<Bound>,
        types: IrqTypes,
        flags: irq::Flags,
        name: &'static CStr,
        handler: impl PinInit<T, Error> + 'a,
    ) -> impl PinInit<Self, Error> + 'a {
        pin_init::pin_init_scope(move || {
            let vectors = dev.alloc_irq_vectors(1, 1, types)?;
            // SAFETY: `dev` is a bound PCI device that has just allocated a vector.
            let irq = unsafe { bindings::pci_irq_vector(dev.as_raw(), 0) };
            if irq < 0 {
                return Err(Error::from_errno(irq));
            }
            // CAST: non-negative, checked above.
            let irq_no = irq as u32;
            Ok(try_pin_init!(Self {
                _vectors: vectors,
                irq: irq_no,
                registration <- {
                    // SAFETY: `irq` is the first vector of `dev`, which `_vectors` keeps
                    // allocated for as long as the registration (dropped first) lives.
                    let request = unsafe { IrqRequest::new(dev.as_ref(), irq_no) };
                    // SAFETY: The registration is a pinned field of `Self`, whose
                    // caller promises not to forget it.
                    unsafe { ThreadedRegistration::new(request, flags, name, handler) }
                },
                // SAFETY: The handler was registered just above, and `line`
                // is dropped before `registration`.
                line: unsafe { LineOwner::new(irq_no)? },
            }))
        })
    }

    /// The handler.
    pub fn handler(&self) -> &T {
        self.registration.handler()
    }

    /// The Linux interrupt number of the vector.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// A [`Line`] naming the vector's interrupt, for data that cannot
    /// borrow `self` (it stops working when `self` is dropped).
    pub fn line(&self) -> Line {
        self.line.line()
    }
}
