// SPDX-License-Identifier: GPL-2.0

//! MSI page tables (spec 2.3.3, flat mode): one per device behind the
//! IOMMU, each entry redirecting the device's writes to one interrupt file
//! (or to a vCPU's guest file), valid exactly while vectors of the device
//! target that file.

use kernel::{
    device::Device,
    iommu::trace,
    irq::imsic,
    new_raw_spinlock_irq,
    prelude::*,
    sync::{aref::ARef, lock::raw_spinlock::RawSpinLockIrq, Arc},
};

use crate::{
    hw::{cmd::Command, mem::PhysMem, msi, msi::MsiGeometry, PAGE_SIZE},
    iommu::Iommu,
    mem::{errno, KernelMem},
};

/// Where the IMSIC's interrupt files are, as MSI page tables see them: the
/// geometry (address mask and pattern) covering every hart's supervisor and
/// guest files. Each device behind the IOMMU gets its own table of this
/// geometry ([`MsiPageTable`]).
pub(crate) struct MsiLayout {
    pub(crate) geometry: MsiGeometry,
    /// The lowest and the end of the highest interrupt file.
    pub(crate) span: (u64, u64),
}

impl MsiLayout {
    pub(crate) fn new(layout: &imsic::Layout) -> Result<Self> {
        let mut files = KVec::new();
        let mut res = Ok(());
        layout.for_each_file(&mut |f| {
            if res.is_ok() {
                res = files.push(f, GFP_KERNEL);
            }
        });
        res?;
        let geometry = MsiGeometry::from_files(&files).map_err(errno)?;
        let lo = files.iter().copied().min().unwrap_or(0);
        let hi = files.iter().copied().max().unwrap_or(0) + crate::hw::PAGE_SIZE;
        Ok(Self {
            geometry,
            span: (lo, hi),
        })
    }
}

/// What a table entry does besides its reference count.
struct Entries {
    /// Vectors of the device that target each entry's file.
    refs: KVec<u32>,
    /// A guest interrupt file an entry is redirected to (vCPU affinity), 0
    /// for none.
    vcpu: KVec<u64>,
}

impl Entries {
    /// Where entry `i`, for the doorbell at `addr`, sends writes: its vCPU
    /// target, else the file itself while vectors use it, else nowhere (0).
    fn target(&self, i: usize, addr: u64) -> u64 {
        if self.vcpu[i] != 0 {
            self.vcpu[i]
        } else if self.refs[i] > 0 {
            addr
        } else {
            0
        }
    }
}

/// A device's MSI page table.
///
/// # Invariants
///
/// `pa` is a table of `geometry.entries()` entries, `order` pages, owned by
/// this object; entry `i` is valid exactly when `vcpu[i] != 0` (pointing
/// there) or `refs[i] > 0` (pointing at the file entry `i` names).
#[pin_data(PinnedDrop)]
pub(crate) struct MsiPageTable {
    pub(crate) pa: u64,
    order: u32,
    pub(crate) geometry: MsiGeometry,
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
        let geometry = iommu.msi.as_ref().ok_or(ENODEV)?.geometry;
        // CAST: at most 2^12 entries.
        let n = geometry.entries() as usize;
        let mut refs = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut vcpu = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            refs.push(0, GFP_KERNEL)?;
            vcpu.push(0, GFP_KERNEL)?;
        }
        let order = geometry.table_order();
        let pa = KernelMem::new(false).alloc_pages(order).map_err(errno)?;
        let init = try_pin_init!(Self {
            pa,
            order,
            geometry,
            dev: dev.into(),
            iommu: iommu.clone(),
            entries <- new_raw_spinlock_irq!(Entries { refs, vcpu }, "MsiPageTable::entries"),
        });
        Arc::pin_init(init, GFP_KERNEL).inspect_err(|_| {
            // SAFETY: allocated above with `order`; nothing else knows it.
            unsafe { KernelMem::new(false).free_pages(pa, order) };
        })
    }

    /// Writes entry `i` from `e` and makes the IOMMU see it (the spec
    /// allows entries to be cached: `IOTINVAL.GVMA` of the doorbell for
    /// every GSCID, then a fence). Never sleeps.
    fn update(&self, e: &Entries, i: usize) {
        // CAST: `i` is below the entry count, at most 2^12.
        let addr = self.geometry.address(i as u64);
        let target = e.target(i, addr);
        let mem = KernelMem::new(true);
        // SAFETY: entry `i` (two words) lies in the table `pa` names, which
        // lives as long as `self` (type invariant).
        let pte = unsafe { mem.words(self.pa + msi::MSI_PTE_SIZE * i as u64, 2) };
        if target == 0 {
            pte.write(0, 0);
        } else {
            let words = msi::flat_pte(target);
            pte.write(1, words[1]);
            pte.write(0, words[0]);
        }
        trace::msi_remap(&self.dev, addr, target, e.refs[i]);
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

    /// Redirects the entry of the doorbell `addr` to `target`, or back to
    /// the host (`None`).
    pub(crate) fn redirect(&self, addr: u64, target: Option<u64>) -> Result {
        let i = self.entry(addr)?;
        let mut e = self.entries.lock();
        e.vcpu[i] = target.unwrap_or(0);
        self.update(&e, i);
        Ok(())
    }

    /// Lists the valid entries (debugfs).
    pub(crate) fn show(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        let e = self.entries.lock();
        f.write_fmt(fmt!("device {} table {:#x}\n", self.dev.name(), self.pa))?;
        for i in 0..e.refs.len() {
            // CAST: entries are at most 2^12.
            let addr = self.geometry.address(i as u64);
            let target = e.target(i, addr);
            if target == 0 {
                continue;
            }
            writeln!(
                f,
                "  {:#x} -> {:#x} refs {}{}",
                addr,
                target,
                e.refs[i],
                if e.vcpu[i] != 0 { " vcpu" } else { "" }
            )?;
        }
        Ok(())
    }
}

#[pinned_drop]
impl PinnedDrop for MsiPageTable {
    fn drop(self: Pin<&mut Self>) {
        // No context points here any more (the device was released) and no
        // vector uses it (each holds a reference).
        // SAFETY: the table was allocated with `order` (type invariant) and
        // nothing uses it any more, as said above.
        unsafe { KernelMem::new(false).free_pages(self.pa, self.order) };
    }
}
