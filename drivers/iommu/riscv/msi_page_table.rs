// SPDX-License-Identifier: GPL-2.0

//! MSI page tables (spec 2.3.3): one per requester behind the IOMMU (a
//! device, or the devices that share a requester id through a bridge
//! alias), and only beside a second stage. In flat
//! mode each entry redirects the device's writes to one interrupt file (or
//! to a vCPU's guest file), valid exactly while vectors of the device
//! target that file. In MRIF mode the table's window is the device's space
//! of message addresses: entries name the device's own MRIFs
//! (`crate::mrif`), and writes anywhere else in the window, which covers
//! every interrupt file, fault.

use kernel::{
    device::Device,
    iommu::{pages::Pages, trace},
    irq::msi::MsiMsg,
    new_raw_spinlock_irq,
    prelude::*,
    sync::{aref::ARef, lock::raw_spinlock::RawSpinLockIrq, Arc},
};

use crate::{
    hw::{cmd::Command, msi, msi::MsiGeometry, PAGE_SIZE},
    iommu::Iommu,
};

/// Where an entry sends writes.
enum Target {
    None,
    /// An interrupt file (flat).
    File(u64),
    /// An MRIF, with its notice (MRIF mode).
    Mrif(u64, MsiMsg),
}

/// What a table entry does besides its reference count.
struct Entries {
    /// Vectors of the device that target each entry's file.
    refs: KVec<u32>,
    /// The guest interrupt file a vCPU entry points at (vCPU affinity), 0
    /// for none. vCPU entries are never at a host file's address, which
    /// vectors hold.
    vcpu: KVec<u64>,
    /// The MRIF an entry names and its notice (MRIF mode).
    mrif: KVec<Option<(u64, MsiMsg)>>,
}

impl Entries {
    /// Where entry `i`, for the doorbell at `addr`, sends writes: its vCPU
    /// target, else its MRIF, else the file itself while vectors use it,
    /// else nowhere.
    fn target(&self, i: usize, addr: u64) -> Target {
        if self.vcpu[i] != 0 {
            Target::File(self.vcpu[i])
        } else if let Some((m, n)) = self.mrif[i] {
            Target::Mrif(m, n)
        } else if self.refs[i] > 0 {
            Target::File(addr)
        } else {
            Target::None
        }
    }

    fn is_free(&self, i: usize) -> bool {
        self.vcpu[i] == 0 && self.mrif[i].is_none() && self.refs[i] == 0
    }
}

/// A device's MSI page table.
///
/// # Invariants
///
/// `pages` hold a table of `geometry.entries()` entries; entry `i` is valid
/// exactly when `vcpu[i] != 0` (pointing there), `mrif[i]` is set (in MRIF
/// mode, naming that MRIF) or `refs[i] > 0` (pointing at the file entry `i`
/// names). Only MRIF-mode tables have MRIF entries, and they have no file
/// entries. The table is dropped, and its pages freed, when no context
/// points at it any more (the device was released) and no vector uses it
/// (each holds a reference).
#[pin_data]
pub(crate) struct MsiPageTable {
    pages: Pages,
    pub(crate) geometry: MsiGeometry,
    /// MRIF mode: entries name the device's MRIFs, never host files.
    pub(crate) mrif: bool,
    dev: ARef<Device>,
    iommu: Arc<Iommu>,
    /// Changed when vectors are allocated, freed or moved, in hard
    /// interrupts too.
    #[pin]
    entries: RawSpinLockIrq<Entries>,
}

impl MsiPageTable {
    /// An empty table (every entry invalid) for `dev`.
    pub(crate) fn new(iommu: &Arc<Iommu>, dev: &Device) -> Result<Arc<Self>> {
        let layout = iommu.msi.as_ref().ok_or(ENODEV)?;
        let (geometry, _) = layout.table_geometry();
        // CAST: at most 2^12 entries.
        let n = geometry.entries() as usize;
        let mut refs = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut vcpu = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut mrifs = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            refs.push(0, GFP_KERNEL)?;
            vcpu.push(0, GFP_KERNEL)?;
            mrifs.push(None, GFP_KERNEL)?;
        }
        let order = geometry.table_order();
        let pages = Pages::new(order, GFP_KERNEL)?;
        let init = try_pin_init!(Self {
            pages,
            geometry,
            mrif: layout.mrif.is_some(),
            dev: dev.into(),
            iommu: iommu.clone(),
            entries <- new_raw_spinlock_irq!(
                Entries { refs, vcpu, mrif: mrifs },
                "MsiPageTable::entries"
            ),
        });
        Arc::pin_init(init, GFP_KERNEL)
    }

    /// Physical address of the table.
    pub(crate) fn pa(&self) -> u64 {
        self.pages.pa()
    }

    /// Writes entry `i` from `e` and makes the IOMMU see it (the spec
    /// allows entries to be cached: `IOTINVAL.GVMA` of the doorbell for
    /// every GSCID, then a fence). Never sleeps.
    fn update(&self, e: &Entries, i: usize) {
        // CAST: `i` is below the entry count, at most 2^12.
        let addr = self.geometry.address(i as u64);
        let target = e.target(i, addr);
        // CAST: an entry is two words.
        let n = (msi::MSI_PTE_SIZE / 8) as usize;
        let pte = self.pages.words(n * i, n);
        let (words, traced) = match target {
            Target::None => (None, 0),
            Target::File(f) => (Some(msi::flat_pte(f)), f),
            Target::Mrif(m, n) => (Some(msi::mrif_pte(m, n.address, n.data)), m),
        };
        match words {
            None => pte.write(0, 0),
            Some(w) => {
                // The first word, which holds V, last. An MRIF entry is
                // only ever written from invalid; a flat entry's second
                // word is always 0.
                pte.write(1, w[1]);
                pte.write(0, w[0]);
            }
        }
        trace::msi_remap(&self.dev, addr, traced, e.refs[i]);
        if let Err(err) = self
            .iommu
            .submit_sync(&[Command::iotinval_gvma(None, Some(addr))])
        {
            dev_err!(self.dev, "MSI table invalidation: {:?}\n", err);
        }
    }

    /// The entry of the interrupt file at `addr`.
    pub(crate) fn entry(&self, addr: u64) -> Result<usize> {
        // CAST: entries are at most 2^12.
        Ok(self.geometry.index(addr & !(PAGE_SIZE - 1)).ok_or(EINVAL)? as usize)
    }

    /// One more vector targets entry `i`.
    pub(crate) fn hold(&self, i: usize) {
        let mut e = self.entries.lock();
        e.refs[i] += 1;
        if e.refs[i] == 1 && e.vcpu[i] == 0 {
            self.update(&e, i);
        }
    }

    /// One more vector targets the file at `addr`; returns its entry.
    pub(crate) fn get(&self, addr: u64) -> Result<usize> {
        let i = self.entry(addr)?;
        self.hold(i);
        Ok(i)
    }

    /// One vector less targets entry `i`.
    pub(crate) fn put(&self, i: usize) {
        let mut e = self.entries.lock();
        e.refs[i] -= 1;
        if e.refs[i] == 0 && e.vcpu[i] == 0 {
            self.update(&e, i);
        }
    }

    /// Points a free entry, whose address `usable` accepts, at the guest
    /// interrupt file `target`, and returns it: the doorbell of a vector
    /// sent to a vCPU. Entries are taken from the top of the window down.
    pub(crate) fn add_vcpu(&self, target: u64, usable: impl Fn(u64) -> bool) -> Result<usize> {
        let mut e = self.entries.lock();
        let i = (0..e.refs.len())
            .rev()
            // CAST: entries are at most 2^12.
            .find(|&i| e.is_free(i) && usable(self.geometry.address(i as u64)))
            .ok_or(ENOSPC)?;
        e.vcpu[i] = target;
        self.update(&e, i);
        Ok(i)
    }

    /// Points vCPU entry `i` at `target`, the guest file of the hart the
    /// vCPU moved to.
    pub(crate) fn move_vcpu(&self, i: usize, target: u64) {
        let mut e = self.entries.lock();
        e.vcpu[i] = target;
        self.update(&e, i);
    }

    /// Makes vCPU entry `i` invalid again.
    pub(crate) fn remove_vcpu(&self, i: usize) {
        let mut e = self.entries.lock();
        e.vcpu[i] = 0;
        self.update(&e, i);
    }

    /// The doorbell (device-side address) of entry `i`.
    pub(crate) fn address(&self, i: usize) -> u64 {
        // CAST: entries are at most 2^12.
        self.geometry.address(i as u64)
    }

    /// Points a free entry at the MRIF at `mrif`, with the notice `notice`,
    /// and returns it. Entries are taken from the top of the window down,
    /// away from the interrupt files' addresses a vCPU redirect names.
    pub(crate) fn add_mrif(&self, mrif: u64, notice: MsiMsg) -> Result<usize> {
        let mut e = self.entries.lock();
        let i = (0..e.refs.len())
            .rev()
            .find(|&i| e.is_free(i))
            .ok_or(ENOSPC)?;
        e.mrif[i] = Some((mrif, notice));
        self.update(&e, i);
        Ok(i)
    }

    /// Makes entry `i`, which names an MRIF, invalid again; once this
    /// returns the IOMMU no longer writes to that MRIF.
    pub(crate) fn remove_mrif(&self, i: usize) {
        let mut e = self.entries.lock();
        e.mrif[i] = None;
        self.update(&e, i);
    }

    /// Lists the valid entries, as `dev`'s (debugfs).
    pub(crate) fn show(
        &self,
        dev: &Device,
        f: &mut kernel::fmt::Formatter<'_>,
    ) -> kernel::fmt::Result {
        let e = self.entries.lock();
        f.write_fmt(fmt!("device {} table {:#x}\n", dev.name(), self.pa()))?;
        for i in 0..e.refs.len() {
            // CAST: entries are at most 2^12.
            let addr = self.geometry.address(i as u64);
            match e.target(i, addr) {
                Target::None => (),
                Target::File(t) => writeln!(
                    f,
                    "  {:#x} -> {:#x} refs {}{}",
                    addr,
                    t,
                    e.refs[i],
                    if e.vcpu[i] != 0 { " vcpu" } else { "" }
                )?,
                Target::Mrif(m, n) => writeln!(
                    f,
                    "  {:#x} -> mrif {:#x} notice {:#x} id {}",
                    addr, m, n.address, n.data
                )?,
            }
        }
        Ok(())
    }
}
