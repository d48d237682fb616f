// SPDX-License-Identifier: GPL-2.0

//! edu as an IMS device: a model of DSA-like IMS semantics on a device that
//! has none.
//!
//! The driver gives edu an interrupt message store (`kernel::pci::ims`,
//! slots in a DSA-like format, `crate::slots`, in device memory or in a
//! DMA-coherent queue) and plays the device's part in software:
//!
//! - A *submission* carries a handle (the slot) and a PASID, as a DSA
//!   descriptor's completion interrupt handle does. The model reads the
//!   slot as the device would. An unused slot, or a PASID other than the
//!   slot's, completes with an invalid-handle error (DSA's 0x19) and no
//!   interrupt.
//! - A masked slot gets its pending bit set instead; unmasking sends it.
//! - Otherwise the device writes the slot's data to the slot's address: edu
//!   sends the message as its MSI, with the slot's address and data in its
//!   MSI capability for that one write, then its own message back. So the
//!   write is the device's own, carrying its requester ID, through the
//!   IOMMU (remapped, or translated via sw_msi) into the interrupt
//!   controller. edu's DMA engine cannot do this everywhere under QEMU
//!   10.0: its writes carry no requester ID, which the GIC ITS needs, and
//!   the RISC-V IOMMU's MSI path drops them (`Documentation/ims.md`).
//!
//! debugfs `qemu_edu/<BDF>/ims` takes the commands and shows the state.

use kernel::{
    device::Bound,
    devres::Devres,
    fmt,
    iommu::iommufd::Binding,
    irq::IrqReturn,
    new_mutex,
    pci::{self, capability::CapabilityId, ims::ImsDomain},
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

use crate::{
    edu::Edu,
    slots::{Slot, SlotChip, SlotEvents, Storage, CTRL_MASK, CTRL_PENDING},
};

/// DSA's completion status for an invalid interrupt handle.
pub(crate) const INVALID_HANDLE: u32 = 0x19;
/// The most slots a store may have (DSA's IMS is 2048; twice that here).
pub(crate) const MAX_SLOTS: u32 = 8192;

/// The longest a handler is held (`hold_handlers 1`): a window widened
/// for tests, bounded so that a test that dies cannot leave a CPU spinning
/// in hard interrupt context.
const HOLD_MAX: Delta = Delta::from_secs(2);
/// The longest delay a submission takes between its reading of the slot
/// and its use of it (`submit_delay`), another window widened for tests.
const SUBMIT_DELAY_MAX_MS: u32 = 1000;

/// What the device saw of its slots' interrupts.
pub(crate) struct ImsEvents {
    /// Interrupts handled, per slot.
    fired: KVec<Atomic<u32>>,
    /// Nonzero: every handler, once it has counted itself, spins until it
    /// is cleared (at most [`HOLD_MAX`]), so that a test can act while an
    /// interrupt is in progress (debugfs `hold_handlers`).
    hold: Atomic<u32>,
    /// Messages held back while masked that the device sent on unmask.
    sent_on_unmask: Atomic<u64>,
}

impl SlotEvents for ImsEvents {
    fn sent_on_unmask(&self, _slot: u32) {
        self.sent_on_unmask.fetch_add(1, Relaxed);
    }

    fn fired(&self, slot: u32) -> IrqReturn {
        if let Some(c) = self.fired.get(slot as usize) {
            c.fetch_add(1, Relaxed);
        }
        if self.hold.load(Relaxed) != 0 {
            let start = Instant::<Monotonic>::now();
            while self.hold.load(Relaxed) != 0 && start.elapsed() < HOLD_MAX {
                core::hint::spin_loop();
            }
        }
        IrqReturn::Handled
    }
}

type Chip = SlotChip<ImsEvents>;

/// Counters of the model.
struct Counters {
    submitted: Atomic<u64>,
    sent: Atomic<u64>,
    pended: Atomic<u64>,
    invalid: Atomic<u64>,
    last_status: Atomic<u32>,
    /// Time and count of the last `alloc` and `free` batches.
    alloc_ns: Atomic<u64>,
    alloc_n: Atomic<u64>,
    free_ns: Atomic<u64>,
    free_n: Atomic<u64>,
}

impl Counters {
    fn new() -> Self {
        Self {
            submitted: Atomic::new(0),
            sent: Atomic::new(0),
            pended: Atomic::new(0),
            invalid: Atomic::new(0),
            last_status: Atomic::new(0),
            alloc_ns: Atomic::new(0),
            alloc_n: Atomic::new(0),
            free_ns: Atomic::new(0),
            free_n: Atomic::new(0),
        }
    }
}

/// What the device makes of a submission, on one reading of its slot.
enum Completion {
    /// Not an enabled slot with the submission's PASID: DSA's
    /// invalid-handle status, no interrupt.
    Invalid,
    /// Masked: the slot's pending bit is set.
    Pended,
    /// The message of the slot as read goes out.
    Send(Slot),
}

/// edu's IMS: its domain, created at probe, and the model's counters.
#[pin_data]
pub(crate) struct EduIms {
    /// Offset of edu's MSI capability in config space.
    msi_cap: usize,
    #[pin]
    domain: ImsDomain<Chip>,
    /// The iommufd context the device is handed to, if any (dropped after
    /// the domain has freed its interrupts).
    #[pin]
    iommufd: Mutex<Option<Devres<Binding>>>,
    counters: Counters,
    /// Held by the device model from its reading of a slot until the
    /// write it decided on is out, and by the driver's frees: an
    /// interrupt is freed with no completion in flight to it.
    #[pin]
    inflight: Mutex<()>,
    /// Milliseconds the next submission sleeps between its read of the
    /// slot and its use of what it read (debugfs `submit_delay`), taken by
    /// that submission.
    submit_delay_ms: Atomic<u32>,
}

impl EduIms {
    /// The IMS of `pdev`: `slots` slots in `storage` (`array` or `queue`).
    pub(crate) fn new<'a>(
        pdev: &'a pci::Device<Bound>,
        slots: u32,
        storage: &str,
    ) -> Result<impl PinInit<Self, Error> + 'a> {
        if !(1..=MAX_SLOTS).contains(&slots) {
            dev_err!(pdev, "ims_slots={slots} is outside 1..{MAX_SLOTS}\n");
            return Err(EINVAL);
        }
        let msi_cap = pdev.find_capability(CapabilityId::Msi).ok_or(ENODEV)?;
        let storage = match storage {
            "array" => Storage::device_array(slots)?,
            "queue" => Storage::queue(pdev.as_ref(), slots)?,
            _ => return Err(EINVAL),
        };
        let mut fired = KVec::with_capacity(slots as usize, GFP_KERNEL)?;
        for _ in 0..slots {
            fired.push(Atomic::new(0), GFP_KERNEL)?;
        }
        let events = ImsEvents {
            fired,
            hold: Atomic::new(0),
            sent_on_unmask: Atomic::new(0),
        };
        let chip = Arc::pin_init(SlotChip::new(storage, events), GFP_KERNEL)?;
        Ok(try_pin_init!(Self {
            msi_cap,
            domain <- ImsDomain::new(pdev, slots, c"qemu_edu-ims", chip),
            iommufd <- new_mutex!(None, "EduIms::iommufd"),
            inflight <- new_mutex!((), "EduIms::inflight"),
            counters: Counters::new(),
            submit_delay_ms: Atomic::new(0),
        }))
    }

    /// `alloc N`: N interrupts, all or none.
    fn alloc(&self, n: u32) -> Result {
        let d = &self.domain;
        let start = Instant::<Monotonic>::now();
        let mut got = KVec::with_capacity(n as usize, GFP_KERNEL)?;
        for _ in 0..n {
            match d.alloc() {
                Ok((slot, _)) => {
                    // A new interrupt: nothing fired yet.
                    if let Some(f) = d.chip().events.fired.get(slot as usize) {
                        f.store(0, Relaxed);
                    }
                    got.push(slot, GFP_KERNEL)?
                }
                Err(e) => {
                    for &s in got.iter() {
                        let _ = d.free(s);
                    }
                    return Err(e);
                }
            }
        }
        // CAST: a batch takes far less than 2^63 ns.
        self.counters
            .alloc_ns
            .store(start.elapsed().as_nanos() as u64, Relaxed);
        self.counters.alloc_n.store(u64::from(n), Relaxed);
        Ok(())
    }

    /// `free all`, once no completion is in flight (see [`EduIms::free`]).
    fn free_all(&self) {
        let _inflight = self.inflight.lock();
        let start = Instant::<Monotonic>::now();
        let n = self.domain.free_all();
        // CAST: as above.
        self.counters
            .free_ns
            .store(start.elapsed().as_nanos() as u64, Relaxed);
        self.counters.free_n.store(n as u64, Relaxed);
    }

    /// `submit SLOT PASID`: a completion with that handle and PASID; the
    /// model's device checks the slot and sends, pends or refuses.
    ///
    /// The device reads the slot once ([`SlotChip::access`]) and decides
    /// on that reading: refused unless enabled with this PASID, pending if
    /// masked (set in the same access, so an unmask sees it), otherwise the
    /// message it read is sent, not the slot as it is by the time the
    /// write goes out. Until then the completion is in flight: `inflight`
    /// is held, and the driver frees no interrupt meanwhile.
    fn submit(&self, edu: &Edu, slot: u32, pasid: u32) -> Result {
        self.counters.submitted.fetch_add(1, Relaxed);
        let _inflight = self.inflight.lock();
        let decision = self.domain.chip().access(slot, |s| {
            if !(s.enabled() && s.pasid() == Some(pasid)) {
                Completion::Invalid
            } else if s.ctrl & CTRL_MASK != 0 {
                s.ctrl |= CTRL_PENDING;
                Completion::Pended
            } else {
                Completion::Send(*s)
            }
        });
        let read = match decision.unwrap_or(Completion::Invalid) {
            Completion::Invalid => {
                self.counters.invalid.fetch_add(1, Relaxed);
                self.counters.last_status.store(INVALID_HANDLE, Relaxed);
                return Err(EINVAL);
            }
            Completion::Pended => {
                self.counters.last_status.store(0, Relaxed);
                self.counters.pended.fetch_add(1, Relaxed);
                return Ok(());
            }
            Completion::Send(read) => read,
        };
        self.counters.last_status.store(0, Relaxed);
        self.widen();
        self.send(edu, &read)
    }

    /// Sleeps for the submission delay set with `submit_delay`, if any,
    /// and clears it.
    fn widen(&self) {
        let ms = self.submit_delay_ms.xchg(0, Relaxed);
        if ms != 0 {
            fsleep(Delta::from_millis(i64::from(ms)));
        }
    }

    /// The device writes the message of `s`, a slot as it read it: as its
    /// MSI, or, with `ims_dma`, with its DMA engine.
    fn send(&self, edu: &Edu, s: &Slot) -> Result {
        if crate::module_parameters::ims_dma.value() {
            edu.dma_message(s.address, s.data)?;
        } else {
            self.domain
                .with_device(|dev| edu.send_message(dev, self.msi_cap, s.address, s.data))?;
        }
        self.counters.sent.fetch_add(1, Relaxed);
        Ok(())
    }

    /// `free SLOT`: the driver frees the interrupt once no completion is
    /// in flight to it (a DSA driver drains its work queues first).
    fn free(&self, slot: u32) -> Result {
        let _inflight = self.inflight.lock();
        self.domain.free(slot)
    }

    /// `iommufd FD PT`: hands the device to the iommufd context of the
    /// writer's file descriptor FD, attached to IOAS or HW page table PT, so
    /// IMS doorbells are mapped by iommufd's sw_msi; `iommufd off` gives it
    /// back to the DMA API. Only without IMS interrupts (`EBUSY`): their
    /// messages hold addresses of the domain they were allocated in.
    fn iommufd(&self, fd: Option<(i32, u32)>) -> Result {
        let mut b = self.iommufd.lock();
        if self.domain.count() != 0 {
            return Err(EBUSY);
        }
        match fd {
            Some((fd, pt)) => {
                if b.is_some() {
                    return Err(EBUSY);
                }
                *b = Some(
                    self.domain
                        .with_device(|dev| Binding::new(dev.as_ref(), fd, pt))?,
                );
            }
            None => drop(b.take().ok_or(ENOENT)?),
        }
        Ok(())
    }

    /// Handles one command written to `ims` (see `Documentation/ims.md`).
    pub(crate) fn command(&self, edu: &Edu, req: &str) -> Result {
        let mut w = req.split_whitespace();
        let cmd = w.next().ok_or(EINVAL)?;
        let mut num = || -> Result<u32> { w.next().ok_or(EINVAL)?.parse().map_err(|_| EINVAL) };
        let res = match cmd {
            "pasid" => {
                let p = num()?;
                self.domain.set_pasid(p)
            }
            "alloc" => {
                let n = num()?;
                self.alloc(n)
            }
            "free" => match w.next().ok_or(EINVAL)? {
                "all" => {
                    self.free_all();
                    Ok(())
                }
                s => {
                    let slot = s.parse().map_err(|_| EINVAL)?;
                    self.free(slot)
                }
            },
            "submit" => {
                let (slot, pasid) = (num()?, num()?);
                self.submit(edu, slot, pasid)
            }
            "mask" => {
                let slot = num()?;
                self.domain.mask(slot)
            }
            // The device sends what it held back while masked as the chip
            // is unmasked (`SlotChip`'s `unmask`), however the IRQ core
            // came to unmask it.
            "unmask" => {
                let slot = num()?;
                self.domain.unmask(slot)
            }
            "iommufd" => match w.next().ok_or(EINVAL)? {
                "off" => self.iommufd(None),
                fd => {
                    let fd = fd.parse().map_err(|_| EINVAL)?;
                    let pt = w.next().ok_or(EINVAL)?.parse().map_err(|_| EINVAL)?;
                    self.iommufd(Some((fd, pt)))
                }
            },
            "hold_handlers" => {
                let on = num()?;
                self.domain.chip().events.hold.store(on, Relaxed);
                Ok(())
            }
            "submit_delay" => {
                let ms = num()?;
                if ms > SUBMIT_DELAY_MAX_MS {
                    return Err(EINVAL);
                }
                self.submit_delay_ms.store(ms, Relaxed);
                Ok(())
            }
            "change_pasid" => {
                let (slot, pasid) = (num()?, num()?);
                self.domain.change_pasid(slot, pasid)
            }
            _ => Err(EINVAL),
        };
        if w.next().is_some() {
            return Err(EINVAL);
        }
        res
    }

    /// The state: one `key value` line each, then a line per allocated
    /// slot: `slot S irq V fired N ctrl C address A data D`.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        writeln!(f, "submitted {}", c.submitted.load(Relaxed))?;
        writeln!(f, "sent {}", c.sent.load(Relaxed))?;
        writeln!(f, "pended {}", c.pended.load(Relaxed))?;
        writeln!(
            f,
            "sent_on_unmask {}",
            self.domain.chip().events.sent_on_unmask.load(Relaxed)
        )?;
        writeln!(f, "invalid_handle {}", c.invalid.load(Relaxed))?;
        writeln!(f, "last_status {:#x}", c.last_status.load(Relaxed))?;
        writeln!(
            f,
            "last_alloc {} {}",
            c.alloc_n.load(Relaxed),
            c.alloc_ns.load(Relaxed)
        )?;
        writeln!(
            f,
            "last_free {} {}",
            c.free_n.load(Relaxed),
            c.free_ns.load(Relaxed)
        )?;
        let d = &self.domain;
        let chip = d.chip();
        writeln!(
            f,
            "domain {} slots {} storage {}",
            d.slots(),
            d.count(),
            chip.storage.kind()
        )?;
        writeln!(f, "pasid {}", d.pasid())?;
        writeln!(
            f,
            "send {}",
            if crate::module_parameters::ims_dma.value() {
                "dma"
            } else {
                "msi"
            }
        )?;
        // The binding ends when the device unbinds, if not before.
        match self
            .iommufd
            .lock()
            .as_ref()
            .and_then(|b| b.try_access_with(|b| b.pt_id()))
        {
            Some(pt) => writeln!(f, "iommufd pt {}", pt)?,
            None => writeln!(f, "iommufd none")?,
        }
        writeln!(f, "bytes_per_slot {}", driver_bytes_per_slot())?;
        d.try_for_each_irq(|slot, irq| {
            let s = chip.storage.read(slot).unwrap_or_default();
            let fired = chip
                .events
                .fired
                .get(slot as usize)
                .map_or(0, |c| c.load(Relaxed));
            writeln!(
                f,
                "slot {slot} irq {irq} fired {fired} ctrl {:#x} address {:#x} data {:#x}",
                s.ctrl, s.address, s.data
            )
        })
    }
}

/// What the driver keeps per slot: the slot's 16 bytes of storage, its
/// interrupt counter, the domain's vector entry and the handler's cookie.
fn driver_bytes_per_slot() -> usize {
    Storage::SLOT_BYTES + core::mem::size_of::<Atomic<u32>>() + ImsDomain::<Chip>::BYTES_PER_SLOT
}
