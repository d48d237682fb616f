// SPDX-License-Identifier: GPL-2.0

//! edu's interrupt message store: slots in the format of Intel DSA's IMS
//! entries (with two bits of this model's), in either of the two kinds of
//! storage the IDXD IMS review discusses ("[PATCH v6 05/20] vfio: mdev:
//! common lib code for setting up Interrupt Message Store", June 2021), and
//! the [`ImsChip`] that programs them.
//!
//! The slot format is this device model's, so it lives with the model, not
//! in `kernel::pci::ims`: a real device's driver describes its own store
//! with its own [`ImsChip`].
//!
//! A slot is four 32-bit words: the message address (low, high), the
//! message data, and a control word:
//!
//! | bits | field |
//! |---|---|
//! | 0 | mask: the device must not send the message |
//! | 1 | enable: the slot is in use (set at startup, cleared at shutdown) |
//! | 2 | pending: the device had to send while masked (set and cleared by the device) |
//! | 3 | PASID enable: the device checks and tags requests with the PASID |
//! | 12..=31 | PASID |
//!
//! Bits 0, 3 and 12..=31 are DSA's; enable and pending are this model's.
//! The chip writes a message before enabling the slot, and the control word
//! last, so the device never sees a half-written slot as valid.
//!
//! The two storages:
//!
//! - [`Storage::DeviceArray`]: an array of slots in device memory, written
//!   directly (DSA's IMS table). QEMU's edu has no spare device memory, so
//!   the array is kernel memory standing in for it: every access is a
//!   single 32-bit volatile access, as it would be through `Io`.
//! - [`Storage::Queue`]: slots in system memory the device reads by DMA
//!   (that review's "queue memory"): a DMA-coherent allocation of the device.
//!
use kernel::{
    device::{Bound, Device},
    dma::Coherent,
    io::{io_read, io_write},
    irq::{msi::MsiMsg, IrqReturn},
    new_raw_spinlock_irq,
    pci::ims::ImsChip,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        lock::raw_spinlock::RawSpinLockIrq,
    },
};

/// The mask bit of a slot's control word.
pub(crate) const CTRL_MASK: u32 = 1 << 0;
/// The enable bit (startup sets it, shutdown clears it).
pub(crate) const CTRL_ENABLE: u32 = 1 << 1;
/// The pending bit: the device had to send while the slot was masked.
pub(crate) const CTRL_PENDING: u32 = 1 << 2;
/// The PASID-enable bit.
pub(crate) const CTRL_PASID_EN: u32 = 1 << 3;
/// Where the PASID sits in the control word.
pub(crate) const CTRL_PASID_SHIFT: u32 = 12;

/// One slot, as the device reads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The message address.
    pub address: u64,
    /// The message data.
    pub data: u32,
    /// The control word (see the module documentation).
    pub ctrl: u32,
}

impl Slot {
    /// Whether the slot is in use.
    pub(crate) fn enabled(&self) -> bool {
        self.ctrl & CTRL_ENABLE != 0
    }

    /// The PASID the slot's requests carry, if PASID is enabled.
    pub(crate) fn pasid(&self) -> Option<u32> {
        (self.ctrl & CTRL_PASID_EN != 0).then_some(self.ctrl >> CTRL_PASID_SHIFT)
    }
}

/// Where a device's slots live (see the module documentation).
pub(crate) enum Storage {
    /// An array in (modelled) device memory.
    DeviceArray(KVec<Atomic<u32>>),
    /// A queue in DMA-coherent system memory.
    Queue(Coherent<[u32]>),
}

impl Storage {
    /// `slots` slots in an array in device memory.
    pub(crate) fn device_array(slots: u32) -> Result<Self> {
        let mut v = KVec::with_capacity(4 * slots as usize, GFP_KERNEL)?;
        for _ in 0..4 * slots {
            v.push(Atomic::new(0), GFP_KERNEL)?;
        }
        Ok(Storage::DeviceArray(v))
    }

    /// `slots` slots in DMA-coherent memory of `dev`.
    pub(crate) fn queue(dev: &Device<Bound>, slots: u32) -> Result<Self> {
        Ok(Storage::Queue(Coherent::zeroed_slice(
            dev,
            4 * slots as usize,
            GFP_KERNEL,
        )?))
    }

    /// The kind, for messages: `array` or `queue`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Storage::DeviceArray(_) => "array",
            Storage::Queue(_) => "queue",
        }
    }

    /// Bytes of storage per slot.
    pub(crate) const SLOT_BYTES: usize = 16;

    /// The number of slots.
    pub(crate) fn slots(&self) -> u32 {
        // CAST: created from a `u32` count of slots.
        (self.words() / 4) as u32
    }

    fn words(&self) -> usize {
        match self {
            Storage::DeviceArray(v) => v.len(),
            Storage::Queue(q) => q.len(),
        }
    }

    fn read_word(&self, i: usize) -> u32 {
        match self {
            Storage::DeviceArray(v) => v[i].load(Relaxed),
            Storage::Queue(q) => kernel_dma_read(q, i),
        }
    }

    fn write_word(&self, i: usize, val: u32) {
        match self {
            Storage::DeviceArray(v) => v[i].store(val, Relaxed),
            Storage::Queue(q) => kernel_dma_write(q, i, val),
        }
    }

    /// Reads slot `slot` as the device would; `None` beyond the storage.
    pub(crate) fn read(&self, slot: u32) -> Option<Slot> {
        if slot >= self.slots() {
            return None;
        }
        let i = 4 * slot as usize;
        Some(Slot {
            address: u64::from(self.read_word(i + 1)) << 32 | u64::from(self.read_word(i)),
            data: self.read_word(i + 2),
            ctrl: self.read_word(i + 3),
        })
    }

    fn write_msg(&self, slot: u32, msg: MsiMsg) {
        let i = 4 * slot as usize;
        // CAST: the address is written as its two 32-bit halves.
        self.write_word(i, msg.address as u32);
        self.write_word(i + 1, (msg.address >> 32) as u32);
        self.write_word(i + 2, msg.data);
    }

    /// Changes slot `slot`'s control word with `f`. Callers serialise
    /// (see [`SlotChip`]).
    fn update_ctrl(&self, slot: u32, f: impl FnOnce(u32) -> u32) {
        let i = 4 * slot as usize + 3;
        let old = self.read_word(i);
        self.write_word(i, f(old));
    }
}

/// Word `i` of the queue (callers stay below its length).
fn kernel_dma_read(q: &Coherent<[u32]>, i: usize) -> u32 {
    (|| -> Result<u32> { Ok(io_read!(q, [try: i])) })().unwrap_or(0)
}

/// Writes word `i` of the queue (callers stay below its length).
fn kernel_dma_write(q: &Coherent<[u32]>, i: usize, val: u32) {
    let _ = (|| -> Result {
        io_write!(q, [try: i], val);
        Ok(())
    })();
}

/// What a driver's device does with its slots' interrupts.
pub(crate) trait SlotEvents: Send + Sync + 'static {
    /// The interrupt of `slot` fired (hard interrupt context).
    fn fired(&self, slot: u32) -> IrqReturn;
    /// The device sent `slot`'s message held back while it was masked, on
    /// its unmask (atomic context).
    fn sent_on_unmask(&self, _slot: u32) {}
}

/// The [`ImsChip`] of slots in a [`Storage`].
///
/// Every write to a slot, the chip's and the device's, is made under
/// `lock`, and the device reads a slot under it too ([`SlotChip::access`]):
/// the chip (the IRQ core serialises it per interrupt, not against the
/// device) writes messages and control words, and the device sets and
/// clears pending bits. So the device sees each slot in one piece, as the
/// chip left it, never a message or a control word half written.
#[pin_data]
pub(crate) struct SlotChip<E: SlotEvents> {
    /// The slots.
    pub storage: Storage,
    /// The driver's events.
    pub events: E,
    /// Serialises writes to slots and the device's readings of them; taken
    /// in chip callbacks under descriptor locks, hence raw and with
    /// interrupts off.
    #[pin]
    lock: RawSpinLockIrq<()>,
}

impl<E: SlotEvents> SlotChip<E> {
    /// A chip for the slots of `storage`, reporting to `events`.
    pub(crate) fn new(storage: Storage, events: E) -> impl PinInit<Self, Error> {
        try_pin_init!(Self { storage, events, lock <- new_raw_spinlock_irq!((), "SlotChip::lock") })
    }

    /// The device's access to `slot`: one reading of the whole slot under
    /// the lock, given to `f`, which may change its control word (pending
    /// bits); the word is written back before the lock is released.
    /// Whatever `f` decides is decided on that one reading. `None` beyond
    /// the storage.
    pub(crate) fn access<R>(&self, slot: u32, f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
        let _g = self.lock.lock();
        let mut s = self.storage.read(slot)?;
        let ctrl = s.ctrl;
        let r = f(&mut s);
        if s.ctrl != ctrl {
            self.storage.update_ctrl(slot, |_| s.ctrl);
        }
        Some(r)
    }

    /// Changes `slot`'s control word with `f` under the lock.
    fn update_ctrl(&self, slot: u32, f: impl FnOnce(u32) -> u32) {
        let _g = self.lock.lock();
        self.storage.update_ctrl(slot, f);
    }
}

impl<E: SlotEvents> ImsChip for SlotChip<E> {
    fn write_msg(&self, slot: u32, msg: MsiMsg) {
        let _g = self.lock.lock();
        self.storage.write_msg(slot, msg);
    }

    fn mask(&self, slot: u32) {
        self.update_ctrl(slot, |c| c | CTRL_MASK);
    }

    fn unmask(&self, slot: u32) -> bool {
        // The device sends what it held back while masked, as DSA does: the
        // pending bit goes, and the IMS chip retriggers the interrupt.
        let due = self.access(slot, |s| {
            s.ctrl &= !CTRL_MASK;
            let due = s.ctrl & CTRL_PENDING != 0 && s.enabled();
            s.ctrl &= !CTRL_PENDING;
            due
        });
        if due == Some(true) {
            self.events.sent_on_unmask(slot);
            return true;
        }
        false
    }

    fn startup(&self, slot: u32, pasid: u32) {
        // Still masked: the IRQ core unmasks after startup.
        self.update_ctrl(slot, |_| {
            CTRL_MASK | CTRL_ENABLE | CTRL_PASID_EN | pasid << CTRL_PASID_SHIFT
        });
    }

    fn shutdown(&self, slot: u32) {
        let _g = self.lock.lock();
        self.storage.update_ctrl(slot, |_| CTRL_MASK);
        self.storage.write_msg(
            slot,
            MsiMsg {
                address: 0,
                data: 0,
            },
        );
    }

    fn set_pasid(&self, slot: u32, pasid: u32) {
        self.update_ctrl(slot, |c| {
            (c & ((1 << CTRL_PASID_SHIFT) - 1)) | CTRL_PASID_EN | pasid << CTRL_PASID_SHIFT
        });
    }

    fn handle(&self, slot: u32) -> IrqReturn {
        self.events.fired(slot)
    }
}
