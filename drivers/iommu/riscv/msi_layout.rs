// SPDX-License-Identifier: GPL-2.0

//! Where the IMSIC's interrupt files are, as the IOMMU's MSI page tables
//! see them: the geometry every device's table has.

use kernel::{irq::imsic, prelude::*};

use crate::{
    hw::{msi::MsiGeometry, PAGE_SIZE},
    mem::errno,
};

/// Where the IMSIC's interrupt files are, as MSI page tables see them: the
/// geometry (address mask and pattern) covering every hart's supervisor and
/// guest files. Each device behind the IOMMU gets its own table of this
/// geometry ([`MsiPageTable`]).
pub(crate) struct MsiLayout {
    pub(crate) geometry: MsiGeometry,
    /// The lowest and the end of the highest interrupt file.
    pub(crate) span: (u64, u64),
    /// MRIF mode's window, when tables are in MRIF mode: [`MRIF_WINDOW_BITS`]
    /// pages, aligned, around every interrupt file.
    pub(crate) mrif: Option<MsiGeometry>,
}

/// Entries of an MRIF-mode table: 256, the most QEMU 10.0 accepts (it
/// faults interrupt file numbers from 256 up).
pub(crate) const MRIF_WINDOW_BITS: u32 = 8;

impl MsiLayout {
    /// The layout of flat tables, and of MRIF-mode ones if `mrif`.
    pub(crate) fn new(layout: &imsic::Layout, mrif: bool) -> Result<Self> {
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
        let hi = files.iter().copied().max().unwrap_or(0) + PAGE_SIZE;
        // The window covers every file, so that no write of the device can
        // reach one except through an entry.
        let bytes = PAGE_SIZE << MRIF_WINDOW_BITS;
        let mrif = mrif
            .then(|| MsiGeometry::window(lo & !(bytes - 1), MRIF_WINDOW_BITS).ok())
            .flatten()
            .filter(|w| w.span().1 >= hi);
        Ok(Self {
            geometry,
            span: (lo, hi),
            mrif,
        })
    }

    /// What devices' tables use, and the span of addresses the tables
    /// handle (the reserved MSI region).
    pub(crate) fn table_geometry(&self) -> (MsiGeometry, (u64, u64)) {
        match self.mrif {
            Some(w) => (w, w.span()),
            None => (self.geometry, self.span),
        }
    }
}
