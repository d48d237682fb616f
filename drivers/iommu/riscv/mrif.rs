// SPDX-License-Identifier: GPL-2.0

//! MSI remapping into memory-resident interrupt files (MRIF mode of MSI
//! page tables, spec 2.3.3): interrupts that end at the remapping domain.
//!
//! A device's vectors come in sets of up to [`mrif::USABLE`]: a set has one
//! MRIF per CPU, each named by an entry of the device's MSI page table, and
//! a vector is an identity in the set, the same on every CPU. A vector
//! affine to CPU `c` has its device write identity `i` to the address of
//! the entry of the set's MRIF for `c`, and its enable bit set there. The
//! IOMMU sets the pending bit and, as it is enabled, sends that entry's
//! notice: one IMSIC interrupt per CPU for the whole IOMMU ([`Notice`]),
//! whose handler runs the handlers of every vector pending and enabled in
//! that CPU's MRIFs.
//!
//! A device can only write into its own MRIFs: no other device's vector, no
//! IPI, no interrupt file (the table's window covers them all, and only
//! entries naming the device's MRIFs are valid). An identity it was not
//! given sets a pending bit that is never enabled.
//!
//! Moving a vector needs no allocation, so it cannot fail and never sleeps
//! (moves happen in hard interrupt context): enable it in the new CPU's
//! MRIF of its set and hand the device the new address. The old MRIF stays
//! enabled until the next move, for writes still in flight, as flat
//! entries keep the old file reachable.

use kernel::{
    cpu::CpuId,
    cpumask::Cpumask,
    iommu::pages::{self, Pages},
    irq::{
        imsic::{self, Notice, NoticeHandler},
        remap::{HardIrq, MsiMsg, Vector},
    },
    new_mutex, new_raw_spinlock_irq,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        lock::raw_spinlock::RawSpinLockIrq,
        Arc, Mutex,
    },
};

use crate::{
    hw::{mem::Words, mrif, PAGE_SIZE},
    msi_page_table::MsiPageTable,
};

/// No CPU.
const NONE: u32 = u32::MAX;

/// The doubleword of an MRIF holding the used identities' pending bits ...
// CAST: word indices within 512 bytes.
const PENDING: usize = (mrif::pending_offset(1) / 8) as usize;
/// ... and the one holding their enable bits.
// CAST: as above.
const ENABLE: usize = (mrif::enable_offset(1) / 8) as usize;
// Every used identity is in that pair.
const _: () = assert!(mrif::enable_offset(mrif::USABLE) / 8 == ENABLE as u64);

/// Every set of MRIFs of the devices behind one IOMMU, and what the notice
/// handlers counted.
#[pin_data]
pub(crate) struct SetList {
    /// Scanned by the notice handlers; changed when sets come and go.
    #[pin]
    sets: RawSpinLockIrq<KVec<Arc<MrifSet>>>,
    /// Notices handled.
    notices: Atomic<u64>,
    /// Vectors run by notices.
    delivered: Atomic<u64>,
    /// Notices that found nothing pending and enabled: repeats (QEMU sets
    /// pending bits with a plain read-modify-write, which can undo a
    /// handler's clear) or retriggers of what was already handled.
    empty: Atomic<u64>,
    /// Pending and enabled identities no vector owns.
    strays: Atomic<u64>,
    /// Unmasks that found the vector pending: written while masked, and
    /// replayed by a notice.
    replays: Atomic<u64>,
}

impl SetList {
    /// Adds `set`. The caller serialises changes ([`Mrifs::alloc`]'s
    /// mutex), so the list cannot grow between sizing and filling a new
    /// vector; nothing is allocated or freed under the raw spinlock, where
    /// the allocator's locks must not be taken.
    fn add(&self, set: Arc<MrifSet>) -> Result {
        let len = self.sets.lock().len();
        let mut fresh = KVec::with_capacity(len + 1, GFP_KERNEL)?;
        let mut sets = self.sets.lock();
        if fresh.capacity() <= sets.len() {
            // Not serialised after all.
            return Err(EBUSY);
        }
        for s in sets.iter() {
            // Within capacity: never fails, never allocates.
            let _ = fresh.push_within_capacity(s.clone());
        }
        let _ = fresh.push_within_capacity(set);
        core::mem::swap(&mut *sets, &mut fresh);
        drop(sets);
        // The old vector is freed here, unlocked.
        drop(fresh);
        Ok(())
    }
}

/// The notice handler of one CPU.
struct NoticeCpu {
    cpu: u32,
    list: Arc<SetList>,
}

/// Sets a notice handler takes off the list at a time, to run their
/// vectors' handlers without the list's lock.
const BATCH: usize = 8;

impl NoticeHandler for NoticeCpu {
    fn notice(&self, ctx: &HardIrq) {
        let list = &self.list;
        list.notices.fetch_add(1, Relaxed);
        let mut found = false;
        let mut next = 0;
        loop {
            // Under the raw spinlock only: take the bits pending and
            // enabled (only those seen: one the IOMMU sets meanwhile stays
            // pending, and its own notice follows) and a reference to their
            // sets. Vectors' handlers take spinlocks, which must not nest in
            // a raw one; a set is only freed once every notice handler that
            // may hold it has finished (`Mrifs::free`).
            let mut batch: [Option<(Arc<MrifSet>, u64)>; BATCH] = Default::default();
            let mut n = 0;
            let more = {
                let sets = list.sets.lock();
                while next < sets.len() && n < BATCH {
                    let set = &sets[next];
                    next += 1;
                    let Some(w) = set.words(self.cpu) else {
                        continue;
                    };
                    let fire = w.read(PENDING) & w.read(ENABLE) & !1;
                    if fire != 0 {
                        update(w, PENDING, |p| p & !fire);
                        batch[n] = Some((set.clone(), fire));
                        n += 1;
                    }
                }
                next < sets.len()
            };
            for (set, fire) in batch.iter().flatten() {
                found = true;
                let mut bits = *fire;
                while bits != 0 {
                    let id = bits.trailing_zeros();
                    bits &= bits - 1;
                    // CAST: below 64.
                    match set.vectors[id as usize].load(Acquire) {
                        0 => list.strays.fetch_add(1, Relaxed),
                        v => {
                            if Vector::from_irq(v).handle(ctx) {
                                list.delivered.fetch_add(1, Relaxed)
                            } else {
                                list.strays.fetch_add(1, Relaxed)
                            }
                        }
                    };
                }
            }
            if !more {
                break;
            }
        }
        if !found {
            list.empty.fetch_add(1, Relaxed);
        }
    }
}

/// Up to [`mrif::USABLE`] vectors of one device, with an MRIF for each CPU.
///
/// # Invariants
///
/// `pages` hold an MRIF for each CPU below `entries.len()`; `entries[c]` is
/// the table entry naming CPU `c`'s MRIF, if `c` has a notice; they stay
/// valid until the set is dropped.
pub(crate) struct MrifSet {
    /// The device's table (by address, to find its sets).
    table: Arc<MsiPageTable>,
    /// The MRIFs, freed after the entries naming them are removed.
    pages: Pages,
    entries: KVec<Option<usize>>,
    /// The Linux interrupt of each identity, 0 when free; 0 itself is never
    /// used.
    vectors: KVec<Atomic<u32>>,
}

impl MrifSet {
    /// A set for `table`'s device, with an MRIF for every CPU that has a
    /// notice.
    fn new(table: &Arc<MsiPageTable>, notices: &[Option<Notice<NoticeCpu>>]) -> Result<Arc<Self>> {
        let n = notices.len();
        // CAST: CPU counts are small.
        let bytes = (n as u64 * mrif::MRIF_SIZE).max(PAGE_SIZE);
        let order = (bytes.next_power_of_two() / PAGE_SIZE).trailing_zeros();
        let pages = Pages::new(order, GFP_KERNEL)?;
        let pa = pages.pa();
        let mut set = Self {
            table: table.clone(),
            pages,
            entries: KVec::new(),
            vectors: KVec::new(),
        };
        // From here on dropping `set` undoes what was done.
        for _ in 0..=mrif::USABLE {
            set.vectors.push(Atomic::new(0), GFP_KERNEL)?;
        }
        for (c, notice) in notices.iter().enumerate() {
            let entry = match notice {
                // CAST: as above.
                Some(n) => Some(table.add_mrif(pa + c as u64 * mrif::MRIF_SIZE, n.msg())?),
                None => None,
            };
            set.entries.push(entry, GFP_KERNEL)?;
        }
        Ok(Arc::new(set, GFP_KERNEL)?)
    }

    /// CPU `cpu`'s MRIF, if the set has one.
    fn words(&self, cpu: u32) -> Option<pages::Words<'_>> {
        // CAST: CPU numbers fit.
        self.entries.get(cpu as usize)?.as_ref()?;
        // CAST: 64 doublewords an MRIF.
        let n = (mrif::MRIF_SIZE / 8) as usize;
        // CAST: as above.
        Some(self.pages.words(cpu as usize * n, n))
    }

    /// Gives a free identity to `vector`, with its pending bits cleared (a
    /// device may have written it before); `None` when the set is full.
    fn claim(&self, vector: Vector) -> Option<u32> {
        for id in 1..=mrif::USABLE {
            // CAST: below 64.
            if self.vectors[id as usize]
                .cmpxchg(0, vector.irq(), Relaxed)
                .is_ok()
            {
                for c in 0..self.entries.len() {
                    // CAST: CPU counts are small.
                    if let Some(w) = self.words(c as u32) {
                        update(w, PENDING, |p| p & !mrif::bit(id));
                    }
                }
                return Some(id);
            }
        }
        None
    }

    fn is_empty(&self) -> bool {
        self.vectors.iter().all(|v| v.load(Relaxed) == 0)
    }

    /// The message of identity `id` on CPU `cpu`.
    fn message(&self, cpu: u32, id: u32) -> MsiMsg {
        // CAST: CPU numbers fit; entries are at most 2^12.
        let entry = self.entries[cpu as usize].unwrap_or(0) as u64;
        MsiMsg {
            address: self.table.geometry.address(entry),
            data: id,
        }
    }
}

impl Drop for MrifSet {
    fn drop(&mut self) {
        for e in self.entries.iter().flatten() {
            self.table.remove_mrif(*e);
        }
        // The IOMMU no longer writes to the MRIFs (`remove_mrif` synced):
        // `pages` go next.
    }
}

/// Atomically replaces word `i` of `w` by `f` of it; returns the old value.
fn update(w: impl Words, i: usize, f: impl Fn(u64) -> u64) -> u64 {
    let mut old = w.read(i);
    loop {
        match w.cmpxchg(i, old, f(old)) {
            Ok(()) => return old,
            Err(cur) => old = cur,
        }
    }
}

/// A vector that ends at the remapping domain: an identity in a set.
pub(crate) struct MrifIrq {
    set: Arc<MrifSet>,
    id: u32,
    /// The CPU it is affine to.
    cur: Atomic<u32>,
    /// The CPU it was affine to before its last move, still enabled for
    /// writes in flight; [`NONE`] if none.
    prev: Atomic<u32>,
    masked: Atomic<u32>,
}

/// The notices of every CPU with an interrupt file, indexed by CPU.
type Notices = KVec<Option<Notice<NoticeCpu>>>;

/// The MRIFs and notices of one IOMMU.
#[pin_data]
pub(crate) struct Mrifs {
    list: Arc<SetList>,
    /// Made at probe, never changed afterwards (read in hard interrupt
    /// context).
    notices: Notices,
    /// Serialises the making and freeing of sets.
    #[pin]
    alloc: Mutex<()>,
    /// Where the next vector goes.
    next: Atomic<u32>,
}

impl Mrifs {
    pub(crate) fn new() -> Result<impl PinInit<Self, Error>> {
        let list = Arc::pin_init(
            try_pin_init!(SetList {
                sets <- new_raw_spinlock_irq!(KVec::new(), "SetList::sets"),
                notices: Atomic::new(0),
                delivered: Atomic::new(0),
                empty: Atomic::new(0),
                strays: Atomic::new(0),
                replays: Atomic::new(0),
            }),
            GFP_KERNEL,
        )?;
        // At probe: allocating them with the first vector would take the
        // IMSIC's domain mutex, which that allocation already holds (the
        // hierarchy shares its root's).
        let mut notices = KVec::new();
        for c in 0..kernel::cpu::nr_cpu_ids() {
            let notice = match CpuId::from_u32(c).filter(|&c| imsic::cpu_file(c).is_some()) {
                Some(cpu) => Some(Notice::new(
                    cpu,
                    Arc::new(
                        NoticeCpu {
                            cpu: c,
                            list: list.clone(),
                        },
                        GFP_KERNEL,
                    )?,
                )?),
                None => None,
            };
            notices.push(notice, GFP_KERNEL)?;
        }
        Ok(try_pin_init!(Self {
            list,
            notices,
            alloc <- new_mutex!((), "Mrifs::alloc"),
            next: Atomic::new(0),
        }))
    }

    /// The notice of `cpu`.
    fn notice(&self, cpu: u32) -> Option<&Notice<NoticeCpu>> {
        // CAST: CPU numbers fit.
        self.notices.get(cpu as usize)?.as_ref()
    }

    /// Allocates `vector`, of the device whose table is `table`; returns it
    /// and its CPU.
    pub(crate) fn alloc(
        &self,
        table: &Arc<MsiPageTable>,
        vector: Vector,
    ) -> Result<(MrifIrq, CpuId)> {
        let _g = self.alloc.lock();
        let found = self
            .list
            .sets
            .lock()
            .iter()
            .filter(|s| Arc::ptr_eq(&s.table, table))
            .find_map(|s| s.claim(vector).map(|id| (s.clone(), id)));
        let (set, id) = match found {
            Some(f) => f,
            None => {
                let set = MrifSet::new(table, &self.notices)?;
                let id = set.claim(vector).ok_or(ENOSPC)?;
                self.list.add(set.clone())?;
                (set, id)
            }
        };
        // Round robin over the CPUs with a notice.
        let notices = &self.notices;
        let n = notices.len();
        let start = self.next.fetch_add(1, Relaxed) as usize;
        let cpu = (0..n)
            .map(|k| (start + k) % n)
            .find(|&c| notices[c].is_some())
            .ok_or(ENODEV)?;
        // CAST: CPU numbers fit.
        let cpu = cpu as u32;
        let irq = MrifIrq {
            set,
            id,
            cur: Atomic::new(cpu),
            prev: Atomic::new(NONE),
            // Masked until the IRQ core starts it.
            masked: Atomic::new(1),
        };
        Ok((irq, CpuId::from_u32(cpu).ok_or(EINVAL)?))
    }

    /// Frees `irq`: its identity is disabled everywhere, and a set left
    /// empty is freed.
    pub(crate) fn free(&self, irq: MrifIrq) {
        let bit = mrif::bit(irq.id);
        for c in [irq.cur.load(Relaxed), irq.prev.load(Relaxed)] {
            if let Some(w) = irq.set.words(c) {
                update(w, ENABLE, |e| e & !bit);
            }
        }
        // CAST: below 64.
        irq.set.vectors[irq.id as usize].store(0, Release);
        // A notice handler that read the vector's number has returned:
        // the number may be reused.
        self.synchronize();
        let _g = self.alloc.lock();
        if irq.set.is_empty() {
            // Under the list's lock: no handler is in the set afterwards.
            let removed = {
                let mut sets = self.list.sets.lock();
                match sets.iter().position(|s| Arc::ptr_eq(s, &irq.set)) {
                    Some(i) => sets.remove(i).ok(),
                    None => None,
                }
            };
            // Off the list: once the handlers that may hold it have
            // returned, ours is the last reference. Dropped here, not under
            // the raw spinlock nor in a handler: it invalidates the set's
            // entries and frees its pages.
            self.synchronize();
            drop(removed);
        }
    }

    /// The message of `irq`.
    pub(crate) fn message(&self, irq: &MrifIrq) -> MsiMsg {
        irq.set.message(irq.cur.load(Relaxed), irq.id)
    }

    /// Enables or disables `irq` in the MRIFs it may be written to;
    /// enabling delivers what arrived while it was masked.
    pub(crate) fn mask(&self, irq: &MrifIrq, masked: bool) {
        irq.masked.store(u32::from(masked), Relaxed);
        let bit = mrif::bit(irq.id);
        for c in [irq.cur.load(Relaxed), irq.prev.load(Relaxed)] {
            let Some(w) = irq.set.words(c) else {
                continue;
            };
            if masked {
                update(w, ENABLE, |e| e & !bit);
            } else {
                update(w, ENABLE, |e| e | bit);
                // A write while masked set the pending bit, and no notice.
                if w.read(PENDING) & bit != 0 {
                    self.list.replays.fetch_add(1, Relaxed);
                    self.raise(c);
                }
            }
        }
    }

    /// Makes `irq` fire again: pending on its CPU, and that CPU's notice.
    pub(crate) fn retrigger(&self, irq: &MrifIrq) -> bool {
        let c = irq.cur.load(Relaxed);
        match irq.set.words(c) {
            Some(w) => {
                update(w, PENDING, |p| p | mrif::bit(irq.id));
                self.raise(c);
                true
            }
            None => false,
        }
    }

    /// Waits for every notice handler running to return.
    fn synchronize(&self) {
        for n in self.notices.iter().flatten() {
            n.synchronize();
        }
    }

    fn raise(&self, cpu: u32) {
        if let Some(n) = self.notice(cpu) {
            n.raise();
        }
    }

    /// Moves `irq` to a CPU of `mask` that has a notice.
    pub(crate) fn move_to(&self, irq: &MrifIrq, mask: &Cpumask) -> Result<CpuId> {
        let cur = irq.cur.load(Relaxed);
        let to_cpu = |c: u32| CpuId::from_u32(c).ok_or(EINVAL);
        if CpuId::from_u32(cur).is_some_and(|c| mask.test(c)) {
            return to_cpu(cur);
        }
        let n = self.notices.len();
        let new = (0..n)
            // CAST: CPU numbers fit.
            .map(|c| c as u32)
            .find(|&c| self.notice(c).is_some() && CpuId::from_u32(c).is_some_and(|c| mask.test(c)))
            .ok_or(EINVAL)?;
        let bit = mrif::bit(irq.id);
        let masked = irq.masked.load(Relaxed) != 0;
        // The CPU before the current one is let go: anything it still has
        // pending is handed on.
        let prev = irq.prev.xchg(cur, Relaxed);
        let mut handed = false;
        if prev != NONE && prev != new {
            if let Some(w) = irq.set.words(prev) {
                update(w, ENABLE, |e| e & !bit);
                handed = update(w, PENDING, |p| p & !bit) & bit != 0;
            }
        }
        irq.cur.store(new, Relaxed);
        if let Some(w) = irq.set.words(new) {
            if handed {
                update(w, PENDING, |p| p | bit);
            }
            if !masked {
                update(w, ENABLE, |e| e | bit);
                if w.read(PENDING) & bit != 0 {
                    self.raise(new);
                }
            }
        }
        to_cpu(new)
    }

    /// What the notice handlers counted, and the sets (debugfs).
    pub(crate) fn show(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        let l = &self.list;
        let sets = l.sets.lock().len();
        writeln!(
            f,
            "mrif_sets {}\nmrif_notices {}\nmrif_delivered {}\nmrif_empty_notices {}\nmrif_strays {}\nmrif_replays {}",
            sets,
            l.notices.load(Relaxed),
            l.delivered.load(Relaxed),
            l.empty.load(Relaxed),
            l.strays.load(Relaxed),
            l.replays.load(Relaxed)
        )?;
        for (c, n) in self.notices.iter().enumerate() {
            if let Some(n) = n {
                writeln!(
                    f,
                    "notice cpu {} irq {} file {:#x} id {}",
                    c,
                    n.irq(),
                    n.msg().address,
                    n.msg().data
                )?;
            }
        }
        Ok(())
    }
}
