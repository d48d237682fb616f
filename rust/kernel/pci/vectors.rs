// SPDX-License-Identifier: GPL-2.0

//! A PCI interrupt vector allocated together with its threaded handler.
//!
//! [`IrqVectorRegistration`] owns a device's vectors, and an
//! [`irq::ThreadedRegistration`] borrows the vector it is requested on, so a
//! driver cannot keep both in its device data (the second would borrow the
//! first). [`ThreadedVector`] keeps both, each in a [`Devres`] so that
//! neither outlives the device's binding, and frees them in the order
//! teardown needs: the handler before the vector.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use core::convert::Infallible;

use crate::{
    device::Bound,
    devres::Devres,
    irq::{self, line::Line, managed::ThreadedIrq, IrqRequest, ThreadedHandler},
    pci::{Device, IrqTypes, IrqVectorRegistration},
    prelude::*,
};

/// One interrupt vector of a PCI device (MSI-X or MSI, per `types`) with a
/// threaded handler on it, until it is dropped or the device is unbound.
///
/// # Invariants
///
/// `_vectors` holds the device's vector allocation; `irq` is the handler
/// on its first vector and is dropped before `_vectors` (field order).
pub struct ThreadedVector<T: ThreadedHandler + Send + 'static> {
    irq: ThreadedIrq<T>,
    /// `'static` stands for the device's binding, as in [`ThreadedIrq`].
    _vectors: Devres<IrqVectorRegistration<'static>>,
}

impl<T: ThreadedHandler + Send + 'static> ThreadedVector<T> {
    /// Allocates one vector of `dev` and requests `handler` on it.
    pub fn new(
        dev: &Device<Bound>,
        types: IrqTypes,
        flags: irq::Flags,
        name: &'static CStr,
        handler: impl PinInit<T, Error>,
    ) -> Result<Self> {
        let vectors = dev.alloc_irq_vectors(1, 1, types)?;
        let irq = IrqRequest::from(vectors.index(0)?).irq();
        // SAFETY: Lifetimes do not change a type's layout. The allocation
        // borrows `dev` while it is bound, and the `Devres` drops it when
        // `dev` is unbound at the latest.
        let vectors = unsafe {
            pin_init::cast_pin_init::<
                IrqVectorRegistration<'_>,
                IrqVectorRegistration<'static>,
                Infallible,
            >(vectors)
        };
        let vectors = Devres::new(dev.as_ref(), vectors)?;
        // SAFETY: `irq` is the first vector of `dev`, resolved from its
        // allocation just above.
        let request = unsafe { IrqRequest::new(dev.as_ref(), irq) };
        // SAFETY: `request` is an interrupt of `dev`, whose allocation
        // `vectors` keeps until `dev` is unbound; dropping `self`, or the
        // unbinding (which releases the newer `Devres` first), frees the
        // handler before the vector.
        let irq = unsafe { ThreadedIrq::new(dev.as_ref(), request, flags, name, handler)? };
        Ok(Self {
            irq,
            _vectors: vectors,
        })
    }

    /// A [`Line`] naming the vector's interrupt, for data that cannot
    /// borrow `self` (it stops working when `self` is dropped).
    pub fn line(&self) -> Line {
        self.irq.line()
    }
}
