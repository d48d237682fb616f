// SPDX-License-Identifier: GPL-2.0

//! Threaded interrupt handlers that cannot outlive their device's binding.
//!
//! [`ThreadedRegistration::new`] is unsafe: the registration borrows the
//! bound device, and one that is forgotten stays requested past that borrow,
//! after the device is unbound. A [`ThreadedIrq`] keeps the registration in
//! a [`Devres`] instead, as upstream's `irq::Registration` keeps its request
//! ("rust: irq: add support for non-threaded IRQs and handlers"): dropping
//! it frees the request, and so does unbinding the device, whichever comes
//! first. A driver keeps one in its device data, where field
//! order decides when the handler goes, with no promise to make.
//!
//! C header: [`include/linux/interrupt.h`](srctree/include/linux/interrupt.h)

use crate::{
    device::{Bound, Device},
    devres::Devres,
    irq::{
        self,
        line::{Line, LineOwner},
        IrqRequest, ThreadedHandler, ThreadedRegistration,
    },
    platform,
    prelude::*,
};

/// The registration [`ThreadedIrq`] keeps, with the owner of its [`Line`]s.
///
/// # Invariants
///
/// `line` is dropped before `registration` (field order).
#[pin_data]
struct Requested<'a, T: ThreadedHandler + 'a> {
    line: LineOwner,
    #[pin]
    registration: ThreadedRegistration<'a, T>,
}

/// A threaded handler requested on an interrupt of a bound device, until
/// it is dropped or the device is unbound.
pub struct ThreadedIrq<T: ThreadedHandler + Send + 'static> {
    /// `'static` stands for the device's binding: [`Devres`] drops the
    /// registration when the device is unbound at the latest.
    _requested: Devres<Requested<'static, T>>,
    line: Line,
}

impl<T: ThreadedHandler + Send + 'static> ThreadedIrq<T> {
    /// Requests `handler` on `request`.
    ///
    /// # Safety
    ///
    /// `request` names an interrupt of `dev` that stays valid until `dev`
    /// is unbound.
    pub(crate) unsafe fn new(
        dev: &Device<Bound>,
        request: IrqRequest<'_>,
        flags: irq::Flags,
        name: &'static CStr,
        handler: impl PinInit<T, Error>,
    ) -> Result<Self> {
        let irq = request.irq();
        let mut line = None;
        let requested = try_pin_init!(Requested {
            // SAFETY: The registration is pinned inside the `Devres`, which
            // drops it when `dev` is unbound if `self` has not by then: it
            // is never forgotten while `request` is valid.
            registration <- unsafe { ThreadedRegistration::new(request, flags, name, handler) },
            // SAFETY: The handler was registered just above, and `line` is
            // dropped before `registration`.
            line: unsafe { LineOwner::new(irq)? },
        })
        .pin_chain(|r| {
            line = Some(r.line.line());
            Ok(())
        });
        // SAFETY: Lifetimes do not change a type's layout. The registration's
        // lifetime is that of `dev`'s binding (the caller's guarantee for
        // `request`), and the `Devres` drops it when `dev` is unbound.
        let requested = unsafe {
            pin_init::cast_pin_init::<Requested<'_, T>, Requested<'static, T>, Error>(requested)
        };
        let requested = Devres::new(dev, requested)?;
        Ok(Self {
            _requested: requested,
            line: line.ok_or(EINVAL)?,
        })
    }

    /// A [`Line`] naming the interrupt, for data that cannot borrow `self`
    /// (it stops working when the request is freed).
    pub fn line(&self) -> Line {
        self.line.clone()
    }
}

impl platform::Device<Bound> {
    /// Requests the threaded `handler` on the device's interrupt `index`
    /// until the result is dropped or the device is unbound.
    pub fn threaded_irq_by_index<T: ThreadedHandler + Send + 'static>(
        &self,
        flags: irq::Flags,
        index: u32,
        name: &'static CStr,
        handler: impl PinInit<T, Error>,
    ) -> Result<ThreadedIrq<T>> {
        let request = self.irq_by_index(index)?;
        // SAFETY: `request` is an interrupt of this device, valid while it
        // is bound.
        unsafe { ThreadedIrq::new(self.as_ref(), request, flags, name, handler) }
    }
}
