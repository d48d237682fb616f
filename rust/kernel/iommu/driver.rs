// SPDX-License-Identifier: GPL-2.0

//! IOMMU drivers: registering an IOMMU with the core and serving its
//! operations (`struct iommu_ops`, `struct iommu_domain_ops`).
//!
//! A driver implements [`Driver`] for its IOMMU instance and [`PagingDomain`]
//! for its translating domains, and registers the instance with a
//! [`Registration`] tied to the bound hardware device. The abstraction owns the
//! C structures: the `iommu_device`, each domain's `iommu_domain`, and the
//! per-device data the core keeps for masters (`dev_iommu_priv`).
//!
//! Domain types: paging domains come from [`Driver::domain_alloc_paging`];
//! identity domains are allocated by the abstraction and attached through
//! [`Driver::attach_identity`]; blocking uses the core's fallback, an empty
//! paging domain, so every driver blocks the same way it translates.
//!
//! # Examples
//!
//! The shape of a driver: identity domains, and paging domains whose maps
//! all fail (a real driver walks its page tables there).
//!
//! ```
//! use kernel::{
//!     device::Device,
//!     iommu::driver::{Driver, IotlbGather, PagingDomain, ProbedDevice, Prot},
//!     prelude::*,
//! };
//!
//! struct MyIommu;
//! struct MyDomain;
//!
//! #[vtable]
//! impl Driver for MyIommu {
//!     /// The requester ids of a device behind the IOMMU.
//!     type Master = KVec<u32>;
//!     type Paging = MyDomain;
//!
//!     fn probe_device(&self, _dev: &ProbedDevice<'_>, ids: &[u32]) -> Result<KVec<u32>> {
//!         let mut v = KVec::new();
//!         v.extend_from_slice(ids, GFP_KERNEL)?;
//!         Ok(v)
//!     }
//!
//!     fn domain_alloc_paging(&self, _: &Device, _: &KVec<u32>, flags: u32) -> Result<MyDomain> {
//!         if flags != 0 {
//!             return Err(EOPNOTSUPP);
//!         }
//!         Ok(MyDomain)
//!     }
//!
//!     fn attach_identity(&self, _dev: &Device, _master: &KVec<u32>) -> Result {
//!         Ok(())
//!     }
//! }
//!
//! impl PagingDomain for MyDomain {
//!     type Driver = MyIommu;
//!
//!     fn pgsize_bitmap(&self) -> u64 {
//!         1 << 12
//!     }
//!
//!     fn aperture_end(&self) -> u64 {
//!         u64::from(u32::MAX)
//!     }
//!
//!     fn attach(&self, _iommu: &MyIommu, _dev: &Device, _master: &KVec<u32>) -> Result {
//!         Ok(())
//!     }
//!
//!     fn map_pages(&self, _: u64, _: u64, _: u64, _: u64, _: Prot, _: bool) -> (u64, Result) {
//!         (0, Err(ENOMEM))
//!     }
//!
//!     fn unmap_pages(&self, _: u64, _: u64, _: u64, _: &mut IotlbGather<'_>) -> u64 {
//!         0
//!     }
//!
//!     fn iotlb_sync(&self, _gather: &IotlbGather<'_>) {}
//!
//!     fn flush_iotlb_all(&self) {}
//!
//!     fn iova_to_phys(&self, _iova: u64) -> u64 {
//!         0
//!     }
//! }
//!
//! assert_eq!(MyDomain.map_pages(0, 0x8000_0000, 4096, 1, Prot::default(), false).0, 0);
//! assert_eq!(MyDomain.iova_to_phys(0x1000), 0);
//! ```
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use super::hw_info::HwInfo;
use crate::{
    alloc::flags::*,
    bindings,
    device::{Bound, Device},
    error::{to_result, Error, Result, VTABLE_DEFAULT_ERROR},
    prelude::*,
    str::CStr,
    types::Opaque,
};
use core::{
    any::TypeId,
    marker::{PhantomData, PhantomPinned},
    mem::offset_of,
    ptr,
};

/// Permissions of a mapping (`IOMMU_READ`, `IOMMU_WRITE`, ...); the
/// default allows nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prot(u32);

impl Prot {
    /// Device reads allowed.
    pub fn read(self) -> bool {
        self.0 & bindings::IOMMU_READ != 0
    }

    /// Device writes allowed.
    pub fn write(self) -> bool {
        self.0 & bindings::IOMMU_WRITE != 0
    }

    /// Memory-mapped I/O (non-cacheable device memory).
    pub fn mmio(self) -> bool {
        self.0 & bindings::IOMMU_MMIO != 0
    }
}

/// A capability the core asks about (`enum iommu_cap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// The IOMMU can make DMA cache coherent (`IOMMU_CAP_CACHE_COHERENCY`).
    CacheCoherency,
    /// The IOMMU can enforce no-execute (`IOMMU_CAP_NOEXEC`).
    NoExec,
    /// Another capability, by its C value.
    Other(u32),
}

impl Capability {
    fn from_raw(raw: bindings::iommu_cap) -> Self {
        match raw {
            bindings::iommu_cap_IOMMU_CAP_CACHE_COHERENCY => Self::CacheCoherency,
            bindings::iommu_cap_IOMMU_CAP_NOEXEC => Self::NoExec,
            other => Self::Other(other),
        }
    }
}

/// The kind of a reserved IOVA region (`enum iommu_resv_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResvType {
    /// Must be identity-mapped in every domain.
    Direct,
    /// Must never be mapped.
    Reserved,
    /// Hardware MSI doorbells the IOMMU handles itself (not mapped).
    Msi,
    /// A window where the kernel maps MSI doorbells in software.
    SwMsi,
}

/// The reserved regions of a device, as the core collects them
/// (`get_resv_regions`).
pub struct ResvRegions<'a> {
    list: *mut bindings::list_head,
    _p: core::marker::PhantomData<&'a mut bindings::list_head>,
}

impl ResvRegions<'_> {
    /// Adds `[start, start + len)` of `kind`, with `prot` (`IOMMU_*` bits).
    ///
    /// # Errors
    ///
    /// `ENOMEM` when the region cannot be allocated.
    pub fn add(&mut self, start: u64, len: u64, prot: u32, kind: ResvType) -> Result {
        let kind = match kind {
            ResvType::Direct => bindings::iommu_resv_type_IOMMU_RESV_DIRECT,
            ResvType::Reserved => bindings::iommu_resv_type_IOMMU_RESV_RESERVED,
            ResvType::Msi => bindings::iommu_resv_type_IOMMU_RESV_MSI,
            ResvType::SwMsi => bindings::iommu_resv_type_IOMMU_RESV_SW_MSI,
        };
        // SAFETY: Plain allocation; any arguments are accepted.
        // CAST: `IOMMU_*` bits fit an `int`; lengths are 64 bits here.
        let region = unsafe {
            bindings::iommu_alloc_resv_region(
                start,
                len as usize,
                prot as i32,
                kind,
                GFP_KERNEL.as_raw(),
            )
        };
        if region.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `region` is a fresh region, `self.list` the core's list head,
        // which owns (and later frees) what is added to it.
        unsafe { bindings::list_add_tail(&raw mut (*region).list, self.list) };
        Ok(())
    }
}

/// `IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_MMIO`: the protection of an MSI region.
pub const PROT_MSI: u32 = bindings::IOMMU_WRITE | bindings::IOMMU_NOEXEC | bindings::IOMMU_MMIO;

/// The IOVA range a flush must cover, collected while unmapping
/// (`struct iommu_iotlb_gather`).
pub struct IotlbGather<'a>(&'a mut bindings::iommu_iotlb_gather);

impl IotlbGather<'_> {
    /// Adds `[iova, iova + size)` to the range.
    pub fn add_range(&mut self, iova: u64, size: u64) {
        let g = &mut *self.0;
        // CAST: `unsigned long` is 64 bits wide on the architectures IOMMU drivers run on.
        let (start, end) = (iova as usize, (iova + size - 1) as usize);
        if g.start > start {
            g.start = start;
        }
        if g.end < end {
            g.end = end;
        }
    }

    /// The range collected so far, `None` when empty.
    pub fn range(&self) -> Option<(u64, u64)> {
        // CAST: see `add_range`.
        (self.0.start <= self.0.end).then(|| (self.0.start as u64, self.0.end as u64 + 1))
    }
}

/// A device inside the IOMMU core's probe or release of it
/// ([`Driver::probe_device`], [`Driver::release_device`]).
///
/// Only the abstraction makes one, for the duration of those callbacks:
/// holding one proves the core is probing or releasing the device under
/// its lock, before a driver can bind to it at probe, so code that must
/// only run then (moving the device's MSIs under a remapping domain:
/// [`crate::irq::remap::RemapDomain::adopt`]) asks for it.
pub struct ProbedDevice<'a> {
    dev: &'a Device,
}

impl core::ops::Deref for ProbedDevice<'_> {
    type Target = Device;

    fn deref(&self) -> &Device {
        self.dev
    }
}

/// An IOMMU instance: what the core calls for the devices behind it.
#[vtable]
pub trait Driver: Send + Sync + Sized + 'static {
    /// What the driver keeps per device behind the IOMMU (a master).
    type Master: Send + Sync;
    /// The driver's translating domain.
    type Paging: PagingDomain<Driver = Self>;

    /// A device whose firmware description names this IOMMU (`ids` are its
    /// requester ids) is probed; returns the driver's data for it.
    fn probe_device(&self, dev: &ProbedDevice<'_>, ids: &[u32]) -> Result<Self::Master>;

    /// The device leaves the IOMMU; `master` is dropped afterwards.
    fn release_device(&self, _dev: &ProbedDevice<'_>, _master: &Self::Master) {}

    /// Allocates a paging domain for `dev` (`IOMMU_HWPT_ALLOC_*` `flags`).
    fn domain_alloc_paging(
        &self,
        dev: &Device,
        master: &Self::Master,
        flags: u32,
    ) -> Result<Self::Paging>;

    /// Attaches `dev` to an identity (untranslated) domain.
    fn attach_identity(&self, dev: &Device, master: &Self::Master) -> Result;

    /// Whether the IOMMU has a capability.
    fn capable(&self, _master: &Self::Master, _cap: Capability) -> bool {
        false
    }

    /// Adds the device's reserved IOVA regions.
    fn get_resv_regions(
        &self,
        _dev: &Device,
        _master: &Self::Master,
        _regions: &mut ResvRegions<'_>,
    ) {
    }

    /// What the IOMMU behind `master` reports to user space.
    fn hw_info(&self, _master: &Self::Master) -> HwInfo {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// A domain that translates IOVAs with page tables.
pub trait PagingDomain: Send + Sync + Sized + 'static {
    /// The driver the domain belongs to.
    type Driver: Driver<Paging = Self>;

    /// Page sizes the domain maps, as a bitmap (`pgsize_bitmap`).
    fn pgsize_bitmap(&self) -> u64;

    /// The last IOVA the domain can map.
    fn aperture_end(&self) -> u64;

    /// Attaches `dev`, moving it from whatever domain it had.
    fn attach(
        &self,
        iommu: &Self::Driver,
        dev: &Device,
        master: &<Self::Driver as Driver>::Master,
    ) -> Result;

    /// Maps `count` pages of `pgsize` bytes at `iova` to `pa`; returns the
    /// bytes mapped and, when it stopped early, why. `atomic` forbids sleeping
    /// allocations.
    fn map_pages(
        &self,
        iova: u64,
        pa: u64,
        pgsize: u64,
        count: u64,
        prot: Prot,
        atomic: bool,
    ) -> (u64, Result);

    /// Unmaps up to `count` pages of `pgsize` bytes at `iova`, adding what it
    /// unmapped to `gather`; returns the bytes unmapped.
    fn unmap_pages(&self, iova: u64, pgsize: u64, count: u64, gather: &mut IotlbGather<'_>) -> u64;

    /// Makes the unmaps collected in `gather` take effect in the IOTLB.
    fn iotlb_sync(&self, gather: &IotlbGather<'_>);

    /// Invalidates every IOTLB entry of the domain.
    fn flush_iotlb_all(&self);

    /// The physical address `iova` translates to, 0 when unmapped.
    fn iova_to_phys(&self, iova: u64) -> u64;
}

/// The abstraction's per-master data (`dev_iommu_priv`).
struct MasterData<T: Driver> {
    /// # Invariants
    ///
    /// Points to the [`Registration`] that probed the device; it outlives the
    /// device's membership in the IOMMU (unregistering releases the device).
    /// Its lifetime is erased here: the pointer is only followed while the
    /// device is a member.
    reg: *const Registration<'static, T>,
    master: T::Master,
}

/// A domain with the C `iommu_domain` it embeds.
#[repr(C)]
struct Domain<D> {
    raw: Opaque<bindings::iommu_domain>,
    inner: D,
}

/// The sysfs attribute groups of every IOMMU a [`Registration`] registers:
/// none (the list holds only its terminating NULL). What matters is its
/// address, the one thing the core stores for us besides the operations:
/// a `static` has one address (a `const` may have one per use, and a
/// generic `Registration<T>` cannot have a `static`), so an `iommu_device`
/// whose class device carries it was registered by this abstraction.
struct Groups([*const bindings::attribute_group; 1]);

// SAFETY: The list is never written, by us or by the driver core.
unsafe impl Sync for Groups {}

static REGISTRATION_GROUPS: Groups = Groups([ptr::null()]);

/// A registered IOMMU, living at most as long as the binding of its
/// hardware device (`'a`), as [`crate::irq::Registration`] does.
///
/// The layout is C's and starts, for every `T`, with the same two fields:
/// `raw` at offset 0, then `type_id`; so once an `iommu_device` is known to
/// be the `raw` of some registration ([`REGISTRATION_GROUPS`]), its
/// `type_id` can be read to tell whether it is one of `T`.
///
/// # Invariants
///
/// While the registration lives, `raw` is registered with the IOMMU core
/// (and in sysfs, with [`REGISTRATION_GROUPS`]) with the operations of
/// `T`, and `type_id` is `TypeId::of::<T>()`.
#[pin_data(PinnedDrop)]
#[repr(C)]
pub struct Registration<'a, T: Driver> {
    #[pin]
    raw: Opaque<bindings::iommu_device>,
    type_id: TypeId,
    #[pin]
    data: T,
    #[pin]
    _pin: PhantomPinned,
    _dev: PhantomData<&'a Device<Bound>>,
}

// SAFETY: The C `iommu_device` is only touched by the core under its own
// locking; `T` is `Send + Sync`.
unsafe impl<T: Driver> Send for Registration<'_, T> {}
// SAFETY: As above.
unsafe impl<T: Driver> Sync for Registration<'_, T> {}

impl<'a, T: Driver> Registration<'a, T> {
    /// Registers the IOMMU behind `parent` (its hardware device), named
    /// `name` in `/sys/class/iommu`. Devices already present whose firmware
    /// names this IOMMU are probed before this returns.
    pub fn new<'b>(
        parent: &'a Device<Bound>,
        name: &'b CStr,
        data: impl PinInit<T, Error> + 'b,
    ) -> impl PinInit<Self, Error> + 'b
    where
        'a: 'b,
    {
        try_pin_init!(&this in Self {
            raw: Opaque::zeroed(),
            type_id: TypeId::of::<T>(),
            data <- data,
            _pin: PhantomPinned,
            _dev: PhantomData,
            _: {
                // SAFETY: `this` is pinned and `raw` initialized (zeroed).
                let raw = unsafe { Opaque::cast_into(ptr::addr_of!((*this.as_ptr()).raw)) };
                // The class device keeps the list's address: the core only reads through it.
                let groups = REGISTRATION_GROUPS.0.as_ptr().cast_mut();
                // SAFETY: `raw` is a zeroed `iommu_device`, `parent` a bound device, `groups` a
                // NULL-terminated static list, and the format string takes exactly one string
                // argument.
                to_result(unsafe {
                    bindings::iommu_device_sysfs_add(raw, parent.as_raw(), groups, c"%s".as_char_ptr(), name.as_char_ptr())
                })?;
                // SAFETY: `raw` was set up for sysfs above; the ops table is static; `data`
                // is initialized, so callbacks made during registration can use it.
                let ret = unsafe { bindings::iommu_device_register(raw, &Self::OPS, parent.as_raw()) };
                if ret != 0 {
                    // SAFETY: added to sysfs above, not registered.
                    unsafe { bindings::iommu_device_sysfs_remove(raw) };
                    return Err(Error::from_errno(ret));
                }
            },
        })
    }

    /// The driver's data.
    pub fn data(&self) -> &T {
        &self.data
    }

    fn raw(&self) -> *mut bindings::iommu_device {
        self.raw.get()
    }

    const OPS: bindings::iommu_ops = bindings::iommu_ops {
        capable: Some(Self::capable_callback),
        domain_alloc_identity: Some(Self::alloc_identity_callback),
        domain_alloc_paging_flags: Some(Self::alloc_paging_callback),
        probe_device: Some(Self::probe_device_callback),
        release_device: Some(Self::release_device_callback),
        device_group: Some(Self::device_group_callback),
        of_xlate: Some(Self::of_xlate_callback),
        get_resv_regions: if T::HAS_GET_RESV_REGIONS {
            Some(Self::resv_regions_callback)
        } else {
            None
        },
        hw_info: if T::HAS_HW_INFO {
            Some(Self::hw_info_callback)
        } else {
            None
        },
        default_domain_ops: &Self::PAGING_OPS,
        owner: crate::module::this_module::<T::OwnerModule>().as_ptr(),
        // SAFETY: All-zero is a valid `iommu_ops` (no callbacks, no domains).
        ..unsafe { core::mem::zeroed() }
    };

    const IDENTITY_OPS: bindings::iommu_domain_ops = bindings::iommu_domain_ops {
        attach_dev: Some(Self::identity_attach_callback),
        free: Some(Self::identity_free_callback),
        // SAFETY: All-zero is a valid `iommu_domain_ops`.
        ..unsafe { core::mem::zeroed() }
    };

    const PAGING_OPS: bindings::iommu_domain_ops = bindings::iommu_domain_ops {
        attach_dev: Some(Self::paging_attach_callback),
        map_pages: Some(Self::map_pages_callback),
        unmap_pages: Some(Self::unmap_pages_callback),
        flush_iotlb_all: Some(Self::flush_iotlb_all_callback),
        iotlb_sync: Some(Self::iotlb_sync_callback),
        iova_to_phys: Some(Self::iova_to_phys_callback),
        free: Some(Self::paging_free_callback),
        // SAFETY: All-zero is a valid `iommu_domain_ops`.
        ..unsafe { core::mem::zeroed() }
    };

    /// Whether `iommu` is the `raw` of a `Registration<T>`: its class
    /// device carries [`REGISTRATION_GROUPS`], so it is the `raw` of a
    /// registration of some type, and that registration's `type_id` is
    /// `T`'s. Not the address of [`Self::OPS`]: Rust does not promise a
    /// `const` one address, and two uses may compare unequal.
    ///
    /// # Safety
    ///
    /// `iommu` is a registered `iommu_device`.
    unsafe fn is_registration(iommu: *mut bindings::iommu_device) -> bool {
        // SAFETY: `iommu` is registered (the caller's promise), so valid; its class device,
        // when it has one, lives until it is unregistered.
        let groups = unsafe {
            let dev = (*iommu).dev;
            if dev.is_null() {
                return false;
            }
            (*dev).groups
        };
        if !ptr::eq(groups, REGISTRATION_GROUPS.0.as_ptr()) {
            return false;
        }
        // `raw` is at offset 0 and `type_id` at the same offset in every `Registration<U>`
        // (`#[repr(C)]`, the same two first fields).
        let at = offset_of!(Self, type_id) - offset_of!(Self, raw);
        // SAFETY: Only `Registration::new` hands `REGISTRATION_GROUPS` (private to this
        // module) to the core, so `iommu` is the `raw` of a live `Registration<U>` for some
        // `U`, whose `type_id` is at `at` and initialized before `raw` was registered.
        let type_id = unsafe { iommu.cast::<u8>().add(at).cast::<TypeId>().read() };
        type_id == TypeId::of::<T>()
    }

    /// The master data the abstraction stored for `dev` at probe.
    ///
    /// # Safety
    ///
    /// `dev` is a device probed by an IOMMU of type `T` and not yet released.
    unsafe fn master<'m>(dev: *mut bindings::device) -> &'m MasterData<T> {
        // SAFETY: By the safety requirements, probe stored a `KBox<MasterData<T>>` there.
        unsafe { &*bindings::dev_iommu_priv_get(dev).cast::<MasterData<T>>() }
    }

    extern "C" fn probe_device_callback(dev: *mut bindings::device) -> *mut bindings::iommu_device {
        // SAFETY: The core passes a valid device.
        let fwspec = unsafe { bindings::dev_iommu_fwspec_get(dev) };
        if fwspec.is_null() {
            return ERR_PTR_ENODEV();
        }
        // SAFETY: `fwspec` is the device's valid fwspec.
        let (fwnode, num) = unsafe { ((*fwspec).iommu_fwnode, (*fwspec).num_ids) };
        // SAFETY: `fwnode` is a valid firmware node (or NULL, which finds nothing).
        let iommu = unsafe { bindings::iommu_device_from_fwnode(fwnode) };
        // SAFETY: `iommu` is NULL or a registered `iommu_device`, valid while its driver is
        // bound (the core probes devices under that driver's binding).
        if iommu.is_null() || !unsafe { Self::is_registration(iommu) } {
            return ERR_PTR_ENODEV();
        }
        // SAFETY: `iommu` is the `raw` field of a `Registration<T>` (checked just above).
        let reg: &Self = unsafe { &*crate::container_of!(Opaque::cast_from(iommu), Self, raw) };
        // SAFETY: `ids` has `num_ids` entries.
        let ids = unsafe { core::slice::from_raw_parts((*fwspec).ids.as_ptr(), num as usize) };
        // SAFETY: `dev` is valid for the duration of the call.
        let device = unsafe { Device::from_raw(dev) };
        // The box first: once the driver has probed the device, nothing may
        // fail, or the core would never call `release_device` to undo it.
        let res = KBox::<MasterData<T>>::new_uninit(GFP_KERNEL)
            .map_err(Error::from)
            .and_then(|slot| {
                let master = reg.data.probe_device(&ProbedDevice { dev: device }, ids)?;
                Ok(KBox::write(
                    slot,
                    MasterData {
                        reg: ptr::from_ref(reg).cast(),
                        master,
                    },
                ))
            });
        match res {
            Ok(data) => {
                // SAFETY: `dev` is valid; the core keeps `dev->iommu` until release.
                unsafe { bindings::dev_iommu_priv_set(dev, KBox::into_raw(data).cast()) };
                iommu
            }
            Err(e) => e.to_ptr(),
        }
    }

    extern "C" fn release_device_callback(dev: *mut bindings::device) {
        // SAFETY: The core releases only devices we probed; the pointer was made by
        // `KBox::into_raw` in probe and is not used again after this.
        let data =
            unsafe { KBox::from_raw(bindings::dev_iommu_priv_get(dev).cast::<MasterData<T>>()) };
        // SAFETY: `data.reg` is valid by the type invariant.
        let reg = unsafe { &*data.reg };
        // SAFETY: `dev` is valid for the duration of the call.
        let dev = unsafe { Device::from_raw(dev) };
        reg.data.release_device(&ProbedDevice { dev }, &data.master);
        // `dev->iommu`, with the stale pointer, is freed by the core right
        // after this (`dev_iommu_free()`); it may not be set here, outside
        // the probe lock.
    }

    extern "C" fn device_group_callback(dev: *mut bindings::device) -> *mut bindings::iommu_group {
        // SAFETY: The core passes a valid device.
        if unsafe { bindings::dev_is_pci(dev) } {
            // SAFETY: `dev` is a PCI device.
            unsafe { bindings::pci_device_group(dev) }
        } else {
            // SAFETY: `dev` is valid.
            unsafe { bindings::generic_device_group(dev) }
        }
    }

    extern "C" fn of_xlate_callback(
        dev: *mut bindings::device,
        args: *const bindings::of_phandle_args,
    ) -> i32 {
        // SAFETY: The core passes valid arguments.
        let args = unsafe { &*args };
        if args.args_count != 1 {
            return EINVAL.to_errno();
        }
        // SAFETY: `dev` is valid and `args.args` holds at least one id.
        unsafe { bindings::iommu_fwspec_add_ids(dev, args.args.as_ptr(), 1) }
    }

    extern "C" fn resv_regions_callback(
        dev: *mut bindings::device,
        list: *mut bindings::list_head,
    ) {
        // SAFETY: The core asks only about devices we probed.
        let m = unsafe { Self::master(dev) };
        let mut regions = ResvRegions {
            list,
            _p: core::marker::PhantomData,
        };
        // SAFETY: `m.reg` is valid; `dev` is valid for the call.
        unsafe { &*m.reg }.data.get_resv_regions(
            unsafe { Device::from_raw(dev) },
            &m.master,
            &mut regions,
        );
    }

    extern "C" fn capable_callback(dev: *mut bindings::device, cap: bindings::iommu_cap) -> bool {
        // SAFETY: The core asks only about devices we probed.
        let m = unsafe { Self::master(dev) };
        // SAFETY: `m.reg` is valid by the type invariant of `MasterData`.
        unsafe { &*m.reg }
            .data
            .capable(&m.master, Capability::from_raw(cap))
    }

    extern "C" fn hw_info_callback(
        dev: *mut bindings::device,
        length: *mut u32,
        kind: *mut bindings::iommu_hw_info_type,
    ) -> *mut core::ffi::c_void {
        // SAFETY: The core asks only about devices we probed.
        let m = unsafe { Self::master(dev) };
        // SAFETY: `m.reg` is valid by the type invariant of `MasterData`.
        let info = unsafe { &*m.reg }.data.hw_info(&m.master);
        // SAFETY: `kind` is valid for reads and writes: it holds the requested type.
        let wanted = unsafe { *kind };
        if wanted != bindings::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_DEFAULT
            && wanted != info.kind()
        {
            return EOPNOTSUPP.to_ptr();
        }
        match info.into_raw() {
            Ok((data, len)) => {
                // SAFETY: `length` and `kind` are valid for writes.
                unsafe {
                    *length = len;
                    *kind = info.kind();
                }
                data
            }
            Err(e) => e.to_ptr(),
        }
    }

    extern "C" fn alloc_identity_callback(
        _dev: *mut bindings::device,
    ) -> *mut bindings::iommu_domain {
        let domain = KBox::new(
            Domain {
                raw: Opaque::zeroed(),
                inner: (),
            },
            GFP_KERNEL,
        );
        match domain {
            Ok(d) => {
                let d = KBox::into_raw(d);
                // SAFETY: `d` is a valid, exclusively owned allocation.
                let raw = unsafe { (*d).raw.get() };
                // SAFETY: `raw` is valid; the core fills in the rest.
                unsafe { (*raw).ops = &Self::IDENTITY_OPS };
                raw
            }
            Err(_) => ENOMEM.to_ptr(),
        }
    }

    extern "C" fn identity_attach_callback(
        _domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
        _old: *mut bindings::iommu_domain,
    ) -> i32 {
        // SAFETY: The core attaches only devices we probed.
        let m = unsafe { Self::master(dev) };
        // SAFETY: `m.reg` is valid; `dev` is valid for the call.
        let res = unsafe { &*m.reg }
            .data
            .attach_identity(unsafe { Device::from_raw(dev) }, &m.master);
        match res {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    extern "C" fn identity_free_callback(domain: *mut bindings::iommu_domain) {
        // SAFETY: Identity domains are `Domain<()>` allocated in `alloc_identity_callback`.
        drop(unsafe {
            KBox::from_raw(
                crate::container_of!(Opaque::cast_from(domain), Domain<()>, raw).cast_mut(),
            )
        });
    }

    extern "C" fn alloc_paging_callback(
        dev: *mut bindings::device,
        flags: u32,
        user_data: *const bindings::iommu_user_data,
    ) -> *mut bindings::iommu_domain {
        if !user_data.is_null() {
            return EOPNOTSUPP.to_ptr();
        }
        // SAFETY: The core allocates only for devices we probed.
        let m = unsafe { Self::master(dev) };
        // SAFETY: `m.reg` is valid; `dev` is valid for the call.
        let res = unsafe { &*m.reg }.data.domain_alloc_paging(
            unsafe { Device::from_raw(dev) },
            &m.master,
            flags,
        );
        let inner = match res {
            Ok(inner) => inner,
            Err(e) => return e.to_ptr(),
        };
        let (pgsizes, end) = (inner.pgsize_bitmap(), inner.aperture_end());
        match KBox::new(
            Domain {
                raw: Opaque::zeroed(),
                inner,
            },
            GFP_KERNEL,
        ) {
            Ok(d) => {
                let d = KBox::into_raw(d);
                // SAFETY: `d` is a valid, exclusively owned allocation.
                let raw = unsafe { &mut *(*d).raw.get() };
                // CAST: `unsigned long` and `dma_addr_t` are 64 bits on IOMMU architectures.
                // The core sets the type of the domains it allocates; iommufd,
                // which calls the driver directly, relies on the driver.
                raw.type_ = bindings::__IOMMU_DOMAIN_PAGING;
                raw.pgsize_bitmap = pgsizes as usize;
                raw.geometry.aperture_start = 0;
                raw.geometry.aperture_end = end;
                raw.geometry.force_aperture = true;
                raw.ops = &Self::PAGING_OPS;
                raw
            }
            Err(_) => ENOMEM.to_ptr(),
        }
    }

    /// The paging domain embedding `domain`.
    ///
    /// # Safety
    ///
    /// `domain` was returned by `alloc_paging_callback` and is not freed.
    unsafe fn paging<'p>(domain: *mut bindings::iommu_domain) -> &'p T::Paging {
        // SAFETY: By the safety requirements `domain` is the `raw` field of a live
        // `Domain<T::Paging>`.
        unsafe { &(*crate::container_of!(Opaque::cast_from(domain), Domain<T::Paging>, raw)).inner }
    }

    extern "C" fn paging_attach_callback(
        domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
        _old: *mut bindings::iommu_domain,
    ) -> i32 {
        // SAFETY: The core attaches our devices to our live domains.
        let (d, m) = unsafe { (Self::paging(domain), Self::master(dev)) };
        // SAFETY: `m.reg` is valid by the type invariant of `MasterData`.
        let reg = unsafe { &*m.reg };
        // SAFETY: `dev` is valid for the duration of the call.
        let dev = unsafe { Device::from_raw(dev) };
        match d.attach(&reg.data, dev, &m.master) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    extern "C" fn map_pages_callback(
        domain: *mut bindings::iommu_domain,
        iova: usize,
        paddr: bindings::phys_addr_t,
        pgsize: usize,
        pgcount: usize,
        prot: i32,
        gfp: bindings::gfp_t,
        mapped: *mut usize,
    ) -> i32 {
        // SAFETY: The core maps into our live domains.
        let d = unsafe { Self::paging(domain) };
        let atomic = gfp & (1 << bindings::___GFP_DIRECT_RECLAIM_BIT) == 0;
        // CAST: sizes and addresses are 64 bits wide here; `prot` holds `IOMMU_*` bits.
        let (n, res) = d.map_pages(
            iova as u64,
            paddr,
            pgsize as u64,
            pgcount as u64,
            Prot(prot as u32),
            atomic,
        );
        // SAFETY: `mapped` is a valid out-parameter.
        unsafe { *mapped += n as usize };
        match res {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    extern "C" fn unmap_pages_callback(
        domain: *mut bindings::iommu_domain,
        iova: usize,
        pgsize: usize,
        pgcount: usize,
        gather: *mut bindings::iommu_iotlb_gather,
    ) -> usize {
        // SAFETY: The core unmaps from our live domains with a valid gather.
        let (d, g) = unsafe { (Self::paging(domain), &mut *gather) };
        // CAST: 64-bit sizes and addresses.
        d.unmap_pages(
            iova as u64,
            pgsize as u64,
            pgcount as u64,
            &mut IotlbGather(g),
        ) as usize
    }

    extern "C" fn iotlb_sync_callback(
        domain: *mut bindings::iommu_domain,
        gather: *mut bindings::iommu_iotlb_gather,
    ) {
        // SAFETY: As for unmap.
        let (d, g) = unsafe { (Self::paging(domain), &mut *gather) };
        d.iotlb_sync(&IotlbGather(g));
    }

    extern "C" fn flush_iotlb_all_callback(domain: *mut bindings::iommu_domain) {
        // SAFETY: The core flushes our live domains.
        unsafe { Self::paging(domain) }.flush_iotlb_all();
    }

    extern "C" fn iova_to_phys_callback(
        domain: *mut bindings::iommu_domain,
        iova: bindings::dma_addr_t,
    ) -> bindings::phys_addr_t {
        // SAFETY: The core looks up our live domains.
        unsafe { Self::paging(domain) }.iova_to_phys(iova)
    }

    extern "C" fn paging_free_callback(domain: *mut bindings::iommu_domain) {
        // SAFETY: The core frees each of our domains once, when no device uses it.
        drop(unsafe {
            KBox::from_raw(
                crate::container_of!(Opaque::cast_from(domain), Domain<T::Paging>, raw).cast_mut(),
            )
        });
    }
}

#[pinned_drop]
impl<T: Driver> PinnedDrop for Registration<'_, T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Registered (type invariant); unregistering releases every device
        // behind the IOMMU before `data` is dropped after this.
        unsafe {
            bindings::iommu_device_unregister(self.raw());
            bindings::iommu_device_sysfs_remove(self.raw());
        }
    }
}

#[allow(non_snake_case)]
fn ERR_PTR_ENODEV<U>() -> *mut U {
    ENODEV.to_ptr()
}
