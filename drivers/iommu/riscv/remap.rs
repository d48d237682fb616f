// SPDX-License-Identifier: GPL-2.0

//! MSI remapping: every device behind the IOMMU whose MSIs go to the IMSIC
//! has them go through the IOMMU's remapping IRQ domain
//! (`kernel::irq::remap`). Where the IOMMU has MSI page tables (only with a
//! second stage), each requester (a device, or the devices that share a
//! requester id through a bridge alias) gets its own flat table, and the
//! domain keeps an entry valid exactly for the interrupt files the
//! vectors target, counted per file; without tables messages reach the
//! IMSIC as composed, or at IOVAs (below).
//!
//! The table belongs to the requester, not to the IOMMU domain it is
//! attached to: every valid device context of the requester carries it
//! (identity, second-stage paging, blocking: all second-stage contexts), so
//! changing domains never touches the interrupt path.
//!
//! Where the device's IOMMU domain translates MSIs like any DMA (no MSI
//! table, or first-stage domains, whose IOVAs never reach the table
//! unchanged), the domain maps every CPU's interrupt file into it when a
//! vector is allocated (`sw_msi`: dma-iommu or iommufd picks the IOVAs) and
//! composes the vector's messages with the IOVA of the file it targets, on
//! moves too (the IMSIC composes moved vectors through the hierarchy,
//! "irqchip/riscv-imsic: Compose the message of a moved vector through the
//! hierarchy"), so a move never needs a new mapping.
//!
//! Where the IOMMU's tables are in MRIF mode (`crate::mrif`), a device's
//! vectors end at the domain instead: the device writes into MRIFs of its
//! own, and the IOMMU's notices run the vectors' handlers. Only then does
//! the domain claim isolated MSIs.

use kernel::{
    cpu::CpuId,
    cpumask::Cpumask,
    device::Device,
    irq::{
        imsic,
        msi::{MsiDesc, MsiMsg},
        remap::{Remap, VcpuTarget, Vector},
    },
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc,
        Mutex, //
    },
};

use crate::{
    hw::PAGE_SIZE,
    mrif::{MrifIrq, Mrifs},
    msi_page_table::MsiPageTable,
};

/// Where the device's IOMMU domain maps an interrupt file (`sw_msi`).
#[derive(Clone, Copy)]
struct Doorbell {
    file: u64,
    iova: u64,
}

/// A remapped vector: its device's table (none when the IOMMU has no MSI
/// page tables), the table entry and identity it is sent to a vCPU with,
/// and how it is delivered to the host.
///
/// `vcpu` and `vcpu_data` change only under the interrupt's descriptor
/// lock (`irq_set_vcpu_affinity()`), which message composition holds too.
pub(crate) struct RemapIrq {
    table: Option<Arc<MsiPageTable>>,
    /// The entry of `table` pointing at the vCPU's guest file, `NONE` if
    /// the vector is delivered to the host.
    vcpu: Atomic<u64>,
    /// The guest's identity, the message data while sent to the vCPU.
    vcpu_data: Atomic<u32>,
    kind: Kind,
}

enum Kind {
    /// Allocated in the IMSIC, written to its files (flat entries or none).
    Flat(FlatIrq),
    /// Ending here, written to the device's MRIFs.
    Mrif(MrifIrq),
}

/// A vector the IMSIC allocated: the entries it holds in its device's
/// table, and the IOVAs of the files it may target where the device's
/// IOMMU domain translates MSIs.
struct FlatIrq {
    /// One per CPU file, set at allocation; empty where the device writes
    /// files at their physical addresses.
    doorbells: KVec<Doorbell>,
    /// The entry of the file the vector targets.
    cur: Atomic<u64>,
    /// The entry it targeted before its last move, kept until the next
    /// move or the end, for MSIs still in flight; `NONE` if none.
    prev: Atomic<u64>,
}

const NONE: u64 = u64::MAX;

/// The IOMMU's remapping IRQ domain data: the tables of the devices it
/// adopted, and the MRIFs and notices where tables are in MRIF mode.
#[pin_data]
pub(crate) struct Remapper {
    /// Each device and its requester's table (devices that share a
    /// requester id share it); changed at device probe and release, read
    /// at vector allocation and by debugfs.
    #[pin]
    tables: Mutex<KVec<(ARef<Device>, Arc<MsiPageTable>)>>,
    /// Vectors whose messages carry IOVAs (debugfs `stats`).
    pub(crate) translated: Atomic<u64>,
    mrifs: Option<Mrifs>,
}

impl Remapper {
    /// With MRIFs and their notices if `mrif`.
    pub(crate) fn new(mrif: bool) -> Result<Arc<Self>> {
        let mrifs = match mrif {
            true => Some(Mrifs::new()?),
            false => None,
        };
        Arc::pin_init(
            try_pin_init!(Self {
                tables <- new_mutex!(KVec::new(), "Remapper::tables"),
                translated: Atomic::new(0),
                mrifs,
            }),
            GFP_KERNEL,
        )
    }

    /// Whether devices' vectors go to MRIFs.
    pub(crate) fn isolated(&self) -> bool {
        self.mrifs.is_some()
    }

    fn table_of(&self, dev: &Device) -> Option<Arc<MsiPageTable>> {
        self.tables
            .lock()
            .iter()
            .find(|(d, _)| Self::key(d) == Self::key(dev))
            .map(|(_, t)| t.clone())
    }

    fn mrifs(&self) -> Result<&Mrifs> {
        self.mrifs.as_ref().ok_or(ENODEV)
    }

    /// The vector's MRIF state, if it ends here.
    fn mrif<'a>(&'a self, irq: &'a RemapIrq) -> Option<(&'a Mrifs, &'a MrifIrq)> {
        match (&irq.kind, self.mrifs.as_ref()) {
            (Kind::Mrif(m), Some(mrifs)) => Some((mrifs, m)),
            _ => None,
        }
    }

    fn key(dev: &Device) -> usize {
        core::ptr::from_ref(dev) as usize
    }

    /// `dev`'s MSIs will be remapped through `table`.
    pub(crate) fn add(&self, dev: &Device, table: Arc<MsiPageTable>) -> Result {
        Ok(self.tables.lock().push((dev.into(), table), GFP_KERNEL)?)
    }

    /// The device table at `pa`, if there is one (debugfs `debug`).
    #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
    pub(crate) fn table_at(&self, pa: u64) -> Option<Arc<MsiPageTable>> {
        self.tables
            .lock()
            .iter()
            .find(|(_, t)| t.pa() == pa)
            .map(|(_, t)| t.clone())
    }

    /// `dev` left the IOMMU.
    pub(crate) fn remove(&self, dev: &Device) {
        self.tables
            .lock()
            .retain(|(d, _)| Self::key(d) != Self::key(dev));
    }

    /// Counts the vectors whose messages carry IOVAs, then lists every
    /// device's valid entries (debugfs).
    pub(crate) fn show(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        writeln!(f, "translated_vectors {}", self.translated.load(Relaxed))?;
        writeln!(f, "isolated {}", u32::from(self.isolated()))?;
        if let Some(m) = self.mrifs.as_ref() {
            m.show(f)?;
        }
        for (d, t) in self.tables.lock().iter() {
            t.show(d, f)?;
        }
        Ok(())
    }
}

impl Remap for Remapper {
    type Irq = RemapIrq;

    fn alloc(&self, dev: &Device, msg: MsiMsg, desc: &mut MsiDesc<'_>) -> Result<RemapIrq> {
        // Every file the vector may be moved to gets its IOVA now: moves
        // happen in hard interrupt context, where nothing can be mapped.
        let mut doorbells = KVec::new();
        for (_, file) in imsic::cpu_files() {
            match desc.map_doorbell(file)? {
                Some(iova) if iova != file => {
                    doorbells.push(Doorbell { file, iova }, GFP_KERNEL)?
                }
                _ => (),
            }
        }
        let table = self.table_of(dev);
        let cur = match &table {
            Some(t) => t.get(msg.address)? as u64,
            None => NONE,
        };
        if !doorbells.is_empty() {
            self.translated.fetch_add(1, Relaxed);
        }
        Ok(RemapIrq {
            table,
            vcpu: Atomic::new(NONE),
            vcpu_data: Atomic::new(0),
            kind: Kind::Flat(FlatIrq {
                doorbells,
                cur: Atomic::new(cur),
                prev: Atomic::new(NONE),
            }),
        })
    }

    fn free(&self, irq: RemapIrq) {
        if let Some(t) = &irq.table {
            let i = irq.vcpu.load(Relaxed);
            if i != NONE {
                // CAST: an entry index, at most 2^12.
                t.remove_vcpu(i as usize);
            }
        }
        let flat = match irq.kind {
            Kind::Mrif(m) => {
                if let Ok(mrifs) = self.mrifs() {
                    mrifs.free(m);
                }
                return;
            }
            Kind::Flat(f) => f,
        };
        if !flat.doorbells.is_empty() {
            self.translated.fetch_sub(1, Relaxed);
        }
        let Some(t) = &irq.table else { return };
        for i in [flat.cur.load(Relaxed), flat.prev.load(Relaxed)] {
            if i != NONE {
                // CAST: entry indices are small.
                t.put(i as usize);
            }
        }
    }

    fn compose(&self, irq: &RemapIrq, parent: MsiMsg) -> MsiMsg {
        if let Some(m) = vcpu_message(irq) {
            return m;
        }
        let Kind::Flat(flat) = &irq.kind else {
            return parent;
        };
        let page = parent.address & !(PAGE_SIZE - 1);
        match flat.doorbells.iter().find(|d| d.file == page) {
            Some(d) => MsiMsg {
                address: d.iova | (parent.address & (PAGE_SIZE - 1)),
                ..parent
            },
            None => parent,
        }
    }

    fn set_affinity(
        &self,
        irq: &RemapIrq,
        mask: &Cpumask,
        parent: &mut dyn FnMut() -> Result<MsiMsg>,
    ) -> Result {
        let table = &irq.table;
        let Kind::Flat(irq) = &irq.kind else {
            // Moved with `move_owned`.
            return Err(EINVAL);
        };
        let Some(t) = table else {
            // Nothing to steer: messages reach the IMSIC as composed.
            return parent().map(|_| ());
        };
        // Every file the parent may pick is valid before the device can be
        // told to write to it.
        let candidates = || {
            imsic::cpu_files()
                .filter(|&(c, _)| mask.test(c))
                .filter_map(|(_, f)| t.entry(f).ok())
        };
        candidates().for_each(|i| t.hold(i));
        let res = parent().and_then(|msg| t.get(msg.address));
        candidates().for_each(|i| t.put(i));
        let new = res? as u64;
        let cur = irq.cur.load(Relaxed);
        if new == cur {
            // CAST: entry indices are small.
            t.put(new as usize);
            return Ok(());
        }
        // The old file stays reachable until the next move.
        let prev = irq.prev.xchg(cur, Relaxed);
        irq.cur.store(new, Relaxed);
        if prev != NONE {
            // CAST: as above.
            t.put(prev as usize);
        }
        Ok(())
    }

    fn owns_vectors(&self, dev: &Device) -> bool {
        self.mrifs.is_some() && self.table_of(dev).is_some_and(|t| t.mrif)
    }

    fn alloc_owned(
        &self,
        dev: &Device,
        vector: Vector,
        _desc: &mut MsiDesc<'_>,
    ) -> Result<(RemapIrq, CpuId)> {
        // MRIF mode is used only where the device's domain leaves MSIs
        // untranslated for the table (second stage or identity): nothing
        // to map.
        let table = self.table_of(dev).ok_or(ENODEV)?;
        let (m, cpu) = self.mrifs()?.alloc(&table, vector)?;
        Ok((
            RemapIrq {
                table: Some(table),
                vcpu: Atomic::new(NONE),
                vcpu_data: Atomic::new(0),
                kind: Kind::Mrif(m),
            },
            cpu,
        ))
    }

    fn message(&self, irq: &RemapIrq) -> MsiMsg {
        if let Some(m) = vcpu_message(irq) {
            return m;
        }
        match self.mrif(irq) {
            Some((mrifs, m)) => mrifs.message(m),
            None => MsiMsg {
                address: 0,
                data: 0,
            },
        }
    }

    fn mask(&self, irq: &RemapIrq, masked: bool) {
        if let Some((mrifs, m)) = self.mrif(irq) {
            mrifs.mask(m, masked);
        }
    }

    fn retrigger(&self, irq: &RemapIrq) -> bool {
        self.mrif(irq).is_some_and(|(mrifs, m)| mrifs.retrigger(m))
    }

    fn move_owned(&self, irq: &RemapIrq, mask: &Cpumask) -> Result<CpuId> {
        let (mrifs, m) = self.mrif(irq).ok_or(EINVAL)?;
        mrifs.move_to(m, mask)
    }

    fn set_vcpu_affinity(
        &self,
        irq: &RemapIrq,
        vcpu: Option<VcpuTarget>,
        write_msg: &mut dyn FnMut() -> Result,
    ) -> Result {
        // Without an MSI table there is no way to send a device's MSIs
        // elsewhere than where it writes.
        let t = irq.table.as_ref().ok_or(EOPNOTSUPP)?;
        let cur = irq.vcpu.load(Relaxed);
        match vcpu {
            Some(v) => {
                // Only a guest file may become a target: never memory,
                // never a host file; identity 0 means none.
                if !is_guest_file(v.target) || v.msi_data == 0 {
                    return Err(EINVAL);
                }
                if cur != NONE {
                    // The vCPU moved to another hart: the entry follows.
                    // CAST: an entry index, at most 2^12.
                    t.move_vcpu(cur as usize, v.target);
                    if irq.vcpu_data.xchg(v.msi_data, Relaxed) != v.msi_data {
                        write_msg()?;
                    }
                    return Ok(());
                }
                // An entry of its own, at no host file's address: vectors
                // moving between host CPUs never meet it.
                let i = t.add_vcpu(v.target, |a| !is_host_file(a))?;
                irq.vcpu_data.store(v.msi_data, Relaxed);
                // CAST: an entry index, at most 2^12.
                irq.vcpu.store(i as u64, Relaxed);
                // The entry first, then the message naming it.
                write_msg().inspect_err(|_| {
                    irq.vcpu.store(NONE, Relaxed);
                    t.remove_vcpu(i);
                })
            }
            None => {
                if cur == NONE {
                    return Ok(());
                }
                // The host's message first, then the entry goes.
                irq.vcpu.store(NONE, Relaxed);
                let written = write_msg();
                // CAST: an entry index, at most 2^12.
                t.remove_vcpu(cur as usize);
                written
            }
        }
    }
}

/// The message of a vector sent to a vCPU: its entry's doorbell, with the
/// guest's identity.
fn vcpu_message(irq: &RemapIrq) -> Option<MsiMsg> {
    let i = irq.vcpu.load(Relaxed);
    if i == NONE {
        return None;
    }
    let t = irq.table.as_ref()?;
    Some(MsiMsg {
        // CAST: an entry index, at most 2^12.
        address: t.address(i as usize),
        data: irq.vcpu_data.load(Relaxed),
    })
}

/// Whether `addr` is some CPU's supervisor interrupt file.
fn is_host_file(addr: u64) -> bool {
    imsic::cpu_files().any(|(_, f)| f == addr)
}

/// Whether `addr` is a guest interrupt file of some CPU's hart.
fn is_guest_file(addr: u64) -> bool {
    imsic::cpu_files().any(|(c, _)| {
        (1..)
            .map_while(|g| imsic::guest_file(c, g))
            .any(|f| f == addr)
    })
}
