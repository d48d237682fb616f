// SPDX-License-Identifier: GPL-2.0

//! MSI remapping domains: the IRQ domain an IOMMU driver puts between the
//! devices behind the IOMMU and their MSI parent (the RISC-V IMSIC), so that
//! it sees every MSI of those devices being allocated, moved, handed to a
//! vCPU and freed, and can steer the IOMMU accordingly.
//!
//! A [`RemapDomain`] is an MSI parent domain stacked on the parent: the
//! PCI/MSI core creates each device's MSI and MSI-X domains under it as it
//! would under the parent. It is created once per IOMMU when the IOMMU is
//! probed, and the IOMMU moves a device under it ([`RemapDomain::adopt`])
//! when it probes the device, before any driver can allocate MSIs; nothing
//! changes it afterwards, whatever IOMMU domain the device is attached to.
//!
//! The per-device domains are set up by the parent's own
//! `init_dev_msi_info`, called with the parent as the real parent: the
//! device domains get exactly the flags and chip callbacks (deferred moves,
//! ack, parent masking) they would get without remapping, and msi-lib
//! needs no knowledge of stacked parents. Messages are composed by the
//! domain (the topmost composer in the hierarchy) from the parent's, through
//! [`Remap::compose`]: an IOMMU that remaps through tables indexed by the
//! doorbell address keeps them. Mask, unmask, ack (which performs the
//! parent's deferred moves) and retrigger go to the parent.
//!
//! A driver may instead make a device's interrupts end at the domain
//! ([`Remap::owns_vectors`]): the IOMMU then delivers them itself (the
//! RISC-V IOMMU into memory-resident interrupt files, announcing them with
//! a notice MSI of its own), nothing is allocated in the parent (its level
//! is trimmed off the hierarchy, `irq_domain_disconnect_hierarchy()`), and
//! the driver composes the message, masks, retriggers and moves the
//! interrupt. The IOMMU's notice handler runs the interrupts' handlers
//! through [`Vector::handle`]. Such a domain rewrites every message, so it
//! cannot be a plain parent for msi-lib's selection: like x86's and
//! Hyper-V's remapping domains (`DOMAIN_BUS_DMAR`, `DOMAIN_BUS_AMDVI`), it is
//! only ever found through the device (`dev_set_msi_domain()`), never by a
//! bus token, and sets the per-device domains up with the parent's own
//! `init_dev_msi_info`, whose chip flags still hold: masking through the
//! parent (here), acknowledging through the parent (here, where deferred
//! moves are done).
//!
//! C headers: [`include/linux/irqdomain.h`](srctree/include/linux/irqdomain.h),
//! [`include/linux/msi.h`](srctree/include/linux/msi.h)

use super::{
    domain::IrqDomainRef,
    hardirq::HardIrq,
    line::Line,
    msi::{MsiDesc, MsiMsg},
};
use crate::{
    alloc::flags::GFP_KERNEL,
    bindings,
    cpu::CpuId,
    cpumask::Cpumask,
    device::Device,
    error::{Error, Result},
    iommu::driver::ProbedDevice,
    prelude::*,
    str::CStr,
    sync::Arc,
};
use core::{ffi::c_void, ptr, ptr::NonNull};

/// An interrupt that ends at a [`RemapDomain`] (see
/// [`Remap::owns_vectors`]): its Linux interrupt number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vector(u32);

impl Vector {
    /// The interrupt numbered `irq`, as [`Vector::irq`] returned it.
    pub fn from_irq(irq: u32) -> Self {
        Self(irq)
    }

    /// The Linux interrupt number.
    pub fn irq(&self) -> u32 {
        self.0
    }

    /// Runs the interrupt's flow handler (`generic_handle_irq()`), from the
    /// hard interrupt handler that found it pending. False if the interrupt
    /// no longer exists.
    pub fn handle(&self, _ctx: &HardIrq) -> bool {
        // SAFETY: `_ctx` proves hard interrupt context with interrupts
        // disabled, which the function requires; it looks the number up
        // and fails for one that does not exist.
        unsafe { bindings::generic_handle_irq(self.0) == 0 }
    }
}

/// Where a vCPU-affine interrupt goes (`struct imsic_vcpu_info`, the
/// argument of `irq_set_vcpu_affinity()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuTarget {
    /// The interrupt identity the guest's route names: the data of the
    /// device's message while it is sent to the vCPU.
    pub msi_data: u32,
    /// The guest interrupt file (host physical address) it must reach.
    pub target: u64,
}

/// What an IOMMU driver does for the interrupts of its remapping domain.
///
/// Allocation and freeing run in process context; affinity changes may run
/// in hard interrupt context (deferred moves happen when the interrupt
/// fires), so [`Remap::set_affinity`] and [`Remap::set_vcpu_affinity`]
/// must not sleep.
///
/// # Examples
///
/// A remapping domain that only counts its interrupts and leaves their
/// messages as the parent composes them:
///
/// ```
/// use kernel::{
///     cpumask::Cpumask,
///     device::Device,
///     irq::{msi::{MsiDesc, MsiMsg}, remap::Remap},
///     prelude::*,
///     sync::atomic::{Atomic, Relaxed},
/// };
///
/// struct Counting {
///     vectors: Atomic<u32>,
/// }
///
/// impl Remap for Counting {
///     type Irq = ();
///
///     fn alloc(&self, _dev: &Device, _msg: MsiMsg, _desc: &mut MsiDesc<'_>) -> Result {
///         self.vectors.fetch_add(1, Relaxed);
///         Ok(())
///     }
///
///     fn free(&self, _irq: ()) {
///         self.vectors.fetch_sub(1, Relaxed);
///     }
///
///     fn set_affinity(
///         &self,
///         _irq: &(),
///         _mask: &Cpumask,
///         parent: &mut dyn FnMut() -> Result<MsiMsg>,
///     ) -> Result {
///         // Nothing to steer: the parent moves the interrupt.
///         parent().map(|_| ())
///     }
/// }
///
/// let r = Counting { vectors: Atomic::new(1) };
/// let msg = MsiMsg { address: 0x2800_0000, data: 33 };
/// // By default the message is the parent's, and no vCPU can be a target.
/// assert_eq!(r.compose(&(), msg), msg);
/// assert_eq!(r.set_vcpu_affinity(&(), None, &mut || Ok(())), Err(ENOSYS));
/// r.free(());
/// assert_eq!(r.vectors.load(Relaxed), 0);
/// ```
pub trait Remap: Send + Sync + 'static {
    /// What the driver keeps per interrupt.
    type Irq: Send + Sync;

    /// An interrupt of `dev` was allocated by the parent, which made it
    /// send `msg`: make `msg` reach its target. Behind an IOMMU domain that
    /// translates MSIs, every doorbell the interrupt may be moved to must
    /// be mapped now, through `desc` (affinity changes cannot sleep).
    fn alloc(&self, dev: &Device, msg: MsiMsg, desc: &mut MsiDesc<'_>) -> Result<Self::Irq>;

    /// The interrupt is freed: undo [`Remap::alloc`] and what followed.
    fn free(&self, irq: Self::Irq);

    /// The message the device must write, given the parent's: the IOVA of
    /// the doorbell behind a translating IOMMU domain. Remapping through
    /// tables indexed by the doorbell keeps it (the default). Also called
    /// when the parent moves the interrupt, in hard interrupt context: must
    /// not sleep.
    fn compose(&self, _irq: &Self::Irq, parent: MsiMsg) -> MsiMsg {
        parent
    }

    /// The interrupt is to move to a CPU of `mask`. `parent` moves it in the
    /// parent domain, writes the new message to the device and returns it;
    /// the driver must make every target the device might write reachable
    /// before calling it, and must not stop the old one from being reached
    /// while MSIs sent to it may still be in flight.
    fn set_affinity(
        &self,
        irq: &Self::Irq,
        mask: &Cpumask,
        parent: &mut dyn FnMut() -> Result<MsiMsg>,
    ) -> Result;

    /// Sends the interrupt to a vCPU's interrupt file (`Some`), or back to
    /// the host (`None`). The device's message changes with it: once what
    /// [`Remap::compose`] (or [`Remap::message`]) returns has changed,
    /// `write_msg` composes the message again and writes it to the device.
    /// The driver calls it where no MSI can be lost: after making the new
    /// target reachable, before making the old one unreachable. Runs under
    /// the interrupt's descriptor lock: must not sleep.
    fn set_vcpu_affinity(
        &self,
        _irq: &Self::Irq,
        _vcpu: Option<VcpuTarget>,
        _write_msg: &mut dyn FnMut() -> Result,
    ) -> Result {
        Err(ENOSYS)
    }

    /// Whether `dev`'s interrupts end at this domain: the IOMMU delivers
    /// them, nothing is allocated in the parent, and the interrupts are
    /// allocated with [`Remap::alloc_owned`] and driven by the methods
    /// below instead of [`Remap::alloc`], [`Remap::compose`] and
    /// [`Remap::set_affinity`]. Must not change while `dev` has interrupts.
    fn owns_vectors(&self, _dev: &Device) -> bool {
        false
    }

    /// Allocates `vector`, an interrupt of `dev` that ends here; returns
    /// what the driver keeps for it and the CPU it is handled on.
    fn alloc_owned(
        &self,
        _dev: &Device,
        _vector: Vector,
        _desc: &mut MsiDesc<'_>,
    ) -> Result<(Self::Irq, CpuId)> {
        Err(ENOSYS)
    }

    /// The message the device must write for an interrupt that ends here.
    fn message(&self, _irq: &Self::Irq) -> MsiMsg {
        MsiMsg {
            address: 0,
            data: 0,
        }
    }

    /// Masks (`true`) or unmasks an interrupt that ends here; unmasking
    /// delivers what arrived while it was masked. Hard interrupt context
    /// too: must not sleep.
    fn mask(&self, _irq: &Self::Irq, _masked: bool) {}

    /// Makes an interrupt that ends here fire again; whether it could.
    fn retrigger(&self, _irq: &Self::Irq) -> bool {
        false
    }

    /// Moves an interrupt that ends here to a CPU of `mask`, returning the
    /// CPU; the caller then writes the new [`Remap::message`] to the
    /// device. Until then the device may still write the old one, which
    /// must still be delivered. Hard interrupt context too (deferred
    /// moves): must not sleep.
    fn move_owned(&self, _irq: &Self::Irq, _mask: &Cpumask) -> Result<CpuId> {
        Err(ENOSYS)
    }
}

/// The name of the remapping domains' chip of interrupts stacked on the
/// parent. Its address tells the chip apart from every other chip, the
/// chip's own address cannot: the chips are associated `const`s of a
/// generic impl (which cannot have a `static`), and Rust does not promise a
/// `const` one address (each use may make a copy of its own). A static has
/// one, which every crate's chips point at (public so that it is exported
/// to the modules whose chips name it).
#[doc(hidden)]
pub static REMAP_CHIP_NAME: [u8; 9] = *b"IOMMU-IR\0";

/// The name of the remapping domains' chip of interrupts that end at the
/// domain ([`Remap::owns_vectors`]): the same text, its own address, which
/// tells the two chips apart (see [`REMAP_CHIP_NAME`]).
#[doc(hidden)]
pub static REMAP_OWNED_CHIP_NAME: [u8; 9] = *b"IOMMU-IR\0";

/// Whether `chip` is a remapping domain's chip, and which: `Some(true)` for
/// the chip of interrupts that end at the domain, `Some(false)` for the
/// chip of interrupts stacked on the parent, `None` for any other chip.
///
/// # Safety
///
/// `chip` is NULL or points to a valid `irq_chip`.
unsafe fn remap_chip_kind(chip: *const bindings::irq_chip) -> Option<bool> {
    if chip.is_null() {
        return None;
    }
    // SAFETY: `chip` is valid (the caller's promise).
    let name = unsafe { (*chip).name };
    if ptr::eq(name, REMAP_OWNED_CHIP_NAME.as_ptr().cast()) {
        Some(true)
    } else if ptr::eq(name, REMAP_CHIP_NAME.as_ptr().cast()) {
        Some(false)
    } else {
        None
    }
}

/// Whether `irq_set_vcpu_affinity(irq, ..)` reaches a remapping domain's
/// chip: the first chip from the top of `irq`'s hierarchy that implements
/// it (the one the core calls) is ours, or forwards to its parent
/// (`irq_chip_set_vcpu_affinity_parent()`) until one of ours.
///
/// # Safety
///
/// `irq` is requested, so its hierarchy neither changes nor goes away
/// during the call.
unsafe fn vcpu_affinity_is_remapped(irq: u32) -> bool {
    let forward: unsafe extern "C" fn(*mut bindings::irq_data, *mut c_void) -> i32 =
        bindings::irq_chip_set_vcpu_affinity_parent;
    // SAFETY: `irq` is requested (the caller's guarantee): its data and
    // their chips live and do not change.
    unsafe {
        let mut d = bindings::irq_get_irq_data(irq);
        while !d.is_null() {
            let chip = (*d).chip;
            if !chip.is_null() {
                match (*chip).irq_set_vcpu_affinity {
                    Some(f) if f as usize == forward as usize => {}
                    Some(_) => return remap_chip_kind(chip).is_some(),
                    None => {}
                }
            }
            d = (*d).parent_data;
        }
    }
    false
}

/// Sends the interrupt of `line` to a vCPU's interrupt file (`Some`), or
/// back to the host (`None`): `irq_set_vcpu_affinity()` with a `struct
/// imsic_vcpu_info`, as KVM would call it for an assigned device. `EINVAL`
/// unless the call would reach an MSI remapping domain, the only chips that
/// take that argument; `ENODEV` once the line's request is freed.
pub fn set_vcpu_affinity(line: &Line, vcpu: Option<VcpuTarget>) -> Result {
    line.with_irq(|irq| {
        // SAFETY: `with_irq` keeps `irq` requested while this runs.
        if !unsafe { vcpu_affinity_is_remapped(irq) } {
            return Err(EINVAL);
        }
        // SAFETY: As above, and the chip the call reaches takes a `struct
        // imsic_vcpu_info` (checked just above).
        unsafe { send_vcpu_affinity(irq, vcpu) }
    })
}

/// `irq_set_vcpu_affinity(irq, vcpu)` with a `struct imsic_vcpu_info`.
///
/// # Safety
///
/// The chip the call reaches takes a `struct imsic_vcpu_info`.
unsafe fn send_vcpu_affinity(irq: u32, vcpu: Option<VcpuTarget>) -> Result {
    let mut info = bindings::imsic_vcpu_info {
        msi_data: 0,
        target: 0,
    };
    let arg = match vcpu {
        Some(v) => {
            info.msi_data = v.msi_data;
            info.target = v.target;
            ptr::addr_of_mut!(info).cast()
        }
        None => ptr::null_mut(),
    };
    // SAFETY: `arg` is NULL or a valid `imsic_vcpu_info` for the call; the
    // callee's type is the caller's promise.
    crate::error::to_result(unsafe { bindings::irq_set_vcpu_affinity(irq, arg) })
}

/// An MSI remapping domain (see the module documentation).
///
/// # Invariants
///
/// `domain` was created by [`RemapDomain::new`] with `parent` as its parent,
/// `pops` as its MSI parent operations, `fwnode` as its firmware node and
/// `Arc::as_ptr(&data)` as its host data; each interrupt of it carries a
/// `KBox<T::Irq>` as chip data.
pub struct RemapDomain<T: Remap> {
    domain: NonNull<bindings::irq_domain>,
    parent: IrqDomainRef,
    fwnode: NonNull<bindings::fwnode_handle>,
    /// From `KBox::into_raw`; freed after the domain is removed.
    pops: NonNull<bindings::msi_parent_ops>,
    data: Arc<T>,
}

// SAFETY: The C domain is used under the IRQ core's locking; `T` is
// `Send + Sync`.
unsafe impl<T: Remap> Send for RemapDomain<T> {}
// SAFETY: As above.
unsafe impl<T: Remap> Sync for RemapDomain<T> {}

impl<T: Remap> RemapDomain<T> {
    /// Creates the domain, named `name`, on `parent`, which must be an MSI
    /// parent domain. `isolated` claims `IRQ_DOMAIN_FLAG_ISOLATED_MSI`: no
    /// device under the domain can raise an interrupt it was not given
    /// (what VFIO and iommufd require before handing a device to user
    /// space), a claim only the IOMMU's hardware can back.
    pub fn new(name: &CStr, parent: IrqDomainRef, data: Arc<T>, isolated: bool) -> Result<Self> {
        // SAFETY: `parent` is a live domain.
        let ppops = unsafe { (*parent.as_ptr()).msi_parent_ops };
        if ppops.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: Non-NULL MSI parent operations are static.
        let ppops = unsafe { &*ppops };
        let pops = KBox::new(
            bindings::msi_parent_ops {
                supported_flags: ppops.supported_flags,
                required_flags: ppops.required_flags,
                chip_flags: ppops.chip_flags,
                bus_select_token: bindings::irq_domain_bus_token_DOMAIN_BUS_NEXUS,
                bus_select_mask: 0,
                prefix: c"IR-".as_ptr(),
                init_dev_msi_info: Some(Self::init_dev_msi_info_callback),
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `name` is NUL-terminated; the function copies it.
        let fwnode = unsafe {
            bindings::__irq_domain_alloc_fwnode(
                bindings::IRQCHIP_FWNODE_NAMED,
                0,
                name.as_char_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let fwnode = NonNull::new(fwnode).ok_or(ENOMEM)?;
        let pops = NonNull::from(KBox::leak(pops));
        // SAFETY: All-zero is a valid `irq_domain_info`.
        let mut info: bindings::irq_domain_info = unsafe { core::mem::zeroed() };
        info.fwnode = fwnode.as_ptr();
        info.ops = &Self::DOMAIN_OPS;
        info.host_data = Arc::as_ptr(&data).cast_mut().cast();
        info.parent = parent.as_ptr();
        if isolated {
            info.domain_flags = bindings::IRQ_DOMAIN_FLAG_ISOLATED_MSI;
        }
        // SAFETY: `info` is complete; `pops` and the operations outlive the
        // domain (dropped after it is removed).
        let domain = unsafe { bindings::msi_create_parent_irq_domain(&mut info, pops.as_ptr()) };
        let Some(domain) = NonNull::new(domain) else {
            // SAFETY: Both allocated above, unused.
            unsafe {
                bindings::irq_domain_free_fwnode(fwnode.as_ptr());
                drop(KBox::from_raw(pops.as_ptr()));
            }
            return Err(ENOMEM);
        };
        // INVARIANT: created as described.
        Ok(Self {
            domain,
            parent,
            fwnode,
            pops,
            data,
        })
    }

    /// The driver's data.
    pub fn data(&self) -> &Arc<T> {
        &self.data
    }

    /// This domain.
    pub fn domain(&self) -> IrqDomainRef {
        IrqDomainRef(self.domain)
    }

    /// The domain under it.
    pub fn parent(&self) -> IrqDomainRef {
        self.parent
    }

    /// Whether the domain claims isolated MSIs (see [`RemapDomain::new`]).
    pub fn isolated(&self) -> bool {
        // SAFETY: Our domain is live; its flags are set at creation.
        let flags = unsafe { (*self.domain.as_ptr()).flags };
        flags & bindings::IRQ_DOMAIN_FLAG_ISOLATED_MSI != 0
    }

    /// Moves `dev`'s MSIs under this domain, if they were to go to its
    /// parent and `dev` has none allocated yet; returns whether it did.
    /// Only while the IOMMU core probes the device (a [`ProbedDevice`]),
    /// before a driver can bind to it and allocate MSIs.
    pub fn adopt(&self, dev: &ProbedDevice<'_>) -> bool {
        let raw = dev.as_raw();
        // SAFETY: `raw` is valid; nothing allocates its MSIs concurrently
        // (`ProbedDevice`: the core holds its probe lock, no driver is bound
        // yet). `msi.data` has no accessor: it is set once MSIs exist.
        let has_msis = unsafe { !(*raw).msi.data.is_null() };
        // SAFETY: As above.
        if has_msis || unsafe { bindings::dev_get_msi_domain(raw) } != self.parent.as_ptr() {
            return false;
        }
        // SAFETY: As above.
        unsafe { bindings::dev_set_msi_domain(raw, self.domain.as_ptr()) };
        true
    }

    /// Gives `dev`'s MSIs back to the parent, unless some are allocated;
    /// returns whether it did. Only while the IOMMU core releases the
    /// device (a [`ProbedDevice`]).
    pub fn release(&self, dev: &ProbedDevice<'_>) -> bool {
        let raw = dev.as_raw();
        // SAFETY: As in `adopt`: the core releases a device without a driver
        // (or tears the IOMMU down) under its own locking; a driver still
        // bound keeps its MSIs, which the `msi.data` check sees.
        let has_msis = unsafe { !(*raw).msi.data.is_null() };
        // SAFETY: As above.
        if has_msis || unsafe { bindings::dev_get_msi_domain(raw) } != self.domain.as_ptr() {
            return false;
        }
        // SAFETY: As above.
        unsafe { bindings::dev_set_msi_domain(raw, self.parent.as_ptr()) };
        true
    }

    /// Whether `dev`'s MSIs go through this domain.
    pub fn owns(&self, dev: &Device) -> bool {
        // SAFETY: `dev` is a valid device.
        unsafe { bindings::dev_get_msi_domain(dev.as_raw()) == self.domain.as_ptr() }
    }

    const DOMAIN_OPS: bindings::irq_domain_ops = bindings::irq_domain_ops {
        alloc: Some(Self::alloc_callback),
        free: Some(Self::free_callback),
        // SAFETY: All-zero is a valid `irq_domain_ops`.
        ..unsafe { core::mem::zeroed() }
    };

    const CHIP: bindings::irq_chip = bindings::irq_chip {
        name: REMAP_CHIP_NAME.as_ptr().cast(),
        irq_ack: Some(bindings::irq_chip_ack_parent),
        irq_mask: Some(bindings::irq_chip_mask_parent),
        irq_unmask: Some(bindings::irq_chip_unmask_parent),
        irq_retrigger: Some(bindings::irq_chip_retrigger_hierarchy),
        irq_set_affinity: Some(Self::set_affinity_callback),
        irq_set_vcpu_affinity: Some(Self::set_vcpu_affinity_callback),
        irq_compose_msi_msg: Some(Self::compose_callback),
        // SAFETY: All-zero is a valid `irq_chip`.
        ..unsafe { core::mem::zeroed() }
    };

    /// The chip of interrupts that end at the domain.
    const OWN_CHIP: bindings::irq_chip = bindings::irq_chip {
        name: REMAP_OWNED_CHIP_NAME.as_ptr().cast(),
        irq_ack: Some(Self::ack_owned_callback),
        irq_mask: Some(Self::mask_callback),
        irq_unmask: Some(Self::unmask_callback),
        irq_retrigger: Some(Self::retrigger_callback),
        irq_set_affinity: Some(Self::set_affinity_owned_callback),
        irq_set_vcpu_affinity: Some(Self::set_vcpu_affinity_callback),
        irq_compose_msi_msg: Some(Self::compose_owned_callback),
        // CAST: a flag of the chip's flags word, widened.
        flags: bindings::IRQCHIP_SKIP_SET_WAKE as crate::ffi::c_ulong,
        // SAFETY: All-zero is a valid `irq_chip`.
        ..unsafe { core::mem::zeroed() }
    };

    /// The driver data of the domain `d`.
    ///
    /// # Safety
    ///
    /// `d` is a domain created by [`RemapDomain::new`] for this `T`, not yet
    /// removed.
    unsafe fn remap<'a>(d: *mut bindings::irq_domain) -> &'a T {
        // SAFETY: By the type invariant the host data is the `Arc<T>`, which
        // the `RemapDomain` holds until after the domain is removed.
        unsafe { &*(*d).host_data.cast::<T>() }
    }

    /// The message the parent makes the interrupt `d` (our level) send.
    ///
    /// # Safety
    ///
    /// `d` is the `irq_data` of an interrupt of this domain, allocated in
    /// the parent.
    unsafe fn parent_msg(d: *mut bindings::irq_data) -> MsiMsg {
        // SAFETY: All-zero is a valid message.
        let mut m: bindings::msi_msg = unsafe { core::mem::zeroed() };
        // SAFETY: The parent level exists and has a chip; MSI parents compose.
        unsafe {
            let pd = (*d).parent_data;
            if let Some(compose) = (*(*pd).chip).irq_compose_msi_msg {
                compose(pd, &mut m);
            }
        }
        MsiMsg::from_raw(&m)
    }

    extern "C" fn init_dev_msi_info_callback(
        dev: *mut bindings::device,
        domain: *mut bindings::irq_domain,
        _msi_parent: *mut bindings::irq_domain,
        info: *mut bindings::msi_domain_info,
    ) -> bool {
        // SAFETY: `domain` is ours; its parent is an MSI parent (checked at
        // creation) whose operations are static.
        unsafe {
            let p = (*domain).parent;
            match (*(*p).msi_parent_ops).init_dev_msi_info {
                // The parent sets the device domain up as its own child.
                Some(init) => init(dev, p, p, info),
                None => false,
            }
        }
    }

    extern "C" fn alloc_callback(
        d: *mut bindings::irq_domain,
        virq: u32,
        nr: u32,
        arg: *mut c_void,
    ) -> i32 {
        // SAFETY: MSI device domains allocate with `msi_alloc_info_t`, whose
        // descriptor, valid for the allocation, names the device.
        let (dev, mut desc) = unsafe {
            let desc = (*arg.cast::<bindings::msi_alloc_info_t>()).desc;
            let Some(ptr) = NonNull::new(desc) else {
                return EINVAL.to_errno();
            };
            // The descriptor is valid for this allocation, which the IRQ
            // core serialises.
            (Device::from_raw((*desc).dev), MsiDesc::from_raw(ptr))
        };
        // SAFETY: `d` is ours.
        let this = unsafe { Self::remap(d) };
        if this.owns_vectors(dev) {
            // SAFETY: `d` is ours, allocating `virq..virq + nr`.
            return unsafe { Self::alloc_owned_irqs(d, this, dev, &mut desc, virq, nr) };
        }
        // SAFETY: The IRQ core passes our domain and the MSI allocation
        // info of the device domain above.
        let ret = unsafe { bindings::irq_domain_alloc_irqs_parent(d, virq, nr, arg) };
        if ret != 0 {
            return ret;
        }
        for i in 0..nr {
            let res: Result = (|| {
                // CAST: `irq_hw_number_t` is at least 32 bits wide.
                let hwirq = (virq + i) as bindings::irq_hw_number_t;
                // SAFETY: `virq + i` was allocated in the parent above; the
                // chip is static; hwirq = virq keeps hwirqs unique.
                to_result(unsafe {
                    bindings::irq_domain_set_hwirq_and_chip(
                        d,
                        virq + i,
                        hwirq,
                        &Self::CHIP,
                        ptr::null_mut(),
                    )
                })?;
                // SAFETY: Set just above.
                let data = unsafe { bindings::irq_domain_get_irq_data(d, virq + i) };
                // SAFETY: `data` is ours, allocated in the parent.
                let msg = unsafe { Self::parent_msg(data) };
                // The box first: what the driver allocates is never dropped
                // without its `free`.
                let slot = KBox::new_uninit(GFP_KERNEL)?;
                let irq = KBox::write(slot, this.alloc(dev, msg, &mut desc)?);
                // SAFETY: `data` is valid; INVARIANT: the chip data is a `KBox<T::Irq>`.
                unsafe { (*data).chip_data = KBox::into_raw(irq).cast() };
                Ok(())
            })();
            if let Err(e) = res {
                Self::free_callback(d, virq, i);
                // SAFETY: The interrupts at and after `virq + i` have no
                // chip data of ours; reset them and free them in the parent.
                unsafe {
                    Self::reset_levels(d, virq + i..virq + nr);
                    bindings::irq_domain_free_irqs_parent(d, virq + i, nr - i);
                }
                return e.to_errno();
            }
        }
        0
    }

    /// Allocates `virq..virq + nr`, interrupts of `dev` that end here: our
    /// level gets the owned chip and the driver's data, the parent's is
    /// marked to be trimmed off the hierarchy once the allocation is done.
    ///
    /// # Safety
    ///
    /// `d` is our domain, `this` its data, allocating the interrupts for
    /// `desc`'s device `dev`.
    unsafe fn alloc_owned_irqs(
        d: *mut bindings::irq_domain,
        this: &T,
        dev: &Device,
        desc: &mut MsiDesc<'_>,
        virq: u32,
        nr: u32,
    ) -> i32 {
        for i in 0..nr {
            let res: Result = (|| {
                // CAST: `irq_hw_number_t` is at least 32 bits wide.
                let hwirq = (virq + i) as bindings::irq_hw_number_t;
                // SAFETY: `virq + i` is being allocated in our domain, whose
                // parent has a level for it; the chip is static. Edge: each
                // message is one interrupt (the parent would have set the
                // same flow).
                unsafe {
                    bindings::irq_domain_set_info(
                        d,
                        virq + i,
                        hwirq,
                        &Self::OWN_CHIP,
                        ptr::null_mut(),
                        Some(bindings::handle_edge_irq),
                        ptr::null_mut(),
                        ptr::null(),
                    );
                    to_result(bindings::irq_domain_disconnect_hierarchy(
                        (*d).parent,
                        virq + i,
                    ))?;
                }
                // The box first, as in `alloc_callback`.
                let slot = KBox::new_uninit(GFP_KERNEL)?;
                let (irq, cpu) = this.alloc_owned(dev, Vector(virq + i), desc)?;
                let irq = KBox::write(slot, irq);
                // SAFETY: Set just above.
                let data = unsafe { bindings::irq_domain_get_irq_data(d, virq + i) };
                // SAFETY: `data` is ours; `cpumask_of()` is a static mask.
                // INVARIANT: the chip data is a `KBox<T::Irq>`.
                unsafe {
                    (*data).chip_data = KBox::into_raw(irq).cast();
                    bindings::irq_data_update_effective_affinity(
                        data,
                        bindings::cpumask_of(cpu.as_u32()),
                    );
                }
                Ok(())
            })();
            if let Err(e) = res {
                // Nothing of the parent's to free: it allocated nothing.
                Self::free_callback(d, virq, i);
                // SAFETY: Our levels of the interrupts not set up.
                unsafe { Self::reset_levels(d, virq + i..virq + nr) };
                return e.to_errno();
            }
        }
        0
    }

    /// Resets our level of the interrupts `irqs`, which hold no chip data
    /// of ours.
    ///
    /// # Safety
    ///
    /// `d` is our domain, and `irqs` are being allocated in it.
    unsafe fn reset_levels(d: *mut bindings::irq_domain, irqs: core::ops::Range<u32>) {
        for irq in irqs {
            // SAFETY: The caller's promise: our level of `irq` exists.
            unsafe {
                bindings::irq_domain_reset_irq_data(bindings::irq_domain_get_irq_data(d, irq))
            };
        }
    }

    /// Frees `virq..virq + nr`: each interrupt's level is detached (chip
    /// data taken away, level reset) under the descriptor's lock, and only
    /// then is the driver's data freed; then the parent's levels, for
    /// interrupts stacked on it.
    extern "C" fn free_callback(d: *mut bindings::irq_domain, virq: u32, nr: u32) {
        // SAFETY: `d` is ours.
        let this = unsafe { Self::remap(d) };
        let mut owned = false;
        for i in 0..nr {
            // SAFETY: `virq + i` is an interrupt of ours.
            let data = unsafe { bindings::irq_domain_get_irq_data(d, virq + i) };
            // SAFETY: `data` is valid for the call; its chip is NULL or valid.
            owned |= unsafe { remap_chip_kind((*data).chip) } == Some(true);
            // SAFETY: `data` is our level of an interrupt being freed, whose
            // descriptor exists until the IRQ core frees it after this.
            let cd = unsafe { detach_level(data) };
            if !cd.is_null() {
                // SAFETY: By the type invariant a non-NULL chip data is our
                // box; detached, no chip callback can reach it any more.
                let irq = unsafe { KBox::from_raw(cd.cast::<T::Irq>()) };
                this.free(KBox::into_inner(irq));
            }
        }
        if !owned {
            // SAFETY: Resets our level (again) and frees the parent's.
            unsafe { bindings::irq_domain_free_irqs_common(d, virq, nr) };
        }
    }

    /// The driver data and the per-interrupt data of `d`; `None` until
    /// `alloc_callback` set the latter, and once `free_callback` took it
    /// away.
    ///
    /// # Safety
    ///
    /// `d` is the `irq_data` of an interrupt of this domain, and the lock of
    /// its descriptor is held, as the IRQ core holds it around chip
    /// callbacks (but for the activation at allocation, which the MSI core
    /// serialises with freeing); the result is used under that lock only.
    unsafe fn irq_of<'a>(d: *mut bindings::irq_data) -> Option<(&'a T, &'a T::Irq)> {
        // SAFETY: `d` is valid; by the type invariant its chip data is NULL
        // or our box, which `free_callback` takes away under the
        // descriptor's lock (held by the caller) before freeing it.
        unsafe {
            let cd = (*d).chip_data.cast::<T::Irq>();
            (!cd.is_null()).then(|| (Self::remap((*d).domain), &*cd))
        }
    }

    extern "C" fn set_affinity_callback(
        d: *mut bindings::irq_data,
        mask: *const bindings::cpumask,
        force: bool,
    ) -> i32 {
        // SAFETY: The IRQ core calls this for interrupts of ours.
        let Some((this, irq)) = (unsafe { Self::irq_of(d) }) else {
            return ENOENT.to_errno();
        };
        widen_for_tests();
        // SAFETY: The IRQ core passes a valid mask for the call.
        let cpus = unsafe { Cpumask::from_raw(mask) };
        let mut ret = 0;
        let mut parent = || {
            // SAFETY: `d` has a parent level; `mask` is valid.
            let r = unsafe { bindings::irq_chip_set_affinity_parent(d, mask, force) };
            if r < 0 {
                return Err(Error::from_errno(r));
            }
            ret = r;
            // SAFETY: `d` is ours.
            Ok(unsafe { Self::parent_msg(d) })
        };
        match this.set_affinity(irq, cpus, &mut parent) {
            Ok(()) => ret,
            Err(e) => e.to_errno(),
        }
    }

    extern "C" fn compose_callback(d: *mut bindings::irq_data, msg: *mut bindings::msi_msg) {
        // SAFETY: The IRQ core composes messages of interrupts of ours.
        let (parent, irq) = unsafe { (Self::parent_msg(d), Self::irq_of(d)) };
        let m = match irq {
            Some((this, irq)) => this.compose(irq, parent),
            None => parent,
        };
        // SAFETY: `msg` is valid for writes.
        unsafe { *msg = m.to_raw() };
    }

    extern "C" fn ack_owned_callback(d: *mut bindings::irq_data) {
        // SAFETY: The IRQ core acknowledges interrupts of ours under their
        // descriptor's lock, where a deferred move may be done.
        unsafe { bindings::irq_move_irq(d) };
    }

    extern "C" fn mask_callback(d: *mut bindings::irq_data) {
        // SAFETY: As in `set_affinity_callback`.
        if let Some((this, irq)) = unsafe { Self::irq_of(d) } {
            this.mask(irq, true);
        }
    }

    extern "C" fn unmask_callback(d: *mut bindings::irq_data) {
        // SAFETY: As in `set_affinity_callback`.
        if let Some((this, irq)) = unsafe { Self::irq_of(d) } {
            this.mask(irq, false);
        }
    }

    extern "C" fn retrigger_callback(d: *mut bindings::irq_data) -> i32 {
        // SAFETY: As in `set_affinity_callback`.
        match unsafe { Self::irq_of(d) } {
            Some((this, irq)) => i32::from(this.retrigger(irq)),
            None => 0,
        }
    }

    extern "C" fn set_affinity_owned_callback(
        d: *mut bindings::irq_data,
        mask: *const bindings::cpumask,
        _force: bool,
    ) -> i32 {
        // SAFETY: As in `set_affinity_callback`.
        let Some((this, irq)) = (unsafe { Self::irq_of(d) }) else {
            return ENOENT.to_errno();
        };
        widen_for_tests();
        // SAFETY: The IRQ core passes a valid mask for the call.
        let cpus = unsafe { Cpumask::from_raw(mask) };
        match this.move_owned(irq, cpus) {
            Ok(cpu) => {
                // SAFETY: `d` is valid; `cpumask_of()` is a static mask.
                unsafe {
                    bindings::irq_data_update_effective_affinity(
                        d,
                        bindings::cpumask_of(cpu.as_u32()),
                    )
                };
                // The MSI domain above writes the new message.
                // CAST: a small enum constant.
                bindings::IRQ_SET_MASK_OK as i32
            }
            Err(e) => e.to_errno(),
        }
    }

    extern "C" fn compose_owned_callback(d: *mut bindings::irq_data, msg: *mut bindings::msi_msg) {
        // SAFETY: As in `set_affinity_callback`.
        let m = match unsafe { Self::irq_of(d) } {
            Some((this, irq)) => this.message(irq),
            None => MsiMsg {
                address: 0,
                data: 0,
            },
        };
        // SAFETY: `msg` is valid for writes.
        unsafe { *msg = m.to_raw() };
    }

    extern "C" fn set_vcpu_affinity_callback(d: *mut bindings::irq_data, info: *mut c_void) -> i32 {
        // SAFETY: As in `set_affinity_callback`.
        let Some((this, irq)) = (unsafe { Self::irq_of(d) }) else {
            return ENOENT.to_errno();
        };
        let vcpu = if info.is_null() {
            None
        } else {
            // SAFETY: Callers pass a `struct imsic_vcpu_info` (see its
            // documentation) or NULL.
            let i = unsafe { &*info.cast::<bindings::imsic_vcpu_info>() };
            Some(VcpuTarget {
                msi_data: i.msi_data,
                target: i.target,
            })
        };
        // SAFETY: `d` is the interrupt's data in our domain, and the IRQ
        // core holds its descriptor's lock for the callback.
        let mut write_msg = || unsafe { rewrite_device_msg(d) };
        match this.set_vcpu_affinity(irq, vcpu, &mut write_msg) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }
}

impl<T: Remap> Drop for RemapDomain<T> {
    fn drop(&mut self) {
        // SAFETY: Our domain is live until removed here.
        let mapped = unsafe { (*self.domain.as_ptr()).mapcount };
        if mapped != 0 {
            // Interrupts of devices still bound to drivers use it: removing
            // it would free what they use. Leak it and what it points to.
            pr_err!(
                "{}: {} interrupts still allocated, domain leaked\n",
                self.domain().name(),
                mapped
            );
            core::mem::forget(self.data.clone());
            return;
        }
        // SAFETY: No interrupt uses the domain; after removal nothing refers
        // to `fwnode`, `pops` or the data.
        unsafe {
            bindings::irq_domain_remove(self.domain.as_ptr());
            bindings::irq_domain_free_fwnode(self.fwnode.as_ptr());
            drop(KBox::from_raw(self.pops.as_ptr()));
        }
    }
}

/// Detaches `data`, our level of an interrupt being freed: under the lock
/// of the interrupt's descriptor, takes its chip data away and resets it
/// (`irq_domain_reset_irq_data()`: no chip, no chip data); returns the chip
/// data it had. The IRQ core calls every chip callback that reads the chip
/// data under that lock (`/proc/irq/N/smp_affinity` writes, deferred moves,
/// CPU hotplug, vCPU affinity, the flow handler's ack and masks), so once
/// this returns none runs with the old chip data and none that starts
/// later finds it: the caller may free it. `x86_vector_free_irqs()` resets
/// its level under `vector_lock` before freeing its chip data in the same
/// way. Out of line, so that modules reach the descriptor through the
/// `kernel` crate.
///
/// # Safety
///
/// `data` is the `irq_data` of our level of an interrupt being freed, whose
/// descriptor exists for the call.
#[inline(never)]
unsafe fn detach_level(data: *mut bindings::irq_data) -> *mut c_void {
    // SAFETY: `data` is valid and its descriptor exists (the caller's
    // promise); its lock is a raw spinlock taken with interrupts off, as
    // the IRQ core takes it. Nothing above us holds it: freeing runs under
    // the domain's mutex only.
    unsafe {
        let desc = bindings::irq_to_desc((*data).irq);
        let lock = ptr::addr_of_mut!((*desc).lock);
        let flags = bindings::raw_spin_lock_irqsave(lock);
        let cd = (*data).chip_data;
        bindings::irq_domain_reset_irq_data(data);
        bindings::raw_spin_unlock_irqrestore(lock, flags);
        cd
    }
}

/// The task name that [`widen_for_tests`] waits for.
#[cfg(CONFIG_FAULT_INJECTION)]
const SLOW_TASK: &[u8] = b"irq-remap-slow\0";

/// On kernels with fault injection (the debug kernels), an affinity change
/// made by a task named `irq-remap-slow` holds the interrupt's data for
/// 2 ms before using it: the window in which a concurrent free must wait
/// for it (`tests/remap/remap_race.c`). Nothing otherwise: no other task
/// has that name.
#[inline(never)]
fn widen_for_tests() {
    #[cfg(CONFIG_FAULT_INJECTION)]
    {
        // SAFETY: `current` is valid; its `comm` is a NUL-terminated array
        // the task only renames as a whole, read here as the C side reads
        // it (`strncmp(current->comm, ..)`), racing a rename at worst.
        let comm = unsafe { ptr::read_volatile(ptr::addr_of!((*bindings::get_current()).comm)) };
        if comm.starts_with(SLOW_TASK) {
            crate::time::delay::udelay(crate::time::Delta::from_millis(2));
        }
    }
}

/// Composes the message of the interrupt `d` belongs to and writes it to
/// its device, as `msi_domain_set_affinity()` does after a move: through
/// the hierarchy's top, whose chip writes messages.
///
/// # Safety
///
/// `d` is valid, and the lock of its interrupt's descriptor is held.
#[inline(never)]
unsafe fn rewrite_device_msg(d: *mut bindings::irq_data) -> Result {
    // SAFETY: `d` is valid (the caller's promise); its interrupt exists
    // while its descriptor is locked.
    let top = unsafe { bindings::irq_get_irq_data((*d).irq) };
    if top.is_null() {
        return Err(ENOENT);
    }
    // SAFETY: `top` is valid, and so is its chip while the descriptor is
    // locked.
    let write = unsafe { (*top).chip.as_ref() }
        .and_then(|c| c.irq_write_msi_msg)
        .ok_or(ENOSYS)?;
    // SAFETY: All-zero is a valid message.
    let mut msg: bindings::msi_msg = unsafe { core::mem::zeroed() };
    // SAFETY: `top` is valid and `msg` writable; composing walks the
    // hierarchy under the descriptor's lock, as the IRQ core does.
    to_result(unsafe { bindings::irq_chip_compose_msi_msg(top, &mut msg) })?;
    // SAFETY: The top chip's own callback, on its own data, under the
    // descriptor's lock.
    unsafe { write(top, &mut msg) };
    Ok(())
}

fn to_result(ret: i32) -> Result {
    crate::error::to_result(ret)
}
