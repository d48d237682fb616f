// SPDX-License-Identifier: GPL-2.0

//! PCI/IMS: a device's own interrupt message store, as the secondary
//! per-device MSI domain of a PCI device (`pci_create_ims_domain()`).
//!
//! A driver describes its store with an [`ImsChip`]: how a slot gets a
//! message, is masked and unmasked, is enabled with a PASID when its
//! interrupt starts and is cleared when it shuts down. An [`ImsDomain`]
//! creates the device's IMS domain from that description on the device's
//! MSI parent (on RISC-V the IOMMU's remapping domain, so IMS messages are
//! remapped or translated like the device's MSIs) and hands out interrupts
//! at free slots, each with a hard-interrupt handler that calls
//! [`ImsChip::handle`].
//!
//! Thomas Gleixner's rules from the IMS reviews (the IDXD IMS series, v6, June
//! 2021, and his v6.2 per-device MSI domain series) are the design:
//! the PASID belongs to the device ([`ImsDomain::set_pasid`]) and is known
//! when an interrupt is allocated: it travels in the MSI descriptor's
//! instance cookie, not in a side channel; the chip programs it when the
//! interrupt starts up and clears it at shutdown. Changing it afterwards
//! ([`ImsDomain::change_pasid`]) is only allowed while the interrupt is
//! disabled and masked, read and changed under its descriptor lock, so no
//! message can leave the slot half changed.
//!
//! C headers: [`include/linux/msi.h`](srctree/include/linux/msi.h),
//! [`include/linux/pci.h`](srctree/include/linux/pci.h)

use crate::{
    alloc::flags::GFP_KERNEL,
    bindings,
    device::Bound,
    devres,
    irq::{msi::MsiMsg, IrqReturn},
    new_mutex, pci,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
};
use core::{ffi::c_void, marker::PhantomData, ptr, ptr::NonNull};

/// What a driver's interrupt message store does (see the module
/// documentation). Slots are numbered from 0 to the domain's size.
///
/// # Examples
///
/// A store of one 32-bit control word per slot (mask in bit 0, enable in
/// bit 1, the PASID above bit 12), standing in for device memory:
///
/// ```
/// use kernel::{
///     irq::{msi::MsiMsg, IrqReturn},
///     pci::ims::ImsChip,
///     prelude::*,
///     sync::atomic::{Atomic, Relaxed},
/// };
///
/// struct Store {
///     ctrl: KVec<Atomic<u32>>,
///     msgs: KVec<(Atomic<u64>, Atomic<u32>)>,
/// }
///
/// impl ImsChip for Store {
///     fn write_msg(&self, slot: u32, msg: MsiMsg) {
///         let (addr, data) = &self.msgs[slot as usize];
///         addr.store(msg.address, Relaxed);
///         data.store(msg.data, Relaxed);
///     }
///     fn mask(&self, slot: u32) {
///         let c = &self.ctrl[slot as usize];
///         c.store(c.load(Relaxed) | 1, Relaxed);
///     }
///     fn unmask(&self, slot: u32) -> bool {
///         let c = &self.ctrl[slot as usize];
///         c.store(c.load(Relaxed) & !1, Relaxed);
///         false
///     }
///     fn startup(&self, slot: u32, pasid: u32) {
///         self.ctrl[slot as usize].store(pasid << 12 | 2, Relaxed);
///     }
///     fn shutdown(&self, slot: u32) {
///         self.ctrl[slot as usize].store(1, Relaxed);
///     }
///     fn set_pasid(&self, slot: u32, pasid: u32) {
///         let c = &self.ctrl[slot as usize];
///         c.store(pasid << 12 | (c.load(Relaxed) & 0xfff), Relaxed);
///     }
///     fn handle(&self, _slot: u32) -> IrqReturn {
///         IrqReturn::Handled
///     }
/// }
///
/// let mut ctrl = KVec::new();
/// let mut msgs = KVec::new();
/// for _ in 0..2 {
///     ctrl.push(Atomic::new(1), GFP_KERNEL)?;
///     msgs.push((Atomic::new(0), Atomic::new(0)), GFP_KERNEL)?;
/// }
/// let s = Store { ctrl, msgs };
/// s.write_msg(1, MsiMsg { address: 0x2800_0000, data: 40 });
/// s.startup(1, 7);
/// s.mask(1);
/// s.set_pasid(1, 9);
/// assert_eq!(s.ctrl[1].load(Relaxed), 9 << 12 | 3);
/// s.shutdown(1);
/// assert_eq!(s.ctrl[1].load(Relaxed), 1);
/// assert_eq!(s.msgs[1].1.load(Relaxed), 40);
/// # Ok::<(), Error>(())
/// ```
///
/// [`ImsChip::write_msg`], [`ImsChip::mask`], [`ImsChip::unmask`] and
/// [`ImsChip::set_pasid`] may be called in atomic context (with the
/// interrupt's descriptor lock held, for affinity changes too) and must not
/// sleep; so must [`ImsChip::handle`], which runs in hard interrupt context.
pub trait ImsChip: Send + Sync + 'static {
    /// Writes the message of `slot` (the parent composed it; it changes with
    /// the interrupt's affinity).
    fn write_msg(&self, slot: u32, msg: MsiMsg);
    /// Masks `slot`: the device must not send its message.
    fn mask(&self, slot: u32);
    /// Unmasks `slot`; returns whether the slot held a message back while
    /// masked, which the device sends now (the interrupt is then
    /// retriggered where its message points: `irq_chip_retrigger_hierarchy()`).
    fn unmask(&self, slot: u32) -> bool;
    /// The interrupt of `slot` starts: programs the PASID its writes carry
    /// and enables the slot (the message was written before).
    fn startup(&self, slot: u32, pasid: u32);
    /// The interrupt of `slot` shuts down: clears the slot (message, PASID,
    /// enable).
    fn shutdown(&self, slot: u32);
    /// Reprograms the PASID of `slot`, whose interrupt is disabled and
    /// masked; called with the interrupt's descriptor lock held, so it
    /// must not sleep either.
    fn set_pasid(&self, slot: u32, pasid: u32);
    /// The interrupt of `slot` fired.
    fn handle(&self, slot: u32) -> IrqReturn;
}

/// The largest PASID (20 bits, PCIe).
pub const PASID_MAX: u32 = (1 << 20) - 1;

/// An allocated IMS interrupt and the handler requested on it.
///
/// # Invariants
///
/// `virq` is an interrupt allocated in the domain, with a handler whose
/// `dev_id` is `cookie`, from its creation in [`ImsDomain::alloc`] until
/// [`Inner::free_vector`] consumes it: whoever holds a `&Vector` outside
/// that function holds an allocated interrupt.
struct Vector {
    virq: u32,
    /// Masked through [`ImsDomain::mask`].
    masked: bool,
    /// The `dev_id` of its handler: the chip and the slot.
    cookie: KBox<HandlerCookie>,
}

struct HandlerCookie {
    chip: *const c_void,
    slot: u32,
}

/// The descriptor of an allocated IMS interrupt, with its lock held.
///
/// The IRQ core changes an interrupt's state (started, disabled, masked)
/// and calls its chip's callbacks under the descriptor's lock
/// (`desc->lock`; an IMS chip has no bus lock), so what is read and
/// written under a `LockedDesc` is consistent with every such change.
///
/// # Invariants
///
/// `desc` is the descriptor of an interrupt that stays allocated while
/// `'a` lasts (the [`Vector`] it was locked through is borrowed for
/// `'a`). Its lock is held, taken with `raw_spin_lock_irqsave()`, which
/// saved `flags`.
struct LockedDesc<'a> {
    desc: NonNull<bindings::irq_desc>,
    flags: crate::ffi::c_ulong,
    _vector: PhantomData<&'a Vector>,
}

impl<'a> LockedDesc<'a> {
    /// Locks the descriptor of `vec`'s interrupt; spins, with interrupts
    /// off until the guard is dropped.
    fn lock(vec: &'a Vector) -> Result<Self> {
        // SAFETY: `vec.virq` is allocated (type invariant of `Vector`).
        let desc = NonNull::new(unsafe { bindings::irq_to_desc(vec.virq) }).ok_or(ENOENT)?;
        // SAFETY: The descriptor lives while its interrupt is allocated,
        // for `'a`; its lock is a raw spinlock initialised with it.
        let flags = unsafe { bindings::raw_spin_lock_irqsave(&raw mut (*desc.as_ptr()).lock) };
        // INVARIANT: locked just above; `vec` is borrowed for `'a`.
        Ok(Self {
            desc,
            flags,
            _vector: PhantomData,
        })
    }

    fn irq_data(&self) -> *mut bindings::irq_data {
        // SAFETY: `desc` is live (type invariant); this only takes the
        // address of a field.
        unsafe { &raw mut (*self.desc.as_ptr()).irq_data }
    }

    /// Whether the interrupt is disabled: `disable_irq()` without its
    /// `enable_irq()` yet, or shut down. The core sets and clears this
    /// under the lock only (`irq_disable()`, `irq_enable()`,
    /// `irq_startup()`, `irq_shutdown()`), and no flow handler unmasks a
    /// disabled interrupt.
    fn disabled(&self) -> bool {
        // SAFETY: The interrupt's top-level data, live (type invariant).
        unsafe { bindings::irqd_irq_disabled(self.irq_data()) }
    }

    /// Whether the interrupt is masked at its chip: by its driver
    /// (through `disable_irq()` with `IRQ_DISABLE_UNLAZY`) or, for a
    /// moment, by a flow handler.
    fn masked(&self) -> bool {
        // SAFETY: As in `disabled`.
        unsafe { bindings::irqd_irq_masked(self.irq_data()) }
    }

    /// Sets the instance cookie of the interrupt's MSI descriptor, which
    /// the chip's startup reads under this lock.
    fn set_icookie(&mut self, value: u64) {
        // SAFETY: The interrupt is allocated in an MSI domain, so it has an
        // MSI descriptor, freed only with the interrupt (type invariant);
        // its data is written under the descriptor lock, which we hold.
        unsafe {
            let desc = (*(*self.irq_data()).common).msi_desc;
            (*desc).__bindgen_anon_1.data.icookie.value = value;
        }
    }
}

impl Drop for LockedDesc<'_> {
    fn drop(&mut self) {
        // SAFETY: Locked with these flags and live (type invariant).
        unsafe {
            bindings::raw_spin_unlock_irqrestore(&raw mut (*self.desc.as_ptr()).lock, self.flags)
        };
    }
}

/// The IMS domain of a bound PCI device and the interrupts allocated in it.
///
/// The domain goes when this is dropped or when the device is unbound,
/// whichever comes first: a driver may keep it where nothing ties it to
/// the binding (in the data of its debugfs files, say). Once the device is
/// unbound, every call fails with `ENODEV`.
#[pin_data(PinnedDrop)]
pub struct ImsDomain<T: ImsChip> {
    inner: Arc<Inner<T>>,
}

/// What an [`ImsDomain`] and the device-managed action that removes it at
/// unbind share.
///
/// # Invariants
///
/// While `vectors` holds `Some`, `pdev` is bound (the action that removes
/// the domain at unbind takes the lock and leaves `None`), its secondary
/// MSI domain exists and was created by [`ImsDomain::new`] from a template
/// whose callbacks take `chip` (`Arc::as_ptr`) as their domain data, and
/// every `Some` entry is an interrupt allocated in it at that slot, with a
/// handler requested whose `dev_id` is the entry's cookie. `None` means the
/// domain is removed.
#[pin_data]
struct Inner<T: ImsChip> {
    pdev: ARef<pci::Device>,
    chip: Arc<T>,
    name: &'static CStr,
    slots: u32,
    /// Slot → vector; changed by allocation and freeing, which sleep.
    #[pin]
    vectors: Mutex<Option<KVec<Option<Vector>>>>,
    /// The PASID interrupts allocated from now on carry.
    #[pin]
    pasid: Mutex<u32>,
}

// SAFETY: The raw pointers in the cookies point to `chip`, which is
// `Send + Sync`; everything else is behind a mutex.
unsafe impl<T: ImsChip> Send for Inner<T> {}
// SAFETY: As above.
unsafe impl<T: ImsChip> Sync for Inner<T> {}

/// Removes the domain when the device is unbound (a device-managed
/// resource).
struct RemoveAtUnbind<T: ImsChip>(Arc<Inner<T>>);

impl<T: ImsChip> Drop for RemoveAtUnbind<T> {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// The entry of `slot` in the domain's vectors (taken under their lock):
/// `ENODEV` if the domain is gone, `EINVAL` if `slot` is out of range.
fn slot_entry(
    vectors: &mut Option<KVec<Option<Vector>>>,
    slot: u32,
) -> Result<&mut Option<Vector>> {
    vectors
        .as_mut()
        .ok_or(ENODEV)?
        .get_mut(slot as usize)
        .ok_or(EINVAL)
}

impl<T: ImsChip> Inner<T> {
    /// Frees every interrupt and removes the domain, unless it is gone.
    fn remove(&self) {
        let mut v = self.vectors.lock();
        let Some(vectors) = (*v).as_mut() else {
            return;
        };
        self.free_every(vectors);
        *v = None;
        // SAFETY: The device is bound and the domain exists (type invariant,
        // `vectors` held `Some` under the lock); no interrupt is left in it,
        // and nothing uses `chip` through it after it is removed.
        unsafe { bindings::pci_remove_ims_domain(self.pdev.as_raw()) };
    }

    /// Frees every interrupt of `vectors`, the domain's (taken under its
    /// lock, with the domain present); returns how many there were.
    fn free_every(&self, vectors: &mut KVec<Option<Vector>>) -> usize {
        let mut n = 0;
        for (slot, entry) in vectors.iter_mut().enumerate() {
            if let Some(vec) = entry.take() {
                // CAST: slots fit a `u32` (the domain size is one).
                self.free_vector(slot as u32, vec);
                n += 1;
            }
        }
        n
    }

    /// Frees `vec`, at `slot`, which was taken out of `vectors` with the
    /// domain present, under the lock still held.
    fn free_vector(&self, slot: u32, vec: Vector) {
        // SAFETY: The handler was requested with this cookie (type
        // invariant); `free_irq` waits for running handlers.
        unsafe { bindings::free_irq(vec.virq, ptr::from_ref(&*vec.cookie).cast_mut().cast()) };
        // CAST: slots and interrupt numbers fit an `int`.
        let map = bindings::msi_map {
            index: slot as i32,
            virq: vec.virq as i32,
        };
        // SAFETY: Allocated in our domain at `slot`, no handler any more;
        // the device is bound (the caller holds the lock with the domain
        // present).
        unsafe { bindings::pci_ims_free_irq(self.pdev.as_raw(), map) };
    }
}

impl<T: ImsChip> ImsDomain<T> {
    /// Creates the IMS domain of `pdev` with `slots` slots handled by `chip`;
    /// `name` names the chip and the interrupts' handlers. `EOPNOTSUPP` if
    /// the device's MSI parent does not support PCI/IMS. A device has one
    /// IMS domain: creating a second while the first lives fails (`EINVAL`,
    /// and the MSI core warns).
    pub fn new<'a>(
        pdev: &'a pci::Device<Bound>,
        slots: u32,
        name: &'static CStr,
        chip: Arc<T>,
    ) -> impl PinInit<Self, Error> + 'a {
        pin_init::pin_init_scope(move || {
            if slots == 0 {
                return Err(EINVAL);
            }
            Self::check(pdev)?;
            let mut vectors = KVec::with_capacity(slots as usize, GFP_KERNEL)?;
            for _ in 0..slots {
                vectors.push(None, GFP_KERNEL)?;
            }
            let pasid = new_mutex!(0, "ImsDomain::pasid");
            // SAFETY: All-zero is a valid template; its callbacks are set
            // below, the rest is left to the MSI core's defaults.
            let mut t: bindings::msi_domain_template = unsafe { core::mem::zeroed() };
            t.chip.name = name.as_char_ptr();
            t.chip.irq_write_msi_msg = Some(Self::write_msg_callback);
            t.chip.irq_mask = Some(Self::mask_callback);
            t.chip.irq_unmask = Some(Self::unmask_callback);
            t.chip.irq_startup = Some(Self::startup_callback);
            t.chip.irq_shutdown = Some(Self::shutdown_callback);
            // CAST: a flag of `unsigned long flags`.
            t.chip.flags = bindings::IRQCHIP_SKIP_SET_WAKE as crate::ffi::c_ulong;
            // The core's default leaves every interrupt's hardware number
            // at 0; a device domain's is the slot (the MSI index), as for
            // PCI/MSI-X.
            t.ops.set_desc = Some(Self::set_desc_callback);
            t.info.bus_token = bindings::irq_domain_bus_token_DOMAIN_BUS_PCI_DEVICE_IMS;
            t.info.flags =
                bindings::MSI_FLAG_ALLOC_SIMPLE_MSI_DESCS | bindings::MSI_FLAG_FREE_MSI_DESCS;
            // SAFETY: `pdev` is bound; the template is complete and copied
            // by the call; the domain data, `chip`, lives in `Inner`, which
            // removes the domain before dropping it.
            let ok = unsafe {
                bindings::pci_create_ims_domain(
                    pdev.as_raw(),
                    &t,
                    slots,
                    Arc::as_ptr(&chip).cast_mut().cast(),
                )
            };
            if !ok {
                return Err(EINVAL);
            }
            let bound = pdev;
            let pdev: &pci::Device = pdev;
            // INVARIANT: created just above from our template, with no
            // interrupt yet; `pdev` is bound, and the action registered
            // next removes the domain at unbind.
            let inner = Arc::pin_init(
                try_pin_init!(Inner {
                    pdev: pdev.into(),
                    chip,
                    name,
                    slots,
                    vectors <- new_mutex!(Some(vectors), "ImsDomain::vectors"),
                    pasid <- pasid,
                }),
                GFP_KERNEL,
            );
            let inner = match inner {
                Ok(inner) => inner,
                Err(e) => {
                    // SAFETY: Created above, without interrupts; `pdev` is
                    // bound.
                    unsafe { bindings::pci_remove_ims_domain(pdev.as_raw()) };
                    return Err(e);
                }
            };
            // On failure the action is dropped at once, removing the domain.
            devres::register(bound.as_ref(), RemoveAtUnbind(inner.clone()), GFP_KERNEL)?;
            Ok(try_pin_init!(Self { inner }))
        })
    }

    /// Runs `f` on the device, bound for as long as it runs; `ENODEV` once
    /// it is unbound.
    pub fn with_device<R>(&self, f: impl FnOnce(&pci::Device<Bound>) -> Result<R>) -> Result<R> {
        let v = self.inner.vectors.lock();
        if v.is_none() {
            return Err(ENODEV);
        }
        // SAFETY: `Device<Ctx>` is a transparent wrapper whatever `Ctx`; the
        // device is bound while `vectors` holds `Some` under the lock, which
        // is held until `f` returns (invariant of `Inner`).
        let dev = unsafe {
            &*ptr::from_ref::<pci::Device>(&self.inner.pdev).cast::<pci::Device<Bound>>()
        };
        f(dev)
    }

    /// `EOPNOTSUPP` unless the device's MSI parent supports PCI/IMS.
    fn check(pdev: &pci::Device<Bound>) -> Result {
        let dev = pdev.as_ref().as_raw();
        // SAFETY: `dev` is a bound device: its MSI parent, if any, is a live
        // domain whose parent operations are static.
        unsafe {
            let parent = bindings::dev_get_msi_domain(dev);
            if parent.is_null()
                || (*parent).msi_parent_ops.is_null()
                || (*(*parent).msi_parent_ops).supported_flags & bindings::MSI_FLAG_PCI_IMS == 0
            {
                return Err(EOPNOTSUPP);
            }
        }
        Ok(())
    }

    /// Bytes this domain keeps per slot (its vector entry and, for an
    /// allocated slot, the handler's cookie).
    pub const BYTES_PER_SLOT: usize =
        core::mem::size_of::<Option<Vector>>() + core::mem::size_of::<HandlerCookie>();

    /// The chip.
    pub fn chip(&self) -> &Arc<T> {
        &self.inner.chip
    }

    /// Sets the device's PASID: interrupts allocated from now on carry it.
    pub fn set_pasid(&self, pasid: u32) -> Result {
        if pasid > PASID_MAX {
            return Err(EINVAL);
        }
        *self.inner.pasid.lock() = pasid;
        Ok(())
    }

    /// The device's PASID.
    pub fn pasid(&self) -> u32 {
        *self.inner.pasid.lock()
    }

    /// Allocates an interrupt at a free slot, with the device's PASID, and
    /// requests its handler; returns the slot and the Linux interrupt
    /// number. `ENOSPC` when every slot is taken.
    pub fn alloc(&self) -> Result<(u32, u32)> {
        let this = &*self.inner;
        let pasid = *this.pasid.lock();
        let mut v = this.vectors.lock();
        let v = (*v).as_mut().ok_or(ENODEV)?;
        let mut icookie = bindings::msi_instance_cookie {
            value: u64::from(pasid),
        };
        // SAFETY: `pdev` is bound and has our IMS domain (`vectors` holds
        // `Some` under the lock: invariant of `Inner`); the cookie is copied
        // into the descriptor.
        let map =
            unsafe { bindings::pci_ims_alloc_irq(this.pdev.as_raw(), &mut icookie, ptr::null()) };
        if map.index < 0 {
            // The index space is full when the xarray is (`EBUSY`).
            return Err(if map.index == -(bindings::EBUSY as i32) {
                ENOSPC
            } else {
                Error::from_errno(map.index)
            });
        }
        // CAST: non-negative, checked above; the core allocates below the
        // domain's size, which is `v.len()`.
        let slot = map.index as u32;
        let virq = map.virq as u32;
        let res = (|| {
            let entry = v.get_mut(slot as usize).ok_or(EINVAL)?;
            // Masking is the slot's: `disable_irq()` must reach the chip at
            // once rather than when the next interrupt comes.
            // CAST: a flag of `unsigned long set`.
            let unlazy = bindings::IRQ_DISABLE_UNLAZY as crate::ffi::c_ulong;
            // SAFETY: `virq` was just allocated.
            unsafe { bindings::irq_modify_status(virq, 0, unlazy) };
            let cookie = KBox::new(
                HandlerCookie {
                    chip: Arc::as_ptr(&this.chip).cast(),
                    slot,
                },
                GFP_KERNEL,
            )?;
            // SAFETY: `virq` was just allocated for this device; the cookie
            // lives in `vectors` until `free_irq` in `free_slot`.
            crate::error::to_result(unsafe {
                bindings::request_irq(
                    virq,
                    Some(Self::handler_callback),
                    0,
                    this.name.as_char_ptr(),
                    ptr::from_ref(&*cookie).cast_mut().cast(),
                )
            })?;
            *entry = Some(Vector {
                virq,
                cookie,
                masked: false,
            });
            Ok(())
        })();
        if let Err(e) = res {
            // SAFETY: Allocated above, no handler on it; the device is still
            // bound (we hold the lock).
            unsafe { bindings::pci_ims_free_irq(this.pdev.as_raw(), map) };
            return Err(e);
        }
        Ok((slot, virq))
    }

    /// Frees the interrupt at `slot`: its handler, then the interrupt
    /// (shut down: the chip clears the slot). `ENOENT` if none.
    pub fn free(&self, slot: u32) -> Result {
        let mut v = self.inner.vectors.lock();
        let entry = slot_entry(&mut v, slot)?.take().ok_or(ENOENT)?;
        self.inner.free_vector(slot, entry);
        Ok(())
    }

    /// Frees every interrupt; returns how many there were.
    pub fn free_all(&self) -> usize {
        let mut v = self.inner.vectors.lock();
        (*v).as_mut().map_or(0, |v| self.inner.free_every(v))
    }

    /// Calls `f` with the slot and Linux interrupt number of every allocated
    /// interrupt, in slot order, under one lock; stops at `f`'s first error.
    pub fn try_for_each_irq<E>(
        &self,
        mut f: impl FnMut(u32, u32) -> core::result::Result<(), E>,
    ) -> core::result::Result<(), E> {
        for (slot, v) in self.inner.vectors.lock().iter().flatten().enumerate() {
            if let Some(v) = v {
                // CAST: slots fit a `u32` (the domain size is one).
                f(slot as u32, v.virq)?;
            }
        }
        Ok(())
    }

    /// How many interrupts are allocated.
    pub fn count(&self) -> usize {
        self.inner
            .vectors
            .lock()
            .iter()
            .flatten()
            .filter(|e| e.is_some())
            .count()
    }

    /// The number of slots.
    pub fn slots(&self) -> u32 {
        self.inner.slots
    }

    /// Masks `slot`'s interrupt (`disable_irq()`: waits for its handler);
    /// `EALREADY` if it is masked.
    pub fn mask(&self, slot: u32) -> Result {
        let mut v = self.inner.vectors.lock();
        let vec = slot_entry(&mut v, slot)?.as_mut().ok_or(ENOENT)?;
        if vec.masked {
            return Err(EALREADY);
        }
        // SAFETY: `virq` is allocated with a handler of ours.
        unsafe { bindings::disable_irq(vec.virq) };
        vec.masked = true;
        Ok(())
    }

    /// Unmasks `slot`'s interrupt (`enable_irq()`); `EALREADY` unless
    /// [`ImsDomain::mask`] masked it.
    pub fn unmask(&self, slot: u32) -> Result {
        let mut v = self.inner.vectors.lock();
        let vec = slot_entry(&mut v, slot)?.as_mut().ok_or(ENOENT)?;
        if !vec.masked {
            return Err(EALREADY);
        }
        // SAFETY: As above, and balanced with the `disable_irq` of `mask`.
        unsafe { bindings::enable_irq(vec.virq) };
        vec.masked = false;
        Ok(())
    }

    /// Changes the PASID of `slot`'s interrupt, which must be masked by
    /// [`ImsDomain::mask`] (disabled): `EBUSY` otherwise, `ENOENT` if there
    /// is none.
    ///
    /// The rule (no message leaves the slot with its PASID half changed)
    /// holds by this invariant: the PASID is written only while the
    /// interrupt is *disabled and masked*, both read under its descriptor
    /// lock, with the descriptor's cookie and the slot written under that
    /// same lock. A disabled interrupt stays masked until `enable_irq()`,
    /// which takes the lock: `handle_edge_irq()` unmasks a pending
    /// interrupt only if it is not disabled, `handle_fasteoi_irq()` the
    /// same (`cond_unmask_eoi_irq()`), and a disabled interrupt that
    /// arrives is left masked (`kernel/irq/chip.c`). Masked alone is not
    /// enough: when an interrupt arrives on one CPU while it is in
    /// progress on another, `handle_edge_irq()` masks it and marks it
    /// pending, and the other CPU unmasks it and runs its handler again.
    /// It is live all along, and its PASID must not change.
    pub fn change_pasid(&self, slot: u32, pasid: u32) -> Result {
        if pasid > PASID_MAX {
            return Err(EINVAL);
        }
        let mut v = self.inner.vectors.lock();
        let vec = slot_entry(&mut v, slot)?.as_ref().ok_or(ENOENT)?;
        let mut desc = LockedDesc::lock(vec)?;
        if !(desc.disabled() && desc.masked()) {
            return Err(EBUSY);
        }
        desc.set_icookie(u64::from(pasid));
        self.inner.chip.set_pasid(slot, pasid);
        Ok(())
    }

    /// The chip, the slot and the descriptor of the interrupt `d`.
    ///
    /// # Safety
    ///
    /// `d` is the `irq_data` of an interrupt of an IMS domain created by
    /// [`ImsDomain::new`] for this `T`, not yet removed.
    unsafe fn parts<'b>(d: *mut bindings::irq_data) -> (&'b T, u32, *mut bindings::msi_desc) {
        // SAFETY: The device domain's host data is its `msi_domain_info`,
        // whose data is our chip (type invariant); the descriptor exists
        // for MSI domain interrupts.
        unsafe {
            let info = (*(*d).domain).host_data.cast::<bindings::msi_domain_info>();
            let chip = &*(*info).data.cast::<T>();
            let desc = (*(*d).common).msi_desc;
            (chip, (*desc).msi_index.into(), desc)
        }
    }

    extern "C" fn set_desc_callback(
        arg: *mut bindings::msi_alloc_info_t,
        desc: *mut bindings::msi_desc,
    ) {
        // SAFETY: The MSI core passes the allocation info and the
        // descriptor being allocated.
        unsafe {
            (*arg).desc = desc;
            (*arg).hwirq = (*desc).msi_index.into();
        }
    }

    extern "C" fn write_msg_callback(d: *mut bindings::irq_data, msg: *mut bindings::msi_msg) {
        // SAFETY: The IRQ core calls chip callbacks for interrupts of our
        // domain, which lives as long as the `ImsDomain`.
        let (chip, slot, desc) = unsafe { Self::parts(d) };
        // SAFETY: `msg` is valid for the call; the descriptor caches the
        // last message, as PCI/MSI's write does.
        let m = unsafe {
            (*desc).msg = *msg;
            MsiMsg::from_raw(&*msg)
        };
        chip.write_msg(slot, m);
    }

    // Masking is the slot's and the parent's: the slot stops the device,
    // the parent (the IMSIC's enable bit, say) the interrupt controller;
    // unlike PCI/MSI, IMS domains do not get the parent's callbacks.
    extern "C" fn mask_callback(d: *mut bindings::irq_data) {
        // SAFETY: As in `write_msg_callback`.
        let (chip, slot, _) = unsafe { Self::parts(d) };
        chip.mask(slot);
        // SAFETY: `d` has a parent level (an MSI parent).
        unsafe { bindings::irq_chip_mask_parent(d) };
    }

    extern "C" fn unmask_callback(d: *mut bindings::irq_data) {
        // SAFETY: As in `write_msg_callback`.
        let (chip, slot, _) = unsafe { Self::parts(d) };
        // SAFETY: As in `mask_callback`.
        unsafe { bindings::irq_chip_unmask_parent(d) };
        if chip.unmask(slot) {
            // The device sends what it held back: the interrupt arrives
            // where the slot's message points, as a retrigger makes it.
            // The IRQ core masks an interrupt on its own (the edge flow
            // while a handler is in progress, moves off a dying CPU), so
            // such a message would otherwise wait for the next one.
            // SAFETY: `d` is ours, with an MSI parent, under the
            // descriptor lock as `check_irq_resend()` calls it.
            unsafe { bindings::irq_chip_retrigger_hierarchy(d) };
        }
    }

    extern "C" fn startup_callback(d: *mut bindings::irq_data) -> u32 {
        // SAFETY: As in `write_msg_callback`.
        let (chip, slot, desc) = unsafe { Self::parts(d) };
        // SAFETY: The descriptor exists (as above). Its cookie was set at
        // allocation from the device's PASID, and is changed only by
        // `change_pasid` under the descriptor lock, which the core holds
        // around startup.
        // CAST: PASIDs are 20 bits (checked when set).
        let pasid = unsafe { (*desc).__bindgen_anon_1.data.icookie.value } as u32;
        chip.startup(slot, pasid);
        Self::unmask_callback(d);
        0
    }

    extern "C" fn shutdown_callback(d: *mut bindings::irq_data) {
        // SAFETY: As in `write_msg_callback`.
        let (chip, slot, _) = unsafe { Self::parts(d) };
        Self::mask_callback(d);
        chip.shutdown(slot);
    }

    extern "C" fn handler_callback(_irq: i32, cookie: *mut c_void) -> bindings::irqreturn_t {
        // SAFETY: The cookie is a `HandlerCookie` pointing at our chip,
        // freed only after `free_irq`.
        let (chip, slot) = unsafe {
            let c = &*cookie.cast::<HandlerCookie>();
            (&*c.chip.cast::<T>(), c.slot)
        };
        bindings::irqreturn_t(chip.handle(slot) as core::ffi::c_uint)
    }
}

#[pinned_drop]
impl<T: ImsChip> PinnedDrop for ImsDomain<T> {
    fn drop(self: Pin<&mut Self>) {
        self.inner.remove();
    }
}
