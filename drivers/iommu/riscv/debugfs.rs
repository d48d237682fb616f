// SPDX-License-Identifier: GPL-2.0

//! The debugfs directory `riscv_iommu/<device>/` of a bound IOMMU: `stats`
//! (counters; reading it also drains the fault queue into dmesg),
//! `contexts` (every valid device context), `domains` (every paging domain
//! and its mappings) and `msi` (each remapped device's valid MSI
//! page-table entries).

use kernel::{
    debugfs,
    fmt::{Formatter, Result as FmtResult},
    prelude::*,
    str::CStr,
    sync::{atomic::Relaxed, Arc},
};

use crate::{iommu::Iommu, mem::KernelMem, remap::Remapper};

/// What the files read.
pub(crate) struct DebugData {
    iommu: Arc<Iommu>,
    remap: Option<Arc<Remapper>>,
}

/// The directory, removed when dropped.
pub(crate) type DebugDir = Pin<KBox<debugfs::Scope<DebugData>>>;

/// Creates `riscv_iommu/<name>/` and its files.
pub(crate) fn create(
    name: &CStr,
    iommu: Arc<Iommu>,
    remap: Option<Arc<Remapper>>,
) -> Result<DebugDir> {
    let data = DebugData { iommu, remap };
    KBox::pin_init(
        debugfs::Dir::new(c"riscv_iommu").scope(data, name, |d, dir| {
            dir.read_callback_file(c"stats", d, &|d: &DebugData, f| show_stats(&d.iommu, f));
            dir.read_callback_file(c"contexts", d, &|d: &DebugData, f| {
                show_contexts(&d.iommu, f)
            });
            dir.read_callback_file(c"domains", d, &|d: &DebugData, f| show_domains(&d.iommu, f));
            dir.read_callback_file(c"msi", d, &|d: &DebugData, f| match &d.remap {
                Some(r) => r.show(f),
                None => writeln!(f, "no remapping"),
            });
        }),
        GFP_KERNEL,
    )
}

/// Drains the fault queue, then writes the counters, one `key value` a
/// line.
fn show_stats(iommu: &Iommu, f: &mut Formatter<'_>) -> FmtResult {
    iommu.drain_queues();
    let (extended, levels) = {
        let t = iommu.ddt.lock();
        (t.extended(), t.mode().levels())
    };
    let (commands, syncs) = iommu.command_counts();
    let (faults, page_requests) = iommu.fault_counts();
    writeln!(f, "caps {:#x}", iommu.caps)?;
    writeln!(f, "directory_levels {}", levels)?;
    writeln!(f, "contexts {}", if extended { "extended" } else { "base" })?;
    f.write_fmt(fmt!("paging_mode {:?}\n", iommu.paging_mode))?;
    match &iommu.msi {
        Some(t) => {
            let (g, _) = t.table_geometry();
            writeln!(
                f,
                "msi_tables per-device entries {} mask {:#x} pattern {:#x} mode {}",
                g.entries(),
                g.mask(),
                g.pattern(),
                if t.mrif.is_some() { "mrif" } else { "flat" }
            )?
        }
        None => writeln!(f, "msi_tables none")?,
    }
    writeln!(f, "commands {}", commands)?;
    writeln!(f, "syncs {}", syncs)?;
    writeln!(f, "unmap_syncs {}", iommu.stats.unmap_syncs.load(Relaxed))?;
    writeln!(f, "interrupts {}", iommu.stats.interrupts.load(Relaxed))?;
    writeln!(
        f,
        "page_request_queue {}",
        if page_requests.is_some() {
            "on"
        } else {
            "none"
        }
    )?;
    writeln!(f, "page_requests {}", page_requests.unwrap_or(0))?;
    writeln!(f, "faults {}", faults)
}

/// Writes every valid device context, one line each.
fn show_contexts(iommu: &Iommu, f: &mut Formatter<'_>) -> FmtResult {
    let t = iommu.ddt.lock();
    let mut res = Ok(());
    iommu.ddt.for_each_context(&t, &mut |id, dc| {
        if res.is_ok() {
            res = writeln!(
                f,
                "device {:#06x} tc {:#x} iohgatp {:#x} ta {:#x} fsc {:#x} msiptp {:#x} msi_mask {:#x} msi_pattern {:#x}",
                id, dc.tc, dc.iohgatp, dc.ta, dc.fsc, dc.msiptp, dc.msi_addr_mask, dc.msi_addr_pattern
            );
        }
    });
    res
}

/// Writes every paging domain and its mappings.
fn show_domains(iommu: &Iommu, f: &mut Formatter<'_>) -> FmtResult {
    let domains = iommu.domains.lock();
    let mem = KernelMem::new(false);
    for d in domains.iter() {
        let pt = &d.pt;
        f.write_fmt(fmt!(
            "domain {} {:?} root {:#x}\n",
            d.id,
            pt.mode(),
            pt.root()
        ))?;
        // Map and unmap may change words under us: each read is a single
        // load.
        let mut res = Ok(());
        pt.for_each_leaf(&mem, &mut |iova, pa, size, prot| {
            if res.is_ok() {
                res = writeln!(
                    f,
                    "  iova {:#x} pa {:#x} size {:#x} {}{}",
                    iova,
                    pa,
                    size,
                    if prot.read { "r" } else { "-" },
                    if prot.write { "w" } else { "-" }
                );
            }
        });
        res?;
    }
    Ok(())
}
