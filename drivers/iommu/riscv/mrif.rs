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
//! entries keep the old file reachable; whatever is found pending there
//! later is handed to the vector's current CPU.
//!
//! CPU hotplug: a notice belongs to its CPU and is never moved (every MRIF
//! entry naming it would break). It is made when its CPU is first online:
//! at probe for the CPUs online then, later from a CPU hotplug state, which
//! also gives every set made before an MRIF for that CPU. When a CPU goes
//! offline, the IRQ core moves the vectors affine to it like any
//! interrupt (`Mrifs::move_to`); once it is dead, what writes in flight
//! left pending in its MRIFs is handed to each vector's new CPU.

use kernel::{
    cpu::{
        hotplug::{self, Callbacks, Registration, Section},
        CpuId,
    },
    cpumask::Cpumask,
    iommu::pages::{self, Pages},
    irq::{
        hardirq::HardIrq,
        imsic::{self, Notice, NoticeHandler},
        msi::MsiMsg,
        remap::Vector,
    },
    new_mutex, new_raw_spinlock_irq,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        barrier::{smp_mb, Full},
        lock::raw_spinlock::RawSpinLockIrq,
        Arc, Mutex, SetOnce,
    },
};

use crate::{
    hw::{mem::Words, mrif, PAGE_SIZE},
    msi_page_table::MsiPageTable,
};

/// No CPU, and no table entry.
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
    /// Scanned by the notice handlers; changed when sets come and go (under
    /// [`Shared::alloc`]). Ordered by [`MrifSet::seq`].
    #[pin]
    sets: RawSpinLockIrq<KVec<Arc<MrifSet>>>,
    /// The number the next set gets.
    seq: Atomic<u64>,
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
    /// Pending bits handed from a CPU's MRIF to the vector's current CPU:
    /// writes that landed where the vector no longer is (its previous CPU,
    /// or a CPU that went offline).
    handed: Atomic<u64>,
}

impl SetList {
    /// Adds `set`, numbered after every set on the list. The caller holds
    /// [`Shared::alloc`], so the list cannot grow between sizing and
    /// filling a new vector; nothing is allocated or freed under the raw
    /// spinlock, where the allocator's locks must not be taken.
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

    /// The index in `sets` of the first set numbered above `after`.
    fn first_after(sets: &[Arc<MrifSet>], after: u64) -> usize {
        sets.partition_point(|s| s.seq <= after)
    }

    /// The first set numbered above `after`, if any.
    fn next(&self, after: u64) -> Option<Arc<MrifSet>> {
        let sets = self.sets.lock();
        sets.get(Self::first_after(&sets, after)).cloned()
    }
}

/// The notice handler of one CPU.
struct NoticeCpu {
    cpu: u32,
    list: Arc<SetList>,
}

/// Vectors a notice handler takes off the list at a time, to run their
/// handlers without the list's lock.
const BATCH: usize = 16;

impl NoticeHandler for NoticeCpu {
    fn notice(&self, ctx: &HardIrq) {
        let list = &self.list;
        list.notices.fetch_add(1, Relaxed);
        let mut found = false;
        // Resumes after the last set done by its number, not its index: a
        // set freed meanwhile shifts the indices of those after it.
        let mut last = 0;
        #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
        let mut removals = None;
        loop {
            // Under the raw spinlock only: take the bits pending and
            // enabled (only those seen: one the IOMMU sets meanwhile stays
            // pending, and its own notice follows) and their vectors'
            // numbers. Vectors' handlers take spinlocks, which must not
            // nest in a raw one. A number read here stays valid until this
            // handler returns: `Mrifs::free` clears it, then waits for
            // every notice handler running (`Shared::synchronize`) before
            // the number can be reused.
            let mut batch = [0u32; BATCH];
            let mut n = 0;
            let more = {
                let sets = list.sets.lock();
                #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
                knobs::scanning(self.cpu, &mut removals);
                let mut next = SetList::first_after(&sets, last);
                // Sets that gave vectors to this batch (a debug knob may
                // limit them).
                let mut taken = 0;
                while next < sets.len() && n < BATCH && taken < knobs::batch_sets() {
                    let set = &sets[next];
                    let rest = match set.words(self.cpu) {
                        Some(w) => {
                            let mut fire = w.read(PENDING) & w.read(ENABLE) & !1;
                            // As many as the batch holds; the rest stays
                            // pending for the next pass over this set.
                            let mut take = 0;
                            while fire != 0 && n < BATCH {
                                let id = fire.trailing_zeros();
                                fire &= fire - 1;
                                take |= mrif::bit(id);
                                // CAST: below 64.
                                batch[n] = set.vectors[id as usize].load(Acquire);
                                n += 1;
                            }
                            if take != 0 {
                                update(w, PENDING, |p| p & !take);
                                taken += 1;
                            }
                            fire
                        }
                        None => 0,
                    };
                    if rest == 0 {
                        next += 1;
                        last = set.seq;
                    }
                }
                next < sets.len()
            };
            for &v in &batch[..n] {
                found = true;
                match v {
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
            if !more {
                break;
            }
            knobs::between_batches();
        }
        if !found {
            list.empty.fetch_add(1, Relaxed);
        }
    }
}

/// Where one identity of a set is delivered.
struct Route {
    /// The CPU its vector is affine to.
    cur: Atomic<u32>,
    /// The CPU it was affine to before its last move, still enabled for
    /// writes in flight; [`NONE`] if none.
    prev: Atomic<u32>,
}

/// Up to [`mrif::USABLE`] vectors of one device, with an MRIF for each
/// possible CPU.
///
/// # Invariants
///
/// `pages` hold an MRIF for each possible CPU; `entries[c]` is the table
/// entry naming CPU `c`'s MRIF, [`NONE`] until `c` has a notice, set once
/// and valid until the set is dropped. `entries`, `vectors` and `routes`
/// are allocated in full before any entry is made.
pub(crate) struct MrifSet {
    /// The device's table (by address, to find its sets).
    table: Arc<MsiPageTable>,
    /// Its place in the [`SetList`].
    seq: u64,
    /// The MRIFs, freed after the entries naming them are removed.
    pages: Pages,
    entries: KVec<Atomic<u32>>,
    /// The Linux interrupt of each identity, 0 when free; 0 itself is never
    /// used.
    vectors: KVec<Atomic<u32>>,
    /// Where each identity is delivered, read by the hand-over of a dead
    /// CPU's MRIFs.
    routes: KVec<Route>,
}

impl MrifSet {
    /// A set for `table`'s device, numbered `seq`, with an MRIF for every
    /// CPU, named by an entry for every CPU that has a notice.
    fn new(table: &Arc<MsiPageTable>, seq: u64, notices: &Notices) -> Result<Arc<Self>> {
        let n = notices.len();
        // CAST: CPU counts are small.
        let bytes = (n as u64 * mrif::MRIF_SIZE).max(PAGE_SIZE);
        let order = (bytes.next_power_of_two() / PAGE_SIZE).trailing_zeros();
        let pages = Pages::new(order, GFP_KERNEL)?;
        let mut entries = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut vectors = KVec::with_capacity(mrif::USABLE as usize + 1, GFP_KERNEL)?;
        let mut routes = KVec::with_capacity(mrif::USABLE as usize + 1, GFP_KERNEL)?;
        for _ in 0..n {
            entries.push(Atomic::new(NONE), GFP_KERNEL)?;
        }
        for _ in 0..=mrif::USABLE {
            vectors.push(Atomic::new(0), GFP_KERNEL)?;
            routes.push(
                Route {
                    cur: Atomic::new(NONE),
                    prev: Atomic::new(NONE),
                },
                GFP_KERNEL,
            )?;
        }
        let set = Arc::new(
            Self {
                table: table.clone(),
                seq,
                pages,
                entries,
                vectors,
                routes,
            },
            GFP_KERNEL,
        )?;
        // Nothing is allocated from here on: each entry is recorded as soon
        // as it is valid, so dropping `set` on an error removes every valid
        // entry before the MRIFs they name are freed.
        for (c, notice) in notices.iter().enumerate() {
            if let Some(notice) = notice.as_ref() {
                // CAST: CPU numbers fit.
                set.add_entry(c as u32, notice.msg())?;
            }
        }
        Ok(set)
    }

    /// Makes the table entry naming CPU `cpu`'s MRIF, with the notice
    /// `notice`; nothing if it has one.
    fn add_entry(&self, cpu: u32, notice: MsiMsg) -> Result {
        // CAST: CPU numbers fit.
        let slot = self.entries.get(cpu as usize).ok_or(EINVAL)?;
        if slot.load(Relaxed) != NONE {
            return Ok(());
        }
        let pa = self.pages.pa() + u64::from(cpu) * mrif::MRIF_SIZE;
        let i = self.table.add_mrif(pa, notice)?;
        // CAST: entries are at most 2^12. Release: a notice handler that
        // sees the entry sees the MRIF's cleared memory.
        slot.store(i as u32, Release);
        Ok(())
    }

    /// CPU `cpu`'s MRIF, if the set has an entry naming it.
    fn words(&self, cpu: u32) -> Option<pages::Words<'_>> {
        // CAST: CPU numbers fit.
        if self.entries.get(cpu as usize)?.load(Acquire) == NONE {
            return None;
        }
        // CAST: 64 doublewords an MRIF.
        let n = (mrif::MRIF_SIZE / 8) as usize;
        // CAST: as above.
        Some(self.pages.words(cpu as usize * n, n))
    }

    /// Gives a free identity to `vector`, delivered on `cpu`, with its
    /// pending bits cleared (a device may have written it before); `None`
    /// when the set is full.
    fn claim(&self, vector: Vector, cpu: u32) -> Option<u32> {
        for id in 1..=mrif::USABLE {
            // CAST: below 64.
            let i = id as usize;
            if self.vectors[i].cmpxchg(0, vector.irq(), Relaxed).is_ok() {
                self.routes[i].cur.store(cpu, Relaxed);
                self.routes[i].prev.store(NONE, Relaxed);
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
        // CAST: CPU numbers fit.
        let entry = match self.entries[cpu as usize].load(Acquire) {
            NONE => 0,
            e => e,
        };
        MsiMsg {
            address: self.table.geometry.address(entry.into()),
            data: id,
        }
    }
}

impl Drop for MrifSet {
    fn drop(&mut self) {
        for e in self.entries.iter() {
            match e.load(Relaxed) {
                NONE => (),
                // CAST: entries are at most 2^12.
                i => self.table.remove_mrif(i as usize),
            }
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
    masked: Atomic<u32>,
}

impl MrifIrq {
    fn route(&self) -> &Route {
        // CAST: below 64.
        &self.set.routes[self.id as usize]
    }
}

/// The notice of each possible CPU, indexed by CPU, made once the CPU is
/// online and kept until the IOMMU goes.
type Notices = KVec<SetOnce<Notice<NoticeCpu>>>;

/// What the MRIFs of one IOMMU and its CPU hotplug callbacks share.
#[pin_data]
struct Shared {
    list: Arc<SetList>,
    /// Read in hard interrupt context; each set once.
    notices: Notices,
    /// Serialises the making and freeing of sets, and the making of
    /// notices' entries in them.
    #[pin]
    alloc: Mutex<()>,
    /// Where the next vector goes.
    next: Atomic<u32>,
}

impl Shared {
    /// The notice of `cpu`.
    fn notice(&self, cpu: u32) -> Option<&Notice<NoticeCpu>> {
        // CAST: CPU numbers fit.
        self.notices.get(cpu as usize)?.as_ref()
    }

    /// Waits for every notice handler running to return.
    fn synchronize(&self) {
        for n in self.notices.iter().filter_map(|n| n.as_ref()) {
            n.synchronize();
        }
    }

    fn raise(&self, cpu: u32) {
        if let Some(n) = self.notice(cpu) {
            n.raise();
        }
    }

    /// Hands what is pending for identity `id` in CPU `from`'s MRIF of
    /// `set` to CPU `to`'s, and raises `to`'s notice if `raise`; whether
    /// anything was.
    fn hand(&self, set: &MrifSet, id: u32, from: u32, to: u32, raise: bool) -> bool {
        let bit = mrif::bit(id);
        let (Some(f), Some(t)) = (set.words(from), set.words(to)) else {
            return false;
        };
        if from == to || update(f, PENDING, |p| p & !bit) & bit == 0 {
            return false;
        }
        update(t, PENDING, |p| p | bit);
        self.list.handed.fetch_add(1, Relaxed);
        if raise {
            self.raise(to);
        }
        true
    }

    /// `cpu` is online: its notice, made the first time, and an entry for
    /// its MRIF in every set made before.
    fn cpu_online(&self, cpu: CpuId) -> Result {
        let c = cpu.as_u32();
        if self.notice(c).is_some() || imsic::cpu_file(cpu).is_none() {
            return Ok(());
        }
        let handler = Arc::new(
            NoticeCpu {
                cpu: c,
                list: self.list.clone(),
            },
            GFP_KERNEL,
        )?;
        let notice = Notice::new(cpu, handler)?;
        let _g = self.alloc.lock();
        // CAST: CPU numbers fit. Hotplug callbacks of one state run one at
        // a time, so nothing else populates it.
        self.notices[c as usize].populate(notice);
        let msg = self.notice(c).ok_or(EINVAL)?.msg();
        // Under `alloc` no set comes or goes.
        let mut last = 0;
        while let Some(set) = self.list.next(last) {
            last = set.seq;
            if let Err(e) = set.add_entry(c, msg) {
                // The set's vectors just never move to this CPU.
                pr_warn!("riscv_iommu: no MRIF of CPU {c} for a set of vectors: {e:?}\n");
            }
        }
        Ok(())
    }

    /// `cpu` is dead (its interrupts were moved off it before): what is
    /// pending in its MRIFs for vectors now elsewhere, writes that were in
    /// flight when they moved, goes to their CPU.
    fn cpu_dead(&self, cpu: CpuId) {
        let c = cpu.as_u32();
        let _g = self.alloc.lock();
        let mut last = 0;
        while let Some(set) = self.list.next(last) {
            last = set.seq;
            let Some(w) = set.words(c) else {
                continue;
            };
            let mut pending = w.read(PENDING) & !1;
            while pending != 0 {
                let id = pending.trailing_zeros();
                pending &= pending - 1;
                // CAST: below 64.
                let to = set.routes[id as usize].cur.load(Acquire);
                self.hand(&set, id, c, to, true);
            }
        }
    }
}

/// Makes each CPU's notice when it comes online.
struct CpuOnline(Arc<Shared>);

impl Callbacks for CpuOnline {
    fn startup(&self, cpu: CpuId) -> Result {
        self.0.cpu_online(cpu)
    }
}

/// Hands a dead CPU's pending MRIF bits on.
struct CpuDead(Arc<Shared>);

impl Callbacks for CpuDead {
    fn teardown(&self, cpu: CpuId) {
        self.0.cpu_dead(cpu)
    }
}

/// The MRIFs and notices of one IOMMU.
pub(crate) struct Mrifs {
    // First: dropped (no callback runs any more) before the rest.
    _online: Pin<KBox<Registration<CpuOnline>>>,
    _dead: Pin<KBox<Registration<CpuDead>>>,
    shared: Arc<Shared>,
}

impl Mrifs {
    /// MRIFs with a notice for every CPU online now, and for every other
    /// CPU once it comes online.
    pub(crate) fn new() -> Result<Self> {
        let list = Arc::pin_init(
            try_pin_init!(SetList {
                sets <- new_raw_spinlock_irq!(KVec::new(), "SetList::sets"),
                seq: Atomic::new(1),
                notices: Atomic::new(0),
                delivered: Atomic::new(0),
                empty: Atomic::new(0),
                strays: Atomic::new(0),
                replays: Atomic::new(0),
                handed: Atomic::new(0),
            }),
            GFP_KERNEL,
        )?;
        let mut notices = KVec::new();
        for _ in 0..kernel::cpu::nr_cpu_ids() {
            notices.push(SetOnce::new(), GFP_KERNEL)?;
        }
        let shared = Arc::pin_init(
            try_pin_init!(Shared {
                list,
                notices,
                alloc <- new_mutex!((), "Mrifs::alloc"),
                next: Atomic::new(0),
            }),
            GFP_KERNEL,
        )?;
        // Notices are made from a CPU hotplug state, for the CPUs online
        // now before this returns: at probe, not with the first vector,
        // whose allocation already holds the IMSIC's domain mutex (the
        // hierarchy shares its root's), which making a notice takes.
        let online = KBox::pin_init(
            Registration::new(
                Section::Online,
                c"iommu/riscv:mrif-notice",
                CpuOnline(shared.clone()),
            ),
            GFP_KERNEL,
        )?;
        let dead = KBox::pin_init(
            Registration::new(
                Section::Prepare,
                c"iommu/riscv:mrif-dead",
                CpuDead(shared.clone()),
            ),
            GFP_KERNEL,
        )?;
        Ok(Self {
            _online: online,
            _dead: dead,
            shared,
        })
    }

    /// Allocates `vector`, of the device whose table is `table`; returns it
    /// and its CPU.
    pub(crate) fn alloc(
        &self,
        table: &Arc<MsiPageTable>,
        vector: Vector,
    ) -> Result<(MrifIrq, CpuId)> {
        let s = &*self.shared;
        let _g = s.alloc.lock();
        // Round robin over the online CPUs with a notice (the IRQ core
        // moves the vector where its affinity says when it starts it).
        let n = s.notices.len();
        // CAST: CPU counts are small.
        let start = s.next.fetch_add(1, Relaxed) as usize;
        let online = hotplug::online_mask();
        let cpu = (0..n)
            .map(|k| (start + k) % n)
            .find(|&c| {
                // CAST: CPU numbers fit.
                let c = c as u32;
                s.notice(c).is_some() && CpuId::from_u32(c).is_some_and(|c| online.test(c))
            })
            .ok_or(ENODEV)?;
        // CAST: CPU numbers fit.
        let cpu = cpu as u32;
        let found = s
            .list
            .sets
            .lock()
            .iter()
            .filter(|set| Arc::ptr_eq(&set.table, table) && set.words(cpu).is_some())
            .find_map(|set| set.claim(vector, cpu).map(|id| (set.clone(), id)));
        let (set, id) = match found {
            Some(f) => f,
            None => {
                let seq = s.list.seq.fetch_add(1, Relaxed);
                let set = MrifSet::new(table, seq, &s.notices)?;
                let id = set.claim(vector, cpu).ok_or(ENOSPC)?;
                s.list.add(set.clone())?;
                (set, id)
            }
        };
        let irq = MrifIrq {
            set,
            id,
            // Masked until the IRQ core starts it.
            masked: Atomic::new(1),
        };
        Ok((irq, CpuId::from_u32(cpu).ok_or(EINVAL)?))
    }

    /// Frees `irq`: its identity is disabled everywhere, and a set left
    /// empty is freed.
    pub(crate) fn free(&self, irq: MrifIrq) {
        let s = &*self.shared;
        let bit = mrif::bit(irq.id);
        let r = irq.route();
        for c in [r.cur.load(Relaxed), r.prev.load(Relaxed)] {
            if let Some(w) = irq.set.words(c) {
                update(w, ENABLE, |e| e & !bit);
            }
        }
        // CAST: below 64.
        irq.set.vectors[irq.id as usize].store(0, Release);
        // A notice handler that read the vector's number has returned:
        // the number may be reused.
        s.synchronize();
        let _g = s.alloc.lock();
        if irq.set.is_empty() {
            knobs::before_removal();
            // Under the list's lock: no handler is in the set afterwards.
            let removed = {
                let mut sets = s.list.sets.lock();
                #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
                knobs::removing();
                match sets.iter().position(|x| Arc::ptr_eq(x, &irq.set)) {
                    Some(i) => sets.remove(i).ok(),
                    None => None,
                }
            };
            // Off the list: once the handlers that may hold it have
            // returned, ours is the last reference. Dropped here, not under
            // the raw spinlock nor in a handler: it invalidates the set's
            // entries and frees its pages.
            s.synchronize();
            drop(removed);
        }
    }

    /// The message of `irq`.
    pub(crate) fn message(&self, irq: &MrifIrq) -> MsiMsg {
        irq.set.message(irq.route().cur.load(Relaxed), irq.id)
    }

    /// Enables or disables `irq` in the MRIFs it may be written to;
    /// enabling delivers what arrived while it was masked.
    pub(crate) fn mask(&self, irq: &MrifIrq, masked: bool) {
        let s = &*self.shared;
        irq.masked.store(u32::from(masked), Relaxed);
        let bit = mrif::bit(irq.id);
        let r = irq.route();
        let (cur, prev) = (r.cur.load(Relaxed), r.prev.load(Relaxed));
        for c in [cur, prev] {
            let Some(w) = irq.set.words(c) else {
                continue;
            };
            if masked {
                update(w, ENABLE, |e| e & !bit);
                continue;
            }
            update(w, ENABLE, |e| e | bit);
            // Store buffering against the IOMMU, which stores the pending
            // bit and then loads the enable bit to decide on a notice: with
            // a full barrier between our store of the enable bit and our
            // load of the pending bit, either it sees the bit enabled and
            // sends a notice, or we see the bit pending. `update`'s
            // cmpxchg only orders what comes before it.
            smp_mb(Full);
            if w.read(PENDING) & bit == 0 {
                continue;
            }
            // A write while masked set the pending bit, and no notice: the
            // current CPU replays it (one on the previous CPU is handed
            // there: that CPU may have gone offline since).
            s.list.replays.fetch_add(1, Relaxed);
            if c != cur {
                s.hand(&irq.set, irq.id, c, cur, false);
            }
            s.raise(cur);
        }
    }

    /// Makes `irq` fire again: pending on its CPU, and that CPU's notice.
    pub(crate) fn retrigger(&self, irq: &MrifIrq) -> bool {
        let c = irq.route().cur.load(Relaxed);
        match irq.set.words(c) {
            Some(w) => {
                update(w, PENDING, |p| p | mrif::bit(irq.id));
                self.shared.raise(c);
                true
            }
            None => false,
        }
    }

    /// Moves `irq` to a CPU of `mask` that has a notice and an MRIF in the
    /// vector's set. Runs in hard interrupt context too: on the CPU going
    /// offline, from `irq_migrate_all_off_this_cpu()`.
    pub(crate) fn move_to(&self, irq: &MrifIrq, mask: &Cpumask) -> Result<CpuId> {
        let s = &*self.shared;
        let r = irq.route();
        let cur = r.cur.load(Relaxed);
        let to_cpu = |c: u32| CpuId::from_u32(c).ok_or(EINVAL);
        if CpuId::from_u32(cur).is_some_and(|c| mask.test(c)) && irq.set.words(cur).is_some() {
            return to_cpu(cur);
        }
        let new = (0..irq.set.entries.len())
            // CAST: CPU numbers fit.
            .map(|c| c as u32)
            .find(|&c| {
                // An MRIF entry exists only for a CPU with a notice.
                irq.set.words(c).is_some() && CpuId::from_u32(c).is_some_and(|c| mask.test(c))
            })
            .ok_or(EINVAL)?;
        let bit = mrif::bit(irq.id);
        let masked = irq.masked.load(Relaxed) != 0;
        // The CPU before the current one is let go: anything it still has
        // pending is handed on.
        let prev = r.prev.xchg(cur, Relaxed);
        if prev != NONE && prev != new {
            if let Some(w) = irq.set.words(prev) {
                update(w, ENABLE, |e| e & !bit);
            }
            s.hand(&irq.set, irq.id, prev, new, false);
        }
        r.cur.store(new, Release);
        if let Some(w) = irq.set.words(new) {
            if !masked {
                update(w, ENABLE, |e| e | bit);
                // Pairs with the IOMMU as in `mask`.
                smp_mb(Full);
                if w.read(PENDING) & bit != 0 {
                    s.raise(new);
                }
            }
        }
        to_cpu(new)
    }

    /// What the notice handlers counted, and the sets (debugfs).
    pub(crate) fn show(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        let s = &*self.shared;
        let l = &s.list;
        let sets = l.sets.lock().len();
        writeln!(
            f,
            "mrif_sets {}\nmrif_notices {}\nmrif_delivered {}\nmrif_empty_notices {}\nmrif_strays {}\nmrif_replays {}\nmrif_handed {}",
            sets,
            l.notices.load(Relaxed),
            l.delivered.load(Relaxed),
            l.empty.load(Relaxed),
            l.strays.load(Relaxed),
            l.replays.load(Relaxed),
            l.handed.load(Relaxed)
        )?;
        for (c, n) in s.notices.iter().enumerate() {
            if let Some(n) = n.as_ref() {
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

/// Windows widened for tests on debug kernels
/// (`CONFIG_FAULT_INJECTION_DEBUG_FS`), set through debugfs
/// `riscv_iommu/<dev>/debug`; on other kernels nothing but [`BATCH`].
///
/// They let a test free a set between two batches of one notice handler
/// run: the handler takes fewer sets at a time (`notice_batch N`) and
/// busy-waits between batches (`notice_batch_delay_us N`), and
/// [`Mrifs::free`] waits until a handler is between two batches (at most
/// `mrif_free_wait_us N`) before it takes an emptied set off the list. A
/// run that finds a set removed since its
/// previous batch logs it, so that the test knows it reached the window:
/// the handler must then resume after the last set it saw, not at an index
/// the removal shifted (`tests/faults`, `notice_resumes_after_a_freed_set`).
pub(crate) mod knobs {
    #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
    use kernel::{
        prelude::*,
        sync::atomic::{Atomic, Relaxed},
        time::{
            delay::{fsleep, udelay},
            Delta,
        },
    };

    /// Sets a notice handler takes vectors from at a time; 0: no limit
    /// but [`super::BATCH`] vectors.
    #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
    static NOTICE_BATCH: Atomic<u32> = Atomic::new(0);
    /// Microseconds a notice handler busy-waits between two batches.
    #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
    static NOTICE_BATCH_DELAY_US: Atomic<u32> = Atomic::new(0);
    /// The most microseconds [`super::Mrifs::free`] waits, once its
    /// vector's handlers have returned, for a notice handler to be between
    /// two batches before it takes an emptied set off the list.
    #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
    static FREE_WAIT_US: Atomic<u32> = Atomic::new(0);
    /// Notice handlers between two batches.
    #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
    static BETWEEN: Atomic<u32> = Atomic::new(0);
    /// Sets taken off the lists, counted under the list's lock.
    #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
    static REMOVALS: Atomic<u64> = Atomic::new(0);

    /// Sets knob `what` (debugfs `debug`); `None` if it is not one of
    /// these.
    #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
    pub(crate) fn set(what: &str, arg: u32) -> Option<Result> {
        let (knob, max) = match what {
            // CAST: `BATCH` is 16.
            "notice_batch" => (&NOTICE_BATCH, super::BATCH as u32),
            "notice_batch_delay_us" => (&NOTICE_BATCH_DELAY_US, 1_000_000),
            "mrif_free_wait_us" => (&FREE_WAIT_US, 1_000_000),
            _ => return None,
        };
        if arg > max {
            return Some(Err(EINVAL));
        }
        knob.store(arg, Relaxed);
        Some(Ok(()))
    }

    /// The most sets a notice handler takes vectors from at a time.
    #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
    pub(super) fn batch_sets() -> usize {
        match NOTICE_BATCH.load(Relaxed) {
            0 => usize::MAX,
            // CAST: at most `BATCH` (`set`).
            n => n as usize,
        }
    }

    /// The most sets a notice handler takes vectors from at a time.
    #[cfg(not(CONFIG_FAULT_INJECTION_DEBUG_FS))]
    pub(super) const fn batch_sets() -> usize {
        usize::MAX
    }

    /// A notice handler of `cpu` scans the list, under its lock; `seen`
    /// holds the removals counted at the run's previous scan, if any.
    #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
    pub(super) fn scanning(cpu: u32, seen: &mut Option<u64>) {
        let now = REMOVALS.load(Relaxed);
        if seen.is_some_and(|s| s != now) {
            pr_info!(
                "mrif: a set was freed between two batches of a notice handler on CPU {cpu}\n"
            );
        }
        *seen = Some(now);
    }

    /// A notice handler between two batches (hard interrupt context,
    /// interrupts off).
    pub(super) fn between_batches() {
        #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
        {
            let us = NOTICE_BATCH_DELAY_US.load(Relaxed);
            if us == 0 {
                return;
            }
            BETWEEN.fetch_add(1, Relaxed);
            // `udelay()` is for short waits: a millisecond at a time.
            for _ in 0..us / 1000 {
                udelay(Delta::from_micros(1000));
            }
            udelay(Delta::from_micros((us % 1000).into()));
            BETWEEN.fetch_sub(1, Relaxed);
        }
    }

    /// [`super::Mrifs::free`] is about to take an emptied set off the list
    /// (process context).
    pub(super) fn before_removal() {
        #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
        {
            let ms = FREE_WAIT_US.load(Relaxed) / 1000;
            for _ in 0..ms {
                if BETWEEN.load(Relaxed) != 0 {
                    break;
                }
                fsleep(Delta::from_millis(1));
            }
        }
    }

    /// A set is taken off the list, under its lock.
    #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
    pub(super) fn removing() {
        REMOVALS.fetch_add(1, Relaxed);
    }
}
